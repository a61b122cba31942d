/**
 * MemoryStore: the in-process ChannelStore (the default). A ring of the last
 * `history.size` publications per channel, streams dropped `history.ttl` ms
 * after their last append, presence entries that expire unless refreshed.
 *
 * Epochs are random per stream life, so a process restart (or an expired
 * stream) shows up to a recovering client as `recovered:false` (reason
 * "epoch" or "expired") instead of as silently wrong offsets.
 */
import { randomBytes } from 'node:crypto';
import type { ChannelStore, HistoryOptions, ReadResult, StoredPublication, StreamPosition } from './store.js';

interface Stream {
  epoch: string;
  top: number;
  /** Ring of the kept publications: `ring[(offset - 1) % size]`. */
  ring: (StoredPublication | undefined)[];
  /** When the stream is dropped (0: never). */
  expiresAt: number;
}

interface PresenceEntry {
  entry: string;
  expiresAt: number;
}

export interface MemoryStoreOptions {
  /** How often expired streams and presence entries are swept, ms (default 5000). */
  sweepInterval?: number;
  /** The clock (tests). */
  now?: () => number;
}

export class MemoryStore implements ChannelStore {
  private readonly streams = new Map<string, Stream>();
  private readonly presence = new Map<string, Map<string, PresenceEntry>>();
  /** Epochs of streams that expired, so a recovery from one says "expired" rather than "epoch". */
  private readonly expired = new Map<string, string>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.sweep(), options.sweepInterval ?? 5000);
    this.timer.unref();
  }

  async append(channel: string, payload: string, history: HistoryOptions): Promise<StreamPosition> {
    const s = this.stream(channel, history);
    s.expiresAt = history.ttl > 0 ? this.now() + history.ttl : 0;
    const offset = ++s.top;
    if (history.size > 0) {
      if (s.ring.length !== history.size) s.ring = resize(s, history.size);
      s.ring[(offset - 1) % history.size] = { offset, payload };
    }
    return { offset, epoch: s.epoch };
  }

  async position(channel: string, history: HistoryOptions): Promise<StreamPosition> {
    const s = this.stream(channel, history);
    return { offset: s.top, epoch: s.epoch };
  }

  async read(channel: string, since: StreamPosition | null, limit: number, history: HistoryOptions): Promise<ReadResult> {
    const s = this.stream(channel, history);
    const top = { offset: s.top, epoch: s.epoch };
    if (history.size === 0) return since === null ? { ok: true, top, publications: [] } : { ok: false, top, reason: 'no_history' };
    const size = s.ring.length;
    const oldest = Math.max(1, s.top - size + 1);
    let from: number;
    if (since === null) {
      from = Math.max(oldest, s.top - limit + 1);
    } else {
      if (since.epoch !== s.epoch) return { ok: false, top, reason: this.expired.get(channel) === since.epoch ? 'expired' : 'epoch' };
      if (since.offset > s.top) return { ok: false, top, reason: 'epoch' };
      if (since.offset + 1 < oldest) return { ok: false, top, reason: 'trimmed' };
      from = since.offset + 1;
    }
    const publications: StoredPublication[] = [];
    for (let o = from; o <= s.top && publications.length < limit; o++) {
      const p = s.ring[(o - 1) % size];
      if (p !== undefined && p.offset === o) publications.push(p);
    }
    return { ok: true, top, publications };
  }

  async presenceAdd(channel: string, client: string, entry: string, ttl: number): Promise<void> {
    let m = this.presence.get(channel);
    if (m === undefined) this.presence.set(channel, (m = new Map()));
    m.set(client, { entry, expiresAt: this.now() + ttl });
  }

  async presenceRemove(channel: string, client: string): Promise<void> {
    const m = this.presence.get(channel);
    if (m === undefined) return;
    m.delete(client);
    if (m.size === 0) this.presence.delete(channel);
  }

  async presenceList(channel: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const m = this.presence.get(channel);
    if (m === undefined) return out;
    const now = this.now();
    for (const [client, e] of m) if (e.expiresAt > now) out.set(client, e.entry);
    return out;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.streams.clear();
    this.presence.clear();
  }

  /** The live stream of `channel`, made anew (new epoch) when missing or expired. */
  private stream(channel: string, history: HistoryOptions): Stream {
    const now = this.now();
    let s = this.streams.get(channel);
    if (s !== undefined && s.expiresAt !== 0 && s.expiresAt <= now) {
      this.expire(channel, s);
      s = undefined;
    }
    if (s === undefined) {
      // A stream made by a read lives ttl too; only appends extend its life.
      s = { epoch: randomBytes(6).toString('base64url'), top: 0, ring: [], expiresAt: history.ttl > 0 ? now + history.ttl : 0 };
      this.streams.set(channel, s);
    }
    return s;
  }

  private expire(channel: string, s: Stream): void {
    this.streams.delete(channel);
    this.expired.set(channel, s.epoch);
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) if (s.expiresAt !== 0 && s.expiresAt <= now) this.expire(channel, s);
    // Tombstones only need to outlive clients that remember the epoch; bound them.
    if (this.expired.size > 100_000) this.expired.clear();
    for (const [channel, m] of this.presence) {
      for (const [client, e] of m) if (e.expiresAt <= now) m.delete(client);
      if (m.size === 0) this.presence.delete(channel);
    }
  }
}

/** The ring re-laid for a new size (channel options changed at runtime): the newest publications are kept. */
function resize(s: Stream, size: number): (StoredPublication | undefined)[] {
  const ring = new Array<StoredPublication | undefined>(size);
  for (const p of s.ring) if (p !== undefined && p.offset > s.top - size) ring[(p.offset - 1) % size] = p;
  return ring;
}
