/**
 * Interoperability: the `ws` package's client, an independent implementation,
 * against our server over loopback.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocketServer } from '../../src/index.js';
import { withTimeout } from '../helpers/raw-client.js';
import { EventLog, Scope, clientClosed, clientMessage } from '../helpers/server-harness.js';

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed) & 0xff;
  return b;
}

describe('ws client ⇄ fullduplex server', () => {
  const s = new Scope();
  let url = '';
  let log: EventLog;
  let wss: WebSocketServer;

  before(async () => {
    const started = await s.listen({ protocols: ['chat.v2', 'chat.v1'] });
    url = `ws://127.0.0.1:${started.port}/`;
    log = started.log;
    wss = started.wss;
  });
  after(() => s.dispose());

  describe('RFC 6455 §5.6: echo of every length encoding', () => {
    for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024]) {
      it(`binary of ${size} bytes`, async () => {
        const ws = await s.client(url);
        const payload = pattern(size, size & 0xff);
        const got = clientMessage(ws, 30_000);
        ws.send(payload);
        const m = await got;
        assert.equal(m.isBinary, true);
        assert.equal(m.data.length, size);
        assert.ok(m.data.equals(payload));
        ws.close();
      });

      it(`text of ${size} bytes`, async () => {
        const ws = await s.client(url);
        // Mixed-width characters, cut to exactly `size` bytes on a code point boundary.
        const unit = 'aé€😀';
        let text = unit.repeat(Math.ceil(size / 10) + 1);
        let bytes = Buffer.from(text, 'utf8').subarray(0, size);
        while (!isWhole(bytes)) bytes = bytes.subarray(0, bytes.length - 1);
        text = bytes.toString('utf8') + 'z'.repeat(size - bytes.length);
        assert.equal(Buffer.byteLength(text), size);
        const got = clientMessage(ws, 30_000);
        ws.send(text);
        const m = await got;
        assert.equal(m.isBinary, false);
        assert.equal(m.data.toString('utf8'), text);
        ws.close();
      });
    }
  });

  it('1000 pipelined messages arrive in order', async () => {
    const ws = await s.client(url);
    const received: string[] = [];
    const all = withTimeout(
      new Promise<void>((resolve) =>
        ws.on('message', (d: Buffer) => {
          received.push(d.toString());
          if (received.length === 1000) resolve();
        }),
      ),
      20_000,
      '1000 echoes',
    );
    for (let i = 0; i < 1000; i++) ws.send(`message ${i}`);
    await all;
    assert.deepEqual(received, Array.from({ length: 1000 }, (_, i) => `message ${i}`));
    ws.close();
  });

  it('frames for many connections queued in one tick arrive intact and in order', async () => {
    const opens = log.all('open').length;
    const clients = await Promise.all(Array.from({ length: 20 }, () => s.client(url)));
    await log.nth('open', opens + clients.length);
    const servers = log.all('open').slice(opens).map((e) => e.ws);
    for (const ws of servers) ws.subscribe('tick');
    const expected = servers.map(() => [] as string[]);
    // Small frames of different connections interleave in the shared slab;
    // big ones are queued by reference; a publish is one frame shared by all.
    for (let i = 0; i < 200; i++) {
      servers.forEach((ws, k) => {
        if (i % 50 === 7) {
          const big = Buffer.alloc(20_000 + k, i);
          ws.send(big);
          expected[k]?.push(`big:${big.length}:${i}`);
        } else {
          ws.send(`${k}:${i}`);
          expected[k]?.push(`${k}:${i}`);
        }
      });
      if (i % 20 === 0) {
        assert.equal(wss.publish('tick', `all:${i}`), servers.length);
        for (const e of expected) e.push(`all:${i}`);
      }
    }
    const received = await Promise.all(
      clients.map((c, k) => {
        const got: string[] = [];
        const want = expected[k]?.length ?? 0;
        return withTimeout(
          new Promise<string[]>((resolve) =>
            c.on('message', (d: Buffer) => {
              got.push(d.length > 64 ? `big:${d.length}:${d[d.length - 1]}` : d.toString());
              if (got.length === want) resolve(got);
            }),
          ),
          20_000,
          `messages on client ${k}`,
        );
      }),
    );
    assert.deepEqual(received, expected);
    for (const c of clients) c.close();
  });

  it('a message ws sends in fragments is echoed whole', async () => {
    const ws = await s.client(url);
    const got = clientMessage(ws);
    ws.send('frag', { fin: false });
    ws.send('ment', { fin: false });
    ws.send('ed ✓', { fin: true });
    const m = await got;
    assert.deepEqual([m.data.toString(), m.isBinary], ['fragmented ✓', false]);
    ws.close();
  });

  describe('RFC 6455 §1.9: subprotocols', () => {
    it("the server's choice is the client's first offered one it speaks", async () => {
      const ws = await s.client(url, ['chat.v1', 'chat.v2']);
      assert.equal(ws.protocol, 'chat.v1');
      ws.close();
    });

    it('no subprotocol when none offered', async () => {
      const ws = await s.client(url);
      assert.equal(ws.protocol, '');
      ws.close();
    });

    it('none of the offered ones spoken: we choose none (RFC 6455 §4.2.2), which ws then refuses', async () => {
      // ws is stricter than the RFC here: a client that offered subprotocols fails without one.
      const ws = s.rawClient(url, ['mqtt']);
      const err = await withTimeout(new Promise<Error>((resolve) => ws.once('error', resolve)), 5_000, 'the ws client to fail');
      assert.match(err.message, /Server sent no subprotocol/);
    });
  });

  describe('RFC 6455 §5.5.2-§5.5.3: ping and pong both ways', () => {
    it('a client ping is answered with a pong carrying its payload', async () => {
      const ws = await s.client(url);
      const pong = withTimeout(new Promise<Buffer>((resolve) => ws.once('pong', resolve)), 5_000, 'pong');
      ws.ping('client ping');
      assert.equal((await pong).toString(), 'client ping');
      ws.close();
    });

    it('a server ping is answered by the client; the pong reaches the handler', async () => {
      const before = log.all('open').length;
      const ws = await s.client(url);
      const server = (await log.nth('open', before + 1)).ws;
      const pinged = withTimeout(new Promise<Buffer>((resolve) => ws.once('ping', resolve)), 5_000, 'ping');
      const pongs = log.all('pong').length;
      server.ping('server ping');
      assert.equal((await pinged).toString(), 'server ping');
      const pong = await log.nth('pong', pongs + 1);
      assert.equal(pong.ws, server);
      assert.equal(pong.payload.toString(), 'server ping');
      ws.close();
    });
  });

  describe('RFC 6455 §7: close codes both ways', () => {
    for (const [code, reason] of [
      [1000, ''],
      [1001, 'going away'],
      [3000, 'library code'],
      [4999, 'application code ✓'],
    ] as const) {
      it(`the client closes with ${code}: the handler sees it, the client gets it echoed`, async () => {
        const opens = log.all('open').length;
        const ws = await s.client(url);
        const server = (await log.nth('open', opens + 1)).ws;
        const closed = clientClosed(ws);
        ws.close(code, reason);
        assert.equal((await closed).code, code);
        const ev = await waitClose(log, server);
        assert.deepEqual([ev.code, ev.reason], [code, reason]);
      });

      it(`the server closes with ${code}: the client sees it and the reason`, async () => {
        const opens = log.all('open').length;
        const ws = await s.client(url);
        const server = (await log.nth('open', opens + 1)).ws;
        const closed = clientClosed(ws);
        server.close(code, reason);
        assert.deepEqual(await closed, { code, reason });
        const ev = await waitClose(log, server);
        assert.equal(ev.code, code);
      });
    }

    it('a client close without a code: the handler sees 1005', async () => {
      const opens = log.all('open').length;
      const ws = await s.client(url);
      const server = (await log.nth('open', opens + 1)).ws;
      const closed = clientClosed(ws);
      ws.close();
      assert.equal((await closed).code, 1005);
      assert.equal((await waitClose(log, server)).code, 1005);
    });
  });

  it('a client offering permessage-deflate connects without it (not negotiated)', async () => {
    const ws = await s.client(url, undefined, { perMessageDeflate: true });
    assert.equal(ws.extensions, '');
    const got = clientMessage(ws);
    ws.send('uncompressed, since nothing was negotiated');
    assert.equal((await got).data.toString(), 'uncompressed, since nothing was negotiated');
    ws.close();
  });

});

/** Waits for the close handler call of `ws`. */
async function waitClose(log: EventLog, ws: unknown) {
  for (let n = 1; ; n++) {
    const ev = await log.nth('close', n);
    if (ev.ws === ws) return ev;
  }
}

/** Whether `bytes` ends on a code point boundary. */
function isWhole(bytes: Buffer): boolean {
  let i = bytes.length - 1;
  let k = 0;
  while (i >= 0 && ((bytes[i] ?? 0) & 0xc0) === 0x80) {
    i--;
    k++;
  }
  if (i < 0) return k === 0;
  const b = bytes[i] ?? 0;
  const len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
  return len === k + 1;
}
