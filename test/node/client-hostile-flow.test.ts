/**
 * Hostile servers against the client's flow of bytes: one that stops
 * reading while the client sends (WHATWG WebSockets § bufferedAmount: bytes
 * queued by send() and not yet transmitted, never reset by closing), and
 * ones that send a big message in tiny TCP segments or tiny fragments
 * (RFC 6455 §5.4: any fragmentation is allowed; the client must assemble it
 * in time linear in its size).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { WebSocket } from '../../src/index.js';
import { ClientLog, LOOPBACK, withTimeout } from '../helpers/client-peer.js';
import { OP, openRaw, scope } from '../helpers/client-raw.js';
import { serverFrame } from '../helpers/frames.js';

const MiB = 1024 * 1024;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  await withTimeout(
    (async () => {
      while (!condition()) await sleep(5);
    })(),
    ms,
    what,
  );
}

describe('WHATWG § bufferedAmount: a server that stops reading', () => {
  it('32 MiB of sends: bufferedAmount counts them and never grows on its own; pings answered meanwhile keep their payloads', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    peer.socket.pause();
    const messages = Array.from({ length: 32 }, (_, i) => Buffer.alloc(MiB, i + 1));
    for (const m of messages) ws.send(m);
    assert.equal(ws.bufferedAmount, 32 * MiB);
    // Pings in separate TCP segments: each is read (into a buffer later reads reuse) while the pongs wait behind 32 MiB.
    const pings = Array.from({ length: 20 }, (_, i) => Buffer.from(`ping ${i} `.repeat(10)));
    let last = ws.bufferedAmount;
    for (const p of pings) {
      peer.write(serverFrame({ opcode: OP.PING, payload: p }));
      await sleep(10);
      const now = ws.bufferedAmount;
      assert.ok(now <= last, `bufferedAmount grew from ${last} to ${now} without a send`);
      last = now;
    }
    assert.ok(last > 0, 'the kernel cannot have taken 32 MiB the server never read');
    assert.equal(ws.readyState, WebSocket.OPEN);
    peer.socket.resume();
    for (const m of messages) {
      const f = await peer.readFrame(20_000);
      assert.equal(f.opcode, OP.BINARY);
      assert.ok(f.payload.equals(m), `message of byte ${m[0]} arrived intact`);
    }
    for (const p of pings) {
      const f = await peer.readFrame();
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.payload.toString(), p.toString());
    }
    await until('bufferedAmount to drop to 0', () => ws.bufferedAmount === 0);
    assert.deepEqual(log.types(), ['open']);
  });

  it('the server resets the connection with 64 MiB unsent: close 1006, and bufferedAmount keeps the unsent bytes (it only grows once closed)', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    peer.socket.pause();
    const chunk = new Uint8Array(MiB);
    for (let i = 0; i < 64; i++) ws.send(chunk);
    await sleep(50);
    peer.socket.resetAndDestroy();
    const closed = await log.closed();
    assert.deepEqual([closed.code, closed.wasClean], [1006, false]);
    const atClose = ws.bufferedAmount;
    assert.ok(atClose > 0 && atClose <= 64 * MiB, `bufferedAmount ${atClose} after the reset`);
    await sleep(20);
    assert.equal(ws.bufferedAmount, atClose);
    ws.send('abc');
    assert.equal(ws.bufferedAmount, atClose + 3);
  });

  it('close() while 16 MiB wait for a server that never reads: close 1006 within closeTimeout', async (t) => {
    const { ws, peer, log } = await openRaw(t, { closeTimeout: 300 });
    peer.socket.pause();
    for (let i = 0; i < 16; i++) ws.send(new Uint8Array(MiB));
    await tick();
    ws.close(1000);
    assert.equal(ws.readyState, WebSocket.CLOSING);
    const closed = await log.closed(5_000);
    assert.deepEqual([closed.code, closed.wasClean], [1006, false]);
    assert.deepEqual(log.types(), ['open', 'close']);
  });
});

/**
 * A raw server in a worker thread (so its writes run while the client reads):
 * it answers the handshake, then writes one binary frame holding `payload`,
 * some stretches one byte per write(2) on a TCP_NODELAY socket (so one byte
 * per TCP segment), the rest in 1 MiB writes.
 */
const TRICKLE_SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const payload = Buffer.from(workerData.payload);
const trickles = workerData.trickles;
const pause = new Int32Array(new SharedArrayBuffer(4));
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try { off += fs.writeSync(fd, buf, off, buf.length - off); }
    catch (e) { if (e.code !== 'EAGAIN') throw e; Atomics.wait(pause, 0, 0, 1); }
  }
}
function bytewise(fd, buf) { for (let i = 0; i < buf.length; i++) writeAll(fd, buf.subarray(i, i + 1)); }
const server = net.createServer((socket) => {
  let head = '';
  socket.on('error', () => {});
  socket.on('data', function onData(d) {
    head += d.toString('latin1');
    const end = head.indexOf('\\r\\n\\r\\n');
    if (end < 0) return;
    socket.off('data', onData);
    socket.resume();
    const key = /sec-websocket-key: *([^\\r]*)/i.exec(head)[1];
    const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.setNoDelay(true);
    const fd = socket._handle.fd;
    writeAll(fd, Buffer.from('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n', 'latin1'));
    const header = Buffer.alloc(10);
    header[0] = 0x82; header[1] = 127; header.writeBigUInt64BE(BigInt(payload.length), 2);
    const started = Date.now();
    bytewise(fd, header);
    let pos = 0;
    for (const [from, to] of trickles) {
      for (let i = pos; i < from; i += 1048576) writeAll(fd, payload.subarray(i, Math.min(from, i + 1048576)));
      bytewise(fd, payload.subarray(from, to));
      pos = to;
    }
    for (let i = pos; i < payload.length; i += 1048576) writeAll(fd, payload.subarray(i, Math.min(payload.length, i + 1048576)));
    parentPort.postMessage({ sent: Date.now() - started });
  });
});
server.listen(0, '${LOOPBACK}', () => parentPort.postMessage({ port: server.address().port }));
`;

describe('RFC 6455 §5.4: a big message in tiny pieces, in time linear in its size', () => {
  it('a 64 MiB message (maxPayload) with stretches of 1-byte TCP segments at its start, middle and end', async (t) => {
    const s = scope(t);
    const shared = new SharedArrayBuffer(64 * MiB);
    const payload = Buffer.from(shared);
    randomFillSync(payload);
    // 64 KiB one byte at a time where little is buffered, 128 KiB where 48 MiB are, and the last 32 KiB.
    const trickles = [
      [0, 64 * 1024],
      [48 * MiB, 48 * MiB + 128 * 1024],
      [64 * MiB - 32 * 1024, 64 * MiB],
    ];
    const worker = new Worker(TRICKLE_SERVER, { eval: true, workerData: { payload: shared, trickles } });
    s.add(async () => {
      await worker.terminate();
    });
    const port = await withTimeout(
      new Promise<number>((resolve, reject) => {
        worker.on('message', (m: { port?: number }) => m.port !== undefined && resolve(m.port));
        worker.once('error', reject);
      }),
      10_000,
      'the worker server to listen',
    );
    const ws = s.client(new WebSocket(`ws://${LOOPBACK}:${port}/`, undefined, { closeTimeout: 300 }));
    ws.binaryType = 'nodebuffer';
    const log = new ClientLog(ws);
    const data = await log.message(1, 30_000);
    assert.ok(Buffer.isBuffer(data));
    assert.equal(data.length, 64 * MiB);
    assert.ok(data.equals(payload), 'the message arrived intact');
    assert.deepEqual(log.types(), ['open', 'message']);
  });

  it('a 512 KiB text message in 1-byte fragments (524,288 frames)', async (t) => {
    const { peer, log } = await openRaw(t);
    const n = 512 * 1024;
    const frames = Buffer.alloc(n * 3);
    for (let i = 0; i < n; i++) {
      frames[i * 3] = (i === n - 1 ? 0x80 : 0) | (i === 0 ? OP.TEXT : OP.CONTINUATION);
      frames[i * 3 + 1] = 1;
      frames[i * 3 + 2] = 0x61 + (i % 26);
    }
    for (let i = 0; i < frames.length; i += 64 * 1024) peer.write(frames.subarray(i, i + 64 * 1024));
    const text = await log.message(1, 30_000);
    assert.equal(typeof text, 'string');
    assert.equal((text as string).length, n);
    assert.equal((text as string).slice(0, 30), 'abcdefghijklmnopqrstuvwxyzabcd');
  });
});
