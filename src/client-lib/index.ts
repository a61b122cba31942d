/**
 * fullduplex/client: the channels client for browsers and Node (PROTOCOL.md).
 * No dependencies; also built as one minified ESM file for `<script type="module">`.
 */
export { Client } from './client.js';
export { Subscription } from './subscription.js';
export { backoffDelay } from './backoff.js';
export { ChannelError, CloseCode, ErrorCode, shouldReconnect } from './codes.js';
export { PROTOCOL } from './types.js';
export type * from './types.js';
