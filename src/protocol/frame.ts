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
 * after it. `first` carries FIN, RSV1-3 and the opcode. When `mask` is given
 * its 4 bytes follow the length (the caller masks the payload).
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  first: number,
  length: number,
  mask: Uint8Array | null,
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
    target[offset++] = mask[0]!;
    target[offset++] = mask[1]!;
    target[offset++] = mask[2]!;
    target[offset++] = mask[3]!;
  }
  return offset;
}

/** Below this many bytes, a byte loop beats building a word view. */
const WORD_MASK_THRESHOLD = 32;

/**
 * XORs `data[start, end)` in place with the 4-byte `mask`, as if the mask
 * cycle began `phase` bytes before `start` (RFC 6455 §5.3). Long runs are
 * processed a 32-bit word at a time over the aligned middle of the range.
 */
export function maskInPlace(
  data: Uint8Array,
  start: number,
  end: number,
  mask: Uint8Array,
  phase: number,
): void {
  const m0 = mask[0]!, m1 = mask[1]!, m2 = mask[2]!, m3 = mask[3]!;
  let i = start;
  let p = phase & 3;
  if (end - start >= WORD_MASK_THRESHOLD) {
    // Advance bytewise to a 4-byte aligned address.
    const abs = data.byteOffset + i;
    let lead = (4 - (abs & 3)) & 3;
    while (lead-- > 0) {
      data[i] = data[i]! ^ (p === 0 ? m0 : p === 1 ? m1 : p === 2 ? m2 : m3);
      i++;
      p = (p + 1) & 3;
    }
    const words = (end - i) >>> 2;
    if (words > 0) {
      // The word seen at this position starts with mask byte p; build it in
      // memory order so the platform's endianness is respected.
      const k = [m0, m1, m2, m3];
      const scratch = new Uint8Array(4);
      scratch[0] = k[p]!;
      scratch[1] = k[(p + 1) & 3]!;
      scratch[2] = k[(p + 2) & 3]!;
      scratch[3] = k[(p + 3) & 3]!;
      const key = new Uint32Array(scratch.buffer)[0]!;
      const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
      for (let w = 0; w < words; w++) view[w] = view[w]! ^ key;
      i += words << 2;
    }
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
