/**
 * The seams issue 8 added to the server, over real streams: per-send
 * completion callbacks and `SendResult`; the `node:diagnostics_channel`
 * channels; and `acceptStream`, a connection over any Duplex whose
 * handshake another transport negotiated — a plain in-memory Duplex, and
 * an HTTP/2 extended CONNECT stream (RFC 8441).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { DiagnosticsChannel, ProtocolError, SendResult, WebSocketServer, type ServerWebSocket } from '../../src/index.js';
import { clientFrame } from '../helpers/frames.js';
import { LOOPBACK, WAIT_MS, rawOpen, rawRequest, until, upgradeRequest, withTimeout } from '../helpers/raw-client.js';
import { EventLog, echo, listening, scopeFor } from '../helpers/server-harness.js';
import { StreamPeer } from '../helpers/stream-peer.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;

/** Records what is published on `channel` while the test runs. */
function record<M>(t: TestContext, channel: string): M[] {
  const got: M[] = [];
  const listener = (m: unknown): void => void got.push(m as M);
  diagnostics_channel.subscribe(channel, listener);
  t.after(() => diagnostics_channel.unsubscribe(channel, listener));
  return got;
}

/** Calls of a send callback, by send. */
function callbacks(n: number): { cb: (i: number) => (err: Error | null) => void; calls: Array<Array<Error | null>> } {
  const calls: Array<Array<Error | null>> = Array.from({ length: n }, () => []);
  return { cb: (i) => (err) => void calls[i]?.push(err), calls };
}

describe('send(data, options, callback): completion', () => {
  it('the callback gets null once the bytes were written, once, and never synchronously', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    const { cb, calls } = callbacks(3);
    assert.equal(ws.send('one', undefined, cb(0)), SendResult.Sent);
    assert.equal(ws.send(Buffer.from([2]), {}, cb(1)), SendResult.Sent);
    assert.equal(ws.send('three', { binary: true }, cb(2)), SendResult.Sent);
    assert.deepEqual(calls, [[], [], []], 'not called before the write');
    await until('the callbacks', () => calls.every((c) => c.length > 0));
    assert.deepEqual(calls, [[null], [null], [null]]);
    for (const [opcode, payload] of [[TEXT, 'one'], [BINARY, Buffer.from([2])], [BINARY, 'three']] as const) {
      const f = await peer.readFrame();
      assert.equal(f.opcode, opcode);
      assert.deepEqual(f.payload, Buffer.from(payload));
    }
    assert.deepEqual(calls, [[null], [null], [null]], 'each exactly once');
  });

  it('after close(), send returns Dropped and its callback gets an Error', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    ws.close(1000);
    const { cb, calls } = callbacks(2);
    assert.equal(ws.send('late', undefined, cb(0)), SendResult.Dropped);
    assert.equal(ws.send(Buffer.from('late'), { binary: false }, cb(1)), SendResult.Dropped);
    await until('the callbacks', () => calls.every((c) => c.length > 0));
    for (const c of calls) {
      assert.equal(c.length, 1);
      assert.ok(c[0] instanceof Error);
    }
    assert.deepEqual(await peer.readClose(), { code: 1000, reason: '' });
    assert.equal(ws.send('after', undefined, cb(0)), SendResult.Dropped);
  });

  it('sends queued when the peer vanishes get an Error; those written before it get null; each exactly once', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    peer.socket.pause();
    const ws = (await log.first('open')).ws;
    // More than the kernel takes for a peer that reads nothing (a few MiB on loopback).
    const N = 24;
    const { cb, calls } = callbacks(N);
    for (let i = 0; i < N; i++) assert.notEqual(ws.send(Buffer.alloc(1024 * 1024, i), {}, cb(i)), SendResult.Dropped);
    await new Promise((resolve) => setTimeout(resolve, 50));
    peer.destroy();
    await log.first('close');
    await until('every callback', () => calls.every((c) => c.length > 0));
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const [i, c] of calls.entries()) assert.equal(c.length, 1, `callback ${i} called ${c.length} times`);
    const results = calls.map((c) => c[0] ?? null);
    assert.ok(results[N - 1] instanceof Error, 'the last send never reached the kernel');
    const firstError = results.findIndex((r) => r instanceof Error);
    assert.ok(results.slice(firstError).every((r) => r instanceof Error), 'once one failed, every later one failed');
  });

  it('a send queued and then cut off by terminate() gets an Error', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    const { cb, calls } = callbacks(1);
    assert.equal(ws.send('doomed', undefined, cb(0)), SendResult.Sent);
    ws.terminate();
    await until('the callback', () => calls[0]?.length === 1);
    assert.ok(calls[0]?.[0] instanceof Error);
  });
});

describe('SendResult', () => {
  it('has the documented values: Dropped 0 (falsy), Sent 1, Backpressure 2', () => {
    assert.deepEqual({ ...SendResult }, { Dropped: 0, Sent: 1, Backpressure: 2 });
  });

  it('Sent within the high-water mark, Backpressure beyond it (then drain), Dropped once closing', async (t) => {
    const { s, port, log } = await listening(t, { highWaterMark: 16 * 1024 }, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    assert.equal(ws.send('small'), SendResult.Sent);
    assert.equal(ws.send(Buffer.alloc(32 * 1024)), SendResult.Backpressure, '32 KiB queued against a 16 KiB mark');
    await log.first('drain');
    assert.equal((await peer.readFrame()).payload.toString(), 'small');
    assert.equal((await peer.readFrame()).payload.length, 32 * 1024);
    ws.close(4000);
    assert.equal(ws.send('x'), SendResult.Dropped);
    assert.equal(!ws.send('x'), true, 'Dropped reads as false');
  });
});

describe('diagnostics channels', () => {
  it('fullduplex:connection:open and :close carry the connection, its role, and the close code and reason', async (t) => {
    const opened = record<{ connection: unknown; role: string }>(t, DiagnosticsChannel.ConnectionOpen);
    const closed = record<{ connection: unknown; role: string; code: number; reason: string }>(t, DiagnosticsChannel.ConnectionClose);
    const { s, port, log } = await listening(t, {}, {});
    const a = await rawOpen(port);
    s.peer(a.peer);
    const wsA = (await log.nth('open', 1)).ws;
    const b = await rawOpen(port);
    s.peer(b.peer);
    const wsB = (await log.nth('open', 2)).ws;
    assert.deepEqual(opened.filter((m) => m.connection === wsA || m.connection === wsB), [
      { connection: wsA, role: 'server' },
      { connection: wsB, role: 'server' },
    ]);
    await a.peer.sendClose(4001, 'bye');
    assert.deepEqual(await a.peer.readClose(), { code: 4001, reason: 'bye' });
    await log.nth('close', 1);
    b.peer.destroy();
    await log.nth('close', 2);
    assert.deepEqual(closed.filter((m) => m.connection === wsA), [{ connection: wsA, role: 'server', code: 4001, reason: 'bye' }]);
    assert.deepEqual(closed.filter((m) => m.connection === wsB), [{ connection: wsB, role: 'server', code: 1006, reason: '' }], 'no close frame: 1006');
  });

  it('fullduplex:handshake:refused: 403 for an origin not allowed, 404 for a path with no endpoint', async (t) => {
    const refused = record<{ status: number; reason: string; url: string | undefined; remoteAddress: string | undefined }>(t, DiagnosticsChannel.HandshakeRefused);
    const { port } = await listening(t, { path: '/ws', allowedOrigins: ['http://good.example'] }, {});
    const bad = await rawRequest(port, upgradeRequest({ path: '/ws?room=1', headers: { Origin: 'http://evil.example' } }));
    assert.equal(bad.status, 403);
    const missing = await rawRequest(port, upgradeRequest({ path: '/other', headers: { Origin: 'http://good.example' } }));
    assert.equal(missing.status, 404);
    await until('two refusals', () => refused.length >= 2);
    assert.equal(refused.length, 2);
    const [origin, path] = refused;
    assert.ok(origin && path);
    assert.equal(origin.status, 403);
    assert.match(origin.reason, /origin/);
    assert.equal(origin.url, '/ws?room=1');
    assert.equal(origin.remoteAddress, LOOPBACK);
    assert.equal(path.status, 404);
    assert.equal(path.url, '/other');
    assert.equal(path.remoteAddress, LOOPBACK);
  });

  it('fullduplex:handshake:refused: a broken upgrade request Node hands to the request handler (no "Connection: Upgrade") is published too', async (t) => {
    const refused = record<{ status: number; reason: string; url: string | undefined }>(t, DiagnosticsChannel.HandshakeRefused);
    const { port } = await listening(t, {}, {});
    const response = await rawRequest(port, upgradeRequest({ path: '/broken', headers: { Connection: 'keep-alive' } }));
    assert.equal(response.status, 400, 'RFC 6455 §4.2.1: a handshake without Connection: Upgrade is refused');
    await until('the refusal event', () => refused.length > 0, 2_000).catch(() => undefined);
    assert.equal(refused.length, 1, 'every refused handshake reaches the channel');
    assert.equal(refused[0]?.status, 400);
    assert.equal(refused[0]?.url, '/broken');
  });

  it('fullduplex:protocol:error: an unmasked client frame is reported with closeCode 1002 (RFC 6455 §5.1), not as a handler error', async (t) => {
    const errors = record<{ connection: unknown; role: string; error: unknown }>(t, DiagnosticsChannel.ProtocolError);
    const handlerErrors = record<{ connection: unknown }>(t, DiagnosticsChannel.HandlerError);
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    await peer.send({ opcode: TEXT, payload: 'bare', mask: null });
    assert.equal((await peer.readClose()).code, 1002);
    await until('the protocol error event', () => errors.some((e) => e.connection === ws));
    const mine = errors.filter((e) => e.connection === ws);
    assert.equal(mine.length, 1);
    const [e] = mine;
    assert.ok(e);
    assert.equal(e.role, 'server');
    assert.ok(e.error instanceof ProtocolError);
    assert.equal(e.error.closeCode, 1002);
    assert.equal(handlerErrors.filter((h) => h.connection === ws).length, 0);
  });

  it('fullduplex:handler:error: a throwing message handler is reported with where "handler"; the peer gets 1011', async (t) => {
    const errors = record<{ connection: unknown; error: unknown; where: string }>(t, DiagnosticsChannel.HandlerError);
    const boom = new Error('handler bug');
    const sources: string[] = [];
    const { s, port, log } = await listening(t, {}, {
      message: () => {
        throw boom;
      },
      error: (_ws, _err, source) => void sources.push(source),
    });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    await peer.send({ opcode: TEXT, payload: 'trigger' });
    assert.equal((await peer.readClose()).code, 1011);
    await until('the handler error event', () => errors.some((e) => e.connection === ws));
    assert.deepEqual(
      errors.filter((e) => e.connection === ws),
      [{ connection: ws, error: boom, where: 'handler' }],
    );
    assert.deepEqual(sources, ['handler'], 'the error handler hears it too');
  });
});

describe('diagnostics channels: errors outside a message', () => {
  it('an upgrade hook that throws: 500, handler:error with connection null and where "upgrade", handshake:refused 500', async (t) => {
    const errors = record<{ connection: unknown; error: unknown; where: string }>(t, DiagnosticsChannel.HandlerError);
    const refused = record<{ status: number }>(t, DiagnosticsChannel.HandshakeRefused);
    const boom = new Error('auth service down');
    const { port } = await listening(t, {}, {
      upgrade: () => {
        throw boom;
      },
    });
    const response = await rawRequest(port, upgradeRequest());
    assert.equal(response.status, 500);
    await until('the events', () => errors.length > 0 && refused.length > 0);
    assert.deepEqual(errors, [{ connection: null, error: boom, where: 'upgrade' }]);
    assert.deepEqual(refused.map((r) => r.status), [500]);
  });

  it('a close handler that throws is reported with where "close"; an error handler that throws, with where "error"', async (t) => {
    const errors = record<{ connection: unknown; error: unknown; where: string }>(t, DiagnosticsChannel.HandlerError);
    const inClose = new Error('close bug');
    const inError = new Error('error handler bug');
    const { s, port, log } = await listening(t, {}, {
      close: () => {
        throw inClose;
      },
      error: () => {
        throw inError;
      },
    });
    const { peer } = await rawOpen(port);
    s.peer(peer);
    const ws = (await log.first('open')).ws;
    peer.destroy();
    await until('both events', () => errors.filter((e) => e.connection === ws).length >= 2);
    assert.deepEqual(
      errors.filter((e) => e.connection === ws),
      [
        { connection: ws, error: inClose, where: 'close' },
        { connection: ws, error: inError, where: 'error' },
      ],
    );
  });
});

/** An in-memory Duplex for the server and the two pipes behind it, for the peer. */
function duplexPair(): { server: Duplex; peer: StreamPeer } {
  const toServer = new PassThrough();
  const toPeer = new PassThrough();
  return { server: Duplex.from({ readable: toServer, writable: toPeer }), peer: new StreamPeer(toServer, toPeer) };
}

/** A server with a recording echo handler and no HTTP side, torn down after the test. */
function streamServer<T = unknown>(t: TestContext, options: ConstructorParameters<typeof WebSocketServer<T>>[0] = {}) {
  const s = scopeFor(t);
  const log = new EventLog<T>(echo<T>());
  const wss = s.server(new WebSocketServer<T>({ ...options, handler: log.handler }));
  return { s, log, wss };
}

describe('acceptStream: a connection over a Duplex another transport negotiated', () => {
  it('opens at once (no HTTP response is written), with the agreed protocol; messages flow both ways', async (t) => {
    const opened = record<{ connection: unknown }>(t, DiagnosticsChannel.ConnectionOpen);
    const { log, wss } = streamServer(t);
    const { server, peer } = duplexPair();
    const ws = wss.acceptStream(server, { protocol: 'chat' });
    assert.equal((await log.first('open')).ws, ws);
    assert.ok(opened.some((m) => m.connection === ws));
    assert.equal(ws.protocol, 'chat');
    assert.equal(ws.extensions, '');
    assert.equal(ws.readyState, 1);
    assert.ok(wss.clients.has(ws));

    ws.send('hello peer');
    await until('bytes from the server', () => peer.firstByte !== undefined);
    assert.equal(peer.firstByte, 0x81, 'the first byte is a frame header (FIN, text), not "HTTP/1.1"');
    const greeting = await peer.readFrame();
    assert.equal(greeting.opcode, TEXT);
    assert.equal(greeting.masked, false);
    assert.equal(greeting.payload.toString(), 'hello peer');

    peer.send({ opcode: TEXT, payload: 'héllo server' });
    peer.send({ opcode: BINARY, payload: Buffer.from([0, 1, 2, 255]) });
    const m1 = await log.nth('message', 1);
    assert.equal(m1.data.toString('utf8'), 'héllo server');
    assert.equal(m1.isBinary, false);
    const echoed = await peer.readFrame();
    assert.equal(echoed.payload.toString('utf8'), 'héllo server');
    const bin = await peer.readFrame();
    assert.equal(bin.opcode, BINARY);
    assert.deepEqual(bin.payload, Buffer.from([0, 1, 2, 255]));
  });

  it('parses the head bytes that came with the handshake first', async (t) => {
    const { log, wss } = streamServer(t);
    const { server, peer } = duplexPair();
    wss.acceptStream(server, { head: clientFrame({ opcode: TEXT, payload: 'early' }) });
    peer.send({ opcode: TEXT, payload: 'later' });
    assert.equal((await log.nth('message', 1)).data.toString(), 'early');
    assert.equal((await log.nth('message', 2)).data.toString(), 'later');
  });

  it('the closing handshake: the peer closes, the server echoes code and reason, ends the stream, and reports the close', async (t) => {
    const closed = record<{ connection: unknown; code: number; reason: string }>(t, DiagnosticsChannel.ConnectionClose);
    const { log, wss } = streamServer(t);
    const { server, peer } = duplexPair();
    const ws = wss.acceptStream(server);
    peer.sendClose(1000, 'bye');
    assert.deepEqual(await peer.readClose(), { code: 1000, reason: 'bye' });
    await peer.waitEnd();
    peer.end();
    const ev = await log.first('close');
    assert.equal(ev.ws, ws);
    assert.equal(ev.code, 1000);
    assert.equal(ev.reason, 'bye');
    assert.equal(ws.readyState, 3);
    assert.deepEqual(closed.filter((m) => m.connection === ws).map((m) => [m.code, m.reason]), [[1000, 'bye']]);
    assert.equal(wss.clients.has(ws), false);
  });

  it('the closing handshake started by the server', async (t) => {
    const { log, wss } = streamServer(t);
    const { server, peer } = duplexPair();
    const ws = wss.acceptStream(server);
    ws.close(4000, 'done');
    assert.deepEqual(await peer.readClose(), { code: 4000, reason: 'done' });
    peer.sendClose(4000, 'done');
    await peer.waitEnd();
    peer.end();
    const ev = await log.first('close');
    assert.equal(ev.code, 4000);
    assert.equal(ev.reason, 'done');
  });

  it('a peer that breaks the protocol is failed with 1002 over the stream too', async (t) => {
    const { log, wss } = streamServer(t);
    const { server, peer } = duplexPair();
    wss.acceptStream(server);
    peer.send({ opcode: TEXT, payload: 'bare', mask: null });
    assert.equal((await peer.readClose()).code, 1002);
    await peer.waitEnd();
    peer.end();
    assert.equal((await log.first('close')).code, 1006, 'the peer sent no close frame');
  });

  it('permessage-deflate agreed elsewhere: compressed frames both ways (RFC 7692)', async (t) => {
    const { log, wss } = streamServer(t, { perMessageDeflate: true });
    const { server, peer } = duplexPair();
    const ws = wss.acceptStream(server, { extensions: 'permessage-deflate; server_no_context_takeover' });
    assert.equal(ws.extensions, 'permessage-deflate; server_no_context_takeover');
    // "Hello" compressed, from RFC 7692 §7.2.3.1.
    peer.send({ opcode: TEXT, rsv1: true, payload: Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]) });
    assert.equal((await log.first('message')).data.toString(), 'Hello');
    const echoed = await peer.readFrame();
    assert.equal(echoed.payload.toString(), 'Hello', 'below the threshold the echo goes uncompressed');
    assert.equal(echoed.rsv, 0);
    const large = 'compress me '.repeat(500);
    ws.send(large);
    const f = await peer.readFrame();
    assert.equal(f.rsv, 4, 'RSV1: compressed');
    assert.ok(f.payload.length < large.length / 4);
  });

  it('refuses an extensions value that does not parse (TypeError), and any stream while shutting down', async (t) => {
    const { wss } = streamServer(t, { perMessageDeflate: true });
    assert.throws(() => wss.acceptStream(duplexPair().server, { extensions: 'permessage-deflate;' }), TypeError);
    const closing = wss.close(100);
    assert.throws(() => wss.acceptStream(duplexPair().server), Error);
    await closing;
  });
});

describe('RFC 8441: WebSocket over an HTTP/2 extended CONNECT stream', () => {
  it('a node:http2 client opens a CONNECT :protocol websocket stream; the server accepts it with acceptStream; echo and close', async (t) => {
    const { log, wss } = streamServer(t);
    const h2 = http2.createServer({ settings: { enableConnectProtocol: true } });
    const accepted: ServerWebSocket[] = [];
    h2.on('stream', (stream, headers) => {
      // RFC 8441 §4: the extended CONNECT request names the protocol; §5: 200 accepts it.
      if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket' || headers['sec-websocket-version'] !== '13') {
        stream.respond({ ':status': 400 });
        stream.end();
        return;
      }
      const offered = String(headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((p) => p.trim());
      const protocol = offered.find((p) => p === 'chat');
      stream.respond(protocol === undefined ? { ':status': 200 } : { ':status': 200, 'sec-websocket-protocol': protocol });
      accepted.push(wss.acceptStream(stream, { protocol }));
    });
    const port = await new Promise<number>((resolve, reject) => {
      h2.once('error', reject);
      h2.listen(0, LOOPBACK, () => resolve((h2.address() as AddressInfo).port));
    });
    const session = http2.connect(`http://${LOOPBACK}:${port}`);
    t.after(async () => {
      session.destroy();
      await new Promise<void>((resolve) => h2.close(() => resolve()));
    });
    // RFC 8441 §3: a client may use :protocol only after the server's SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
    const settings = await withTimeout(new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve)), WAIT_MS, 'the server SETTINGS');
    assert.equal(settings.enableConnectProtocol, true);

    const req = session.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'http',
      ':path': '/chat',
      ':authority': `${LOOPBACK}:${port}`,
      'sec-websocket-version': '13',
      'sec-websocket-protocol': 'superchat, chat',
    });
    const response = await withTimeout(new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve)), WAIT_MS, 'the CONNECT response');
    assert.equal(response[':status'], 200);
    assert.equal(response['sec-websocket-protocol'], 'chat');
    const peer = new StreamPeer(req, req);
    const ws = (await log.first('open')).ws;
    assert.equal(accepted[0], ws);
    assert.equal(ws.protocol, 'chat');

    peer.send({ opcode: TEXT, payload: 'over h2' });
    const f = await peer.readFrame();
    assert.equal(f.opcode, TEXT);
    assert.equal(f.masked, false);
    assert.equal(f.payload.toString(), 'over h2');
    const big = Buffer.alloc(200_000, 7);
    peer.send({ opcode: BINARY, payload: big });
    const g = await peer.readFrame();
    assert.equal(g.opcode, BINARY);
    assert.ok(g.payload.equals(big), 'a message larger than the HTTP/2 flow-control window arrives whole');

    peer.sendClose(1000, 'h2 bye');
    assert.deepEqual(await peer.readClose(), { code: 1000, reason: 'h2 bye' });
    await peer.waitEnd();
    peer.end();
    const ev = await log.first('close');
    assert.equal(ev.code, 1000);
    assert.equal(ev.reason, 'h2 bye');
    assert.equal(wss.clients.size, 0);
  });
});
