/**
 * The I/O side of one WHATWG WebSocket (see client.ts for the API object):
 * the opening handshake request, the upgraded socket, the protocol
 * `Connection`, the timers, write coalescing and the accounting behind
 * `bufferedAmount`.
 *
 * Socket and request listeners are module-level functions that find their
 * ClientConnection through a symbol, so a connection allocates no closures.
 * Frames queued while a socket chunk is processed are written once at the end
 * of that chunk; frames queued at any other time are written once per tick.
 */
import { Blob } from 'node:buffer';
import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { CloseCode } from '../protocol/close.js';
import { Connection, type ConnectionEvents } from '../protocol/connection.js';
import type { ProtocolError } from '../protocol/errors.js';
import {
  PERMESSAGE_DEFLATE,
  PerMessageDeflate,
  type PerMessageDeflateOptions,
  SYNC_DEFLATE,
  checkDeflateResponse,
  deflateOffer,
} from '../protocol/deflate.js';
import { type ExtensionOffer, formatExtensions } from '../protocol/extensions.js';
import { type AcceptedResponse, checkUpgradeResponse, generateKey } from '../protocol/handshake.js';
import type { BinaryType, MessageData, ReadyStateValue, ResolvedOptions, WebSocket } from './client.js';
import { CloseEvent, ErrorEvent, MessageEvent } from './events.js';
import { flushOutput, queueFlush } from './output.js';
import { type ChunkReceiver, startReading } from './reader.js';

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

/** Request headers the handshake owns (RFC 6455 §4.1); a user's `headers` cannot replace them. */
const HANDSHAKE_HEADERS = new Set([
  'connection',
  'upgrade',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);

// ---------------------------------------------------------------------------
// The connection behind a WebSocket

const kClient = Symbol('fullduplex.client');
type TaggedRequest = ClientRequest & { [kClient]?: ClientConnection };
type TaggedSocket = Socket & { [kClient]?: ClientConnection };

// Bit flags, to keep the per-connection object small.
const IN_RECEIVE = 1; // inside a receive pass (or the open event): the pass flushes once at its end
const FLUSH_QUEUED = 2; // on the shared list of connections to flush this tick
const SOCKET_CLOSED = 4;
const HANDSHAKE_SETTLED = 8; // the opening handshake succeeded or failed; request events are ignored
const PEER_ENDED = 16; // the server closed its side of TCP: nothing more can be written

/** Longest delay setTimeout honours; longer ones (and Infinity) mean "no timer". */
const MAX_TIMER_DELAY = 0x7fffffff;

/** A send() held back behind a Blob that is still being read, so messages keep their order. */
type Deferred =
  | { kind: 'text'; text: string; size: number }
  | { kind: 'bytes'; bytes: Uint8Array; size: number }
  | { kind: 'blob'; size: number; bytes: Uint8Array | null; error: Error | null }
  | { kind: 'close'; code: number | null; reason: string; size: 0 };

/** The I/O side of one WebSocket: handshake, socket, protocol core, timers. */
export class ClientConnection implements ConnectionEvents, ChunkReceiver {
  readonly target: WebSocket;
  readonly url: URL;
  /** Serialisation of the URL's origin, the `origin` of every MessageEvent. */
  readonly origin: string;
  readonly protocols: readonly string[];
  readyState: ReadyStateValue = CONNECTING;
  protocol = '';
  extensions = '';
  binaryType: BinaryType = 'blob';

  private flags = 0;
  private readonly key: string;
  private readonly maxPayload: number;
  private readonly closeTimeout: number;
  private readonly deflateOptions: PerMessageDeflateOptions | null;
  private req: TaggedRequest | null = null;
  private socket: TaggedSocket | null = null;
  private conn: Connection | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  /** Why the connection was failed; set means an `error` event precedes `close`. */
  private failure: Error | null = null;

  // bufferedAmount (WHATWG WebSockets § bufferedAmount): application bytes, no framing.
  /** Bytes of messages queued in the writer since the last flush. */
  private inWriter = 0;
  /** Bytes handed to the socket since it opened, framing included: the stream offset. */
  private written = 0;
  /** Flushes not yet known to be transmitted: pairs of (stream offset where it ends, application bytes in it). */
  private inFlight: number[] | null = null;
  private inFlightHead = 0;
  private inFlightBytes = 0;
  /** Bytes of sends held behind a Blob being read. */
  private deferredBytes = 0;
  /** Bytes passed to send() that will never be sent (after closing began, or dropped). */
  private unsentBytes = 0;
  private deferred: Deferred[] | null = null;

  constructor(target: WebSocket, url: URL, protocols: string[], options: ResolvedOptions) {
    this.target = target;
    this.url = url;
    this.origin = url.origin;
    this.protocols = protocols;
    this.maxPayload = options.maxPayload;
    this.closeTimeout = options.closeTimeout;
    this.deflateOptions = options.perMessageDeflate;
    this.key = generateKey();
    this.startHandshake(options);
  }

  get bufferedAmount(): number {
    if (!(this.flags & SOCKET_CLOSED)) this.pruneInFlight();
    return this.inWriter + this.inFlightBytes + this.deferredBytes + this.unsentBytes;
  }

  // -------------------------------------------------------------------------
  // Opening handshake: RFC 6455 §4.1, WHATWG WebSockets § 2.2 Opening handshakes

  private startHandshake(options: ResolvedOptions): void {
    const url = this.url;
    const secure = url.protocol === 'wss:';
    const headers: OutgoingHttpHeaders = {};
    const given = new Set<string>();
    if (options.headers !== undefined) {
      for (const [name, value] of Object.entries(options.headers)) {
        const lower = name.toLowerCase();
        if (HANDSHAKE_HEADERS.has(lower) || value === undefined) continue;
        if (lower === 'origin' && options.origin !== undefined) continue;
        headers[name] = value;
        given.add(lower);
      }
    }
    if (options.origin !== undefined) headers['Origin'] = options.origin;
    // WHATWG § 2.2: the handshake is a fetch with cache mode "no-store", for which
    // Fetch adds these (they keep caching intermediaries out of the way).
    if (!given.has('pragma')) headers['Pragma'] = 'no-cache';
    if (!given.has('cache-control')) headers['Cache-Control'] = 'no-cache';
    headers['Connection'] = 'Upgrade';
    headers['Upgrade'] = 'websocket';
    headers['Sec-WebSocket-Key'] = this.key;
    headers['Sec-WebSocket-Version'] = '13';
    if (this.protocols.length > 0) headers['Sec-WebSocket-Protocol'] = this.protocols.join(', ');
    // WHATWG § 2.2 ("establish a WebSocket connection"): the user agent
    // offers a permessage-deflate of its choosing.
    if (this.deflateOptions !== null && SYNC_DEFLATE) {
      headers['Sec-WebSocket-Extensions'] = formatExtensions([{ name: PERMESSAGE_DEFLATE, params: deflateOffer(this.deflateOptions) }]);
    }

    const requestOptions: https.RequestOptions = {
      ...(secure ? options.tls : undefined),
      protocol: secure ? 'https:' : 'http:',
      // URL keeps IPv6 literals bracketed; the socket layer wants them bare.
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      // RFC 6455 §3: the resource name is the path and the query.
      path: url.pathname + url.search,
      method: 'GET',
      headers,
      // A dedicated connection: an upgraded socket never returns to a pool.
      agent: options.agent ?? false,
    };
    const req: TaggedRequest = secure ? https.request(requestOptions) : http.request(requestOptions);
    req[kClient] = this;
    req.on('upgrade', onRequestUpgrade);
    req.on('response', onRequestResponse);
    req.on('error', onRequestError);
    this.req = req;
    if (options.handshakeTimeout <= MAX_TIMER_DELAY) {
      // Unreferenced: the pending request itself keeps the process alive.
      this.handshakeTimer = setTimeout(onHandshakeTimeout, options.handshakeTimeout, this, options.handshakeTimeout);
      this.handshakeTimer.unref();
    }
    req.end();
  }

  /** The server answered 101 and Node handed over the socket. @internal */
  upgraded(res: IncomingMessage, socket: Socket, head: Buffer): void {
    if (this.flags & HANDSHAKE_SETTLED) {
      socket.destroy();
      return;
    }
    // RFC 6455 §4.1 (the client MUST validate the server's response); WHATWG WebSockets § 2.2.
    const offered = this.deflateOptions !== null && SYNC_DEFLATE ? [PERMESSAGE_DEFLATE] : [];
    let accepted: AcceptedResponse | Error = checkUpgradeResponse({ statusCode: res.statusCode ?? 0, headers: res.headers }, this.key, this.protocols, offered);
    let deflate: PerMessageDeflate | null = null;
    if (!(accepted instanceof Error)) {
      const d = this.acceptedDeflate(accepted.extensions);
      if (d instanceof Error) accepted = d;
      else deflate = d;
    }
    if (accepted instanceof Error) {
      socket.destroy();
      this.failConnecting(accepted);
      return;
    }
    this.settleHandshake();
    const s: TaggedSocket = socket;
    s[kClient] = this;
    this.socket = s;
    socket.setNoDelay(true);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
    this.conn = new Connection(this, { role: 'client', maxPayload: this.maxPayload, deflate: deflate ?? undefined });

    // WHATWG § Feedback from the protocol, "When the WebSocket connection is established":
    // 1. Change the ready state to OPEN. 2-3. Set extensions and protocol. 4. Fire open.
    this.readyState = OPEN;
    this.extensions = formatExtensions(accepted.extensions);
    this.protocol = accepted.protocol;
    // Sends from open listeners are written with the answers to `head`, in one write.
    this.flags |= IN_RECEIVE;
    this.target.dispatchEvent(new Event('open'));
    this.flags &= ~IN_RECEIVE;
    // Bytes that arrived with the response head are the first frames.
    if (head.length > 0 && !(this.flags & SOCKET_CLOSED)) this.receiveChunk(head, false);
    else this.flush();
    if (!(this.flags & SOCKET_CLOSED)) startReading(socket, this);
  }

  /**
   * The codec for a permessage-deflate the server accepted (RFC 7692 §7.1:
   * at most one, with parameters the client can honour), null when it did
   * not, or the Error that fails the connection.
   */
  private acceptedDeflate(extensions: readonly ExtensionOffer[]): PerMessageDeflate | null | Error {
    const options = this.deflateOptions;
    const mine = extensions.filter((e) => e.name === PERMESSAGE_DEFLATE);
    if (options === null || mine.length === 0) return null;
    if (mine.length > 1) return new Error('server accepted permessage-deflate more than once');
    const params = checkDeflateResponse(mine[0]!.params, options);
    if (params instanceof Error) return params;
    return new PerMessageDeflate('client', params, options, this.maxPayload);
  }

  /** The server answered without upgrading (any status but a 101 that upgrades). @internal */
  responded(res: IncomingMessage): void {
    res.resume();
    const checked = checkUpgradeResponse({ statusCode: res.statusCode ?? 0, headers: res.headers }, this.key, this.protocols);
    this.failConnecting(checked instanceof Error ? checked : new Error('server accepted the handshake but did not upgrade the connection'));
  }

  /** The request failed: DNS, TCP (ECONNREFUSED), TLS, or a reset before the response. @internal */
  requestFailed(error: Error): void {
    this.failConnecting(error);
  }

  /** @internal */
  handshakeTimedOut(ms: number): void {
    this.failConnecting(new Error(`opening handshake timed out after ${ms} ms`));
  }

  private settleHandshake(): void {
    this.flags |= HANDSHAKE_SETTLED;
    if (this.handshakeTimer !== null) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
    const req = this.req;
    if (req !== null) {
      // The request keeps its error listener: events after this are ignored, not thrown.
      req[kClient] = undefined;
      this.req = null;
    }
  }

  /**
   * RFC 6455 §4.1 "Fail the WebSocket Connection" before it is established:
   * no frames, just drop the transport; then the close steps run as a task.
   */
  private failConnecting(error: Error): void {
    if (this.flags & HANDSHAKE_SETTLED) return;
    const req = this.req;
    this.settleHandshake();
    this.failure = error;
    req?.destroy();
    setImmediate(runClosed, this);
  }

  // -------------------------------------------------------------------------
  // API operations (called by WebSocket once the spec's checks passed)

  /** send(string). WHATWG: counts the UTF-8 length; sends only while OPEN. */
  sendText(text: string): void {
    const size = Buffer.byteLength(text);
    if (this.readyState !== OPEN) {
      this.unsentBytes += size;
      return;
    }
    if (this.deferred !== null) {
      this.deferred.push({ kind: 'text', text, size });
      this.deferredBytes += size;
      return;
    }
    this.writeText(text, size);
  }

  /** send(ArrayBuffer | ArrayBufferView). The bytes are copied before send() returns. */
  sendBinary(bytes: Uint8Array): void {
    const size = bytes.byteLength;
    if (this.readyState !== OPEN) {
      this.unsentBytes += size;
      return;
    }
    if (this.deferred !== null) {
      // Snapshot now: the caller may reuse its buffer once send() returns.
      this.deferred.push({ kind: 'bytes', bytes: bytes.slice(), size });
      this.deferredBytes += size;
      return;
    }
    this.writeBytes(bytes, size);
  }

  /** send(Blob): read asynchronously; later sends wait behind it so order holds. */
  sendBlob(blob: Blob): void {
    const size = blob.size;
    if (this.readyState !== OPEN) {
      this.unsentBytes += size;
      return;
    }
    const entry: Deferred & { kind: 'blob' } = { kind: 'blob', size, bytes: null, error: null };
    (this.deferred ??= []).push(entry);
    // The close frame the protocol queues on its own (its answer to the server's close, or a
    // failure's) waits behind the sends queued here: WHATWG § send() sends what was given while OPEN.
    if (this.conn !== null) this.conn.holdClose = true;
    this.deferredBytes += size;
    blob.arrayBuffer().then(
      (buffer) => {
        entry.bytes = new Uint8Array(buffer);
        this.drainDeferred();
      },
      (err: unknown) => {
        entry.error = err instanceof Error ? err : new Error(String(err));
        this.drainDeferred();
      },
    );
  }

  /** WHATWG WebSockets § close the WebSocket, step 4 (arguments already checked). */
  close(code: number | null, reason: string): void {
    switch (this.readyState) {
      case CLOSING:
      case CLOSED:
        // If this's ready state is CLOSING or CLOSED: do nothing.
        return;
      case CONNECTING:
        // If the WebSocket connection is not yet established: fail the WebSocket
        // connection and set this's ready state to CLOSING.
        this.readyState = CLOSING;
        this.failConnecting(new Error('WebSocket was closed before the connection was established'));
        return;
      case OPEN:
        // If the closing handshake has not yet been started: start it and set the ready
        // state to CLOSING. The close frame follows any sends still waiting on a Blob.
        this.readyState = CLOSING;
        if (this.deferred !== null) this.deferred.push({ kind: 'close', code, reason, size: 0 });
        else this.writeClose(code, reason);
        return;
    }
  }

  private writeText(text: string, size: number): void {
    if (this.conn !== null && this.conn.sendText(text)) {
      this.inWriter += size;
      this.scheduleFlush();
    } else {
      this.unsentBytes += size;
    }
  }

  private writeBytes(bytes: Uint8Array, size: number): void {
    if (this.conn !== null && this.conn.sendBytes(bytes, true)) {
      this.inWriter += size;
      this.scheduleFlush();
    } else {
      this.unsentBytes += size;
    }
  }

  private writeClose(code: number | null, reason: string): void {
    const conn = this.conn;
    if (conn === null) return;
    // WHATWG § close the WebSocket: no code and no reason → a close frame without a body;
    // a reason without a code → 1000. RFC 6455 §5.5.1.
    const wireCode = code ?? (reason === '' ? undefined : CloseCode.Normal);
    if (conn.close(wireCode, reason)) this.scheduleFlush();
  }

  /** Sends whatever waits at the head of the deferred queue, stopping at a Blob still being read. */
  private drainDeferred(): void {
    const queue = this.deferred;
    if (queue === null) return;
    let i = 0;
    for (; i < queue.length; i++) {
      const entry = queue[i]!;
      if (entry.kind === 'blob' && entry.bytes === null && entry.error === null) break;
      this.deferredBytes -= entry.size;
      switch (entry.kind) {
        case 'text':
          this.writeText(entry.text, entry.size);
          break;
        case 'bytes':
          this.writeBytes(entry.bytes, entry.size);
          break;
        case 'blob':
          if (entry.bytes !== null) {
            this.writeBytes(entry.bytes, entry.size);
          } else {
            this.unsentBytes += entry.size;
            this.failOpen(CloseCode.InternalError, 'could not read a Blob', entry.error ?? new Error('could not read a Blob'));
          }
          break;
        case 'close':
          this.writeClose(entry.code, entry.reason);
          break;
      }
    }
    queue.splice(0, i);
    if (queue.length === 0 && this.deferred === queue) {
      this.deferred = null;
      if (this.conn !== null) {
        this.conn.releaseClose();
        this.scheduleFlush();
      }
    }
  }

  // -------------------------------------------------------------------------
  // Data path

  /** A chunk from the socket: parse it whole, then write every answer at once. @internal */
  receiveChunk(chunk: Buffer, borrowed: boolean): void {
    const conn = this.conn;
    if (conn === null) return;
    this.flags |= IN_RECEIVE;
    try {
      conn.receive(chunk, borrowed);
    } catch (err) {
      // Listener exceptions never reach here (EventTarget reports them); this is our own bug.
      this.failOpen(CloseCode.InternalError, 'internal error', err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.flags &= ~IN_RECEIVE;
    }
    this.flush();
  }

  private scheduleFlush(): void {
    const f = this.flags;
    if (f & (IN_RECEIVE | FLUSH_QUEUED | SOCKET_CLOSED)) return;
    this.flags = f | FLUSH_QUEUED;
    queueFlush(this);
  }

  /** Writes everything queued to the socket. @internal */
  flush(): void {
    this.flags &= ~FLUSH_QUEUED;
    const conn = this.conn;
    const socket = this.socket;
    if (conn === null || socket === null) return;
    const n = conn.pendingBytes;
    if (n > 0) {
      if (this.flags & (SOCKET_CLOSED | PEER_ENDED) || !socket.writable) {
        conn.discardOutput();
        this.unsentBytes += this.inWriter;
        this.inWriter = 0;
      } else {
        flushOutput(conn.takeOutput(), socket);
        this.written += n;
        if (this.inWriter > 0) {
          this.pruneInFlight();
          (this.inFlight ??= []).push(this.written, this.inWriter);
          this.inFlightBytes += this.inWriter;
          this.inWriter = 0;
        }
      }
    }
    // A close frame went out (ours, our echo, or a failure's): bound the wait for the server.
    if (conn.closeSent) this.startCloseTimer();
  }

  /** Forgets flushes the socket has handed to the kernel (`writableLength` counts the rest). */
  private pruneInFlight(): void {
    const list = this.inFlight;
    const socket = this.socket;
    if (list === null || socket === null) return;
    const transmitted = this.written - socket.writableLength;
    let h = this.inFlightHead;
    while (h < list.length && list[h]! <= transmitted) {
      this.inFlightBytes -= list[h + 1]!;
      h += 2;
    }
    if (h === list.length) {
      list.length = 0;
      h = 0;
    } else if (h >= 64 && h * 2 >= list.length) {
      // A peer that never quite catches up: drop the consumed prefix now and then.
      list.splice(0, h);
      h = 0;
    }
    this.inFlightHead = h;
  }

  private startCloseTimer(): void {
    if (this.closeTimer !== null || this.flags & SOCKET_CLOSED || this.socket === null) return;
    if (this.closeTimeout > MAX_TIMER_DELAY) return;
    // Unreferenced: the open socket itself keeps the process alive.
    this.closeTimer = setTimeout(destroySocket, this.closeTimeout, this.socket);
    this.closeTimer.unref();
  }

  /**
   * RFC 6455 §7.1.7 "Fail the WebSocket Connection" once established, for a
   * reason of our own: queue a close frame with `code`, stop reading, and let
   * the close steps fire `error` then `close`.
   */
  private failOpen(code: number, reason: string, error: Error): void {
    const conn = this.conn;
    if (conn === null) return;
    this.failure ??= error;
    if (this.readyState === OPEN) this.readyState = CLOSING;
    conn.fail(code, reason);
    this.scheduleFlush();
  }

  // ConnectionEvents, called from inside conn.receive().

  /** WHATWG § Feedback from the protocol, "When a WebSocket message has been received". */
  onMessage(data: Buffer, isBinary: boolean): void {
    // 1. If ready state is not OPEN, then return.
    if (this.readyState !== OPEN) return;
    // 2. Let dataForEvent be determined by type and binaryType.
    let value: MessageData;
    if (!isBinary) value = data.toString('utf8');
    else if (this.binaryType === 'blob') value = new Blob([data]);
    else if (this.binaryType === 'arraybuffer') value = toArrayBuffer(data);
    else value = data;
    // 3. Fire a MessageEvent with origin set to the serialisation of the URL's origin.
    this.target.dispatchEvent(new MessageEvent<MessageData>('message', { data: value, origin: this.origin }));
  }

  onPing(): void {
    // The pong is queued by the Connection and written at the end of this receive pass.
  }

  onPong(): void {}

  /** The server's close frame arrived: our echo is queued (RFC 6455 §5.5.1). */
  onPeerClose(): void {
    // WHATWG § Feedback from the protocol, "When the WebSocket closing handshake is started":
    // change the ready state to CLOSING.
    if (this.readyState === OPEN) this.readyState = CLOSING;
  }

  /** The server broke the protocol: the close frame with its code is queued (RFC 6455 §7.1.7). */
  onFail(error: ProtocolError): void {
    this.failure ??= error;
    if (this.readyState === OPEN) this.readyState = CLOSING;
  }

  // -------------------------------------------------------------------------
  // Transport closing

  /** The server closed its side. RFC 6455 §7.1.1: it closes first; we close ours. @internal */
  socketEnded(): void {
    const socket = this.socket;
    if (socket === null) return;
    // Writing now would fail with EPIPE (Node forbids writes after a FIN unless half-open).
    this.flags |= PEER_ENDED;
    this.flush();
    socket.end();
  }

  /** @internal */
  socketError(error: Error): void {
    const conn = this.conn;
    // RFC 6455 §7.1.4: after the closing handshake the TCP close is clean however it happens.
    if (conn !== null && conn.closeSent && conn.closeReceived) return;
    this.failure ??= error;
  }

  /** @internal */
  socketClosed(): void {
    if (this.flags & SOCKET_CLOSED) return;
    this.pruneInFlight();
    this.flags |= SOCKET_CLOSED;
    const socket = this.socket;
    if (socket !== null) socket[kClient] = undefined;
    if (this.conn !== null) {
      this.unsentBytes += this.inWriter;
      this.inWriter = 0;
      this.conn.discardOutput();
      this.conn.release();
    }
    // Sends still waiting on a Blob will never go: they stay counted in bufferedAmount.
    this.deferred = null;
    this.closed();
  }

  /**
   * WHATWG § Feedback from the protocol, "When the WebSocket connection is
   * closed, possibly cleanly". RFC 6455 §7.1.4-7.1.6 give wasClean, code and reason.
   */
  closed(): void {
    if (this.readyState === CLOSED) return;
    if (this.handshakeTimer !== null) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
    const conn = this.conn;
    const closeReceived = conn !== null && conn.closeReceived;
    // Closed cleanly: the closing handshake completed (close frames both ways), then TCP closed.
    const wasClean = this.failure === null && closeReceived && conn.closeSent;
    // The code and reason of the server's close frame (1005 when it had none), else 1006.
    const code = closeReceived ? conn.closeCode : CloseCode.Abnormal;
    const reason = closeReceived ? conn.closeReason : '';
    // 1. Change the ready state to CLOSED.
    this.readyState = CLOSED;
    // 2. If the user agent was required to fail the WebSocket connection, fire error.
    const failure = this.failure;
    if (failure !== null) this.target.dispatchEvent(new ErrorEvent('error', { message: failure.message, error: failure }));
    // 3. Fire close with wasClean, code and reason.
    this.target.dispatchEvent(new CloseEvent('close', { wasClean, code, reason }));
  }
}

function toArrayBuffer(data: Buffer): ArrayBuffer {
  const ab = data.buffer;
  // A buffer that is exactly its own ArrayBuffer (an assembled message) is handed over as is.
  if (ab instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === ab.byteLength) return ab;
  const out = new ArrayBuffer(data.byteLength);
  new Uint8Array(out).set(data);
  return out;
}

// Shared listeners: `this` is the emitter, which carries its ClientConnection.

function onRequestUpgrade(this: TaggedRequest, res: IncomingMessage, socket: Socket, head: Buffer): void {
  const c = this[kClient];
  if (c === undefined) socket.destroy();
  else c.upgraded(res, socket, head);
}

function onRequestResponse(this: TaggedRequest, res: IncomingMessage): void {
  const c = this[kClient];
  if (c === undefined) res.resume();
  else c.responded(res);
}

function onRequestError(this: TaggedRequest, error: Error): void {
  this[kClient]?.requestFailed(error);
}

function onHandshakeTimeout(c: ClientConnection, ms: number): void {
  c.handshakeTimedOut(ms);
}

function runClosed(c: ClientConnection): void {
  c.closed();
}

function onSocketEnd(this: TaggedSocket): void {
  this[kClient]?.socketEnded();
}

function onSocketError(this: TaggedSocket, error: Error): void {
  this[kClient]?.socketError(error);
}

function onSocketClose(this: TaggedSocket): void {
  this[kClient]?.socketClosed();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}
