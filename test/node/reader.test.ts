/**
 * The socket read path (src/node/reader.ts): plain TCP connections read into
 * one buffer shared by every connection. What that must never cost: a
 * message or control payload handed to a handler changing afterwards, bytes
 * lost or reordered at the switch from the HTTP server's reading to ours,
 * or a difference between TCP (shared buffer) and TLS ('data' events).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer } from 'node:https';
import { type Socket, connect, createServer as createNetServer } from 'node:net';
import { SHARED_READ_BUFFER, readsIntoSharedBuffer, startReading, stopReading } from '../../src/transport/reader.js';
import { WebSocketServer } from '../../src/index.js';
import { WebSocket } from '../../src/index.js';
import { Opcode } from '../../src/protocol/index.js';
import { clientFrame, pattern } from '../helpers/frames.js';
import { RawPeer, WAIT_MS, delay, upgradeRequest } from '../helpers/raw-client.js';
import { ClientLog } from '../helpers/client-peer.js';
import { echo, listening, scopeFor } from '../helpers/server-harness.js';
import { TLS_CERT, TLS_KEY } from '../helpers/client-tls.js';

/** Sizes on both sides of the small-message path, the writer's copy threshold and the read buffer (256 KiB). */
const SIZES = [0, 1, 16, 125, 126, 3000, 65_535, 65_536, 70_001, 262_144, 300_007];

function payloadsFor(seed: number): Buffer[] {
  return SIZES.map((n, i) => pattern(n, seed + i));
}

/** Resolves once `done()` holds, polling (bounded by WAIT_MS). */
async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

describe('socket reads', () => {
  it('plain TCP sockets read into the shared buffer on this Node (the path every other test exercises)', () => {
    assert.equal(SHARED_READ_BUFFER, true);
  });

  it('messages and ping payloads kept by the handler stay intact while later reads reuse the buffer', async (t) => {
    const kept: Buffer[] = [];
    const pings: Buffer[] = [];
    let shared: boolean | undefined;
    const { s, port } = await listening(t, {}, {
      message: (ws, data) => {
        shared ??= readsIntoSharedBuffer((ws as unknown as { stream: Socket }).stream);
        kept.push(data);
      },
      ping: (_ws, payload) => pings.push(payload),
    });
    const peer = await s.connect(port);
    await peer.write(upgradeRequest());
    assert.equal((await peer.readResponse()).status, 101);
    const payloads = payloadsFor(1);
    // Several writes with pauses, so the server sees many separate reads.
    for (let round = 0; round < 3; round++) {
      for (const [i, p] of payloads.entries()) {
        await peer.write(clientFrame({ opcode: Opcode.Binary, payload: p, mask: [i, 0x80 | round, 0x3c, 0xf1] }));
        await peer.write(clientFrame({ opcode: Opcode.Ping, payload: `ping ${round} ${i}` }));
      }
      await delay(10);
    }
    await until('every message', () => kept.length === 3 * payloads.length && pings.length === 3 * payloads.length);
    assert.equal(shared, true, 'the server socket reads into the shared buffer');
    kept.forEach((data, i) => assert.ok(data.equals(payloads[i % payloads.length]!), `message ${i} (${data.length} bytes) changed`));
    pings.forEach((p, i) => assert.equal(p.toString(), `ping ${Math.floor(i / payloads.length)} ${i % payloads.length}`));
  });

  it('many connections sending at once each get their own bytes', async (t) => {
    const received = new Map<number, Buffer[]>();
    const { s, port } = await listening<{ id: number }>(t, {}, {
      message: (ws, data) => {
        const id = data.readUInt32BE(0);
        let list = received.get(id);
        if (list === undefined) received.set(id, (list = []));
        list.push(data);
      },
    });
    const peers: RawPeer[] = [];
    for (let i = 0; i < 20; i++) {
      const peer = await s.connect(port);
      await peer.write(upgradeRequest());
      assert.equal((await peer.readResponse()).status, 101);
      peers.push(peer);
    }
    const expected = (id: number, k: number): Buffer => {
      const p = pattern(4 + ((id * 7919 + k * 104_729) % 90_000), id * 31 + k);
      p.writeUInt32BE(id, 0);
      return p;
    };
    await Promise.all(
      peers.map(async (peer, id) => {
        for (let k = 0; k < 10; k++) await peer.write(clientFrame({ opcode: Opcode.Binary, payload: expected(id, k) }));
      }),
    );
    await until('200 messages', () => [...received.values()].reduce((n, l) => n + l.length, 0) === 200);
    for (let id = 0; id < 20; id++) {
      const list = received.get(id) ?? [];
      assert.equal(list.length, 10, `connection ${id}`);
      list.forEach((data, k) => assert.ok(data.equals(expected(id, k)), `connection ${id}, message ${k}`));
    }
  });

  it('frames sent with the handshake, and while an async upgrade hook decides, arrive whole and in order', async (t) => {
    const kept: Buffer[] = [];
    const { s, port } = await listening(t, {}, {
      upgrade: async () => {
        await delay(100);
        return { accept: true };
      },
      message: (_ws, data) => kept.push(data),
    });
    const payloads = payloadsFor(7);
    const frames = payloads.map((p) => clientFrame({ opcode: Opcode.Binary, payload: p }));
    const peer = await s.connect(port);
    // The request and the first frames in one write (they reach the server as the upgrade's `head`).
    await peer.write(Buffer.concat([Buffer.from(upgradeRequest()), frames[0]!, frames[1]!, frames[2]!]));
    // The rest while the hook is still waiting: the HTTP server buffers them.
    for (const f of frames.slice(3)) await peer.write(f);
    assert.equal((await peer.readResponse()).status, 101);
    await until('every message', () => kept.length === payloads.length);
    kept.forEach((data, i) => assert.ok(data.equals(payloads[i]!), `message ${i} (${SIZES[i]} bytes)`));
  });

  /** Sends `payloads` from our client and checks every echo, in order and intact, kept as received. */
  async function clientEchoes(client: WebSocket, payloads: Buffer[]): Promise<void> {
    client.binaryType = 'nodebuffer';
    const log = new ClientLog(client);
    await log.first('open');
    for (const p of payloads) client.send(p);
    await log.nth('message', payloads.length);
    log.all('message').forEach((e, i) => assert.ok((e.data as Buffer).equals(payloads[i]!), `echo ${i} (${payloads[i]!.length} bytes)`));
  }

  it('over TLS (read through stream events) the same messages arrive intact, and our client reads them back', async (t) => {
    const s = scopeFor(t);
    const https = createHttpsServer({ cert: TLS_CERT, key: TLS_KEY });
    let shared: boolean | undefined;
    const handler = echo({ message: (ws) => (shared ??= readsIntoSharedBuffer((ws as unknown as { stream: Socket }).stream)) });
    s.server(new WebSocketServer({ handler })).attach(https);
    const port = await s.http(https);
    const client = new WebSocket(`wss://127.0.0.1:${port}/`, undefined, { tls: { ca: TLS_CERT } });
    t.after(() => client.close());
    await clientEchoes(client, payloadsFor(11));
    assert.equal(shared, false, 'a TLS socket reads through data events');
  });

  it('our client keeps every message intact while its reads reuse the buffer', async (t) => {
    const { port } = await listening(t);
    const client = new WebSocket(`ws://127.0.0.1:${port}/`);
    t.after(() => client.close());
    await clientEchoes(client, [...payloadsFor(21), ...payloadsFor(22)]);
  });

  it('a socket handed back to stream events (stopReading) keeps what it buffered intact while other sockets read into the shared buffer', async (t) => {
    const server = createNetServer();
    const accepted: Socket[] = [];
    server.on('connection', (socket) => {
      accepted.push(socket);
      startReading(socket, { receiveChunk: () => {} });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const a = connect(port, '127.0.0.1');
    const b = connect(port, '127.0.0.1');
    t.after(() => {
      a.destroy();
      b.destroy();
      for (const socket of accepted) socket.destroy();
      server.close();
    });
    await until('both connections accepted', () => accepted.length === 2);
    const [first, second] = accepted as [Socket, Socket];
    assert.equal(readsIntoSharedBuffer(first), SHARED_READ_BUFFER);
    // `first` goes back to stream events, paused: each read(0) (Node's read-ahead) reads once more, and
    // with nobody consuming, what it read stays buffered in the stream.
    first.pause();
    stopReading(first);
    const mine = Buffer.alloc(1000, 0x61);
    a.write(mine);
    await until('the bytes of the first connection buffered', () => (first.read(0), first.readableLength >= mine.length));
    // Reads of another socket land in the shared buffer meanwhile.
    let seen = 0;
    startReading(second, { receiveChunk: (chunk) => void (seen += chunk.length) });
    b.write(Buffer.alloc(1000, 0x62));
    await until('the second connection read', () => seen >= 1000);
    assert.deepEqual(first.read(mine.length) as Buffer, mine);
  });
});

