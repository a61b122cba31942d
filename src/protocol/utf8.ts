/**
 * Incremental UTF-8 validation (RFC 3629), for text messages whose bytes
 * arrive in pieces: across fragments and across socket chunks.
 *
 * RFC 6455 §8.1 requires failing a connection whose text is not valid UTF-8;
 * detecting it on the byte that breaks it (rather than at the end of the
 * message) lets a server drop a bad peer without buffering its message.
 *
 * Complete code points are checked in bulk by Node's native `isUtf8`; only
 * a code point split at the end of a piece (at most 3 bytes) is walked byte by
 * byte, carrying its state to the next piece.
 */
import { isUtf8 } from 'node:buffer';

export { isUtf8 };

export class Utf8Validator {
  /** Continuation bytes still needed to complete the pending code point. */
  private need = 0;
  /** Allowed range of the next continuation byte (narrowed after E0, ED, F0, F4). */
  private lower = 0x80;
  private upper = 0xbf;

  /** True when no code point is left incomplete. */
  get complete(): boolean {
    return this.need === 0;
  }

  reset(): void {
    this.need = 0;
    // The range narrowed by an open E0, ED, F0 or F4 must not outlive it.
    this.lower = 0x80;
    this.upper = 0xbf;
  }

  /**
   * Feeds `data[start, end)`. Returns false as soon as the bytes seen so far
   * cannot be a prefix of valid UTF-8.
   */
  feed(data: Uint8Array, start: number, end: number): boolean {
    let i = start;
    // Finish the code point left open by the previous piece.
    while (this.need > 0 && i < end) {
      if (!this.step(data[i]!)) return false;
      i++;
    }
    if (i >= end) return true;
    // Find where a code point left incomplete at the end of the piece starts.
    let j = end - 1;
    let k = 0;
    while (j >= i && k < 3 && (data[j]! & 0xc0) === 0x80) {
      j--;
      k++;
    }
    let split = end;
    if (j >= i) {
      const len = sequenceLength(data[j]!);
      if (len > end - j) split = j;
    }
    if (split > i && !isUtf8(data.subarray(i, split))) return false;
    for (let t = split; t < end; t++) {
      if (!this.step(data[t]!)) return false;
    }
    return true;
  }

  /** Advances the byte-wise state machine over one byte. */
  private step(b: number): boolean {
    if (this.need > 0) {
      if (b < this.lower || b > this.upper) return false;
      this.lower = 0x80;
      this.upper = 0xbf;
      this.need--;
      return true;
    }
    if (b < 0x80) return true;
    if (b >= 0xc2 && b <= 0xdf) {
      this.need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      this.need = 2;
      if (b === 0xe0) this.lower = 0xa0; // overlong
      else if (b === 0xed) this.upper = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      this.need = 3;
      if (b === 0xf0) this.lower = 0x90; // overlong
      else if (b === 0xf4) this.upper = 0x8f; // above U+10FFFF
    } else {
      return false;
    }
    return true;
  }
}

/** Length of the sequence a lead byte starts, or 0 if it cannot start one. */
function sequenceLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}
