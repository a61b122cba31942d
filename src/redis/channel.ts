/**
 * Topic → Redis channel name. Any topic string is safe:
 *
 * - The channel is `${prefix}:${escaped topic}` and the escaped topic never
 *   contains ':', so the prefix is everything before the channel's last ':'.
 *   Two brokers with different prefixes therefore never share a channel,
 *   whatever their topics (even when one prefix starts with the other).
 * - '{' and '}' are escaped, so no topic forms a Redis Cluster hash tag
 *   (Redis Cluster spec, "Hash tags"): each topic hashes by its whole channel
 *   name and topics spread over the shards. A prefix that holds a hash tag
 *   (say 'chat{1}') is the application's explicit choice to pin every topic
 *   to one slot.
 * - A lone UTF-16 surrogate would become U+FFFD on the wire (channel names
 *   are UTF-8), which would merge distinct topics; it is escaped as %uXXXX.
 *
 * Escapes: '%' → %25, ':' → %3A, '{' → %7B, '}' → %7D, lone surrogate → %uXXXX.
 * Since '%' itself is escaped, the mapping is one-to-one.
 */

// A lone surrogate: a high one not followed by a low one, or a low one not
// preceded by a high one.
const LONE = '[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
const LONE_SURROGATE = new RegExp(LONE);
// A character to escape: one of % : { }, or a lone surrogate.
const UNSAFE = new RegExp(`[%:{}]|${LONE}`, 'g');
const UNSAFE_TEST = new RegExp(`[%:{}]|${LONE}`);

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  return code < 0x80 ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : `%u${code.toString(16).toUpperCase()}`;
}

/** The escaped form of `topic`: no ':', '{', '}' and no lone surrogate. */
export function escapeTopic(topic: string): string {
  return UNSAFE_TEST.test(topic) ? topic.replace(UNSAFE, escapeOne) : topic;
}

/**
 * Checks a prefix: any string that survives UTF-8 encoding (no lone
 * surrogates: two such prefixes could become the same bytes). TypeError otherwise.
 */
export function checkPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || LONE_SURROGATE.test(prefix)) throw new TypeError('prefix must be a string without lone UTF-16 surrogates');
  return prefix;
}

/** The Redis channel that carries `topic` for brokers sharing `prefix`. */
export function channelName(prefix: string, topic: string): string {
  return `${prefix}:${escapeTopic(topic)}`;
}
