/**
 * The client over real loopback sockets. A raw TCP peer answers the opening
 * handshake by hand and reads and writes frames byte for byte, so each test
 * can break exactly one rule of RFC 6455 and assert the exact events (WHATWG
 * WebSockets § Feedback from the protocol), close code and bytes that follow.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocket, type WebSocketOptions } from '../../src/index.js';
import { closeFrameOf, closePayload, serverFrame, buildFrame } from '../helpers/frames.js';
import { ClientLog, LOOPBACK, RawPeer, Scope, acceptFor, closedPort, withTimeout } from '../helpers/client-peer.js';
import { assertFailed, connectRaw, openRaw, scope, type Opened } from '../helpers/client-raw.js';
import { TLS_CERT, TLS_KEY } from '../helpers/client-tls.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;
const CONTINUATION = 0x0;

describe('RFC 6455 §4.1: the opening handshake request', () => {
  it('sends GET with the resource name, Host, Upgrade, Connection, a fresh key and version 13', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    s.client(new WebSocket(server.url('/chat?room=1&x=%20'), undefined, { closeTimeout: 500 }));
    const peer = await server.next();
    const req = await peer.readRequest();
    assert.equal(req.method, 'GET');
    assert.equal(req.target, '/chat?room=1&x=%20');
    assert.equal(req.version, 'HTTP/1.1');
    assert.equal(req.headers.get('host'), `${LOOPBACK}:${server.port}`);
    assert.equal(req.headers.get('upgrade'), 'websocket');
    assert.equal(req.headers.get('connection'), 'Upgrade');
    assert.equal(req.headers.get('sec-websocket-version'), '13');
    const key = req.headers.get('sec-websocket-key') ?? '';
    assert.equal(Buffer.from(key, 'base64').length, 16);
    assert.equal(Buffer.from(key, 'base64').toString('base64'), key);
    assert.equal(req.headers.has('sec-websocket-protocol'), false);
    // WHATWG "establish a WebSocket connection": the user agent offers permessage-deflate.
    assert.equal(req.headers.get('sec-websocket-extensions'), 'permessage-deflate; client_max_window_bits');
    assert.equal(req.headers.has('origin'), false);
  });

  it('offers no extension with perMessageDeflate: false', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    s.client(new WebSocket(server.url(), undefined, { perMessageDeflate: false, closeTimeout: 500 }));
    const req = await (await server.next()).readRequest();
    assert.equal(req.headers.has('sec-websocket-extensions'), false);
  });

  it('uses a new key for every connection', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    s.client(new WebSocket(server.url()));
    s.client(new WebSocket(server.url()));
    const a = await (await server.next()).readRequest();
    const b = await (await server.next()).readRequest();
    assert.notEqual(a.headers.get('sec-websocket-key'), b.headers.get('sec-websocket-key'));
  });

  it('offers the protocols in order in Sec-WebSocket-Protocol', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    s.client(new WebSocket(server.url(), ['v2.chat', 'v1.chat']));
    const req = await (await server.next()).readRequest();
    assert.equal(req.headers.get('sec-websocket-protocol'), 'v2.chat, v1.chat');
  });

  it('sends the origin option and extra headers, but never lets headers replace the handshake ones', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    s.client(
      new WebSocket(server.url(), ['p'], {
        origin: 'https://app.example',
        headers: {
          Authorization: 'Bearer token',
          'X-Custom': ['a', 'b'],
          'sec-websocket-key': 'AAAAAAAAAAAAAAAAAAAAAA==',
          Upgrade: 'h2c',
          'Sec-WebSocket-Protocol': 'evil',
          'Sec-WebSocket-Extensions': 'permessage-deflate',
        },
      }),
    );
    const req = await (await server.next()).readRequest();
    assert.equal(req.headers.get('origin'), 'https://app.example');
    assert.equal(req.headers.get('authorization'), 'Bearer token');
    assert.equal(req.headers.get('x-custom'), 'a, b');
    assert.notEqual(req.headers.get('sec-websocket-key'), 'AAAAAAAAAAAAAAAAAAAAAA==');
    assert.equal(req.headers.get('upgrade'), 'websocket');
    assert.equal(req.headers.get('sec-websocket-protocol'), 'p');
    assert.equal(req.headers.get('sec-websocket-extensions'), 'permessage-deflate; client_max_window_bits');
  });
  it('uses the agent option for the handshake; the upgraded socket leaves the agent', async (t) => {
    const agent = new http.Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    let created = 0;
    const original = agent.createConnection.bind(agent);
    agent.createConnection = (...args: Parameters<typeof original>) => {
      created++;
      return original(...args);
    };
    const { ws, log, peer } = await connectRaw(t, {}, { agent });
    await log.first('open');
    assert.equal(created, 1);
    assert.equal(Object.keys(agent.sockets).length, 0);
    assert.equal(Object.keys(agent.freeSockets).length, 0);
    ws.send('via agent');
    assert.equal((await peer.readFrame()).payload.toString(), 'via agent');
  });

  it('throws TypeError from the constructor for a header value with CR/LF', () => {
    assert.throws(() => new WebSocket('ws://127.0.0.1:9/', [], { origin: 'https://a\r\nX-Evil: 1' }), TypeError);
    assert.throws(() => new WebSocket('ws://127.0.0.1:9/', [], { headers: { 'X-A': 'a\nb' } }), TypeError);
  });
});

describe('RFC 6455 §4.1: validating the server response', () => {
  it('opens on a correct 101: readyState OPEN, open event, protocol chosen by the server', async (t) => {
    const { ws, log } = await connectRaw(t, { headers: { 'Sec-WebSocket-Protocol': 'v1.chat' } }, {}, ['v2.chat', 'v1.chat']);
    const open = await log.first('open');
    assert.equal(open.readyState, WebSocket.OPEN);
    assert.equal(ws.readyState, WebSocket.OPEN);
    assert.equal(ws.protocol, 'v1.chat');
    assert.equal(ws.extensions, '');
  });

  it('fails on a wrong Sec-WebSocket-Accept: error, then close 1006', async (t) => {
    const { log, peer } = await connectRaw(t, { accept: acceptFor('dGhlIHNhbXBsZSBub25jZQ==') });
    await assertFailed(log, /Sec-WebSocket-Accept/);
    assert.deepEqual(log.types(), ['error', 'close']);
    await peer.waitClosed();
  });

  it('fails on a missing Sec-WebSocket-Accept', async (t) => {
    const { log } = await connectRaw(t, { accept: null });
    await assertFailed(log, /Sec-WebSocket-Accept/);
  });

  it('fails on a 101 without "Upgrade: websocket"', async (t) => {
    const { log } = await connectRaw(t, { omitUpgrade: true });
    await assertFailed(log, /Upgrade/);
  });

  it('fails on a 101 without "Connection: Upgrade"', async (t) => {
    const { log } = await connectRaw(t, { omitConnection: true });
    await assertFailed(log, /Connection|Upgrade/);
  });

  for (const status of ['200 OK', '403 Forbidden', '404 Not Found', '302 Found', '500 Internal Server Error']) {
    it(`fails on status ${status}`, async (t) => {
      const { log } = await connectRaw(t, { status, headers: { 'Content-Length': '0' } });
      await assertFailed(log, new RegExp(`status ${status.slice(0, 3)}`));
      assert.deepEqual(log.types(), ['error', 'close']);
    });
  }

  it('fails when the server picks a subprotocol the client did not offer', async (t) => {
    const { log, ws } = await connectRaw(t, { headers: { 'Sec-WebSocket-Protocol': 'other' } }, {}, ['chat']);
    await assertFailed(log, /subprotocol/);
    assert.equal(ws.protocol, '');
  });

  it('fails when the server picks a subprotocol and none was offered', async (t) => {
    const { log } = await connectRaw(t, { headers: { 'Sec-WebSocket-Protocol': 'chat' } });
    await assertFailed(log, /subprotocol/);
  });

  it('fails when the server accepts an extension the client did not offer', async (t) => {
    const { log } = await connectRaw(t, { headers: { 'Sec-WebSocket-Extensions': 'x-webkit-deflate-frame' } });
    await assertFailed(log, /extension/);
  });

  it('fails when the server accepts permessage-deflate the client did not offer (perMessageDeflate: false)', async (t) => {
    const { log } = await connectRaw(t, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } }, { perMessageDeflate: false });
    await assertFailed(log, /extension/);
  });

  it('fails when the server answers the permessage-deflate offer with parameters RFC 7692 forbids', async (t) => {
    const { log } = await connectRaw(t, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=16' } });
    await assertFailed(log, /permessage-deflate/);
  });

  it('delivers frames that arrive in the same packet as the 101, after open', async (t) => {
    const trailing = Buffer.concat([serverFrame({ opcode: TEXT, payload: 'early' }), serverFrame({ opcode: TEXT, payload: 'bird' })]);
    const { log } = await connectRaw(t, { trailing });
    assert.equal(await log.message(2), 'bird');
    assert.deepEqual(log.types(), ['open', 'message', 'message']);
    assert.equal(await log.message(1), 'early');
  });

  it('fails with a clear message when the server never answers (handshakeTimeout)', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    const ws = s.client(new WebSocket(server.url(), undefined, { handshakeTimeout: 150 }));
    const log = new ClientLog(ws);
    const peer = await server.next();
    await peer.readRequest();
    await assertFailed(log, /handshake timed out after 150 ms/);
    await peer.waitClosed();
  });

  it('fails with ECONNREFUSED when nothing listens', async (t) => {
    const s = scope(t);
    const port = await closedPort();
    const ws = s.client(new WebSocket(`ws://${LOOPBACK}:${port}/`));
    const log = new ClientLog(ws);
    await assertFailed(log, /ECONNREFUSED/);
    assert.deepEqual(log.types(), ['error', 'close']);
    const error = log.all('error')[0];
    assert.equal((error?.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED');
  });

  it('fails when the server closes the connection instead of answering', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    const ws = s.client(new WebSocket(server.url()));
    const log = new ClientLog(ws);
    const peer = await server.next();
    await peer.readRequest();
    peer.destroy();
    await assertFailed(log);
  });
});

describe('wss: TLS', () => {
  async function tlsServer(s: Scope): Promise<{ port: number; peers: RawPeer[] }> {
    const peers: RawPeer[] = [];
    const server = tls.createServer({ cert: TLS_CERT, key: TLS_KEY }, (socket) => {
      const peer = new RawPeer(socket);
      peers.push(peer);
      void peer.handshake().catch(() => {});
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
    s.add(
      () =>
        new Promise<void>((resolve) => {
          for (const p of peers) p.destroy();
          server.close(() => resolve());
        }),
    );
    const address = server.address();
    assert.ok(address !== null && typeof address !== 'string');
    return { port: address.port, peers };
  }

  it('opens over TLS with the tls.ca option and exchanges frames', async (t) => {
    const s = scope(t);
    const { port, peers } = await tlsServer(s);
    const ws = s.client(new WebSocket(`wss://${LOOPBACK}:${port}/`, undefined, { tls: { ca: TLS_CERT }, closeTimeout: 500 }));
    const log = new ClientLog(ws);
    await log.first('open');
    const peer = peers[0];
    assert.ok(peer !== undefined);
    ws.send('over tls');
    const frame = await peer.readFrame();
    assert.equal(frame.payload.toString(), 'over tls');
    peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(1000) }));
    await peer.readFrame();
    peer.end();
    const closed = await log.closed();
    assert.equal(closed.wasClean, true);
  });

  it('fails (error, close 1006) when the certificate is not trusted', async (t) => {
    const s = scope(t);
    const { port } = await tlsServer(s);
    const ws = s.client(new WebSocket(`wss://${LOOPBACK}:${port}/`));
    const log = new ClientLog(ws);
    await assertFailed(log, /certificate/i);
  });

  it('fails (error, close 1006) when the server does not speak TLS', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    const ws = s.client(new WebSocket(`wss://${LOOPBACK}:${server.port}/`));
    const log = new ClientLog(ws);
    const peer = await server.next();
    peer.write('HTTP/1.1 400 Bad Request\r\n\r\n');
    await assertFailed(log);
  });
});

describe('RFC 6455 §5.3: client frames are masked', () => {
  it('masks every frame with a fresh key and the server reads the payload back', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send('one');
    ws.send('two');
    ws.send(new Uint8Array([1, 2, 3]));
    const frames = [await peer.readFrame(), await peer.readFrame(), await peer.readFrame()];
    for (const f of frames) {
      assert.equal(f.masked, true);
      assert.equal(f.fin, true);
    }
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.payload.toString('hex')]),
      [
        [TEXT, Buffer.from('one').toString('hex')],
        [TEXT, Buffer.from('two').toString('hex')],
        [BINARY, '010203'],
      ],
    );
    const keys = new Set(frames.map((f) => f.maskKey?.toString('hex')));
    assert.equal(keys.size, 3);
  });

  it('does not change the caller\'s buffer', async (t) => {
    const { ws, peer } = await openRaw(t);
    const data = new Uint8Array(40_000).fill(7);
    ws.send(data);
    const f = await peer.readFrame();
    assert.equal(f.payload.length, 40_000);
    assert.ok(data.every((b) => b === 7));
  });
});

describe('RFC 6455 §5.4-5.5: messages and control frames from the server', () => {
  it('assembles a fragmented message', async (t) => {
    const { peer, log } = await openRaw(t);
    peer.write(
      Buffer.concat([
        serverFrame({ opcode: TEXT, fin: false, payload: 'frag' }),
        serverFrame({ opcode: PING, payload: 'in between' }),
        serverFrame({ opcode: CONTINUATION, fin: false, payload: 'men' }),
        serverFrame({ opcode: CONTINUATION, fin: true, payload: 'ted' }),
      ]),
    );
    assert.equal(await log.message(1), 'fragmented');
  });

  it('answers a ping with a pong carrying the same payload', async (t) => {
    const { peer } = await openRaw(t);
    peer.write(serverFrame({ opcode: PING, payload: 'are you there' }));
    const f = await peer.readFrame();
    assert.equal(f.opcode, PONG);
    assert.equal(f.masked, true);
    assert.equal(f.payload.toString(), 'are you there');
  });

  it('ignores an unsolicited pong', async (t) => {
    const { peer, log, ws } = await openRaw(t);
    peer.write(Buffer.concat([serverFrame({ opcode: PONG, payload: 'beat' }), serverFrame({ opcode: TEXT, payload: 'after' })]));
    assert.equal(await log.message(1), 'after');
    assert.equal(ws.readyState, WebSocket.OPEN);
  });

  it('gives the message origin as the serialisation of the URL\'s origin', async (t) => {
    const { peer, log, server } = await openRaw(t);
    peer.write(serverFrame({ opcode: TEXT, payload: 'x' }));
    const m = await log.first('message');
    assert.equal(m.origin, `ws://${LOOPBACK}:${server.port}`);
  });
});

describe('WHATWG § binaryType: the data of binary messages', () => {
  const bytes = Buffer.from([0, 1, 2, 250, 255]);

  it('"blob" (the default) gives a Blob', async (t) => {
    const { peer, log } = await openRaw(t);
    peer.write(serverFrame({ opcode: BINARY, payload: bytes }));
    const data = await log.message(1);
    assert.ok(data instanceof Blob);
    assert.equal(data.size, 5);
    assert.deepEqual(Buffer.from(await data.arrayBuffer()), bytes);
  });

  it('"arraybuffer" gives an ArrayBuffer holding exactly the message', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.binaryType = 'arraybuffer';
    peer.write(Buffer.concat([serverFrame({ opcode: BINARY, payload: bytes }), serverFrame({ opcode: BINARY, payload: Buffer.alloc(0) })]));
    const data = await log.message(1);
    assert.ok(data instanceof ArrayBuffer);
    assert.deepEqual(Buffer.from(data), bytes);
    const empty = await log.message(2);
    assert.ok(empty instanceof ArrayBuffer);
    assert.equal(empty.byteLength, 0);
  });

  it('"arraybuffer" works for a fragmented message too', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.binaryType = 'arraybuffer';
    peer.write(serverFrame({ opcode: BINARY, fin: false, payload: bytes.subarray(0, 2) }));
    peer.write(serverFrame({ opcode: CONTINUATION, payload: bytes.subarray(2) }));
    const data = await log.message(1);
    assert.ok(data instanceof ArrayBuffer);
    assert.deepEqual(Buffer.from(data), bytes);
  });

  it('"nodebuffer" gives a Buffer', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.binaryType = 'nodebuffer';
    peer.write(serverFrame({ opcode: BINARY, payload: bytes }));
    const data = await log.message(1);
    assert.ok(Buffer.isBuffer(data));
    assert.deepEqual(data, bytes);
  });

  it('text is a string whatever the binaryType', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.binaryType = 'arraybuffer';
    peer.write(serverFrame({ opcode: TEXT, payload: 'h\u00e9llo \u{1f600}' }));
    assert.equal(await log.message(1), 'h\u00e9llo \u{1f600}');
  });

  it('takes the binaryType at the time the message is dispatched', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.binaryType = 'nodebuffer';
    ws.addEventListener('message', () => {
      ws.binaryType = 'arraybuffer';
    });
    peer.write(Buffer.concat([serverFrame({ opcode: BINARY, payload: bytes }), serverFrame({ opcode: BINARY, payload: bytes })]));
    assert.ok(Buffer.isBuffer(await log.message(1)));
    assert.ok((await log.message(2)) instanceof ArrayBuffer);
  });
});

describe('RFC 6455 §7.1.7: the client fails the connection on a protocol error', () => {
  async function failsWith(t: TestContext, bytes: Buffer, code: number, options: WebSocketOptions = {}): Promise<Opened> {
    const o = await openRaw(t, options);
    o.peer.write(bytes);
    const close = await o.peer.readFrame();
    assert.equal(close.opcode, CLOSE);
    assert.equal(close.masked, true);
    assert.equal(closeFrameOf(close).code, code);
    assert.equal(o.ws.readyState, WebSocket.CLOSING);
    // The server answers and closes TCP, as RFC 6455 §7.1.1 asks.
    o.peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(code) }));
    o.peer.end();
    await assertFailed(o.log);
    return o;
  }

  it('a masked frame from the server → close 1002, then error and close 1006', async (t) => {
    await failsWith(t, buildFrame({ opcode: TEXT, payload: 'hidden', mask: [1, 2, 3, 4] }), 1002);
  });

  it('a reserved opcode → 1002', async (t) => {
    await failsWith(t, serverFrame({ opcode: 0x3, payload: 'x' }), 1002);
  });

  it('RSV1 without a negotiated extension → 1002', async (t) => {
    await failsWith(t, serverFrame({ opcode: TEXT, rsv1: true, payload: 'x' }), 1002);
  });

  it('a text message that is not UTF-8 → 1007', async (t) => {
    const o = await failsWith(t, serverFrame({ opcode: TEXT, payload: Buffer.from([0x68, 0xc3, 0x28]) }), 1007);
    assert.equal(o.log.all('message').length, 0);
  });

  it('a close reason that is not UTF-8 → 1007', async (t) => {
    await failsWith(t, serverFrame({ opcode: CLOSE, payload: Buffer.from([0x03, 0xe8, 0xff]) }), 1007);
  });

  it('a message over maxPayload → 1009', async (t) => {
    const o = await failsWith(t, serverFrame({ opcode: BINARY, payload: Buffer.alloc(1025) }), 1009, { maxPayload: 1024 });
    assert.equal(o.log.all('message').length, 0);
  });

  it('a message of exactly maxPayload is delivered', async (t) => {
    const { peer, log, ws } = await openRaw(t, { maxPayload: 1024 });
    ws.binaryType = 'nodebuffer';
    peer.write(serverFrame({ opcode: BINARY, payload: Buffer.alloc(1024, 1) }));
    const data = await log.message(1);
    assert.ok(Buffer.isBuffer(data));
    assert.equal(data.length, 1024);
  });

  it('the error event says what went wrong', async (t) => {
    const o = await failsWith(t, buildFrame({ opcode: TEXT, payload: 'hidden', mask: [1, 2, 3, 4] }), 1002);
    assert.match(o.log.all('error')[0]?.message ?? '', /masked/);
  });

  it('after failing, waits closeTimeout for the server to close TCP, then closes it itself', async (t) => {
    const { peer, log } = await openRaw(t, { closeTimeout: 100 });
    peer.write(serverFrame({ opcode: 0x3 }));
    const close = await peer.readFrame();
    assert.equal(closeFrameOf(close).code, 1002);
    // The server neither answers nor closes: the client closes TCP after its closeTimeout.
    await peer.waitEnd();
    await assertFailed(log);
  });
});

describe('RFC 6455 §7: the closing handshake started by the server', () => {
  it('echoes the status code, waits for the server to close TCP, and closes cleanly with the code and reason', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(4001, 'server says bye \u{1f44b}') }));
    const echo = await peer.readFrame();
    assert.equal(echo.opcode, CLOSE);
    assert.equal(echo.masked, true);
    assert.equal(closeFrameOf(echo).code, 4001);
    assert.equal(ws.readyState, WebSocket.CLOSING);
    assert.equal(peer.ended, false, 'the client waits for the server to close TCP first');
    peer.end();
    const closed = await log.closed();
    assert.deepEqual(log.types(), ['open', 'close']);
    assert.equal(closed.wasClean, true);
    assert.equal(closed.code, 4001);
    assert.equal(closed.reason, 'server says bye \u{1f44b}');
    assert.equal(ws.readyState, WebSocket.CLOSED);
    await peer.waitClosed();
  });

  it('a close frame without a status gives 1005 and an empty echo', async (t) => {
    const { peer, log } = await openRaw(t);
    peer.write(serverFrame({ opcode: CLOSE }));
    const echo = await peer.readFrame();
    assert.equal(echo.payload.length, 0);
    peer.end();
    const closed = await log.closed();
    assert.equal(closed.code, 1005);
    assert.equal(closed.reason, '');
    assert.equal(closed.wasClean, true);
  });

  it('a close frame and FIN in one packet close cleanly', async (t) => {
    const { peer, log } = await openRaw(t);
    peer.socket.end(serverFrame({ opcode: CLOSE, payload: closePayload(1001, 'going away') }));
    const closed = await log.closed();
    assert.equal(closed.code, 1001);
    assert.equal(closed.wasClean, true);
  });

  it('a server that never closes TCP after the handshake is cut off after closeTimeout (still clean)', async (t) => {
    const { peer, log } = await openRaw(t, { closeTimeout: 100 });
    peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(1000) }));
    await peer.readFrame();
    await peer.waitEnd();
    const closed = await log.closed();
    assert.equal(closed.wasClean, true);
    assert.equal(closed.code, 1000);
  });

  it('messages after the server\'s close frame are not read; sends are not sent but counted', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    peer.write(
      Buffer.concat([serverFrame({ opcode: CLOSE, payload: closePayload(1000) }), serverFrame({ opcode: TEXT, payload: 'too late' })]),
    );
    await peer.readFrame();
    ws.send('ignored');
    assert.equal(ws.bufferedAmount, 7);
    peer.end();
    await log.closed();
    assert.equal(log.all('message').length, 0);
    assert.equal(peer.unread, 0, 'nothing was sent after the close frame');
  });
});

describe('RFC 6455 §7 / WHATWG § close(): the closing handshake started by the client', () => {
  it('close(code, reason) sends them, waits for the answer, and closes cleanly with the server\'s code', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(4000, 'done here');
    assert.equal(ws.readyState, WebSocket.CLOSING);
    const f = await peer.readFrame();
    assert.deepEqual(closeFrameOf(f), { code: 4000, reason: 'done here' });
    peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(4000, 'ok') }));
    peer.end();
    const closed = await log.closed();
    assert.deepEqual(log.types(), ['open', 'close']);
    assert.equal(closed.wasClean, true);
    assert.equal(closed.code, 4000);
    assert.equal(closed.reason, 'ok');
  });

  it('close() without arguments sends a close frame without a body', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close();
    const f = await peer.readFrame();
    assert.equal(f.payload.length, 0);
    peer.write(serverFrame({ opcode: CLOSE }));
    peer.end();
    assert.equal((await log.closed()).code, 1005);
  });

  it('close(undefined, reason) sends code 1000 with the reason', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.close(undefined, 'just a reason');
    assert.deepEqual(closeFrameOf(await peer.readFrame()), { code: 1000, reason: 'just a reason' });
  });

  it('messages that arrive after close() are not dispatched', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(1000);
    await peer.readFrame();
    peer.write(serverFrame({ opcode: TEXT, payload: 'late' }));
    peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(1000) }));
    peer.end();
    await log.closed();
    assert.equal(log.all('message').length, 0);
  });

  it('close() from inside a message listener stops later messages of the same packet', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.addEventListener('message', () => ws.close(1000));
    peer.write(Buffer.concat([serverFrame({ opcode: TEXT, payload: 'a' }), serverFrame({ opcode: TEXT, payload: 'b' })]));
    const f = await peer.readFrame();
    assert.equal(f.opcode, CLOSE);
    peer.write(serverFrame({ opcode: CLOSE, payload: closePayload(1000) }));
    peer.end();
    await log.closed();
    assert.deepEqual(
      log.all('message').map((m) => m.data),
      ['a'],
    );
  });

  it('a server that never answers the close is cut off after closeTimeout: close 1006, not clean', async (t) => {
    const { ws, peer, log } = await openRaw(t, { closeTimeout: 100 });
    ws.close(1000);
    await peer.readFrame();
    await peer.waitEnd();
    const closed = await log.closed();
    assert.equal(closed.code, 1006);
    assert.equal(closed.wasClean, false);
  });
});

describe('RFC 6455 §7.1.5: the connection lost without a closing handshake', () => {
  it('a FIN without a close frame gives close 1006, not clean', async (t) => {
    const { peer, log } = await openRaw(t);
    peer.end();
    const closed = await log.closed();
    assert.equal(closed.code, 1006);
    assert.equal(closed.wasClean, false);
    await peer.waitClosed();
  });

  it('a TCP reset gives error, then close 1006', async (t) => {
    const { peer, log } = await openRaw(t);
    peer.socket.resetAndDestroy();
    await assertFailed(log);
    assert.deepEqual(log.types(), ['open', 'error', 'close']);
  });
});

describe('WHATWG § send(): data, order and bufferedAmount', () => {
  it('keeps the order of strings, buffers and Blobs (a Blob is read asynchronously)', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send('1');
    ws.send(new Blob(['2', new Uint8Array([0x32])]));
    ws.send('3');
    ws.send(new Uint8Array([0x34]).buffer);
    ws.send(new Blob(['5']));
    ws.send(new DataView(new Uint8Array([0x36, 0x36]).buffer, 1, 1));
    const frames = [];
    for (let i = 0; i < 6; i++) frames.push(await peer.readFrame());
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.payload.toString()]),
      [
        [TEXT, '1'],
        [BINARY, '22'],
        [TEXT, '3'],
        [BINARY, '4'],
        [BINARY, '5'],
        [BINARY, '6'],
      ],
    );
  });

  it('snapshots bytes sent behind a Blob, so later changes to the buffer do not leak', async (t) => {
    const { ws, peer } = await openRaw(t);
    const bytes = new Uint8Array([1, 1, 1]);
    ws.send(new Blob(['b']));
    ws.send(bytes);
    bytes.fill(9);
    await peer.readFrame();
    assert.equal((await peer.readFrame()).payload.toString('hex'), '010101');
  });

  it('a close() after a pending Blob goes out after it', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send(new Blob(['last words']));
    ws.close(1000, 'after the blob');
    ws.send('not sent');
    const frames = await peer.readUntil(CLOSE);
    assert.deepEqual(
      frames.map((f) => f.opcode),
      [BINARY, CLOSE],
    );
    assert.equal(frames[0]?.payload.toString(), 'last words');
    assert.equal(closeFrameOf(frames[1] ?? frames[0]!).reason, 'after the blob');
  });

  it('counts exactly the application bytes passed to send(), then drops to 0 once written', async (t) => {
    const { ws, peer } = await openRaw(t);
    assert.equal(ws.bufferedAmount, 0);
    ws.send('abc');
    assert.equal(ws.bufferedAmount, 3);
    ws.send('\u00e9\u{1f600}');
    assert.equal(ws.bufferedAmount, 3 + 2 + 4);
    ws.send(new ArrayBuffer(10));
    ws.send(new Uint16Array(5));
    ws.send(new Blob(['12345678']));
    assert.equal(ws.bufferedAmount, 9 + 10 + 10 + 8);
    for (let i = 0; i < 5; i++) await peer.readFrame();
    await withTimeout(
      (async () => {
        while (ws.bufferedAmount !== 0) await new Promise((r) => setImmediate(r));
      })(),
      5_000,
      'bufferedAmount to drop to 0',
    );
  });

  it('grows while the server does not read, and shrinks when it does', async (t) => {
    const { ws, peer } = await openRaw(t);
    peer.socket.pause();
    const chunk = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 16; i++) ws.send(chunk);
    assert.equal(ws.bufferedAmount, 16 * 1024 * 1024);
    // Let the writes reach the kernel's buffers: some stay queued in the socket.
    await new Promise((r) => setImmediate(r));
    assert.ok(ws.bufferedAmount > 0);
    peer.socket.resume();
    for (let i = 0; i < 16; i++) await peer.readFrame();
    await withTimeout(
      (async () => {
        while (ws.bufferedAmount !== 0) await new Promise((r) => setImmediate(r));
      })(),
      5_000,
      'bufferedAmount to drop to 0',
    );
  });

  it('writes a burst of sends in one socket write (coalesced once per tick)', async (t) => {
    const { ws, peer } = await openRaw(t);
    const proto = net.Socket.prototype;
    const original = proto.write;
    let writes = 0;
    proto.write = function (this: net.Socket, ...args: Parameters<typeof original>) {
      writes++;
      return original.apply(this, args);
    } as typeof original;
    try {
      for (let i = 0; i < 100; i++) ws.send(`message ${i}`);
      await new Promise((r) => setImmediate(r));
    } finally {
      proto.write = original;
    }
    assert.equal(writes, 1);
    const frames = [];
    for (let i = 0; i < 100; i++) frames.push(await peer.readFrame());
    assert.equal(frames[99]?.payload.toString(), 'message 99');
  });

  it('answers to every ping of one packet go out in one write', async (t) => {
    const { peer } = await openRaw(t);
    const proto = net.Socket.prototype;
    const original = proto.write;
    let writes = 0;
    proto.write = function (this: net.Socket, ...args: Parameters<typeof original>) {
      if (this !== peer.socket) writes++;
      return original.apply(this, args);
    } as typeof original;
    try {
      const pings = [];
      for (let i = 0; i < 20; i++) pings.push(serverFrame({ opcode: PING, payload: `p${i}` }));
      peer.write(Buffer.concat(pings));
      for (let i = 0; i < 20; i++) assert.equal((await peer.readFrame()).opcode, PONG);
    } finally {
      proto.write = original;
    }
    assert.equal(writes, 1);
  });
});

describe('WHATWG § Feedback from the protocol: event order with handlers', () => {
  it('onopen, onmessage and onclose fire alongside addEventListener listeners', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    const ws = s.client(new WebSocket(server.url()));
    const calls: string[] = [];
    ws.onopen = () => calls.push('onopen');
    ws.addEventListener('open', () => calls.push('open listener'));
    ws.onmessage = (e) => calls.push(`onmessage ${String(e.data)}`);
    ws.onclose = (e) => calls.push(`onclose ${e.code}`);
    ws.onerror = () => calls.push('onerror');
    const log = new ClientLog(ws);
    const peer = await server.next();
    await peer.handshake({ trailing: serverFrame({ opcode: TEXT, payload: 'hi' }) });
    await log.first('message');
    peer.socket.end(serverFrame({ opcode: CLOSE, payload: closePayload(1000) }));
    await log.closed();
    assert.deepEqual(calls, ['onopen', 'open listener', 'onmessage hi', 'onclose 1000']);
  });

  it('a send() from the open listener goes out before anything else', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    const ws = s.client(new WebSocket(server.url()));
    ws.onopen = () => ws.send('hello from onopen');
    const peer = await server.next();
    await peer.handshake({ trailing: serverFrame({ opcode: PING, payload: 'x' }) });
    const first = await peer.readFrame();
    assert.equal(first.payload.toString(), 'hello from onopen');
    assert.equal((await peer.readFrame()).opcode, PONG);
  });
});
