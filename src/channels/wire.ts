/**
 * What the channel layer sends through the Broker between nodes, as text
 * TopicMessages:
 *
 *   `P<offset> <epoch> <pub frame>`   a publication, with its position in front
 *                                     so a node orders it without parsing JSON
 *   `E<frame>`                        a join/leave push (not ordered, not stored)
 *   `S<origin>\n<body>`               a fallback command POST routed to the
 *                                     node holding the session (PROTOCOL.md §9)
 *
 * The frame part is exactly what subscribers get, so a node hands the same
 * bytes to every local WebSocket (`subarray`, no copy).
 */
import { TopicMessage } from '../pubsub/message.js';

/**
 * Every broker topic of the channel layer starts with this. An application
 * that shares its broker with the channel server and lets clients name
 * topics of their own must refuse names with this prefix
 * (`isChannelLayerTopic`): whoever can publish on them can forge
 * publications and commands.
 */
export const CHANNEL_TOPIC_PREFIX = 'fd:';

/** Whether `topic` belongs to the channel layer (see CHANNEL_TOPIC_PREFIX). */
export function isChannelLayerTopic(topic: string): boolean {
  return topic.startsWith(CHANNEL_TOPIC_PREFIX);
}

/** Broker topics: channels and sessions live apart, and a channel name can never name a session. */
export function channelTopic(channel: string): string {
  return `${CHANNEL_TOPIC_PREFIX}c:${channel}`;
}

export function sessionTopic(sessionHash: string): string {
  return `${CHANNEL_TOPIC_PREFIX}s:${sessionHash}`;
}

export function encodePublication(channel: string, offset: number, epoch: string, frame: string): TopicMessage {
  return TopicMessage.from(channelTopic(channel), `P${offset} ${epoch} ${frame}`);
}

export function encodeEvent(channel: string, frame: string): TopicMessage {
  return TopicMessage.from(channelTopic(channel), `E${frame}`);
}

export function encodeRouted(sessionHash: string, origin: string, body: string): TopicMessage {
  return TopicMessage.from(sessionTopic(sessionHash), `S${origin}\n${body}`);
}

export type Decoded =
  | { kind: 'pub'; offset: number; epoch: string; frame: Buffer }
  | { kind: 'event'; frame: Buffer }
  | { kind: 'routed'; origin: string; body: string }
  | null;

const P = 0x50;
const E = 0x45;
const S = 0x53;
const SPACE = 0x20;

/** Decodes a broker message; null for anything malformed (a foreign publisher on a shared broker). */
export function decode(message: TopicMessage): Decoded {
  const b = message.payload;
  if (message.binary || b.length < 2) return null;
  switch (b[0]) {
    case P: {
      const s1 = b.indexOf(SPACE, 1);
      const s2 = s1 < 0 ? -1 : b.indexOf(SPACE, s1 + 1);
      if (s2 < 0) return null;
      const offset = Number(b.toString('latin1', 1, s1));
      if (!Number.isSafeInteger(offset) || offset < 1) return null;
      return { kind: 'pub', offset, epoch: b.toString('latin1', s1 + 1, s2), frame: b.subarray(s2 + 1) };
    }
    case E:
      return { kind: 'event', frame: b.subarray(1) };
    case S: {
      const text = b.toString('utf8', 1);
      const nl = text.indexOf('\n');
      if (nl < 0) return null;
      return { kind: 'routed', origin: text.slice(0, nl), body: text.slice(nl + 1) };
    }
    default:
      return null;
  }
}
