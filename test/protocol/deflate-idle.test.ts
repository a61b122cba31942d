/**
 * permessage-deflate streams released while a connection is idle
 * (`PerMessageDeflate.release`, the idle sweep `releaseIdleDeflateContexts`)
 * and rebuilt by the next message, against independent zlib peers: what
 * RFC 7692 §7.1.1 lets each side do, checked byte for byte.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { PerMessageDeflate, releaseIdleDeflateContexts } from '../../src/protocol/deflate.js';
import type { DeflateParams } from '../../src/protocol/deflate-params.js';
import { WindowHistory } from '../../src/protocol/deflate-window.js';

const CONTEXT: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const { Z_SYNC_FLUSH } = zlib.constants;

/** A peer's persistent raw deflate stream (context takeover): compress(msg) → payload without the tail (§7.2.1). */
function peerCompressor(windowBits = 15): (msg: Buffer) => Promise<Buffer> {
  const d = zlib.createDeflateRaw({ windowBits, level: 6 });
  return (msg) =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const onData = (c: Buffer): void => void parts.push(c);
      d.on('data', onData);
      d.once('error', reject);
      d.write(msg);
      d.flush(Z_SYNC_FLUSH, () => {
        d.off('data', onData);
        d.off('error', reject);
        const out = Buffer.concat(parts);
        assert.deepEqual(out.subarray(out.length - 4), TAIL);
        resolve(out.subarray(0, out.length - 4));
      });
    });
}

/** A peer's persistent raw inflate stream (it keeps its window, as a peer with context takeover must). */
function peerInflater(): (payload: Buffer) => Promise<Buffer> {
  const inf = zlib.createInflateRaw({ windowBits: 15 });
  return (payload) =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const onData = (c: Buffer): void => void parts.push(c);
      inf.on('data', onData);
      inf.once('error', reject);
      inf.write(Buffer.concat([payload, TAIL]));
      inf.flush(Z_SYNC_FLUSH, () => {
        inf.off('data', onData);
        inf.off('error', reject);
        resolve(Buffer.concat(parts));
      });
    });
}

function text(seed: number, n: number): Buffer {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `{"id":${(seed * 31 + i) % 97},"user":"user${i % 7}","room":"lobby","text":"message ${seed}/${i}"}\n`;
  return Buffer.from(s.slice(0, n));
}

describe('RFC 7692 §7.1.1: releasing the inflater while the peer keeps its context', () => {
  it('a message that refers back into messages before the release inflates exactly', async () => {
    const codec = new PerMessageDeflate('server', CONTEXT, {}, 1 << 20);
    const send = peerCompressor();
    const first = text(1, 3000);
    assert.deepEqual(codec.decompress(await send(first)), first);
    codec.release();
    assert.equal(codec.holdsStreams, false);
    // The same text again: the peer sends a few bytes of back-references into the first message.
    const again = await send(first);
    assert.ok(again.length < 40, `the repeat is ${again.length} B: it refers back`);
    assert.deepEqual(codec.decompress(again), first);
    assert.equal(codec.holdsStreams, true, 'a stream of its own, primed with the window');
    codec.close();
  });

  it('the window kept is the last 2^client_max_window_bits bytes across many messages (10 bits)', async () => {
    const params = { ...CONTEXT, clientMaxWindowBits: 10 };
    const codec = new PerMessageDeflate('server', params, {}, 1 << 20);
    const send = peerCompressor(10);
    const sent: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      const m = text(i, 100 + i * 37);
      sent.push(m);
      assert.deepEqual(codec.decompress(await send(m)), m);
    }
    codec.release();
    // Repeats of recent messages: references reach back up to 1 KiB.
    for (const m of [sent[11]!, sent[10]!, sent[9]!, Buffer.concat([sent[11]!, sent[10]!])]) {
      assert.deepEqual(codec.decompress(await send(m)), m);
      codec.release();
    }
    codec.close();
  });

  it('property: any messages, released anywhere, inflate to what the peer compressed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ seed: fc.nat(50), size: fc.integer({ min: 0, max: 40000 }), releaseAfter: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(9, 12, 15),
        async (messages, bits) => {
          const codec = new PerMessageDeflate('server', { ...CONTEXT, clientMaxWindowBits: bits }, {}, 1 << 20);
          const send = peerCompressor(bits);
          for (const { seed, size, releaseAfter } of messages) {
            const m = text(seed, size);
            assert.deepEqual(codec.decompress(await send(m)), m);
            if (releaseAfter) codec.release();
          }
          codec.close();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('with client_no_context_takeover nothing is kept: the next message is inflated alone', () => {
    const codec = new PerMessageDeflate('server', { ...CONTEXT, clientNoContextTakeover: true }, {}, 1 << 20);
    const m = text(3, 5000);
    const alone = (): Buffer => {
      const z = zlib.deflateRawSync(m, { finishFlush: Z_SYNC_FLUSH });
      return z.subarray(0, z.length - 4);
    };
    assert.deepEqual(codec.decompress(alone()), m);
    codec.release();
    assert.equal(codec.holdsStreams, false);
    assert.deepEqual(codec.decompress(alone()), m);
    codec.close();
  });

  it('a message that ended its stream (BFINAL) starts the next one with an empty window, released or not', () => {
    const codec = new PerMessageDeflate('server', CONTEXT, {}, 1 << 20);
    const m = text(4, 2000);
    const final = zlib.deflateRawSync(m); // Z_FINISH: the last block has BFINAL set
    assert.deepEqual(codec.decompress(final), m);
    codec.release();
    assert.deepEqual(codec.decompress(final), m);
    codec.close();
  });
});

describe('RFC 7692 §7.1.1: releasing the compressor', () => {
  it('the peer (keeping its window) inflates every message, before and after a release', async () => {
    const codec = new PerMessageDeflate('server', CONTEXT, { threshold: 0 }, 1 << 20);
    const receive = peerInflater();
    const m = text(5, 4000);
    const sizes: number[] = [];
    for (const step of ['send', 'send', 'release', 'send', 'send'] as const) {
      if (step === 'release') {
        codec.release();
        assert.equal(codec.holdsStreams, false);
        continue;
      }
      const payload = Buffer.from(codec.compress(m));
      sizes.push(payload.length);
      assert.deepEqual(await receive(payload), m);
    }
    // The first message after the release has no context (as large as the very first); the next has it again.
    assert.equal(sizes[2], sizes[0]);
    assert.ok(sizes[1]! < sizes[0]! / 4 && sizes[3]! < sizes[0]! / 4, `sizes ${sizes.join(', ')}`);
    codec.close();
  });
});

describe('streams of its own only from the second message of a stream', () => {
  it('one message each way goes through the shared streams; the second gets its own, primed with the first', async () => {
    const codec = new PerMessageDeflate('server', CONTEXT, { threshold: 0 }, 1 << 20);
    const receive = peerInflater();
    const send = peerCompressor();
    const m = text(9, 3000);
    assert.deepEqual(codec.decompress(await send(m)), m);
    const first = Buffer.from(codec.compress(m));
    assert.deepEqual(await receive(first), m);
    assert.equal(codec.holdsStreams, false);
    const again = await send(m);
    assert.deepEqual(codec.decompress(again), m);
    const second = Buffer.from(codec.compress(m));
    assert.deepEqual(await receive(second), m);
    assert.equal(codec.holdsStreams, true);
    // The second message refers back into the first (both directions).
    assert.ok(second.length < first.length / 4, `sizes ${first.length}, ${second.length}`);
    codec.close();
  });

  it('without context takeover either way, a connection never holds a stream', () => {
    const none = { ...CONTEXT, serverNoContextTakeover: true, clientNoContextTakeover: true };
    const codec = new PerMessageDeflate('server', none, { threshold: 0 }, 1 << 20);
    const m = text(10, 3000);
    for (let i = 0; i < 3; i++) {
      const z = Buffer.from(codec.compress(m));
      assert.deepEqual(zlib.inflateRawSync(Buffer.concat([z, TAIL]), { finishFlush: Z_SYNC_FLUSH }), m);
      assert.deepEqual(codec.decompress(z), m);
    }
    assert.equal(codec.holdsStreams, false);
    codec.close();
  });

  it('a message that fails to inflate in the shared inflater leaves it clean for the next connection', () => {
    const a = new PerMessageDeflate('server', CONTEXT, { threshold: 0 }, 1000);
    const big = zlib.deflateRawSync(Buffer.alloc(5000, 0x61), { finishFlush: Z_SYNC_FLUSH });
    assert.throws(() => a.decompress(big.subarray(0, big.length - 4)), /maxPayload/);
    const b = new PerMessageDeflate('server', CONTEXT, { threshold: 0 }, 1 << 20);
    const m = text(11, 500);
    const z = zlib.deflateRawSync(m, { finishFlush: Z_SYNC_FLUSH });
    assert.deepEqual(b.decompress(z.subarray(0, z.length - 4)), m);
    a.close();
    b.close();
  });
});

describe('the idle sweep', () => {
  it('releases a codec after one whole sweep interval without messages, not before', () => {
    const codec = new PerMessageDeflate('server', CONTEXT, { threshold: 0 }, 1 << 20);
    codec.compress(text(6, 2000));
    codec.compress(text(6, 2000));
    assert.equal(codec.holdsStreams, true);
    releaseIdleDeflateContexts(); // used since the last sweep: kept
    assert.equal(codec.holdsStreams, true);
    codec.compress(text(7, 2000));
    releaseIdleDeflateContexts(); // used again: kept
    assert.equal(codec.holdsStreams, true);
    const left = releaseIdleDeflateContexts(); // a whole interval idle: released
    assert.equal(codec.holdsStreams, false);
    assert.equal(left, 0, 'no codec holds memory any more');
    codec.close();
  });

  it('a closed codec is no longer swept', () => {
    const codec = new PerMessageDeflate('client', CONTEXT, { threshold: 0 }, 1 << 20);
    codec.compress(text(8, 2000));
    codec.close();
    assert.equal(releaseIdleDeflateContexts(), 0);
  });
});

describe('WindowHistory', () => {
  it('keeps the last `size` bytes of everything appended, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), fc.integer({ min: 1, max: 512 }), (pieces, size) => {
        const h = new WindowHistory(size);
        for (const p of pieces) h.append(p);
        const all = Buffer.concat(pieces);
        assert.deepEqual(Buffer.from(h.bytes()), all.subarray(Math.max(0, all.length - size)));
      }),
    );
  });
});
