/**
 * ChannelStore: where a channel's stream (offsets, epoch, history) and its
 * presence live. `MemoryStore` keeps them in this process; a Redis store
 * (Redis Streams with MAXLEN and expiry) shares them between nodes, so a
 * client can recover on another node than the one it left (PROTOCOL.md §7).
 *
 * The contract every implementation keeps:
 * - `append` assigns `offset = top + 1` atomically (two nodes appending at
 *   once never get the same offset), and a publication is readable by
 *   `read` once its `append` resolved (the channel server broadcasts only
 *   after that, so a node that sees offset n can always read 1..n-1 back
 *   from the store, as long as they are kept).
 * - A stream that does not exist (never used, expired) is created by the
 *   next `append` or `position` with offset 0 and a new random epoch; so an
 *   epoch names one life of a stream and offsets never repeat within it.
 * - A stream keeps its last `history.size` publications and is dropped
 *   `history.ttl` ms after its last append (size 0: offsets only).
 * - Presence entries expire `ttl` ms after they were last added, so the
 *   entries of a node that died disappear within `ttl`; live nodes re-add
 *   theirs before then.
 */

/** A position in a channel's stream. */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** How much history a channel keeps: `size` publications, dropped `ttl` ms after the last append. */
export interface HistoryOptions {
  size: number;
  ttl: number;
}

/**
 * One stored publication. `payload` is the text of a JSON object with the
 * publication's own fields (`data` or `b64`, and `info`), exactly as the
 * channel server gave it to `append`; the store never parses it.
 */
export interface StoredPublication {
  offset: number;
  payload: string;
}

/** Why publications after a position cannot be read (PROTOCOL.md §7). */
export type UnrecoverableReason = 'trimmed' | 'expired' | 'epoch' | 'no_history';

export type ReadResult =
  | {
      ok: true;
      /** The stream's current position (its top). */
      top: StreamPosition;
      /** Oldest first. */
      publications: StoredPublication[];
    }
  | { ok: false; top: StreamPosition; reason: UnrecoverableReason };

export interface ChannelStore {
  /** Stores a publication; resolves with its offset and the stream's epoch. */
  append(channel: string, payload: string, history: HistoryOptions): Promise<StreamPosition>;

  /** The stream's top (creating the stream if it does not exist). */
  position(channel: string, history: HistoryOptions): Promise<StreamPosition>;

  /**
   * With `since`: the publications after it (oldest first, at most `limit`),
   * or why they cannot be read. Without: the newest `limit` publications,
   * oldest first.
   */
  read(channel: string, since: StreamPosition | null, limit: number, history: HistoryOptions): Promise<ReadResult>;

  /** Adds or refreshes `client`'s presence entry (`entry`: JSON text) in `channel` for `ttl` ms. */
  presenceAdd(channel: string, client: string, entry: string, ttl: number): Promise<void>;

  presenceRemove(channel: string, client: string): Promise<void>;

  /** The live entries of `channel`: client id → entry (JSON text). */
  presenceList(channel: string): Promise<Map<string, string>>;

  /** Releases what the store holds (timers, connections). */
  close(): Promise<void>;
}
