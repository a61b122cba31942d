/**
 * Incremental frame parser (RFC 6455 §5): bytes in, messages and control
 * frames out.
 *
 * It consumes each socket chunk in one pass, whatever its boundaries: a chunk
 * may hold many frames, or one byte of one. A frame header split across
 * chunks is gathered in a 14-byte scratch; payloads are unmasked in place in
 * the chunk, so an unfragmented message that arrives whole is handed out as a
 * view of the chunk with no copy. Fragments (and frames split across chunks)
 * are appended into one growing buffer bounded by `maxPayload`, so a flood of
 * tiny fragments costs nothing beyond its bytes.
 *
 * Every violation is reported once, as a `ProtocolError` carrying its close
 * code, after which the parser ignores all further input.
 */
import { CloseCode } from './close.js';
import { ProtocolError } from './errors.js';
import { FIN_BIT, MASK_BIT, MAX_CONTROL_PAYLOAD, Opcode, RSV1_BIT, isControlOpcode, isKnownOpcode } from './frame.js';
import { copyMasked, maskWith } from './mask.js';
import { Utf8Validator, isUtf8 } from './utf8.js';

export interface ParserEvents {
  /** A complete data message. `compressed` is set when its first frame had RSV1 (permessage-deflate). */
  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void;
  /** A complete control frame (close, ping or pong) with its unmasked payload. */
  onControl(opcode: number, payload: Buffer): void;
  /** The peer broke the protocol; nothing more is parsed. */
  onProtocolError(error: ProtocolError): void;
}

export interface ParserOptions {
  /** True on the server: every frame from a client must be masked, and none from a server may be (RFC 6455 §5.1). */
  expectMasked: boolean;
  /** Largest message accepted, in bytes; a larger one fails with 1009 as soon as its header says so. */
  maxPayload: number;
  /** RSV1 is meaningful (permessage-deflate negotiated, RFC 7692 §6). */
  allowRsv1?: boolean;
  /**
   * The receiver inflates compressed messages inside `onMessage` and keeps
   * nothing of what it is given: a compressed message that arrived whole in
   * a borrowed chunk is then handed over as a view of that chunk, not copied.
   */
  lendCompressed?: boolean;
}

// Flags in FrameParser.bits.
const EXPECT_MASKED = 1;
const ALLOW_RSV1 = 2;
const STOPPED = 4;
/** Reading a payload (else: a header). */
const IN_PAYLOAD = 8;
/** The frame being read has FIN set (the last of its message). */
const FINAL = 16;
const MASKED = 32;
const MSG_COMPRESSED = 64;
const LEND_COMPRESSED = 128;

const EMPTY = Buffer.alloc(0);

/**
 * What is left of a borrowed chunk, when at most this size, is copied whole,
 * once, and then parsed as if owned: one copy per read beats one per message
 * when messages are small. In a larger one payloads are copied out one by
 * one (compressed messages lent to the receiver are not copied at all).
 */
const BORROWED_COPY_WHOLE = 16 * 1024;

export class FrameParser {
  private readonly events: ParserEvents;
  private readonly maxPayload: number;
  /**
   * Boolean state packed into one field (EXPECT_MASKED, ALLOW_RSV1, STOPPED,
   * IN_PAYLOAD, FINAL, MASKED, MSG_COMPRESSED): an idle connection pays for
   * every field of this object, 8 bytes each.
   */
  private bits = 0;

  // Header gathered across chunks: at most 2 + 8 + 4 bytes.
  private hdr: Buffer | null = null;
  private hdrHave = 0;

  // The frame being read. The masking key is one 32-bit number, first byte highest.
  private opcode = 0;
  private mask = 0;
  private payloadLength = 0;
  private payloadRead = 0;

  // The data message being assembled (opcode 0 when none).
  private msgOpcode = 0;
  private msgBuf: Buffer | null = null;
  private msgLength = 0;
  private utf8: Utf8Validator | null = null;

  // A control frame whose payload spans chunks.
  private ctlBuf: Buffer | null = null;

  constructor(events: ParserEvents, options: ParserOptions) {
    this.events = events;
    if (options.expectMasked) this.bits |= EXPECT_MASKED;
    this.maxPayload = options.maxPayload;
    if (options.allowRsv1 === true) this.bits |= ALLOW_RSV1;
    if (options.lendCompressed === true) this.bits |= LEND_COMPRESSED;
  }

  /** Enables RSV1 once an extension that uses it is negotiated. */
  setAllowRsv1(allow: boolean): void {
    this.bits = allow ? this.bits | ALLOW_RSV1 : this.bits & ~ALLOW_RSV1;
  }

  /**
   * Between frames with nothing carried over (no partial header, payload or
   * fragmented message) and not stopped: the parser holds no state a fresh
   * one would not have.
   */
  get idle(): boolean {
    return (this.bits & (IN_PAYLOAD | STOPPED)) === 0 && this.hdrHave === 0 && this.msgOpcode === 0;
  }

  /** Ignore all further input (after a close frame, or once the connection failed). */
  stop(): void {
    this.bits |= STOPPED;
    this.msgBuf = null;
    this.ctlBuf = null;
  }

  /**
   * Parses one chunk. Payload bytes of masked frames are unmasked in place,
   * so the chunk must belong to the caller (a socket's `data` buffer does).
   * A `borrowed` chunk is reused by its owner once this returns: payloads
   * are then copied out of it (unmasked on the way), never viewed, except a
   * compressed message lent to a receiver that inflates it at once
   * (ParserOptions.lendCompressed).
   */
  push(chunk: Buffer, borrowed = false): void {
    let end = chunk.length;
    let pos = 0;
    while (pos < end && (this.bits & STOPPED) === 0) {
      if ((this.bits & IN_PAYLOAD) === 0) {
        if (this.hdrHave === 0 && end - pos >= 2) {
          const need = headerLength(chunk[pos + 1]!);
          if (end - pos >= need) {
            if (!this.parseHeader(chunk, pos)) return;
            pos += need;
            if (this.payloadLength === 0) {
              this.endFrame(chunk, pos, pos);
              continue;
            }
          } else {
            pos = this.gatherHeader(chunk, pos);
            continue;
          }
        } else {
          pos = this.gatherHeader(chunk, pos);
          continue;
        }
      }
      // Reading a payload.
      const take = Math.min(end - pos, this.payloadLength - this.payloadRead);
      // The header ended the chunk: wait for payload bytes, so a payload that
      // then arrives whole still takes the no-copy path.
      if (take === 0) break;
      let stop = pos + take;
      if (this.payloadRead === 0 && take === this.payloadLength) {
        if (borrowed && !this.lendable() && end - pos <= BORROWED_COPY_WHOLE) {
          // Small frames from here on: one copy of the rest of the chunk,
          // parsed as owned from now on.
          const own = Buffer.allocUnsafe(end - pos);
          chunk.copy(own, 0, pos, end);
          chunk = own;
          end = own.length;
          pos = 0;
          stop = take;
          borrowed = false;
        }
        if (borrowed && !this.lendable()) {
          // The whole payload is here, in a chunk about to be reused: one
          // copy, unmasked on the way.
          const own = Buffer.allocUnsafe(take);
          this.copyPayload(chunk, pos, stop, own, 0);
          this.endFrame(own, 0, take);
        } else {
          // The whole payload is in this chunk: unmask it in place.
          const k = this.mask;
          if (this.bits & MASKED) maskWith(chunk, pos, stop, k >>> 24, (k >>> 16) & 0xff, (k >>> 8) & 0xff, k & 0xff, 0);
          this.endFrame(chunk, pos, stop);
        }
      } else {
        // Part of a payload: unmasked while it is copied into its buffer.
        this.partialPayload(chunk, pos, stop);
      }
      pos = stop;
    }
  }

  /**
   * Whether the frame just parsed is a whole compressed message the receiver
   * takes as a loan (see ParserOptions.lendCompressed): its payload may stay
   * in a borrowed chunk, unmasked in place.
   */
  private lendable(): boolean {
    const b = this.bits;
    return (b & (LEND_COMPRESSED | MSG_COMPRESSED | FINAL)) === (LEND_COMPRESSED | MSG_COMPRESSED | FINAL) && this.msgLength === 0 && !isControlOpcode(this.opcode);
  }

  /** Copies header bytes into the scratch; parses the header once it is whole. */
  private gatherHeader(chunk: Buffer, pos: number): number {
    const hdr = (this.hdr ??= Buffer.allocUnsafe(14));
    const end = chunk.length;
    if (this.hdrHave < 2) {
      const n = Math.min(2 - this.hdrHave, end - pos);
      for (let i = 0; i < n; i++) hdr[this.hdrHave++] = chunk[pos++]!;
      if (this.hdrHave < 2) return pos;
    }
    const need = headerLength(hdr[1]!);
    const n = Math.min(need - this.hdrHave, end - pos);
    for (let i = 0; i < n; i++) hdr[this.hdrHave++] = chunk[pos++]!;
    if (this.hdrHave < need) return pos;
    this.hdrHave = 0;
    if (!this.parseHeader(hdr, 0)) return end;
    if (this.payloadLength === 0) this.endFrame(chunk, pos, pos);
    return pos;
  }

  /** Decodes and checks a whole header at `buf[pos]`. Returns false when it failed the connection. */
  private parseHeader(buf: Buffer, pos: number): boolean {
    const b0 = buf[pos]!;
    const b1 = buf[pos + 1]!;
    const fin = (b0 & FIN_BIT) !== 0;
    const rsv1 = (b0 & RSV1_BIT) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & MASK_BIT) !== 0;
    let len = b1 & 0x7f;
    let p = pos + 2;

    // RFC 6455 §5.2: RSV bits must be 0 unless an extension defines them.
    if ((b0 & 0x30) !== 0) return this.fail(CloseCode.ProtocolError, 'reserved bits RSV2/RSV3 set');
    if (!isKnownOpcode(opcode)) return this.fail(CloseCode.ProtocolError, `reserved opcode 0x${opcode.toString(16)}`);
    const expectMasked = (this.bits & EXPECT_MASKED) !== 0;
    if (masked !== expectMasked) {
      return this.fail(
        CloseCode.ProtocolError,
        expectMasked ? 'client frame is not masked' : 'server frame is masked',
      );
    }
    if (isControlOpcode(opcode)) {
      // RFC 6455 §5.5: control frames are never fragmented and carry <= 125 bytes.
      if (!fin) return this.fail(CloseCode.ProtocolError, 'fragmented control frame');
      if (len > MAX_CONTROL_PAYLOAD) return this.fail(CloseCode.ProtocolError, 'control frame payload over 125 bytes');
      if (rsv1) return this.fail(CloseCode.ProtocolError, 'RSV1 set on a control frame');
    } else if (opcode === Opcode.Continuation) {
      if (this.msgOpcode === 0) return this.fail(CloseCode.ProtocolError, 'continuation frame with no message started');
      // RFC 7692 §6: RSV1 marks only the first frame of a compressed message.
      if (rsv1) return this.fail(CloseCode.ProtocolError, 'RSV1 set on a continuation frame');
    } else {
      if (this.msgOpcode !== 0) return this.fail(CloseCode.ProtocolError, 'new data frame while a fragmented message is in progress');
      if (rsv1 && (this.bits & ALLOW_RSV1) === 0) return this.fail(CloseCode.ProtocolError, 'reserved bit RSV1 set without a negotiated extension');
    }

    if (len === 126) {
      len = (buf[p]! << 8) | buf[p + 1]!;
      p += 2;
    } else if (len === 127) {
      const hi = buf.readUInt32BE(p);
      const lo = buf.readUInt32BE(p + 4);
      p += 8;
      if (hi & 0x80000000) return this.fail(CloseCode.ProtocolError, 'payload length has its most significant bit set');
      // Anything past 2^53 is far beyond any maxPayload; clamp so the check below fails it.
      len = hi > 0x1fffff ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + lo;
    }

    if (!isControlOpcode(opcode) && this.msgLength + len > this.maxPayload) {
      return this.fail(CloseCode.MessageTooBig, `message exceeds maxPayload of ${this.maxPayload} bytes`);
    }

    // Signed, so the field stays a small integer (an unsigned value over 2^31 would be boxed).
    if (masked) this.mask = buf.readInt32BE(p);

    let bits = this.bits & ~(FINAL | MASKED);
    if (fin) bits |= FINAL;
    if (masked) bits |= MASKED;
    this.opcode = opcode;
    this.payloadLength = len;
    this.payloadRead = 0;
    if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      this.msgOpcode = opcode;
      bits = rsv1 ? bits | MSG_COMPRESSED : bits & ~MSG_COMPRESSED;
      this.msgLength = 0;
      this.utf8?.reset();
    }
    this.bits = bits | IN_PAYLOAD;
    return true;
  }

  /** Part of a frame's payload, `chunk[start, end)`, still masked if the frame is. */
  private partialPayload(chunk: Buffer, start: number, end: number): void {
    const n = end - start;
    if (isControlOpcode(this.opcode)) {
      // A buffer of its own per frame: the payload is handed out and may be kept.
      let ctl = this.ctlBuf;
      if (ctl === null || this.payloadRead === 0) ctl = this.ctlBuf = Buffer.allocUnsafe(this.payloadLength);
      this.copyPayload(chunk, start, end, ctl, this.payloadRead);
      this.payloadRead += n;
      if (this.payloadRead === this.payloadLength) {
        this.bits &= ~IN_PAYLOAD;
        this.ctlBuf = null;
        this.control(ctl);
      }
      return;
    }
    if (!this.appendData(chunk, start, end, (this.bits & MASKED) !== 0)) return;
    this.payloadRead += n;
    if (this.payloadRead === this.payloadLength) {
      this.bits &= ~IN_PAYLOAD;
      if (this.bits & FINAL) this.deliverAssembled();
    }
  }

  /** A frame whose whole payload is `chunk[start, end)` (unmasked), or empty. */
  private endFrame(chunk: Buffer, start: number, end: number): void {
    this.bits &= ~IN_PAYLOAD;
    const opcode = this.opcode;
    if (isControlOpcode(opcode)) {
      this.control(start === end ? EMPTY : chunk.subarray(start, end));
      return;
    }
    const compressed = (this.bits & MSG_COMPRESSED) !== 0;
    if (this.bits & FINAL && this.msgBuf === null && this.msgLength === 0) {
      // Fast path: an unfragmented message handed out as a view of the chunk.
      const data = start === end ? EMPTY : chunk.subarray(start, end);
      const isText = this.msgOpcode === Opcode.Text;
      this.msgOpcode = 0;
      if (isText && !compressed && !isUtf8(data)) {
        this.fail(CloseCode.InvalidPayload, 'text message is not valid UTF-8');
        return;
      }
      this.events.onMessage(data, !isText, compressed);
      return;
    }
    if (end > start && !this.appendData(chunk, start, end, false)) return;
    if (this.bits & FINAL) this.deliverAssembled();
  }

  /**
   * Copies payload bytes `chunk[start, end)` to `dst` at `at`, unmasking them
   * when the frame is masked (the phase is the frame's bytes read so far).
   */
  private copyPayload(chunk: Buffer, start: number, end: number, dst: Buffer, at: number): void {
    const k = this.mask;
    if (this.bits & MASKED) copyMasked(chunk, start, end, dst, at, k >>> 24, (k >>> 16) & 0xff, (k >>> 8) & 0xff, k & 0xff, this.payloadRead);
    else chunk.copy(dst, at, start, end);
  }

  /**
   * Appends payload bytes to the message being assembled (unmasking them on
   * the way when `unmask`), validating text as it goes.
   */
  private appendData(chunk: Buffer, start: number, end: number, unmask: boolean): boolean {
    const n = end - start;
    const needed = this.msgLength + n;
    let buf = this.msgBuf;
    if (buf === null || buf.length < needed) {
      // Reserve the rest of this frame at once; grow geometrically across
      // fragments, never beyond maxPayload.
      const frameRest = this.payloadLength - this.payloadRead;
      let cap = this.msgLength + frameRest;
      if ((this.bits & FINAL) === 0) cap = Math.max(cap, Math.min(this.maxPayload, Math.max(1024, (buf?.length ?? 0) * 2)));
      const next = Buffer.allocUnsafe(Math.max(cap, needed));
      if (buf !== null && this.msgLength > 0) buf.copy(next, 0, 0, this.msgLength);
      buf = this.msgBuf = next;
    }
    const at = this.msgLength;
    if (unmask) this.copyPayload(chunk, start, end, buf, at);
    else chunk.copy(buf, at, start, end);
    this.msgLength = needed;
    if (this.msgOpcode === Opcode.Text && (this.bits & MSG_COMPRESSED) === 0) {
      const v = (this.utf8 ??= new Utf8Validator());
      if (!v.feed(buf, at, needed)) {
        this.fail(CloseCode.InvalidPayload, 'text message is not valid UTF-8');
        return false;
      }
    }
    return true;
  }

  private deliverAssembled(): void {
    const isText = this.msgOpcode === Opcode.Text;
    const compressed = (this.bits & MSG_COMPRESSED) !== 0;
    if (isText && !compressed && this.utf8 !== null && this.msgLength > 0 && !this.utf8.complete) {
      this.fail(CloseCode.InvalidPayload, 'text message ends inside a UTF-8 sequence');
      return;
    }
    const data = this.msgBuf === null ? EMPTY : this.msgBuf.subarray(0, this.msgLength);
    this.msgBuf = null;
    this.msgLength = 0;
    this.msgOpcode = 0;
    this.events.onMessage(data, !isText, compressed);
  }

  private control(payload: Buffer): void {
    this.events.onControl(this.opcode, payload);
  }

  private fail(code: number, reason: string): false {
    this.stop();
    this.events.onProtocolError(new ProtocolError(code, reason));
    return false;
  }
}

/** Header length implied by the second header byte: 2, 4 or 10 bytes, plus 4 when masked. */
function headerLength(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}
