/**
 * RFC 6455 §4.2 (the server's side of the opening handshake) over real
 * loopback sockets: raw TCP clients send hand-written HTTP requests and the
 * tests assert the exact status, headers and body the server answers with.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from '../../src/index.js';
import {
  RFC_ACCEPT,
  RFC_KEY,
  acceptFor,
  delay,
  rawOpen,
  rawRequest,
  upgradeRequest,
  type RequestSpec,
} from '../helpers/raw-client.js';
import { EventLog, listening, scopeFor as scope, echo } from '../helpers/server-harness.js';


describe('RFC 6455 §4.2.2: accepting a valid handshake', () => {
  it('answers 101 with the exact Sec-WebSocket-Accept of the RFC example key', async (t) => {
    const { s, port, log } = await listening(t);
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Key': RFC_KEY } });
    s.peer(peer);
    assert.equal(response.status, 101);
    assert.equal(response.headers.get('sec-websocket-accept'), RFC_ACCEPT);
    assert.equal(response.headers.get('upgrade')?.toLowerCase(), 'websocket');
    assert.equal(response.headers.get('connection')?.toLowerCase(), 'upgrade');
    assert.equal(response.headers.has('sec-websocket-protocol'), false);
    assert.equal(response.headers.has('sec-websocket-extensions'), false);
    await log.first('open');
  });

  it('computes the accept value from whatever valid key the client sends', async (t) => {
    const { s, port } = await listening(t);
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Key': key } });
    s.peer(peer);
    assert.equal(response.headers.get('sec-websocket-accept'), acceptFor(key));
  });

  it('accepts header names in any case and a Connection list containing "upgrade"', async (t) => {
    const { s, port } = await listening(t);
    const raw =
      `GET / HTTP/1.1\r\nhost: ${'127.0.0.1'}\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n` +
      `sec-websocket-key: ${RFC_KEY}\r\nsec-websocket-version: 13\r\n\r\n`;
    const peer = await s.connect(port);
    await peer.write(raw);
    const res = await peer.readResponse();
    assert.equal(res.status, 101);
    assert.equal(res.headers.get('sec-websocket-accept'), RFC_ACCEPT);
  });

  it('ignores an offered extension it does not support (no Sec-WebSocket-Extensions in the answer)', async (t) => {
    const { s, port } = await listening(t);
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } });
    s.peer(peer);
    assert.equal(response.headers.has('sec-websocket-extensions'), false);
  });
});

describe('RFC 6455 §4.2.1: refusing a bad handshake with its exact status', () => {
  const cases: { name: string; spec: RequestSpec; status: number; header?: [string, string] }[] = [
    { name: 'a method other than GET → 405', spec: { method: 'POST' }, status: 405, header: ['allow', 'GET'] },
    { name: 'HTTP/1.0 → 400', spec: { version: '1.0' }, status: 400 },
    { name: 'no Host → 400', spec: { headers: { Host: undefined } }, status: 400 },
    { name: 'no Upgrade → 400', spec: { headers: { Upgrade: undefined } }, status: 400 },
    { name: 'Upgrade other than websocket → 400', spec: { headers: { Upgrade: 'h2c' } }, status: 400 },
    { name: 'Connection without "upgrade" → 400', spec: { headers: { Connection: 'keep-alive' } }, status: 400 },
    { name: 'no Connection → 400', spec: { headers: { Connection: undefined } }, status: 400 },
    { name: 'version 8 → 426', spec: { headers: { 'Sec-WebSocket-Version': '8' } }, status: 426, header: ['sec-websocket-version', '13'] },
    { name: 'no version → 426', spec: { headers: { 'Sec-WebSocket-Version': undefined } }, status: 426, header: ['sec-websocket-version', '13'] },
    { name: 'a key of 15 bytes → 400', spec: { headers: { 'Sec-WebSocket-Key': Buffer.alloc(15, 1).toString('base64') } }, status: 400 },
    { name: 'a key that is not base64 → 400', spec: { headers: { 'Sec-WebSocket-Key': 'not a key at all!!!!!!==' } }, status: 400 },
    { name: 'no key → 400', spec: { headers: { 'Sec-WebSocket-Key': undefined } }, status: 400 },
    { name: 'an invalid subprotocol token → 400', spec: { headers: { 'Sec-WebSocket-Protocol': 'a b' } }, status: 400 },
  ];
  for (const c of cases) {
    it(c.name, async (t) => {
      const { s, port, log } = await listening(t);
      const peer = await s.connect(port);
      await peer.write(upgradeRequest(c.spec));
      const res = await peer.readResponse();
      assert.equal(res.status, c.status, res.body);
      if (c.header !== undefined) assert.equal(res.headers.get(c.header[0]), c.header[1]);
      assert.equal(res.headers.has('sec-websocket-accept'), false);
      await peer.waitEnd();
      assert.equal(log.events.length, 0, 'no connection was opened');
    });
  }

  it('a request Node cannot parse → 400', async (t) => {
    const { port } = await listening(t);
    const res = await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(res.status, 400);
  });

  it('a plain HTTP GET to a listen()ed server → 426 Upgrade Required', async (t) => {
    const { port } = await listening(t);
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.equal(res.status, 426);
    assert.equal(res.headers.get('upgrade')?.toLowerCase(), 'websocket');
    assert.equal(res.headers.get('sec-websocket-version'), '13');
  });

  it("listen()'s onRequest answers plain HTTP requests; broken handshakes still get their status", async (t) => {
    const s = scope(t);
    const wss = s.server(new WebSocketServer({ keepalive: false }));
    const { port } = await wss.listen(0, '127.0.0.1', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('hello');
    });
    const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello');
    const broken = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n');
    assert.equal(broken.status, 400);
  });
});

describe('RFC 6455 §10.4: the request head size limit', () => {
  const bigHeader = { 'X-Padding': 'p'.repeat(4096) };

  it('listen(): a head over maxHeaderSize → 431 (from the head parser of the listener)', async (t) => {
    const { s, port, log } = await listening(t, { maxHeaderSize: 2048 });
    const peer = await s.connect(port);
    await peer.write(upgradeRequest({ headers: bigHeader }));
    const res = await peer.readResponse();
    assert.equal(res.status, 431);
    await peer.waitEnd();
    assert.equal(log.events.length, 0);
  });

  it('attach: a head over maxHeaderSize → 431 even when the HTTP server allows more', async (t) => {
    const s = scope(t);
    const http = createServer({ maxHeaderSize: 64 * 1024 });
    const log = new EventLog(echo());
    s.server(new WebSocketServer({ server: http, maxHeaderSize: 2048, handler: log.handler }));
    const port = await s.http(http);
    const peer = await s.connect(port);
    await peer.write(upgradeRequest({ headers: bigHeader }));
    const res = await peer.readResponse();
    assert.equal(res.status, 431);
    await peer.waitEnd();
    // A head within the limit still works on the same server.
    const { peer: ok } = await rawOpen(port);
    s.peer(ok);
    await log.first('open');
  });
});

describe('Origin policy (RFC 6455 §10.2)', () => {
  it('a listed origin gets 101; any other, or none, gets 403', async (t) => {
    const { s, port, log } = await listening(t, { allowedOrigins: ['https://good.example'] });
    const { peer } = await rawOpen(port, { headers: { Origin: 'https://good.example' } });
    s.peer(peer);
    await log.first('open');
    const bad = await rawRequest(port, upgradeRequest({ headers: { Origin: 'https://evil.example' } }));
    assert.equal(bad.status, 403);
    const none = await rawRequest(port, upgradeRequest());
    assert.equal(none.status, 403);
    assert.equal(log.all('open').length, 1);
  });

  it('a predicate decides per request', async (t) => {
    const { s, port } = await listening(t, { allowedOrigins: (origin) => origin?.endsWith('.good.example') ?? false });
    const { peer } = await rawOpen(port, { headers: { Origin: 'https://a.good.example' } });
    s.peer(peer);
    const bad = await rawRequest(port, upgradeRequest({ headers: { Origin: 'https://good.example.evil' } }));
    assert.equal(bad.status, 403);
  });
});

describe('The upgrade hook', () => {
  it('refuses with its own status, headers and body', async (t) => {
    const seen: { url: string; protocols: string[] }[] = [];
    const { port, log } = await listening(t, {}, {
      upgrade(req, info) {
        seen.push({ url: info.url, protocols: info.protocols });
        if (req.headers.authorization !== 'Bearer ok') {
          return { accept: false, status: 401, body: 'who are you?', headers: { 'WWW-Authenticate': 'Bearer' } };
        }
        return undefined;
      },
    });
    const res = await rawRequest(port, upgradeRequest({ path: '/room?id=7', headers: { 'Sec-WebSocket-Protocol': 'chat, v2' } }));
    assert.equal(res.status, 401);
    assert.equal(res.body, 'who are you?');
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(seen, [{ url: '/room?id=7', protocols: ['chat', 'v2'] }]);
    assert.equal(log.events.length, 0);
  });

  it('an async hook attaches data that open sees as ws.data', async (t) => {
    const { s, port, log } = await listening<{ user: string }>(t, {}, {
      async upgrade(req) {
        await delay(20);
        return { accept: true, data: { user: String(req.headers['x-user']) } };
      },
    });
    const { peer } = await rawOpen(port, { headers: { 'X-User': 'ada' } });
    s.peer(peer);
    const open = await log.first('open');
    assert.deepEqual(open.ws.data, { user: 'ada' });
  });

  it('an async hook may refuse', async (t) => {
    const { port } = await listening(t, {}, {
      async upgrade() {
        await delay(5);
        return { accept: false, status: 403, body: 'no' };
      },
    });
    const res = await rawRequest(port, upgradeRequest());
    assert.equal(res.status, 403);
    assert.equal(res.body, 'no');
  });

  it('a hook that throws or rejects → 500, reported to handler.error with source "upgrade" and no connection', async (t) => {
    const s = scope(t);
    const reported: Array<[unknown, string, string]> = [];
    const error = (ws: unknown, err: Error, source: string): void => void reported.push([ws, err.message, source]);
    const { port: p1 } = await s.listen({}, {
      upgrade() {
        throw new Error('boom (expected by the test)');
      },
      error,
    });
    const { port: p2 } = await s.listen({}, {
      async upgrade() {
        throw new Error('async boom (expected by the test)');
      },
      error,
    });
    assert.equal((await rawRequest(p1, upgradeRequest())).status, 500);
    assert.equal((await rawRequest(p2, upgradeRequest())).status, 500);
    assert.deepEqual(reported, [
      [null, 'boom (expected by the test)', 'upgrade'],
      [null, 'async boom (expected by the test)', 'upgrade'],
    ]);
  });

  it('a hook choosing a subprotocol the client did not offer → 500 (RFC 6455 §4.2.2), reported', async (t) => {
    const reported: string[] = [];
    const { port, log } = await listening(t, {}, {
      upgrade: () => ({ accept: true, protocol: 'mqtt' }),
      error: (_ws, err, source) => void reported.push(`${source}: ${err.message}`),
    });
    const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'chat' } }));
    assert.equal(res.status, 500);
    assert.equal(reported.length, 1);
    assert.match(reported[0]!, /^upgrade: .*"mqtt".*not offer/);
    assert.equal(log.events.length, 0);
  });

  it('a hook choosing an offered subprotocol overrides the default choice', async (t) => {
    const { s, port, log } = await listening(t, { protocols: ['chat', 'v2'] }, { upgrade: () => ({ accept: true, protocol: 'v2' }) });
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Protocol': 'chat, v2' } });
    s.peer(peer);
    assert.equal(response.headers.get('sec-websocket-protocol'), 'v2');
    assert.equal((await log.first('open')).ws.protocol, 'v2');
  });

  it('a hook header that would split the response → 500, nothing injected', async (t) => {
    const s = scope(t);
    const { port: p1 } = await s.listen({}, { upgrade: () => ({ accept: true, headers: { 'X-Evil': 'a\r\nSet-Cookie: x=1' } }) });
    const { port: p2 } = await s.listen({}, { upgrade: () => ({ accept: false, status: 401, headers: { 'X-Evil': 'a\r\nSet-Cookie: x=1' } }) });
    t.mock.method(console, 'error', () => {});
    for (const port of [p1, p2]) {
      const res = await rawRequest(port, upgradeRequest());
      assert.equal(res.status, 500);
      assert.equal(res.headers.has('set-cookie'), false);
    }
  });

  it('extra headers from the hook go into the 101', async (t) => {
    const { s, port } = await listening(t, {}, { upgrade: () => ({ accept: true, headers: { 'X-Session': 'abc' } }) });
    const { peer, response } = await rawOpen(port);
    s.peer(peer);
    assert.equal(response.headers.get('x-session'), 'abc');
  });
});

describe('RFC 6455 §4.2.2: subprotocol selection', () => {
  it("chooses the client's first offered subprotocol that the server speaks", async (t) => {
    const { s, port, log } = await listening(t, { protocols: ['v2', 'chat'] });
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Protocol': 'mqtt, chat, v2' } });
    s.peer(peer);
    assert.equal(response.headers.get('sec-websocket-protocol'), 'chat');
    assert.equal((await log.first('open')).ws.protocol, 'chat');
  });

  it('sends no Sec-WebSocket-Protocol when the client offers none', async (t) => {
    const { s, port, log } = await listening(t, { protocols: ['chat'] });
    const { peer, response } = await rawOpen(port);
    s.peer(peer);
    assert.equal(response.headers.has('sec-websocket-protocol'), false);
    assert.equal((await log.first('open')).ws.protocol, '');
  });

  it('sends none when nothing offered is spoken, never one that was not offered', async (t) => {
    const { s, port } = await listening(t, { protocols: ['chat'] });
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Protocol': 'mqtt' } });
    s.peer(peer);
    assert.equal(response.headers.has('sec-websocket-protocol'), false);
  });

  it('a chooser function that returns something not offered chooses nothing', async (t) => {
    const s = scope(t);
    const { port } = await s.listen({ protocols: () => 'other' });
    const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Protocol': 'a, b' } });
    s.peer(peer);
    assert.equal(response.headers.has('sec-websocket-protocol'), false);
    const { port: port2 } = await s.listen({ protocols: (offered) => offered[offered.length - 1] });
    const { peer: peer2, response: response2 } = await rawOpen(port2, { headers: { 'Sec-WebSocket-Protocol': 'a, b' } });
    s.peer(peer2);
    assert.equal(response2.headers.get('sec-websocket-protocol'), 'b');
  });
});

describe('Path filtering', () => {
  it('accepts its path (any query) and answers 404 on others', async (t) => {
    const { s, port } = await listening(t, { path: '/ws' });
    const { peer } = await rawOpen(port, { path: '/ws?token=1' });
    s.peer(peer);
    const res = await rawRequest(port, upgradeRequest({ path: '/other' }));
    assert.equal(res.status, 404);
    const prefix = await rawRequest(port, upgradeRequest({ path: '/ws/more' }));
    assert.equal(prefix.status, 404);
  });
});

describe('Handshake timeout', () => {
  it('drops a client that sends half a request', async (t) => {
    const { s, port, log } = await listening(t, { handshakeTimeout: 300 });
    const peer = await s.connect(port);
    const half = upgradeRequest();
    await peer.write(half.slice(0, half.length >> 1));
    // Either a 408 then the end of the stream, or just the end: both drop the client.
    await peer.waitEnd(5_000);
    if (peer.buffered > 0) assert.equal((await peer.readResponse()).status, 408);
    assert.equal(log.events.length, 0);
  });

  it('drops a client that connects and sends nothing', async (t) => {
    const { s, port } = await listening(t, { handshakeTimeout: 300 });
    const peer = await s.connect(port);
    await peer.waitEnd(5_000);
    if (peer.buffered > 0) assert.equal((await peer.readResponse()).status, 408);
  });

  it('an async upgrade hook that outlasts the timeout → 503 and the client is dropped', async (t) => {
    let release: () => void = () => {};
    const { s, port, log } = await listening(t, { handshakeTimeout: 300 }, {
      upgrade: () => new Promise<void>((resolve) => (release = resolve)),
    });
    t.after(() => release());
    const peer = await s.connect(port);
    await peer.write(upgradeRequest());
    const res = await peer.readResponse();
    assert.equal(res.status, 503);
    await peer.waitEnd();
    release();
    await delay(20);
    assert.equal(log.events.length, 0, 'a late decision opens nothing');
  });
});

describe('Attach mode: sharing a port with an HTTP application', () => {
  it('normal routes keep working beside WebSockets', async (t) => {
    const s = scope(t);
    const http = createServer((req, res) => {
      if (req.url === '/hello') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('hello');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    const log = new EventLog(echo());
    s.server(new WebSocketServer({ server: http, path: '/ws', handler: log.handler }));
    const port = await s.http(http);
    const hello = await rawRequest(port, 'GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.equal(hello.status, 200);
    assert.equal(hello.body, 'hello');
    const ws = await s.client(`ws://127.0.0.1:${port}/ws`);
    const echoed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('over the shared port');
    assert.equal(await echoed, 'over the shared port');
    const again = await rawRequest(port, 'GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.equal(again.status, 200);
  });

  it("a request offering another protocol's Upgrade (h2c) reaches the application's pages (RFC 9110 §7.8: the server ignores it), and its connection closes after the response", async (t) => {
    const s = scope(t);
    const http = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`page ${req.url}`);
    });
    s.server(new WebSocketServer({ server: http, path: '/ws', handler: echo() }));
    const port = await s.http(http);
    const res = await rawRequest(
      port,
      'GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
    );
    assert.equal(res.status, 200);
    assert.equal(res.body, 'page /page');
    assert.equal(res.headers.get('connection'), 'close');
    // One with content cannot be read once Node has let go of the connection: refused, not half-served.
    const post = await rawRequest(port, 'POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc');
    assert.equal(post.status, 400);
  });

  it('two WebSocketServers on one HTTP server, each on its own path', async (t) => {
    const s = scope(t);
    const http = createServer();
    const a = new EventLog<string>(echo());
    const b = new EventLog<string>(echo());
    s.server(new WebSocketServer<string>({ server: http, path: '/a', handler: a.handler }));
    s.server(new WebSocketServer<string>({ server: http, path: '/b', handler: b.handler }));
    const port = await s.http(http);
    const { peer: pa } = await rawOpen(port, { path: '/a' });
    s.peer(pa);
    await a.first('open');
    const { peer: pb } = await rawOpen(port, { path: '/b' });
    s.peer(pb);
    await b.first('open');
    assert.equal(a.all('open').length, 1);
    assert.equal(b.all('open').length, 1);
    assert.equal((await rawRequest(port, upgradeRequest({ path: '/c' }))).status, 404);
  });

  it('handleUpgrade from the application\'s own upgrade listener (no server option)', async (t) => {
    const s = scope(t);
    const log = new EventLog<{ via: string }>(echo());
    const wss = s.server(new WebSocketServer<{ via: string }>({ handler: log.handler }));
    const http = createServer();
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (req.url === '/manual') wss.handleUpgrade(req, socket, head);
      else {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    });
    const port = await s.http(http);
    const ws = await s.client(`ws://127.0.0.1:${port}/manual`);
    const echoed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('by hand');
    assert.equal(await echoed, 'by hand');
    assert.equal(wss.clients.size, 1);
    assert.equal((await rawRequest(port, upgradeRequest({ path: '/elsewhere' }))).status, 400);
  });
});

describe('RFC 6455 §9.1: extension negotiation hook', () => {
  const xTest = {
    name: 'x-test',
    negotiate(offers: ReadonlyArray<Record<string, string | true>>) {
      // Accept the first offer that has a value for "level".
      const offer = offers.find((o) => typeof o['level'] === 'string');
      return offer === undefined ? null : { level: offer['level'] as string };
    },
  };

  it("answers with the negotiator's choice among the client's offers, and ws.extensions says it", async (t) => {
    const { s, port, log } = await listening(t, { extensions: [xTest] });
    const { peer, response } = await rawOpen(port, {
      headers: { 'Sec-WebSocket-Extensions': 'permessage-foo, x-test; flag, x-test; level=3, x-test; level=5' },
    });
    s.peer(peer);
    assert.equal(response.status, 101);
    assert.equal(response.headers.get('sec-websocket-extensions'), 'x-test; level=3');
    const opened = await log.first('open');
    assert.equal(opened.ws.extensions, 'x-test; level=3');
  });

  it('sends no extensions header when the negotiator declines or the client offers none of ours', async (t) => {
    const { s, port } = await listening(t, { extensions: [xTest] });
    for (const offer of ['x-test; flag', 'permessage-deflate', undefined]) {
      const { peer, response } = await rawOpen(port, { headers: { 'Sec-WebSocket-Extensions': offer } });
      s.peer(peer);
      assert.equal(response.status, 101);
      assert.equal(response.headers.has('sec-websocket-extensions'), false, String(offer));
    }
  });

  it('a negotiator answering with an invalid parameter gets a 500, not a broken response', async (t) => {
    const bad = { name: 'x-test', negotiate: () => ({ 'bad key': '1' }) };
    const { port } = await listening(t, { extensions: [bad] });
    const response = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': 'x-test' } }));
    assert.equal(response.status, 500);
  });

  it('frames with RSV1 still fail with 1002 after an extension without RSV bits was accepted', async (t) => {
    const { s, port } = await listening(t, { extensions: [xTest] });
    const { peer } = await rawOpen(port, { headers: { 'Sec-WebSocket-Extensions': 'x-test; level=1' } });
    s.peer(peer);
    // FIN + RSV1 + text, masked, payload "a".
    await peer.write(Buffer.from([0xc1, 0x81, 1, 2, 3, 4, 0x61 ^ 1]));
    const close = await peer.readClose();
    assert.equal(close.code, 1002);
  });
});
