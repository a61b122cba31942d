/**
 * The sliding window of a permessage-deflate receiver, kept outside zlib so
 * the inflater that holds it can be released while a connection is idle.
 *
 * Why this is needed: unless `client_no_context_takeover` (for a server;
 * `server_no_context_takeover` for a client) was agreed, the peer's
 * compressor keeps its LZ77 window across messages (RFC 7692 §7.1.1) and may
 * refer back into any of the last 2^window_bits bytes of earlier messages
 * (RFC 1951 §3.2.5 distances; the window size is `*_max_window_bits`, §7.1.2).
 * Between two messages an inflater holds nothing else: every message ends
 * with a sync flush (§7.2.1), so the inflater is on a byte boundary before a
 * block header with no pending bits. Those last bytes are therefore the whole
 * state, and a new raw inflater given them as its preset dictionary (zlib's
 * inflateSetDictionary, the `dictionary` option of `node:zlib`) continues
 * exactly where the released one stopped.
 */

/** Smallest buffer a history starts with; it doubles up to the window size. */
const MIN_CAPACITY = 1024;

/**
 * The last `size` bytes of a stream of messages (across messages). Its
 * buffer grows with what it holds, so a connection that sent a few small
 * messages keeps a few small buffers' worth, not a whole window.
 */
export class WindowHistory {
  private buf: Buffer | null = null;
  private len = 0;

  /** `size`: 2^window_bits of the compressor the bytes went through. */
  constructor(readonly size: number) {}

  get length(): number {
    return this.len;
  }

  /** Adds a message's bytes: only the last `size` of everything are kept. */
  append(data: Uint8Array): void {
    const size = this.size;
    const n = data.length;
    if (n === 0) return;
    let buf = this.buf;
    const want = Math.min(size, this.len + n);
    if (buf === null || buf.length < want) {
      let capacity = Math.max(MIN_CAPACITY, buf?.length ?? 0);
      while (capacity < want) capacity *= 2;
      const bigger = Buffer.allocUnsafeSlow(Math.min(capacity, size));
      if (buf !== null) buf.copy(bigger, 0, 0, this.len);
      this.buf = buf = bigger;
    }
    if (n >= size) {
      buf.set(data.subarray(n - size), 0);
      this.len = size;
    } else if (this.len + n <= size) {
      buf.set(data, this.len);
      this.len += n;
    } else {
      const keep = size - n;
      buf.copyWithin(0, this.len - keep, this.len);
      buf.set(data, keep);
      this.len = size;
    }
  }

  /** The bytes kept, oldest first (a view, valid until the next change). */
  bytes(): Uint8Array {
    return this.buf === null ? new Uint8Array(0) : this.buf.subarray(0, this.len);
  }

  /** Forgets everything and frees the buffer (a new deflate stream starts, or the window was packed away). */
  clear(): void {
    this.buf = null;
    this.len = 0;
  }
}
