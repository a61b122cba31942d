/**
 * RedisBroker: topics that span processes through Redis pub/sub.
 *
 * Each process keeps a LocalBroker for its own subscribers. A publish is
 * delivered to them at once (synchronously, as with the local broker) and
 * sent to the topic's Redis channel in an envelope tagged with this broker's
 * random node id (envelope.ts); every broker subscribed to the channel
 * delivers it to its own subscribers, except the publisher, which skips its
 * own node id: each subscriber gets each message exactly once. A run of
 * publishes to one topic within a tick shares one PUBLISH (publisher.ts).
 * Redis keeps the order of one connection's commands, so messages arrive in
 * publish order per publishing node, across topics too (per topic on a
 * cluster, where topics live on different shards).
 *
 * Delivery between processes is at most once, like Redis pub/sub: what is
 * published while a node is disconnected from Redis does not reach it.
 */
import { channel as diagnosticsChannel } from 'node:diagnostics_channel';
import type { ConnectionOptions } from 'node:tls';
import type { Broker, PublishCallback, SubscriptionListener, TopicSubscriber } from '../pubsub/broker.js';
import { RelayBroker } from '../pubsub/relay.js';
import type { TopicMessage } from '../pubsub/message.js';
import { channelName, checkPrefix } from './channel.js';
import { decodeEnvelope, newNodeId } from './envelope.js';
import { Interest } from './interest.js';
import { Publisher } from './publisher.js';
import { createTransport, type RedisClientLike, type Transport } from './transport.js';

export interface RedisBrokerOptions {
  /** `redis[s]://[[username][:password]@]host[:port][/db]`; default redis://localhost:6379. */
  url?: string;
  /**
   * An existing node-redis client to publish with (connected or not); the
   * broker subscribes on a `duplicate()` of it. close() leaves this client
   * open: it is the caller's. Its own offline-queue settings apply.
   */
  client?: RedisClientLike;
  /** Root node URLs of a Redis Cluster (instead of `url`/`client`). Implies `sharded` unless it is false. */
  cluster?: string[];
  /** Sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7): default true with `cluster`, false otherwise. */
  sharded?: boolean;
  /** Channel name prefix, so that several applications can share one Redis; default 'fullduplex'. */
  prefix?: string;
  /** ACL user (or leave out for the `default` user / requirepass). */
  username?: string;
  password?: string;
  /** Extra TLS options (ca, cert, key, servername...) for `rediss://`. */
  tls?: ConnectionOptions;
  /**
   * Most bytes of published messages awaiting Redis's reply (a slow or
   * stalled Redis); beyond, publish fails at once. Default 64 MiB.
   */
  maxPendingBytes?: number;
  /**
   * Connection problems and failed cross-process publishes without a
   * callback. Without it the broker warns once per outage (process.emitWarning).
   */
  onError?: (error: Error) => void;
}

/** What is published on diagnostics channel `fullduplex:broker:error`. */
export interface BrokerErrorEvent {
  broker: RedisBroker;
  error: Error;
  operation: 'connection' | 'publish' | 'subscribe' | 'unsubscribe' | 'receive';
  topic?: string;
}

const errorChannel = diagnosticsChannel('fullduplex:broker:error');

export const DEFAULT_PREFIX = 'fullduplex';
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

/** Publishing while Redis cannot take it (not connected yet, reconnecting, closed). */
export class BrokerUnavailableError extends Error {
  readonly code = 'ERR_BROKER_UNAVAILABLE';
}

export class RedisBroker extends RelayBroker implements Broker {
  /** This broker's node id (envelope.ts), to recognise its own publishes. */
  readonly nodeId = newNodeId();
  readonly prefix: string;
  private readonly transport: Transport;
  private readonly interest: Interest;
  private readonly publisher: Publisher;
  private readonly onError: ((error: Error) => void) | undefined;
  private listener: SubscriptionListener | null = null;
  private readonly connected: Promise<void>;
  private closed = false;
  /** For the default reporter: an outage has been warned about. */
  private warned = false;

  constructor(options: RedisBrokerOptions = {}) {
    super();
    this.prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
    this.onError = options.onError;
    const sharded = options.sharded ?? options.cluster !== undefined;
    this.transport = createTransport(
      { ...options, sharded },
      {
        message: (bytes, channel) => this.received(bytes, channel),
        error: (error) => this.report(error, 'connection'),
        ready: () => {
          this.warned = false;
          if (!this.closed) this.interest.start();
        },
      },
    );
    const prefix = this.prefix;
    const channelOf = (topic: string): string => channelName(prefix, topic);
    this.interest = new Interest(
      this.transport,
      (topic) => this.local.subscriberCount(topic) > 0,
      channelOf,
      (error, operation) => this.report(error, operation),
    );
    this.publisher = new Publisher(this.transport, this.nodeId, channelOf, options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, (error, topic, callbacks, uncalled) =>
      this.batchFailed(error, topic, callbacks, uncalled),
    );
    this.local.onSubscriptionChange((topic, before, after) => {
      if ((before === 0) !== (after === 0)) this.interest.touch(topic);
      this.listener?.(topic, before, after);
    });
    this.connected = this.transport.connect().then(() => {
      if (!this.closed) this.interest.start();
    });
    // ready() reports a failed first connection; nobody awaiting it is fine.
    this.connected.catch(() => {});
  }

  /** Resolves once connected to Redis (rejects if the first connection gives up, or on close). */
  ready(): Promise<void> {
    return this.connected;
  }

  /** True while publishes can reach Redis (connected); false before the first connection, during an outage and after close(). */
  get isReady(): boolean {
    return !this.closed && this.transport.writable;
  }

  /** Channels this node is subscribed to in Redis (one per topic with local subscribers). */
  get redisSubscriptions(): number {
    return this.interest.size;
  }

  /** Bytes of published messages awaiting Redis's reply (bounded by maxPendingBytes). */
  get pendingBytes(): number {
    return this.publisher.pendingBytes;
  }

  publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number {
    const n = this.local.deliver(topic, message, exclude);
    // No offline queue: a publish Redis cannot take now fails now.
    let refused: string | null = null;
    if (this.closed) refused = 'the broker is closed';
    else if (!this.transport.writable) refused = 'not connected to Redis';
    else if (!this.publisher.add(topic, message, callback)) refused = 'maxPendingBytes awaiting Redis';
    if (refused !== null) {
      const error = new BrokerUnavailableError(refused);
      queueMicrotask(() => this.batchFailed(error, topic, callback === undefined ? [] : [callback], callback === undefined));
    }
    return n;
  }

  onSubscriptionChange(listener: SubscriptionListener | null): void {
    this.listener = listener;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.publisher.flush();
    this.interest.stop();
    this.local.onSubscriptionChange(null);
    await this.local.close();
    await this.transport.close();
  }

  private received(bytes: Buffer, channel: Buffer): void {
    const topic = this.interest.topicOf(channel.toString());
    if (topic === undefined) return; // an UNSUBSCRIBE in flight
    const decoded = decodeEnvelope(this.nodeId, bytes, topic);
    if (decoded.kind === 'messages') for (const m of decoded.messages) this.local.deliver(topic, m);
    else if (decoded.kind === 'invalid') this.report(new Error(`dropped a message on topic ${JSON.stringify(topic)}: ${decoded.reason}`), 'receive', topic);
  }

  /** Publishes failed: their callbacks learn it; without one, onError (or the warning) does. Diagnosed once. */
  private batchFailed(error: Error, topic: string, callbacks: PublishCallback[], uncalled: boolean): void {
    if (uncalled) this.report(error, 'publish', topic);
    else this.diagnose(error, 'publish', topic);
    for (const cb of callbacks) cb(error);
  }

  private diagnose(error: Error, operation: BrokerErrorEvent['operation'], topic?: string): void {
    if (!errorChannel.hasSubscribers) return;
    const event: BrokerErrorEvent = { broker: this, error, operation };
    if (topic !== undefined) event.topic = topic;
    errorChannel.publish(event);
  }

  private report(error: Error, operation: BrokerErrorEvent['operation'], topic?: string): void {
    this.diagnose(error, operation, topic);
    if (this.onError !== undefined) {
      this.onError(error);
    } else if (!this.warned && !this.closed) {
      this.warned = true;
      process.emitWarning(`RedisBroker: ${error.message} (reconnecting; further errors until then are not shown)`, 'RedisBrokerWarning');
    }
  }
}
