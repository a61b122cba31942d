/**
 * Error codes and close codes of the channel protocol (PROTOCOL.md §5, §6),
 * shared by the client and the server.
 */

/** The `code` of an `error` frame (PROTOCOL.md §5). */
export const ErrorCode = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  UnknownCommand: 404,
  NotAvailable: 405,
  /** Client-side only: no reply within the client's timeout. */
  Timeout: 408,
  Conflict: 409,
  Unrecoverable: 410,
  TooLarge: 413,
  RateLimited: 429,
  TooManyChannels: 430,
  TooManyPending: 431,
  /** Client-side only: the connection was lost before the reply came. */
  ConnectionLost: 499,
  /** Client-side only: the server's answer broke the protocol (a reply of the wrong type, a publication without a valid offset or payload). */
  BadReply: 502,
  Internal: 500,
  Unavailable: 503,
} as const;

/** WebSocket close codes and `disconnect` codes of the protocol (PROTOCOL.md §6). */
export const CloseCode = {
  TooManyErrors: 4400,
  Unauthorized: 4401,
  NotNegotiated: 4406,
  Flooding: 4429,
  Internal: 4500,
  ConnectTimeout: 4501,
  HeartbeatTimeout: 4502,
  SlowConsumer: 4503,
  SessionEnded: 4504,
} as const;

/**
 * Whether a client should reconnect after a close with `code` when no
 * `disconnect` push said otherwise: 4000–4499 and 1009 are terminal; 1000 is
 * terminal too (only the client itself closes with it); everything else
 * (1001, 1006, 1011, 4500–4999 …) is a reason to come back.
 */
export function shouldReconnect(code: number): boolean {
  if (code >= 4000 && code < 4500) return false;
  return code !== 1000 && code !== 1009;
}

/** What the client's promises reject with and its `error` events carry: an Error with the protocol's code (§5). */
export class ChannelError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = 'ChannelError';
    this.code = code;
  }
}
