/**
 * A message published to a topic: its payload and type, framed lazily and
 * once, and then shared (the same bytes) by every subscriber that takes it.
 */
import { Opcode, headerSize, writeHeader } from '../protocol/frame.js';
import { isUtf8 } from '../protocol/utf8.js';

/** What `publish` takes: text for a string, bytes otherwise. */
export type PublishData = string | Buffer | ArrayBuffer | ArrayBufferView;

const FIN = 0x80;

export class TopicMessage {
  /** The payload, never mutated once published. */
  readonly payload: Buffer;
  /** Binary (true) or text (false) message. */
  readonly binary: boolean;
  private plainFrame: Buffer | null = null;

  constructor(payload: Buffer, binary: boolean) {
    this.payload = payload;
    this.binary = binary;
  }

  /**
   * A message from what an application publishes: text for a string, binary
   * for bytes, unless `binary` says otherwise. Bytes sent as text must be
   * UTF-8 (RFC 6455 §5.6): TypeError otherwise.
   */
  static from(data: PublishData, binary?: boolean): TopicMessage {
    if (typeof data === 'string') return new TopicMessage(Buffer.from(data, 'utf8'), binary ?? false);
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
    return new TopicMessage(bytes, isBinary);
  }

  /** The whole unmasked, uncompressed frame (RFC 6455 §5.2), serialised on first use. */
  frame(): Buffer {
    return (this.plainFrame ??= serialise(this.payload, this.binary, false));
  }
}

/** One unmasked frame with FIN set; `compressed` sets RSV1 (RFC 7692 §6). */
export function serialise(payload: Uint8Array, binary: boolean, compressed: boolean): Buffer {
  const frame = Buffer.allocUnsafe(headerSize(payload.length, false) + payload.length);
  const first = FIN | (compressed ? 0x40 : 0) | (binary ? Opcode.Binary : Opcode.Text);
  const p = writeHeader(frame, 0, first, payload.length, null);
  frame.set(payload, p);
  return frame;
}
