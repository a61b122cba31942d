/**
 * Observability through `node:diagnostics_channel`, the convention of Node
 * itself and undici: named channels an application (or an APM agent)
 * subscribes to. Nothing is built or published while a channel has no
 * subscriber, so an unobserved server pays one property read per event.
 *
 * ```ts
 * import diagnostics_channel from 'node:diagnostics_channel';
 * diagnostics_channel.subscribe('fullduplex:connection:close', (m) => metrics.closed(m.code));
 * ```
 */
import diagnostics_channel from 'node:diagnostics_channel';

/** The channel names, one per kind of event. */
export const DiagnosticsChannel = {
  /** A connection opened: `{ connection, role }`. */
  ConnectionOpen: 'fullduplex:connection:open',
  /** A connection's transport closed: `{ connection, role, code, reason }` (code 1006 without a close frame). */
  ConnectionClose: 'fullduplex:connection:close',
  /** A handshake was refused: `{ status, reason, url, remoteAddress }`. */
  HandshakeRefused: 'fullduplex:handshake:refused',
  /** A handler (or upgrade hook) threw or rejected: `{ connection?, error, where }`. */
  HandlerError: 'fullduplex:handler:error',
  /** A peer broke the protocol: `{ connection, role, error }` (error.closeCode is what was sent). */
  ProtocolError: 'fullduplex:protocol:error',
  /** A message was dropped for a slow consumer: `{ connection, topic, bytes, bufferedAmount }`. */
  MessageDropped: 'fullduplex:message:dropped',
  /** A broker could not reach its transport (Redis): `{ broker, error, operation }`. */
  BrokerError: 'fullduplex:broker:error',
} as const;
export type DiagnosticsChannel = (typeof DiagnosticsChannel)[keyof typeof DiagnosticsChannel];

export const connectionOpen = diagnostics_channel.channel(DiagnosticsChannel.ConnectionOpen);
export const connectionClose = diagnostics_channel.channel(DiagnosticsChannel.ConnectionClose);
export const handshakeRefused = diagnostics_channel.channel(DiagnosticsChannel.HandshakeRefused);
export const handlerError = diagnostics_channel.channel(DiagnosticsChannel.HandlerError);
export const protocolError = diagnostics_channel.channel(DiagnosticsChannel.ProtocolError);
export const messageDropped = diagnostics_channel.channel(DiagnosticsChannel.MessageDropped);
export const brokerError = diagnostics_channel.channel(DiagnosticsChannel.BrokerError);
