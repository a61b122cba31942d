/**
 * listen()'s own listener handing plain HTTP requests, with the bytes it
 * already read, to a node:http server (src/server/listener.ts `#toHttp`,
 * src/server/http.ts createListenServer), and shutting down: over real
 * loopback sockets, request bodies in pieces, keep-alive, pipelining, an
 * upgrade on a kept-alive connection, the 426 answer without onRequest, and
 * `close()` with connections in every state. The file checks no TCP handle
 * is left behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { clientFrame, closePayload } from '../helpers/frames.js';
import { assertClosedByServer, closedWithin, connectNoDelay, echoRequest, get, listenOwned, tcpBaseline } from '../helpers/listener.js';
import { LOOPBACK, delay, upgradeRequest, type RawPeer } from '../helpers/raw-client.js';

let tcpRestored: () => Promise<void>;
before(() => (tcpRestored = tcpBaseline()));
after(() => tcpRestored());

/** Opens a WebSocket on `peer` (a fresh or kept-alive connection) and checks one echo. */
async function upgradeAndEcho(peer: RawPeer, payload: string): Promise<void> {
  await peer.write(upgradeRequest({ path: '/ws' }));
  const res = await peer.readResponse();
  assert.equal(res.status, 101, `answered ${res.status} ${res.body}`);
  await peer.send({ opcode: 0x1, payload });
  const f = await peer.readFrame();
  assert.equal(f.opcode, 0x1);
  assert.equal(f.payload.toString('utf8'), payload);
}

describe('listen() with onRequest: plain HTTP handed to node:http with the bytes already read', () => {
  it('a POST whose body follows its head in several delayed pieces reaches onRequest intact', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    const body = 'first piece|second piece|third piece|last';
    const pieces = body.split('|');
    // The head and the start of the body in one write: the listener reads both before handing over.
    await peer.write(`POST /upload?x=1 HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: ${Buffer.byteLength(pieces.join(''))}\r\n\r\n${pieces[0]}`);
    for (const piece of pieces.slice(1)) {
      await delay(30);
      await peer.write(piece);
    }
    const res = await peer.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body, `POST /upload?x=1 ${pieces.join('')}`);
  });

  it('a POST whose head arrives alone, body later, is read too', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(`POST /late HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: 5\r\n\r\n`);
    await delay(30);
    await peer.write('he');
    await delay(30);
    await peer.write('llo');
    assert.equal((await peer.readResponse()).body, 'POST /late hello');
  });

  it('a 4 MiB POST body, read slowly by onRequest, arrives byte for byte (the handed-over socket stops reading while the request is paused, and loses nothing)', async (t) => {
    const body = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 9)) & 0xff;
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    let sawPause = false;
    const { s, port } = await listenOwned(t, {}, (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        // A slow consumer: the socket must stop reading meanwhile, and lose nothing.
        if (parts.length % 8 === 0) {
          req.pause();
          sawPause = true;
          setTimeout(() => req.resume(), 5);
        }
      });
      req.on('end', () => res.end(digest(Buffer.concat(parts))));
    });
    const peer = await connectNoDelay(s, port);
    await peer.write(`POST /big HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: ${body.length}\r\n\r\n`);
    await peer.write(body);
    const res = await peer.readResponse(20_000);
    assert.equal(res.status, 200);
    assert.equal(res.body, digest(body));
    assert.ok(sawPause, 'the body came in more than 8 chunks, so the reader paused at least once');
  });

  it('two requests one after the other on a kept-alive connection are both answered, in order', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/one'));
    const first = await peer.readResponse();
    assert.equal(first.body, 'GET /one ');
    assert.notEqual(first.headers.get('connection')?.toLowerCase(), 'close');
    await peer.write(get('/two'));
    assert.equal((await peer.readResponse()).body, 'GET /two ');
  });

  it('two pipelined GETs in one write are both answered, in order', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/a') + get('/b'));
    assert.equal((await peer.readResponse()).body, 'GET /a ');
    assert.equal((await peer.readResponse()).body, 'GET /b ');
  });

  it('a WebSocket handshake after a plain request on the same kept-alive connection gets 101 and echoes', async (t) => {
    const { s, port, log } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/page'));
    assert.equal((await peer.readResponse()).body, 'GET /page ');
    await upgradeAndEcho(peer, 'upgraded later');
    assert.equal(log.all('open').length, 1);
  });

  // RFC 9112 §9.3.2: responses to pipelined requests go in the order of the requests.
  it("a WebSocket opened on a kept-alive HTTP connection is not timed as a next request head: it outlives handshakeTimeout", async (t) => {
    const { s, port, log } = await listenOwned(t, { handshakeTimeout: 300 }, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/first'));
    assert.equal((await peer.readResponse()).status, 200);
    await upgradeAndEcho(peer, 'opened');
    // Frames for well over handshakeTimeout: each is answered, none is taken for the start of a head.
    for (let i = 0; i < 8; i++) {
      await delay(100);
      await peer.send({ opcode: 0x1, payload: `frame ${i}` });
      const f = await peer.readFrame();
      assert.equal(f.payload.toString('utf8'), `frame ${i}`);
    }
    assert.equal(log.all('close').length, 0);
  });

  it('a WebSocket handshake pipelined right behind a plain request in one write is answered after it: 200, then 101, then frames', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/first') + upgradeRequest({ path: '/ws' }));
    const first = await peer.readResponse();
    assert.equal(first.status, 200, `the first response is the ${first.status} of the handshake, not the 200 of GET /first`);
    assert.equal(first.body, 'GET /first ');
    assert.equal((await peer.readResponse()).status, 101);
    await peer.send({ opcode: 0x1, payload: 'piped' });
    assert.equal((await peer.readFrame()).payload.toString('utf8'), 'piped');
  });
});

describe('listen() with onRequest: later heads on a kept-alive connection are bounded too', () => {
  it('a second head over maxHeaderSize is not served: 431, then its connection is closed', async (t) => {
    const urls: string[] = [];
    const { s, port } = await listenOwned(t, { maxHeaderSize: 1024 }, (req, res) => {
      urls.push(req.url ?? '');
      echoRequest(req, res);
    });
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/small'));
    assert.equal((await peer.readResponse()).status, 200);
    await peer.write(get('/big', `X-Pad: ${'p'.repeat(3000)}\r\n`));
    assert.equal((await peer.readResponse()).status, 431);
    await assertClosedByServer(peer);
    assert.deepEqual(urls, ['/small']);
  });

  it('a second head that stalls past handshakeTimeout: 408, then its connection is closed', async (t) => {
    const { s, port } = await listenOwned(t, { handshakeTimeout: 300 }, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/one'));
    assert.equal((await peer.readResponse()).status, 200);
    await peer.write(get('/two').slice(0, 12));
    assert.equal((await peer.readResponse(8_000)).status, 408);
    await assertClosedByServer(peer, 8_000);
  });
});

describe('listen() without onRequest: plain HTTP gets 426 (RFC 9110 §15.5.22)', () => {
  it('a plain GET → 426 with Upgrade: websocket', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/'));
    const res = await peer.readResponse();
    assert.equal(res.status, 426);
    assert.equal(res.headers.get('upgrade'), 'websocket');
  });

  it('two plain GETs on one kept-alive connection are both answered 426', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/x'));
    assert.equal((await peer.readResponse()).status, 426);
    assert.equal(peer.ended, false, 'the connection is kept alive');
    await peer.write(get('/y'));
    assert.equal((await peer.readResponse()).status, 426);
  });
});

describe('listen(): close() with connections in every state', () => {
  it('a client that sent half a head gets 503, its connection is closed and close() resolves', async (t) => {
    const { s, wss, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await peer.write(upgradeRequest().slice(0, 30));
    await delay(50);
    const closing = closedWithin(wss, 5_000);
    assert.equal((await peer.readResponse()).status, 503);
    await assertClosedByServer(peer);
    await closing;
  });

  for (const [name, onRequest, status] of [
    ['an idle kept-alive plain HTTP connection', echoRequest, 200],
    ['an idle kept-alive connection that got 426', undefined, 426],
  ] as const) {
    it(`${name} is closed and close() resolves`, async (t) => {
      const { s, wss, port } = await listenOwned(t, {}, onRequest);
      const peer = await connectNoDelay(s, port);
      await peer.write(get('/idle'));
      assert.equal((await peer.readResponse()).status, status);
      await closedWithin(wss, 5_000);
      await assertClosedByServer(peer);
    });
  }

  it('an open WebSocket gets close 1001; once the client answers, close() resolves', async (t) => {
    const { s, wss, port, log } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await upgradeAndEcho(peer, 'before shutdown');
    const closing = closedWithin(wss, 5_000);
    const frame = await peer.readClose();
    assert.equal(frame.code, 1001);
    await peer.sendClose(1001);
    await closing;
    await assertClosedByServer(peer);
    assert.equal((await log.first('close')).code, 1001);
  });

  it('a WebSocket opened on a kept-alive HTTP connection gets close 1001 too, and close() resolves', async (t) => {
    const { s, wss, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/page'));
    assert.equal((await peer.readResponse()).status, 200);
    await upgradeAndEcho(peer, 'via http');
    const closing = closedWithin(wss, 5_000);
    assert.equal((await peer.readClose()).code, 1001);
    await peer.write(clientFrame({ opcode: 0x8, payload: closePayload(1001) }));
    await closing;
    await assertClosedByServer(peer);
  });

  it('all at once: half a head, an idle HTTP connection, an open WebSocket; close() resolves and ends them all', async (t) => {
    const { s, wss, port } = await listenOwned(t, {}, echoRequest);
    const half = await connectNoDelay(s, port);
    await half.write(get('/half').slice(0, 10));
    const idle = await connectNoDelay(s, port);
    await idle.write(get('/idle'));
    assert.equal((await idle.readResponse()).status, 200);
    const ws = await connectNoDelay(s, port);
    await upgradeAndEcho(ws, 'open');
    const closing = closedWithin(wss, 5_000);
    assert.equal((await ws.readClose()).code, 1001);
    await ws.sendClose(1001);
    await closing;
    for (const peer of [half, idle, ws]) await assertClosedByServer(peer);
  });

  for (const [name, onRequest, request] of [
    ['a plain request whose response onRequest never sends', () => {}, get('/hang')],
    ['a POST whose body is half sent', echoRequest, `POST / HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: 100\r\n\r\nonly some`],
  ] as const) {
    it(`${name} is cut, and close() resolves`, async (t) => {
      const { s, wss, port } = await listenOwned(t, {}, onRequest);
      const peer = await connectNoDelay(s, port);
      await peer.write(request);
      await delay(50);
      await closedWithin(wss, 5_000);
      await assertClosedByServer(peer);
    });
  }

  it('a new connection after close() is refused by the OS (the port is no longer listened on)', async (t) => {
    const { s, wss, port } = await listenOwned(t);
    await closedWithin(wss, 5_000);
    await assert.rejects(s.connect(port));
  });
});
