/**
 * The bytes a RedisBroker publishes on a topic's channel: a small binary
 * envelope around the message payload.
 *
 * ```
 * offset  size  field
 * 0       1     version: 1
 * 1       1     flags: bit 0 set = binary message, clear = text (UTF-8);
 *               bits 1-7 are reserved and sent as 0
 * 2       8     node id: random per broker, so a broker skips its own
 *               publishes (its local subscribers already had them)
 * 10      n     payload, as published
 * ```
 *
 * A receiver drops (and reports) an envelope with another version, one
 * shorter than the header, or a text payload that is not UTF-8 (it would make
 * every receiving client fail the connection with 1007, RFC 6455 §8.1): a
 * node running a newer format must not have its messages misread as payload.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { TopicMessage } from '../pubsub/message.js';

export const ENVELOPE_VERSION = 1;
export const HEADER_SIZE = 10;
const NODE_ID_SIZE = 8;
const FLAG_BINARY = 0x01;

/** A fresh random node id (8 bytes: collisions between live nodes are negligible). */
export function newNodeId(): Buffer {
  return randomBytes(NODE_ID_SIZE);
}

/** Wraps `message` for the wire. */
export function encodeEnvelope(nodeId: Buffer, message: TopicMessage): Buffer {
  const payload = message.payload;
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = message.binary ? FLAG_BINARY : 0;
  nodeId.copy(out, 2);
  payload.copy(out, HEADER_SIZE);
  return out;
}

/** What a received envelope holds: a message from another node, our own echo, or garbage. */
export type Decoded =
  | { kind: 'message'; message: TopicMessage }
  | { kind: 'own' }
  | { kind: 'invalid'; reason: string };

const OWN: Decoded = { kind: 'own' };

/** Unwraps an envelope received on `topic`'s channel; the message's payload is a view of `bytes` (no copy). */
export function decodeEnvelope(nodeId: Buffer, bytes: Buffer, topic: string): Decoded {
  if (bytes.length < HEADER_SIZE) return { kind: 'invalid', reason: `envelope of ${bytes.length} bytes is shorter than its header` };
  if (bytes[0] !== ENVELOPE_VERSION) return { kind: 'invalid', reason: `envelope version ${String(bytes[0])} is not ${ENVELOPE_VERSION}` };
  if (nodeId.compare(bytes, 2, HEADER_SIZE) === 0) return OWN;
  const binary = ((bytes[1] ?? 0) & FLAG_BINARY) !== 0;
  const payload = bytes.subarray(HEADER_SIZE);
  if (!binary && !isUtf8(payload)) return { kind: 'invalid', reason: 'text message is not valid UTF-8' };
  return { kind: 'message', message: new TopicMessage(topic, payload, binary) };
}
