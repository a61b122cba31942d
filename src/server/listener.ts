/**
 * The listener of `listen()`: a server that owns its port reads request
 * heads itself, on a plain `net.Server`, with the strict HTTP/1.1 head
 * parser of the core (protocol/http1.ts), and hands WebSocket handshakes
 * straight to the WebSocketServer. Node's HTTP machinery (its parser, the
 * per-connection HTTP state, the request and response objects) is what most
 * of a handshake cost above a bare socket, and a handshake needs none of it.
 *
 * Any other request (plain HTTP: the application's `onRequest`, or the 426
 * answer) goes, with the bytes already read, to a `node:http` server created
 * on first need, which then owns that connection: keep-alive, request bodies
 * and responses behave exactly as on any Node HTTP server, and an upgrade
 * that comes later on such a connection is routed like an attached server's.
 */
import { IncomingMessage, type RequestListener, type Server as HttpServer, type ServerResponse } from 'node:http';
import { type AddressInfo, Server as NetServer, type Socket } from 'node:net';
import { isWebSocketRequest } from '../protocol/handshake.js';
import { type RequestHead, RequestHeadReader } from '../protocol/http1.js';
import { type ChunkReceiver, startReading, stopReading } from '../transport/reader.js';
import { type UpgradeTarget, attachRouter, createListenServer, detachRouter, ignoreError, refuse } from './http.js';

export interface OwnedListenerOptions {
  /** Largest request head, in bytes; larger ones get 431. */
  maxHeaderSize: number;
  /** Milliseconds a client has to send its request head; slower ones get 408. */
  handshakeTimeout: number;
  /** Plain HTTP requests; without it they get 426. */
  onRequest: RequestListener | undefined;
}

/**
 * A connection whose request head is being read: the receiver of its reads
 * (into the shared read buffer, as an open connection's are), and closures
 * that live only as long as the head does: an open connection keeps no
 * trace of this phase.
 */
interface HeadState extends ChunkReceiver {
  readonly deadline: number;
  reader: RequestHeadReader | null;
  readonly onClose: () => void;
}

/** A plain HTTP connection between requests: when bytes of its next head started to arrive (0: none yet). */
interface NextHead {
  since: number;
  /** Requests whose response is not sent yet. */
  busy: number;
  /** The latest request (its body may still be arriving). */
  last: IncomingMessage | null;
  readonly onData: () => void;
  readonly onClose: () => void;
}

export class OwnedListener {
  readonly server: NetServer;
  readonly #target: UpgradeTarget;
  readonly #options: OwnedListenerOptions;
  /** Connections still sending their request head. */
  readonly #reading = new Map<Socket, HeadState>();
  /** Connections owned by the plain HTTP side, watched for their next head. */
  readonly #waiting = new Map<Socket, NextHead>();
  #sweep: NodeJS.Timeout | null = null;
  /** Where plain HTTP requests go (created on first need). */
  #http: HttpServer | null = null;

  constructor(target: UpgradeTarget, options: OwnedListenerOptions) {
    this.#target = target;
    this.#options = options;
    this.server = new NetServer({ noDelay: true }, (socket) => this.#connection(socket));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    const server = this.server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops accepting connections and ends those still sending a head; plain
   * HTTP connections that are idle are closed. Resolves once the listening
   * socket is closed and every connection it accepted has ended.
   */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const [socket, state] of this.#reading) {
      this.#stopReading(socket, state);
      refuse(socket, 503, 'server is shutting down');
    }
    this.#http?.closeIdleConnections();
    return closed;
  }

  /** Cuts every connection still owned by the plain HTTP side (the end of a shutdown). */
  closeAllConnections(): void {
    const http = this.#http;
    if (http === null) return;
    http.closeAllConnections();
    // Stops its timeout sweep (it has no listening socket to close).
    http.close();
    detachRouter(http, this.#target);
  }

  #connection(socket: Socket): void {
    socket.on('error', ignoreError);
    const state: HeadState = {
      deadline: Date.now() + this.#options.handshakeTimeout,
      reader: null,
      receiveChunk: (chunk) => this.#headData(socket, state, chunk),
      onClose: () => this.#forget(socket),
    };
    this.#reading.set(socket, state);
    socket.on('close', state.onClose);
    startReading(socket, state);
    this.#startSweep();
  }

  #startSweep(): void {
    if (this.#sweep !== null) return;
    const every = Math.max(10, Math.min(1000, this.#options.handshakeTimeout / 2));
    this.#sweep = setInterval(() => this.#expire(), every);
    this.#sweep.unref();
  }

  #stopSweepIfIdle(): void {
    if (this.#reading.size === 0 && this.#waiting.size === 0 && this.#sweep !== null) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  /** Answers 408 to connections whose head did not arrive in time. */
  #expire(): void {
    const now = Date.now();
    for (const [socket, state] of this.#reading) {
      if (state.deadline > now) continue;
      this.#stopReading(socket, state);
      refuse(socket, 408, 'request timeout');
    }
    const limit = now - this.#options.handshakeTimeout;
    for (const [socket, next] of this.#waiting) {
      if (next.since === 0 || next.since > limit) continue;
      this.#unwatch(socket, next);
      refuse(socket, 408, 'request timeout');
    }
  }

  /**
   * Ends this side's part: whoever takes the socket next (a refusal, the
   * handshake, node:http) adds its own error listener; bytes that still
   * arrive for this phase (after a refusal) are dropped.
   */
  #stopReading(socket: Socket, state: HeadState): void {
    socket.removeListener('close', state.onClose);
    socket.removeListener('error', ignoreError);
    this.#forget(socket);
  }

  #forget(socket: Socket): void {
    this.#reading.delete(socket);
    this.#stopSweepIfIdle();
  }

  /** Bytes of a head arrived (a view of the shared read buffer, which the reader does not keep). */
  #headData(socket: Socket, state: HeadState, chunk: Buffer): void {
    if (this.#reading.get(socket) !== state) return;
    const reader = (state.reader ??= new RequestHeadReader({ maxHeadSize: this.#options.maxHeaderSize, allowContent: true }));
    const result = reader.push(chunk);
    if (result === null) return;
    // The head is complete (or refused): whatever follows is the next layer's.
    // Paused, the socket reads nothing more until the next layer starts it.
    socket.pause();
    this.#stopReading(socket, state);
    if (result.error !== undefined) {
      refuse(socket, result.error.status, result.error.reason);
      return;
    }
    const head = result.head;
    const h = head.headers;
    if (isWebSocketRequest(h)) {
      // Not resumed here: the connection starts reading once it is open.
      this.#target.handleUpgrade(upgradeRequest(socket, head), socket, reader.rest());
      return;
    }
    this.#toHttp(socket, reader.received());
  }

  /** Hands a connection, and the bytes read from it so far, to the plain HTTP server. */
  #toHttp(socket: Socket, received: Buffer): void {
    let http = this.#http;
    if (http === null) {
      const { maxHeaderSize, handshakeTimeout, onRequest } = this.#options;
      http = this.#http = createListenServer({ maxHeaderSize, handshakeTimeout }, onRequest);
      // A later request on a kept-alive connection may be a handshake.
      attachRouter(http, this.#target);
      http.on('request', (req: IncomingMessage, res: ServerResponse) => this.#requestRead(req, res));
      // It never listens itself: what Node's HTTP server sets up on
      // 'listening' (the list of its connections, for closeIdleConnections
      // and closeAllConnections, and the sweep of its request timeouts) is
      // needed all the same.
      http.emit('listening');
    }
    // Node's HTTP server reads a socket straight from its handle unless the
    // socket was consumed before; the bytes given back here must be parsed
    // before anything read after them, so reading stays in JavaScript.
    const handle = (socket as unknown as { _handle?: { _consumed?: boolean } | null })._handle;
    if (handle != null) handle._consumed = true;
    stopReading(socket);
    socket.unshift(received);
    http.emit('connection', socket);
    this.#watch(socket);
    socket.resume();
  }

  /**
   * Node's HTTP server times a request head from its first byte that is not
   * part of an empty line, and its keep-alive timeout restarts on every
   * byte: a client trickling empty lines between requests (RFC 9112 §2.2
   * asks a server to skip them) would hold the connection forever. So any
   * byte that arrives while no request is under way starts the clock:
   * the next head must be complete within handshakeTimeout, or 408.
   */
  #watch(socket: Socket): void {
    const next: NextHead = {
      since: 0,
      busy: 0,
      last: null,
      onData: () => {
        // An upgrade (a handshake on this connection) takes the socket from
        // node:http, which then lets go of its parser: nothing to time here.
        if ((socket as Socket & { parser?: unknown }).parser == null) return this.#unwatch(socket, next);
        if (next.since === 0 && next.busy === 0 && (next.last === null || next.last.complete)) {
          next.since = Date.now();
          this.#startSweep();
        }
      },
      onClose: () => this.#unwatch(socket, next),
    };
    this.#waiting.set(socket, next);
    // After node:http's own listener: a chunk that completes a head has had its 'request' by then.
    socket.on('data', next.onData);
    socket.on('close', next.onClose);
  }

  #unwatch(socket: Socket, next: NextHead): void {
    socket.removeListener('data', next.onData);
    socket.removeListener('close', next.onClose);
    this.#waiting.delete(socket);
    this.#stopSweepIfIdle();
  }

  /** A request head was read on a plain HTTP connection: its clock stops until its response is sent. */
  #requestRead(req: IncomingMessage, res: ServerResponse): void {
    const next = this.#waiting.get(req.socket as Socket);
    if (next === undefined) return;
    next.since = 0;
    next.busy++;
    next.last = req;
    res.once('finish', () => next.busy--);
  }
}

/** The `IncomingMessage` an upgrade hook sees, built from a head this side parsed. */
function upgradeRequest(socket: Socket, head: RequestHead): IncomingMessage {
  const req = new IncomingMessage(socket);
  req.method = head.method;
  req.url = head.target;
  req.httpVersion = head.httpVersion;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = head.httpVersion === '1.0' ? 0 : 1;
  req.headers = head.headers;
  req.rawHeaders = head.rawHeaders;
  req.complete = true;
  (req as IncomingMessage & { upgrade: boolean }).upgrade = true;
  return req;
}
