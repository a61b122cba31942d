/**
 * Masking and unmasking payloads (RFC 6455 §5.3): an Int32 word loop, and
 * WebAssembly SIMD for large payloads. The SIMD module's memory is also
 * where the transport's shared read buffer lives (simdReadBuffer), so a
 * payload read there is unmasked in place and copied out once.
 */

/** Below this many bytes, a byte loop beats building a word view. */
const WORD_MASK_THRESHOLD = 32;

/** Whether this platform stores the low byte of a 32-bit word first. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** From this many bytes on, WebAssembly SIMD (with its two copies) beats the JS word loop. */
const SIMD_THRESHOLD = 2048;
/** Bytes XORed per call into WebAssembly: the scratch block at the start of its memory. */
const SIMD_BLOCK = 256 * 1024;
/** Bytes of WebAssembly memory after the scratch block lent out as a socket read buffer (see simdReadBuffer). */
const READ_REGION = 256 * 1024;

/**
 * A 158-byte WebAssembly module, assembled by hand, that XORs memory with a
 * 32-bit key, 64 bytes (four v128) per iteration:
 *
 *   (module
 *     (memory (export "memory") 8)
 *     (func (export "mask") (param $p i32) (param $len i32) (param $key i32)
 *       (local $end i32) (local $k v128)
 *       (local.set $k (i32x4.splat (local.get $key)))
 *       (local.set $end (i32.add (local.get $p) (i32.and (local.get $len) (i32.const -64))))
 *       (block $done (loop $next
 *         (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
 *         (v128.store offset=0  (local.get $p) (v128.xor (v128.load offset=0  (local.get $p)) (local.get $k)))
 *         ... the same at offsets 16, 32 and 48 ...
 *         (local.set $p (i32.add (local.get $p) (i32.const 64)))
 *         (br $next)))))
 *
 * Node has no native XOR for buffers; this runs at memcpy speed, so with the
 * copy in and out it still unmasks large payloads about 2.5 times faster than
 * the best pure-JS loop. Where WebAssembly SIMD is missing, the JS loop runs.
 */
const SIMD_MODULE = (() => {
  const unit = (o: number): number[] => [0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x00, o, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x00, o];
  const body = [
    0x02, 0x01, 0x7f, 0x01, 0x7b, // locals: one i32, one v128
    0x20, 0x02, 0xfd, 0x11, 0x21, 0x04, // k = i32x4.splat(key)
    0x20, 0x00, 0x20, 0x01, 0x41, 0x40, 0x71, 0x6a, 0x21, 0x03, // end = p + (len & -64)
    0x02, 0x40, 0x03, 0x40, // block, loop
    0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x01, // br_if done (p >= end)
    ...unit(0), ...unit(16), ...unit(32), ...unit(48),
    0x20, 0x00, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0x00, // p += 64
    0x0c, 0x00, 0x0b, 0x0b, 0x0b, // br loop, end loop, end block, end func
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32, i32, i32) -> ()
    0x03, 0x02, 0x01, 0x00, // function 0 has type 0
    0x05, 0x03, 0x01, 0x00, 0x08, // memory: 8 pages (scratch block, then the read region)
    0x07, 0x11, 0x02, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x04, 0x6d, 0x61, 0x73, 0x6b, 0x00, 0x00, // exports
    0x0a, body.length + 2, 0x01, body.length, ...body, // code
  ]);
})();

// The few WebAssembly declarations used here (TypeScript's are in lib.dom).
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
};

interface SimdMasker {
  memory: Uint8Array;
  mask: (p: number, len: number, key: number) => void;
}

function loadSimdMasker(): SimdMasker | null {
  try {
    if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_MODULE)) return null;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(SIMD_MODULE));
    const { memory, mask } = instance.exports as { memory: { buffer: ArrayBuffer }; mask: SimdMasker['mask'] };
    return { memory: new Uint8Array(memory.buffer), mask };
  } catch {
    return null;
  }
}

const simd = loadSimdMasker();

/** Whether large payloads are unmasked with WebAssembly SIMD on this platform. */
export const SIMD_MASKING = simd !== null;

/**
 * A buffer in WebAssembly memory for an I/O layer to read socket bytes into,
 * or null without SIMD. Its contents are scratch to their owner: `copyMasked`
 * from it unmasks the bytes in place there (no copy into WebAssembly memory)
 * and then copies them out once. Only one read buffer exists.
 */
export function simdReadBuffer(): Buffer | null {
  if (simd === null) return null;
  return Buffer.from(simd.memory.buffer, SIMD_BLOCK, READ_REGION);
}

/**
 * XORs `data[start, end)` in place with the 4-byte `mask`, as if the mask
 * cycle began `phase` bytes before `start` (RFC 6455 §5.3).
 */
export function maskInPlace(data: Uint8Array, start: number, end: number, mask: Uint8Array, phase: number): void {
  maskWith(data, start, end, mask[0]!, mask[1]!, mask[2]!, mask[3]!, phase);
}

/**
 * `maskInPlace` with the key as four bytes, so callers can keep a key in
 * plain fields. Long runs are XORed a 32-bit word at a time over the aligned
 * middle of the range, eight words per iteration.
 */
export function maskWith(
  data: Uint8Array,
  start: number,
  end: number,
  m0: number,
  m1: number,
  m2: number,
  m3: number,
  phase: number,
): void {
  let i = start;
  let p = phase & 3;
  if (simd !== null && end - start >= SIMD_THRESHOLD) {
    i = simdMask(simd, data, start, end, data, start, m0, m1, m2, m3, p);
  } else if (end - start >= WORD_MASK_THRESHOLD) {
    // Advance bytewise to a 4-byte aligned address.
    let lead = (4 - ((data.byteOffset + i) & 3)) & 3;
    while (lead-- > 0) {
      data[i] = data[i]! ^ (p === 0 ? m0 : p === 1 ? m1 : p === 2 ? m2 : m3);
      i++;
      p = (p + 1) & 3;
    }
    const words = (end - i) >>> 2;
    const key = wordKey(p, m0, m1, m2, m3, LITTLE_ENDIAN);
    // Int32Array keeps every value a small integer in V8 (Uint32Array would box values over 2^31).
    const view = new Int32Array(data.buffer, data.byteOffset + i, words);
    let w = 0;
    for (; w + 8 <= words; w += 8) {
      view[w] = view[w]! ^ key;
      view[w + 1] = view[w + 1]! ^ key;
      view[w + 2] = view[w + 2]! ^ key;
      view[w + 3] = view[w + 3]! ^ key;
      view[w + 4] = view[w + 4]! ^ key;
      view[w + 5] = view[w + 5]! ^ key;
      view[w + 6] = view[w + 6]! ^ key;
      view[w + 7] = view[w + 7]! ^ key;
    }
    for (; w < words; w++) view[w] = view[w]! ^ key;
    i += words << 2;
  }
  while (i < end) {
    data[i] = data[i]! ^ (p === 0 ? m0 : p === 1 ? m1 : p === 2 ? m2 : m3);
    i++;
    p = (p + 1) & 3;
  }
}

/**
 * The 32-bit word that masks 4 bytes starting at mask phase `p`, as a word
 * load sees them in memory (little- or big-endian).
 */
function wordKey(p: number, m0: number, m1: number, m2: number, m3: number, little: boolean): number {
  const b0 = p === 0 ? m0 : p === 1 ? m1 : p === 2 ? m2 : m3;
  const b1 = p === 0 ? m1 : p === 1 ? m2 : p === 2 ? m3 : m0;
  const b2 = p === 0 ? m2 : p === 1 ? m3 : p === 2 ? m0 : m1;
  const b3 = p === 0 ? m3 : p === 1 ? m0 : p === 2 ? m1 : m2;
  return little ? b0 | (b1 << 8) | (b2 << 16) | (b3 << 24) : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
}

/**
 * XORs `src[start, end)` with the mask into `dst` at `dstOffset`, the mask
 * cycle at `phase`; `src` is left as it was, unless it is the read buffer
 * from `simdReadBuffer` (unmasked in place there, then copied once). One
 * pass through WebAssembly memory for large runs instead of an in-place pass
 * plus a copy.
 */
export function copyMasked(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  dstOffset: number,
  m0: number,
  m1: number,
  m2: number,
  m3: number,
  phase: number,
): void {
  let i = start;
  if (simd !== null && end - start >= SIMD_THRESHOLD) {
    i = simdMask(simd, src, start, end, dst, dstOffset, m0, m1, m2, m3, phase & 3);
  }
  const at = dstOffset + (i - start);
  dst.set(src.subarray(i, end), at);
  maskWith(dst, at, at + (end - i), m0, m1, m2, m3, phase + (i - start));
}

/**
 * XORs whole 64-byte blocks of `src` from `start` into `dst` (which may be
 * `src`) through WebAssembly memory. Returns where it stopped: fewer than 64
 * bytes before `end`, at the same mask phase (blocks are multiples of 4).
 */
function simdMask(
  engine: SimdMasker,
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  dstOffset: number,
  m0: number,
  m1: number,
  m2: number,
  m3: number,
  p: number,
): number {
  // WebAssembly loads little-endian words whatever the platform.
  const key = wordKey(p, m0, m1, m2, m3, true);
  const mem = engine.memory;
  let i = start;
  if (src.buffer === mem.buffer && src.byteOffset >= SIMD_BLOCK) {
    // The read region (simdReadBuffer): unmask where it lies, copy out once.
    const n = (end - i) & ~63;
    const at = src.byteOffset + i;
    engine.mask(at, n, key);
    if (dst !== src || dstOffset !== start) dst.set(mem.subarray(at, at + n), dstOffset);
    return i + n;
  }
  while (end - i >= 64) {
    const n = Math.min(SIMD_BLOCK, (end - i) & ~63);
    mem.set(src.subarray(i, i + n), 0);
    engine.mask(0, n, key);
    dst.set(mem.subarray(0, n), dstOffset + (i - start));
    i += n;
  }
  return i;
}
