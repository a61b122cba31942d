/**
 * Subscription: one channel of a client. It remembers the last position it
 * delivered, asks to recover from it on every resubscribe, and delivers each
 * publication once, in order (PROTOCOL.md §7).
 */
import { ChannelError } from './codes.js';
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
  /** A frame broke the protocol: reported as the client's `error` event (502). */
  malformed(what: string): void;
  forget(sub: Subscription): void;
  publish(channel: string, data: unknown): Promise<PublishResult>;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceEntry[]>;
}

/** Whether `offset` is a stream offset: a whole number from `min` on (PROTOCOL.md §7). */
export function isOffset(offset: unknown, min = 1): offset is number {
  return typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= min;
}

/** Publications whose payload could not be decoded (`b64` that is not base64, §1): their place in the stream is kept, they are not delivered. */
const undecodable = new WeakSet<Publication>();

export function isUndecodable(p: Publication): boolean {
  return undecodable.has(p);
}

/**
 * A publication as it comes in a `pub` push or inside a reply, or null
 * without a valid offset (§7): such a frame is never delivered and never
 * moves the duplicate check.
 */
export function publicationOf(channel: string, epoch: string, f: Frame): Publication | null {
  if (!isOffset(f.offset)) return null;
  const p: Publication = { channel, offset: f.offset, epoch, data: undefined };
  try {
    p.data = decodePayload(f);
  } catch {
    undecodable.add(p);
  }
  if (f.info) p.info = f.info as Publication['info'];
  return p;
}

/** The publication frames of a list in offset order (§7 promises it; a server that breaks it still gets each delivered once). */
function inOrder(list: unknown[]): Frame[] {
  return (list.filter((f) => typeof f === 'object' && f !== null) as Frame[]).sort((a, b) => Number(a.offset) - Number(b.offset));
}

/** Most publications one `history` may return (PROTOCOL.md §8, maxHistoryRead). */
const HISTORY_MAX = 100;

export class Subscription extends Emitter<SubscriptionEvents> implements SubscriptionApi {
  readonly channel: string;
  state: SubscriptionState = 'unsubscribed';
  position: StreamPosition | null;
  private readonly recover: boolean;
  /** Wanted: subscribe on every (re)connect until `unsubscribe()` or a refusal. */
  active = true;
  private retried = false;
  /** Epochs this subscription has left (the last few): their publications are stale. */
  private readonly retired = new Set<string>();
  /** While a gap is being filled: the publications that came after it, delivered once it is filled. */
  private held: Publication[] | null = null;

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
      // The client checked the reply (a `subscribed` with a valid offset and epoch, else 502).
      if (!err) return this.subscribed(reply as Frame);
      if (!this.active) return;
      this.state = 'unsubscribed';
      // A lost connection resubscribes on reconnect.
      if (err.code === 499) return;
      // 408 (no answer in time) and 502 (an answer that breaks the protocol)
      // are not refusals: the application hears of them and the subscribe is
      // tried once more; after that the subscription waits for the next
      // connection or subscribe() call. 409: the server still has this channel
      // (an earlier subscribe it finished after our timeout, or one being
      // cancelled). Each retry unsubscribes first.
      const transient = err.code === 408 || err.code === 502;
      if (err.code !== 409 || this.retried) this.emit('error', err);
      if ((transient || err.code === 409) && !this.retried) {
        this.retried = true;
        return this.host.call({ type: 'unsubscribe', channel: this.channel }, () => this.start());
      }
      if (transient) return;
      this.active = false;
      this.host.forget(this);
      this.emit('unsubscribed', { channel: this.channel, code: err.code, reason: err.message });
    });
  }

  /** The connection was lost: resubscribe on the next one (which recovers what a gap being filled held). */
  lost(): void {
    this.state = 'unsubscribed';
    this.held = null;
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
    this.held = null;
    for (const f of inOrder(list)) this.take(f, epoch);
    // The reply's position, unless this subscription already saw further in the same epoch.
    const pos = this.position;
    if (recovered === false || !pos || pos.epoch !== epoch || pos.offset < event.offset) this.at(event.offset, epoch);
  }

  /** A publication frame from the wire; one without a valid offset is reported, not delivered. */
  take(f: Frame, epoch: string): void {
    const p = publicationOf(this.channel, epoch, f);
    if (p !== null) return this.pub(p);
    this.host.malformed(`a publication of "${this.channel}" without a valid offset (${JSON.stringify(f.offset)})`);
  }

  /**
   * Delivers a publication once, in order (PROTOCOL.md §7): not one already
   * delivered (same epoch, offset not beyond the last), and not one past a
   * gap before what the gap lacks is read back.
   */
  pub(p: Publication): void {
    // A stream's epoch never comes back once another replaced it (§7): a pub of it is stale.
    if (!this.active || this.retired.has(p.epoch)) return;
    if (this.held !== null) {
      this.held.push(p);
      return;
    }
    const pos = this.position;
    if (pos && pos.epoch === p.epoch) {
      if (p.offset <= pos.offset) return;
      if (p.offset > pos.offset + 1 && this.recover && this.host.connected) return this.fill(pos, p);
    }
    this.deliver(p);
  }

  private at(offset: number, epoch: string): void {
    const left = this.position?.epoch;
    if (left !== undefined && left !== epoch) {
      this.retired.add(left);
      if (this.retired.size > 8) this.retired.delete(this.retired.values().next().value as string);
    }
    this.position = { offset, epoch };
  }

  private deliver(p: Publication): void {
    this.at(p.offset, p.epoch);
    if (undecodable.has(p)) return this.host.malformed(`publication ${p.offset} of "${this.channel}" has a b64 payload that is not base64`);
    this.emit('publication', p);
    this.host.delivered(p);
  }

  /**
   * A publication came past a gap (the server skipped offsets it could not
   * read back, §7): the missing ones are asked for with `history`, the later
   * ones held meanwhile. What cannot be had is reported as an `error` (410),
   * then delivery goes on. A lost connection drops the held ones: the
   * resubscribe recovers from the last delivered position.
   */
  private fill(from: StreamPosition, next: Publication): void {
    this.held = [next];
    const limit = Math.min(next.offset - from.offset - 1, HISTORY_MAX);
    this.host.call({ type: 'history', channel: this.channel, since: from, limit }, (err, reply) => {
      const held = this.held;
      this.held = null;
      if (held === null || !this.active || err?.code === 499) return;
      let got = 0;
      // (The client checked the reply: a `history` with a position and a list.)
      if (!err && reply?.epoch === from.epoch) {
        for (const f of inOrder(reply.publications as unknown[])) {
          const p = publicationOf(this.channel, from.epoch, f);
          // Asked for once: a hole inside what came back is not asked for again.
          if (p === null || p.offset <= (this.position?.offset ?? from.offset) || p.offset >= next.offset) continue;
          this.deliver(p);
          got++;
        }
      }
      const lost = next.offset - from.offset - 1 - got;
      if (lost > 0) {
        const why = err?.message ?? 'not in the history';
        this.emit('error', new ChannelError(err ? err.code : 410, `${lost} publications of "${this.channel}" between offsets ${from.offset} and ${next.offset} are lost (${why})`));
      }
      // Delivery goes on past the gap.
      this.at(next.offset - 1, from.epoch);
      for (const p of held) this.pub(p);
    });
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
