/**
 * Child processes, free ports, temp dirs and bounded waits for the scale
 * tests (real redis-server, nginx and server nodes). Everything started here
 * is stopped by the caller's `after`/`t.after`; a missing binary fails the
 * test (never skips it: scripts/test.sh installs the Debian packages).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1 (the kernel picks it; free when returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Fails when `binary` is not on PATH, naming the Debian package that provides it. */
export function requireBinary(binary: string, debianPackage: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  assert.ok(found.status === 0 && path !== '', `${binary} is not installed (Debian package ${debianPackage}; scripts/test.sh installs it)`);
  return path;
}

/** A fresh temp dir, and its removal. */
export function tempDir(name: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `fullduplex-${name}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `condition` every `intervalMs` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A started child process with its output kept (for failure messages). */
export interface Child {
  readonly process: ChildProcess;
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL (kill -9); resolves once it has exited. */
  kill(): Promise<void>;
}

export function startChild(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd, env: options.env ?? process.env });
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 64 * 1024) out = out.slice(-32 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
    child.once('error', (err) => {
      out += `\n[spawn error] ${err.message}`;
      resolve();
    });
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  return {
    process: child,
    output: () => out,
    exited,
    async stop(graceMs = 3000) {
      if (!running()) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
  };
}
