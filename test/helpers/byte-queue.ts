/**
 * Bytes received from a socket, kept as the chunks they came in and consumed
 * in linear time: a read copies only when it spans chunks, so a test peer
 * reading large frames never re-copies its whole backlog per chunk.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Bytes held. */
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first min(n, length) bytes, left in place. */
  peek(n: number): Buffer {
    const out = Buffer.alloc(Math.min(n, this.length));
    let at = 0;
    for (const c of this.chunks) {
      if (at === out.length) break;
      at += c.copy(out, at, 0, Math.min(c.length, out.length - at));
    }
    return out;
  }

  /** Removes and returns the first `n` bytes (at most one copy); RangeError if fewer are held. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue: ${n} bytes wanted, ${this.length} held`);
    this.length -= n;
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks.shift();
      if (c === undefined) break;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k < c.length) this.chunks.unshift(c.subarray(k));
    }
    return out;
  }
}
