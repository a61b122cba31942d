/**
 * RedisChannelStore: the ChannelStore of fullduplex/channels
 * (src/channels/store.ts) kept in Redis, so that every node sees one stream
 * per channel (offsets within an epoch, history) and one presence roster,
 * and a client can recover on another node than the one it left.
 *
 * - A stream is a hash { epoch, top } plus a Redis Stream of the last
 *   `history.size` publications (XADD MAXLEN, entry id `<offset>-1`), both
 *   expiring `history.ttl` after the last append. Appends run as one Lua
 *   script, so offsets are assigned atomically across nodes.
 * - Presence is a hash client → entry plus a sorted set client → expiry in
 *   Redis server time (no clock skew between nodes); the entries of a node
 *   that died expire `ttl` after its last refresh.
 * - Keys are `${prefix}:<kind>:{<channel>}` with the channel escaped as for
 *   pub/sub channels (channel.ts): a channel's keys share one hash tag, so
 *   scripts work on a Redis Cluster, and channels spread over its slots.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createClient } from '@redis/client';
import type { ChannelStore, HistoryOptions, ReadResult, StoredPublication, StreamPosition, UnrecoverableReason } from '../channels/store.js';
import { checkPrefix, escapeTopic } from './channel.js';
import { type Endpoint, closeSoon, endpointOptions, newCluster } from './transport.js';
import { APPEND, POSITION, PRESENCE_ADD, PRESENCE_LIST, PRESENCE_REMOVE, READ } from './store-scripts.js';

/** The commands the store needs: a node-redis client or cluster satisfies it. */
export interface ScriptClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** `url` (`redis[s]://...`), `username`, `password`, `tls` as for RedisBroker, or an existing `client`. */
export interface RedisChannelStoreOptions extends Endpoint {
  /** An existing node-redis client or cluster, connected or not (left open by close()). */
  client?: ScriptClient;
  /** Root node URLs of a Redis Cluster (instead of `url`/`client`). */
  cluster?: string[];
  /** Key prefix, so that several applications can share one Redis; default 'fullduplex'. */
  prefix?: string;
  /** Connection errors (commands fail on their own promise too). */
  onError?: (error: Error) => void;
}

interface Script {
  text: string;
  sha: string;
}
const script = (text: string): Script => ({ text, sha: createHash('sha1').update(text).digest('hex') });
const S = {
  append: script(APPEND),
  position: script(POSITION),
  read: script(READ),
  presenceAdd: script(PRESENCE_ADD),
  presenceRemove: script(PRESENCE_REMOVE),
  presenceList: script(PRESENCE_LIST),
};

const REASONS: ReadonlySet<string> = new Set(['trimmed', 'expired', 'epoch', 'no_history']);
const isReason = (s: string): s is UnrecoverableReason => REASONS.has(s);

export class RedisChannelStore implements ChannelStore {
  readonly prefix: string;
  private readonly client: ScriptClient;
  private readonly owns: boolean;
  private readonly connected: Promise<void>;

  constructor(options: RedisChannelStoreOptions = {}) {
    this.prefix = checkPrefix(options.prefix ?? 'fullduplex');
    if (options.client !== undefined) {
      this.client = options.client;
      this.owns = false;
    } else if (options.cluster !== undefined) {
      this.client = newCluster(options.cluster, options);
      this.owns = true;
    } else {
      this.client = createClient({
        ...endpointOptions(options),
        // Fail at once while Redis is away instead of queueing.
        disableOfflineQueue: true,
        maintNotifications: 'disabled',
      });
      this.owns = true;
    }
    const onError = options.onError;
    this.client.on('error', (error) => onError?.(error));
    this.connected = this.client.isOpen ? Promise.resolve() : this.client.connect().then(() => undefined);
    this.connected.catch(() => {});
  }

  /** Resolves once connected to Redis. */
  ready(): Promise<void> {
    return this.connected;
  }

  async append(channel: string, payload: string, history: HistoryOptions): Promise<StreamPosition> {
    const r = await this.run(S.append, this.streamKeys(channel), [String(history.ttl), fresh(), payload, String(history.size)]);
    return position(r);
  }

  async position(channel: string, history: HistoryOptions): Promise<StreamPosition> {
    return position(await this.run(S.position, this.streamKeys(channel), [String(history.ttl), fresh()]));
  }

  async read(channel: string, since: StreamPosition | null, limit: number, history: HistoryOptions): Promise<ReadResult> {
    const r = await this.run(S.read, this.streamKeys(channel), [
      String(history.ttl),
      fresh(),
      String(history.size),
      since?.epoch ?? '',
      String(since?.offset ?? 0),
      String(limit),
    ]);
    const [status, top, epoch, ...rest] = r;
    const at = { offset: Number(top), epoch: String(epoch) };
    const s = String(status);
    if (s !== 'ok') {
      if (!isReason(s)) throw new Error(`unexpected reply from the read script: ${s}`);
      return { ok: false, top: at, reason: s };
    }
    const publications: StoredPublication[] = [];
    for (let i = 0; i + 1 < rest.length; i += 2) publications.push({ offset: Number(rest[i]), payload: String(rest[i + 1]) });
    return { ok: true, top: at, publications };
  }

  async presenceAdd(channel: string, client: string, entry: string, ttl: number): Promise<void> {
    await this.run(S.presenceAdd, this.presenceKeys(channel), [client, entry, String(ttl)]);
  }

  async presenceRemove(channel: string, client: string): Promise<void> {
    await this.run(S.presenceRemove, this.presenceKeys(channel), [client]);
  }

  async presenceList(channel: string): Promise<Map<string, string>> {
    const r = await this.run(S.presenceList, this.presenceKeys(channel), []);
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < r.length; i += 2) out.set(String(r[i]), String(r[i + 1]));
    return out;
  }

  async close(): Promise<void> {
    if (!this.owns) return;
    // A plain close() would wait for Redis to answer what is queued: forever while it is down.
    if (this.client.isOpen) await closeSoon(this.client);
  }

  /** meta, log, last, gone (store-scripts.ts): one hash tag per channel. */
  private streamKeys(channel: string): string[] {
    const tag = `{${escapeTopic(channel)}}`;
    return ['meta', 'log', 'last', 'gone'].map((k) => `${this.prefix}:${k}:${tag}`);
  }

  private presenceKeys(channel: string): string[] {
    const tag = `{${escapeTopic(channel)}}`;
    return [`${this.prefix}:presence:${tag}`, `${this.prefix}:presence-expiry:${tag}`];
  }

  /** EVALSHA, falling back to EVAL (which also caches the script) when a server does not have it yet. */
  private async run(s: Script, keys: string[], args: string[]): Promise<unknown[]> {
    await this.connected;
    let reply: unknown;
    try {
      reply = await this.client.evalSha(s.sha, { keys, arguments: args });
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      reply = await this.client.eval(s.text, { keys, arguments: args });
    }
    // The stream scripts and presenceList answer arrays; the others a number.
    return Array.isArray(reply) ? reply : [reply];
  }
}

/** A random epoch (only used when the script creates the stream). */
function fresh(): string {
  return randomBytes(6).toString('base64url');
}

function position(r: unknown[]): StreamPosition {
  return { offset: Number(r[0]), epoch: String(r[1]) };
}
