/**
 * A test peer on the far side of any stream the server runs over (a socket
 * taken over after the handshake, an in-memory pipe, an HTTP/2 stream): it
 * writes frames built by hand and reads the server's frames in order, in
 * linear time (ChunkQueue: a frame is joined once it is all there).
 */
import assert from 'node:assert/strict';
import type { Readable, Writable } from 'node:stream';
import { ChunkQueue, frameSize } from './chunks.js';
import { clientFrame, closePayload, type FrameSpec } from './frames.js';
import { WAIT_MS, parseFrame, withTimeout, type RawFrame } from './raw-client.js';

export class StreamPeer {
  private readonly queue = new ChunkQueue();
  private wake: (() => void) | null = null;
  /** The stream from the server ended (or closed). */
  ended = false;

  /** `head`: bytes of `input` already received by someone else, read first. */
  constructor(
    private readonly output: Writable,
    input: Readable,
    head?: Buffer,
  ) {
    if (head !== undefined) this.queue.push(head);
    input.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.notify();
    });
    const ended = (): void => {
      this.ended = true;
      this.notify();
    };
    input.on('end', ended);
    input.on('close', ended);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.queue.length;
  }

  /** The first unread byte, if any (not consumed). */
  get firstByte(): number | undefined {
    return this.queue.length === 0 ? undefined : this.queue.peek(1)[0];
  }

  /** Writes a frame, masked as a client's must be unless the spec says otherwise. */
  send(spec: FrameSpec): void {
    this.output.write(clientFrame(spec));
  }

  sendClose(code: number, reason = ''): void {
    this.send({ opcode: 0x8, payload: closePayload(code, reason) });
  }

  /** Ends our side of the stream. */
  end(): void {
    this.output.end();
  }

  private async waitFor<T>(what: string, get: () => T | undefined, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; ${this.queue.length} bytes unread`);
      await withTimeout(new Promise<void>((resolve) => (this.wake = resolve)), left, what).catch((err: unknown) => {
        this.wake = null;
        throw err;
      });
    }
  }

  /** The next whole frame. */
  readFrame(ms = WAIT_MS): Promise<RawFrame> {
    return this.waitFor(
      'a frame',
      () => {
        const size = frameSize(this.queue.peek(14));
        if (this.queue.length < size) {
          if (this.ended) throw new Error(`the stream ended with ${this.queue.length} bytes unread`);
          return undefined;
        }
        const got = parseFrame(this.queue.peek(size));
        assert.ok(got !== undefined && got.size === size);
        this.queue.consume(size);
        return got.frame;
      },
      ms,
    );
  }

  /** The next frame, asserted to be a close frame: its code (undefined if empty) and reason. */
  async readClose(ms = WAIT_MS): Promise<{ code: number | undefined; reason: string }> {
    const f = await this.readFrame(ms);
    assert.equal(f.opcode, 0x8, `expected a close frame, got opcode ${f.opcode}`);
    if (f.payload.length === 0) return { code: undefined, reason: '' };
    return { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') };
  }

  /** Waits for the server's end of the stream. */
  waitEnd(ms = WAIT_MS): Promise<true> {
    return this.waitFor('the end of the stream', () => (this.ended ? true : undefined), ms);
  }
}
