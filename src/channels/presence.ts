/**
 * Presence: who is subscribed to a channel, across nodes. Each node adds its
 * own sessions' entries to the store with a time to live (`presenceTtl`) and
 * refreshes them every third of it, so the entries of a node that died
 * vanish within `presenceTtl` (PROTOCOL.md §8). Joins and leaves go to every
 * node's subscribers through the broker, as unordered `join`/`leave` pushes.
 */
import type { Broker } from '../pubsub/broker.js';
import { presenceEventFrame } from './frames.js';
import type { Session } from './session.js';
import type { ChannelStore } from './store.js';
import { channelTopic, encodeEvent } from './wire.js';

export interface PresenceHost {
  readonly store: ChannelStore;
  readonly broker: Broker;
  readonly presenceTtl: number;
  reportError(error: unknown, context: string): void;
}

export class Presence {
  constructor(private readonly host: PresenceHost) {}

  join(session: Session, channel: string): void {
    (session.presence ??= new Set()).add(channel);
    const entry = entryOf(session);
    this.host.store.presenceAdd(channel, session.id, entry, this.host.presenceTtl).catch((err: unknown) => this.host.reportError(err, 'presence add'));
    this.announce(channel, presenceEventFrame('join', channel, entry));
  }

  leave(session: Session, channel: string): void {
    const set = session.presence;
    if (set === null || !set.delete(channel)) return;
    if (set.size === 0) session.presence = null;
    this.host.store.presenceRemove(channel, session.id).catch((err: unknown) => this.host.reportError(err, 'presence remove'));
    this.announce(channel, presenceEventFrame('leave', channel, entryOf(session)));
  }

  /** Re-adds the entries of these sessions (called every `presenceTtl / 3`). */
  refresh(sessions: Iterable<Session>): void {
    const ttl = this.host.presenceTtl;
    for (const session of sessions) {
      if (session.presence === null || session.closed) continue;
      const entry = entryOf(session);
      for (const channel of session.presence) {
        this.host.store.presenceAdd(channel, session.id, entry, ttl).catch((err: unknown) => this.host.reportError(err, 'presence refresh'));
      }
    }
  }

  private announce(channel: string, frame: string): void {
    this.host.broker.publish(channelTopic(channel), encodeEvent(channel, frame), undefined, (err) => {
      if (err !== null) this.host.reportError(err, 'presence event');
    });
  }
}

/** A session's presence entry as JSON text: `{"client":…,"user":…,"info":…}`. */
function entryOf(session: Session): string {
  return JSON.stringify(session.info === undefined ? { client: session.id, user: session.user } : { client: session.id, user: session.user, info: session.info });
}
