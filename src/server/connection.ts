/**
 * One WebSocket connection accepted by a server: a transport link whose
 * events go to the server's handler object, with keepalive state, the
 * slow-consumer policy for topic messages, and per-connection `data`.
 */
import type { Duplex } from 'node:stream';
import { connectionClose, connectionOpen, messageDropped, protocolError } from '../diagnostics.js';
import { CloseCode } from '../protocol/close.js';
import type { PerMessageDeflate } from '../protocol/deflate.js';
import type { ProtocolError } from '../protocol/errors.js';
import { isUtf8 } from '../protocol/utf8.js';
import type { TopicSubscriber } from '../pubsub/broker.js';
import type { PublishData, TopicMessage } from '../pubsub/message.js';
import { LINK_FLAG_BASE, Link, type SendCallback } from '../transport/link.js';
import type { PublishOptions, SendOptions, ServerContext } from './types.js';

/**
 * What `send` did with a message:
 * - `Sent`: queued, and the buffered output is within the high-water mark;
 * - `Backpressure`: queued, but the buffered output is now beyond the
 *   high-water mark: wait for the handler's `drain` before sending much more;
 * - `Dropped`: not queued, because a close frame was already sent or the
 *   connection is gone (its callback, if any, gets an Error).
 * `Dropped` is 0, so `if (!ws.send(x))` reads "if it was dropped".
 */
export const SendResult = { Dropped: 0, Sent: 1, Backpressure: 2 } as const;
export type SendResult = (typeof SendResult)[keyof typeof SendResult];

const ACTIVE = LINK_FLAG_BASE; // data arrived since the last keepalive sweep
const PING_OUTSTANDING = LINK_FLAG_BASE << 1; // a keepalive ping is awaiting any traffic

/** A WebSocket connection accepted by a `WebSocketServer`. */
export class ServerWebSocket<T = unknown> extends Link implements TopicSubscriber {
  /** Per-connection data attached by the `upgrade` hook. */
  data: T;
  /** The subprotocol chosen in the handshake, or "". */
  readonly protocol: string;
  /** The extensions negotiated in the handshake, as sent in the response, or "". */
  readonly extensions: string;
  /** The topics this connection is subscribed to (kept by the server's broker; null while none). @internal */
  topics: Set<string> | null = null;

  readonly #context: ServerContext<T>;
  readonly #deflate: PerMessageDeflate | null;
  /** When the outstanding keepalive ping was sent (Date.now()). */
  #pingSentAt = 0;

  /** @internal Made by the server once a handshake succeeded. */
  constructor(context: ServerContext<T>, stream: Duplex, data: T, protocol: string, extensions: string, deflate: PerMessageDeflate | null) {
    super(stream, { role: 'server', maxPayload: context.maxPayload, deflate: deflate ?? undefined });
    this.#context = context;
    this.#deflate = deflate;
    this.data = data;
    this.protocol = protocol;
    this.extensions = extensions;
  }

  protected get closeTimeout(): number {
    return this.#context.closeTimeout;
  }

  protected get highWaterMark(): number {
    return this.#context.highWaterMark;
  }

  protected get readLimit(): number {
    return this.#context.maxBackpressure;
  }

  protected get closesFirst(): boolean {
    return true;
  }

  get remoteAddress(): string | undefined {
    return (this.stream as { remoteAddress?: string }).remoteAddress;
  }

  get remotePort(): number | undefined {
    return (this.stream as { remotePort?: number }).remotePort;
  }

  /**
   * Sends a message: text for a string, binary for bytes unless
   * `options.binary` is false (bytes sent as text must be UTF-8: TypeError).
   * `callback` learns when the message reached the kernel, or that it never
   * will (the connection died first). See `SendResult` for the answer.
   */
  send(data: PublishData, options?: SendOptions, callback?: SendCallback): SendResult {
    let queued: boolean;
    if (typeof data === 'string') {
      if (this.isClosed) queued = false;
      else if (options?.binary === true) queued = this.conn.sendBytes(Buffer.from(data), true);
      else queued = this.conn.sendText(data);
    } else {
      const bytes = toBytes(data);
      const binary = options?.binary ?? true;
      if (!binary && !isUtf8(bytes)) throw new TypeError('text message is not valid UTF-8');
      // (Nothing is framed, or compressed, for a connection that is gone.)
      queued = !this.isClosed && this.conn.sendBytes(bytes, binary);
    }
    if (!queued) {
      Link.refused(callback);
      return SendResult.Dropped;
    }
    return this.sent(callback) ? SendResult.Backpressure : SendResult.Sent;
  }

  /** Sends a ping (payload at most 125 bytes: RangeError otherwise). */
  ping(payload?: string | Buffer | ArrayBufferView): void {
    if (this.conn.ping(controlPayload(payload))) this.queued();
  }

  /** Sends an unsolicited pong (RFC 6455 §5.5.3 allows it as a heartbeat; at most 125 bytes). */
  pong(payload?: string | Buffer | ArrayBufferView): void {
    if (this.conn.pong(controlPayload(payload))) this.queued();
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2). The stream is closed when
   * the peer answers, or after the server's close timeout. Without arguments
   * the close frame carries no status code (RFC 6455 §7.1.5: the peer sees
   * 1005), as a browser's `close()` does. Throws RangeError for a code that
   * may not be sent, a reason without a code, or a reason over 123 bytes.
   */
  close(code?: number, reason = ''): void {
    if (this.isClosed) return;
    if (this.conn.close(code, reason)) this.queued();
  }

  /** Destroys the connection at once, without a closing handshake. */
  terminate(): void {
    this.destroyTransport();
  }

  /** Subscribes this connection to `topic`; false if it already was (or it is closed). */
  subscribe(topic: string): boolean {
    if (this.isClosed) return false;
    return this.#context.subscribe(this, topic);
  }

  /** Unsubscribes this connection from `topic`; false if it was not subscribed. */
  unsubscribe(topic: string): boolean {
    return this.#context.unsubscribe(this, topic);
  }

  isSubscribed(topic: string): boolean {
    return this.topics?.has(topic) ?? false;
  }

  /** The topics this connection is subscribed to. */
  get subscriptions(): string[] {
    return this.topics === null ? [] : [...this.topics];
  }

  /** Publishes to every subscriber of `topic` but this connection. Returns how many local subscribers took it. */
  publish(topic: string, data: PublishData, options?: PublishOptions): number {
    return this.#context.publish(topic, data, options, this);
  }

  /**
   * Takes a topic message (TopicSubscriber): its frame is shared with every
   * other subscriber. When it would take buffered output beyond
   * `maxBackpressure` (and some is buffered), the message is dropped and
   * reported, or the connection is closed with 1008 when the server says so.
   * @internal
   */
  deliver(message: TopicMessage): boolean {
    if (this.isClosed || this.conn.closeSent) return false;
    const frame = message.frameFor(this.#deflate);
    const context = this.#context;
    // A slow consumer is one with output still buffered: a connection that
    // has caught up takes any message, even one larger than the limit.
    const buffered = this.bufferedAmount;
    if (buffered > 0 && buffered + frame.length > context.maxBackpressure) {
      if (messageDropped.hasSubscribers) {
        messageDropped.publish({ connection: this, topic: message.topic, bytes: frame.length, bufferedAmount: this.bufferedAmount });
      }
      if (context.closeOnBackpressureLimit) {
        this.close(CloseCode.PolicyViolation, 'slow consumer: backpressure limit exceeded');
      }
      context.dropped(this, message);
      return false;
    }
    this.conn.sendRaw(frame);
    this.queued();
    return true;
  }

  /**
   * Keepalive sweep step at time `now`: pings a peer that was silent since the
   * last sweep; returns false once its ping went unanswered for `timeout` ms
   * (which may span several sweeps). @internal
   */
  keepaliveTick(now: number, timeout: number): boolean {
    const f = this.flags;
    if (f & ACTIVE) {
      this.flags = f & ~(ACTIVE | PING_OUTSTANDING);
      return true;
    }
    if (f & PING_OUTSTANDING) return now - this.#pingSentAt < timeout;
    this.flags = f | PING_OUTSTANDING;
    this.#pingSentAt = now;
    this.ping();
    return true;
  }

  /** Whether a keepalive ping went unanswered (no traffic since). @internal */
  get keepaliveExpired(): boolean {
    return (this.flags & (PING_OUTSTANDING | ACTIVE)) === PING_OUTSTANDING;
  }

  /** @internal */
  override receiveChunk(chunk: Buffer, borrowed: boolean): void {
    this.flags |= ACTIVE;
    super.receiveChunk(chunk, borrowed);
  }

  /**
   * Writes the handshake response ahead of any frame, calls `open`, then
   * parses `head` and starts reading: the 101 leaves in one write with
   * whatever `open` sent. @internal
   */
  opened(response: string | null, head: Buffer | null): void {
    if (response !== null) this.conn.writer.raw(Buffer.from(response, 'latin1'));
    if (connectionOpen.hasSubscribers) connectionOpen.publish({ connection: this, role: 'server' });
    const onOpen = this.#context.handler.open;
    if (onOpen !== undefined) this.withinPass(() => onOpen(this));
    this.startLink(head);
  }

  protected handlerThrew(error: unknown): void {
    this.#context.reportError(this, error, 'handler');
  }

  protected transportClosed(): void {
    const { code, reason } = this.peerClose;
    this.#context.connectionClosed(this);
    if (connectionClose.hasSubscribers) connectionClose.publish({ connection: this, role: 'server', code, reason });
    const onClose = this.#context.handler.close;
    if (onClose !== undefined) {
      try {
        onClose(this, code, reason);
      } catch (err) {
        this.#context.reportError(this, err, 'close');
      }
    }
  }

  protected transportDrained(): void {
    const onDrain = this.#context.handler.drain;
    if (onDrain === undefined) return;
    try {
      onDrain(this);
    } catch (err) {
      this.conn.fail(CloseCode.InternalError, 'internal error');
      this.handlerThrew(err);
      this.flush();
    }
  }

  // ConnectionEvents, called from inside conn.receive().

  onMessage(data: Buffer, isBinary: boolean): void {
    const onMessage = this.#context.handler.message;
    if (onMessage !== undefined) onMessage(this, data, isBinary);
  }

  onPing(payload: Buffer): void {
    const onPing = this.#context.handler.ping;
    if (onPing !== undefined) onPing(this, payload);
  }

  onPong(payload: Buffer): void {
    const onPong = this.#context.handler.pong;
    if (onPong !== undefined) onPong(this, payload);
  }

  onPeerClose(): void {
    // Our answering close frame is queued; flush() ends the transport once it is written.
  }

  onFail(error: ProtocolError): void {
    if (protocolError.hasSubscribers) protocolError.publish({ connection: this, role: 'server', error });
    this.#context.reportError(this, error, 'protocol');
  }
}

function toBytes(data: Buffer | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('send() takes a string, Buffer, ArrayBuffer or ArrayBufferView');
}

function controlPayload(payload: string | Buffer | ArrayBufferView | undefined): Uint8Array | undefined {
  if (payload === undefined) return undefined;
  return typeof payload === 'string' ? Buffer.from(payload) : toBytes(payload);
}
