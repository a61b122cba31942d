/**
 * Subscription: one channel of a client. It remembers the last position it
 * delivered, asks to recover from it on every resubscribe, and delivers each
 * publication once, in order (PROTOCOL.md §7).
 */
import { Emitter } from './emitter.js';
import { decodePayload } from './payload.js';
import type { Frame } from './transport.js';
import type {
  ChannelErrorInfo,
  HistoryOptions,
  HistoryResult,
  PresenceEntry,
  Publication,
  PublishResult,
  StreamPosition,
  SubscribeOptions,
  SubscriptionApi,
  SubscriptionEvents,
  SubscriptionState,
  UnrecoverableReason,
} from './types.js';

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  request(frame: object): Promise<Frame>;
  call(frame: Record<string, unknown>, done: (error: ChannelErrorInfo | null, reply?: Frame) => void): void;
  readonly connected: boolean;
  delivered(publication: Publication): void;
  forget(sub: Subscription): void;
  publish(channel: string, data: unknown): Promise<PublishResult>;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceEntry[]>;
}

/** A publication as it comes in a `pub` push or inside a reply. */
export function publicationOf(channel: string, epoch: string, f: Frame): Publication {
  const p: Publication = { channel, offset: Number(f.offset), epoch, data: decodePayload(f) };
  if (f.info) p.info = f.info as Publication['info'];
  return p;
}

export class Subscription extends Emitter<SubscriptionEvents> implements SubscriptionApi {
  readonly channel: string;
  state: SubscriptionState = 'unsubscribed';
  position: StreamPosition | null;
  private readonly recover: boolean;
  /** Wanted: subscribe on every (re)connect until `unsubscribe()` or a refusal. */
  active = true;
  private retried = false;

  constructor(
    private readonly host: SubscriptionHost,
    channel: string,
    options: SubscribeOptions = {},
  ) {
    super();
    this.channel = channel;
    this.recover = options.recover !== false;
    this.position = options.since ?? null;
  }

  /** Sends `subscribe` (with `recover` when there is a position to recover from). */
  start(): void {
    if (!this.active || !this.host.connected || this.state === 'subscribing') return;
    this.state = 'subscribing';
    const pos = this.position;
    const frame: Record<string, unknown> = { type: 'subscribe', channel: this.channel };
    if (this.recover && pos) frame.recover = pos;
    this.host.call(frame, (err, reply) => {
      if (!err) return this.subscribed(reply as Frame);
      if (!this.active) return;
      this.state = 'unsubscribed';
      // A lost connection resubscribes on reconnect; anything else is a refusal.
      if (err.code === 499 || err.code === 408) return;
      // 409: the server still has this channel (an earlier subscribe it finished
      // after our timeout, or one being cancelled): unsubscribe and try once more.
      if (err.code === 409 && !this.retried) {
        this.retried = true;
        return this.host.call({ type: 'unsubscribe', channel: this.channel }, () => this.start());
      }
      this.active = false;
      this.host.forget(this);
      this.emit('error', err);
      this.emit('unsubscribed', { channel: this.channel, code: err.code, reason: err.message });
    });
  }

  /** The connection was lost: resubscribe on the next one. */
  lost(): void {
    this.state = 'unsubscribed';
  }

  private subscribed(f: Frame): void {
    if (!this.active) return;
    this.state = 'subscribed';
    this.retried = false;
    const epoch = String(f.epoch);
    const list = Array.isArray(f.publications) ? (f.publications as Frame[]) : [];
    const recovered = typeof f.recovered === 'boolean' ? f.recovered : undefined;
    const event = { channel: this.channel, offset: Number(f.offset), epoch, missed: list.length } as SubscriptionEvents['subscribed'];
    if (recovered !== undefined) event.recovered = recovered;
    if (typeof f.reason === 'string') event.reason = f.reason as UnrecoverableReason;
    this.emit('subscribed', event);
    for (const p of list) this.pub(publicationOf(this.channel, epoch, p));
    // The reply's position, unless this subscription already saw further in the same epoch.
    const pos = this.position;
    if (recovered === false || !pos || pos.epoch !== epoch || pos.offset < event.offset) this.position = { offset: event.offset, epoch };
  }

  /** Delivers a publication unless it was delivered already (same epoch, offset not beyond the last). */
  pub(p: Publication): void {
    if (!this.active) return;
    const pos = this.position;
    if (pos && pos.epoch === p.epoch && p.offset <= pos.offset) return;
    this.position = { offset: p.offset, epoch: p.epoch };
    this.emit('publication', p);
    this.host.delivered(p);
  }

  /** A push for this channel other than a publication. */
  push(f: Frame): void {
    if (f.type === 'join' || f.type === 'leave') {
      const e = { channel: this.channel, client: String(f.client), user: String(f.user) } as SubscriptionEvents['join'];
      if (f.info !== undefined) e.info = f.info;
      this.emit(f.type, e);
    } else if (f.type === 'unsubscribed') {
      this.end(Number(f.code) || 0, String(f.reason ?? ''));
    }
  }

  publish(data: unknown): Promise<PublishResult> {
    return this.host.publish(this.channel, data);
  }

  history(options?: HistoryOptions): Promise<HistoryResult> {
    return this.host.history(this.channel, options);
  }

  presence(): Promise<PresenceEntry[]> {
    return this.host.presence(this.channel);
  }

  unsubscribe(): void {
    if (!this.active) return;
    if (this.host.connected) this.host.request({ type: 'unsubscribe', channel: this.channel }).catch(() => undefined);
    this.end(0, 'unsubscribed');
  }

  private end(code: number, reason: string): void {
    this.active = false;
    this.state = 'unsubscribed';
    this.host.forget(this);
    this.emit('unsubscribed', { channel: this.channel, code, reason });
  }
}
