// The broadcast messages of the channel benchmark: small strings that carry
// their sequence number, so every subscriber can check it got each one once,
// in order. Built the same way for both servers.

/** Message `seq`, padded with dots to `size` characters (at least its digits and a colon). */
export function message(seq, size) {
  const head = `${seq}:`;
  return head.length >= size ? head : head + '.'.repeat(size - head.length);
}

/** The sequence number a message carries, or NaN if it is not one of ours. */
export function sequenceOf(text) {
  if (typeof text !== 'string') return NaN;
  const colon = text.indexOf(':');
  return colon > 0 ? Number(text.slice(0, colon)) : NaN;
}

/**
 * Control lines both servers understand on stdin (besides `mem`, `cpu`,
 * handled by ../servers/common.mjs): `pub <count> <size>` broadcasts `count`
 * messages to the room.
 */
export function parsePub(line) {
  const m = /^pub (\d+) (\d+)$/.exec(line.trim());
  return m === null ? null : { count: Number(m[1]), size: Number(m[2]) };
}

/** The room every client joins. */
export const ROOM = 'bench';
