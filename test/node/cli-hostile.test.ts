/**
 * `fullduplex serve` given hostile arguments and signals, run as users run
 * it (`node dist/cli/main.js serve ...`, built by `npm run build`), loopback
 * only. The contract is `fullduplex serve --help`:
 *
 *   --port N      port to listen on (default 8080; 0 picks a free one)
 *   --host ADDR   address to listen on (default 127.0.0.1)
 *   --redis URL   ... (redis:// or rediss://, user:password@ for ACL users)
 *   --redis-cluster URLS  ... (comma-separated root node URLs)
 *
 * and the README's CLI section ("serve exits 1 if Redis cannot be reached
 * within 10 s"). Bad usage exits 2 (as connect's --help says of itself and
 * test/node/cli.test.ts checks for --port nope); a failure to start exits
 * non-zero; either way with one "fullduplex ...: reason" line on stderr,
 * never a stack trace or a hang. test/node/cli.test.ts and
 * test/scale/cli-redis.test.ts cover the happy paths and are not repeated.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import WebSocketClient from 'ws';
import { assertCleanError, cli, exitWithin, serve } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/processes.js';

/** How long a usage error may take: it must not even start listening. */
const USAGE_MS = 15_000;

describe('fullduplex serve: bad flag values exit 2 with a clear message', () => {
  // [args, what stderr must say]
  const cases: Array<[string[], RegExp]> = [
    [['--port=-1'], /invalid port "-1"/],
    [['--port', '-1'], /--port/],
    [['--port', '65536'], /invalid port "65536"/],
    [['--port', '99999999999999999999999'], /invalid port/],
    [['--port', '1.5'], /invalid port "1\.5"/],
    [['--port', 'NaN'], /invalid port "NaN"/],
    [['--port'], /--port.*argument missing/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['-x'], /Unknown option '-x'/],
    [['extra-positional'], /extra-positional/],
    [['--no-deflate=yes'], /--no-deflate/],
    [['--redis'], /--redis.*argument missing/],
    [['--redis', ''], /invalid Redis URL ""/],
    [['--redis', 'not a url'], /invalid Redis URL "not a url"/],
    [['--redis', 'redis://127.0.0.1:99999'], /invalid Redis URL/],
    [['--redis-cluster', 'redis://127.0.0.1:1,http://127.0.0.1:2'], /invalid Redis URL "http:\/\/127\.0\.0\.1:2"/],
  ];
  for (const [args, message] of cases) {
    it(`serve ${JSON.stringify(args)}`, async (t) => {
      const run = cli(t, ['serve', '--host', '127.0.0.1', ...args]);
      const code = await exitWithin(run, USAGE_MS, `serve ${args.join(' ')}`);
      assert.equal(code, 2, run.stderr());
      assertCleanError(run.stderr(), message);
      assert.doesNotMatch(run.stdout(), /listening/, 'a usage error must not start the server');
    });
  }

  // BUG: `--port ''` is taken as port 0 (Number('') === 0) and serve listens on a random port.
  it('serve --port "" (an empty value is not a port N)', async (t) => {
    const run = cli(t, ['serve', '--host', '127.0.0.1', '--port', '']);
    await waitFor('serve --port "" to exit or listen', () => run.exited() || /listening/.test(run.stdout()), USAGE_MS);
    if (!run.exited()) run.child.kill('SIGKILL');
    assert.doesNotMatch(run.stdout(), /listening/, `an empty --port was taken as a port: ${run.stdout()}`);
    assert.equal(await run.exit, 2, run.stderr());
    assertCleanError(run.stderr(), /invalid port ""/);
  });

  // BUG: `--host ''` reaches server.listen(port, ''), which binds every interface, and prints "ws://:PORT/echo".
  it('serve --host "" (an empty ADDR) does not listen on every interface', async (t) => {
    const run = cli(t, ['serve', '--port', '0', '--host', '']);
    await waitFor('serve --host "" to exit or listen', () => run.exited() || /listening/.test(run.stdout()), USAGE_MS);
    if (!run.exited()) run.child.kill('SIGKILL');
    assert.doesNotMatch(run.stdout(), /ws:\/\/:\d+/, `listened with an empty host: ${run.stdout()}`);
    assert.equal(await run.exit, 2, run.stderr());
    assertCleanError(run.stderr(), /host/);
  });

  // BUG: an empty list is not "comma-separated root node URLs"; serve tries to connect to nothing and says "Redis at : ...".
  it('serve --redis-cluster "," (no URL at all) is bad usage', async (t) => {
    const run = cli(t, ['serve', '--port', '0', '--host', '127.0.0.1', '--redis-cluster', ',']);
    const code = await exitWithin(run, 30_000, 'serve --redis-cluster ,');
    assert.equal(code, 2, run.stderr());
    assertCleanError(run.stderr(), /--redis-cluster/);
  });
});

describe('fullduplex serve: failures to start exit 1 with the reason', () => {
  it('--port already in use: exit 1, "cannot listen on 127.0.0.1:PORT: EADDRINUSE"', async (t) => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => busy.close(resolve)));
    const port = (busy.address() as { port: number }).port;
    const run = cli(t, ['serve', '--host', '127.0.0.1', '--port', String(port)]);
    assert.equal(await exitWithin(run, 30_000, 'serve on a busy port'), 1, run.stderr());
    assertCleanError(run.stderr(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
    assert.doesNotMatch(run.stdout(), /listening/);
  });

  it('--host that does not resolve: exit 1 with ENOTFOUND (or EAI_AGAIN without DNS)', async (t) => {
    const run = cli(t, ['serve', '--port', '0', '--host', 'no-such-host.invalid']);
    assert.equal(await exitWithin(run, 45_000, 'serve on an unresolvable host'), 1, run.stderr());
    assertCleanError(run.stderr(), /cannot listen on no-such-host\.invalid:0: (ENOTFOUND|EAI_AGAIN)/);
  });

  it('--host that is not an address of this machine (TEST-NET-1): exit 1 with EADDRNOTAVAIL', async (t) => {
    const run = cli(t, ['serve', '--port', '0', '--host', '192.0.2.1']);
    assert.equal(await exitWithin(run, 30_000, 'serve on a foreign address'), 1, run.stderr());
    assertCleanError(run.stderr(), /cannot listen on 192\.0\.2\.1:0: EADDRNOTAVAIL/);
  });

  it('--host that is not an address at all: exit non-zero with the reason', async (t) => {
    const run = cli(t, ['serve', '--port', '0', '--host', 'bad host!']);
    const code = await exitWithin(run, 45_000, 'serve on "bad host!"');
    assert.ok(code === 1 || code === 2, `exit ${code}: ${run.stderr()}`);
    assertCleanError(run.stderr(), /bad host!/);
  });

  it('a repeated --port: the last one counts (node:util parseArgs), or it is refused cleanly', async (t) => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => busy.close(resolve)));
    const port = (busy.address() as { port: number }).port;
    // The first value is free (0), the last one busy: listening would mean the first won.
    const run = cli(t, ['serve', '--host', '127.0.0.1', '--port', '0', '--port', String(port)]);
    const code = await exitWithin(run, 30_000, 'serve with two --port');
    assert.ok(code === 1 || code === 2, `exit ${code}: ${run.stdout()} ${run.stderr()}`);
    assertCleanError(run.stderr(), new RegExp(`${port}: EADDRINUSE|--port`));
  });
});

/** An open /echo or /topics connection and the close code it gets. */
async function openClient(url: string): Promise<{ ws: WebSocketClient; closed: Promise<number> }> {
  const ws = new WebSocketClient(url);
  ws.on('error', () => {});
  const closed = once(ws, 'close').then(([code]) => code as number);
  await once(ws, 'open');
  return { ws, closed };
}

/** A socket that completes the upgrade on /echo and then never reads again (a stuck client). */
async function stuckClient(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(
    'GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await once(socket, 'data');
  socket.pause();
  return socket;
}

describe('fullduplex serve: SIGTERM / SIGINT with clients connected', () => {
  // serve's --help documents no shutdown bound; the server closes with a 2 s grace (wss.close(2000)),
  // so 20 s is generous on a loaded machine and still catches a hang.
  const SHUTDOWN_MS = 20_000;

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: echo and topic clients get 1001, then exit 0`, async (t) => {
      const { run, url, port } = await serve(t);
      const echo = await openClient(url);
      const topicA = await openClient(`ws://127.0.0.1:${port}/topics/room`);
      const topicB = await openClient(`ws://127.0.0.1:${port}/topics/room`);
      t.after(() => [echo, topicA, topicB].forEach((c) => c.ws.terminate()));
      run.child.kill(signal);
      const codes = await Promise.all([echo.closed, topicA.closed, topicB.closed]);
      assert.deepEqual(codes, [1001, 1001, 1001]);
      assert.equal(await exitWithin(run, SHUTDOWN_MS, `serve after ${signal}`), 0, run.stderr());
      assert.match(run.stdout(), /shutting down/);
      assert.equal(run.stderr(), '');
    });
  }

  it('SIGTERM with a client that never reads, a half-sent request and an idle keep-alive connection: exit 0 in bounded time', async (t) => {
    const { run, url, port } = await serve(t);
    const stuck = await stuckClient(port);
    const half = tcpConnect(port, '127.0.0.1');
    half.on('error', () => {});
    await once(half, 'connect');
    half.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const idle = tcpConnect(port, '127.0.0.1');
    idle.on('error', () => {});
    await once(idle, 'connect');
    idle.write('GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
    await once(idle, 'data');
    const echo = await openClient(url);
    t.after(() => {
      for (const s of [stuck, half, idle]) s.destroy();
      echo.ws.terminate();
    });
    run.child.kill('SIGTERM');
    assert.equal(await echo.closed, 1001);
    assert.equal(await exitWithin(run, SHUTDOWN_MS, 'serve after SIGTERM with stuck clients'), 0, run.stderr());
    assert.equal(run.stderr(), '');
  });

  for (const [first, second] of [
    ['SIGTERM', 'SIGTERM'],
    ['SIGINT', 'SIGINT'],
    ['SIGINT', 'SIGTERM'],
  ] as const) {
    it(`${first} then ${second} at once, a client connected: exits promptly (0 or 130), no stack trace`, async (t) => {
      const { run, port } = await serve(t);
      // A stuck client keeps the graceful close waiting, so the second signal lands during it.
      const stuck = await stuckClient(port);
      t.after(() => stuck.destroy());
      run.child.kill(first);
      run.child.kill(second);
      const code = await exitWithin(run, SHUTDOWN_MS, `serve after ${first} + ${second}`);
      assert.ok(code === 0 || code === 130, `exit ${code}: ${run.stderr()}`);
      assert.doesNotMatch(run.stderr(), /^\s+at /m);
      assert.doesNotMatch(run.stderr(), /Error/);
    });
  }
});
