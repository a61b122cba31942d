// Shared by the load generator, the client benchmark and the bench servers:
// deterministic payloads and the fixed handshake key. Nothing here runs on a
// hot path; payloads are built once and reused.
import { createHash } from 'node:crypto';

/** The RFC 6455 §1.3 sample key; every benchmark handshake uses it. */
export const BENCH_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2 step 5.4). */
export function acceptFor(key) {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

/**
 * `size` pseudo-random bytes, the same for the same (size, seed) in every
 * process: an echo or a broadcast is checked against bytes the checker built
 * itself, so a server that returns stale, shifted or mixed-up data fails.
 */
export function makePayload(size, seed = 1) {
  const buf = Buffer.allocUnsafe(size);
  let x = (0x9e3779b9 ^ Math.imul(seed + 1, 0x85ebca6b) ^ size) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    // xorshift32
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

/** The text command a broadcast load generator sends to make a server publish. */
export function publishCommand(count, size) {
  return `publish:${count}:${size}`;
}

/** Parses `publish:<count>:<size>`; null for anything else. */
export function parsePublishCommand(text) {
  const m = /^publish:(\d{1,7}):(\d{1,9})$/.exec(text);
  return m ? { count: Number(m[1]), size: Number(m[2]) } : null;
}

/** The payload every broadcast publishes (seed fixed so both ends agree). */
export function broadcastPayload(size) {
  return makePayload(size, 4242);
}
