/**
 * `fullduplex connect`'s input and output under stress, and how it reports
 * the server's close, run as a child process against loopback servers. The
 * contract is `fullduplex connect --help`:
 *
 *   Lines typed are sent as text messages; received messages are printed
 *   after "< " (binary ones as hex). End input (Ctrl-D) to close the
 *   connection normally.
 *   --wait MS   after end of input, wait up to MS for as many messages as
 *               were sent before closing (default 2000)
 *   -q, --quiet print only received messages
 *   Exit status: 0 after a clean close, 1 when the connection fails
 *   (handshake refused, timeout, protocol error, connection lost), 2 for bad usage.
 *
 * the README's CLI section ("prints what arrives after `< `; it exits 0 after
 * a clean close and 1 (with the reason) when ... the connection fails") and
 * its client table (`closeTimeout` 5 s: "after our close frame, the server's
 * close frame and TCP close are awaited this long, then the socket is destroyed").
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { WebSocketServer, type ServerWebSocket } from '../../src/index.js';
import { assertCleanError, cli, exitWithin, rawServer } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/processes.js';

const EXIT_MS = 30_000;

/** A loopback WebSocketServer whose close codes (as the server saw them) are recorded. */
async function server(
  t: TestContext,
  options: ConstructorParameters<typeof WebSocketServer>[0] = {},
): Promise<{ url: string; got: string[]; closes: number[] }> {
  const got: string[] = [];
  const closes: number[] = [];
  const wss = new WebSocketServer({
    keepalive: false,
    ...options,
    handler: {
      message(ws, data) {
        got.push(data.toString());
        ws.send(data.toString());
      },
      close(_ws, code) {
        closes.push(code);
      },
      ...options.handler,
    },
  });
  const { port } = await wss.listen(0);
  t.after(() => wss.close(0));
  return { url: `ws://127.0.0.1:${port}/`, got, closes };
}

/** Answers the opening handshake by hand (RFC 6455 §4.2.2), for peers that then misbehave. */
function accept101(socket: Socket, then: (socket: Socket) => void): void {
  socket.once('data', (req: Buffer) => {
    const key = /sec-websocket-key: *(\S+)/i.exec(req.toString())?.[1] ?? '';
    const digest = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${digest}\r\n\r\n`);
    then(socket);
  });
}

describe('fullduplex connect: end of input', () => {
  for (const stdin of ['pipe', 'ignore'] as const) {
    it(`stdin closed at once (${stdin === 'pipe' ? 'a pipe ended immediately' : '/dev/null'}): closes with 1000, exit 0, nothing on stdout`, async (t) => {
      const { url, closes } = await server(t);
      const run = cli(t, ['connect', url], { stdin });
      run.child.stdin?.end();
      assert.equal(await exitWithin(run, EXIT_MS, 'connect with closed stdin'), 0, run.stderr());
      await waitFor('the server-side close', () => closes.length === 1);
      assert.deepEqual(closes, [1000]);
      assert.match(run.stderr(), /closed: code 1000/);
      assert.equal(run.stdout(), '');
    });
  }

  it('stdin ended while the handshake is still pending (slow upgrade hook): still closes with 1000 and exits 0', async (t) => {
    const { url, closes } = await server(t, {
      handler: { upgrade: () => new Promise((resolve) => setTimeout(() => resolve({ accept: true, data: undefined }), 1500)) },
    });
    const run = cli(t, ['connect', url]);
    run.child.stdin?.end();
    assert.equal(await exitWithin(run, EXIT_MS, 'connect with stdin ended before open'), 0, run.stderr());
    await waitFor('the server-side close', () => closes.length === 1);
    assert.deepEqual(closes, [1000]);
  });
});

describe('fullduplex connect: what stdin sends', () => {
  it('5000 lines written at once (faster than they go out): all sent and all answers printed, in order, exit 0', async (t) => {
    const { url, got } = await server(t);
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'x'.repeat(i % 200)}`);
    const run = cli(t, ['connect', url, '--quiet', '--wait', '60000']);
    run.child.stdin?.end(lines.join('\n') + '\n');
    assert.equal(await exitWithin(run, 90_000, 'connect with 5000 lines'), 0, run.stderr());
    assert.deepEqual(got, lines);
    assert.equal(run.stdout(), lines.map((l) => `< ${l}\n`).join(''));
  });

  it('a line of invalid UTF-8 and one with a NUL go out as valid text (U+FFFD), a CRLF line without its CR; no 1007, exit 0', async (t) => {
    const { url, got, closes } = await server(t);
    const run = cli(t, ['connect', url, '--quiet']);
    run.child.stdin?.end(Buffer.concat([Buffer.from([0xff, 0xfe, 0x80, 0x61, 0x0a]), Buffer.from('nul\0byte\ncrlf\r\n')]));
    assert.equal(await exitWithin(run, EXIT_MS, 'connect with binary stdin'), 0, run.stderr());
    assert.deepEqual(got, ['\ufffd\ufffd\ufffda', 'nul\0byte', 'crlf']);
    await waitFor('the server-side close', () => closes.length === 1);
    assert.deepEqual(closes, [1000]);
  });

  it('a line longer than the server\'s maxPayload: the server closes with 1009 and connect reports it, exit 1', async (t) => {
    const { url, got } = await server(t, { maxPayload: 1024 });
    const run = cli(t, ['connect', url]);
    run.child.stdin?.end('x'.repeat(64 * 1024) + '\n');
    assert.equal(await exitWithin(run, EXIT_MS, 'connect with an oversized line'), 1, run.stderr());
    assertCleanError(run.stderr(), /\b1009\b/);
    assert.deepEqual(got, []);
    assert.equal(run.stdout(), '');
  });
});

describe('fullduplex connect: --header cannot break the handshake', () => {
  // README, client options: "extra request headers (the handshake's own cannot be replaced)".
  it('--header "Sec-WebSocket-Key: ..." and "Upgrade: h2c" are not sent in place of the handshake\'s own: it opens and exits 0', async (t) => {
    const keys: string[] = [];
    const { url, got } = await server(t, {
      handler: {
        upgrade(req) {
          keys.push(`${String(req.headers['sec-websocket-key'])} ${String(req.headers.upgrade)}`);
        },
      },
    });
    const run = cli(t, ['connect', url, '-H', 'Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==', '-H', 'Upgrade: h2c']);
    run.child.stdin?.end('through\n');
    assert.equal(await exitWithin(run, EXIT_MS, 'connect with handshake headers'), 0, run.stderr());
    assert.deepEqual(got, ['through']);
    assert.equal(keys.length, 1);
    assert.doesNotMatch(keys[0] ?? '', /AAAAAAAA|h2c/);
  });
});

describe('fullduplex connect: the server closes (stdin still open)', () => {
  // [how the server closes, exit status, what stderr must say]
  const cases: Array<[string, (ws: ServerWebSocket<unknown>) => void, number, RegExp]> = [
    ['1000 "bye"', (ws) => ws.close(1000, 'bye'), 0, /closed: code 1000 \(bye\)/],
    ['1001 "restarting"', (ws) => ws.close(1001, 'restarting'), 0, /closed: code 1001 \(restarting\)/],
    ['no status code (1005)', (ws) => ws.close(), 0, /closed: code 1005/],
    ['1008 "policy"', (ws) => ws.close(1008, 'policy'), 1, /^fullduplex connect: closed with code 1008 \(policy\)/m],
    ['1011 "oops"', (ws) => ws.close(1011, 'oops'), 1, /^fullduplex connect: closed with code 1011 \(oops\)/m],
    ['4000 "custom"', (ws) => ws.close(4000, 'custom'), 1, /^fullduplex connect: closed with code 4000 \(custom\)/m],
    ['terminate (TCP reset, no close frame)', (ws) => ws.terminate(), 1, /^fullduplex connect: .*(1006|abnormal|closed)/m],
  ];
  for (const [how, close, status, message] of cases) {
    it(`${how}: exit ${status}`, async (t) => {
      const { url } = await server(t, { handler: { open: (ws) => void setTimeout(() => close(ws), 200) } });
      const run = cli(t, ['connect', url]);
      // stdin is left open: the server's close alone must end the process.
      assert.equal(await exitWithin(run, EXIT_MS, `connect, server closes with ${how}`), status, run.stderr());
      assert.match(run.stderr(), message);
      if (status !== 0) assertCleanError(run.stderr(), message);
      assert.equal(run.stdout(), '');
    });
  }

  it('--echo, the server closes with 1011: exit 1 with the code', async (t) => {
    const { url } = await server(t, { handler: { open: (ws) => ws.send('ping'), message: (ws) => ws.close(1011, 'after echo') } });
    const run = cli(t, ['connect', url, '--echo']);
    assert.equal(await exitWithin(run, EXIT_MS, 'connect --echo, 1011'), 1, run.stderr());
    assertCleanError(run.stderr(), /closed with code 1011 \(after echo\)/);
    assert.equal(run.stdout(), '< ping\n');
  });

  it('a server sending a text frame of invalid UTF-8: exit 1 (RFC 6455 §8.1: fail the connection, 1007)', async (t) => {
    const { port } = await rawServer(t, (socket) =>
      accept101(socket, (s) => {
        s.write(Buffer.from([0x81, 0x02, 0xff, 0xfe]));
        s.on('data', () => s.end());
      }),
    );
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
    assert.equal(await exitWithin(run, EXIT_MS, 'connect, invalid UTF-8 from the server'), 1, run.stderr());
    assertCleanError(run.stderr(), /1007|UTF-8/i);
    assert.equal(run.stdout(), '');
  });
});

describe('fullduplex connect: output and interruption', () => {
  it('stdout holds only the received messages, after "< " (binary as hex); status lines go to stderr', async (t) => {
    const { url } = await server(t, {
      handler: {
        open(ws) {
          ws.send('text');
          ws.send(Buffer.from([1, 2, 3]), { binary: true });
        },
        message(ws, data) {
          ws.send(`echo ${data.toString()}`);
          ws.close(1000);
        },
      },
    });
    const run = cli(t, ['connect', url, '-p', 'chat']);
    // Not ended: connect would close once as many messages came in as were sent (--wait), before the echo.
    run.child.stdin?.write('typed\n');
    assert.equal(await exitWithin(run, EXIT_MS, 'connect with mixed messages'), 0, run.stderr());
    assert.deepEqual(run.stdout().split('\n').sort(), ['', '< [binary 3 bytes] 010203', '< echo typed', '< text']);
    assert.match(run.stderr(), /^connected to ws:\/\/127\.0\.0\.1:\d+\//m);
    assert.match(run.stderr(), /^> typed$/m);
    assert.match(run.stderr(), /^closed: code 1000$/m);
  });

  it('Ctrl-C while the server ignores the close frame: the socket is dropped after closeTimeout (5 s), exit 1 with the code', async (t) => {
    let sawClose = false;
    const { port } = await rawServer(t, (socket) =>
      accept101(socket, (s) => {
        // Read the client's close frame (opcode 8) but never answer it.
        s.on('data', (d: Buffer) => {
          if (d.length > 0 && (d[0]! & 0x0f) === 8) sawClose = true;
        });
      }),
    );
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
    await waitFor('the connected line', () => /connected/.test(run.stderr()), EXIT_MS);
    run.child.kill('SIGINT');
    assert.equal(await exitWithin(run, EXIT_MS, 'connect after Ctrl-C, close unanswered'), 1, run.stderr());
    assert.ok(sawClose, 'the client sent its close frame');
    assertCleanError(run.stderr(), /1006|abnormal/);
  });

  it('Ctrl-C twice while the server ignores the close frame: quits at once with a non-zero status', async (t) => {
    const { port } = await rawServer(t, (socket) => accept101(socket, (s) => s.resume()));
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
    await waitFor('the connected line', () => /connected/.test(run.stderr()), EXIT_MS);
    run.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    run.child.kill('SIGINT');
    // Well under the 5 s closeTimeout a single Ctrl-C would wait.
    const code = await exitWithin(run, 4000, 'connect after a second Ctrl-C');
    assert.notEqual(code, 0);
    assert.doesNotMatch(run.stderr(), /^\s+at /m);
  });
});
