/**
 * Session: one client connection as the channel layer sees it, whatever
 * carries it (a WebSocket, or an SSE stream plus POSTs). Holds identity,
 * subscriptions and the per-connection limits; the transport subclasses say
 * how frames leave and how the connection ends.
 */
import { randomBytes } from 'node:crypto';
import { TokenBucket } from './bucket.js';
import { disconnectFrame } from './frames.js';
import type { IncomingMessage } from 'node:http';
import type { ChannelClient, ConnectRequest } from './options.js';

export enum SessionState {
  /** Waiting for `connect`. */
  New,
  /** `authenticate` is running. */
  Authenticating,
  Connected,
  Closed,
}

/** A subscription of a session: being set up (async hooks and store), live, or cancelled while being set up. */
export enum Sub {
  Pending,
  Live,
  Cancelled,
}

export abstract class Session<T = unknown> implements ChannelClient<T> {
  readonly id = randomBytes(12).toString('base64url');
  abstract readonly transport: 'websocket' | 'sse';
  /** The fallback's session secret, sent in `connected` (PROTOCOL.md §9); none on a WebSocket. */
  readonly secret: string | undefined = undefined;
  state = SessionState.New;
  user = '';
  info: unknown = undefined;
  data: T | undefined = undefined;
  /** The request that opened the connection, kept only until `connect` ran. */
  request: ConnectRequest | null;
  /** channel → subscription state. */
  readonly channels = new Map<string, Sub>();
  /** Subscribes in progress, by channel (dispatch.ts). */
  subscribing: Map<string, Promise<void>> | null = null;
  /** Channels whose presence holds this session (null while none). */
  presence: Set<string> | null = null;
  /** Ids of commands in progress (async hooks, store calls). */
  readonly pending = new Set<number>();
  readonly createdAt: number;
  /** Something arrived since the last heartbeat sweep. */
  seen = true;
  /** When something last arrived (updated by the sweep, from `seen`). */
  lastSeen: number;
  private publishes: TokenBucket | null = null;
  private errors: TokenBucket | null = null;

  constructor(request: ConnectRequest, now: number) {
    this.request = request;
    this.createdAt = this.lastSeen = now;
  }

  get closed(): boolean {
    return this.state === SessionState.Closed;
  }

  /** Sends one frame (JSON text). */
  abstract send(text: string): void;
  /** Bytes written but not yet sent. */
  abstract get bufferedAmount(): number;
  /**
   * Joins the transport's shared fan-out for `channel` (one framing for all
   * WebSocket subscribers); false when this transport must be written to
   * one by one instead.
   */
  abstract attachFanout(channel: string): boolean;
  abstract detachFanout(channel: string): void;
  /** Ends the transport with `code`/`reason` (after the `disconnect` push was sent). */
  protected abstract end(code: number, reason: string): void;

  /** Sends a `disconnect` push and closes (PROTOCOL.md §6); idempotent. */
  disconnect(code: number, reason: string, reconnect: boolean): void {
    if (this.state === SessionState.Closed) return;
    this.send(disconnectFrame(code, reason, reconnect));
    this.end(code, reason);
  }

  /** Whether a publish fits the rate limit. */
  takePublish(capacity: number, rate: number, now: number): boolean {
    return (this.publishes ??= new TokenBucket(capacity, rate, now)).take(now);
  }

  /** Charges one error to the budget; false once it is exhausted. */
  takeError(capacity: number, now: number): boolean {
    return (this.errors ??= new TokenBucket(capacity, 1, now)).take(now);
  }
}

/** What `authenticate` gets to see of a request (the request object itself is not kept). */
export function requestOf(req: IncomingMessage, transport: 'websocket' | 'sse'): ConnectRequest {
  const origin = req.headers.origin;
  return { transport, headers: req.headers, url: req.url ?? '/', origin: typeof origin === 'string' ? origin : undefined, remoteAddress: req.socket.remoteAddress };
}
