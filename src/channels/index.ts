/**
 * fullduplex/channels: the channel protocol server (PROTOCOL.md).
 */
export { ChannelServer } from './server.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export { CHANNEL_TOPIC_PREFIX, isChannelLayerTopic } from './wire.js';
export { CHANNEL_DEFAULTS, DEFAULT_CHANNEL_OPTIONS } from './options.js';
export type {
  ChannelAction,
  ChannelClient,
  ChannelLimits,
  ChannelOptions,
  ChannelRule,
  ChannelServerOptions,
  ConnectRequest,
  Identity,
} from './options.js';
export type { ChannelStore, HistoryOptions, ReadResult, StoredPublication, StreamPosition, UnrecoverableReason } from './store.js';
export { ErrorCode, CloseCode } from '../client-lib/codes.js';
export { PROTOCOL } from '../client-lib/types.js';
