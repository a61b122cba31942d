/**
 * One WHATWG WebSocket's life behind the API object (websocket.ts): dialing,
 * the ready state, the send operations the spec defines, and the "feedback
 * from the protocol" steps that fire `open`, `message`, `error` and `close`.
 * Once the handshake succeeds, a `ClientLink` (client-link.ts) moves the
 * bytes.
 */
import { Blob } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { CloseCode } from '../protocol/close.js';
import type { ProtocolError } from '../protocol/errors.js';
import { checkUpgradeResponse, generateKey } from '../protocol/handshake.js';
import { negotiateClient } from '../protocol/negotiate.js';
import { ReadyState } from '../protocol/ready-state.js';
import { ClientLink } from './client-link.js';
import { Dial, type DialTarget } from './dial.js';
import { CloseEvent, ErrorEvent, MessageEvent } from './events.js';
import { BufferedAmountLedger } from './ledger.js';
import type { BinaryType, MessageData, ResolvedOptions } from './options.js';
import { SendQueue, type SendSink } from './send-queue.js';

/** The object events are fired at (the WebSocket). */
export type EventSink = EventTarget;

export class ClientSession implements DialTarget, SendSink {
  readonly target: EventSink;
  readonly url: URL;
  /** Serialisation of the URL's origin, the `origin` of every MessageEvent. */
  readonly origin: string;
  readonly protocols: readonly string[];
  readyState: ReadyState = ReadyState.Connecting;
  protocol = '';
  extensions = '';
  binaryType: BinaryType = 'blob';
  readonly ledger = new BufferedAmountLedger();

  private readonly key: string;
  private readonly options: ResolvedOptions;
  private dial: Dial | null;
  private link: ClientLink | null = null;
  /** Sends waiting behind a Blob being read (null while none). */
  private queue: SendQueue | null = null;
  /** Why the connection was failed; set means an `error` event precedes `close`. */
  private failure: Error | null = null;

  constructor(target: EventSink, url: URL, protocols: string[], options: ResolvedOptions) {
    this.target = target;
    this.url = url;
    this.origin = url.origin;
    this.protocols = protocols;
    this.options = options;
    this.key = generateKey();
    this.dial = new Dial(url, this.key, protocols, options, this);
  }

  get bufferedAmount(): number {
    return this.ledger.amount(this.link?.writableLength ?? null) + (this.queue?.bytes ?? 0);
  }

  // -------------------------------------------------------------------------
  // Opening handshake: RFC 6455 §4.1, WHATWG WebSockets § 2.2

  /** @internal */
  dialUpgraded(res: IncomingMessage, socket: Socket, head: Buffer): void {
    this.dial = null;
    if (this.readyState !== ReadyState.Connecting) {
      socket.destroy();
      return;
    }
    // RFC 6455 §4.1 (the client MUST validate the server's response); WHATWG WebSockets § 2.2.
    const o = this.options;
    const negotiated = negotiateClient({ statusCode: res.statusCode ?? 0, headers: res.headers, httpVersion: res.httpVersion }, this.key, this.protocols, o.perMessageDeflate, o.maxPayload);
    if (negotiated instanceof Error) {
      socket.destroy();
      this.failConnecting(negotiated);
      return;
    }
    socket.setNoDelay(true);
    const link = new ClientLink(this, socket, o, negotiated.deflate);
    this.link = link;
    // WHATWG § Feedback from the protocol, "When the WebSocket connection is established":
    // 1. Change the ready state to OPEN. 2-3. Set extensions and protocol. 4. Fire open.
    this.readyState = ReadyState.Open;
    this.extensions = negotiated.extensions;
    this.protocol = negotiated.protocol;
    // Sends from open listeners are written with the answers to `head`, in one write.
    link.open(() => this.target.dispatchEvent(new Event('open')), head);
  }

  /** The server answered without upgrading (any status but a 101 that upgrades). @internal */
  dialResponded(res: IncomingMessage): void {
    this.dial = null;
    // Failing the connection closes it (RFC 6455 §4.1, §7.1.7): whatever body follows is not read.
    res.socket?.destroy();
    res.destroy();
    const checked = checkUpgradeResponse({ statusCode: res.statusCode ?? 0, headers: res.headers, httpVersion: res.httpVersion }, this.key, this.protocols);
    this.failConnecting(checked instanceof Error ? checked : new Error('server accepted the handshake but did not upgrade the connection'));
  }

  /** @internal */
  dialFailed(error: Error): void {
    this.dial = null;
    this.failConnecting(error);
  }

  /**
   * RFC 6455 §4.1 "Fail the WebSocket Connection" before it is established:
   * no frames, just drop the transport; then the close steps run as a task.
   */
  private failConnecting(error: Error): void {
    if (this.failure !== null || this.link !== null) return;
    this.failure = error;
    this.dial?.settle(true);
    this.dial = null;
    setImmediate(runClosed, this);
  }

  // -------------------------------------------------------------------------
  // API operations (called by WebSocket once the spec's checks passed)

  /** send(string). WHATWG: counts the UTF-8 length; sends only while OPEN. */
  sendText(text: string): void {
    const size = Buffer.byteLength(text);
    if (this.readyState !== ReadyState.Open) this.ledger.unsent(size);
    else if (this.queue !== null) this.queue.text(text, size);
    else this.writeText(text, size);
  }

  /** send(ArrayBuffer | ArrayBufferView). The bytes are copied before send() returns. */
  sendBinary(bytes: Uint8Array): void {
    const size = bytes.byteLength;
    if (this.readyState !== ReadyState.Open) this.ledger.unsent(size);
    else if (this.queue !== null) this.queue.binary(bytes);
    else this.writeBytes(bytes, size);
  }

  /** send(Blob): read asynchronously; later sends wait behind it so order holds. */
  sendBlob(blob: Blob): void {
    if (this.readyState !== ReadyState.Open) {
      this.ledger.unsent(blob.size);
      return;
    }
    // The close frame the protocol queues on its own (its answer to the server's close, or a
    // failure's) waits behind the sends queued here: WHATWG § send() sends what was given while OPEN.
    this.link?.holdClose(true);
    (this.queue ??= new SendQueue(this)).blob(blob);
  }

  /** WHATWG WebSockets § close the WebSocket, step 4 (arguments already checked). */
  close(code: number | null, reason: string): void {
    switch (this.readyState) {
      case ReadyState.Closing:
      case ReadyState.Closed:
        // If this's ready state is CLOSING or CLOSED: do nothing.
        return;
      case ReadyState.Connecting:
        // If the WebSocket connection is not yet established: fail the WebSocket
        // connection and set this's ready state to CLOSING.
        this.readyState = ReadyState.Closing;
        this.failConnecting(new Error('WebSocket was closed before the connection was established'));
        return;
      case ReadyState.Open:
        // If the closing handshake has not yet been started: start it and set the ready
        // state to CLOSING. The close frame follows any sends still waiting on a Blob.
        this.readyState = ReadyState.Closing;
        if (this.queue !== null) this.queue.close(code, reason);
        else this.writeClose(code, reason);
        return;
    }
  }

  // SendSink: where sends go (at once, or once the Blobs before them are read).

  /** @internal */
  writeText(text: string, size: number): void {
    if (this.link !== null && this.link.sendText(text)) this.ledger.queued(size);
    else this.ledger.unsent(size);
  }

  /** @internal */
  writeBytes(bytes: Uint8Array, size: number): void {
    if (this.link !== null && this.link.sendBytes(bytes)) this.ledger.queued(size);
    else this.ledger.unsent(size);
  }

  /** @internal */
  writeClose(code: number | null, reason: string): void {
    // WHATWG § close the WebSocket: no code and no reason → a close frame without a body;
    // a reason without a code → 1000. RFC 6455 §5.5.1.
    this.link?.sendClose(code ?? (reason === '' ? undefined : CloseCode.Normal), reason);
  }

  /** @internal */
  blobFailed(size: number, error: Error): void {
    this.ledger.unsent(size);
    this.failOpen(CloseCode.InternalError, 'could not read a Blob', error);
  }

  /** @internal */
  queueEmptied(): void {
    this.queue = null;
    this.link?.holdClose(false);
  }

  /**
   * RFC 6455 §7.1.7 "Fail the WebSocket Connection" once established, for a
   * reason of our own: queue a close frame with `code`, stop reading, and let
   * the close steps fire `error` then `close`.
   */
  failOpen(code: number, reason: string, error: Error): void {
    const link = this.link;
    if (link === null) return;
    this.failure ??= error;
    if (this.readyState === ReadyState.Open) this.readyState = ReadyState.Closing;
    link.fail(code, reason);
  }

  // Feedback from the protocol (called by the link).

  /** WHATWG § Feedback from the protocol, "When a WebSocket message has been received". @internal */
  messageReceived(data: Buffer, isBinary: boolean): void {
    // 1. If ready state is not OPEN, then return.
    if (this.readyState !== ReadyState.Open) return;
    // 2. Let dataForEvent be determined by type and binaryType.
    let value: MessageData;
    if (!isBinary) value = data.toString('utf8');
    else if (this.binaryType === 'blob') value = new Blob([data]);
    else if (this.binaryType === 'arraybuffer') value = toArrayBuffer(data);
    else value = data;
    // 3. Fire a MessageEvent with origin set to the serialisation of the URL's origin.
    this.target.dispatchEvent(new MessageEvent<MessageData>('message', { data: value, origin: this.origin }));
  }

  /** The server's close frame arrived: our echo is queued (RFC 6455 §5.5.1). @internal */
  closingStarted(): void {
    // WHATWG § Feedback from the protocol, "When the WebSocket closing handshake is started":
    // change the ready state to CLOSING.
    if (this.readyState === ReadyState.Open) this.readyState = ReadyState.Closing;
  }

  /** The server broke the protocol, or the transport failed: `error` precedes `close`. @internal */
  failed(error: Error | ProtocolError): void {
    this.failure ??= error;
    if (this.readyState === ReadyState.Open) this.readyState = ReadyState.Closing;
  }

  /** The link's transport closed. @internal */
  linkClosed(): void {
    // Sends still waiting on a Blob will never go: they stay counted in bufferedAmount.
    this.queue?.abandon();
    this.closed();
  }

  /**
   * WHATWG § Feedback from the protocol, "When the WebSocket connection is
   * closed, possibly cleanly". RFC 6455 §7.1.4-7.1.6 give wasClean, code and reason.
   */
  closed(): void {
    if (this.readyState === ReadyState.Closed) return;
    const link = this.link;
    const close = link?.closeInfo ?? { code: CloseCode.Abnormal, reason: '', complete: false };
    // Closed cleanly: the closing handshake completed (close frames both ways), then TCP closed.
    const wasClean = this.failure === null && close.complete;
    // 1. Change the ready state to CLOSED.
    this.readyState = ReadyState.Closed;
    // 2. If the user agent was required to fail the WebSocket connection, fire error.
    const failure = this.failure;
    if (failure !== null) this.target.dispatchEvent(new ErrorEvent('error', { message: failure.message, error: failure }));
    // 3. Fire close with wasClean, code and reason.
    this.target.dispatchEvent(new CloseEvent('close', { wasClean, code: close.code, reason: close.reason }));
  }
}

function runClosed(s: ClientSession): void {
  s.closed();
}

function toArrayBuffer(data: Buffer): ArrayBuffer {
  const ab = data.buffer;
  // A buffer that is exactly its own ArrayBuffer (an assembled message) is handed over as is.
  if (ab instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === ab.byteLength) return ab;
  const out = new ArrayBuffer(data.byteLength);
  new Uint8Array(out).set(data);
  return out;
}
