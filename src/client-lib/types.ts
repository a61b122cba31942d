/**
 * The public types of `fullduplex/client`, the channels client for browsers
 * and Node (PROTOCOL.md is the wire contract these types sit on).
 */

/** The protocol name, offered as the WebSocket subprotocol (PROTOCOL.md §1). */
export const PROTOCOL = 'fullduplex.channels.v1';

export type TransportName = 'websocket' | 'sse';

/**
 * `disconnected`: not connected and not trying (initially, after
 * `disconnect()`, or after a terminal close); `connecting`: an attempt is
 * under way; `connected`: the server answered `connect`; `reconnecting`:
 * waiting for the backoff delay before the next attempt.
 */
export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting';

/** A position in a channel's stream (PROTOCOL.md §7). */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** Why a recovery was impossible (PROTOCOL.md §7). */
export type UnrecoverableReason = 'trimmed' | 'expired' | 'epoch' | 'no_history';

/** Who published (absent for publications made by the server's application code). */
export interface PublisherInfo {
  client: string;
  user: string;
}

/** A publication as the application sees it: `data` is the JSON value, or a Uint8Array for a binary payload. */
export interface Publication {
  channel: string;
  offset: number;
  epoch: string;
  data: unknown;
  info?: PublisherInfo;
}

export interface PresenceEntry {
  client: string;
  user: string;
  info?: unknown;
}

/** What a publish/history/presence promise rejects with, and what `error` events carry (a `ChannelError`, an Error with `code`). */
export interface ChannelErrorInfo {
  /** PROTOCOL.md §5 (408 is the client's own timeout). */
  code: number;
  message: string;
}

/** What the client uses of a WebSocket (the WHATWG API). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
/**
 * A WHATWG WebSocket constructor: the browser's, Node's global (22+), or
 * fullduplex's own `WebSocket`. Typed loosely so that each of them fits; the
 * client uses only what `WebSocketLike` lists.
 */
export type WebSocketConstructor = new (url: string, protocols: string) => object;

/** The subset of `fetch` the fallback uses (global `fetch` in browsers and Node 18+). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal?: AbortSignal; credentials?: 'include' | 'same-origin' | 'omit' },
) => Promise<{ status: number; ok: boolean; body: ReadableStream<Uint8Array> | null; text(): Promise<string> }>;

export interface ClientOptions {
  /** A token for `connect`, or a function returning one (called before every connection, so it may refresh). */
  token?: string | (() => string | Promise<string>);
  /** Sent as `name` in `connect`. */
  name?: string;
  /** Defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Defaults to `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Transports to try, in order (default both: websocket, then sse). */
  transports?: TransportName[];
  /** Base URL of the HTTP fallback (default: the WebSocket URL with http(s): scheme). */
  fallbackUrl?: string;
  /** `credentials` for the fallback's fetches (default 'same-origin'). */
  credentials?: 'include' | 'same-origin' | 'omit';
  /** Milliseconds for a transport to reach `connected` before it counts as failed (default 5000). */
  timeout?: number;
  /** Milliseconds to wait for a command's reply (publish, history, presence, subscribe; default 10000). */
  commandTimeout?: number;
  /** Backoff: first ceiling (default 500), cap (default 20000), ms. */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /** A connection that stayed up this long resets the attempt counter (default 10000 ms). */
  stableAfter?: number;
  /** Extra silence, beyond the server's ping interval, after which the connection counts as dead (default 10000 ms). */
  pingGrace?: number;
  /** Reconnect after a connection loss (default true). */
  reconnect?: boolean;
}

export interface SubscribeOptions {
  /** Recover missed publications on every resubscribe (default true). */
  recover?: boolean;
  /** Start from this position on the first subscribe (e.g. one kept in storage across page loads). */
  since?: StreamPosition;
}

export interface SubscribedEvent {
  channel: string;
  offset: number;
  epoch: string;
  /** Present when a recovery was asked for: true if every missed publication follows, false if not (see `reason`). */
  recovered?: boolean;
  reason?: UnrecoverableReason;
  /** Number of recovered publications, delivered as `publication` events right after this event. */
  missed: number;
}

export interface ClientEvents {
  state: { state: ClientState; transport: TransportName | null };
  connecting: { attempt: number; transport: TransportName };
  connected: { client: string; user: string; transport: TransportName };
  disconnected: { code: number; reason: string; reconnect: boolean };
  reconnecting: { attempt: number; delay: number };
  /** An error not tied to a command (PROTOCOL.md §3). */
  error: ChannelErrorInfo;
  /** Every publication of every subscription. */
  publication: Publication;
}

export interface SubscriptionEvents {
  subscribed: SubscribedEvent;
  /** The subscription ended: by `unsubscribe()`, or by the server (code and reason), or it was refused. */
  unsubscribed: { channel: string; code: number; reason: string };
  publication: Publication;
  join: PresenceEntry & { channel: string };
  leave: PresenceEntry & { channel: string };
  /** A subscribe attempt failed (e.g. 403, 430); the subscription stays down until resubscribed. */
  error: ChannelErrorInfo;
}

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

export interface HistoryOptions {
  limit?: number;
  since?: StreamPosition;
}

export interface HistoryResult {
  offset: number;
  epoch: string;
  publications: Publication[];
}

export interface PublishResult {
  offset: number;
  epoch: string;
}

/** The public surface of a subscription (the `Subscription` class implements it). */
export interface SubscriptionApi {
  readonly channel: string;
  readonly state: SubscriptionState;
  /** The last position seen (null before the first `subscribed`). */
  readonly position: StreamPosition | null;
  on<K extends keyof SubscriptionEvents>(type: K, listener: (event: SubscriptionEvents[K]) => void): () => void;
  publish(data: unknown): Promise<PublishResult>;
  history(options?: HistoryOptions): Promise<HistoryResult>;
  presence(): Promise<PresenceEntry[]>;
  unsubscribe(): void;
}

/** The public surface of the client (the `Client` class implements it). */
export interface ClientApi {
  readonly state: ClientState;
  readonly transport: TransportName | null;
  /** This connection's client id and user, once connected. */
  readonly clientId: string | null;
  readonly user: string | null;
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
  /** Starts connecting (and keeps reconnecting). Idempotent. */
  connect(): void;
  /** Closes the connection (code 1000) and stops reconnecting; subscriptions are kept for a later connect(). */
  disconnect(): void;
  /** The subscription to `channel` (made and started if new). */
  subscribe(channel: string, options?: SubscribeOptions): SubscriptionApi;
  getSubscription(channel: string): SubscriptionApi | undefined;
  publish(channel: string, data: unknown): Promise<PublishResult>;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceEntry[]>;
}
