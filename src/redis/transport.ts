/**
 * The Redis side of a RedisBroker, on node-redis (`@redis/client`): one
 * connection that publishes and one dedicated to pub/sub for a single Redis
 * (a connection in subscribe mode takes no other commands under RESP2, and
 * keeping publishes off it keeps their latency independent of the incoming
 * message stream), or a Redis Cluster client, which keeps a connection per
 * master and, for sharded pub/sub, a subscriber connection per master that
 * owns subscribed slots.
 *
 * node-redis writes every command issued in the same tick in one socket write
 * (it schedules the flush with setImmediate), so publishes and SUBSCRIBEs
 * issued together are pipelined; it re-subscribes its channels after a
 * reconnect, with exponential backoff (50 ms doubling to 2 s, plus up to
 * 200 ms of jitter) by default.
 */
import { createClient, createCluster } from '@redis/client';
import type { ConnectionOptions } from 'node:tls';

/** Receives one pub/sub message with its channel, both as bytes. */
export type ChannelListener = (message: Buffer, channel: Buffer) => void;

/**
 * node-redis's listener shape (generic over Buffer and string). Subscribed in
 * buffer mode, it only ever gets Buffers.
 */
type RawListener = <T extends Buffer | string>(message: T, channel: T) => unknown;

function rawListener(listener: ChannelListener): RawListener {
  return (message, channel) => {
    if (typeof message !== 'string' && typeof channel !== 'string') listener(message, channel);
  };
}

/** What a RedisBroker needs from Redis. */
export interface Transport {
  /** The most channels one SUBSCRIBE carries (1 for sharded pub/sub on a cluster: one slot per command). */
  readonly batch: number;
  /** True while publishes can go out now (connected); otherwise they fail at once rather than queue. */
  readonly writable: boolean;
  connect(): Promise<void>;
  publish(channel: string, bytes: Buffer): Promise<unknown>;
  subscribe(channels: string[]): Promise<void>;
  unsubscribe(channels: string[]): Promise<void>;
  close(): Promise<void>;
}

/** Where a transport reports what happens to its connections. */
export interface TransportEvents {
  message: ChannelListener;
  error(error: Error): void;
  /** A connection (re)became ready: subscriptions that failed can be retried. */
  ready(): void;
}

/**
 * The parts of a node-redis client a RedisBroker uses: what `createClient()`
 * from `@redis/client` or `redis` returns satisfies it.
 */
export interface RedisClientLike {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<unknown>;
  sPublish(channel: string, message: Buffer): Promise<unknown>;
  subscribe(channels: string[], listener: RawListener, bufferMode: true): Promise<void>;
  unsubscribe(channels: string[], listener: RawListener, bufferMode: true): Promise<void>;
  sSubscribe(channels: string[], listener: RawListener, bufferMode: true): Promise<void>;
  sUnsubscribe(channels: string[], listener: RawListener, bufferMode: true): Promise<void>;
  duplicate(): RedisClientLike;
  close(): Promise<void>;
  destroy(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
}

/** How to reach Redis: what RedisBrokerOptions carries about connections. */
export interface ConnectOptions extends Endpoint {
  client?: RedisClientLike;
  cluster?: string[];
  sharded: boolean;
}

/** Builds the transport the options describe. */
export function createTransport(options: ConnectOptions, events: TransportEvents): Transport {
  if (options.cluster !== undefined) return new ClusterTransport(options, events);
  return new ClientTransport(options, events);
}

/** Most commands awaiting replies on a connection the broker made (a backstop behind maxPendingBytes). */
const MAX_QUEUED_COMMANDS = 65_536;

// Settings for connections the broker makes itself. A publish while Redis is
// unreachable fails at once instead of waiting in an offline queue, and the
// commands awaiting replies are bounded: memory stays bounded through an
// outage or a slow Redis. Maintenance notifications are a Redis Enterprise
// feature whose handshake only costs a round trip elsewhere.
const OWN_SETTINGS = { disableOfflineQueue: true, commandsQueueMaxLength: MAX_QUEUED_COMMANDS, maintNotifications: 'disabled' } as const;

// No per-command timeout: node-redis arms an AbortSignal timer per command
// for it, which halves publish throughput (measured: about 35k vs 75k
// publishes/s on the shared 2-core machine). A Redis that goes away closes the
// connection (or TCP keepalive finds it), which fails every pending publish,
// and the pending ones are bounded by maxPendingPublishes.
const NO_COMMAND_TIMEOUT = { timeout: 0 };

/** Where to connect and as whom: the url, ACL credentials and TLS options a broker or store was given. */
export interface Endpoint {
  url?: string;
  username?: string;
  password?: string;
  tls?: ConnectionOptions;
}

function credentials(options: Endpoint): { username?: string; password?: string } {
  const out: { username?: string; password?: string } = {};
  if (options.username !== undefined) out.username = options.username;
  if (options.password !== undefined) out.password = options.password;
  return out;
}

/** createClient options for an endpoint (the url's own credentials and rediss:// apply too). */
export function endpointOptions(options: Endpoint): { url?: string; username?: string; password?: string; socket?: ConnectionOptions } {
  return {
    ...(options.url === undefined ? {} : { url: options.url }),
    ...credentials(options),
    ...(options.tls === undefined ? {} : { socket: { ...options.tls } }),
  };
}

/**
 * A node-redis cluster client on `roots` (redis:// or rediss:// URLs).
 * Discovered nodes are reached with `defaults` only (node-redis does not
 * carry the root URL's credentials or TLS over), so both go there.
 */
export function newCluster(roots: string[], endpoint: Endpoint, commandOptions?: { timeout: number }): ReturnType<typeof createCluster> {
  const first = roots[0] === undefined ? null : new URL(roots[0]);
  const fromUrl: { username?: string; password?: string } = {};
  if (first !== null && first.username !== '') fromUrl.username = decodeURIComponent(first.username);
  if (first !== null && first.password !== '') fromUrl.password = decodeURIComponent(first.password);
  const tls = first?.protocol === 'rediss:';
  return createCluster({
    rootNodes: roots.map((url) => ({ url })),
    defaults: {
      ...fromUrl,
      ...credentials(endpoint),
      ...(tls || endpoint.tls !== undefined ? { socket: { tls: true as const, ...endpoint.tls } } : {}),
      ...OWN_SETTINGS,
    },
    ...(commandOptions === undefined ? {} : { commandOptions }),
  });
}

/** A single Redis (or any endpoint that behaves like one): a publishing and a subscribing connection. */
class ClientTransport implements Transport {
  readonly batch = 1024;
  private readonly pub: RedisClientLike;
  private readonly sub: RedisClientLike;
  private readonly ownsPub: boolean;
  private readonly onError: (error: Error) => void;
  private readonly onReady: () => void;
  private readonly listener: RawListener;

  constructor(
    private readonly options: ConnectOptions,
    private readonly events: TransportEvents,
  ) {
    if (options.client !== undefined) {
      this.pub = options.client;
      this.ownsPub = false;
    } else {
      this.pub = createClient({
        ...endpointOptions(options),
        ...OWN_SETTINGS,
        commandOptions: NO_COMMAND_TIMEOUT,
      });
      this.ownsPub = true;
    }
    // The subscriber keeps its offline queue: SUBSCRIBEs issued while Redis
    // is away wait for the reconnect (there are at most a few, batched).
    this.sub = this.pub.duplicate();
    this.onError = (error) => events.error(error);
    this.onReady = () => events.ready();
    this.listener = rawListener(events.message);
    for (const c of [this.pub, this.sub]) {
      c.on('error', this.onError);
      c.on('ready', this.onReady);
    }
  }

  get writable(): boolean {
    return this.pub.isReady;
  }

  async connect(): Promise<void> {
    await Promise.all([this.pub.isOpen ? undefined : this.pub.connect(), this.sub.connect()]);
  }

  publish(channel: string, bytes: Buffer): Promise<unknown> {
    return this.options.sharded ? this.pub.sPublish(channel, bytes) : this.pub.publish(channel, bytes);
  }

  subscribe(channels: string[]): Promise<void> {
    return this.options.sharded
      ? this.sub.sSubscribe(channels, this.listener, true)
      : this.sub.subscribe(channels, this.listener, true);
  }

  unsubscribe(channels: string[]): Promise<void> {
    return this.options.sharded
      ? this.sub.sUnsubscribe(channels, this.listener, true)
      : this.sub.unsubscribe(channels, this.listener, true);
  }

  async close(): Promise<void> {
    this.sub.destroy();
    for (const c of [this.pub, this.sub]) {
      c.off('error', this.onError);
      c.off('ready', this.onReady);
    }
    if (this.ownsPub) await closeSoon(this.pub);
  }
}

/** A Redis Cluster: sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7) or classic pub/sub over the cluster bus. */
class ClusterTransport implements Transport {
  readonly batch: number;
  private readonly cluster: ReturnType<typeof createCluster>;
  private readonly listener: RawListener;

  constructor(
    private readonly options: ConnectOptions,
    private readonly events: TransportEvents,
  ) {
    // Every channel of one SSUBSCRIBE must hash to the same slot; the broker
    // gives each topic its own slot, so sharded subscribes go one per command
    // (still pipelined: node-redis writes a tick's commands together).
    this.batch = options.sharded ? 1 : 1024;
    this.listener = rawListener(events.message);
    this.cluster = newCluster(options.cluster ?? [], options, NO_COMMAND_TIMEOUT);
    this.cluster.on('error', (error: Error) => events.error(error));
    this.cluster.on('node-error', (error: Error) => events.error(error));
    this.cluster.on('node-ready', () => events.ready());
    this.cluster.on('sharded-channel-moved-error', (error: Error) => events.error(error));
  }

  get writable(): boolean {
    return this.cluster.isReady;
  }

  async connect(): Promise<void> {
    await this.cluster.connect();
  }

  publish(channel: string, bytes: Buffer): Promise<unknown> {
    return this.options.sharded ? this.cluster.sPublish(channel, bytes) : this.cluster.publish(channel, bytes);
  }

  subscribe(channels: string[]): Promise<void> {
    return this.options.sharded
      ? this.cluster.sSubscribe(channels, this.listener, true)
      : this.cluster.subscribe(channels, this.listener, true);
  }

  unsubscribe(channels: string[]): Promise<void> {
    return this.options.sharded
      ? this.cluster.sUnsubscribe(channels, this.listener, true)
      : this.cluster.unsubscribe(channels, this.listener, true);
  }

  async close(): Promise<void> {
    await closeSoon(this.cluster);
  }
}

/** How long close() waits for replies to commands already sent before dropping the connection. */
const CLOSE_GRACE_MS = 2000;

/**
 * Closes gracefully (pending replies arrive first), or destroys when Redis is
 * away or slow to answer: node-redis' close() waits for the replies to every
 * queued command, so while Redis is down it would wait forever.
 */
export async function closeSoon(client: { readonly isReady: boolean; close(): Promise<void>; destroy(): void }): Promise<void> {
  if (!client.isReady) {
    client.destroy();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, CLOSE_GRACE_MS);
  });
  await Promise.race([client.close().catch(() => client.destroy()), late]);
  clearTimeout(timer);
}
