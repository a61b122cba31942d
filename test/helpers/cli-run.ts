/**
 * Runs the built `fullduplex` command line (dist/cli/main.js, built by
 * `npm run build` / scripts/test.sh) as a child process, for the CLI's
 * hostile-input tests. Every run is killed (SIGKILL) by the test's `t.after`
 * and by a hard timer, so no test can hang on a child.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The exit code, or the signal's name when it was killed by one. */
  exit: Promise<number | string>;
  exited(): boolean;
}

/** Spawns `node dist/cli/main.js ...args`; SIGKILLed after `hardMs` or at the end of the test. */
export function cli(t: TestContext, args: string[], opts: { stdin?: 'pipe' | 'ignore'; hardMs?: number } = {}): CliRun {
  const stdio: StdioOptions = [opts.stdin ?? 'pipe', 'pipe', 'pipe'];
  const child = spawn(process.execPath, [CLI, ...args], { stdio });
  let out = '';
  let err = '';
  let done = false;
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  // A test that ends stdin early must not crash on EPIPE.
  child.stdin?.on('error', () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.hardMs ?? 60_000);
  const exit = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(timer);
    done = true;
    return (code as number | null) ?? (signal as string);
  });
  t.after(async () => {
    clearTimeout(timer);
    if (!done) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  return { child, stdout: () => out, stderr: () => err, exit, exited: () => done };
}

/** The exit code, failing the test when the process has not exited within `ms` (a hang). */
export async function exitWithin(run: CliRun, ms: number, what: string): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), ms)));
  const result = await Promise.race([run.exit, hang]);
  clearTimeout(timer);
  assert.notEqual(result, 'hang', `${what}: still running after ${ms} ms\nstdout: ${run.stdout()}\nstderr: ${run.stderr()}`);
  return result as number | string;
}

/** A usage/failure message: one clear line naming the command, never a stack trace or a Node warning. */
export function assertCleanError(stderr: string, pattern: RegExp): void {
  assert.match(stderr, /^fullduplex( serve| connect)?: /m, `no "fullduplex ...:" line in ${JSON.stringify(stderr)}`);
  assert.match(stderr, pattern);
  assert.doesNotMatch(stderr, /^\s+at .+[(:]\d+/m, `a stack trace in ${JSON.stringify(stderr)}`);
  assert.doesNotMatch(stderr, /\(node:\d+\)|Warning:|Uncaught|node:internal/, `a Node warning or internal error in ${JSON.stringify(stderr)}`);
}

/** Starts `serve` on a free port and resolves with its echo URL once it prints it. */
export async function serve(t: TestContext, args: string[] = []): Promise<{ run: CliRun; url: string; port: number }> {
  const run = cli(t, ['serve', '--port', '0', '--host', '127.0.0.1', ...args]);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /ws:\/\/127\.0\.0\.1:(\d+)\/echo/.exec(run.stdout());
    if (m !== null) return { run, url: m[0], port: Number(m[1]) };
    if (run.exited() || Date.now() > deadline) assert.fail(`serve did not print its URL\nstdout: ${run.stdout()}\nstderr: ${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw TCP server on 127.0.0.1:0 that runs `onSocket` for each connection; closed (and its sockets destroyed) at the end of the test. */
export async function rawServer(t: TestContext, onSocket: (socket: import('node:net').Socket) => void): Promise<{ server: Server; port: number }> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0 };
}
