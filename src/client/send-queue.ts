/**
 * The client's send queue behind a Blob: WHATWG WebSockets § send() sends a
 * Blob's bytes in order with the other messages, but reading a Blob is
 * asynchronous, so every send (and the close frame) made while one is being
 * read waits behind it, in order.
 */
import type { Blob } from 'node:buffer';

/** A send() held back behind a Blob that is still being read. */
type Entry =
  | { kind: 'text'; text: string; size: number }
  | { kind: 'bytes'; bytes: Uint8Array; size: number }
  | { kind: 'blob'; size: number; bytes: Uint8Array | null; error: Error | null }
  | { kind: 'close'; code: number | null; reason: string; size: 0 };

/** Where queued sends go once the Blobs before them are read. */
export interface SendSink {
  writeText(text: string, size: number): void;
  writeBytes(bytes: Uint8Array, size: number): void;
  writeClose(code: number | null, reason: string): void;
  /** A Blob could not be read: `size` bytes will never be sent. */
  blobFailed(size: number, error: Error): void;
  /** The queue is empty again (its bytes left `deferredBytes`). */
  queueEmptied(): void;
}

export class SendQueue {
  private readonly sink: SendSink;
  private entries: Entry[] = [];
  /** Bytes of the sends waiting here. */
  bytes = 0;

  constructor(sink: SendSink) {
    this.sink = sink;
  }

  text(text: string, size: number): void {
    this.entries.push({ kind: 'text', text, size });
    this.bytes += size;
  }

  /** Snapshots `bytes`: the caller may reuse its buffer once send() returns. */
  binary(bytes: Uint8Array): void {
    this.entries.push({ kind: 'bytes', bytes: bytes.slice(), size: bytes.byteLength });
    this.bytes += bytes.byteLength;
  }

  close(code: number | null, reason: string): void {
    this.entries.push({ kind: 'close', code, reason, size: 0 });
  }

  /** Starts reading `blob`; what is queued after it waits until it is read. */
  blob(blob: Blob): void {
    const entry: Entry & { kind: 'blob' } = { kind: 'blob', size: blob.size, bytes: null, error: null };
    this.entries.push(entry);
    this.bytes += entry.size;
    blob.arrayBuffer().then(
      (buffer) => {
        entry.bytes = new Uint8Array(buffer);
        this.drain();
      },
      (err: unknown) => {
        entry.error = err instanceof Error ? err : new Error(String(err));
        this.drain();
      },
    );
  }

  /** Forgets every waiting send (the connection is gone; their bytes stay counted). */
  abandon(): void {
    this.entries = [];
  }

  /** Hands on whatever waits at the head of the queue, stopping at a Blob still being read. */
  private drain(): void {
    const queue = this.entries;
    let i = 0;
    for (; i < queue.length; i++) {
      const entry = queue[i]!;
      if (entry.kind === 'blob' && entry.bytes === null && entry.error === null) break;
      this.bytes -= entry.size;
      switch (entry.kind) {
        case 'text':
          this.sink.writeText(entry.text, entry.size);
          break;
        case 'bytes':
          this.sink.writeBytes(entry.bytes, entry.size);
          break;
        case 'blob':
          if (entry.bytes !== null) this.sink.writeBytes(entry.bytes, entry.size);
          else this.sink.blobFailed(entry.size, entry.error ?? new Error('could not read a Blob'));
          break;
        case 'close':
          this.sink.writeClose(entry.code, entry.reason);
          break;
      }
    }
    if (queue !== this.entries) return;
    queue.splice(0, i);
    if (queue.length === 0) this.sink.queueEmptied();
  }
}
