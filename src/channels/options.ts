/**
 * The options of a ChannelServer: hooks, per-channel options and limits, with
 * their documented defaults (PROTOCOL.md §8).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Broker } from '../pubsub/broker.js';
import type { ChannelStore, HistoryOptions } from './store.js';

/** What `authenticate` learns about the request that opened a connection (WebSocket handshake or fallback POST). */
export interface ConnectRequest {
  transport: 'websocket' | 'sse';
  headers: IncomingHttpHeaders;
  url: string;
  origin: string | undefined;
  remoteAddress: string | undefined;
}

/** `authenticate`'s answer for an accepted connection. */
export interface Identity<T = unknown> {
  /** The user id ("" for anonymous); shown to others in publication info and presence. */
  user: string;
  /** Public info shown in presence (keep it small). */
  info?: unknown;
  /** Private per-connection data for the application's hooks. */
  data?: T;
}

/** A connected client as hooks see it. */
export interface ChannelClient<T = unknown> {
  readonly id: string;
  readonly user: string;
  readonly info: unknown;
  readonly data: T | undefined;
  readonly transport: 'websocket' | 'sse';
}

/** What a client asks to do with a channel; history and presence reads are separate so a hook may tell them apart. */
export type ChannelAction = 'subscribe' | 'publish' | 'history' | 'presence';

export interface ChannelOptions {
  /** Publications kept for history and recovery: `size` (0 = none) and `ttl` ms after the last publication. */
  history: HistoryOptions;
  /** Keep presence and send join/leave events. */
  presence: boolean;
  /** Clients may publish (still subject to `authorize`). */
  publish: boolean;
}

/** Channel options for the channels whose name matches: exact name, a pattern with `*`, a RegExp or a predicate. */
export interface ChannelRule extends Partial<ChannelOptions> {
  match: string | RegExp | ((channel: string) => boolean);
}

export interface ChannelLimits {
  /** Largest command frame or fallback command, bytes (error 413). */
  maxMessageSize: number;
  /** Channels one connection may be subscribed to (error 430). */
  maxChannels: number;
  /** Publishes per second per connection (token bucket refill; error 429). */
  publishRate: number;
  /** Token bucket capacity for publishes. */
  publishBurst: number;
  /** Commands in progress per connection (error 431). */
  maxPending: number;
  /** Error budget per connection, refilled 1/s; exhausted: close 4400/4429. */
  maxErrors: number;
  /** Unsent output per connection beyond which it is closed with 4503. */
  maxBufferedBytes: number;
  /** Milliseconds a connection has to send `connect` (close 4501). */
  connectTimeout: number;
  /** Heartbeat interval, ms (sent to clients in `connected`). */
  ping: number;
  /** Extra silence before a connection counts as dead (close 4502), ms. */
  pingGrace: number;
  /** Most publications returned by one `history` (and by recovery). */
  maxHistoryRead: number;
  /** Presence entries of a dead node vanish within this many ms. */
  presenceTtl: number;
}

export const CHANNEL_DEFAULTS: ChannelLimits = {
  maxMessageSize: 64 * 1024,
  maxChannels: 128,
  publishRate: 20,
  publishBurst: 40,
  maxPending: 32,
  maxErrors: 20,
  maxBufferedBytes: 4 * 1024 * 1024,
  connectTimeout: 10_000,
  ping: 25_000,
  pingGrace: 10_000,
  maxHistoryRead: 100,
  presenceTtl: 30_000,
};

/** Options of channels matched by no rule. */
export const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  // Even without history a channel's stream (offset counter, epoch) exists,
  // for ordering and duplicate detection; it is forgotten 5 min after its last publication.
  history: { size: 0, ttl: 300_000 },
  presence: false,
  publish: false,
};

export interface ChannelServerOptions<T = unknown> extends Partial<ChannelLimits> {
  /** Path of the WebSocket endpoint; the fallback lives under it (`<path>/connect`, `<path>/send`). Default `/channels`. */
  path?: string;
  /** Origins allowed on every transport (exact values or a predicate); default: any. */
  allowedOrigins?: readonly string[] | ((origin: string | undefined, req: IncomingMessage) => boolean);
  /** Carries publications, joins/leaves and routed fallback commands between nodes (default: a LocalBroker). */
  broker?: Broker;
  /** Streams, history and presence (default: a MemoryStore). */
  store?: ChannelStore;
  /** Per-channel options; the first matching rule wins, unmatched channels get DEFAULT_CHANNEL_OPTIONS. */
  channels?: readonly ChannelRule[];
  /**
   * Decides who connects: an Identity to accept, null/false to refuse (401,
   * close 4401). Without the hook every connection is accepted as user "".
   */
  authenticate?(request: ConnectRequest, token: string | undefined): Identity<T> | null | false | Promise<Identity<T> | null | false>;
  /**
   * Decides each subscribe (also every recovery), publish, history and
   * presence read. Without it all are allowed (publishes still need the
   * channel's `publish` option).
   */
  authorize?(client: ChannelClient<T>, action: ChannelAction, channel: string): boolean | Promise<boolean>;
  /** Called for unexpected failures (a hook that threw, a store that failed); by default they are published on the `fullduplex:handler:error` diagnostics channel. */
  onError?(error: unknown, context: string): void;
}
