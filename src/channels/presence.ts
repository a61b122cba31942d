/**
 * Presence: who is subscribed to a channel, across nodes. Each node adds its
 * own sessions' entries to the store with a time to live (`presenceTtl`) and
 * refreshes them every third of it, so the entries of a node that died
 * vanish within `presenceTtl` (PROTOCOL.md §8). Joins and leaves go to every
 * node's subscribers through the broker, as unordered `join`/`leave` pushes.
 *
 * A node that dies sends no leaves, so each node also keeps a Roster per
 * presence channel it serves and compares it with the store's list on every
 * refresh: an entry gone from the store on two refreshes in a row gets a
 * `leave` to the local subscribers (and a stray one a `join`), so presence
 * heals within 2 × presenceTtl.
 */
import type { Broker } from '../pubsub/broker.js';
import { presenceEventFrame } from './frames.js';
import type { Hub } from './hub.js';
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

  /** Compares each roster with the store and delivers the joins and leaves it missed. */
  heal(hubs: Iterable<Hub>): void {
    for (const hub of hubs) {
      const roster = hub.roster;
      if (roster === null) continue;
      this.host.store.presenceList(hub.channel).then(
        (list) => {
          for (const frame of roster.reconcile(hub.channel, list)) hub.deliverEvent(Buffer.from(frame));
        },
        (err: unknown) => this.host.reportError(err, 'presence list'),
      );
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

/** What one node believes is in a channel's presence, from the events it saw and the store's lists. */
export class Roster {
  private readonly known = new Map<string, string>();
  private initialised = false;
  /** Differences seen on the last reconcile: acted upon only if they persist (events and lists race). */
  private gone = new Set<string>();
  private added = new Set<string>();

  /** A join/leave push that went through this node. */
  observe(frame: string): void {
    let e: { type?: unknown; client?: unknown; user?: unknown; info?: unknown };
    try {
      e = JSON.parse(frame) as typeof e;
    } catch {
      return;
    }
    if (typeof e.client !== 'string') return;
    if (e.type === 'join') this.known.set(e.client, JSON.stringify(e.info === undefined ? { client: e.client, user: e.user } : { client: e.client, user: e.user, info: e.info }));
    else if (e.type === 'leave') this.known.delete(e.client);
  }

  /** The join/leave frames for differences with `list` that persisted since the last call. */
  reconcile(channel: string, list: Map<string, string>): string[] {
    const frames: string[] = [];
    if (!this.initialised) {
      this.initialised = true;
      for (const [client, entry] of list) this.known.set(client, entry);
      return frames;
    }
    const gone = new Set<string>();
    const added = new Set<string>();
    for (const [client, entry] of this.known) {
      if (list.has(client)) continue;
      if (!this.gone.has(client)) gone.add(client);
      else {
        this.known.delete(client);
        frames.push(presenceEventFrame('leave', channel, entry));
      }
    }
    for (const [client, entry] of list) {
      if (this.known.has(client)) continue;
      if (!this.added.has(client)) added.add(client);
      else {
        this.known.set(client, entry);
        frames.push(presenceEventFrame('join', channel, entry));
      }
    }
    this.gone = gone;
    this.added = added;
    return frames;
  }
}
