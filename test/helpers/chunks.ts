/**
 * Received bytes kept as the chunks they came in, joined only when a reader
 * needs them whole: taking in a large frame costs time linear in its size
 * (joining on every chunk would copy a 16 MiB frame's bytes hundreds of
 * times, which a loaded machine turns into a timeout).
 */
const EMPTY = Buffer.alloc(0);

export class ChunkQueue {
  private chunks: Buffer[] = [];
  /** Bytes held. */
  length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Everything held, as one buffer (joined once, then kept joined). */
  get joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? EMPTY;
  }

  /** The first `n` bytes at most, without joining the rest. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined) return EMPTY;
    if (first.length >= n || this.chunks.length === 1) return first.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(n, this.length)).subarray(0, n);
  }

  /** Drops the first `n` bytes. */
  consume(n: number): void {
    const rest = this.joined.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
  }
}

/** The size of the frame whose first bytes are `head` (or of its header, while that is incomplete): RFC 6455 §5.2. */
export function frameSize(head: Buffer): number {
  if (head.length < 2) return 2;
  const b1 = head[1] ?? 0;
  const mask = b1 & 0x80 ? 4 : 0;
  const len7 = b1 & 0x7f;
  if (len7 < 126) return 2 + mask + len7;
  const hlen = (len7 === 126 ? 4 : 10) + mask;
  if (head.length < hlen) return hlen;
  return hlen + (len7 === 126 ? head.readUInt16BE(2) : Number(head.readBigUInt64BE(2)));
}
