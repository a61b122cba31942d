/**
 * Interoperability: our WHATWG client against the `ws` library's server on
 * loopback — echo of text and binary messages across every length encoding
 * (RFC 6455 §5.2), subprotocol negotiation (§1.9, §4), pings (§5.5.2) and the
 * closing handshake in both directions (§7).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket as WsSocket, type ServerOptions } from 'ws';
import { WebSocket, type WebSocketOptions } from '../../src/index.js';
import { ClientLog, LOOPBACK, Scope, WAIT_MS, withTimeout } from '../helpers/client-peer.js';
import { TLS_CERT, TLS_KEY } from '../helpers/client-tls.js';

interface Peer {
  s: Scope;
  wss: WebSocketServer;
  url: string;
  /** Resolves with the server side of the next connection. */
  nextConnection(): Promise<WsSocket>;
}

async function wsServer(t: TestContext, options: ServerOptions = {}, echo = true): Promise<Peer> {
  const s = new Scope();
  t.after(() => s.dispose());
  const wss = new WebSocketServer({ host: LOOPBACK, port: 0, ...options });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  s.add(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  const connections: WsSocket[] = [];
  const waiters: (() => void)[] = [];
  wss.on('connection', (socket) => {
    connections.push(socket);
    if (echo) socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    for (const w of waiters.splice(0)) w();
  });
  let taken = 0;
  const nextConnection = (): Promise<WsSocket> => {
    const index = taken++;
    return withTimeout(
      new Promise<WsSocket>((resolve) => {
        const check = (): void => {
          const c = connections[index];
          if (c !== undefined) resolve(c);
          else waiters.push(check);
        };
        check();
      }),
      WAIT_MS,
      'a connection on the ws server',
    );
  };
  const address = wss.address();
  assert.ok(typeof address === 'object' && address !== null);
  return { s, wss, url: `ws://${LOOPBACK}:${address.port}/`, nextConnection };
}

async function openClient(p: Peer, protocols?: string[], options: WebSocketOptions = {}): Promise<{ ws: WebSocket; log: ClientLog }> {
  const ws = p.s.client(new WebSocket(p.url, protocols, { closeTimeout: 1_000, ...options }));
  const log = new ClientLog(ws);
  await log.first('open');
  return { ws, log };
}

/** A string of exactly `bytes` UTF-8 bytes, with two-byte characters mixed in. */
function textOfBytes(bytes: number): string {
  // "\u00e9ab" is 4 bytes of UTF-8.
  return '\u00e9ab'.repeat(Math.floor(bytes / 4)) + 'x'.repeat(bytes % 4);
}

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024];

describe('RFC 6455 §5.2: echo through a ws server at every length encoding', () => {
  for (const size of SIZES) {
    it(`text message of ${size} bytes`, async (t) => {
      const p = await wsServer(t);
      const { ws, log } = await openClient(p);
      const text = textOfBytes(size);
      assert.equal(Buffer.byteLength(text), size);
      ws.send(text);
      const echoed = await log.message(1);
      assert.equal(typeof echoed, 'string');
      assert.equal(echoed, text);
    });

    it(`binary message of ${size} bytes (arraybuffer)`, async (t) => {
      const p = await wsServer(t);
      const { ws, log } = await openClient(p);
      ws.binaryType = 'arraybuffer';
      const bytes = randomBytes(size);
      ws.send(bytes);
      const echoed = await log.message(1);
      assert.ok(echoed instanceof ArrayBuffer);
      assert.equal(Buffer.compare(Buffer.from(echoed), bytes), 0);
    });
  }

  it('binary messages as Blob (the default binaryType) and nodebuffer', async (t) => {
    const p = await wsServer(t);
    const { ws, log } = await openClient(p);
    const bytes = randomBytes(70_000);
    ws.send(new Blob([bytes]));
    const blob = await log.message(1);
    assert.ok(blob instanceof Blob);
    assert.equal(Buffer.compare(Buffer.from(await blob.arrayBuffer()), bytes), 0);
    ws.binaryType = 'nodebuffer';
    ws.send(bytes.subarray(5, 300));
    const buf = await log.message(2);
    assert.ok(Buffer.isBuffer(buf));
    assert.equal(Buffer.compare(buf, bytes.subarray(5, 300)), 0);
  });

  it('a burst of 2000 messages comes back complete and in order', async (t) => {
    const p = await wsServer(t);
    const { ws, log } = await openClient(p);
    for (let i = 0; i < 2000; i++) ws.send(`m${i}`);
    await log.nth('message', 2000);
    const got = log.all('message').map((m) => m.data);
    assert.deepEqual(
      got,
      Array.from({ length: 2000 }, (_, i) => `m${i}`),
    );
  });

  it('a fragmented message from ws is assembled', async (t) => {
    const p = await wsServer(t, {}, false);
    const { log } = await openClient(p);
    const server = await p.nextConnection();
    server.send('frag', { fin: false });
    server.send('men', { fin: false });
    server.send('ted', { fin: true });
    assert.equal(await log.message(1), 'fragmented');
  });
});

describe('RFC 6455 §4: subprotocol negotiation with ws', () => {
  it('takes the protocol the server selects from those offered', async (t) => {
    const p = await wsServer(t, { handleProtocols: (offered) => (offered.has('v2') ? 'v2' : false) });
    const { ws } = await openClient(p, ['v3', 'v2', 'v1']);
    assert.equal(ws.protocol, 'v2');
    const server = await p.nextConnection();
    assert.equal(server.protocol, 'v2');
  });

  it('protocol is "" when the server selects none', async (t) => {
    const p = await wsServer(t, { handleProtocols: () => false });
    const { ws } = await openClient(p, ['v1']);
    assert.equal(ws.protocol, '');
  });

  it('sends the Origin option and extra headers that ws can check', async (t) => {
    let seen: { origin: string | undefined; custom: string | string[] | undefined } | null = null;
    const p = await wsServer(t, {
      verifyClient: (info: { origin: string; req: { headers: Record<string, string | string[] | undefined> } }) => {
        seen = { origin: info.origin, custom: info.req.headers['x-token'] };
        return true;
      },
    });
    await openClient(p, undefined, { origin: 'https://app.example', headers: { 'X-Token': 'abc' } });
    assert.deepEqual(seen, { origin: 'https://app.example', custom: 'abc' });
  });

  it('fails (error, close 1006) when ws refuses the handshake', async (t) => {
    const p = await wsServer(t, { verifyClient: () => false });
    const ws = p.s.client(new WebSocket(p.url));
    const log = new ClientLog(ws);
    const closed = await log.closed();
    assert.deepEqual(log.types(), ['error', 'close']);
    assert.equal(closed.code, 1006);
    assert.match(log.all('error')[0]?.message ?? '', /401/);
  });
});

describe('RFC 6455 §5.5.2: pings from ws', () => {
  it('answers a ping with a pong carrying the same payload', async (t) => {
    const p = await wsServer(t);
    await openClient(p);
    const server = await p.nextConnection();
    const pong = withTimeout(new Promise<Buffer>((resolve) => server.once('pong', resolve)), WAIT_MS, 'a pong');
    server.ping('heartbeat-1');
    assert.equal((await pong).toString(), 'heartbeat-1');
  });

  it('answers an empty ping', async (t) => {
    const p = await wsServer(t);
    await openClient(p);
    const server = await p.nextConnection();
    const pong = withTimeout(new Promise<Buffer>((resolve) => server.once('pong', resolve)), WAIT_MS, 'a pong');
    server.ping();
    assert.equal((await pong).length, 0);
  });
});

describe('RFC 6455 §7: closing with ws in both directions', () => {
  function serverClose(server: WsSocket): Promise<{ code: number; reason: string }> {
    return withTimeout(
      new Promise((resolve) => server.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
      WAIT_MS,
      'the ws server to see the close',
    );
  }

  it('client close(4321, reason): ws sees the code and reason; the client closes cleanly', async (t) => {
    const p = await wsServer(t);
    const { ws, log } = await openClient(p);
    const server = await p.nextConnection();
    const seen = serverClose(server);
    ws.close(4321, 'client leaving');
    assert.deepEqual(await seen, { code: 4321, reason: 'client leaving' });
    const closed = await log.closed();
    assert.equal(closed.wasClean, true);
    assert.equal(closed.code, 4321);
    assert.deepEqual(log.types(), ['open', 'close']);
  });

  it('client close() without a code: ws sees 1005', async (t) => {
    const p = await wsServer(t);
    const { ws, log } = await openClient(p);
    const server = await p.nextConnection();
    const seen = serverClose(server);
    ws.close();
    assert.equal((await seen).code, 1005);
    const closed = await log.closed();
    assert.equal(closed.code, 1005);
    assert.equal(closed.wasClean, true);
  });

  for (const [code, reason] of [
    [1000, 'normal'],
    [1001, 'going away'],
    [1011, ''],
    [4000, 'application \u00e9'],
  ] as const) {
    it(`ws close(${code}): the client's close event has ${code}, the reason and wasClean`, async (t) => {
      const p = await wsServer(t);
      const { ws, log } = await openClient(p);
      const server = await p.nextConnection();
      const seen = serverClose(server);
      server.close(code, reason);
      const closed = await log.closed();
      assert.equal(closed.code, code);
      assert.equal(closed.reason, reason);
      assert.equal(closed.wasClean, true);
      assert.equal(ws.readyState, WebSocket.CLOSED);
      // ws got our echo of its code (RFC 6455 §5.5.1).
      assert.equal((await seen).code, code);
    });
  }

  it('ws close() without a code: close event 1005, clean', async (t) => {
    const p = await wsServer(t);
    const { log } = await openClient(p);
    (await p.nextConnection()).close();
    const closed = await log.closed();
    assert.equal(closed.code, 1005);
    assert.equal(closed.wasClean, true);
  });

  it('ws terminate(): close event 1006, not clean', async (t) => {
    const p = await wsServer(t);
    const { log } = await openClient(p);
    (await p.nextConnection()).terminate();
    const closed = await log.closed();
    assert.equal(closed.code, 1006);
    assert.equal(closed.wasClean, false);
  });

  it('a message over the client maxPayload: ws sees close 1009, the client errors and closes 1006', async (t) => {
    const p = await wsServer(t, {}, false);
    const { log } = await openClient(p, undefined, { maxPayload: 1000 });
    const server = await p.nextConnection();
    const seen = serverClose(server);
    server.send(Buffer.alloc(1001));
    assert.equal((await seen).code, 1009);
    const closed = await log.closed();
    assert.equal(closed.code, 1006);
    assert.deepEqual(log.types(), ['open', 'error', 'close']);
  });

  it('messages sent just before close() all arrive before the close frame', async (t) => {
    const p = await wsServer(t, {}, false);
    const { ws, log } = await openClient(p);
    const server = await p.nextConnection();
    const received: string[] = [];
    server.on('message', (d) => received.push(d.toString()));
    const seen = serverClose(server);
    for (let i = 0; i < 50; i++) ws.send(`m${i}`);
    ws.send(new Blob(['blob']));
    ws.close(1000);
    await seen;
    await log.closed();
    assert.equal(received.length, 51);
    assert.equal(received[50], 'blob');
  });
});

describe('wss: against a ws server over https', () => {
  it('echoes over TLS with a trusted certificate', async (t) => {
    const s = new Scope();
    t.after(() => s.dispose());
    const https = createHttpsServer({ cert: TLS_CERT, key: TLS_KEY });
    const wss = new WebSocketServer({ server: https });
    wss.on('connection', (socket) => socket.on('message', (d, isBinary) => socket.send(d, { binary: isBinary })));
    await new Promise<void>((resolve) => https.listen(0, LOOPBACK, () => resolve()));
    s.add(
      () =>
        new Promise<void>((resolve) => {
          for (const c of wss.clients) c.terminate();
          wss.close();
          https.close(() => resolve());
        }),
    );
    const address = https.address();
    assert.ok(typeof address === 'object' && address !== null);
    const ws = s.client(new WebSocket(`wss://${LOOPBACK}:${address.port}/secure`, undefined, { tls: { ca: TLS_CERT } }));
    const log = new ClientLog(ws);
    await log.first('open');
    ws.send('secret');
    assert.equal(await log.message(1), 'secret');
    ws.close(1000);
    assert.equal((await log.closed()).wasClean, true);
  });
});
