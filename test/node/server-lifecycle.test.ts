/**
 * The life of server connections over real loopback sockets: the closing
 * handshake started by the server (RFC 6455 §7.1.2) and its timeout,
 * terminate, keepalive, graceful shutdown, backpressure, topics, handler
 * exceptions and the connection's properties.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { WebSocket as WsClient } from 'ws';
import diagnostics_channel from 'node:diagnostics_channel';
import { DiagnosticsChannel, SendResult, WebSocketServer } from '../../src/index.js';
import type { ServerWebSocket } from '../../src/index.js';
import { RawPeer, delay, rawOpen, rawRequest, upgradeRequest, withTimeout } from '../helpers/raw-client.js';
import { EventLog, listening, scopeFor as scope, clientClosed, clientMessage, echo } from '../helpers/server-harness.js';

const PING = 0x9;


/** Sends messages to `ws` until `send` reports backpressure; returns how many bytes that took. */
function fillUntilBackpressure(ws: ServerWebSocket<unknown>, chunk: Buffer, limit = 256): number {
  let sent = 0;
  for (let i = 0; i < limit; i++) {
    sent += chunk.length;
    if (ws.send(chunk) === SendResult.Backpressure) return sent;
  }
  throw new Error(`send never reported backpressure after ${sent} bytes`);
}

/** Reads and discards frames until `bytes` payload bytes of data frames have arrived. */
async function drainPeer(peer: RawPeer, bytes: number): Promise<void> {
  let got = 0;
  while (got < bytes) {
    const f = await peer.readFrame(10_000);
    if (f.opcode === 0x1 || f.opcode === 0x2 || f.opcode === 0x0) got += f.payload.length;
  }
}

describe('RFC 6455 §7.1.2: the server starts the closing handshake', () => {
  it('close(code, reason): the client sees them; the handler sees the code the client echoed', async (t) => {
    const { s, port, log } = await listening(t);
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    const server = (await log.first('open')).ws;
    const closed = clientClosed(ws);
    server.close(4001, 'see you');
    assert.equal(server.readyState, 2, 'CLOSING once the close frame is queued');
    assert.equal(server.send('too late'), SendResult.Dropped, 'nothing is sent after the close frame');
    assert.deepEqual(await closed, { code: 4001, reason: 'see you' });
    const ev = await log.first('close');
    assert.equal(ev.code, 4001);
    assert.equal(ev.reason, 'see you');
    assert.equal(server.readyState, 3);
  });

  it('close() with no arguments sends a close frame without a status code, as a browser does (the peer sees 1005, RFC 6455 §7.1.5)', async (t) => {
    const { s, port, log } = await listening(t);
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    const closed = clientClosed(ws);
    (await log.first('open')).ws.close();
    assert.equal((await closed).code, 1005);
    assert.equal((await log.first('close')).code, 1005, 'the client echoed a close frame without a code');
  });

  it('a reason needs a code: close(undefined, "x") throws RangeError', async (t) => {
    const { s, port, log } = await listening(t);
    await s.client(`ws://127.0.0.1:${port}/`);
    const server = (await log.first('open')).ws;
    assert.throws(() => server.close(undefined, 'x'), RangeError);
    assert.equal(server.readyState, 1);
  });

  it('close() rejects a code that may not be sent and a reason over 123 bytes', async (t) => {
    const { s, port, log } = await listening(t);
    await s.client(`ws://127.0.0.1:${port}/`);
    const server = (await log.first('open')).ws;
    assert.throws(() => server.close(1005), RangeError);
    assert.throws(() => server.close(1006), RangeError);
    assert.throws(() => server.close(1000, 'x'.repeat(124)), RangeError);
    assert.equal(server.readyState, 1);
  });

  it('a peer that never answers the close frame is cut off after closeTimeout', async (t) => {
    const s = scope(t);
    const { port, log } = await s.listen({ closeTimeout: 200 });
    const { peer } = await rawOpen(port, {}, { allowHalfOpen: true });
    s.peer(peer);
    const server = (await log.first('open')).ws;
    server.close(1000, 'bye');
    const close = await peer.readClose();
    assert.deepEqual(close, { code: 1000, reason: 'bye' });
    // No answer: the server must not wait forever.
    await peer.waitEnd(5_000);
    const ev = await log.first('close');
    assert.equal(ev.code, 1006, 'no close frame came back');
  });

  it('terminate() drops the connection without a closing handshake', async (t) => {
    const { s, port, log } = await listening(t);
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    const closed = clientClosed(ws);
    (await log.first('open')).ws.terminate();
    assert.equal((await closed).code, 1006);
    const ev = await log.first('close');
    assert.equal(ev.code, 1006);
    assert.equal(ev.ws.send('gone'), SendResult.Dropped, 'nothing is queued once the connection is gone');
    assert.equal(ev.ws.send(Buffer.alloc(4)), SendResult.Dropped);
    assert.equal(ev.ws.bufferedAmount, 0);
  });

  it('terminate() is seen by a raw peer as the end of the stream with no close frame', async (t) => {
    const { s, port, log } = await listening(t);
    const { peer } = await rawOpen(port);
    s.peer(peer);
    (await log.first('open')).ws.terminate();
    await peer.waitEnd();
    assert.equal(peer.buffered, 0);
  });
});

describe('Keepalive', () => {
  const keepalive = { interval: 100, timeout: 100 };

  it('a peer that never answers pings is terminated', async (t) => {
    const { s, port, log } = await listening(t, { keepalive });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    await log.first('open');
    const ping = await peer.readFrame();
    assert.equal(ping.opcode, PING);
    await peer.waitEnd(5_000);
    assert.equal((await log.first('close')).code, 1006);
  });

  it('a ws client (which answers pings) stays connected across several intervals', async (t) => {
    const { s, port, log } = await listening(t, { keepalive });
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    let pings = 0;
    await withTimeout(
      new Promise<void>((resolve) =>
        ws.on('ping', () => {
          if (++pings === 4) resolve();
        }),
      ),
      5_000,
      'four keepalive pings',
    );
    assert.equal(ws.readyState, WsClient.OPEN);
    assert.equal(log.all('close').length, 0);
    const echoed = clientMessage(ws);
    ws.send('still here');
    assert.equal((await echoed).data.toString(), 'still here');
  });

  it('a raw peer that answers every ping with a pong stays connected', async (t) => {
    const { s, port, log } = await listening(t, { keepalive });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    for (let i = 0; i < 3; i++) {
      const ping = await peer.readFrame();
      assert.equal(ping.opcode, PING);
      await peer.send({ opcode: 0xa, payload: ping.payload });
    }
    assert.equal(peer.ended, false);
    assert.equal(log.all('close').length, 0);
  });

  it('a timeout longer than the interval gives a pinged peer the whole timeout', async (t) => {
    const { s, port, log } = await listening(t, { keepalive: { interval: 50, timeout: 2_000 } });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ping = await peer.readFrame();
    assert.equal(ping.opcode, PING);
    // Several intervals pass in silence, well within the timeout; then the pong.
    await delay(300);
    await peer.send({ opcode: 0xa, payload: ping.payload });
    await peer.send({ opcode: 0x1, payload: 'alive' });
    let f = await peer.readFrame();
    while (f.opcode === PING) f = await peer.readFrame();
    assert.equal(f.payload.toString(), 'alive');
    assert.equal(log.all('close').length, 0);
  });

  it('a timeout longer than the interval still ends a silent peer', async (t) => {
    const { s, port, log } = await listening(t, { keepalive: { interval: 50, timeout: 300 } });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    assert.equal((await peer.readFrame()).opcode, PING);
    await peer.waitEnd(5_000);
    assert.equal((await log.first('close')).code, 1006);
  });

  it('also runs for connections handed over with handleUpgrade (no server option)', async (t) => {
    const s = scope(t);
    const log = new EventLog(echo());
    const wss = s.server(new WebSocketServer({ keepalive, handler: log.handler }));
    const http = createServer();
    http.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head));
    const port = await s.http(http);
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ping = await peer.readFrame();
    assert.equal(ping.opcode, PING);
    await peer.waitEnd(5_000);
  });
});

describe('Graceful shutdown: WebSocketServer.close()', () => {
  it('closes every client with 1001, terminates one that ignores it, resolves, and refuses new connections', async (t) => {
    const s = scope(t);
    const { wss, port, log } = await s.listen({ closeTimeout: 5_000 });
    const a = await s.client(`ws://127.0.0.1:${port}/`);
    const b = await s.client(`ws://127.0.0.1:${port}/`);
    const { peer: deaf } = await rawOpen(port, {}, { allowHalfOpen: true });
    s.peer(deaf);
    await log.nth('open', 3);
    const closedA = clientClosed(a);
    const closedB = clientClosed(b);
    const done = wss.close(300);
    assert.equal((await closedA).code, 1001);
    assert.equal((await closedB).code, 1001);
    assert.equal((await deaf.readClose()).code, 1001);
    await withTimeout(done, 5_000, 'close() to resolve');
    await deaf.waitEnd();
    assert.equal(wss.clients.size, 0);
    assert.equal(log.all('close').length, 3);
    await assert.rejects(RawPeer.connect(port), /ECONNREFUSED/);
  });

  it('refuses handshakes with 503 while it closes (attach mode)', async (t) => {
    const s = scope(t);
    const http = createServer((_req, res) => res.end('app'));
    const log = new EventLog(echo());
    const wss = s.server(new WebSocketServer({ server: http, handler: log.handler }));
    const port = await s.http(http);
    const { peer: deaf } = await rawOpen(port, {}, { allowHalfOpen: true });
    s.peer(deaf);
    await log.first('open');
    const done = wss.close(10_000);
    assert.equal((await deaf.readClose()).code, 1001);
    // The deaf client keeps the shutdown going: a handshake now is refused.
    const res = await rawRequest(port, upgradeRequest());
    assert.equal(res.status, 503);
    deaf.destroy();
    await withTimeout(done, 5_000, 'close() to resolve once the last client is gone');
    // The application's own routes are untouched.
    const app = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.equal(app.body, 'app');
  });

  it("an HTTP server's idle socket timeout (server.setTimeout) does not cut an open WebSocket (attach mode)", async (t) => {
    const s = scope(t);
    const http = createServer((_req, res) => res.end('app'));
    http.setTimeout(150);
    const log = new EventLog(echo());
    s.server(new WebSocketServer({ server: http, handler: log.handler, keepalive: false }));
    const port = await s.http(http);
    const { peer } = await rawOpen(port);
    s.peer(peer);
    await log.first('open');
    // Idle for several times the HTTP timeout: still open, still echoing.
    await delay(600);
    assert.equal(log.all('close').length, 0);
    await peer.send({ opcode: 0x1, payload: 'still here' });
    assert.equal((await peer.readFrame()).payload.toString('utf8'), 'still here');
  });

  it('resolves at once with no clients, and again when called twice', async (t) => {
    const { wss } = await listening(t);
    const first = wss.close();
    assert.equal(wss.close(), first);
    await withTimeout(first, 5_000, 'close()');
  });
});

describe('Backpressure: send() and drain', () => {
  it('send() returns Backpressure beyond highWaterMark; drain fires once the peer reads', async (t) => {
    const { s, port, log } = await listening(t, { highWaterMark: 64 * 1024 });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    peer.socket.pause();
    const server = (await log.first('open')).ws;
    assert.equal(server.bufferedAmount, 0);
    assert.equal(server.send(Buffer.alloc(1024)), SendResult.Sent, 'below the mark: no backpressure');
    const sent = 1024 + fillUntilBackpressure(server, Buffer.alloc(256 * 1024, 7));
    assert.ok(server.bufferedAmount > 64 * 1024, `bufferedAmount ${server.bufferedAmount}`);
    assert.equal(log.all('drain').length, 0);
    peer.socket.resume();
    await drainPeer(peer, sent);
    await log.first('drain');
    assert.ok(server.bufferedAmount <= 64 * 1024);
  });

  it('drain fires even when the kernel takes all the buffered bytes at once', async (t) => {
    const { s, port, log } = await listening(t, { highWaterMark: 16 * 1024 });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const server = (await log.first('open')).ws;
    assert.equal(server.send(Buffer.alloc(20 * 1024, 1)), SendResult.Backpressure);
    await drainPeer(peer, 20 * 1024);
    await log.first('drain');
    assert.equal(server.bufferedAmount, 0);
  });

  it('drain fires with a highWaterMark smaller than the socket\'s own', async (t) => {
    const { s, port, log } = await listening(t, { highWaterMark: 100 });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const server = (await log.first('open')).ws;
    assert.equal(server.send('x'.repeat(50)), SendResult.Sent);
    assert.equal(server.send('y'.repeat(200)), SendResult.Backpressure);
    await drainPeer(peer, 250);
    await log.first('drain');
  });

  it('drain is not called when no send reported backpressure', async (t) => {
    const { s, port, log } = await listening(t, { highWaterMark: 64 * 1024 * 1024 });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    peer.socket.pause();
    const server = (await log.first('open')).ws;
    // Far more than the kernel takes at once, far less than the mark.
    const big = Buffer.alloc(16 * 1024 * 1024, 2);
    assert.equal(server.send(big), SendResult.Sent);
    await delay(20);
    peer.socket.resume();
    await drainPeer(peer, big.length);
    // Round trip through the server so any pending drain call would have run.
    await peer.send({ opcode: PING, payload: 'sync' });
    assert.equal((await peer.readFrame()).opcode, 0xa);
    assert.equal(log.all('drain').length, 0);
  });

  it('bufferedAmount counts queued bytes and returns to 0 once written', async (t) => {
    const { s, port, log } = await listening(t);
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const server = (await log.first('open')).ws;
    server.send('hello');
    assert.equal(server.bufferedAmount, 7, '2-byte header + 5 bytes, queued until the flush');
    await peer.readFrame();
    assert.equal(server.bufferedAmount, 0);
  });
});

describe('Topics: publish / subscribe', () => {
  async function three(t: TestContext) {
    const { s, wss, port, log } = await listening(t);
    const clients = [await s.client(`ws://127.0.0.1:${port}/`), await s.client(`ws://127.0.0.1:${port}/`), await s.client(`ws://127.0.0.1:${port}/`)];
    await log.nth('open', 3);
    const servers = log.all('open').map((e) => e.ws);
    return { s, wss, log, clients, servers };
  }

  it('publish reaches every subscriber, text and binary, small and large', async (t) => {
    const { wss, clients, servers } = await three(t);
    for (const ws of servers) ws.subscribe('room');
    assert.equal(wss.subscriberCount('room'), 3);
    assert.equal(servers[0]?.isSubscribed('room'), true);
    const got = clients.map((c) => clientMessage(c));
    assert.equal(wss.publish('room', 'hello all'), 3);
    for (const m of await Promise.all(got)) assert.deepEqual([m.data.toString(), m.isBinary], ['hello all', false]);
    const big = Buffer.alloc(100_000, 9);
    const gotBig = clients.map((c) => clientMessage(c));
    assert.equal(wss.publish('room', big), 3);
    for (const m of await Promise.all(gotBig)) {
      assert.equal(m.isBinary, true);
      assert.ok(m.data.equals(big));
    }
  });

  it('publishing bytes as text requires UTF-8 (RFC 6455 §5.6), and a closed connection leaves its topics', async (t) => {
    const { wss, clients, servers } = await three(t);
    for (const ws of servers) ws.subscribe('room');
    assert.throws(() => wss.publish('room', Buffer.from([0xff, 0xfe]), { binary: false }), TypeError);
    const got = clients.slice(1).map((c) => clientMessage(c));
    clients[0]!.terminate();
    for (let i = 0; i < 100 && wss.subscriberCount('room') !== 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(wss.subscriberCount('room'), 2);
    assert.equal(wss.publish('room', Buffer.from('ok'), { binary: false }), 2);
    for (const m of await Promise.all(got)) assert.deepEqual([m.data.toString(), m.isBinary], ['ok', false]);
  });

  it('ServerWebSocket.publish excludes the sender', async (t) => {
    const { clients, servers } = await three(t);
    for (const ws of servers) ws.subscribe('room');
    const [c0, c1, c2] = clients as [WsClient, WsClient, WsClient];
    let senderGot = 0;
    c0.on('message', () => senderGot++);
    const got = [clientMessage(c1), clientMessage(c2)];
    assert.equal(servers[0]?.publish('room', 'from 0'), 2);
    for (const m of await Promise.all(got)) assert.equal(m.data.toString(), 'from 0');
    // A round trip on the sender's own connection shows nothing was queued for it first.
    const echoed = clientMessage(c0);
    c0.send('sync');
    assert.equal((await echoed).data.toString(), 'sync');
    assert.equal(senderGot, 1);
  });

  it('unsubscribe and closing remove a subscriber', async (t) => {
    const { wss, log, clients, servers } = await three(t);
    for (const ws of servers) ws.subscribe('room');
    servers[1]?.unsubscribe('room');
    assert.equal(servers[1]?.isSubscribed('room'), false);
    assert.equal(wss.subscriberCount('room'), 2);
    const closed = clientClosed(clients[2] as WsClient);
    clients[2]?.close(1000);
    await closed;
    await log.first('close');
    assert.equal(wss.subscriberCount('room'), 1);
    const got = clientMessage(clients[0] as WsClient);
    assert.equal(wss.publish('room', 'only one'), 1);
    assert.equal((await got).data.toString(), 'only one');
    assert.equal(wss.publish('nobody', 'x'), 0);
  });
});

describe('Handler exceptions close only that connection with 1011', () => {
  it('a throwing message handler: close 1011 to the client, the error handler gets the error', async (t) => {
    const boom = new Error('handler bug (expected by the test)');
    const { s, port, log } = await listening(t, {}, {
      message(ws, data) {
        if (data.toString() === 'boom') throw boom;
        ws.send(data);
      },
    });
    const bad = await s.client(`ws://127.0.0.1:${port}/`);
    const good = await s.client(`ws://127.0.0.1:${port}/`);
    const closed = clientClosed(bad);
    bad.send('boom');
    assert.equal((await closed).code, 1011);
    assert.equal((await log.first('error')).error, boom);
    await log.first('close');
    const echoed = clientMessage(good);
    good.send('fine');
    assert.equal((await echoed).data.toString(), 'fine');
  });

  it('a throwing open handler', async (t) => {
    const { s, port, log } = await listening(t, {}, {
      open() {
        throw new Error('open bug (expected by the test)');
      },
    });
    const ws = s.rawClient(`ws://127.0.0.1:${port}/`);
    assert.equal((await clientClosed(ws)).code, 1011);
    await log.first('error');
  });

  it('a throwing drain handler', async (t) => {
    const { s, port, log } = await listening(t, { highWaterMark: 1024 }, {
      drain() {
        throw new Error('drain bug (expected by the test)');
      },
    });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const server = (await log.first('open')).ws;
    assert.equal(server.send(Buffer.alloc(1024 * 1024)), SendResult.Backpressure);
    await drainPeer(peer, 1024 * 1024);
    await log.first('drain');
    assert.equal((await peer.readClose()).code, 1011);
    await log.first('error');
  });

  it('a throwing close handler reaches the error handler', async (t) => {
    const { s, port, log } = await listening(t, {}, {
      close() {
        throw new Error('close bug (expected by the test)');
      },
    });
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    ws.close(1000);
    assert.match((await log.first('error')).error.message, /close bug/);
  });

  it('without an error handler, the error is published on the diagnostics channel (and nothing is printed)', async (t) => {
    const s = scope(t);
    const wss = s.server(
      new WebSocketServer({
        handler: {
          message() {
            throw new Error('no error handler (expected by the test)');
          },
        },
      }),
    );
    const { port } = await wss.listen(0, '127.0.0.1');
    const printed = t.mock.method(console, 'error', () => {});
    const seen: Array<{ where: string; message: string }> = [];
    const listener = (m: unknown): void => {
      const { error, where } = m as { error: Error; where: string };
      seen.push({ where, message: error.message });
    };
    diagnostics_channel.subscribe(DiagnosticsChannel.HandlerError, listener);
    t.after(() => diagnostics_channel.unsubscribe(DiagnosticsChannel.HandlerError, listener));
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    const closed = clientClosed(ws);
    ws.send('x');
    assert.equal((await closed).code, 1011);
    assert.deepEqual(seen, [{ where: 'handler', message: 'no error handler (expected by the test)' }]);
    assert.equal(printed.mock.callCount(), 0);
  });
});

describe('Connection properties', () => {
  it('remoteAddress, remotePort, protocol and data', async (t) => {
    const { s, port, log } = await listening<{ id: number }>(t, { protocols: ['chat'] }, { upgrade: () => ({ accept: true, data: { id: 42 } }) });
    const ws = await s.client(`ws://127.0.0.1:${port}/`, ['other', 'chat']);
    assert.equal(ws.protocol, 'chat');
    const server = (await log.first('open')).ws;
    assert.equal(server.remoteAddress, '127.0.0.1');
    assert.equal(typeof server.remotePort, 'number');
    assert.equal(server.protocol, 'chat');
    assert.equal(server.extensions, '');
    assert.deepEqual(server.data, { id: 42 });
    assert.equal(server.readyState, 1);
  });

  it('the clients set tracks open connections', async (t) => {
    const { s, wss, port, log } = await listening(t);
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    await log.first('open');
    assert.equal(wss.clients.size, 1);
    ws.close();
    await log.first('close');
    assert.equal(wss.clients.size, 0);
  });

  it('ping() from the server reaches the client; its pong reaches the handler', async (t) => {
    const { s, port, log } = await listening(t);
    const ws = await s.client(`ws://127.0.0.1:${port}/`);
    const server = (await log.first('open')).ws;
    const pinged = withTimeout(new Promise<Buffer>((resolve) => ws.once('ping', resolve)), 5_000, 'ping');
    server.ping('are you there');
    assert.equal((await pinged).toString(), 'are you there');
    assert.equal((await log.first('pong')).payload.toString(), 'are you there');
    assert.throws(() => server.ping(Buffer.alloc(126)), RangeError);
  });
});
