/**
 * One accepted WebSocket connection on the server: moves bytes between a
 * `net.Socket` and a sans-I/O `Connection`, coalesces writes, and calls the
 * server's handler object.
 *
 * Socket listeners are shared module-level functions that find the
 * connection through a symbol on the socket, so a connection allocates no
 * closures. Frames queued while a socket chunk is being processed are written
 * once at the end of that chunk; frames queued at any other time (a timer, a
 * message to another connection, a publish) are written once per tick, from a
 * microtask shared by every connection.
 */
import type { Socket } from 'node:net';
import { CloseCode } from '../protocol/close.js';
import { Connection, type ConnectionEvents } from '../protocol/connection.js';
import type { PerMessageDeflate } from '../protocol/deflate.js';
import type { ProtocolError } from '../protocol/errors.js';
import { isUtf8 } from '../protocol/utf8.js';
import { flushOutput, queueFlush } from './output.js';
import { type ChunkReceiver, startReading } from './reader.js';

export interface SendOptions {
  /** Send as a binary message. Defaults to true for bytes and false for strings. */
  binary?: boolean;
}

/** The per-connection callbacks of a server's handler object (see ServerHandler for `upgrade`). */
export interface ConnectionHandler<T> {
  open?(ws: ServerWebSocket<T>): void;
  /** A whole message. `data` is the handler's own: it may be kept, or sent on as it is. */
  message?(ws: ServerWebSocket<T>, data: Buffer, isBinary: boolean): void;
  /** The buffered output fell back below the high-water mark after `send` reported backpressure. */
  drain?(ws: ServerWebSocket<T>): void;
  /** The connection is gone: `code`/`reason` from the peer's close frame, or 1006 if it sent none. */
  close?(ws: ServerWebSocket<T>, code: number, reason: string): void;
  ping?(ws: ServerWebSocket<T>, payload: Buffer): void;
  pong?(ws: ServerWebSocket<T>, payload: Buffer): void;
  /** A protocol error from the peer, or an exception thrown by another handler. */
  error?(ws: ServerWebSocket<T>, error: Error): void;
}

/** What a ServerWebSocket needs from its server (kept small so tests can supply it). */
export interface ConnectionHost<T> {
  readonly handler: ConnectionHandler<T>;
  readonly closeTimeout: number;
  readonly highWaterMark: number;
  /** Called once when the connection's socket has closed. */
  connectionClosed(ws: ServerWebSocket<T>): void;
  subscribe(ws: ServerWebSocket<T>, topic: string): void;
  unsubscribe(ws: ServerWebSocket<T>, topic: string): void;
  publish(topic: string, data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: SendOptions, exclude?: ServerWebSocket<T>): number;
}

const kWebSocket = Symbol('fullduplex.ws');
type TaggedSocket = Socket & { [kWebSocket]?: ServerWebSocket<unknown> };

// Bit flags, to keep the per-connection object small.
const IN_RECEIVE = 1;
const FLUSH_QUEUED = 2;
const SOCKET_CLOSED = 4;
const ACTIVE = 8; // data arrived since the last keepalive sweep
const PING_OUTSTANDING = 16; // a keepalive ping is awaiting any traffic
const WANT_DRAIN = 32; // a send reported backpressure; call drain() when it clears
const TRANSPORT_ENDING = 64;

/** A WebSocket connection accepted by a `WebSocketServer`. */
export class ServerWebSocket<T = unknown> implements ConnectionEvents, ChunkReceiver {
  /** Per-connection data attached by the `upgrade` hook. */
  data: T;
  /** The subprotocol chosen in the handshake, or "". */
  readonly protocol: string;
  /** The extensions negotiated in the handshake, as sent in the response, or "". */
  readonly extensions: string;

  private readonly socket: Socket;
  private readonly conn: Connection;
  private readonly host: ConnectionHost<T>;
  private flags = 0;
  private closeTimer: NodeJS.Timeout | null = null;
  /** When the outstanding keepalive ping was sent (Date.now()). */
  private pingSentAt = 0;
  /** Write callback used while a send's backpressure is pending (made once, on first need). */
  private onWritten: ((err?: Error | null) => void) | null = null;
  /** Topics this connection is subscribed to (null until the first subscribe). */
  topics: Set<string> | null = null;

  constructor(host: ConnectionHost<T>, socket: Socket, data: T, protocol: string, extensions: string, maxPayload: number, deflate?: PerMessageDeflate) {
    this.host = host;
    this.socket = socket;
    this.data = data;
    this.protocol = protocol;
    this.extensions = extensions;
    this.conn = new Connection(this, { role: 'server', maxPayload, deflate });
    (socket as TaggedSocket)[kWebSocket] = this as ServerWebSocket<unknown>;
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
    socket.on('drain', onSocketDrain);
  }

  /** 1 OPEN, 2 CLOSING, 3 CLOSED (the WHATWG numbering). */
  get readyState(): number {
    return this.flags & SOCKET_CLOSED ? 3 : this.conn.readyState;
  }

  /** Bytes queued and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.conn.pendingBytes + this.socket.writableLength;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  /**
   * Sends a message: text for a string, binary for bytes unless
   * `options.binary` is false. Returns true when the connection's buffered
   * bytes are now beyond the high-water mark: the caller should wait for the
   * handler's `drain` before sending much more. Messages sent after a close
   * frame was sent, or once the connection is gone, are dropped (and false
   * returned).
   */
  send(data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: SendOptions): boolean {
    let queued: boolean;
    if (typeof data === 'string') {
      if (this.flags & SOCKET_CLOSED) return false;
      if (options?.binary === true) queued = this.conn.sendBytes(Buffer.from(data), true);
      else queued = this.conn.sendText(data);
    } else {
      const bytes = toBytes(data);
      const binary = options?.binary ?? true;
      if (!binary && !isUtf8(bytes)) throw new TypeError('text message is not valid UTF-8');
      // (Nothing is framed, or compressed, for a connection that is gone.)
      if (this.flags & SOCKET_CLOSED) return false;
      queued = this.conn.sendBytes(bytes, binary);
    }
    if (!queued) return false;
    return this.afterQueue();
  }

  /** Sends a ping (payload at most 125 bytes). */
  ping(payload?: string | Buffer | ArrayBufferView): void {
    if (this.conn.ping(controlPayload(payload))) this.afterQueue();
  }

  /** Sends an unsolicited pong (payload at most 125 bytes). */
  pong(payload?: string | Buffer | ArrayBufferView): void {
    if (this.conn.pong(controlPayload(payload))) this.afterQueue();
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2). The socket is closed when
   * the peer answers, or after the server's close timeout. Throws RangeError
   * for a code that may not be sent or a reason over 123 bytes.
   */
  close(code: number = CloseCode.Normal, reason = ''): void {
    if (this.flags & SOCKET_CLOSED) return;
    if (!this.conn.close(code, reason)) return;
    this.afterQueue();
    this.startCloseTimer();
  }

  /** Destroys the TCP connection at once, without a closing handshake. */
  terminate(): void {
    if (this.flags & SOCKET_CLOSED) return;
    this.conn.discardOutput();
    this.socket.destroy();
  }

  /** Subscribes this connection to `topic` (see `WebSocketServer.publish`). */
  subscribe(topic: string): void {
    this.host.subscribe(this, topic);
  }

  unsubscribe(topic: string): void {
    this.host.unsubscribe(this, topic);
  }

  isSubscribed(topic: string): boolean {
    return this.topics?.has(topic) ?? false;
  }

  /** Publishes to every subscriber of `topic` but this connection. Returns how many it was queued for. */
  publish(topic: string, data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: SendOptions): number {
    return this.host.publish(topic, data, options, this);
  }

  /** Sends bytes that are already a whole unmasked frame (used by publish). @internal */
  sendFrame(frame: Buffer): void {
    if (this.conn.sendRaw(frame)) this.afterQueue();
  }

  /** Writes everything queued to the socket. @internal */
  flush(): void {
    this.flags &= ~FLUSH_QUEUED;
    if (this.flags & SOCKET_CLOSED) {
      this.conn.discardOutput();
      return;
    }
    // While a send's backpressure is pending, learn from the write callback
    // when the bytes left the socket: the socket emits 'drain' only if its own
    // buffer went over its own mark, which may be above ours or never reached.
    let written: ((err?: Error | null) => void) | undefined;
    if (this.flags & WANT_DRAIN) {
      written = this.onWritten ??= (err) => {
        if (!err) this.socketDrained();
      };
    }
    flushOutput(this.conn.takeOutput(), this.socket, written);
    if (this.conn.wantsTransportClose) this.endTransport();
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
    if (f & PING_OUTSTANDING) return now - this.pingSentAt < timeout;
    this.flags = f | PING_OUTSTANDING;
    this.pingSentAt = now;
    this.ping();
    return true;
  }

  /** Whether a keepalive ping went unanswered (no traffic since). @internal */
  get keepaliveExpired(): boolean {
    return (this.flags & (PING_OUTSTANDING | ACTIVE)) === PING_OUTSTANDING;
  }

  private afterQueue(): boolean {
    const f = this.flags;
    if ((f & (IN_RECEIVE | FLUSH_QUEUED)) === 0) {
      this.flags = f | FLUSH_QUEUED;
      queueFlush(this);
    }
    if (this.bufferedAmount > this.host.highWaterMark) {
      this.flags |= WANT_DRAIN;
      return true;
    }
    return false;
  }

  /** A chunk from the socket: parse it whole, then write all answers at once. @internal */
  receiveChunk(chunk: Buffer, borrowed: boolean): void {
    this.flags |= IN_RECEIVE | ACTIVE;
    try {
      this.conn.receive(chunk, borrowed);
    } catch (err) {
      // A handler threw: the connection cannot continue in a known state.
      this.conn.fail(CloseCode.InternalError, 'internal error');
      this.reportError(err);
    } finally {
      this.flags &= ~IN_RECEIVE;
    }
    this.flush();
  }

  /** Ends TCP after the closing handshake or a failure: the server closes first (RFC 6455 §7.1.1). */
  private endTransport(): void {
    if (this.flags & (TRANSPORT_ENDING | SOCKET_CLOSED)) return;
    this.flags |= TRANSPORT_ENDING;
    this.socket.end();
    // A peer that never closes its side is cut off after the close timeout.
    this.startCloseTimer();
  }

  private startCloseTimer(): void {
    if (this.closeTimer !== null || this.flags & SOCKET_CLOSED) return;
    this.closeTimer = setTimeout(destroySocket, this.host.closeTimeout, this.socket);
    this.closeTimer.unref();
  }

  private reportError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    const onError = this.host.handler.error;
    if (onError !== undefined) {
      try {
        onError(this, error);
        return;
      } catch (inner) {
        console.error('fullduplex: error handler threw', inner);
      }
    }
    console.error('fullduplex: handler threw; connection closed with 1011', error);
  }

  /** @internal */
  socketEnded(): void {
    // The peer half-closed: finish our side too (we never keep half-open sockets).
    if (!(this.flags & TRANSPORT_ENDING)) {
      this.flags |= TRANSPORT_ENDING;
      this.flush();
      this.socket.end();
    }
  }

  /** @internal */
  socketClosed(): void {
    if (this.flags & SOCKET_CLOSED) return;
    this.flags |= SOCKET_CLOSED;
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
    this.conn.discardOutput();
    this.conn.release();
    const code = this.conn.closeReceived ? this.conn.closeCode : CloseCode.Abnormal;
    const reason = this.conn.closeReceived ? this.conn.closeReason : '';
    this.host.connectionClosed(this);
    const onClose = this.host.handler.close;
    if (onClose !== undefined) {
      try {
        onClose(this, code, reason);
      } catch (err) {
        this.reportError(err);
      }
    }
  }

  /** @internal */
  socketDrained(): void {
    if (this.flags & WANT_DRAIN && !(this.flags & SOCKET_CLOSED) && this.bufferedAmount <= this.host.highWaterMark) {
      this.flags &= ~WANT_DRAIN;
      const onDrain = this.host.handler.drain;
      if (onDrain === undefined) return;
      try {
        onDrain(this);
      } catch (err) {
        this.conn.fail(CloseCode.InternalError, 'internal error');
        this.reportError(err);
        this.flush();
      }
    }
  }

  /** Queues the handshake response ahead of any frame. @internal */
  queuePreamble(response: string): void {
    this.conn.writer.preamble(response);
  }

  /** Calls the open handler. @internal */
  opened(head: Buffer | null): void {
    const onOpen = this.host.handler.open;
    if (onOpen !== undefined) {
      try {
        onOpen(this);
      } catch (err) {
        this.conn.fail(CloseCode.InternalError, 'internal error');
        this.reportError(err);
      }
    }
    if (head !== null && head.length > 0 && !(this.flags & SOCKET_CLOSED)) this.receiveChunk(head, false);
    else this.flush();
    if (!(this.flags & SOCKET_CLOSED)) startReading(this.socket, this);
  }

  // ConnectionEvents, called from inside conn.receive().

  onMessage(data: Buffer, isBinary: boolean): void {
    const onMessage = this.host.handler.message;
    if (onMessage !== undefined) onMessage(this, data, isBinary);
  }

  onPing(payload: Buffer): void {
    const onPing = this.host.handler.ping;
    if (onPing !== undefined) onPing(this, payload);
  }

  onPong(payload: Buffer): void {
    const onPong = this.host.handler.pong;
    if (onPong !== undefined) onPong(this, payload);
  }

  onPeerClose(): void {
    // Our answering close frame is queued; flush() ends TCP once it is written.
  }

  onFail(error: ProtocolError): void {
    const onError = this.host.handler.error;
    if (onError !== undefined) {
      try {
        onError(this, error);
      } catch (err) {
        console.error('fullduplex: error handler threw', err);
      }
    }
  }
}

function onSocketEnd(this: TaggedSocket): void {
  this[kWebSocket]?.socketEnded();
}

function onSocketClose(this: TaggedSocket): void {
  this[kWebSocket]?.socketClosed();
}

function onSocketError(this: TaggedSocket): void {
  // 'close' follows every 'error'; the handler learns of it there (code 1006).
}

function onSocketDrain(this: TaggedSocket): void {
  this[kWebSocket]?.socketDrained();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
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
