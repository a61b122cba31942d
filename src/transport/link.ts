/**
 * The transport link: one stream ⇄ one sans-I/O protocol `Connection`, shared
 * by server and client connections. It reads (reader.ts), writes once per
 * receive pass or once per tick (output.ts), bounds the closing handshake
 * with a timer, ends and tears down the stream, and reports completion of
 * sends. What a side does with messages and closes is its own (the
 * subclass's `ConnectionEvents` and hooks).
 *
 * The stream may be a `net.Socket` (an HTTP/1.1 upgrade), a TLS socket, or any
 * `Duplex` a framework or another transport (an HTTP/2 stream) hands over.
 * Stream listeners are module-level functions that find their link through a
 * symbol on the stream, so a connection allocates no closures.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode } from '../protocol/close.js';
import { Connection, type ConnectionEvents, type ConnectionOptions } from '../protocol/connection.js';
import type { ProtocolError } from '../protocol/errors.js';
import { ReadyState } from '../protocol/ready-state.js';
import { watchDeflateIdle } from './deflate-idle.js';
import { flushOutput, queueFlush } from './output.js';
import { type ChunkReceiver, kReceiver, startReading } from './reader.js';

/** Learns that a send reached the kernel (`error` null) or never will (the connection died first). */
export type SendCallback = (error: Error | null) => void;

// The stream's slot for its receiver (reader.ts) holds the link itself.
type TaggedStream = Duplex & { [kReceiver]?: Link };

// Bit flags, in one field to keep the per-connection object small.
const IN_RECEIVE = 1; // inside a receive pass: the pass flushes once at its end
const FLUSH_QUEUED = 2; // on the shared list of links to flush this tick
const STREAM_CLOSED = 4;
const STREAM_ENDING = 8; // we ended (or are ending) our side
const PEER_ENDED = 16; // the peer ended its side and the stream cannot be written any more
const WANT_DRAIN = 32; // a send reported backpressure: call transportDrained() when it clears
const READ_PAUSED = 64; // reading stopped while output is over the read limit
/** Flags the subclasses may use. */
export const LINK_FLAG_BASE = 128;

/** Longest delay setTimeout honours; longer ones (and Infinity) mean "no timer". */
export const MAX_TIMER_DELAY = 0x7fffffff;
const CONNECTION_GONE = 'the connection closed before the data was sent';

export abstract class Link implements ConnectionEvents, ChunkReceiver {
  protected readonly stream: Duplex;
  protected readonly conn: Connection;
  protected flags = 0;
  private closeTimer: NodeJS.Timeout | null = null;
  /** Completion callbacks of sends queued since the last flush. */
  private callbacks: SendCallback[] | null = null;
  /** The write callback used while a drain is wanted (made once, on first need). */
  private onWritten: ((err?: Error | null) => void) | null = null;

  constructor(stream: Duplex, options: ConnectionOptions) {
    this.stream = stream;
    this.conn = new Connection(this, options);
    if (options.deflate !== undefined) watchDeflateIdle();
    (stream as TaggedStream)[kReceiver] = this;
    stream.on('end', onStreamEnd);
    stream.on('close', onStreamClose);
    stream.on('error', onStreamError);
    stream.on('drain', onStreamDrain);
  }

  // What the side decides.

  /** Milliseconds to wait for the peer's close frame or FIN once ours was sent. */
  protected abstract get closeTimeout(): number;
  /** Bytes of buffered output beyond which sends report backpressure. */
  protected abstract get highWaterMark(): number;
  /** Bytes of buffered output beyond which the link stops reading from the peer (read-side flow control). */
  protected abstract get readLimit(): number;
  /** Whether this side closes the transport first once the closing handshake is done (RFC 6455 §7.1.1: the server). */
  protected abstract get closesFirst(): boolean;
  /** A handler threw during a receive pass; the connection was failed with 1011. */
  protected abstract handlerThrew(error: unknown): void;
  /** The stream closed; everything is released. Runs once. */
  protected abstract transportClosed(): void;
  /** Buffered output fell back to the high-water mark after a send reported backpressure. */
  protected abstract transportDrained(): void;
  /** The stream errored (a 'close' follows). */
  protected transportError(_error: Error): void {}
  /** `bytes` of output were handed to the stream (for accounting). */
  protected flushed(_bytes: number): void {}
  /** `bytes` of output were dropped because the stream cannot take them. */
  protected discarded(_bytes: number): void {}

  // ConnectionEvents: called from inside conn.receive().
  abstract onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void;
  abstract onPing(payload: Buffer): void;
  abstract onPong(payload: Buffer): void;
  abstract onPeerClose(code: number, reason: string): void;
  abstract onFail(error: ProtocolError): void;

  /** Open (1), closing (2) or closed (3), the WHATWG numbering. */
  get readyState(): ReadyState {
    return this.flags & STREAM_CLOSED ? ReadyState.Closed : this.conn.readyState;
  }

  /** Bytes queued and not yet handed to the kernel (framing included). */
  get bufferedAmount(): number {
    return this.conn.pendingBytes + this.stream.writableLength;
  }

  /** Whether the stream is gone. */
  protected get isClosed(): boolean {
    return (this.flags & STREAM_CLOSED) !== 0;
  }

  /** Starts reading; `head` (bytes that came with the handshake) is parsed first. */
  protected startLink(head: Buffer | null): void {
    if (head !== null && head.length > 0 && !(this.flags & STREAM_CLOSED)) this.receiveChunk(head, false);
    else this.flush();
    if (this.flags & STREAM_CLOSED) return;
    // A stream handed over already destroyed (an HTTP/2 stream reset while an
    // upgrade hook ran) will emit no 'close' for us: close the link now.
    if (this.stream.destroyed) {
      this.streamClosed();
      return;
    }
    // Output queued before the first read (an open handler's) may already be over the read limit.
    startReading(this.stream, this, (this.flags & READ_PAUSED) !== 0);
  }

  /** After the core queued output: flush it this tick (once, or at the end of the receive pass). */
  protected queued(callback?: SendCallback): void {
    if (callback !== undefined) (this.callbacks ??= []).push(callback);
    const f = this.flags;
    if ((f & (IN_RECEIVE | FLUSH_QUEUED | STREAM_CLOSED)) === 0) {
      this.flags = f | FLUSH_QUEUED;
      queueFlush(this);
    }
  }

  /**
   * `queued()` for an application's send: says whether the buffered output
   * is now beyond the high-water mark, and then arms `transportDrained` for
   * when it clears (only sends that reported backpressure get a drain).
   */
  protected sent(callback?: SendCallback): boolean {
    this.queued(callback);
    if (this.bufferedAmount > this.highWaterMark) {
      this.flags |= WANT_DRAIN;
      return true;
    }
    return false;
  }

  /** Tells `callback` that its send will never go (the connection is closing or gone). */
  protected static refused(callback: SendCallback | undefined): void {
    if (callback !== undefined) queueMicrotask(() => callback(new Error(CONNECTION_GONE)));
  }

  /** A chunk from the stream: parse it whole, then write every answer at once. @internal */
  receiveChunk(chunk: Buffer, borrowed: boolean): void {
    this.flags |= IN_RECEIVE;
    try {
      this.conn.receive(chunk, borrowed);
    } catch (err) {
      // A handler threw: the connection cannot continue in a known state.
      this.conn.fail(CloseCode.InternalError, 'internal error');
      this.handlerThrew(err);
    } finally {
      this.flags &= ~IN_RECEIVE;
    }
    this.flush();
  }

  /**
   * Runs `fn` (a handler) as a receive pass does: what it sends is flushed by
   * the caller's next flush, not per send; if it throws, the connection fails
   * with 1011.
   */
  protected withinPass(fn: () => void): void {
    const f = this.flags;
    this.flags = f | IN_RECEIVE;
    try {
      fn();
    } catch (err) {
      this.conn.fail(CloseCode.InternalError, 'internal error');
      this.handlerThrew(err);
    } finally {
      this.flags = (this.flags & ~IN_RECEIVE) | (f & IN_RECEIVE);
    }
  }

  /** Writes everything queued to the stream. @internal */
  flush(): void {
    this.flags &= ~FLUSH_QUEUED;
    const conn = this.conn;
    const n = conn.pendingBytes;
    const callbacks = this.callbacks;
    this.callbacks = null;
    if (n > 0) {
      if (this.flags & (STREAM_CLOSED | PEER_ENDED) || !this.stream.writable) {
        conn.discardOutput();
        this.discarded(n);
        if (callbacks !== null) failCallbacks(callbacks);
      } else {
        // The write callback tells when the bytes left the stream's buffer: a
        // 'drain' comes only if the stream's own buffer went over its own
        // mark, which may be above ours or never reached.
        const stream = this.stream;
        if (!(this.flags & READ_PAUSED) && n + stream.writableLength > this.readLimit) {
          // Read-side flow control: a peer that sends but does not read what
          // it is sent gets no more reads until its output drains (the write
          // callback below tells when).
          this.flags |= READ_PAUSED;
          stream.pause();
        }
        let written: ((err?: Error | null) => void) | undefined;
        if (callbacks !== null) written = this.completion(callbacks);
        else if (this.flags & (WANT_DRAIN | READ_PAUSED)) written = this.onWritten ??= (err) => this.written(err);
        flushOutput(conn.takeOutput(), stream, written);
        this.flushed(n);
      }
    } else if (callbacks !== null) {
      // Nothing was queued for them (a send dropped after closing began).
      failCallbacks(callbacks);
    }
    if (conn.wantsTransportClose && this.closesFirst) this.endTransport();
    // A close frame went out (ours, our answer, or a failure's): bound the wait for the peer.
    if (conn.closeSent) this.startCloseTimer();
  }

  /** A write callback that completes `callbacks` and does what the plain one does. */
  private completion(callbacks: SendCallback[]): (err?: Error | null) => void {
    return (err) => {
      const error = err ?? null;
      for (let i = 0; i < callbacks.length; i++) callCallback(callbacks[i]!, error);
      this.written(err);
    };
  }

  private written(err?: Error | null): void {
    if (!err) this.drained();
  }

  /** Ends our side of the transport (after the closing handshake or a failure). */
  protected endTransport(): void {
    if (this.flags & (STREAM_ENDING | STREAM_CLOSED)) return;
    this.flags |= STREAM_ENDING;
    this.stream.end();
    // A peer that never closes its side is cut off after the close timeout.
    this.startCloseTimer();
  }

  protected startCloseTimer(): void {
    if (this.closeTimer !== null || this.flags & STREAM_CLOSED) return;
    const ms = this.closeTimeout;
    if (ms > MAX_TIMER_DELAY) return;
    // Unreferenced: the open stream itself keeps the process alive.
    this.closeTimer = setTimeout(destroyStream, ms, this.stream);
    this.closeTimer.unref();
  }

  /** Destroys the stream at once, without a closing handshake. */
  protected destroyTransport(): void {
    if (this.flags & STREAM_CLOSED) return;
    this.conn.discardOutput();
    this.stream.destroy();
  }

  /** @internal */
  streamEnded(): void {
    // The peer ended its side. A stream that is not half-open cannot be
    // written after that (Node fails such writes with EPIPE): drop what is
    // queued; otherwise send it. Then end ours (no half-open connections).
    if (!(this.stream as Socket).allowHalfOpen) this.flags |= PEER_ENDED;
    this.flush();
    if (!(this.flags & STREAM_ENDING)) {
      this.flags |= STREAM_ENDING;
      this.stream.end();
    }
  }

  /** @internal */
  streamClosed(): void {
    if (this.flags & STREAM_CLOSED) return;
    this.flags |= STREAM_CLOSED;
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
    const n = this.conn.pendingBytes;
    if (n > 0) this.discarded(n);
    this.conn.discardOutput();
    const callbacks = this.callbacks;
    this.callbacks = null;
    if (callbacks !== null) failCallbacks(callbacks);
    this.conn.release();
    (this.stream as TaggedStream)[kReceiver] = undefined;
    this.transportClosed();
  }

  /** @internal */
  streamErrored(error: Error): void {
    this.transportError(error);
  }

  /** Output left the stream's buffer (a write callback, or the stream's 'drain'). @internal */
  drained(): void {
    if (this.flags & STREAM_CLOSED) return;
    if (this.flags & READ_PAUSED && this.bufferedAmount <= this.readLimit) {
      this.flags &= ~READ_PAUSED;
      this.stream.resume();
    }
    if (this.flags & WANT_DRAIN && this.bufferedAmount <= this.highWaterMark) {
      this.flags &= ~WANT_DRAIN;
      this.transportDrained();
    }
  }

  /** The close frame the peer sent, or 1006 and "" when none arrived (RFC 6455 §7.1.5, §7.1.6). */
  protected get peerClose(): { code: number; reason: string } {
    const conn = this.conn;
    return conn.closeReceived ? { code: conn.closeCode, reason: conn.closeReason } : { code: CloseCode.Abnormal, reason: '' };
  }
}

function callCallback(cb: SendCallback, error: Error | null): void {
  try {
    cb(error);
  } catch (err) {
    // A callback's own exception must not break the write path; surface it like any uncaught one.
    queueMicrotask(() => {
      throw err;
    });
  }
}

function failCallbacks(callbacks: SendCallback[]): void {
  const error = new Error(CONNECTION_GONE);
  queueMicrotask(() => {
    for (let i = 0; i < callbacks.length; i++) callCallback(callbacks[i]!, error);
  });
}

// Shared listeners: `this` is the stream, which carries its link.

function onStreamEnd(this: TaggedStream): void {
  this[kReceiver]?.streamEnded();
}

function onStreamClose(this: TaggedStream): void {
  this[kReceiver]?.streamClosed();
}

function onStreamError(this: TaggedStream, error: Error): void {
  // 'close' follows every 'error'; the side learns of the close there.
  this[kReceiver]?.streamErrored(error);
}

function onStreamDrain(this: TaggedStream): void {
  this[kReceiver]?.drained();
}

function destroyStream(stream: Duplex): void {
  stream.destroy();
}
