/**
 * fullduplex/redis: a Broker that spans processes through Redis pub/sub.
 * Needs the optional peer dependency `@redis/client` (node-redis).
 */
export { RedisBroker, BrokerUnavailableError, DEFAULT_PREFIX, DEFAULT_MAX_PENDING_BYTES, type RedisBrokerOptions, type BrokerErrorEvent } from './broker.js';
export type { RedisClientLike } from './transport.js';
export { channelName } from './channel.js';
export { ENVELOPE_VERSION } from './envelope.js';
