/**
 * Hub: one channel on one node while it has local subscribers. It is the
 * node's single subscriber of the channel's broker topic, so the broker
 * carries a publication to each node once, and it hands it to the local
 * sessions in offset order:
 *
 * - before it knows the stream's position (`ready`), arrivals are held;
 * - a publication whose offset skips ahead (two nodes publishing at once may
 *   reach this node out of order) is held for `gapWait` ms; if the missing
 *   ones do not arrive, they are read back from the store (which has them:
 *   a node broadcasts only after its append resolved);
 * - a duplicate (offset not above the last delivered) is dropped.
 *
 * A session that is recovering is "buffering": it gets every delivery into a
 * list instead of its socket until its recovery (a store read) is done, so
 * nothing published meanwhile is lost (PROTOCOL.md §7).
 */
import type { Broker, TopicSubscriber } from '../pubsub/broker.js';
import type { TopicMessage } from '../pubsub/message.js';
import { pubFrame } from './frames.js';
import type { ChannelOptions } from './options.js';
import { Roster } from './presence.js';
import type { Session } from './session.js';
import type { ChannelStore } from './store.js';
import { channelTopic, decode } from './wire.js';

export interface HubHost {
  readonly broker: Broker;
  readonly store: ChannelStore;
  /** Milliseconds an out-of-order publication waits for the ones before it. */
  readonly gapWait: number;
  /** Frames `frame` once for every WebSocket attached to `channel`'s fan-out. */
  fanout(channel: string, frame: Buffer): void;
  /** The hub has no members left: forget it. */
  hubEmpty(hub: Hub): void;
  reportError(error: unknown, context: string): void;
}

/** A delivery held for a buffering session: a pub (with offset) or an event (offset 0). */
export interface Buffered {
  offset: number;
  frame: string;
}

interface Held {
  epoch: string;
  frame: Buffer;
}

export class Hub implements TopicSubscriber {
  topics: Set<string> | null = null;
  readonly channel: string;
  readonly topic: string;
  /** The stream position delivered last (valid once `ready` resolved). */
  epoch = '';
  offset = 0;
  /** What this node knows of the channel's presence (presence channels only). */
  readonly roster: Roster | null;
  /** Resolves once the stream's position is known; rejects if the store failed. */
  readonly ready: Promise<void>;
  private live = false;
  private members = 0;
  /** Live members written to one by one (not on a shared fan-out). */
  private readonly direct = new Set<Session>();
  private readonly buffering = new Map<Session, Buffered[]>();
  private readonly held = new Map<number, Held>();
  private gapTimer: NodeJS.Timeout | null = null;
  private filling = false;
  private gone = false;

  constructor(
    private readonly host: HubHost,
    channel: string,
    private readonly options: ChannelOptions,
  ) {
    this.channel = channel;
    this.topic = channelTopic(channel);
    this.roster = options.presence ? new Roster() : null;
    // Subscribe first, then read the position: whatever is published in
    // between is held and sorted out against the position (nothing lost).
    host.broker.subscribe(this.topic, this);
    this.ready = host.store.position(channel, options.history).then((pos) => {
      this.epoch = pos.epoch;
      this.offset = pos.offset;
      this.live = true;
      this.drain();
    });
    // Waiters see the rejection; this keeps it from being reported as unhandled.
    this.ready.catch(() => undefined);
  }

  /** A member that is not yet live (its subscribe is being set up): keeps the hub alive. */
  acquire(): void {
    this.members++;
  }

  /** Releases a member taken with `acquire` (and detaches it if it went live). */
  release(session: Session): void {
    this.buffering.delete(session);
    if (this.direct.delete(session) === false) session.detachFanout(this.channel);
    if (--this.members === 0) this.close();
  }

  /** Makes an acquired member live: from now on it gets every delivery. */
  goLive(session: Session): void {
    if (!session.attachFanout(this.channel)) this.direct.add(session);
  }

  /** Starts holding deliveries for an acquired member until `takeBuffered`. */
  startBuffering(session: Session): void {
    this.buffering.set(session, []);
  }

  /** Ends buffering for `session` and returns what was held for it, in order. */
  takeBuffered(session: Session): Buffered[] {
    const held = this.buffering.get(session) ?? [];
    this.buffering.delete(session);
    return held;
  }

  /** Sends an unordered push (join/leave) to the members. */
  deliverEvent(frame: Buffer): void {
    this.emit(frame, 0);
  }

  /** From the broker (TopicSubscriber). */
  deliver(message: TopicMessage): boolean {
    const d = decode(message);
    if (d === null) return false;
    if (d.kind === 'event') {
      this.roster?.observe(d.frame.toString());
      this.emit(d.frame, 0);
    } else if (d.kind === 'pub') this.arrive(d.offset, d.epoch, d.frame);
    else return false;
    return true;
  }

  private arrive(offset: number, epoch: string, frame: Buffer): void {
    if (!this.live || this.filling) {
      this.held.set(offset, { epoch, frame });
      return;
    }
    if (epoch !== this.epoch) {
      // The stream was made anew (expired, store reset): follow the new epoch.
      this.epoch = epoch;
      this.offset = offset;
      this.held.clear();
      this.emit(frame, offset);
      return;
    }
    if (offset <= this.offset) return;
    if (offset === this.offset + 1) {
      this.offset = offset;
      this.emit(frame, offset);
      if (this.held.size > 0) this.drain();
      return;
    }
    this.held.set(offset, { epoch, frame });
    this.gapTimer ??= setTimeout(() => this.fill(), this.host.gapWait);
  }

  /** Delivers held publications that follow on; arms the gap timer if a gap is left. */
  private drain(): void {
    for (const [offset, h] of this.held) {
      if (h.epoch !== this.epoch || offset <= this.offset) this.held.delete(offset);
    }
    let next: Held | undefined;
    while ((next = this.held.get(this.offset + 1)) !== undefined) {
      this.held.delete(++this.offset);
      this.emit(next.frame, this.offset);
    }
    if (this.held.size > 0) this.gapTimer ??= setTimeout(() => this.fill(), this.host.gapWait);
  }

  /**
   * Catches up with the store: a broadcast this node never got (the broker
   * was down, or it came before the broker's subscription was active) and
   * that no later publication revealed as a gap. Called now and then by the
   * server's sweep; costs one position read.
   */
  async catchUp(): Promise<void> {
    if (!this.live || this.filling || this.gone || this.options.history.size === 0) return;
    const top = await this.host.store.position(this.channel, this.options.history);
    if (this.filling || this.gone) return;
    if (top.epoch === this.epoch) {
      if (top.offset > this.offset) await this.fill(true);
    } else if (top.offset > 0) {
      // The stream was made anew (the store lost or expired it) and this
      // node missed every broadcast of the new one: follow it from its
      // start, as a broadcast in the new epoch would have (arrive).
      this.epoch = top.epoch;
      this.offset = 0;
      this.held.clear();
      await this.fill(true);
    }
  }

  /** The gap did not close by itself: read the missing publications back from the store. */
  private async fill(always = false): Promise<void> {
    this.gapTimer = null;
    if (this.gone || (this.held.size === 0 && !always)) return;
    this.filling = true;
    try {
      const history = this.options.history;
      let r = await this.host.store.read(this.channel, { offset: this.offset, epoch: this.epoch }, history.size, history);
      // Part of the gap is trimmed already: deliver what is still kept.
      if (!r.ok && r.reason === 'trimmed') r = await this.host.store.read(this.channel, null, history.size, history);
      if (r.ok && r.top.epoch === this.epoch) {
        for (const p of r.publications) {
          if (p.offset <= this.offset) continue;
          this.offset = p.offset;
          this.held.delete(p.offset);
          this.emit(Buffer.from(pubFrame(this.channel, p.offset, this.epoch, p.payload)), p.offset);
        }
      }
    } catch (err) {
      this.host.reportError(err, `reading channel "${this.channel}" to fill a gap`);
    }
    this.filling = false;
    if (this.gone) return;
    this.drain();
    // Whatever the store could not give (no history, trimmed) is skipped.
    while (this.held.size > 0) {
      this.offset = Math.min(...this.held.keys()) - 1;
      if (this.gapTimer !== null) clearTimeout(this.gapTimer);
      this.gapTimer = null;
      this.drain();
    }
  }

  private emit(frame: Buffer, offset: number): void {
    this.host.fanout(this.channel, frame);
    if (this.direct.size === 0 && this.buffering.size === 0) return;
    const text = frame.toString();
    for (const s of this.direct) s.send(text);
    for (const list of this.buffering.values()) list.push({ offset, frame: text });
  }

  private close(): void {
    this.gone = true;
    if (this.gapTimer !== null) clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.held.clear();
    this.host.broker.unsubscribe(this.topic, this);
    this.host.hubEmpty(this);
  }
}
