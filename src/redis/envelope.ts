/**
 * The bytes a RedisBroker publishes on a topic's channel: a small binary
 * envelope holding one or more consecutive messages of that topic from one
 * node (a batch: one PUBLISH for a burst, see publisher.ts).
 *
 * ```
 * offset  size  field
 * 0       1     version: 1
 * 1       8     node id: random per broker, so a broker skips its own
 *               publishes (its local subscribers already had them)
 * 9       ...   records, to the end:
 *   +0    1       flags: bit 0 set = binary message, clear = text (UTF-8);
 *                 bits 1-7 are reserved and sent as 0
 *   +1    4       payload length n, unsigned big-endian
 *   +5    n       payload, as published
 * ```
 *
 * A receiver drops (and reports) a whole envelope with another version, a
 * truncated header or record, no record, or a text payload that is not UTF-8
 * (it would make every receiving client fail the connection with 1007,
 * RFC 6455 §8.1): a node running a newer format must not have its messages
 * misread as payload.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { TopicMessage } from '../pubsub/message.js';

export const ENVELOPE_VERSION = 1;
const NODE_ID_SIZE = 8;
export const HEADER_SIZE = 1 + NODE_ID_SIZE;
export const RECORD_HEADER_SIZE = 5;
const FLAG_BINARY = 0x01;

/** A fresh random node id (8 bytes: collisions between live nodes are negligible). */
export function newNodeId(): Buffer {
  return randomBytes(NODE_ID_SIZE);
}

/** The envelope's size for these messages. */
export function envelopeSize(messages: readonly TopicMessage[]): number {
  let size = HEADER_SIZE;
  for (const m of messages) size += RECORD_HEADER_SIZE + m.payload.length;
  return size;
}

/** Wraps `messages` (at least one, all of one topic) for the wire. */
export function encodeEnvelope(nodeId: Buffer, messages: readonly TopicMessage[]): Buffer {
  const out = Buffer.allocUnsafe(envelopeSize(messages));
  out[0] = ENVELOPE_VERSION;
  nodeId.copy(out, 1);
  let p = HEADER_SIZE;
  for (const m of messages) {
    out[p] = m.binary ? FLAG_BINARY : 0;
    out.writeUInt32BE(m.payload.length, p + 1);
    p += RECORD_HEADER_SIZE;
    p += m.payload.copy(out, p);
  }
  return out;
}

/** What a received envelope holds: messages from another node, our own echo, or garbage. */
export type Decoded =
  | { kind: 'messages'; messages: TopicMessage[] }
  | { kind: 'own' }
  | { kind: 'invalid'; reason: string };

const OWN: Decoded = { kind: 'own' };

/** Unwraps an envelope received on `topic`'s channel; payloads are views of `bytes` (no copy). */
export function decodeEnvelope(nodeId: Buffer, bytes: Buffer, topic: string): Decoded {
  if (bytes.length < HEADER_SIZE) return { kind: 'invalid', reason: `envelope of ${bytes.length} bytes is shorter than its header` };
  if (bytes[0] !== ENVELOPE_VERSION) return { kind: 'invalid', reason: `envelope version ${String(bytes[0])} is not ${ENVELOPE_VERSION}` };
  if (nodeId.compare(bytes, 1, HEADER_SIZE) === 0) return OWN;
  const messages: TopicMessage[] = [];
  let p = HEADER_SIZE;
  while (p < bytes.length) {
    if (bytes.length - p < RECORD_HEADER_SIZE) return { kind: 'invalid', reason: 'truncated record header' };
    const binary = ((bytes[p] ?? 0) & FLAG_BINARY) !== 0;
    const length = bytes.readUInt32BE(p + 1);
    p += RECORD_HEADER_SIZE;
    if (bytes.length - p < length) return { kind: 'invalid', reason: 'truncated record' };
    const payload = bytes.subarray(p, p + length);
    p += length;
    if (!binary && !isUtf8(payload)) return { kind: 'invalid', reason: 'text message is not valid UTF-8' };
    messages.push(new TopicMessage(topic, payload, binary));
  }
  if (messages.length === 0) return { kind: 'invalid', reason: 'envelope without a message' };
  return { kind: 'messages', messages };
}
