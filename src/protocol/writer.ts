/**
 * Frame serialisation into pending output (RFC 6455 §5.2, §5.3).
 *
 * Small frames are written, header and payload together, into a slab shared
 * by every connection of the process; consecutive frames of one connection
 * extend one contiguous run of that slab, so a burst of sends becomes a single
 * buffer and a single socket write. Large payloads are never copied to
 * prepend a header: the header goes into the slab and the payload is queued
 * by reference (the server side; a client must mask, which needs one copy).
 * Output is handed over with `take()`, once per flush.
 */
import { randomFillSync } from 'node:crypto';
import { headerSize, writeHeader } from './frame.js';
import { maskWith } from './mask.js';

/** Payloads up to this size are copied into the slab beside their header. */
export const COPY_THRESHOLD = 16 * 1024;
const SLAB_SIZE = 64 * 1024;

let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabOffset = 0;

/** Returns the offset of `n` free bytes in the current slab, starting a new slab if needed. */
function reserve(n: number): number {
  if (slabOffset + n > slab.length) {
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
    slabOffset = 0;
  }
  const at = slabOffset;
  slabOffset += n;
  return at;
}

// Masking keys come from a pool of cryptographically random bytes, refilled
// in bulk: RFC 6455 §5.3 asks for an unpredictable key per frame.
const RANDOM_POOL_SIZE = 8 * 1024;
const randomPool: Buffer = Buffer.allocUnsafeSlow(RANDOM_POOL_SIZE);
let randomOffset = RANDOM_POOL_SIZE;

/** Takes 4 fresh random bytes; returns their offset in `randomPool`. */
function takeMaskKey(): number {
  if (randomOffset + 4 > RANDOM_POOL_SIZE) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const at = randomOffset;
  randomOffset += 4;
  return at;
}

/** Writes a header whose masking key (when `masked`) is fresh from the pool; returns the payload offset. */
function writeFrameHeader(target: Buffer, at: number, first: number, len: number, masked: boolean): number {
  return masked ? writeHeader(target, at, first, len, randomPool, takeMaskKey()) : writeHeader(target, at, first, len, null);
}

/** Masks `target[p, p + len)` with the key in the 4 bytes just before it (the header's). */
function maskAfterHeader(target: Buffer, p: number, len: number): void {
  maskWith(target, p, p + len, target[p - 4]!, target[p - 3]!, target[p - 2]!, target[p - 1]!, 0);
}

/** Pending output of one connection. */
export class FrameWriter {
  /** True for clients: every frame is masked with a fresh key (RFC 6455 §5.3). */
  private readonly mask: boolean;
  private runSlab: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  private queue: Buffer[] | null = null;
  /** Bytes written but not yet taken. */
  pending = 0;

  constructor(mask: boolean) {
    this.mask = mask;
  }

  /** True when there is output to take. */
  get hasOutput(): boolean {
    return this.runSlab !== null || this.queue !== null;
  }

  /** Serialises one frame. `first` is the first header byte (FIN, RSV, opcode). */
  frame(first: number, payload: Uint8Array): void {
    const len = payload.length;
    const masked = this.mask;
    const hlen = headerSize(len, masked);
    if (len <= COPY_THRESHOLD) {
      const at = this.extend(hlen + len);
      const p = writeFrameHeader(slab, at, first, len, masked);
      if (len > 0) {
        slab.set(payload, p);
        if (masked) maskAfterHeader(slab, p, len);
      }
    } else if (masked) {
      const out = Buffer.allocUnsafe(hlen + len);
      const p = writeFrameHeader(out, 0, first, len, true);
      out.set(payload, p);
      maskAfterHeader(out, p, len);
      this.enqueue(out);
    } else {
      const at = this.extend(hlen);
      writeHeader(slab, at, first, len, null);
      this.enqueue(toBuffer(payload));
    }
    this.pending += hlen + len;
  }

  /** Serialises one text frame, encoding the string straight into the output. */
  textFrame(first: number, text: string): void {
    // Short strings: at most 3 bytes per UTF-16 unit, so an upper bound fits the slab.
    if (text.length * 3 <= COPY_THRESHOLD) {
      const len = Buffer.byteLength(text);
      const masked = this.mask;
      const hlen = headerSize(len, masked);
      const at = this.extend(hlen + len);
      const p = writeFrameHeader(slab, at, first, len, masked);
      if (len > 0) {
        slab.write(text, p, len, 'utf8');
        if (masked) maskAfterHeader(slab, p, len);
      }
      this.pending += hlen + len;
      return;
    }
    this.frame(first, Buffer.from(text, 'utf8'));
  }

  /**
   * Queues bytes that are already serialised: a whole frame (a topic message
   * framed once for many connections), or what precedes the frames on the
   * wire (the server's 101 response, so it leaves in the same write as the
   * first frames). Never mutated.
   */
  raw(bytes: Buffer): void {
    if (bytes.length <= 256) {
      const at = this.extend(bytes.length);
      bytes.copy(slab, at);
    } else {
      this.enqueue(bytes);
    }
    this.pending += bytes.length;
  }

  /**
   * Hands over everything pending: one Buffer (the common case), an array of
   * Buffers to write in order, or null when there is nothing.
   */
  take(): Buffer | Buffer[] | null {
    const run = this.closeRun();
    const queue = this.queue;
    this.pending = 0;
    if (queue === null) return run;
    this.queue = null;
    if (run !== null) queue.push(run);
    return queue;
  }

  /** Reserves `n` bytes in the slab, extending this writer's current run when it can. */
  private extend(n: number): number {
    if (this.runSlab !== null && !(this.runSlab === slab && this.runEnd === slabOffset && slabOffset + n <= slab.length)) {
      this.pushPiece(this.closeRun() as Buffer);
    }
    const at = reserve(n);
    if (this.runSlab === null) {
      this.runSlab = slab;
      this.runStart = at;
    }
    this.runEnd = at + n;
    return at;
  }

  private closeRun(): Buffer | null {
    const s = this.runSlab;
    if (s === null) return null;
    this.runSlab = null;
    return s.subarray(this.runStart, this.runEnd);
  }

  private enqueue(buf: Buffer): void {
    const run = this.closeRun();
    if (run !== null) this.pushPiece(run);
    this.pushPiece(buf);
  }

  private pushPiece(buf: Buffer): void {
    if (this.queue === null) this.queue = [buf];
    else this.queue.push(buf);
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
