/**
 * RFC 6455 §5.2 (base framing), §5.3 (client-to-server masking), §5.7
 * (examples) and §10.4 (implementation-specific limits).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Connection, Opcode, ReadyState, maskInPlace, writeHeader, type ConnectionEvents } from '../../src/protocol/index.js';
import { SIMD_MASKING, copyMasked, simdReadBuffer } from '../../src/protocol/mask.js';
import { COPY_THRESHOLD } from '../../src/protocol/writer.js';
import {
  RFC_MASK,
  Recorder,
  assertFailedWith,
  buildFrame,
  buildHeader,
  clientFrame,
  connect,
  decodeFrames,
  frameTo,
  joinOutput,
  onlyFrame,
  serverFrame,
  pattern,
} from '../helpers/frames.js';


describe('RFC 6455 §5.7: the examples decode as the RFC says', () => {
  it('a single-frame unmasked text message "Hello"', () => {
    const h = connect('client');
    h.feed(Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
    assert.deepEqual(h.rec.events, [{ type: 'message', data: Buffer.from('Hello'), isBinary: false, compressed: false }]);
  });

  it('a single-frame masked text message "Hello"', () => {
    const bytes = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    assert.deepEqual(clientFrame({ opcode: Opcode.Text, payload: 'Hello' }), bytes, 'the test helper builds the RFC bytes');
    const h = connect('server');
    h.feed(bytes);
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), ['Hello']);
  });

  it('a fragmented unmasked text message "Hel" + "lo"', () => {
    const h = connect('client');
    h.feed(Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c]), Buffer.from([0x80, 0x02, 0x6c, 0x6f]));
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), ['Hello']);
  });

  it('an unmasked ping and a masked pong carrying "Hello"', () => {
    const client = connect('client');
    client.feed(Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
    assert.deepEqual(client.rec.events, [{ type: 'ping', payload: Buffer.from('Hello') }]);
    const server = connect('server');
    server.feed(Buffer.from([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]));
    assert.deepEqual(server.rec.events, [{ type: 'pong', payload: Buffer.from('Hello') }]);
  });

  it('256 bytes of binary in one unmasked frame use the 16-bit length', () => {
    const payload = pattern(256);
    const bytes = Buffer.concat([Buffer.from([0x82, 0x7e, 0x01, 0x00]), payload]);
    assert.deepEqual(serverFrame({ opcode: Opcode.Binary, payload }), bytes);
    const h = connect('client');
    h.feed(bytes);
    assert.deepEqual(h.rec.messages(), [{ type: 'message', data: payload, isBinary: true, compressed: false }]);
  });

  it('64 KiB of binary in one unmasked frame use the 64-bit length', () => {
    const payload = pattern(65536);
    const bytes = Buffer.concat([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]), payload]);
    assert.deepEqual(serverFrame({ opcode: Opcode.Binary, payload }), bytes);
    const h = connect('client');
    h.feed(bytes);
    assert.deepEqual(h.rec.messages(), [{ type: 'message', data: payload, isBinary: true, compressed: false }]);
  });
});

describe('RFC 6455 §5.2: payload length', () => {
  const sizes = [0, 1, 125, 126, 127, 65535, 65536, 65537];

  for (const role of ['server', 'client'] as const) {
    it(`decodes 7-, 16- and 64-bit lengths at the boundary sizes (${role} receiving)`, () => {
      for (const size of sizes) {
        const payload = pattern(size, size);
        const bytes = frameTo(role, { opcode: Opcode.Binary, payload });
        const expected = size < 126 ? 7 : size < 65536 ? 16 : 64;
        assert.equal(decodeFrames(bytes)[0]?.lengthEncoding, expected, `helper encodes ${size} minimally`);
        const h = connect(role);
        h.feed(bytes);
        assert.deepEqual(h.rec.events, [{ type: 'message', data: payload, isBinary: true, compressed: false }], `size ${size}`);
      }
    });
  }

  it('decodes a length written in a wider field than needed (the minimal-length rule binds senders)', () => {
    const cases = [
      { payload: pattern(5), lengthEncoding: 16 as const },
      { payload: pattern(5), lengthEncoding: 64 as const },
      { payload: pattern(200), lengthEncoding: 64 as const },
      { payload: pattern(0), lengthEncoding: 64 as const },
    ];
    for (const c of cases) {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Opcode.Binary, ...c }));
      assert.deepEqual(h.rec.messages().map((m) => m.data), [c.payload]);
    }
  });

  it('decodes a length whose header arrives one byte at a time, for every field width', () => {
    for (const size of [3, 300, 70000]) {
      const payload = pattern(size, 7);
      const h = connect('server');
      const bytes = clientFrame({ opcode: Opcode.Binary, payload });
      const headerLength = onlyFrame(decodeFrames(bytes)).headerLength;
      h.feedBytewise(bytes.subarray(0, headerLength));
      h.feed(bytes.subarray(headerLength));
      assert.deepEqual(h.rec.messages().map((m) => m.data), [payload]);
    }
  });

  it('fails with 1002 when the 64-bit length has its most significant bit set', () => {
    const h = connect('server');
    h.feed(buildHeader({ opcode: Opcode.Binary, mask: RFC_MASK, lengthEncoding: 64, declaredLength: 0x8000000000000005n }));
    assertFailedWith(h, 1002);
  });

  it('fails with 1002 for a most significant bit set even when the rest of the length is zero', () => {
    const h = connect('client');
    h.feed(buildHeader({ opcode: Opcode.Binary, lengthEncoding: 64, declaredLength: 0x8000000000000000n }));
    assertFailedWith(h, 1002);
  });

  it('fails with 1009 (not 1002) for a legal 64-bit length beyond 2^53', () => {
    const h = connect('server');
    h.feed(buildHeader({ opcode: Opcode.Binary, mask: RFC_MASK, declaredLength: 0x7fffffffffffffffn }));
    assertFailedWith(h, 1009);
  });

  it('reads the high word of a 64-bit length (2^32 + 1 fails a 2^32 maxPayload with 1009)', () => {
    const h = connect('server', { maxPayload: 2 ** 32 });
    h.feed(buildHeader({ opcode: Opcode.Binary, mask: RFC_MASK, declaredLength: 2n ** 32n + 1n }));
    assertFailedWith(h, 1009);
  });
});

describe('RFC 6455 §5.2: RSV1, RSV2, RSV3 must be 0 unless an extension defines them', () => {
  for (const bit of ['rsv1', 'rsv2', 'rsv3'] as const) {
    it(`fails with 1002 when ${bit.toUpperCase()} is set and no extension was negotiated`, () => {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Opcode.Text, payload: 'x', [bit]: true }));
      assert.deepEqual(h.rec.messages(), []);
      assertFailedWith(h, 1002);
    });
  }

  it('accepts RSV1 when allowRsv1 is set and flags the message compressed', () => {
    const h = connect('server', { allowRsv1: true });
    h.feed(clientFrame({ opcode: Opcode.Binary, payload: pattern(10), rsv1: true }));
    h.feed(clientFrame({ opcode: Opcode.Binary, payload: pattern(10) }));
    assert.deepEqual(
      h.rec.events.map((e) => (e.type === 'message' ? e.compressed : e.type)),
      [true, false],
    );
  });

  it('accepts RSV1 once setAllowRsv1(true) is called after construction', () => {
    const h = connect('client');
    h.conn.setAllowRsv1(true);
    h.feed(serverFrame({ opcode: Opcode.Text, payload: Buffer.from([0xff, 0xfe]), rsv1: true }));
    assert.equal(h.rec.messages()[0]?.compressed, true);
    assert.equal(h.rec.failCode(), undefined);
  });

  it('flags a fragmented message compressed from its first frame', () => {
    const h = connect('server', { allowRsv1: true });
    h.feed(
      clientFrame({ opcode: Opcode.Binary, fin: false, payload: 'ab', rsv1: true }),
      clientFrame({ opcode: Opcode.Continuation, payload: 'cd' }),
    );
    assert.deepEqual(h.rec.messages(), [{ type: 'message', data: Buffer.from('abcd'), isBinary: true, compressed: true }]);
  });

  it('fails with 1002 for RSV2 or RSV3 even when RSV1 is allowed', () => {
    for (const bit of ['rsv2', 'rsv3'] as const) {
      const h = connect('server', { allowRsv1: true });
      h.feed(clientFrame({ opcode: Opcode.Text, payload: 'x', [bit]: true }));
      assertFailedWith(h, 1002);
    }
  });

  it('fails with 1002 for RSV1 on a control frame even when RSV1 is allowed (RFC 7692 §6.1)', () => {
    const h = connect('server', { allowRsv1: true });
    h.feed(clientFrame({ opcode: Opcode.Ping, payload: 'x', rsv1: true }));
    assert.deepEqual(h.rec.events.filter((e) => e.type === 'ping'), []);
    assertFailedWith(h, 1002);
  });

  it('fails with 1002 for RSV1 on a continuation frame even when RSV1 is allowed (RFC 7692 §6.1)', () => {
    const h = connect('server', { allowRsv1: true });
    h.feed(
      clientFrame({ opcode: Opcode.Text, fin: false, payload: 'a', rsv1: true }),
      clientFrame({ opcode: Opcode.Continuation, payload: 'b', rsv1: true }),
    );
    assertFailedWith(h, 1002);
  });
});

describe('RFC 6455 §5.2: opcodes', () => {
  for (const op of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    it(`fails with 1002 for the reserved opcode 0x${op.toString(16)}`, () => {
      const h = connect('server');
      h.feed(clientFrame({ opcode: op, payload: 'abc' }));
      assert.deepEqual(h.rec.events.filter((e) => e.type !== 'fail'), []);
      assertFailedWith(h, 1002);
    });
  }

  it('fails with 1002 for a reserved opcode whose header arrives one byte at a time', () => {
    const h = connect('client');
    h.feedBytewise(serverFrame({ opcode: 0x3 }));
    assertFailedWith(h, 1002);
  });
});

describe('RFC 6455 §5.1, §5.3: masking direction', () => {
  it('a server fails with 1002 when a client frame is not masked', () => {
    const h = connect('server');
    h.feed(serverFrame({ opcode: Opcode.Text, payload: 'hi' }));
    assert.deepEqual(h.rec.messages(), []);
    assertFailedWith(h, 1002);
  });

  it('a server fails with 1002 when a client control frame is not masked', () => {
    const h = connect('server');
    h.feed(serverFrame({ opcode: Opcode.Ping, payload: 'hi' }));
    assertFailedWith(h, 1002);
  });

  it('a client fails with 1002 when a server frame is masked', () => {
    const h = connect('client');
    h.feed(clientFrame({ opcode: Opcode.Text, payload: 'hi' }));
    assert.deepEqual(h.rec.messages(), []);
    assertFailedWith(h, 1002);
  });

  it('a client fails with 1002 when a server frame is masked with an all-zero key', () => {
    const h = connect('client');
    h.feed(buildFrame({ opcode: Opcode.Binary, payload: 'hi', mask: [0, 0, 0, 0] }));
    assertFailedWith(h, 1002);
  });

  it('the failure close frame of a client is itself masked, and a server one is not', () => {
    const client = connect('client');
    client.feed(clientFrame({ opcode: Opcode.Text, payload: 'hi' }));
    assert.equal(onlyFrame(client.sent()).masked, true);
    const server = connect('server');
    server.feed(serverFrame({ opcode: Opcode.Text, payload: 'hi' }));
    assert.equal(onlyFrame(server.sent()).masked, false);
  });

  it('ignores everything after the failure', () => {
    const h = connect('server');
    h.feed(serverFrame({ opcode: Opcode.Text, payload: 'bad' }));
    assertFailedWith(h, 1002);
    h.feed(clientFrame({ opcode: Opcode.Text, payload: 'after' }), clientFrame({ opcode: Opcode.Ping }));
    assert.deepEqual(h.rec.events.filter((e) => e.type !== 'fail'), []);
    assert.equal(h.conn.writer.take(), null);
  });
});

/** The obvious byte loop maskInPlace must agree with (RFC 6455 §5.3: j = i MOD 4). */
function naiveMask(data: Uint8Array, start: number, end: number, mask: Uint8Array, phase: number): void {
  for (let i = start; i < end; i++) data[i] = (data[i] ?? 0) ^ (mask[(i - start + phase) & 3] ?? 0);
}

describe('RFC 6455 §5.3: masking arithmetic', () => {
  it('maskInPlace equals a byte loop for any range, phase, mask and alignment', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.nat(),
        fc.nat(),
        (content, byteOffset, mask, phase, a, b) => {
          // Place the data at an arbitrary offset of a fresh ArrayBuffer, so
          // every alignment of the word loop is exercised.
          const backing = new Uint8Array(content.length + 8);
          const data = backing.subarray(byteOffset, byteOffset + content.length);
          data.set(content);
          const expected = Uint8Array.from(data);
          const s = content.length === 0 ? 0 : a % (content.length + 1);
          const e = content.length === 0 ? 0 : s + (b % (content.length - s + 1));
          maskInPlace(data, s, e, mask, phase);
          naiveMask(expected, s, e, mask, phase);
          assert.deepEqual(Buffer.from(data), Buffer.from(expected));
          // Bytes around the data are untouched.
          assert.ok(backing.subarray(0, byteOffset).every((x) => x === 0));
          assert.ok(backing.subarray(byteOffset + content.length).every((x) => x === 0));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('maskInPlace equals a byte loop on large payloads at odd byte offsets', () => {
    const mask = Uint8Array.from([0x01, 0x80, 0xfe, 0x7f]);
    for (const offset of [1, 3, 5]) {
      for (const phase of [0, 1, 2, 3]) {
        const size = 1024 * 1024 + 3;
        const backing = Buffer.alloc(size + 8);
        const data = backing.subarray(offset, offset + size);
        pattern(size, offset).copy(data);
        const expected = Buffer.from(data);
        maskInPlace(data, 0, size, mask, phase);
        naiveMask(expected, 0, size, mask, phase);
        assert.ok(data.equals(expected), `offset ${offset}, phase ${phase}`);
      }
    }
  });

  it('the WebAssembly SIMD path (payloads from 2 KiB) equals a byte loop for any range, phase and alignment', () => {
    // Node 20+ on x64 and arm64 has WebAssembly SIMD; the JS loop is only a fallback.
    if (process.arch === 'x64' || process.arch === 'arm64') assert.equal(SIMD_MASKING, true);
    fc.assert(
      fc.property(
        fc.integer({ min: 2048, max: 600_000 }),
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 3 }),
        fc.nat(),
        (size, byteOffset, mask, phase, cut) => {
          const backing = Buffer.alloc(size + 16);
          const data = backing.subarray(byteOffset, byteOffset + size);
          pattern(size, byteOffset).copy(data);
          const expected = Buffer.from(data);
          // A range that starts anywhere and is still long enough for the SIMD path.
          const s = cut % (size - 2047);
          maskInPlace(data, s, size, mask, phase);
          naiveMask(expected, s, size, mask, phase);
          assert.ok(data.equals(expected));
          assert.ok(backing.subarray(0, byteOffset).every((x) => x === 0));
          assert.ok(backing.subarray(byteOffset + size).every((x) => x === 0));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('masking twice with the same key restores the data (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), (content, mask) => {
        const data = Uint8Array.from(content);
        maskInPlace(data, 0, data.length, mask, 0);
        maskInPlace(data, 0, data.length, mask, 0);
        assert.deepEqual(Buffer.from(data), Buffer.from(content));
      }),
    );
  });

  it('a server unmasks a large frame received at an odd byte offset, whole or in odd-sized pieces', () => {
    const payload = pattern(100_003, 9);
    const frame = buildFrame({ opcode: Opcode.Binary, payload, mask: [0xa1, 0x02, 0xf3, 0x44] });
    for (const piece of [frame.length, 4097, 333, 7]) {
      const rec = new Recorder();
      const conn = new Connection(rec, { role: 'server', maxPayload: 1 << 20 });
      const backing = Buffer.alloc(frame.length + 1);
      frame.copy(backing, 1);
      const bytes = backing.subarray(1);
      for (let i = 0; i < bytes.length; i += piece) conn.receive(bytes.subarray(i, Math.min(bytes.length, i + piece)));
      assert.equal(rec.events.length, 1, `piece size ${piece}`);
      assert.ok(rec.messages()[0]?.data.equals(payload), `piece size ${piece}`);
    }
  });
});

describe('the read buffer in WebAssembly memory (simdReadBuffer)', () => {
  const readBuffer = simdReadBuffer();

  it('exists wherever SIMD masking does, and is the same memory every time', () => {
    assert.equal(readBuffer !== null, SIMD_MASKING);
    if (readBuffer === null) return;
    assert.ok(readBuffer.length >= 64 * 1024);
    const again = simdReadBuffer()!;
    assert.equal(again.buffer, readBuffer.buffer);
    assert.equal(again.byteOffset, readBuffer.byteOffset);
  });

  it('copyMasked out of it equals a byte loop for any range, phase and destination offset (property)', () => {
    assert.ok(readBuffer !== null, 'WebAssembly SIMD is available on this platform');
    const rb = readBuffer;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 150_000 }),
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 3 }),
        (start, length, dstOffset, mask, phase) => {
          const end = Math.min(rb.length, start + length);
          const content = pattern(end - start, start + length);
          rb.set(content, start);
          const expected = Buffer.from(content);
          naiveMask(expected, 0, expected.length, mask, phase);
          const dst = Buffer.alloc(dstOffset + expected.length + 8);
          copyMasked(rb, start, end, dst, dstOffset, mask[0]!, mask[1]!, mask[2]!, mask[3]!, phase);
          assert.ok(dst.subarray(dstOffset, dstOffset + expected.length).equals(expected));
          assert.ok(dst.subarray(0, dstOffset).every((x) => x === 0));
          assert.ok(dst.subarray(dstOffset + expected.length).every((x) => x === 0));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('a server parsing borrowed chunks from it hands out intact payloads after the buffer is reused', () => {
    assert.ok(readBuffer !== null, 'WebAssembly SIMD is available on this platform');
    const rb = readBuffer;
    const payloads = [pattern(70_001, 1), pattern(3000, 2), pattern(16, 3), pattern(200_000, 4)];
    const mask = [0x5a, 0x01, 0xc3, 0x7e] as const;
    const stream = Buffer.concat(payloads.map((payload) => buildFrame({ opcode: Opcode.Binary, payload, mask: [...mask] })));
    for (const [piece, offset] of [[rb.length, 0], [65_536, 3], [4097, 1], [777, 13]] as const) {
      const rec = new Recorder({ keepViews: true });
      const conn = new Connection(rec, { role: 'server', maxPayload: 1 << 20 });
      for (let i = 0; i < stream.length; i += piece - offset) {
        const n = Math.min(stream.length - i, piece - offset);
        stream.copy(rb, offset, i, i + n);
        conn.receive(rb.subarray(offset, offset + n), true);
        rb.fill(0xee);
      }
      const got = rec.messages().map((m) => m.data);
      assert.equal(got.length, payloads.length, `pieces of ${piece} at ${offset}`);
      got.forEach((data, i) => assert.ok(data.equals(payloads[i]!), `message ${i}, pieces of ${piece} at ${offset}`));
    }
  });
});

describe('RFC 6455 §5.2, §5.3: frames written', () => {
  const sizes = [0, 1, 125, 126, 65535, 65536, 70000];
  const expectedEncoding = (n: number): 7 | 16 | 64 => (n < 126 ? 7 : n < 65536 ? 16 : 64);

  it('a server writes unmasked frames with the minimal length encoding', () => {
    const h = connect('server');
    for (const n of sizes) h.conn.sendBytes(pattern(n, n), true);
    const frames = h.sent();
    assert.equal(frames.length, sizes.length);
    frames.forEach((f, i) => {
      const n = sizes[i] ?? -1;
      assert.equal(f.masked, false);
      assert.equal(f.fin, true);
      assert.equal(f.opcode, Opcode.Binary);
      assert.equal(f.lengthEncoding, expectedEncoding(n), `size ${n}`);
      assert.equal(f.headerLength, { 7: 2, 16: 4, 64: 10 }[expectedEncoding(n)]);
      assert.ok(f.payload.equals(pattern(n, n)), `size ${n}`);
    });
  });

  it('a client masks every frame, with a minimal length encoding', () => {
    const h = connect('client');
    for (const n of sizes) h.conn.sendBytes(pattern(n, n), true);
    const frames = h.sent();
    frames.forEach((f, i) => {
      const n = sizes[i] ?? -1;
      assert.equal(f.masked, true);
      assert.equal(f.lengthEncoding, expectedEncoding(n), `size ${n}`);
      assert.equal(f.headerLength, { 7: 6, 16: 8, 64: 14 }[expectedEncoding(n)]);
      assert.ok(f.payload.equals(pattern(n, n)), `size ${n}`);
    });
  });

  it('a client uses a different masking key for each frame', () => {
    const h = connect('client');
    for (let i = 0; i < 64; i++) h.conn.sendText('same text');
    h.conn.ping(Buffer.from('p'));
    h.conn.sendBytes(pattern(COPY_THRESHOLD + 1), true);
    const keys = h.sent().map((f) => f.maskKey?.toString('hex'));
    assert.equal(keys.length, 66);
    assert.ok(keys.every((k) => k !== undefined));
    assert.equal(new Set(keys).size, keys.length);
  });

  it('a client actually masks: the payload on the wire is not the plain payload', () => {
    const h = connect('client');
    const payload = Buffer.alloc(64, 0x00);
    h.conn.sendBytes(payload, true);
    const wire = joinOutput(h.conn.writer.take());
    const f = onlyFrame(decodeFrames(wire));
    const onWire = wire.subarray(f.headerLength);
    // Zero bytes XOR key = the key repeated.
    for (let i = 0; i < onWire.length; i++) assert.equal(onWire[i], f.maskKey?.[i & 3]);
  });

  it('a client never mutates the buffer it is asked to send', () => {
    const h = connect('client');
    const small = pattern(100);
    const large = pattern(COPY_THRESHOLD * 2);
    h.conn.sendBytes(small, true);
    h.conn.sendBytes(large, true);
    assert.ok(small.equals(pattern(100)));
    assert.ok(large.equals(pattern(COPY_THRESHOLD * 2)));
    assert.deepEqual(h.sent().map((f) => f.payload.length), [100, COPY_THRESHOLD * 2]);
  });

  it('text is written as UTF-8 with opcode 0x1, in the slab and past it', () => {
    for (const role of ['server', 'client'] as const) {
      const h = connect(role);
      const short = 'héllo, 世界 😀';
      const long = '😀'.repeat(COPY_THRESHOLD);
      h.conn.sendText(short);
      h.conn.sendText(long);
      h.conn.sendText('');
      const frames = h.sent();
      assert.deepEqual(frames.map((f) => f.opcode), [1, 1, 1]);
      assert.deepEqual(frames.map((f) => f.payload.toString('utf8')), [short, long, '']);
    }
  });

  it('writeHeader encodes lengths beyond 2^32 in 64 bits with the most significant bit 0', () => {
    for (const length of [2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
      const buf = Buffer.alloc(14);
      const end = writeHeader(buf, 0, 0x82, length, null);
      assert.equal(end, 10);
      assert.equal(buf[1], 127);
      assert.equal(buf.readBigUInt64BE(2), BigInt(length));
      assert.equal((buf[2] ?? 0) & 0x80, 0);
    }
  });

  it(`a server queues a payload over ${COPY_THRESHOLD} bytes by reference, after its header`, () => {
    const h = connect('server');
    h.conn.sendText('before');
    const big = pattern(COPY_THRESHOLD + 1);
    h.conn.sendBytes(big, true);
    const out = h.conn.writer.take();
    assert.ok(Array.isArray(out), 'header and payload are separate buffers');
    assert.equal(out[out.length - 1], big, 'the payload is the caller\'s own buffer');
    const frames = decodeFrames(out);
    assert.deepEqual(frames.map((f) => f.payload.length), [6, COPY_THRESHOLD + 1]);
  });

  it('a server queues a large Uint8Array by reference too (a view of the same memory)', () => {
    const h = connect('server');
    const big = new Uint8Array(COPY_THRESHOLD + 100).fill(7);
    h.conn.sendBytes(big, true);
    const out = h.conn.writer.take();
    assert.ok(Array.isArray(out));
    const last = out[out.length - 1];
    assert.ok(last !== undefined);
    assert.equal(last.buffer, big.buffer);
    assert.equal(last.byteOffset, big.byteOffset);
    assert.equal(last.length, big.length);
  });

  it(`a server copies a payload of exactly ${COPY_THRESHOLD} bytes into one buffer with its header`, () => {
    const h = connect('server');
    const payload = pattern(COPY_THRESHOLD);
    h.conn.sendBytes(payload, true);
    const out = h.conn.writer.take();
    assert.ok(Buffer.isBuffer(out));
    assert.notEqual(out.buffer, payload.buffer);
    assert.ok(onlyFrame(decodeFrames(out)).payload.equals(payload));
  });

  it('pending counts the bytes queued and take() empties the writer', () => {
    const h = connect('server');
    h.conn.sendText('abc');
    h.conn.sendBytes(pattern(COPY_THRESHOLD + 1), true);
    assert.equal(h.conn.writer.pending, 2 + 3 + 4 + COPY_THRESHOLD + 1);
    assert.equal(h.conn.writer.hasOutput, true);
    h.conn.writer.take();
    assert.equal(h.conn.writer.pending, 0);
    assert.equal(h.conn.writer.hasOutput, false);
    assert.equal(h.conn.writer.take(), null);
  });

  it('two connections writing alternately each get only their own frames, in order', () => {
    const a = connect('server');
    const b = connect('server');
    for (let i = 0; i < 50; i++) {
      a.conn.sendText(`a${i}`);
      b.conn.sendText(`b${i}`);
    }
    const expect = (p: string): string[] => Array.from({ length: 50 }, (_, i) => `${p}${i}`);
    assert.deepEqual(a.sent().map((f) => f.payload.toString()), expect('a'));
    assert.deepEqual(b.sent().map((f) => f.payload.toString()), expect('b'));
  });
});

describe('RFC 6455 §10.4: maxPayload', () => {
  it('fails with 1009 from the header alone, before any payload byte arrives', () => {
    const h = connect('server', { maxPayload: 1000 });
    h.feed(buildHeader({ opcode: Opcode.Binary, mask: RFC_MASK, declaredLength: 1001 }));
    assertFailedWith(h, 1009);
  });

  it('fails with 1009 from a 64-bit header fed one byte at a time', () => {
    const h = connect('client', { maxPayload: 1 << 20 });
    const header = buildHeader({ opcode: Opcode.Text, declaredLength: 2 ** 40 });
    h.feedBytewise(header.subarray(0, header.length - 1));
    assert.equal(h.rec.failCode(), undefined, 'the length is not known yet');
    h.feedBytewise(header.subarray(header.length - 1));
    assertFailedWith(h, 1009);
  });

  it('accepts a message of exactly maxPayload bytes', () => {
    const h = connect('server', { maxPayload: 1000 });
    h.feed(clientFrame({ opcode: Opcode.Binary, payload: pattern(1000) }));
    assert.equal(h.rec.messages()[0]?.data.length, 1000);
    assert.equal(h.conn.readyState, ReadyState.Open);
  });

  it('does not count control frames against maxPayload', () => {
    const h = connect('server', { maxPayload: 10 });
    h.feed(clientFrame({ opcode: Opcode.Ping, payload: pattern(125) }));
    assert.deepEqual(h.rec.events, [{ type: 'ping', payload: pattern(125) }]);
  });
});

describe('RFC 6455 §5.2: payloads are read without copying when they arrive whole', () => {
  /** Feeds `chunks` to a server and returns the messages exactly as handed to the handler (not copied). */
  function received(chunks: Buffer[]): Buffer[] {
    const seen: Buffer[] = [];
    const handler: ConnectionEvents = {
      onMessage(data) {
        seen.push(data);
      },
      onPing() {},
      onPong() {},
      onPeerClose() {},
      onFail(error) {
        assert.fail(error.message);
      },
    };
    const conn = new Connection(handler, { role: 'server', maxPayload: 1 << 20 });
    for (const c of chunks) conn.receive(c);
    return seen;
  }

  it('a frame whose header and payload share a chunk is handed out as a view of that chunk', () => {
    const chunk = clientFrame({ opcode: Opcode.Binary, payload: pattern(1000) });
    const [data] = received([chunk]);
    assert.ok(data !== undefined && data.equals(pattern(1000)));
    assert.equal(data.buffer, chunk.buffer);
  });

  it('a frame whose header ends one chunk and whose payload fills the next is a view of the second chunk', () => {
    // A peer that writes header and payload separately (as ws does) often
    // produces exactly these two chunks.
    const frame = clientFrame({ opcode: Opcode.Binary, payload: pattern(1000) });
    const header = Buffer.from(frame.subarray(0, 8));
    const payload = Buffer.from(frame.subarray(8));
    const [data] = received([header, payload]);
    assert.ok(data !== undefined && data.equals(pattern(1000)));
    assert.equal(data.buffer, payload.buffer);
  });
});

describe('an idle connection keeps no parser state', () => {
  const parserOf = (conn: Connection): unknown => (conn as unknown as { parser: unknown }).parser;

  it('holds a parser only while a frame or a fragmented message is unfinished, and parses on after dropping it', () => {
    const rec = new Recorder();
    const conn = new Connection(rec, { role: 'server', maxPayload: 1 << 20 });
    const a = buildFrame({ opcode: Opcode.Text, payload: 'first', mask: [1, 2, 3, 4] });
    conn.receive(Buffer.from(a));
    assert.equal(parserOf(conn), null, 'between frames');
    const b = buildFrame({ opcode: Opcode.Binary, payload: pattern(300), mask: [5, 6, 7, 8] });
    conn.receive(Buffer.from(b.subarray(0, 3)));
    assert.notEqual(parserOf(conn), null, 'inside a header');
    conn.receive(Buffer.from(b.subarray(3, 100)));
    assert.notEqual(parserOf(conn), null, 'inside a payload');
    conn.receive(Buffer.from(b.subarray(100)));
    assert.equal(parserOf(conn), null);
    conn.receive(buildFrame({ opcode: Opcode.Text, fin: false, payload: 'frag', mask: [9, 9, 9, 9] }));
    assert.notEqual(parserOf(conn), null, 'inside a fragmented message');
    conn.receive(buildFrame({ opcode: Opcode.Continuation, payload: 'ment', mask: [1, 1, 1, 1] }));
    assert.equal(parserOf(conn), null);
    assert.deepEqual(rec.messages().map((m) => m.data.toString('latin1')), ['first', pattern(300).toString('latin1'), 'fragment']);
  });
});
