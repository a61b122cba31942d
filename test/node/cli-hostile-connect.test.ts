/**
 * `fullduplex connect` given bad flags and hostile or broken peers, run as a
 * child process (`node dist/cli/main.js connect ...`), loopback only. The
 * contract is `fullduplex connect --help`:
 *
 *   --insecure    do not verify the server's TLS certificate (wss)
 *   --timeout MS  handshake timeout in milliseconds (default 10000)
 *   --wait MS     after end of input, wait up to MS for as many messages as
 *                 were sent before closing (default 2000)
 *   Exit status: 0 after a clean close, 1 when the connection fails
 *   (handshake refused, timeout, protocol error, connection lost), 2 for bad usage.
 *
 * and the README's CLI section: "it exits 0 after a clean close and 1 (with
 * the reason) when the handshake is refused, times out, or the connection
 * fails". Every failure must be one "fullduplex connect: reason" line, never
 * a stack trace or a hang. test/node/cli.test.ts already covers a 401
 * refusal, a silent server with --timeout 300 and a masked server frame.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTlsServer } from 'node:tls';
import { describe, it } from 'node:test';
import { WebSocketServer } from '../../src/index.js';
import { assertCleanError, cli, exitWithin, rawServer } from '../helpers/cli-run.js';
import { TLS_CERT, TLS_KEY } from '../helpers/client-tls.js';
import { freePort, waitFor } from '../helpers/processes.js';

const FAIL_MS = 30_000;

describe('fullduplex connect: bad flag values exit 2 with a clear message', () => {
  const url = 'ws://127.0.0.1:1/';
  const cases: Array<[string[], RegExp]> = [
    [[url, 'ws://127.0.0.1:2/'], /expected exactly one URL/],
    [['not-a-url'], /Invalid URL/],
    [[''], /Invalid URL|URL/],
    [['ftp://127.0.0.1:1/'], /scheme/],
    [['ws://127.0.0.1:1/#fragment'], /fragment/i],
    [['ws://127.0.0.1:99999/'], /Invalid URL/],
    [[url, '--timeout', 'abc'], /invalid timeout "abc"/],
    [[url, '--timeout', '0'], /invalid timeout "0"/],
    [[url, '--timeout=-5'], /invalid timeout "-5"/],
    [[url, '--timeout', '-5'], /--timeout/],
    [[url, '--timeout', ''], /invalid timeout ""/],
    [[url, '--timeout'], /--timeout.*argument missing/],
    [[url, '--wait', 'abc'], /invalid wait "abc"/],
    [[url, '--wait=-1'], /invalid wait "-1"/],
    [[url, '--wait'], /--wait.*argument missing/],
    [[url, '--header', 'NoColon'], /invalid header "NoColon"/],
    [[url, '--header', ': value'], /invalid header ": value"/],
    [[url, '--header', 'Bad Name: v'], /Bad Name/],
    [[url, '--header', 'X-A: one\ntwo'], /X-A/],
    [[url, '--origin', 'https://a.example\r\nX-Injected: 1'], /Origin/],
    [[url, '--protocol', ''], /subprotocol ""/i],
    [[url, '--protocol', 'a b'], /subprotocol "a b"/i],
    [[url, '--protocol', 'chat', '--protocol', 'chat'], /"chat" is given more than once/],
    [[url, '--bogus'], /Unknown option '--bogus'/],
    [[url, '--echo=yes'], /--echo/],
  ];
  for (const [args, message] of cases) {
    it(`connect ${JSON.stringify(args)}`, async (t) => {
      const run = cli(t, ['connect', ...args]);
      run.child.stdin?.end();
      assert.equal(await exitWithin(run, FAIL_MS, `connect ${args.join(' ')}`), 2, run.stderr());
      assertCleanError(run.stderr(), message);
      assert.equal(run.stdout(), '', 'nothing on stdout but received messages');
    });
  }

  // BUG: Number('') is 0, so an empty --wait is taken as "0 ms" instead of refused like an empty --timeout.
  it('connect URL --wait "" (an empty MS) is bad usage', async (t) => {
    const run = cli(t, ['connect', url, '--wait', '']);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'connect --wait ""'), 2, run.stderr());
    assertCleanError(run.stderr(), /invalid wait ""/);
  });
});

describe('fullduplex connect: huge --timeout / --wait values are honoured, not overflowed', () => {
  it('--timeout 1e10 to a server that never answers: still waiting after 3 s, no Node warning; Ctrl-C then quits', async (t) => {
    const { port } = await rawServer(t, (socket) => socket.resume());
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`, '--timeout', '1e10']);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(run.exited(), false, `gave up at once: ${run.stderr()}`);
    assert.doesNotMatch(run.stderr(), /Warning/);
    run.child.kill('SIGINT');
    const code = await exitWithin(run, FAIL_MS, 'connect after Ctrl-C during the handshake');
    assert.notEqual(code, 0);
  });

  // BUG: setTimeout(…, 1e10) overflows (TimeoutOverflowWarning, "set to 1"): connect closes after 1 ms instead of waiting.
  it('--wait 1e10 with a server that never answers: still waiting after 3 s, no TimeoutOverflowWarning', async (t) => {
    const wss = new WebSocketServer({ keepalive: false, handler: { message() {} } });
    const { port } = await wss.listen(0);
    t.after(() => wss.close(0));
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`, '--wait', '1e10']);
    run.child.stdin?.end('unanswered\n');
    await new Promise((r) => setTimeout(r, 3000));
    assert.doesNotMatch(run.stderr(), /TimeoutOverflowWarning|\(node:\d+\)/);
    assert.equal(run.exited(), false, `closed before the wait was over: ${run.stderr()}`);
  });
});

describe('fullduplex connect: peers that are not (working) WebSocket servers exit 1 with the reason', () => {
  it('nothing listening: exit 1 with ECONNREFUSED', async (t) => {
    const port = await freePort();
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'connect to a closed port'), 1, run.stderr());
    assertCleanError(run.stderr(), new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
    assert.equal(run.stdout(), '');
  });

  it('a host that does not resolve: exit 1 with ENOTFOUND (or EAI_AGAIN without DNS)', async (t) => {
    const run = cli(t, ['connect', 'ws://no-such-host.invalid:8080/']);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, 45_000, 'connect to an unresolvable host'), 1, run.stderr());
    assertCleanError(run.stderr(), /(ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/);
    assert.equal(run.stdout(), '');
  });

  for (const status of [200, 404, 500]) {
    it(`a plain HTTP server answering ${status}: exit 1 naming the status`, async (t) => {
      const http = createHttpServer((_req, res) => res.writeHead(status, { 'Content-Type': 'text/plain' }).end('not a websocket\n'));
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise((resolve) => { http.closeAllConnections(); http.close(resolve); }));
      const port = (http.address() as { port: number }).port;
      const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
      run.child.stdin?.end();
      assert.equal(await exitWithin(run, FAIL_MS, `connect to an HTTP ${status}`), 1, run.stderr());
      assertCleanError(run.stderr(), new RegExp(`\\b${status}\\b`));
      assert.equal(run.stdout(), '');
    });
  }

  it('a server that accepts and closes without a byte: exit 1, not a timeout', async (t) => {
    const { port } = await rawServer(t, (socket) => socket.destroy());
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`, '--timeout', '60000']);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'connect to a server that hangs up'), 1, run.stderr());
    assertCleanError(run.stderr(), /./);
    assert.doesNotMatch(run.stderr(), /time/i);
  });

  it('a server that closes in the middle of its 101 response: exit 1, not a timeout', async (t) => {
    const { port } = await rawServer(t, (socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnec'));
    });
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`, '--timeout', '60000']);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'connect cut mid-handshake'), 1, run.stderr());
    assertCleanError(run.stderr(), /./);
    assert.doesNotMatch(run.stderr(), /time/i);
  });

  it('a 101 with a wrong Sec-WebSocket-Accept: exit 1 (RFC 6455 §4.1: the client must fail the connection)', async (t) => {
    const { port } = await rawServer(t, (socket) => {
      socket.once('data', () => {
        const wrong = createHash('sha1').update('not the key').digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wrong}\r\n\r\n`);
      });
    });
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'connect with a wrong accept'), 1, run.stderr());
    assertCleanError(run.stderr(), /accept/i);
    assert.equal(run.stdout(), '');
  });

  it('ws:// to a TLS port: exit 1 with the reason, not a timeout', async (t) => {
    const tls = createTlsServer({ cert: TLS_CERT, key: TLS_KEY }, (socket) => socket.end());
    tls.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => tls.close(resolve)));
    const port = (tls.address() as { port: number }).port;
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`, '--timeout', '60000']);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'ws:// to a TLS port'), 1, run.stderr());
    assertCleanError(run.stderr(), /./);
    assert.doesNotMatch(run.stderr(), /time/i);
  });

  it('wss:// to a plain ws port: exit 1 with the TLS reason', async (t) => {
    const wss = new WebSocketServer({ keepalive: false });
    const { port } = await wss.listen(0);
    t.after(() => wss.close(0));
    const run = cli(t, ['connect', `wss://127.0.0.1:${port}/`, '--timeout', '60000']);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, FAIL_MS, 'wss:// to a ws port'), 1, run.stderr());
    assertCleanError(run.stderr(), /SSL|TLS|wrong version|EPROTO/i);
  });
});

describe('fullduplex connect: wss:// with an untrusted certificate', () => {
  async function wssServer(t: import('node:test').TestContext): Promise<{ port: number; got: string[] }> {
    const got: string[] = [];
    const https = createHttpsServer({ cert: TLS_CERT, key: TLS_KEY });
    const wss = new WebSocketServer({ keepalive: false, handler: { message: (ws, data) => { got.push(data.toString()); ws.send(`echo ${data.toString()}`); } } });
    wss.attach(https);
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      await wss.close(0);
      https.closeAllConnections();
      await new Promise((resolve) => https.close(resolve));
    });
    return { port: (https.address() as { port: number }).port, got };
  }

  it('fails clearly (exit 1, the certificate problem named) without --insecure, sending nothing', async (t) => {
    const { port, got } = await wssServer(t);
    const run = cli(t, ['connect', `wss://127.0.0.1:${port}/`]);
    run.child.stdin?.end('secret\n');
    assert.equal(await exitWithin(run, FAIL_MS, 'wss:// to a self-signed server'), 1, run.stderr());
    assertCleanError(run.stderr(), /self[- ]signed|certificate/i);
    assert.deepEqual(got, []);
    assert.equal(run.stdout(), '');
  });

  it('--insecure connects, exchanges a message and exits 0 (the documented opt-out)', async (t) => {
    const { port, got } = await wssServer(t);
    const run = cli(t, ['connect', `wss://127.0.0.1:${port}/`, '--insecure']);
    run.child.stdin?.end('hello over tls\n');
    assert.equal(await exitWithin(run, FAIL_MS, 'wss:// --insecure'), 0, run.stderr());
    await waitFor('the message at the server', () => got.length === 1);
    assert.deepEqual(got, ['hello over tls']);
    assert.equal(run.stdout(), '< echo hello over tls\n');
  });
});
