// permessage-deflate (RFC 7692) for the load generator: the offer, the check
// of the server's answer, the client's compressed messages (built once, before
// the run), and the inflater each connection uses on the server's messages.
//
// The client's messages are precompressed with context takeover, and still
// replayed forever. With context takeover, message i is compressed against
// the LZ77 window: the last 2^windowBits bytes of uncompressed data sent before
// it on the connection. Every connection sends the same K messages in the same
// cyclic order, so that window is a function of i alone:
//   - pass 1: m0 … m(K-1) through a fresh compressor: what a connection sends
//     first (the server's decompressor starts empty, and so did ours);
//   - pass 2: m0 … m(K-1) again, through the same compressor: every message
//     now has the K-cycle before it, exactly as on a connection that has
//     already sent pass 1, or pass 1 and any number of pass 2s.
// A DEFLATE stream only refers back into that window (distances ≤ 2^windowBits,
// and each message ends on a byte boundary after Z_SYNC_FLUSH), so the bytes
// of pass 2 are valid at every later turn of the cycle: a connection sends
// pass 1 once, then pass 2 over and over. Each message in K·size ≥ 2^windowBits
// bytes of history is compressed against real context (K = 16 × 16 KiB here),
// and the load generator spends no CPU on compression during the run.
import zlib from 'node:zlib';

const { Z_SYNC_FLUSH } = zlib.constants;

/** What a browser offers (Chrome, Firefox): no parameters but client_max_window_bits. */
export const DEFLATE_OFFER = 'permessage-deflate; client_max_window_bits';

/** The 4 bytes a sender strips from the end of every message (RFC 7692 §7.2.1) and a receiver appends. */
export const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * Parses the server's Sec-WebSocket-Extensions answer to DEFLATE_OFFER
 * (RFC 7692 §7.1): exactly one `permessage-deflate` with known parameters,
 * each at most once, window bits 8..15, client_max_window_bits only with a
 * value. Returns { params } or { error }.
 */
export function parseDeflateResponse(value) {
  if (value === undefined) return { error: 'server did not accept permessage-deflate (no Sec-WebSocket-Extensions in its 101 answer)' };
  const elements = splitOutsideQuotes(value, ',');
  if (elements.length !== 1) return { error: `server accepted ${elements.length} extensions ("${value}"); one permessage-deflate was offered` };
  const [name, ...rawParams] = splitOutsideQuotes(elements[0], ';');
  if (name.toLowerCase() !== 'permessage-deflate') return { error: `server accepted "${name}", which was not offered` };
  const params = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    text: value.trim(),
  };
  const seen = new Set();
  for (const raw of rawParams) {
    const eq = raw.indexOf('=');
    const key = (eq < 0 ? raw : raw.slice(0, eq)).trim().toLowerCase();
    let val = eq < 0 ? undefined : raw.slice(eq + 1).trim();
    if (val !== undefined && val.length >= 2 && val.startsWith('"') && val.endsWith('"')) val = val.slice(1, -1);
    if (seen.has(key)) return { error: `permessage-deflate answer repeats ${key} ("${value}")` };
    seen.add(key);
    switch (key) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (val !== undefined) return { error: `${key} takes no value ("${value}")` };
        params[key === 'server_no_context_takeover' ? 'serverNoContextTakeover' : 'clientNoContextTakeover'] = true;
        break;
      case 'server_max_window_bits':
      case 'client_max_window_bits': {
        if (val === undefined || !/^(8|9|1[0-5])$/.test(val)) return { error: `${key} needs a value 8..15 in an answer ("${value}")` };
        params[key === 'server_max_window_bits' ? 'serverMaxWindowBits' : 'clientMaxWindowBits'] = Number(val);
        break;
      }
      default:
        return { error: `unknown permessage-deflate parameter "${key}" ("${value}")` };
    }
  }
  return { params };
}

function splitOutsideQuotes(s, sep) {
  const out = [];
  let cur = '';
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (ch === sep && !quoted) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out.filter((x) => x.length > 0);
}

/** The negotiated client→server compression settings as a short string (for reports). */
export function describeParams(p) {
  const dir = (noCtx, bits) => `${noCtx ? 'no context takeover' : 'context takeover'}, ${bits}-bit window`;
  return `client→server: ${dir(p.clientNoContextTakeover, p.clientMaxWindowBits)}; server→client: ${dir(p.serverNoContextTakeover, p.serverMaxWindowBits)}`;
}

/** Compressed bytes of one message through `deflater` (Z_SYNC_FLUSH), the trailing 00 00 ff ff stripped. */
function deflateMessage(deflater, msg) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const onData = (c) => parts.push(c);
    deflater.on('data', onData);
    deflater.once('error', reject);
    deflater.write(msg);
    deflater.flush(Z_SYNC_FLUSH, () => {
      deflater.off('data', onData);
      deflater.off('error', reject);
      const out = Buffer.concat(parts);
      if (out.length < 4 || !out.subarray(out.length - 4).equals(DEFLATE_TAIL)) {
        reject(new Error('deflate output after Z_SYNC_FLUSH does not end with 00 00 ff ff'));
        return;
      }
      resolve(out.subarray(0, out.length - 4));
    });
  });
}

/**
 * The compressed payloads a client sends for `messages` under the negotiated
 * `params`: { first, cycle } (arrays of K Buffers). A connection sends
 * first[0..K-1], then cycle[0..K-1] forever (see the top of this file). With
 * client_no_context_takeover, each message is compressed alone and
 * first = cycle. zlib level 6 and memLevel 8 (zlib's defaults, what browsers
 * use); the window is what the server allowed (15 bits unless it said less;
 * zlib cannot compress raw DEFLATE with an 8-bit window).
 */
export async function compressClientMessages(messages, params, { level = 6, memLevel = 8 } = {}) {
  const windowBits = params.clientMaxWindowBits;
  if (windowBits < 9) throw new Error(`server asked for client_max_window_bits=${windowBits}; zlib cannot produce raw DEFLATE with an 8-bit window`);
  const opts = { level, memLevel, windowBits };
  if (params.clientNoContextTakeover) {
    const cycle = [];
    for (const m of messages) {
      const d = zlib.createDeflateRaw(opts);
      cycle.push(await deflateMessage(d, m));
      d.close();
    }
    return { first: cycle, cycle };
  }
  if (messages.length * messages[0].length < 2 ** windowBits) {
    throw new Error(`${messages.length} messages of ${messages[0].length} B do not fill a ${2 ** windowBits} B window: the replayed stream would not be valid`);
  }
  const d = zlib.createDeflateRaw(opts);
  const first = [];
  const cycle = [];
  for (const m of messages) first.push(await deflateMessage(d, m));
  for (const m of messages) cycle.push(await deflateMessage(d, m));
  d.close();
  return { first, cycle };
}

/**
 * The compressed payload of a connection's FIRST message (nothing sent before
 * it, so every connection sends the same bytes whatever the context
 * takeover), without the trailing 00 00 ff ff; zlib level 6, memLevel 8 and
 * the window the server allowed, as in compressClientMessages.
 */
export function compressFirstMessage(message, params, { level = 6, memLevel = 8 } = {}) {
  const windowBits = params.clientMaxWindowBits;
  if (windowBits < 9) throw new Error(`server asked for client_max_window_bits=${windowBits}; zlib cannot produce raw DEFLATE with an 8-bit window`);
  const out = zlib.deflateRawSync(message, { level, memLevel, windowBits, finishFlush: Z_SYNC_FLUSH });
  if (out.length < 4 || !out.subarray(out.length - 4).equals(DEFLATE_TAIL)) throw new Error('deflate output after Z_SYNC_FLUSH does not end with 00 00 ff ff');
  return out.subarray(0, out.length - 4);
}

/**
 * One connection's decompressor for the server's messages: one raw inflater
 * for the connection's lifetime (the server may use context takeover), 15-bit
 * window (enough for any server_max_window_bits). `message(buf, done)` takes a
 * whole compressed message (frames' payloads joined, without the tail) and
 * calls `done()` once all of its output has gone to `onOutput(chunk)`;
 * messages are processed in order, one zlib operation each (with the tail
 * appended and Z_SYNC_FLUSH as the write's flush mode).
 */
export class MessageInflater {
  constructor(onOutput, onError) {
    this.z = zlib.createInflateRaw({ windowBits: 15, flush: Z_SYNC_FLUSH, chunkSize: 64 * 1024 });
    this.z.on('data', onOutput);
    this.z.on('error', onError);
  }

  /** `parts`: copies of the message's payload pieces (the shared read buffer is reused). */
  message(parts, done) {
    parts.push(DEFLATE_TAIL);
    this.z.write(Buffer.concat(parts), done);
  }

  close() {
    this.z.close();
  }
}
