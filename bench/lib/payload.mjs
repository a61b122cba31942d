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

const FIRST = ['Ada', 'Alan', 'Barbara', 'Claude', 'Donald', 'Edsger', 'Frances', 'Grace', 'John', 'Ken', 'Leslie', 'Margaret', 'Niklaus', 'Radia', 'Tim', 'Vint'];
const LAST = ['Lovelace', 'Turing', 'Liskov', 'Shannon', 'Knuth', 'Dijkstra', 'Allen', 'Hopper', 'McCarthy', 'Thompson', 'Lamport', 'Hamilton', 'Wirth', 'Perlman', 'Berners-Lee', 'Cerf'];
const CITIES = ['Amsterdam', 'Berlin', 'Chicago', 'Denver', 'Lagos', 'Lisbon', 'Madrid', 'Nairobi', 'Osaka', 'Paris', 'Quito', 'Seoul', 'Sydney', 'Toronto'];
const TAGS = ['admin', 'beta', 'editor', 'free', 'gold', 'legacy', 'mobile', 'new', 'pro', 'trial', 'vip', 'web'];
const EVENTS = ['login', 'logout', 'purchase', 'refund', 'view', 'click', 'signup', 'update'];

/**
 * A JSON text of exactly `size` bytes (ASCII), the same for the same
 * (size, seed) in every process: `{"type":"batch","seq":…,"items":[…]}`
 * with records of ids, names, e-mail addresses, amounts, scores, booleans,
 * tags and ISO timestamps, like an API or event feed. Compresses about 4.4×
 * alone and 5.5× with the previous messages as context (zlib level 6).
 * Padded with JSON whitespace before the closing `]}` to the exact size.
 */
export function makeJsonPayload(size, seed = 1) {
  let x = (0x2545f491 ^ Math.imul(seed + 1, 0x9e3779b1)) >>> 0 || 1;
  const rnd = () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
  const pick = (a) => a[rnd() % a.length];
  const hex = (n) => {
    let s = '';
    for (let i = 0; i < n; i++) s += (rnd() & 15).toString(16);
    return s;
  };
  const head = `{"type":"batch","seq":${seed},"source":"bench-${hex(8)}","items":[`;
  const tail = ']}';
  if (size < head.length + tail.length) throw new Error(`makeJsonPayload: ${size} bytes is too small for a JSON batch`);
  let t = 1700000000000 + (rnd() % 1e9);
  let s = head;
  for (let first = true; ; first = false) {
    t += rnd() % 5000;
    const fn = pick(FIRST);
    const ln = pick(LAST);
    const o =
      `${first ? '' : ','}{"id":${100000 + (rnd() % 900000)},"ref":"${hex(6)}","name":"${fn} ${ln}",` +
      `"email":"${fn.toLowerCase()}.${ln.toLowerCase()}${rnd() % 100}@example.com","city":"${pick(CITIES)}",` +
      `"event":"${pick(EVENTS)}","amount":${(rnd() % 100000) / 100},"score":${((rnd() % 1000000) / 1e4).toFixed(4)},` +
      `"active":${rnd() & 1 ? 'true' : 'false'},"tags":["${pick(TAGS)}","${pick(TAGS)}"],"ts":"${new Date(t).toISOString()}"}`;
    if (s.length + o.length + tail.length > size) break;
    s += o;
  }
  s += ' '.repeat(size - s.length - tail.length) + tail;
  return Buffer.from(s, 'latin1');
}
