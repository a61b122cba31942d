/**
 * Frame-level constants and helpers: opcodes, header sizes, header encoding
 * and masking (RFC 6455 §5.2, §5.3).
 */

/** Frame opcodes (RFC 6455 §5.2, §11.8). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Control frames carry at most 125 bytes of payload (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;

/** Largest payload length a frame header can describe without the 64-bit MSB (RFC 6455 §5.2). */
export const MAX_FRAME_PAYLOAD = Number.MAX_SAFE_INTEGER;

export function isControlOpcode(op: number): boolean {
  return (op & 0x8) !== 0;
}

export function isKnownOpcode(op: number): boolean {
  return op <= 0x2 || (op >= 0x8 && op <= 0xa);
}

/** Size in bytes of a frame header for a payload of `length` bytes. */
export function headerSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset just
 * after it. `first` carries FIN, RSV1-3 and the opcode. When `mask` is given,
 * its 4 bytes at `maskOffset` follow the length (the caller masks the payload).
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  first: number,
  length: number,
  mask: Uint8Array | null,
  maskOffset = 0,
): number {
  target[offset++] = first;
  const maskBit = mask === null ? 0 : 0x80;
  if (length < 126) {
    target[offset++] = maskBit | length;
  } else if (length < 0x10000) {
    target[offset++] = maskBit | 126;
    target[offset++] = length >>> 8;
    target[offset++] = length & 0xff;
  } else {
    target[offset++] = maskBit | 127;
    // 64-bit length, most significant bit 0 (RFC 6455 §5.2). Payloads stay
    // below 2^53, so the high word is computed by division.
    const hi = Math.floor(length / 0x100000000);
    const lo = length >>> 0;
    target[offset++] = (hi >>> 24) & 0xff;
    target[offset++] = (hi >>> 16) & 0xff;
    target[offset++] = (hi >>> 8) & 0xff;
    target[offset++] = hi & 0xff;
    target[offset++] = lo >>> 24;
    target[offset++] = (lo >>> 16) & 0xff;
    target[offset++] = (lo >>> 8) & 0xff;
    target[offset++] = lo & 0xff;
  }
  if (mask !== null) {
    target[offset++] = mask[maskOffset]!;
    target[offset++] = mask[maskOffset + 1]!;
    target[offset++] = mask[maskOffset + 2]!;
    target[offset++] = mask[maskOffset + 3]!;
  }
  return offset;
}

/** Below this many bytes, a byte loop beats building a word view. */
const WORD_MASK_THRESHOLD = 32;

/** Whether this platform stores the low byte of a 32-bit word first. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

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
  if (end - start >= WORD_MASK_THRESHOLD) {
    // Advance bytewise to a 4-byte aligned address.
    let lead = (4 - ((data.byteOffset + i) & 3)) & 3;
    while (lead-- > 0) {
      data[i] = data[i]! ^ (p === 0 ? m0 : p === 1 ? m1 : p === 2 ? m2 : m3);
      i++;
      p = (p + 1) & 3;
    }
    const words = (end - i) >>> 2;
    // The word at this position starts with mask byte p, in memory order.
    const b0 = p === 0 ? m0 : p === 1 ? m1 : p === 2 ? m2 : m3;
    const b1 = p === 0 ? m1 : p === 1 ? m2 : p === 2 ? m3 : m0;
    const b2 = p === 0 ? m2 : p === 1 ? m3 : p === 2 ? m0 : m1;
    const b3 = p === 0 ? m3 : p === 1 ? m0 : p === 2 ? m1 : m2;
    const key = LITTLE_ENDIAN ? b0 | (b1 << 8) | (b2 << 16) | (b3 << 24) : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
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
 * Copies `src[start, end)` into `dst` at `dstOffset`, masked with `mask`
 * from phase 0. Used by the client so a caller's buffer is never mutated.
 */
export function maskCopy(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  dstOffset: number,
  mask: Uint8Array,
): void {
  const len = end - start;
  dst.set(src.subarray(start, end), dstOffset);
  maskInPlace(dst, dstOffset, dstOffset + len, mask, 0);
}
