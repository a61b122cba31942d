/**
 * Test helpers for the protocol suite: frames built by hand from bytes (RFC
 * 6455 §5.2), a decoder for what a Connection writes, a handler that records
 * a Connection's events, and fast-check arbitraries for text and cut points.
 *
 * The frame builder and decoder use nothing from src/protocol: they write and
 * read each header bit themselves, so a test can produce frames the library
 * would never send (reserved bits, non-minimal lengths, lying lengths, masks
 * on the wrong side) and check the library's output independently.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Connection, ReadyState, type ConnectionEvents, type PerMessageDeflate, type ProtocolError, type Role } from '../../src/protocol/index.js';

/** The masking key of the RFC's own examples (RFC 6455 §5.7). */
export const RFC_MASK: readonly number[] = [0x37, 0xfa, 0x21, 0x3d];

export interface FrameSpec {
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  opcode: number;
  /** Four key bytes, or null/undefined for an unmasked frame. */
  mask?: ArrayLike<number> | null;
  payload?: Uint8Array | string;
  /** Length field width: 7-bit, 16-bit (126) or 64-bit (127). Default: the minimal one. */
  lengthEncoding?: 7 | 16 | 64;
  /** Length written in the header instead of the payload's real length (a lying or header-only frame). */
  declaredLength?: number | bigint;
}

/**
 * `n` deterministic pseudo-random bytes (xorshift32 from `seed`). Unlike a
 * short repeating pattern, a block moved or dropped anywhere shows.
 */
export function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (Math.imul(seed + 1, 0x9e3779b1) >>> 0) || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function toBytes(payload: Uint8Array | string | undefined): Uint8Array {
  if (payload === undefined) return new Uint8Array(0);
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
}

function minimalEncoding(length: bigint): 7 | 16 | 64 {
  return length < 126n ? 7 : length < 0x10000n ? 16 : 64;
}

/** The header bytes of a frame (including the masking key when masked). */
export function buildHeader(spec: FrameSpec): Buffer {
  const payload = toBytes(spec.payload);
  const length = BigInt(spec.declaredLength ?? payload.length);
  const encoding = spec.lengthEncoding ?? minimalEncoding(length);
  const mask = spec.mask ?? null;
  const bytes: number[] = [];
  bytes.push(
    ((spec.fin ?? true) ? 0x80 : 0) |
      (spec.rsv1 ? 0x40 : 0) |
      (spec.rsv2 ? 0x20 : 0) |
      (spec.rsv3 ? 0x10 : 0) |
      (spec.opcode & 0x0f),
  );
  const maskBit = mask === null ? 0 : 0x80;
  if (encoding === 7) {
    if (length > 125n) throw new RangeError('length does not fit 7 bits');
    bytes.push(maskBit | Number(length));
  } else if (encoding === 16) {
    if (length > 0xffffn) throw new RangeError('length does not fit 16 bits');
    bytes.push(maskBit | 126, Number(length >> 8n), Number(length & 0xffn));
  } else {
    bytes.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) bytes.push(Number((length >> shift) & 0xffn));
  }
  if (mask !== null) {
    if (mask.length !== 4) throw new RangeError('a masking key has 4 bytes');
    for (let i = 0; i < 4; i++) bytes.push(mask[i] ?? 0);
  }
  return Buffer.from(bytes);
}

/** A whole frame as raw bytes: header, then the payload masked with `mask` if given. */
export function buildFrame(spec: FrameSpec): Buffer {
  const header = buildHeader(spec);
  const payload = toBytes(spec.payload);
  const out = Buffer.alloc(header.length + payload.length);
  header.copy(out, 0);
  out.set(payload, header.length);
  const mask = spec.mask ?? null;
  if (mask !== null) {
    for (let i = 0; i < payload.length; i++) {
      const at = header.length + i;
      out[at] = (out[at] ?? 0) ^ (mask[i & 3] ?? 0);
    }
  }
  return out;
}

/** A frame as a client sends it: masked (with the RFC's example key unless one is given). */
export function clientFrame(spec: FrameSpec): Buffer {
  return buildFrame({ ...spec, mask: spec.mask === undefined ? RFC_MASK : spec.mask });
}

/** A frame as a server sends it: unmasked. */
export function serverFrame(spec: Omit<FrameSpec, 'mask'>): Buffer {
  return buildFrame({ ...spec, mask: null });
}

/** A frame as the peer of a `role` Connection sends it: masked towards a server, unmasked towards a client. */
export function frameTo(role: Role, spec: Omit<FrameSpec, 'mask'>): Buffer {
  return role === 'server' ? clientFrame(spec) : serverFrame(spec);
}

export interface DecodedFrame {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  masked: boolean;
  /** The masking key, or null when unmasked. */
  maskKey: Buffer | null;
  /** Width of the length field used: 7, 16 or 64 bits. */
  lengthEncoding: 7 | 16 | 64;
  /** Header size in bytes, masking key included. */
  headerLength: number;
  /** The payload, unmasked. */
  payload: Buffer;
}

/** Joins what `FrameWriter.take()` returns into one Buffer (empty for null). */
export function joinOutput(out: Buffer | Buffer[] | null): Buffer {
  if (out === null) return Buffer.alloc(0);
  return Array.isArray(out) ? Buffer.concat(out) : Buffer.from(out);
}

/** Decodes a byte stream into whole frames; throws if it ends inside a frame. */
export function decodeFrames(input: Buffer | Buffer[] | null): DecodedFrame[] {
  const bytes = Array.isArray(input) || input === null ? joinOutput(input) : input;
  const frames: DecodedFrame[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < 2) throw new Error(`stream ends inside a frame header at ${pos}`);
    const b0 = bytes.readUInt8(pos);
    const b1 = bytes.readUInt8(pos + 1);
    let p = pos + 2;
    let length = b1 & 0x7f;
    let lengthEncoding: 7 | 16 | 64 = 7;
    if (length === 126) {
      length = bytes.readUInt16BE(p);
      p += 2;
      lengthEncoding = 16;
    } else if (length === 127) {
      const big = bytes.readBigUInt64BE(p);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('64-bit length too large for a test');
      length = Number(big);
      p += 8;
      lengthEncoding = 64;
    }
    const masked = (b1 & 0x80) !== 0;
    let maskKey: Buffer | null = null;
    if (masked) {
      maskKey = Buffer.from(bytes.subarray(p, p + 4));
      p += 4;
    }
    if (p + length > bytes.length) throw new Error(`stream ends inside the payload of the frame at ${pos}`);
    const payload = Buffer.from(bytes.subarray(p, p + length));
    if (maskKey !== null) {
      for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (maskKey[i & 3] ?? 0);
    }
    frames.push({
      fin: (b0 & 0x80) !== 0,
      rsv1: (b0 & 0x40) !== 0,
      rsv2: (b0 & 0x20) !== 0,
      rsv3: (b0 & 0x10) !== 0,
      opcode: b0 & 0x0f,
      masked,
      maskKey,
      lengthEncoding,
      headerLength: p - pos,
      payload,
    });
    pos = p + length;
  }
  return frames;
}

/** Status code and reason of a decoded close frame; code undefined for an empty payload. */
export function closeFrameOf(frame: DecodedFrame): { code: number | undefined; reason: string } {
  if (frame.opcode !== 0x8) throw new Error(`frame has opcode ${frame.opcode}, not close`);
  if (frame.payload.length === 0) return { code: undefined, reason: '' };
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString('utf8') };
}

/** A close payload: 2-byte code then the reason's bytes. */
export function closePayload(code: number, reason: Uint8Array | string = ''): Buffer {
  const r = toBytes(reason);
  const out = Buffer.alloc(2 + r.length);
  out.writeUInt16BE(code, 0);
  out.set(r, 2);
  return out;
}

export type RecordedEvent =
  | { type: 'message'; data: Buffer; isBinary: boolean; compressed: boolean }
  | { type: 'ping'; payload: Buffer }
  | { type: 'pong'; payload: Buffer }
  | { type: 'close'; code: number; reason: string }
  | { type: 'fail'; code: number; reason: string };

/**
 * A ConnectionEvents handler that records everything it is given: copies by
 * default, or (`keepViews`) the very buffers, to prove that nothing handed
 * out is overwritten later.
 */
export class Recorder implements ConnectionEvents {
  readonly events: RecordedEvent[] = [];
  private readonly keep: (b: Buffer) => Buffer;

  constructor(options: { keepViews?: boolean } = {}) {
    this.keep = options.keepViews === true ? (b) => b : (b) => Buffer.from(b);
  }

  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void {
    this.events.push({ type: 'message', data: this.keep(data), isBinary, compressed });
  }
  onPing(payload: Buffer): void {
    this.events.push({ type: 'ping', payload: this.keep(payload) });
  }
  onPong(payload: Buffer): void {
    this.events.push({ type: 'pong', payload: this.keep(payload) });
  }
  onPeerClose(code: number, reason: string): void {
    this.events.push({ type: 'close', code, reason });
  }
  onFail(error: ProtocolError): void {
    this.events.push({ type: 'fail', code: error.closeCode, reason: error.message });
  }

  messages(): Extract<RecordedEvent, { type: 'message' }>[] {
    return this.events.filter((e): e is Extract<RecordedEvent, { type: 'message' }> => e.type === 'message');
  }

  /** The close code of the one failure recorded, or undefined when the connection did not fail. */
  failCode(): number | undefined {
    const fails = this.events.filter((e): e is Extract<RecordedEvent, { type: 'fail' }> => e.type === 'fail');
    if (fails.length > 1) throw new Error(`connection failed ${fails.length} times`);
    return fails[0]?.code;
  }
}

export interface Harness {
  conn: Connection;
  rec: Recorder;
  /** Feeds bytes (a private copy, since the parser unmasks in place). */
  feed(...chunks: Uint8Array[]): void;
  /** Feeds each byte as its own chunk. */
  feedBytewise(bytes: Uint8Array): void;
  /** Takes and decodes everything the connection queued. */
  sent(): DecodedFrame[];
}

export interface HarnessOptions {
  maxPayload?: number;
  allowRsv1?: boolean;
  deflate?: PerMessageDeflate;
}

/** A Connection of `role` with a recorder attached. */
export function connect(role: Role, options: HarnessOptions = {}): Harness {
  const rec = new Recorder();
  const conn = new Connection(rec, {
    role,
    maxPayload: options.maxPayload ?? 64 * 1024 * 1024,
    allowRsv1: options.allowRsv1 ?? false,
    ...(options.deflate !== undefined ? { deflate: options.deflate } : {}),
  });
  return {
    conn,
    rec,
    feed(...chunks) {
      for (const c of chunks) conn.receive(Buffer.from(c));
    },
    feedBytewise(bytes) {
      for (let i = 0; i < bytes.length; i++) conn.receive(Buffer.from([bytes[i] ?? 0]));
    },
    sent() {
      return decodeFrames(conn.writer.take());
    },
  };
}

/** The single frame of `frames`; fails the test when there is not exactly one. */
export function onlyFrame(frames: DecodedFrame[]): DecodedFrame {
  const f = frames[0];
  assert.equal(frames.length, 1, `expected exactly one frame, got ${frames.length}`);
  assert.ok(f !== undefined);
  return f;
}

/**
 * Asserts the connection was failed (RFC 6455 §7.1.7) with `code`: one fail
 * event with that code, a close frame with that code as the last thing sent,
 * and the connection closed.
 */
export function assertFailedWith(h: Harness, code: number): void {
  assert.equal(h.rec.failCode(), code, `expected the connection to fail with ${code}`);
  const frames = h.sent();
  const last = frames[frames.length - 1];
  assert.ok(last !== undefined, 'no close frame was sent');
  assert.equal(last.opcode, 0x8, 'the last frame sent is not a close frame');
  assert.equal(closeFrameOf(last).code, code);
  assert.ok(last.payload.length <= 125, 'the close frame is longer than a control frame may be');
  assert.equal(h.conn.readyState, ReadyState.Closed);
  assert.equal(h.conn.wantsTransportClose, true);
}

/**
 * Text whose code points are drawn evenly from the four UTF-8 lengths (1 to
 * 4 bytes, RFC 3629 §3), so astral characters and every boundary are common.
 */
export function unicodeText(constraints: { maxLength?: number } = {}): fc.Arbitrary<string> {
  const codePoint = fc.oneof(
    fc.integer({ min: 0, max: 0x7f }),
    fc.integer({ min: 0x80, max: 0x7ff }),
    fc.oneof(fc.integer({ min: 0x800, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0xffff })),
    fc.integer({ min: 0x10000, max: 0x10ffff }),
    fc.constantFrom(0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xffff, 0x10000, 0x10ffff),
  );
  return fc
    .array(codePoint, { maxLength: constraints.maxLength ?? 40 })
    .map((cps) => String.fromCodePoint(...cps));
}

/** Cut points for `length` bytes: sorted, distinct, strictly inside (0, length). */
export function cutPoints(length: number): fc.Arbitrary<number[]> {
  if (length < 2) return fc.constant([]);
  return fc
    .uniqueArray(fc.integer({ min: 1, max: length - 1 }), { maxLength: Math.min(length - 1, 12) })
    .map((cuts) => cuts.sort((a, b) => a - b));
}

/** Splits `bytes` at `cuts` (sorted offsets). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const c of cuts) {
    pieces.push(bytes.subarray(from, c));
    from = c;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}
