// Child processes for the runner: spawn pinned to a core, read their stdout
// line by line, and make sure none outlives the runner (normal end, error,
// SIGINT, SIGTERM). Every child is killed by its own pid, never by name.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

const children = new Set();

function killAll() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping every child process\n`);
    killAll();
    process.exit(130);
  });
}

/** Whether `taskset` works here and there are at least two cores to split. */
export function pinningAvailable(cores) {
  if (cores < 2) return false;
  const r = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

/** The soft and hard open-file limits this process (and so its children) has. */
export function openFileLimits() {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line.trim().split(/\s{2,}/).slice(1, 3).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
    return { soft, hard };
  } catch {
    return { soft: NaN, hard: NaN };
  }
}

/**
 * Spawns `node [nodeFlags] script args`, pinned to `core` when `pin`, with
 * the open-file limit raised to `nofile` when asked (through a shell whose
 * `exec` keeps the pid, so the pid is node's own for /proc/<pid>/stat).
 */
export function spawnNode(script, args, { core, pin, nodeFlags = [], env = {}, nofile = 0 }) {
  let cmd = process.execPath;
  let argv = [...nodeFlags, script, ...args];
  if (pin) {
    argv = ['-c', String(core), cmd, ...argv];
    cmd = 'taskset';
  }
  if (nofile > 0) {
    argv = ['-c', `ulimit -n ${nofile} 2>/dev/null; exec "$@"`, 'sh', cmd, ...argv];
    cmd = '/bin/sh';
  }
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const lines = [];
  const waiters = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 20000) stderr = stderr.slice(-10000);
  });
  child.stdin.on('error', () => {}); // the child may exit before reading
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (let i = 0; i < waiters.length; i++) {
      if (waiters[i].test(line)) {
        const [w] = waiters.splice(i, 1);
        w.resolve(line);
        break;
      }
    }
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      for (const w of waiters.splice(0)) w.reject(new Error(`exited (${code ?? signal}) while waiting: ${lastLines(stderr)}`));
      resolve({ code, signal });
    });
  });
  return {
    child,
    pid: child.pid,
    lines,
    exited,
    stderr: () => stderr,
    /** The next stdout line matching `re` (or one already seen, if `past`). */
    waitLine(re, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}: ${lastLines(stderr)}`));
        }, timeoutMs);
        const w = {
          test: (l) => re.test(l),
          resolve: (l) => { clearTimeout(timer); resolve(l); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        };
        if (child.exitCode !== null || child.signalCode !== null) {
          w.reject(new Error(`had already exited: ${lastLines(stderr)}`));
          return;
        }
        waiters.push(w);
      });
    },
    send(line) {
      child.stdin.write(line + '\n');
    },
    /** Graceful stop (stdin closed), then SIGKILL after `graceMs`. */
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.stdin.end();
      const timer = setTimeout(() => {
        try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
      }, graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** The telling part of a child's stderr: FAIL lines and error messages first, else the last lines. */
export function lastLines(text, n = 6) {
  const lines = String(text).trim().split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) return '(no stderr)';
  const telling = lines.filter((l) => /FAIL|Error|error:|not available|failed/.test(l) && !/^at /.test(l));
  return (telling.length ? telling : lines).slice(-n).join(' | ');
}
