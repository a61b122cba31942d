/**
 * The WebSocket connection state machine, sans I/O (RFC 6455 §4-§7).
 *
 * Bytes in (`receive`) become events on a handler object; calls in (`send*`,
 * `ping`, `close`) become bytes out, collected in `writer` until the I/O
 * layer takes them. It owns no socket and no timer: the I/O layer closes the
 * transport when `wantsTransportClose` says so, and runs the close timeout.
 */
import { CloseCode, MAX_CLOSE_REASON_BYTES, decodeClosePayload, encodeClosePayload, isValidWireCloseCode } from './close.js';
import { InflateError, type PerMessageDeflate } from './deflate.js';
import { ProtocolError } from './errors.js';
import { FIN_BIT, MAX_CONTROL_PAYLOAD, Opcode, RSV1_BIT } from './frame.js';
import { FrameParser, type ParserEvents } from './parser.js';
import { ReadyState } from './ready-state.js';
import { isUtf8 } from './utf8.js';
import { COPY_THRESHOLD, FrameWriter } from './writer.js';

export type Role = 'client' | 'server';

export interface ConnectionEvents {
  /** A complete data message; `data` may be a view of the received chunk. */
  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void;
  /** A ping arrived; a pong with the same payload is already queued. */
  onPing(payload: Buffer): void;
  onPong(payload: Buffer): void;
  /** The peer's close frame arrived (`code` 1005 when it carried none); our answer is queued. */
  onPeerClose(code: number, reason: string): void;
  /** The peer broke the protocol: a close frame with `error.closeCode` is queued and input stops. */
  onFail(error: ProtocolError): void;
}

export interface ConnectionOptions {
  role: Role;
  /** Largest message accepted, in bytes (RFC 6455 §10.4); for compressed messages, both before and after inflating. */
  maxPayload: number;
  /** RSV1 is in use by an extension the caller handles (compressed messages are then delivered as they came). */
  allowRsv1?: boolean;
  /**
   * permessage-deflate was negotiated (RFC 7692): compressed messages are
   * inflated before `onMessage`, and messages sent from `threshold` bytes on
   * are compressed.
   */
  deflate?: PerMessageDeflate;
}

const CLOSE_SENT = 1;
const CLOSE_RECEIVED = 2;
const FAILED = 4;
/** RSV1 allowed by the I/O layer (allowRsv1, setAllowRsv1). */
const RSV1_ALLOWED = 8;

const EMPTY = Buffer.alloc(0);

export class Connection implements ParserEvents {
  readonly role: Role;
  /** Pending output, while there is any (see `writer`). */
  private out: FrameWriter | null = null;
  /**
   * The parser while a frame or a fragmented message is in progress, else
   * null: a parser between frames holds nothing, so an idle connection does
   * not keep one (it is made again, cheaply, when bytes arrive).
   */
  private parser: FrameParser | null = null;
  private readonly events: ConnectionEvents;
  private readonly maxPayload: number;

  /** CLOSE_SENT | CLOSE_RECEIVED | FAILED | RSV1_ALLOWED, in one field (every field costs each idle connection 8 bytes). */
  private state = 0;
  /** A close frame of our own (an answer or a failure's) waiting for `releaseClose()`; see `holdClose`. */
  private heldClose: Buffer | null = null;
  /**
   * Set by an I/O layer while it holds sends outside the writer (a client
   * reading a Blob): the close frame this connection queues on its own, in
   * answer to the peer's or on failing, then waits for `releaseClose()`, so
   * messages the application sent before it are not overtaken and dropped
   * (RFC 6455 §5.5.1: an endpoint MAY delay its Close until its current
   * message is sent).
   */
  holdClose = false;
  /** Status code and reason of the close, once known (sent by us or received). */
  closeCode: number = CloseCode.Abnormal;
  closeReason = '';
  /** The permessage-deflate codec, when negotiated. */
  private readonly deflate: PerMessageDeflate | null;

  constructor(events: ConnectionEvents, options: ConnectionOptions) {
    this.role = options.role;
    this.events = events;
    this.deflate = options.deflate ?? null;
    this.maxPayload = options.maxPayload;
    if (options.allowRsv1 === true) this.state |= RSV1_ALLOWED;
  }

  /**
   * The frames queued and not yet taken. Made on first use and dropped by
   * `takeOutput`/`discardOutput`, so an idle connection keeps none.
   */
  get writer(): FrameWriter {
    return (this.out ??= new FrameWriter(this.role === 'client'));
  }

  /** Bytes queued and not yet taken. */
  get pendingBytes(): number {
    return this.out === null ? 0 : this.out.pending;
  }

  /** Everything queued, for the I/O layer to write (see FrameWriter.take); null when nothing is. */
  takeOutput(): Buffer | Buffer[] | null {
    const out = this.out;
    if (out === null) return null;
    this.out = null;
    return out.take();
  }

  /** Drops everything queued (the transport is gone). */
  discardOutput(): void {
    this.out = null;
  }

  get readyState(): ReadyState {
    const st = this.state;
    if (st & FAILED || (st & (CLOSE_SENT | CLOSE_RECEIVED)) === (CLOSE_SENT | CLOSE_RECEIVED)) return ReadyState.Closed;
    if (st & (CLOSE_SENT | CLOSE_RECEIVED)) return ReadyState.Closing;
    return ReadyState.Open;
  }

  get closeSent(): boolean {
    return (this.state & CLOSE_SENT) !== 0;
  }

  get closeReceived(): boolean {
    return (this.state & CLOSE_RECEIVED) !== 0;
  }

  /**
   * True once the transport should be closed: the closing handshake is done
   * or the connection failed. RFC 6455 §7.1.1: the server closes TCP first;
   * a client waits for the server's FIN (the I/O layer bounds that wait).
   */
  get wantsTransportClose(): boolean {
    const st = this.state;
    return (st & FAILED) !== 0 || (st & (CLOSE_SENT | CLOSE_RECEIVED)) === (CLOSE_SENT | CLOSE_RECEIVED);
  }

  /** Lets RSV1 through to `onMessage` (an extension the caller handles uses it). */
  setAllowRsv1(allow: boolean): void {
    this.state = allow ? this.state | RSV1_ALLOWED : this.state & ~RSV1_ALLOWED;
    this.parser?.setAllowRsv1(this.allowRsv1);
  }

  /**
   * Feeds bytes received from the peer. Events fire synchronously. A
   * `borrowed` chunk is reused by the caller afterwards: no event keeps a
   * view of it (see FrameParser.push). Input after a close frame or a
   * failure is ignored (RFC 6455 §5.5.1, §7.1.7).
   */
  receive(chunk: Buffer, borrowed = false): void {
    if (this.state & (CLOSE_RECEIVED | FAILED)) return;
    const parser = (this.parser ??= new FrameParser(this, {
      expectMasked: this.role === 'server',
      maxPayload: this.maxPayload,
      allowRsv1: this.allowRsv1,
      // onMessage inflates a compressed message before anything else sees it.
      lendCompressed: this.deflate !== null,
    }));
    parser.push(chunk, borrowed);
    if (parser.idle && this.parser === parser) this.parser = null;
  }

  private get allowRsv1(): boolean {
    return (this.state & RSV1_ALLOWED) !== 0 || this.deflate !== null;
  }

  /** Queues a text message. Returns false (and sends nothing) once a close frame was sent. */
  sendText(text: string): boolean {
    if (this.state & CLOSE_SENT) return false;
    const deflate = this.deflate;
    // A string has at most 3 bytes per UTF-16 unit and at least one: skip the
    // byte count when the answer is clear either way.
    if (deflate !== null && text.length * 3 >= deflate.threshold && (text.length >= deflate.threshold || Buffer.byteLength(text) >= deflate.threshold)) {
      this.writer.frame(FIN_BIT | RSV1_BIT | Opcode.Text, owned(deflate.compress(Buffer.from(text, 'utf8'))));
    } else {
      this.writer.textFrame(FIN_BIT | Opcode.Text, text);
    }
    return true;
  }

  /**
   * Queues a data message from bytes; `binary` false sends them as text (the
   * caller vouches for UTF-8). With permessage-deflate, a message from the
   * threshold on is compressed; `compressed` says `data` already is.
   */
  sendBytes(data: Uint8Array, binary: boolean, compressed = false): boolean {
    if (this.state & CLOSE_SENT) return false;
    const deflate = this.deflate;
    if (!compressed && deflate !== null && data.length >= deflate.threshold) {
      data = owned(deflate.compress(data));
      compressed = true;
    }
    this.writer.frame(FIN_BIT | (compressed ? RSV1_BIT : 0) | (binary ? Opcode.Binary : Opcode.Text), data);
    return true;
  }

  /** Frees what the connection holds beyond its objects (the compression streams); call once the transport is gone. */
  release(): void {
    this.deflate?.close();
  }

  /**
   * Queues one frame of a fragmented message (RFC 6455 §5.4): the first with
   * `opcode` Text or Binary, the rest with Continuation, the last with `fin`.
   */
  sendFragment(opcode: number, data: Uint8Array, fin: boolean, compressed = false): boolean {
    if (this.state & CLOSE_SENT) return false;
    this.writer.frame((fin ? FIN_BIT : 0) | (compressed ? RSV1_BIT : 0) | opcode, data);
    return true;
  }

  /** Queues a frame that is already serialised (a broadcast). Never for clients: it is not masked. */
  sendRaw(frame: Buffer): boolean {
    if (this.state & CLOSE_SENT) return false;
    this.writer.raw(frame);
    return true;
  }

  /** Queues a ping. Throws RangeError for a payload over 125 bytes (RFC 6455 §5.5). */
  ping(payload: Uint8Array = EMPTY): boolean {
    checkControlPayload(payload);
    if (this.state & CLOSE_SENT) return false;
    this.writer.frame(FIN_BIT | Opcode.Ping, payload);
    return true;
  }

  /** Queues an unsolicited pong (RFC 6455 §5.5.3 allows it as a heartbeat). */
  pong(payload: Uint8Array = EMPTY): boolean {
    checkControlPayload(payload);
    if (this.state & CLOSE_SENT) return false;
    this.writer.frame(FIN_BIT | Opcode.Pong, payload);
    return true;
  }

  /**
   * Starts (or answers) the closing handshake by queueing a close frame.
   * `code` undefined sends a close frame without a status. Throws RangeError
   * for a code that may not be sent or a reason over 123 bytes. Returns false
   * when a close frame was already sent.
   */
  close(code?: number, reason = ''): boolean {
    if (code !== undefined && !isValidWireCloseCode(code)) {
      throw new RangeError(`close code ${code} may not be sent (RFC 6455 §7.4)`);
    }
    if (code === undefined && reason !== '') throw new RangeError('a close reason needs a close code');
    if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) {
      throw new RangeError(`close reason is longer than ${MAX_CLOSE_REASON_BYTES} bytes`);
    }
    if (this.state & CLOSE_SENT) return false;
    this.writeClose(code, reason);
    return true;
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): queues a close frame with `code`
   * unless one was sent, and ignores all further input.
   */
  fail(code: number, reason: string): void {
    if (this.state & FAILED) return;
    this.state |= FAILED;
    this.parser?.stop();
    this.parser = null;
    // A control frame carries at most 125 bytes (RFC 6455 §5.5): the reason is cut to fit.
    if ((this.state & CLOSE_SENT) === 0) this.replyClose(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  }

  /** Queues the close frame held back by `holdClose`, if any, and stops holding. */
  releaseClose(): void {
    this.holdClose = false;
    const payload = this.heldClose;
    if (payload === null || this.state & CLOSE_SENT) return;
    this.heldClose = null;
    this.state |= CLOSE_SENT;
    this.writer.frame(FIN_BIT | Opcode.Close, payload);
  }

  // ParserEvents: called by the parser while `receive` runs.

  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void {
    const deflate = this.deflate;
    if (compressed && deflate !== null) {
      try {
        data = deflate.decompress(data);
      } catch (err) {
        if (!(err instanceof InflateError)) throw err;
        // RFC 7692 §8: data that does not inflate fails the connection.
        this.onProtocolError(new ProtocolError(err.tooBig ? CloseCode.MessageTooBig : CloseCode.InvalidPayload, err.message));
        return;
      }
      if (!isBinary && !isUtf8(data)) {
        this.onProtocolError(new ProtocolError(CloseCode.InvalidPayload, 'text message is not valid UTF-8'));
        return;
      }
      compressed = false;
    }
    this.events.onMessage(data, isBinary, compressed);
  }

  onControl(opcode: number, payload: Buffer): void {
    if (opcode === Opcode.Ping) {
      // RFC 6455 §5.5.2: answer with a pong carrying the same payload, unless closing.
      if ((this.state & CLOSE_SENT) === 0) this.writer.frame(FIN_BIT | Opcode.Pong, payload);
      this.events.onPing(payload);
    } else if (opcode === Opcode.Pong) {
      this.events.onPong(payload);
    } else {
      this.peerClose(payload);
    }
  }

  onProtocolError(error: ProtocolError): void {
    this.fail(error.closeCode, error.message);
    this.events.onFail(error);
  }

  private peerClose(payload: Buffer): void {
    const decoded = decodeClosePayload(payload);
    if (decoded instanceof ProtocolError) {
      this.onProtocolError(decoded);
      return;
    }
    // RFC 6455 §5.5.1: after a close frame nothing more is read.
    this.state |= CLOSE_RECEIVED;
    this.parser?.stop();
    this.parser = null;
    if ((this.state & CLOSE_SENT) === 0) {
      // Echo the status code received (RFC 6455 §5.5.1), and its reason, which
      // browsers show the page; none if it sent none.
      this.replyClose(decoded.code === CloseCode.NoStatus ? undefined : decoded.code, decoded.reason);
    }
    this.closeCode = decoded.code;
    this.closeReason = decoded.reason;
    this.events.onPeerClose(decoded.code, decoded.reason);
  }

  /** A close frame of our own accord: written now, or held while `holdClose` is set. */
  private replyClose(code: number | undefined, reason: string): void {
    if (!this.holdClose) {
      this.writeClose(code, reason);
      return;
    }
    this.closeCode = code ?? CloseCode.NoStatus;
    this.closeReason = reason;
    this.heldClose = encodeClosePayload(code, reason);
  }

  private writeClose(code: number | undefined, reason: string): void {
    this.state |= CLOSE_SENT;
    this.closeCode = code ?? CloseCode.NoStatus;
    this.closeReason = reason;
    this.writer.frame(FIN_BIT | Opcode.Close, encodeClosePayload(code, reason));
  }
}

/** Cuts `text` to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  const bytes = Buffer.from(text, 'utf8');
  let end = max;
  // Step back over continuation bytes to the start of the cut character.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

function checkControlPayload(payload: Uint8Array): void {
  if (payload.length > MAX_CONTROL_PAYLOAD) {
    throw new RangeError(`control frame payload is ${payload.length} bytes; at most ${MAX_CONTROL_PAYLOAD} allowed`);
  }
}

/**
 * A compressed payload the writer may keep: it copies payloads up to its
 * copy threshold into its slab and keeps larger ones by reference, so only
 * those need a copy of their own (`compress` may return borrowed memory).
 */
function owned(payload: Buffer): Buffer {
  return payload.length > COPY_THRESHOLD ? Buffer.from(payload) : payload;
}
