/**
 * WebSocketServer: accepts WebSocket handshakes on an existing `http`/`https`
 * server (sharing its port), on a server of its own (`listen`), or handed
 * over by a framework (`handleUpgrade`), and drives accepted connections
 * through one handler object.
 *
 * The handler-object API (in the style of uWebSockets.js and Bun) means a
 * connection costs no listener closures: the server holds one `handler`, and
 * every connection calls into it with itself as the first argument.
 */
import { type IncomingMessage, type RequestListener, type Server as HttpServer, createServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode } from '../protocol/close.js';
import {
  PERMESSAGE_DEFLATE,
  PerMessageDeflate,
  type PerMessageDeflateOptions,
  deflateNegotiator,
  deflateParamsOf,
  resolveDeflateOptions,
} from '../protocol/deflate.js';
import { type ExtensionNegotiator, type ExtensionOffer, formatExtensions, negotiateExtensions } from '../protocol/extensions.js';
import { buildAcceptResponse, buildRefusal, checkUpgradeRequest } from '../protocol/handshake.js';
import { type ConnectionHandler, type ConnectionHost, type SendOptions, ServerWebSocket } from './server-socket.js';
import { Topics } from './topics.js';

/** What the `upgrade` hook learns about a handshake that passed the protocol checks. */
export interface UpgradeInfo {
  /** Subprotocols the client offered, in its order of preference. */
  protocols: string[];
  /** The subprotocol the server would choose (from `options.protocols`), if any. */
  protocol: string | undefined;
  extensions: ExtensionOffer[];
  origin: string | undefined;
  /** The request path and query. */
  url: string;
}

/** The `upgrade` hook's answer: accept (optionally with data) or refuse with an HTTP status. */
export type UpgradeDecision<T> =
  | { accept: true; data?: T; protocol?: string; headers?: Record<string, string> }
  | { accept: false; status: number; body?: string; headers?: Record<string, string> };

export interface ServerHandler<T = unknown> extends ConnectionHandler<T> {
  /**
   * Decides each handshake once the protocol checks passed (authentication,
   * per-connection data). May be async. Returning nothing accepts.
   */
  upgrade?(req: IncomingMessage, info: UpgradeInfo): UpgradeDecision<T> | void | Promise<UpgradeDecision<T> | void>;
}

export interface KeepaliveOptions {
  /** Milliseconds between pings to a connection that has been silent. */
  interval: number;
  /** Milliseconds a pinged peer has to send anything before it is terminated. */
  timeout: number;
}

export interface WebSocketServerOptions<T = unknown> {
  handler?: ServerHandler<T>;
  /** Attach to this HTTP(S) server's `upgrade` event. */
  server?: HttpServer | HttpsServer;
  /** Only accept handshakes for this path (the query is ignored). */
  path?: string;
  /** Subprotocols the server speaks; the client's first offered one in this list is chosen. Or a function choosing. */
  protocols?: readonly string[] | ((offered: string[], req: IncomingMessage) => string | undefined);
  /**
   * Extensions the server supports, in its order of preference (RFC 6455 §9).
   * Each negotiator sees the client's offers of its extension and accepts one
   * or declines. Extensions that use the RSV bits need a codec, which the
   * server provides for permessage-deflate (its own option); a negotiator here
   * cannot enable RSV bits, so frames with them still fail with 1002.
   */
  extensions?: readonly ExtensionNegotiator[];
  /**
   * permessage-deflate (RFC 7692): accept clients' offers to compress
   * messages (default false). `true` takes the defaults; an object sets the
   * threshold below which messages go uncompressed (1024 bytes), zlib's level
   * and memLevel, and the context-takeover and window parameters the server
   * asks for. Inflated messages are bounded by `maxPayload` too.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Origins allowed to connect (exact `Origin` values), or a predicate; others are refused with 403. */
  allowedOrigins?: readonly string[] | ((origin: string | undefined, req: IncomingMessage) => boolean);
  /** Largest message accepted, in bytes (default 64 MiB); larger ones close the connection with 1009. */
  maxPayload?: number;
  /** Largest handshake request head, in bytes (default 16 KiB); larger ones get 431. */
  maxHeaderSize?: number;
  /** Milliseconds a client has to complete its handshake request (default 10 s). */
  handshakeTimeout?: number;
  /** Milliseconds to wait for the peer's close frame or FIN before destroying the socket (default 5 s). */
  closeTimeout?: number;
  /** Bytes of buffered output beyond which `send` reports backpressure (default 1 MiB). */
  highWaterMark?: number;
  /** Ping silent connections and terminate dead ones (default every 30 s, 30 s to answer); false disables. */
  keepalive?: Partial<KeepaliveOptions> | false;
}

export const DEFAULTS = {
  maxPayload: 64 * 1024 * 1024,
  maxHeaderSize: 16 * 1024,
  handshakeTimeout: 10_000,
  closeTimeout: 5_000,
  highWaterMark: 1024 * 1024,
  keepaliveInterval: 30_000,
  keepaliveTimeout: 30_000,
} as const;

// One upgrade listener per HTTP server, routing to the WebSocketServers attached to it by path.
const routers = new WeakMap<HttpServer | HttpsServer, Set<WebSocketServer<any>>>();

export class WebSocketServer<T = unknown> implements ConnectionHost<T> {
  readonly handler: ServerHandler<T>;
  readonly closeTimeout: number;
  readonly highWaterMark: number;
  /** Open connections. */
  readonly clients = new Set<ServerWebSocket<T>>();

  private readonly options: WebSocketServerOptions<T>;
  /** Negotiators tried in order: permessage-deflate (when enabled) first, then `options.extensions`. */
  private readonly negotiators: readonly ExtensionNegotiator[];
  private readonly deflate: PerMessageDeflateOptions | null;
  private readonly maxPayload: number;
  private readonly maxHeaderSize: number;
  private readonly handshakeTimeout: number;
  private readonly keepalive: KeepaliveOptions | null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private keepaliveDeadline: NodeJS.Timeout | null = null;
  private httpServer: HttpServer | HttpsServer | null = null;
  private ownsHttpServer = false;
  private closing: Promise<void> | null = null;
  private readonly topics = new Topics<T>();
  /** Sockets whose handshake is being decided (async upgrade hooks). */
  private readonly pending = new Set<Duplex>();

  constructor(options: WebSocketServerOptions<T> = {}) {
    this.options = options;
    this.handler = options.handler ?? {};
    this.maxPayload = positive(options.maxPayload, DEFAULTS.maxPayload, 'maxPayload');
    this.maxHeaderSize = positive(options.maxHeaderSize, DEFAULTS.maxHeaderSize, 'maxHeaderSize');
    this.handshakeTimeout = positive(options.handshakeTimeout, DEFAULTS.handshakeTimeout, 'handshakeTimeout');
    this.closeTimeout = positive(options.closeTimeout, DEFAULTS.closeTimeout, 'closeTimeout');
    this.highWaterMark = positive(options.highWaterMark, DEFAULTS.highWaterMark, 'highWaterMark');
    this.keepalive =
      options.keepalive === false
        ? null
        : {
            interval: positive(options.keepalive?.interval, DEFAULTS.keepaliveInterval, 'keepalive.interval'),
            timeout: positive(options.keepalive?.timeout, DEFAULTS.keepaliveTimeout, 'keepalive.timeout'),
          };
    this.deflate = resolveDeflateOptions(options.perMessageDeflate);
    const negotiators = [...(options.extensions ?? [])];
    if (this.deflate !== null) {
      if (negotiators.some((n) => n.name === PERMESSAGE_DEFLATE)) {
        throw new TypeError('permessage-deflate is configured by the perMessageDeflate option, not by an extension negotiator');
      }
      negotiators.unshift(deflateNegotiator(this.deflate));
    }
    this.negotiators = negotiators;
    if (options.server !== undefined) this.attach(options.server);
  }

  /**
   * Starts an HTTP server of its own on `port` (0 for any) and `host`
   * (default 127.0.0.1), with this server's handshake limits. Plain HTTP
   * requests go to `onRequest`, or get `426 Upgrade Required` without one.
   */
  listen(port = 0, host = '127.0.0.1', onRequest?: RequestListener): Promise<AddressInfo> {
    if (this.httpServer !== null) return Promise.reject(new Error('this WebSocketServer already has an HTTP server'));
    const server = createServer(
      {
        maxHeaderSize: this.maxHeaderSize,
        // How often Node checks headersTimeout (its default is 30 s).
        connectionsCheckingInterval: Math.min(1000, this.handshakeTimeout),
      },
      (req, res) => {
      // Node hands over as upgrades only requests with both Upgrade and
      // Connection: upgrade; one carrying WebSocket headers without them is a
      // broken handshake, answered with the check's status (RFC 6455 §4.2.1: 400).
      if (req.headers.upgrade !== undefined || req.headers['sec-websocket-key'] !== undefined) {
        const checked = checkUpgradeRequest({ method: req.method ?? '', httpVersion: req.httpVersion, headers: req.headers });
        if (!checked.ok) {
          res.writeHead(checked.status, { ...checked.headers, 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
          res.end(checked.message);
          return;
        }
      }
      if (onRequest !== undefined) {
        onRequest(req, res);
        return;
      }
      const body = 'This is a WebSocket endpoint: connect with a WebSocket client.\n';
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13' });
      res.end(body);
      },
    );
    // A client that sends its request head too slowly is dropped (408).
    server.headersTimeout = this.handshakeTimeout;
    server.requestTimeout = Math.max(this.handshakeTimeout, 1000);
    server.keepAliveTimeout = 5_000;
    server.on('clientError', onClientError);
    this.ownsHttpServer = true;
    this.attach(server);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.detach();
        this.ownsHttpServer = false;
        reject(err);
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /** The address of the server's own HTTP server (after `listen`), or of the attached one. */
  address(): AddressInfo | string | null {
    return this.httpServer?.address() ?? null;
  }

  /** Handles `upgrade` events of `server` for this WebSocketServer's path. */
  attach(server: HttpServer | HttpsServer): void {
    if (this.httpServer !== null) throw new Error('this WebSocketServer is already attached to a server');
    this.httpServer = server;
    let set = routers.get(server);
    if (set === undefined) {
      set = new Set();
      routers.set(server, set);
      server.on('upgrade', routeUpgrade);
    }
    set.add(this);
    this.startKeepalive();
  }

  private detach(): void {
    const server = this.httpServer;
    if (server === null) return;
    const set = routers.get(server);
    if (set !== undefined) {
      set.delete(this);
      if (set.size === 0) {
        routers.delete(server);
        server.off('upgrade', routeUpgrade);
      }
    }
    this.httpServer = null;
  }

  /** Whether this server accepts handshakes for the request's path. */
  matches(req: IncomingMessage): boolean {
    const path = this.options.path;
    if (path === undefined) return true;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    return (q === -1 ? url : url.slice(0, q)) === path;
  }

  /**
   * Performs the handshake for an `upgrade` request a framework hands over:
   * answers it with 101 and opens a connection, or with an HTTP error.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignoreError);
    if (this.closing !== null) return refuse(socket, 503, 'server is shutting down');
    if (!this.matches(req)) return refuse(socket, 404, 'no WebSocket endpoint at this path');
    let headSize = 0;
    for (const h of req.rawHeaders) headSize += h.length + 2;
    if (headSize > this.maxHeaderSize) return refuse(socket, 431, 'request header fields too large');
    const checked = checkUpgradeRequest({ method: req.method ?? '', httpVersion: req.httpVersion, headers: req.headers });
    if (!checked.ok) return refuse(socket, checked.status, checked.message, checked.headers);

    const allowed = this.options.allowedOrigins;
    if (allowed !== undefined) {
      const ok = typeof allowed === 'function' ? allowed(checked.origin, req) : checked.origin !== undefined && allowed.includes(checked.origin);
      if (!ok) return refuse(socket, 403, 'origin not allowed');
    }

    const info: UpgradeInfo = {
      protocols: checked.protocols,
      protocol: this.chooseProtocol(checked.protocols, req),
      extensions: checked.extensions,
      origin: checked.origin,
      url: req.url ?? '/',
    };
    const hook = this.handler.upgrade;
    if (hook === undefined) {
      this.accept(socket, head, checked.key, info, undefined);
      return;
    }
    let decision: ReturnType<NonNullable<ServerHandler<T>['upgrade']>>;
    try {
      decision = hook.call(this.handler, req, info);
    } catch (err) {
      console.error('fullduplex: upgrade hook threw', err);
      return refuse(socket, 500, 'internal error');
    }
    if (decision instanceof Promise) {
      // The client gets handshakeTimeout for the hook too; a socket that closes meanwhile is forgotten.
      this.pending.add(socket);
      const timer = setTimeout(() => {
        this.pending.delete(socket);
        refuse(socket, 503, 'handshake timed out');
      }, this.handshakeTimeout);
      decision.then(
        (d) => {
          clearTimeout(timer);
          this.pending.delete(socket);
          if (socket.destroyed || !socket.writable) return;
          if (this.closing !== null) return refuse(socket, 503, 'server is shutting down');
          this.decide(socket, head, checked.key, info, d);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.pending.delete(socket);
          console.error('fullduplex: upgrade hook failed', err);
          refuse(socket, 500, 'internal error');
        },
      );
      return;
    }
    this.decide(socket, head, checked.key, info, decision);
  }

  private decide(socket: Duplex, head: Buffer, key: string, info: UpgradeInfo, decision: UpgradeDecision<T> | void): void {
    if (decision === undefined || decision === null) {
      this.accept(socket, head, key, info, undefined);
    } else if (decision.accept) {
      if (decision.protocol !== undefined) {
        // RFC 6455 §4.2.2: the server may only pick a subprotocol the client offered.
        if (!info.protocols.includes(decision.protocol)) {
          console.error(`fullduplex: upgrade hook chose subprotocol "${decision.protocol}" which the client did not offer`);
          return refuse(socket, 500, 'internal error');
        }
        info.protocol = decision.protocol;
      }
      this.accept(socket, head, key, info, decision.data, decision.headers);
    } else {
      refuse(socket, decision.status, decision.body ?? '', decision.headers);
    }
  }

  private accept(socket: Duplex, head: Buffer, key: string, info: UpgradeInfo, data: T | undefined, headers?: Record<string, string>): void {
    let extensions = '';
    let deflate: PerMessageDeflate | undefined;
    if (this.negotiators.length > 0 && info.extensions.length > 0) {
      const accepted = negotiateExtensions(info.extensions, this.negotiators);
      if (accepted instanceof Error) {
        console.error(`fullduplex: ${accepted.message}`);
        return refuse(socket, 500, 'internal error');
      }
      extensions = formatExtensions(accepted);
      const pmd = accepted.find((e) => e.name === PERMESSAGE_DEFLATE);
      if (pmd !== undefined && this.deflate !== null) {
        deflate = new PerMessageDeflate('server', deflateParamsOf(pmd.params), this.deflate, this.maxPayload);
      }
    }
    let response: string;
    try {
      response = buildAcceptResponse(key, info.protocol, extensions || undefined, headers);
    } catch (err) {
      console.error('fullduplex: invalid response headers', err);
      return refuse(socket, 500, 'internal error');
    }
    const s = socket as Socket;
    s.removeListener('error', ignoreError);
    if (typeof s.setNoDelay === 'function') s.setNoDelay(true);
    if (typeof s.setTimeout === 'function') s.setTimeout(0);
    const ws = new ServerWebSocket<T>(this, s, data as T, info.protocol ?? '', extensions, this.maxPayload, deflate);
    // The 101 response goes out in one write with whatever open() sends.
    ws.queuePreamble(response);
    this.clients.add(ws);
    // Connections handed over by handleUpgrade alone (no attach) need the sweep too.
    this.startKeepalive();
    ws.opened(head.length > 0 ? head : null);
  }

  private chooseProtocol(offered: string[], req: IncomingMessage): string | undefined {
    const p = this.options.protocols;
    if (p === undefined || offered.length === 0) return undefined;
    if (typeof p === 'function') {
      const chosen = p(offered, req);
      return chosen !== undefined && offered.includes(chosen) ? chosen : undefined;
    }
    return offered.find((o) => p.includes(o));
  }

  /** @internal */
  connectionClosed(ws: ServerWebSocket<T>): void {
    this.clients.delete(ws);
    this.topics.unsubscribeAll(ws);
  }

  // Topics: in-process publish/subscribe (topics.ts).

  /** Subscribes `ws` to `topic`. */
  subscribe(ws: ServerWebSocket<T>, topic: string): void {
    this.topics.subscribe(ws, topic);
  }

  unsubscribe(ws: ServerWebSocket<T>, topic: string): void {
    this.topics.unsubscribe(ws, topic);
  }

  /** Number of connections subscribed to `topic`. */
  subscriberCount(topic: string): number {
    return this.topics.count(topic);
  }

  /**
   * Sends a message to every subscriber of `topic` (except `exclude`). The
   * frame is serialised once and shared by all. Returns the number of
   * connections it was queued for.
   */
  publish(topic: string, data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: SendOptions, exclude?: ServerWebSocket<T>): number {
    return this.topics.publish(topic, data, options, exclude);
  }

  // Keepalive: one timer per server sweeps every connection.

  private startKeepalive(): void {
    if (this.keepalive === null || this.keepaliveTimer !== null) return;
    this.keepaliveTimer = setInterval(() => this.keepaliveSweep(), this.keepalive.interval);
    this.keepaliveTimer.unref();
  }

  private keepaliveSweep(): void {
    const keepalive = this.keepalive;
    if (keepalive === null) return;
    const now = Date.now();
    let pinged = false;
    for (const ws of this.clients) {
      if (!ws.keepaliveTick(now, keepalive.timeout)) ws.terminate();
      else if (ws.keepaliveExpired) pinged = true;
    }
    // A timeout within the interval ends before the next sweep, so a timer
    // enforces it for the pings of this sweep; a longer one (which would cut
    // short the pings of later sweeps) is enforced by the sweeps themselves.
    if (pinged && keepalive.timeout <= keepalive.interval && this.keepaliveDeadline === null) {
      this.keepaliveDeadline = setTimeout(() => {
        this.keepaliveDeadline = null;
        for (const ws of this.clients) if (ws.keepaliveExpired) ws.terminate();
      }, keepalive.timeout);
      this.keepaliveDeadline.unref();
    }
  }

  /**
   * Graceful shutdown: stops accepting handshakes (and closes the server's own
   * HTTP server), closes every connection with 1001, waits up to `timeout` ms
   * (default: closeTimeout) for them to finish, then terminates the rest.
   */
  close(timeout: number = this.closeTimeout): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = this.shutdown(timeout);
    return this.closing;
  }

  private async shutdown(timeout: number): Promise<void> {
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    if (this.keepaliveDeadline !== null) clearTimeout(this.keepaliveDeadline);
    this.keepaliveTimer = this.keepaliveDeadline = null;
    const server = this.httpServer;
    const owned = this.ownsHttpServer;
    let serverClosed: Promise<void> = Promise.resolve();
    if (server !== null && owned) {
      serverClosed = new Promise((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
    }
    for (const socket of this.pending) refuse(socket, 503, 'server is shutting down');
    if (this.clients.size > 0) {
      const allClosed = new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (this.clients.size === 0) {
            clearInterval(check);
            clearTimeout(deadline);
            resolve();
          }
        }, 10);
        // Terminated sockets report 'close' asynchronously; the check above
        // resolves once they have, so close handlers have run by then.
        const deadline = setTimeout(() => {
          for (const ws of this.clients) ws.terminate();
        }, timeout);
      });
      for (const ws of this.clients) ws.close(CloseCode.GoingAway, 'server shutting down');
      await allClosed;
    }
    // Detached only now: until the connections are gone, handshakes routed
    // here are answered 503 rather than left to the HTTP server.
    this.detach();
    if (owned && server !== null) server.closeAllConnections();
    await serverClosed;
  }
}

function routeUpgrade(this: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const set = routers.get(this);
  if (set !== undefined) {
    for (const wss of set) {
      if (wss.matches(req)) {
        wss.handleUpgrade(req, socket, head);
        return;
      }
    }
  }
  // No WebSocketServer here wants this path. If the application has its own
  // upgrade listeners, the request is theirs; otherwise answer it.
  if (this.listenerCount('upgrade') <= 1) refuse(socket, 404, 'no WebSocket endpoint at this path');
}

/** Answers a handshake with an HTTP error and closes the connection. */
function refuse(socket: Duplex, status: number, body: string, headers?: Record<string, string>): void {
  socket.on('error', ignoreError);
  if (socket.writable) {
    let response: string;
    try {
      response = buildRefusal(status, body, headers);
    } catch {
      response = buildRefusal(500, 'internal error');
    }
    socket.end(response);
  }
  // Don't wait for a peer that never reads.
  setTimeout(destroyDuplex, 1000, socket).unref();
}

function destroyDuplex(socket: Duplex): void {
  socket.destroy();
}

function ignoreError(): void {}

function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (socket as Socket).bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const code = err.code;
  if (code === 'HPE_HEADER_OVERFLOW') refuse(socket, 431, 'request header fields too large');
  else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') refuse(socket, 408, 'request timeout');
  else refuse(socket, 400, 'bad request');
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`${name} must be a positive number`);
  return value;
}

