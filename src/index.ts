/**
 * fullduplex: the public API. Anything not exported here is internal.
 */
// Server
export { WebSocketServer, DEFAULTS as SERVER_DEFAULTS, type NegotiatedStream } from './server/server.js';
export { ServerWebSocket, SendResult } from './server/connection.js';
export type {
  ErrorSource,
  KeepaliveOptions,
  PublishOptions,
  SendOptions,
  ServerHandler,
  UpgradeDecision,
  UpgradeInfo,
  WebSocketServerOptions,
} from './server/types.js';
export type { SendCallback } from './transport/link.js';
// Client
export { WebSocket, type WebSocketEventMap } from './client/websocket.js';
export { DEFAULT_HANDSHAKE_TIMEOUT, type BinaryType, type MessageData, type WebSocketOptions, type WebSocketTlsOptions } from './client/options.js';
export { CloseEvent, ErrorEvent, MessageEvent, type CloseEventInit, type ErrorEventInit, type MessageEventInit } from './client/events.js';
// Topics
export type { Broker, PublishCallback, SubscriptionListener, TopicSubscriber } from './pubsub/broker.js';
export { LocalBroker } from './pubsub/local.js';
export { RelayBroker } from './pubsub/relay.js';
export { TopicMessage, type PublishData } from './pubsub/message.js';
// Protocol vocabulary shared by both sides
export { CloseCode, ProtocolError, ReadyState, type ExtensionNegotiator, type ExtensionOffer } from './protocol/index.js';
// The path a request-target names (origin-form or absolute-form), for routing handshakes by path.
export { targetPath } from './protocol/handshake.js';
export type { PerMessageDeflateOptions } from './protocol/deflate-params.js';
export { DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_PAYLOAD } from './options.js';
// Observability
export { DiagnosticsChannel } from './diagnostics.js';
