/**
 * A message published to a topic: its topic, payload and type, framed lazily
 * and once, then shared (the same bytes) by every subscriber that takes it;
 * compressed once per compression setting for subscribers that negotiated
 * permessage-deflate without context takeover.
 */
import type { PerMessageDeflate } from '../protocol/deflate.js';
import { FIN_BIT, Opcode, RSV1_BIT, headerSize, writeHeader } from '../protocol/frame.js';
import { isUtf8 } from '../protocol/utf8.js';

/** What `publish` takes: text for a string, bytes otherwise. */
export type PublishData = string | Buffer | ArrayBuffer | ArrayBufferView;


export class TopicMessage {
  readonly topic: string;
  /** The payload, never mutated once published. */
  readonly payload: Buffer;
  /** Binary (true) or text (false) message. */
  readonly binary: boolean;
  private plainFrame: Buffer | null = null;
  /** Compressed frames by compression settings (PerMessageDeflate.sharedCompressionKey). */
  private compressed: Map<string, Buffer> | null = null;

  constructor(topic: string, payload: Buffer, binary: boolean) {
    this.topic = topic;
    this.payload = payload;
    this.binary = binary;
  }

  /**
   * A message from what an application publishes: text for a string, binary
   * for bytes, unless `binary` says otherwise. Bytes sent as text must be
   * UTF-8 (RFC 6455 §5.6): TypeError otherwise.
   */
  static from(topic: string, data: PublishData, binary?: boolean): TopicMessage {
    if (typeof topic !== 'string') throw new TypeError('a topic is a string');
    if (typeof data === 'string') return new TopicMessage(topic, Buffer.from(data, 'utf8'), binary ?? false);
    const bytes = Buffer.isBuffer(data)
      ? data
      : data instanceof ArrayBuffer
        ? Buffer.from(data)
        : ArrayBuffer.isView(data)
          ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
          : null;
    if (bytes === null) throw new TypeError('publish() takes a string, Buffer, ArrayBuffer or ArrayBufferView');
    const isBinary = binary ?? true;
    if (!isBinary && !isUtf8(bytes)) throw new TypeError('text message is not valid UTF-8');
    return new TopicMessage(topic, bytes, isBinary);
  }

  /** The whole unmasked, uncompressed frame (RFC 6455 §5.2), serialised on first use. */
  frame(): Buffer {
    return (this.plainFrame ??= serialise(this.payload, this.binary, false));
  }

  /**
   * The frame for a subscriber with this codec: compressed once per
   * compression setting when the codec compresses without context takeover
   * and the payload reaches its threshold; otherwise the plain frame (a codec
   * that keeps its context cannot share output, RFC 7692 §7.1.1).
   */
  frameFor(codec: PerMessageDeflate | null): Buffer {
    if (codec === null || this.payload.length < codec.threshold) return this.frame();
    const key = codec.sharedCompressionKey;
    if (key === null) return this.frame();
    const cache = (this.compressed ??= new Map());
    let frame = cache.get(key);
    if (frame === undefined) {
      // compress() may return borrowed memory: serialise copies it into the frame.
      frame = serialise(codec.compress(this.payload), this.binary, true);
      cache.set(key, frame);
    }
    return frame;
  }
}

/** One unmasked frame with FIN set; `compressed` sets RSV1 (RFC 7692 §6). */
export function serialise(payload: Uint8Array, binary: boolean, compressed: boolean): Buffer {
  const frame = Buffer.allocUnsafe(headerSize(payload.length, false) + payload.length);
  const first = FIN_BIT | (compressed ? RSV1_BIT : 0) | (binary ? Opcode.Binary : Opcode.Text);
  const p = writeHeader(frame, 0, first, payload.length, null);
  frame.set(payload, p);
  return frame;
}
