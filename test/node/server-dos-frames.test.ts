/**
 * Denial-of-service probes of the server, part 2: hostile framing. Floods of
 * tiny (and empty) fragments must cost the server no more than their bytes
 * (the README: fragments are "bounded by maxPayload"), lengths that no
 * message could have are refused from the header alone, and broken
 * fragmentation fails the connection with its RFC 6455 close code, in each
 * of the three ways a server meets its sockets, while another client is served.
 *
 * The memory tests come first: they compare against the process's peak.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildHeader, clientFrame, type FrameSpec } from '../helpers/frames.js';
import { type RawPeer, delay, until } from '../helpers/raw-client.js';
import { BINARY, CLOSE, CONT, type DosServer, MODES, MiB, PING, TEXT, assertServed, dosServer, peakGrowth } from '../helpers/server-dos.js';
import type { ServerWebSocket } from '../../src/index.js';

const OPTS = { keepalive: false as const, closeTimeout: 500 };

/** `count` 1-byte (or empty) continuation frames, masked, in one buffer. */
function continuations(count: number, byte: number | null): Buffer {
  const one = clientFrame({ opcode: CONT, fin: false, payload: byte === null ? Buffer.alloc(0) : Buffer.from([byte]) });
  const out = Buffer.allocUnsafe(one.length * count);
  for (let i = 0; i < count; i++) one.copy(out, i * one.length);
  return out;
}

/** Writes `bytes` in 1 MiB pieces (the client's own buffering stays small). */
async function writeAll(peer: RawPeer, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; at += MiB) await peer.write(bytes.subarray(at, at + MiB));
}

describe('RFC 6455 §5.4 + README maxPayload: floods of tiny fragments cost only their bytes', () => {
  const FRAGMENTS = 4_000_000;

  for (const mode of ['listen', 'attach'] as const) {
    it(`${mode}: ${FRAGMENTS.toLocaleString('en')} fragments of 1 byte make one message, echoed intact; memory grows by far less than a per-fragment cost`, { timeout: 120_000 }, async (t) => {
      const d = await dosServer(t, mode, { ...OPTS, maxPayload: 8 * MiB });
      const peer = await d.open();
      // Built before measuring: 28 MB of frames, then the last fragment.
      const body = continuations(FRAGMENTS, 0x41);
      const first = clientFrame({ opcode: BINARY, fin: false, payload: Buffer.from([0x40]) });
      const last = clientFrame({ opcode: CONT, fin: true, payload: Buffer.from([0x42]) });
      let echoed = 0;
      const growth = await peakGrowth(async () => {
        await peer.write(first);
        await writeAll(peer, body);
        await peer.write(last);
        const f = await peer.readFrame(60_000);
        assert.equal(f.opcode, BINARY);
        echoed = f.payload.length;
        assert.equal(f.payload[0], 0x40);
        assert.equal(f.payload[echoed - 1], 0x42);
        assert.equal(f.payload.indexOf(0x42), echoed - 1, 'every middle byte is the fragments\' 0x41');
      });
      assert.equal(echoed, FRAGMENTS + 2);
      t.diagnostic(`heap + ArrayBuffer growth during the flood: ${(growth / MiB).toFixed(1)} MiB`);
      // The message (4 MB), its echo, and the test's own copies: far below 4 M fragments at even 32 bytes each.
      assert.ok(growth < 96 * MiB, `memory grew by ${(growth / MiB).toFixed(1)} MiB during the flood`);
      await assertServed(d.port);
    });
  }

  it(`listen: ${FRAGMENTS.toLocaleString('en')} EMPTY continuation frames (which add nothing towards maxPayload) do not grow memory either`, { timeout: 120_000 }, async (t) => {
    const d = await dosServer(t, 'listen', { ...OPTS, maxPayload: 1024 });
    const peer = await d.open();
    const body = continuations(FRAGMENTS, null);
    const growth = await peakGrowth(async () => {
      await peer.send({ opcode: TEXT, fin: false, payload: 'a' });
      await writeAll(peer, body);
      await peer.send({ opcode: CONT, fin: true, payload: 'b' });
      const f = await peer.readFrame(60_000);
      assert.equal(f.payload.toString('utf8'), 'ab');
    });
    t.diagnostic(`heap + ArrayBuffer growth during the flood: ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(growth < 64 * MiB, `memory grew by ${(growth / MiB).toFixed(1)} MiB during the flood`);
    await assertServed(d.port);
  });

  for (const mode of MODES) {
    it(`${mode}: 1-byte fragments past maxPayload → 1009 at the fragment that crosses it; the rest is never parsed`, { timeout: 60_000 }, async (t) => {
      const d = await dosServer(t, mode, { ...OPTS, maxPayload: 100_000 });
      const peer = await d.open();
      const ws = await d.nthOpen(1);
      await peer.send({ opcode: BINARY, fin: false, payload: Buffer.from([1]) });
      peer.socket.write(continuations(150_000, 2));
      peer.socket.on('error', () => {});
      await assertFailed(d, peer, ws, 1009);
    });
  }
});

/**
 * RFC 6455 §7.1.7 "Fail the WebSocket Connection": a close frame with `code`,
 * then the server ends TCP; the error handler saw `code`, the close handler
 * 1006 (the client sent no close frame), and nothing was delivered.
 */
async function assertFailed(d: DosServer, peer: RawPeer, ws: ServerWebSocket, code: number, delivered = 0): Promise<void> {
  for (let i = 0; i < delivered; i++) assert.notEqual((await peer.readFrame(10_000)).opcode, CLOSE, 'the valid message before is echoed');
  const close = await peer.readClose(10_000);
  assert.equal(close.code, code, `close ${close.code} "${close.reason}", expected ${code}`);
  await peer.waitEnd(10_000);
  assert.equal(await d.closeOf(ws, 10_000), 1006);
  assert.deepEqual(d.errorCodes, [code]);
  assert.equal(d.messages, delivered, 'no bad message reached the handler');
  await assertServed(d.port);
}

const M = 0x80; // FIN
interface BadCase {
  name: string;
  code: number;
  bytes: () => Buffer;
  /** Valid messages before the bad frame. */
  delivered?: number;
}
const frame = (spec: FrameSpec): Buffer => clientFrame(spec);
/** A header whose 64-bit length field is `hi`:`lo`, masked, with no payload behind it. */
function header64(opcode: number, hi: number, lo: number): Buffer {
  const b = Buffer.alloc(14);
  b[0] = M | opcode;
  b[1] = 0x80 | 127;
  b.writeUInt32BE(hi >>> 0, 2);
  b.writeUInt32BE(lo >>> 0, 6);
  b.set([0x37, 0xfa, 0x21, 0x3d], 10);
  return b;
}

const badCases: BadCase[] = [
  { name: 'a continuation frame with no message started (§5.4)', code: 1002, bytes: () => frame({ opcode: CONT, payload: 'x' }) },
  {
    name: 'a continuation frame after a fragmented message finished (§5.4)',
    code: 1002,
    delivered: 1,
    bytes: () => Buffer.concat([frame({ opcode: TEXT, fin: false, payload: 'a' }), frame({ opcode: CONT, payload: 'b' }), frame({ opcode: CONT, payload: 'c' })]),
  },
  { name: 'a new text frame inside a fragmented message (§5.4)', code: 1002, bytes: () => Buffer.concat([frame({ opcode: TEXT, fin: false, payload: 'a' }), frame({ opcode: TEXT, payload: 'b' })]) },
  { name: 'a fragmented ping: FIN clear on a control frame (§5.5)', code: 1002, bytes: () => frame({ opcode: PING, fin: false, payload: 'p' }) },
  { name: 'a fragmented close (§5.5)', code: 1002, bytes: () => frame({ opcode: CLOSE, fin: false, payload: Buffer.from([0x03, 0xe8]) }) },
  {
    name: 'a fragmented ping inside a fragmented message (§5.5)',
    code: 1002,
    bytes: () => Buffer.concat([frame({ opcode: BINARY, fin: false, payload: 'a' }), frame({ opcode: PING, fin: false, payload: 'p' })]),
  },
  { name: 'a 64-bit length with its most significant bit set, header only (§5.2: "the most significant bit MUST be 0")', code: 1002, bytes: () => header64(BINARY, 0x80000000, 0) },
  { name: 'a 64-bit length of 2^64-1, header only (§5.2)', code: 1002, bytes: () => header64(BINARY, 0xffffffff, 0xffffffff) },
  { name: 'a frame claiming 2^53 bytes, header only (§10.4: over maxPayload)', code: 1009, bytes: () => header64(BINARY, 0x200000, 0) },
  { name: 'a frame claiming 2^63-1 bytes, header only (§10.4)', code: 1009, bytes: () => header64(TEXT, 0x7fffffff, 0xffffffff) },
  { name: 'a frame claiming 2^32 bytes, header only (§10.4)', code: 1009, bytes: () => header64(BINARY, 1, 0) },
  { name: 'a continuation claiming 2^53 bytes after a first fragment (§10.4)', code: 1009, bytes: () => Buffer.concat([frame({ opcode: BINARY, fin: false, payload: 'a' }), header64(CONT, 0x200000, 0)]) },
  { name: 'RSV1 without any extension negotiated (§5.2)', code: 1002, bytes: () => frame({ opcode: TEXT, rsv1: true, payload: 'x' }) },
  { name: 'RSV2 (§5.2)', code: 1002, bytes: () => frame({ opcode: BINARY, rsv2: true, payload: 'x' }) },
  { name: 'RSV3 on a ping (§5.2)', code: 1002, bytes: () => frame({ opcode: PING, rsv3: true }) },
];

describe('RFC 6455 §5.2, §5.4, §5.5, §10.4: hostile headers fail the connection from the header alone', () => {
  for (const mode of MODES) {
    for (const c of badCases) {
      it(`${mode}: ${c.name} → ${c.code}`, async (t) => {
        const d = await dosServer(t, mode, { ...OPTS, maxPayload: 1 * MiB });
        const peer = await d.open();
        const ws = await d.nthOpen(1);
        await peer.write(c.bytes());
        await assertFailed(d, peer, ws, c.code, c.delivered);
      });
    }
  }
});

describe('RFC 6455 §5.4: control frames in the middle of a fragmented message are allowed', () => {
  for (const mode of MODES) {
    it(`${mode}: 10,000 pings between 10,000 fragments: every ping answered in order, then the message intact`, { timeout: 60_000 }, async (t) => {
      const d = await dosServer(t, mode, OPTS);
      const peer = await d.open();
      const N = 10_000;
      const parts: Buffer[] = [frame({ opcode: BINARY, fin: false, payload: Buffer.from([0]) })];
      for (let i = 1; i <= N; i++) {
        const id = Buffer.alloc(4);
        id.writeUInt32BE(i);
        parts.push(frame({ opcode: PING, payload: id }), frame({ opcode: CONT, fin: i === N, payload: Buffer.from([i & 0xff]) }));
      }
      await peer.write(Buffer.concat(parts));
      for (let i = 1; i <= N; i++) {
        const f = await peer.readFrame(20_000);
        assert.equal(f.opcode, 0xa, 'a pong');
        assert.equal(f.payload.readUInt32BE(0), i, 'pongs answer the pings in order (§5.5.3)');
      }
      const m = await peer.readFrame(20_000);
      assert.equal(m.opcode, BINARY);
      assert.equal(m.payload.length, N + 1);
      for (let i = 0; i <= N; i++) assert.equal(m.payload[i], i & 0xff);
      assert.equal(d.pings, N);
      await assertServed(d.port);
    });
  }
});

describe('RFC 6455 §7.1.5: a client that half-closes TCP (FIN) in the middle of a frame', () => {
  const cuts = [
    { name: 'after one header byte', bytes: () => frame({ opcode: BINARY, payload: Buffer.alloc(10) }).subarray(0, 1) },
    { name: 'inside the masking key', bytes: () => frame({ opcode: BINARY, payload: Buffer.alloc(10) }).subarray(0, 4) },
    { name: 'with 10 of 100,000 payload bytes sent', bytes: () => Buffer.concat([buildHeader({ opcode: BINARY, mask: [1, 2, 3, 4], declaredLength: 100_000 }), Buffer.alloc(10)]) },
    { name: 'after the first fragment of a message', bytes: () => frame({ opcode: TEXT, fin: false, payload: 'half' }) },
  ];
  for (const mode of MODES) {
    for (const cut of cuts) {
      it(`${mode}: ${cut.name}: the server ends its side too, reports 1006, delivers nothing`, async (t) => {
        const d = await dosServer(t, mode, OPTS);
        const peer = await d.open({}, { allowHalfOpen: true });
        const ws = await d.nthOpen(1);
        await peer.write(cut.bytes());
        await delay(20);
        peer.socket.end();
        await peer.waitEnd(10_000);
        assert.equal(await d.closeOf(ws, 10_000), 1006, 'no close frame came: 1006 (§7.1.5)');
        assert.equal(d.messages, 0);
        await until('the connection to leave the clients set', () => d.wss.clients.size === 0);
        await assertServed(d.port);
      });
    }
  }
});
