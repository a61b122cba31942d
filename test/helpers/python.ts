/**
 * Running Python `websockets` peers (Debian's python3-websockets, installed
 * by scripts/test.sh) from the interop tests. A missing interpreter or
 * package fails the test that needs it, never skips it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

/** The directory of the Python peer scripts (test/interop/python/). */
export const PY_DIR = fileURLToPath(new URL('../interop/python/', import.meta.url));
/** Debian's interpreter: python3-websockets is installed for it. */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Runs `python3 args…` to completion (killed after `timeoutMs`) and collects its output. */
export function runPython(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`python timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Fails (never skips) when Python `websockets` cannot be imported. */
export async function requirePythonWebsockets(): Promise<void> {
  const probe = await runPython(['-c', 'import websockets; print(websockets.__version__)'], 20_000);
  assert.equal(probe.code, 0, `Python websockets is not installed for ${PYTHON} (scripts/test.sh installs python3-websockets): ${probe.stderr}`);
}
