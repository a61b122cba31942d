/**
 * The server's public types (options, the handler object, what hooks are
 * told) and the small context a connection needs from its server.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { PerMessageDeflateOptions } from '../protocol/deflate-params.js';
import type { ExtensionNegotiator, ExtensionOffer } from '../protocol/extensions.js';
import type { Broker, PublishCallback } from '../pubsub/broker.js';
import type { PublishData, TopicMessage } from '../pubsub/message.js';
import type { ServerWebSocket } from './connection.js';

export interface SendOptions {
  /** Send as a binary message. Defaults to true for bytes and false for strings. */
  binary?: boolean;
}

export interface PublishOptions extends SendOptions {
  /** Learns whether the cross-process part of the publish went out (see Broker.publish). */
  callback?: PublishCallback;
}

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

/** Where a reported error came from. */
export type ErrorSource = 'upgrade' | 'handler' | 'close' | 'protocol' | 'subscription' | 'dropped';

/**
 * The server's handler object: one for all connections, each callback given
 * the connection first (no per-connection listeners). A callback that throws
 * closes its connection with 1011 and is reported to `error`.
 */
export interface ServerHandler<T = unknown> {
  /**
   * Decides each handshake once the protocol checks passed (authentication,
   * per-connection data). May be async. Returning nothing accepts.
   */
  upgrade?(req: IncomingMessage, info: UpgradeInfo): UpgradeDecision<T> | void | Promise<UpgradeDecision<T> | void>;
  open?(ws: ServerWebSocket<T>): void;
  /** A whole message. `data` is the handler's own: it may be kept, or sent on as it is. */
  message?(ws: ServerWebSocket<T>, data: Buffer, isBinary: boolean): void;
  /** The buffered output fell back below the high-water mark after `send` reported backpressure. */
  drain?(ws: ServerWebSocket<T>): void;
  /** The connection is gone: `code`/`reason` from the peer's close frame (1005 if it had no code), or 1006 if it sent none. */
  close?(ws: ServerWebSocket<T>, code: number, reason: string): void;
  ping?(ws: ServerWebSocket<T>, payload: Buffer): void;
  pong?(ws: ServerWebSocket<T>, payload: Buffer): void;
  /** A connection subscribed to or left `topic`: local subscriber counts before and after. */
  subscription?(ws: ServerWebSocket<T>, topic: string, before: number, after: number): void;
  /** A topic message was not delivered to `ws`: it was over `maxBackpressure` (a slow consumer). */
  dropped?(ws: ServerWebSocket<T>, message: TopicMessage): void;
  /**
   * A protocol error from the peer, or an exception thrown by a callback
   * (`ws` is null for errors outside a connection: an upgrade hook). Without
   * this callback, errors are only published on the diagnostics channels.
   */
  error?(ws: ServerWebSocket<T> | null, error: Error, source: ErrorSource): void;
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
  /**
   * Bytes of buffered output beyond which a connection is a slow consumer
   * (default 1 MiB): topic messages to it are dropped (the `dropped`
   * callback) or it is closed (`closeOnBackpressureLimit`), and the server
   * stops reading from it until its output drains below this again.
   */
  maxBackpressure?: number;
  /** Close a slow consumer with 1008 instead of dropping its topic messages (default false). */
  closeOnBackpressureLimit?: boolean;
  /** Ping silent connections and terminate dead ones (default every 30 s, 30 s to answer); false disables. */
  keepalive?: Partial<KeepaliveOptions> | false;
  /** Where topics live: the in-process `LocalBroker` by default; a `RedisBroker` spans processes. */
  broker?: Broker;
}

/** What a connection needs from its server. @internal */
export interface ServerContext<T> {
  readonly handler: ServerHandler<T>;
  readonly maxPayload: number;
  readonly closeTimeout: number;
  readonly highWaterMark: number;
  readonly maxBackpressure: number;
  readonly closeOnBackpressureLimit: boolean;
  /** Called once when the connection's stream has closed. */
  connectionClosed(ws: ServerWebSocket<T>): void;
  subscribe(ws: ServerWebSocket<T>, topic: string): boolean;
  unsubscribe(ws: ServerWebSocket<T>, topic: string): boolean;
  publish(topic: string, data: PublishData, options: PublishOptions | undefined, exclude: ServerWebSocket<T> | undefined): number;
  dropped(ws: ServerWebSocket<T>, message: TopicMessage): void;
  reportError(ws: ServerWebSocket<T> | null, error: unknown, source: ErrorSource): void;
}
