/**
 * WebSocketServer: accepts WebSocket handshakes on an existing `http`/`https`
 * server (sharing its port), on a server of its own (`listen`), handed over
 * by a framework (`handleUpgrade`), or already negotiated by another
 * transport (`acceptStream`), and drives accepted connections through one
 * handler object.
 *
 * The handler-object API (in the style of uWebSockets.js and Bun) means a
 * connection costs no listener closures: the server holds one `handler`, and
 * every connection calls into it with itself as the first argument.
 */
import type { IncomingMessage, RequestListener } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handlerError } from '../diagnostics.js';
import { DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_PAYLOAD, positiveOption } from '../options.js';
import { CloseCode } from '../protocol/close.js';
import type { PerMessageDeflate } from '../protocol/deflate.js';
import { type PerMessageDeflateOptions, resolveDeflateOptions } from '../protocol/deflate-params.js';
import type { ExtensionNegotiator } from '../protocol/extensions.js';
import { buildAcceptResponse, checkUpgradeRequest, targetPath } from '../protocol/handshake.js';
import { contentError } from '../protocol/http1.js';
import { chooseSubprotocol, negotiateServerExtensions, serverCodecFor, serverNegotiators } from '../protocol/negotiate.js';
import type { Broker } from '../pubsub/broker.js';
import { LocalBroker } from '../pubsub/local.js';
import { type PublishData, TopicMessage } from '../pubsub/message.js';
import { ServerWebSocket } from './connection.js';
import { type AnyHttpServer, attachRouter, detachRouter, ignoreError, refuse } from './http.js';
import { OwnedListener } from './listener.js';
import { Keepalive } from './keepalive.js';
import type { ErrorSource, PublishOptions, ServerContext, ServerHandler, UpgradeDecision, UpgradeInfo, WebSocketServerOptions } from './types.js';

export const DEFAULTS = {
  maxPayload: DEFAULT_MAX_PAYLOAD,
  maxHeaderSize: 16 * 1024,
  handshakeTimeout: 10_000,
  closeTimeout: DEFAULT_CLOSE_TIMEOUT,
  highWaterMark: 1024 * 1024,
  maxBackpressure: 1024 * 1024,
  keepaliveInterval: 30_000,
  keepaliveTimeout: 30_000,
} as const;

/** A handshake another transport negotiated (an HTTP/2 stream, RFC 8441): what `acceptStream` opens. */
export interface NegotiatedStream {
  /** The subprotocol agreed, or "" / undefined for none. */
  protocol?: string;
  /** The `Sec-WebSocket-Extensions` value agreed; permessage-deflate in it needs the server's perMessageDeflate option. */
  extensions?: string;
  /** Bytes that arrived with the handshake, parsed first. */
  head?: Buffer;
}

export class WebSocketServer<T = unknown> implements ServerContext<T> {
  readonly handler: ServerHandler<T>;
  readonly maxPayload: number;
  readonly closeTimeout: number;
  readonly highWaterMark: number;
  readonly maxBackpressure: number;
  readonly closeOnBackpressureLimit: boolean;
  /** Open connections. */
  readonly clients = new Set<ServerWebSocket<T>>();
  /** Where topics live (the in-process LocalBroker unless another was given). */
  readonly broker: Broker;

  readonly #options: WebSocketServerOptions<T>;
  /** Negotiators tried in order: permessage-deflate (when enabled) first, then `options.extensions`. */
  readonly #negotiators: readonly ExtensionNegotiator[];
  readonly #deflate: PerMessageDeflateOptions | null;
  readonly #maxHeaderSize: number;
  readonly #handshakeTimeout: number;
  readonly #keepalive: Keepalive | null;
  #httpServer: AnyHttpServer | null = null;
  /** The server's own listener (`listen`). */
  #listener: OwnedListener | null = null;
  #closing: Promise<void> | null = null;
  /** Resolves the wait of a graceful close once the last connection is gone. */
  #lastClosed: (() => void) | null = null;
  /** Sockets whose handshake is being decided (async upgrade hooks). */
  /** Sockets whose async `upgrade` hook has not answered yet, with their handshake timers. */
  readonly #pending = new Map<Duplex, NodeJS.Timeout>();
  /** Who changed a subscription, while the broker reports it (for the `subscription` callback). */
  #subscribing: ServerWebSocket<T> | null = null;

  constructor(options: WebSocketServerOptions<T> = {}) {
    this.#options = options;
    this.handler = options.handler ?? {};
    this.maxPayload = positiveOption('maxPayload', options.maxPayload, DEFAULTS.maxPayload);
    this.#maxHeaderSize = positiveOption('maxHeaderSize', options.maxHeaderSize, DEFAULTS.maxHeaderSize);
    this.#handshakeTimeout = positiveOption('handshakeTimeout', options.handshakeTimeout, DEFAULTS.handshakeTimeout);
    this.closeTimeout = positiveOption('closeTimeout', options.closeTimeout, DEFAULTS.closeTimeout);
    this.highWaterMark = positiveOption('highWaterMark', options.highWaterMark, DEFAULTS.highWaterMark);
    this.maxBackpressure = positiveOption('maxBackpressure', options.maxBackpressure, DEFAULTS.maxBackpressure);
    this.closeOnBackpressureLimit = options.closeOnBackpressureLimit === true;
    this.#keepalive =
      options.keepalive === false
        ? null
        : new Keepalive(
            {
              interval: positiveOption('keepalive.interval', options.keepalive?.interval, DEFAULTS.keepaliveInterval),
              timeout: positiveOption('keepalive.timeout', options.keepalive?.timeout, DEFAULTS.keepaliveTimeout),
            },
            this.clients,
          );
    this.#deflate = resolveDeflateOptions(options.perMessageDeflate);
    this.#negotiators = serverNegotiators(this.#deflate, options.extensions);
    this.broker = options.broker ?? new LocalBroker();
    if (this.handler.subscription !== undefined) this.broker.onSubscriptionChange((topic, before, after) => this.#subscriptionChanged(topic, before, after));
    if (options.server !== undefined) this.attach(options.server);
  }

  /**
   * Listens on `port` (0 for any) and `host` (default 127.0.0.1) with a
   * server of its own, with this server's handshake limits. Handshakes are
   * read by the library's own HTTP/1.1 head parser; plain HTTP requests go
   * to a `node:http` server and from there to `onRequest`, or get
   * `426 Upgrade Required` without one.
   */
  async listen(port = 0, host = '127.0.0.1', onRequest?: RequestListener): Promise<AddressInfo> {
    if (this.#httpServer !== null || this.#listener !== null) throw new Error('this WebSocketServer already has a server');
    const listener = new OwnedListener(this, { maxHeaderSize: this.#maxHeaderSize, handshakeTimeout: this.#handshakeTimeout, onRequest });
    this.#listener = listener;
    try {
      const address = await listener.listen(port, host);
      this.#keepalive?.start();
      return address;
    } catch (err) {
      this.#listener = null;
      throw err;
    }
  }

  /** The address the server listens on (after `listen`), or of the attached HTTP server. */
  address(): AddressInfo | string | null {
    return this.#listener?.server.address() ?? this.#httpServer?.address() ?? null;
  }

  /** Handles `upgrade` events of `server` for this WebSocketServer's path. */
  attach(server: AnyHttpServer): void {
    if (this.#httpServer !== null || this.#listener !== null) throw new Error('this WebSocketServer is already attached to a server');
    this.#httpServer = server;
    attachRouter(server, this);
    this.#keepalive?.start();
  }

  #detach(): void {
    const server = this.#httpServer;
    if (server === null) return;
    detachRouter(server, this);
    this.#httpServer = null;
  }

  /** Whether this server accepts handshakes for the request's path. */
  matches(req: IncomingMessage): boolean {
    const path = this.#options.path;
    if (path === undefined) return true;
    return targetPath(req.url ?? '/') === path;
  }

  /**
   * Performs the handshake for an `upgrade` request a framework hands over:
   * answers it with 101 and opens a connection, or with an HTTP error.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignoreError);
    if (this.#closing !== null) return refuse(socket, 503, 'server is shutting down', undefined, req);
    if (!this.matches(req)) return refuse(socket, 404, 'no WebSocket endpoint at this path', undefined, req);
    let headSize = 0;
    for (const h of req.rawHeaders) headSize += h.length + 2;
    if (headSize > this.#maxHeaderSize) return refuse(socket, 431, 'request header fields too large', undefined, req);
    // A handshake carries no content (RFC 6455 §4.1 makes it a GET): what one
    // that announces some sends after its head would be read as frames.
    const content = contentError(req.headers);
    if (content !== null) return refuse(socket, content.status, content.reason, undefined, req);
    const checked = checkUpgradeRequest({ method: req.method ?? '', httpVersion: req.httpVersion, headers: req.headers });
    if (!checked.ok) return refuse(socket, checked.status, checked.message, checked.headers, req);

    const allowed = this.#options.allowedOrigins;
    if (allowed !== undefined) {
      const ok = typeof allowed === 'function' ? allowed(checked.origin, req) : checked.origin !== undefined && allowed.includes(checked.origin);
      if (!ok) return refuse(socket, 403, 'origin not allowed', undefined, req);
    }

    const info: UpgradeInfo = {
      protocols: checked.protocols,
      protocol: this.#chooseProtocol(checked.protocols, req),
      extensions: checked.extensions,
      origin: checked.origin,
      url: req.url ?? '/',
    };
    const hook = this.handler.upgrade;
    if (hook === undefined) {
      this.#accept(req, socket, head, checked.key, info, undefined);
      return;
    }
    let decision: ReturnType<NonNullable<ServerHandler<T>['upgrade']>>;
    try {
      decision = hook.call(this.handler, req, info);
    } catch (err) {
      this.reportError(null, err, 'upgrade');
      return refuse(socket, 500, 'internal error', undefined, req);
    }
    if (!(decision instanceof Promise)) {
      this.#decide(req, socket, head, checked.key, info, decision);
      return;
    }
    // The client gets handshakeTimeout for the hook too; a socket that closes meanwhile is forgotten.
    const timer = setTimeout(() => {
      this.#pending.delete(socket);
      refuse(socket, 503, 'handshake timed out', undefined, req);
    }, this.#handshakeTimeout);
    // It never holds the process open; close() clears it.
    timer.unref();
    this.#pending.set(socket, timer);
    decision.then(
      (d) => {
        if (!this.#forgetPending(socket)) return;
        if (socket.destroyed || !socket.writable) return;
        if (this.#closing !== null) return refuse(socket, 503, 'server is shutting down', undefined, req);
        this.#decide(req, socket, head, checked.key, info, d);
      },
      (err: unknown) => {
        if (!this.#forgetPending(socket)) return;
        this.reportError(null, err, 'upgrade');
        refuse(socket, 500, 'internal error', undefined, req);
      },
    );
  }

  /** Stops waiting for `socket`'s hook; false if it was not waited for (any more). */
  #forgetPending(socket: Duplex): boolean {
    const timer = this.#pending.get(socket);
    if (timer === undefined) return false;
    clearTimeout(timer);
    return this.#pending.delete(socket);
  }

  #decide(req: IncomingMessage, socket: Duplex, head: Buffer, key: string, info: UpgradeInfo, decision: UpgradeDecision<T> | void): void {
    if (decision === undefined || decision === null) {
      this.#accept(req, socket, head, key, info, undefined);
    } else if (decision.accept) {
      if (decision.protocol !== undefined) {
        // RFC 6455 §4.2.2: the server may only pick a subprotocol the client offered.
        if (!info.protocols.includes(decision.protocol)) {
          this.reportError(null, new Error(`upgrade hook chose subprotocol "${decision.protocol}" which the client did not offer`), 'upgrade');
          return refuse(socket, 500, 'internal error', undefined, req);
        }
        info.protocol = decision.protocol;
      }
      this.#accept(req, socket, head, key, info, decision.data, decision.headers);
    } else {
      refuse(socket, decision.status, decision.body ?? '', decision.headers, req);
    }
  }

  #accept(req: IncomingMessage, socket: Duplex, head: Buffer, key: string, info: UpgradeInfo, data: T | undefined, headers?: Record<string, string>): void {
    const negotiated = negotiateServerExtensions(info.extensions, this.#negotiators, this.#deflate, this.maxPayload);
    if (negotiated instanceof Error) {
      this.reportError(null, negotiated, 'upgrade');
      return refuse(socket, 500, 'internal error', undefined, req);
    }
    let response: string;
    try {
      response = buildAcceptResponse(key, info.protocol, negotiated.extensions || undefined, headers);
    } catch (err) {
      this.reportError(null, err, 'upgrade');
      return refuse(socket, 500, 'internal error', undefined, req);
    }
    socket.removeListener('error', ignoreError);
    const s = socket as Partial<Socket>;
    if (typeof s.setNoDelay === 'function') s.setNoDelay(true);
    // An idle timeout an HTTP server set on the socket no longer applies (keepalive does that job now).
    if (typeof s.setTimeout === 'function' && (s as { timeout?: number }).timeout) s.setTimeout(0);
    this.#open(socket, data as T, info.protocol ?? '', negotiated.extensions, negotiated.deflate, response, head);
  }

  /**
   * Opens a connection over a stream whose handshake another transport
   * already completed (an HTTP/2 extended CONNECT stream, RFC 8441, or a
   * framework's own handshake): no HTTP/1.1 response is written. Throws
   * while the server is shutting down, and TypeError for an extensions value
   * that does not parse.
   */
  acceptStream(stream: Duplex, negotiated: NegotiatedStream = {}, data?: T): ServerWebSocket<T> {
    if (this.#closing !== null) throw new Error('the server is shutting down');
    const extensions = negotiated.extensions ?? '';
    const deflate = serverCodecFor(extensions, this.#deflate, this.maxPayload);
    if (deflate instanceof Error) throw new TypeError(`invalid extensions "${extensions}": ${deflate.message}`);
    return this.#open(stream, data as T, negotiated.protocol ?? '', extensions, deflate, null, negotiated.head ?? null);
  }

  #open(stream: Duplex, data: T, protocol: string, extensions: string, deflate: PerMessageDeflate | null, response: string | null, head: Buffer | null): ServerWebSocket<T> {
    const ws = new ServerWebSocket<T>(this, stream, data, protocol, extensions, deflate);
    this.clients.add(ws);
    // Connections handed over without attach() need the sweep too.
    this.#keepalive?.start();
    ws.opened(response, head);
    return ws;
  }

  #chooseProtocol(offered: string[], req: IncomingMessage): string | undefined {
    const p = this.#options.protocols;
    if (p === undefined || offered.length === 0) return undefined;
    if (typeof p !== 'function') return chooseSubprotocol(offered, p);
    const chosen = p(offered, req);
    return chosen !== undefined && offered.includes(chosen) ? chosen : undefined;
  }

  /** @internal */
  connectionClosed(ws: ServerWebSocket<T>): void {
    this.clients.delete(ws);
    if (ws.topics !== null) {
      const outer = this.#subscribing;
      this.#subscribing = ws;
      try {
        this.broker.unsubscribeAll(ws);
      } finally {
        this.#subscribing = outer;
      }
    }
    if (this.clients.size === 0) this.#lastClosed?.();
  }

  /** @internal Reports an error to `handler.error` and the diagnostics channel; never throws. */
  reportError(ws: ServerWebSocket<T> | null, err: unknown, source: ErrorSource): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (handlerError.hasSubscribers && source !== 'protocol') handlerError.publish({ connection: ws, error, where: source });
    const onError = this.handler.error;
    if (onError === undefined) return;
    try {
      onError.call(this.handler, ws, error, source);
    } catch (inner) {
      if (handlerError.hasSubscribers) handlerError.publish({ connection: ws, error: inner, where: 'error' });
    }
  }

  // Topics, through the broker.

  /** @internal */
  subscribe(ws: ServerWebSocket<T>, topic: string): boolean {
    return this.#changeSubscription(ws, topic, true);
  }

  /** @internal */
  unsubscribe(ws: ServerWebSocket<T>, topic: string): boolean {
    return this.#changeSubscription(ws, topic, false);
  }

  /** Subscribes or unsubscribes `ws`, remembering who it is while the broker reports the change. */
  #changeSubscription(ws: ServerWebSocket<T>, topic: string, subscribe: boolean): boolean {
    // Restored, not cleared: a subscription callback may itself change subscriptions.
    const outer = this.#subscribing;
    this.#subscribing = ws;
    try {
      return subscribe ? this.broker.subscribe(topic, ws) : this.broker.unsubscribe(topic, ws);
    } finally {
      this.#subscribing = outer;
    }
  }

  #subscriptionChanged(topic: string, before: number, after: number): void {
    const ws = this.#subscribing;
    const cb = this.handler.subscription;
    if (ws === null || cb === undefined) return;
    try {
      cb.call(this.handler, ws, topic, before, after);
    } catch (err) {
      this.reportError(ws, err, 'subscription');
    }
  }

  /** Number of connections on this process subscribed to `topic`. */
  subscriberCount(topic: string): number {
    return this.broker.subscriberCount(topic);
  }

  /**
   * Sends a message to every subscriber of `topic` (except `exclude`): on
   * this process at once, framed once and shared by all, and on every other
   * process when the broker spans processes. Returns the number of local
   * subscribers that took it (slow consumers over `maxBackpressure` do not).
   */
  publish(topic: string, data: PublishData, options?: PublishOptions, exclude?: ServerWebSocket<T>): number {
    return this.broker.publish(topic, TopicMessage.from(topic, data, options?.binary), exclude, options?.callback);
  }

  /** @internal */
  dropped(ws: ServerWebSocket<T>, message: TopicMessage): void {
    const cb = this.handler.dropped;
    if (cb === undefined) return;
    try {
      cb.call(this.handler, ws, message);
    } catch (err) {
      this.reportError(ws, err, 'dropped');
    }
  }

  /**
   * Graceful shutdown: stops accepting handshakes (and closes the server's own
   * HTTP server), closes every connection with 1001, waits up to `timeout` ms
   * (default: closeTimeout) for them to finish, then terminates the rest. The
   * broker is closed last.
   */
  close(timeout: number = this.closeTimeout): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closing = this.#shutdown(timeout);
    return this.#closing;
  }

  async #shutdown(timeout: number): Promise<void> {
    this.#keepalive?.stop();
    const listener = this.#listener;
    const listenerClosed = listener === null ? Promise.resolve() : listener.close();
    for (const [socket, timer] of this.#pending) {
      clearTimeout(timer);
      refuse(socket, 503, 'server is shutting down');
    }
    this.#pending.clear();
    if (this.clients.size > 0) {
      // Terminated sockets report 'close' asynchronously; the wait ends once
      // they have, so close handlers have run by then.
      const allClosed = new Promise<void>((resolve) => (this.#lastClosed = resolve));
      const deadline = setTimeout(() => {
        for (const ws of this.clients) ws.terminate();
      }, timeout);
      for (const ws of this.clients) ws.close(CloseCode.GoingAway, 'server shutting down');
      await allClosed;
      clearTimeout(deadline);
      this.#lastClosed = null;
    }
    // Detached only now: until the connections are gone, handshakes routed
    // here are answered 503 rather than left to the HTTP server.
    this.#detach();
    listener?.closeAllConnections();
    await listenerClosed;
    if (this.#options.broker === undefined) await this.broker.close();
  }
}
