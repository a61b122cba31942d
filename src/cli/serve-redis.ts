/**
 * `fullduplex serve --redis URL` / `--redis-cluster URL,URL,...`: the
 * server's topics, and the chat's channel history and presence, span every
 * process started with the same Redis. The Redis
 * broker is loaded only here and only then (a dynamic import of
 * `fullduplex/redis`), so the core and a plain `serve` never load the Redis
 * client, an optional peer dependency.
 */
import type { ChannelStore } from '../channels/store.js';
import type { Broker } from '../index.js';

/** How long serve waits for Redis at startup before giving up. */
const CONNECT_TIMEOUT_MS = 10_000;

export type RedisTarget = { kind: 'single'; url: string } | { kind: 'cluster'; urls: string[] };

/** Checks a --redis / --redis-cluster value: redis:// or rediss:// URLs. Throws an Error with what is wrong. */
export function parseRedisTarget(single: string | undefined, cluster: string | undefined): RedisTarget | null {
  if (single !== undefined && cluster !== undefined) throw new Error('--redis and --redis-cluster exclude each other');
  const check = (url: string): string => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`invalid Redis URL "${url}"`);
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error(`invalid Redis URL "${url}": redis:// or rediss://`);
    return url;
  };
  if (single !== undefined) return { kind: 'single', url: check(single) };
  if (cluster !== undefined) {
    const urls = cluster.split(',').filter((u) => u.trim() !== '').map(check);
    if (urls.length === 0) throw new Error('--redis-cluster needs at least one root node URL');
    return { kind: 'cluster', urls };
  }
  return null;
}

/** Where the URL's password is, shown as *** (for messages). */
export function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** At most one Redis error line on stderr per this many milliseconds (an outage repeats its error at each retry). */
const ERROR_LINE_INTERVAL_MS = 5000;

/** What serve shares through Redis: topics (the broker) and the chat's channel history and presence (the store). */
export interface RedisShared {
  broker: Broker;
  store: ChannelStore;
  close(): Promise<void>;
}

/**
 * Connects a RedisBroker and a RedisChannelStore; errors afterwards go to
 * stderr, rate-limited (both reconnect by themselves). Rejects when Redis
 * cannot be reached within CONNECT_TIMEOUT_MS.
 */
export async function connectRedis(target: RedisTarget): Promise<RedisShared> {
  let missing: unknown = null;
  const mod = await import('../redis/index.js').catch((err: unknown) => {
    missing = err;
    return null;
  });
  if (mod === null) {
    throw new Error(`--redis needs the Redis client: npm install @redis/client (${missing instanceof Error ? missing.message : String(missing)})`);
  }
  let lastLine = 0;
  const onError = (error: Error): void => {
    const now = Date.now();
    if (now - lastLine < ERROR_LINE_INTERVAL_MS) return;
    lastLine = now;
    process.stderr.write(`fullduplex serve: Redis: ${error.message}\n`);
  };
  const where = target.kind === 'single' ? { url: target.url, onError } : { cluster: target.urls, onError };
  const broker = new mod.RedisBroker(where);
  const store = new mod.RedisChannelStore(where);
  const close = async (): Promise<void> => {
    await Promise.all([broker.close(), store.close()]);
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`cannot reach Redis within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
  });
  try {
    await Promise.race([Promise.all([broker.ready(), store.ready()]), timeout]);
  } catch (err) {
    await close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { broker, store, close };
}
