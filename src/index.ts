/**
 * fullduplex: the public API. Anything not exported here is internal.
 */
export { WebSocketServer, DEFAULTS as SERVER_DEFAULTS, type WebSocketServerOptions, type ServerHandler, type UpgradeInfo, type UpgradeDecision } from './node/server.js';
export { ServerWebSocket, type SendOptions, type ConnectionHandler } from './node/server-socket.js';
export { WebSocket, type WebSocketOptions } from './node/client.js';
export { CloseEvent, ErrorEvent, MessageEvent } from './node/events.js';
export { CloseCode, ProtocolError, type ExtensionNegotiator, type ExtensionOffer } from './protocol/index.js';
export type { PerMessageDeflateOptions } from './protocol/deflate.js';
