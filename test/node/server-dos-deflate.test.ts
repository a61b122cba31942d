/**
 * Denial-of-service probes of the server, part 3: permessage-deflate (RFC
 * 7692). The README: "inflating stops at maxPayload (the connection fails
 * with 1009), so a small compressed message cannot balloon"; "Data that does
 * not inflate fails it with 1007". A compression bomb (a few hundred KiB that
 * inflate to 256 MiB) must be refused without the server ever holding what it
 * would inflate to, whole or split over fragments, by one client or twenty at
 * once, while another client is served.
 *
 * The bomb tests come first: they compare against the process's peak RSS.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { clientFrame } from '../helpers/frames.js';
import { type RawPeer, until } from '../helpers/raw-client.js';
import { BINARY, CONT, DEFLATE_OFFER, type DosServer, MODES, MiB, PING, TEXT, assertServed, dosServer, peakGrowth, peakRss } from '../helpers/server-dos.js';
import type { ServerWebSocket } from '../../src/index.js';

const OPTS = { keepalive: false as const, closeTimeout: 500, maxPayload: 1 * MiB, perMessageDeflate: true };
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * A raw DEFLATE stream of `mib` MiB of zeros as a permessage-deflate payload:
 * `mib` copies of one sync-flushed block run (each ends on a byte boundary
 * with 00 00 ff ff, so they concatenate), less the final 00 00 ff ff (RFC 7692 §7.2.1).
 */
function bomb(mib: number): Buffer {
  const one = zlib.deflateRawSync(Buffer.alloc(MiB), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual(one.subarray(-4), TAIL);
  const all = Buffer.concat(Array.from({ length: mib }, () => one));
  return all.subarray(0, all.length - 4);
}

const BOMB_MIB = 256;

/** Expects the connection failed with `code` (RFC 6455 §7.1.7): close frame, the end of TCP, the close handler's 1006. */
async function assertFailed(d: DosServer, peer: RawPeer, ws: ServerWebSocket, code: number): Promise<void> {
  const close = await peer.readClose(20_000);
  assert.equal(close.code, code, `close ${close.code} "${close.reason}", expected ${code}`);
  await peer.waitEnd(10_000);
  assert.equal(await d.closeOf(ws, 10_000), 1006);
  assert.ok(d.errorCodes.includes(code), `error handler saw ${d.errorCodes.join(', ')}`);
}

describe('RFC 7692 + README maxPayload: compression bombs fail with 1009 without being inflated whole', () => {
  it(`listen: one message of ${BOMB_MIB} MiB of zeros compressed to a few hundred KiB → 1009; peak RSS grows far less than ${BOMB_MIB} MiB`, { timeout: 60_000 }, async (t) => {
    const payload = bomb(BOMB_MIB);
    assert.ok(payload.length < OPTS.maxPayload, 'the compressed message itself is within maxPayload');
    const d = await dosServer(t, 'listen', OPTS);
    const peer = await d.open(DEFLATE_OFFER);
    const ws = await d.nthOpen(1);
    assert.match(ws.extensions, /permessage-deflate/);
    const before = peakRss();
    const growth = await peakGrowth(async () => {
      await peer.write(clientFrame({ opcode: BINARY, rsv1: true, payload }));
      await assertFailed(d, peer, ws, 1009);
    });
    const rss = peakRss() - before;
    t.diagnostic(`compressed ${payload.length} bytes; peak RSS grew ${(rss / MiB).toFixed(1)} MiB, heap + ArrayBuffers ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(rss < 64 * MiB, `peak RSS grew by ${(rss / MiB).toFixed(1)} MiB`);
    assert.ok(growth < 64 * MiB);
    assert.equal(d.messages, 0);
    await assertServed(d.port);
  });

  it(`listen: 20 clients send the ${BOMB_MIB} MiB bomb at once: all fail with 1009, peak RSS stays bounded, another client is served`, { timeout: 120_000 }, async (t) => {
    const payload = clientFrame({ opcode: TEXT, rsv1: true, payload: bomb(BOMB_MIB) });
    const d = await dosServer(t, 'listen', OPTS);
    const peers = await Promise.all(Array.from({ length: 20 }, () => d.open(DEFLATE_OFFER)));
    await until('20 connections', () => d.opened.length === 20);
    const before = peakRss();
    await Promise.all(peers.map((p) => p.write(payload)));
    for (const p of peers) assert.equal((await p.readClose(30_000)).code, 1009);
    await until('every bomber to be closed', () => d.closed.length === 20, 10_000);
    const rss = peakRss() - before;
    t.diagnostic(`peak RSS grew ${(rss / MiB).toFixed(1)} MiB for 20 bombs of ${BOMB_MIB} MiB each`);
    assert.ok(rss < 128 * MiB, `peak RSS grew by ${(rss / MiB).toFixed(1)} MiB`);
    assert.deepEqual(d.errorCodes, Array(20).fill(1009));
    await assertServed(d.port);
  });

  for (const mode of MODES) {
    it(`${mode}: the bomb split over 64 fragments (RSV1 on the first only, RFC 7692 §6.1) → 1009`, { timeout: 60_000 }, async (t) => {
      const payload = bomb(BOMB_MIB);
      const d = await dosServer(t, mode, OPTS);
      const peer = await d.open(DEFLATE_OFFER);
      const ws = await d.nthOpen(1);
      const step = Math.ceil(payload.length / 64);
      const frames: Buffer[] = [];
      for (let at = 0, i = 0; at < payload.length; at += step, i++) {
        frames.push(clientFrame({ opcode: i === 0 ? BINARY : CONT, rsv1: i === 0, fin: at + step >= payload.length, payload: payload.subarray(at, at + step) }));
      }
      await peer.write(Buffer.concat(frames));
      await assertFailed(d, peer, ws, 1009);
      assert.equal(d.messages, 0);
      await assertServed(d.port);
    });

    it(`${mode}: a compressed message that inflates to maxPayload + 1 bytes → 1009`, async (t) => {
      const d = await dosServer(t, mode, OPTS);
      const peer = await d.open(DEFLATE_OFFER);
      const ws = await d.nthOpen(1);
      const payload = zlib.deflateRawSync(Buffer.alloc(MiB + 1), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
      await peer.send({ opcode: BINARY, rsv1: true, payload });
      await assertFailed(d, peer, ws, 1009);
      assert.equal(d.messages, 0);
    });

    it(`${mode}: a compressed message that inflates to exactly maxPayload is accepted and echoed intact`, async (t) => {
      const d = await dosServer(t, mode, OPTS);
      const peer = await d.open(DEFLATE_OFFER);
      await peer.send({ opcode: BINARY, rsv1: true, payload: bomb(1) });
      const f = await peer.readFrame(10_000);
      const data = f.rsv === 4 ? zlib.inflateRawSync(Buffer.concat([f.payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : f.payload;
      assert.equal(data.length, MiB);
      assert.equal(data.indexOf(1), -1);
    });
  }
});

const frame = clientFrame;
const rsvCases = [
  { name: 'RSV1 on a continuation frame (RFC 7692 §6.1: only the first frame)', code: 1002, bytes: () => Buffer.concat([frame({ opcode: TEXT, fin: false, payload: 'a' }), frame({ opcode: CONT, rsv1: true, payload: 'b' })]) },
  { name: 'RSV1 on a ping (RFC 7692 §6.1: not on control frames)', code: 1002, bytes: () => frame({ opcode: PING, rsv1: true, payload: 'p' }) },
  { name: 'RSV2 on a text frame (RFC 6455 §5.2: no extension gave it a meaning)', code: 1002, bytes: () => frame({ opcode: TEXT, rsv2: true, payload: 'x' }) },
  { name: 'RSV3 on a binary frame (RFC 6455 §5.2)', code: 1002, bytes: () => frame({ opcode: BINARY, rsv3: true, payload: 'x' }) },
  { name: 'RSV1 and RSV2 together', code: 1002, bytes: () => frame({ opcode: BINARY, rsv1: true, rsv2: true, payload: bomb(1) }) },
  { name: 'RSV1 on bytes that are not DEFLATE data (README: 1007)', code: 1007, bytes: () => frame({ opcode: BINARY, rsv1: true, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]) }) },
];

describe('RFC 6455 §5.2, RFC 7692 §6: reserved bits with permessage-deflate negotiated', () => {
  for (const mode of MODES) {
    for (const c of rsvCases) {
      it(`${mode}: ${c.name} → ${c.code}`, async (t) => {
        const d = await dosServer(t, mode, OPTS);
        const peer = await d.open(DEFLATE_OFFER);
        const ws = await d.nthOpen(1);
        await peer.write(c.bytes());
        await assertFailed(d, peer, ws, c.code);
        assert.equal(d.messages, 0);
        await assertServed(d.port);
      });
    }
  }
});

describe('RFC 6455 §5.2: RSV1 when permessage-deflate was NOT negotiated', () => {
  const cases = [
    { name: 'the server accepts deflate, but this client did not offer it', options: OPTS, offer: {} },
    { name: 'the client offered deflate, but the server does not accept it', options: { ...OPTS, perMessageDeflate: false }, offer: DEFLATE_OFFER },
  ];
  for (const mode of MODES) {
    for (const c of cases) {
      it(`${mode}: ${c.name}: a (valid) compressed message → 1002, never inflated`, async (t) => {
        const d = await dosServer(t, mode, c.options);
        const peer = await d.open(c.offer);
        const ws = await d.nthOpen(1);
        assert.equal(ws.extensions, '');
        await peer.send({ opcode: BINARY, rsv1: true, payload: bomb(1) });
        await assertFailed(d, peer, ws, 1002);
        assert.equal(d.messages, 0);
        await assertServed(d.port);
      });
    }
  }
});
