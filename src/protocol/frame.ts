/**
 * Frame-level constants and the header codec: opcodes, header bits, header
 * sizes and header encoding (RFC 6455 §5.2). Masking is in mask.ts.
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

/** Bits of a frame header's first byte (RFC 6455 §5.2): FIN, then RSV1 (permessage-deflate's "compressed", RFC 7692 §6). */
export const FIN_BIT = 0x80;
export const RSV1_BIT = 0x40;
/** The MASK bit of the second header byte (RFC 6455 §5.2). */
export const MASK_BIT = 0x80;

/** Control frames carry at most 125 bytes of payload (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;

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
  const maskBit = mask === null ? 0 : MASK_BIT;
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
