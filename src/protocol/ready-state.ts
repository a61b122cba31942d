/**
 * Where a connection is in its life, numbered as the WHATWG `WebSocket`
 * numbers it (WHATWG WebSockets § readyState), for both sides: a server
 * connection starts OPEN; a client is CONNECTING until the handshake is done.
 */
export const ReadyState = {
  Connecting: 0,
  Open: 1,
  /** A close frame was sent or received; the other is awaited. */
  Closing: 2,
  /** Close frames went both ways, the connection failed, or its transport is gone. */
  Closed: 3,
} as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];
