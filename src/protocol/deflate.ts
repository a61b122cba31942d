/**
 * permessage-deflate (RFC 7692): negotiation of its parameters on both sides
 * and the per-connection codec.
 *
 * Compression is computation, not I/O, so it lives in the core: each message
 * is compressed or inflated whole and synchronously, by persistent
 * `node:zlib` streams stepped the way Node's own `zlib.*Sync` functions step
 * theirs. That keeps messages in order with no queue, keeps the sliding
 * window across messages (context takeover), and caps the inflated size
 * while inflating, so a small compressed message cannot balloon past
 * `maxPayload`.
 */
import zlib from 'node:zlib';
import type { ExtensionNegotiator } from './extensions.js';

export const PERMESSAGE_DEFLATE = 'permessage-deflate';

/** What a server or client is willing to do; every field optional. */
export interface PerMessageDeflateOptions {
  /** Messages shorter than this many bytes are sent uncompressed (default 1024). */
  threshold?: number;
  /**
   * zlib compression level, 0-9 (default 3). On 16 KiB JSON messages level 3
   * costs about 40% of the CPU of zlib's default 6 for about 10% more bytes:
   * on a real-time connection the event loop is the scarcer resource.
   */
  level?: number;
  /** zlib memLevel, 1-9 (default 7): memory for the compressor's state (192 KiB with a 15-bit window; 8 takes 256 KiB). */
  memLevel?: number;
  /** Ask that the server resets its compression context after every message. */
  serverNoContextTakeover?: boolean;
  /** Ask that the client resets its compression context after every message. */
  clientNoContextTakeover?: boolean;
  /** Largest LZ77 window, as bits (8-15), the server may compress with. */
  serverMaxWindowBits?: number;
  /** Largest LZ77 window, as bits (8-15), the client may compress with. */
  clientMaxWindowBits?: number;
}

/** The parameters both sides agreed on (RFC 7692 §7.1). */
export interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** 8-15; 15 when not negotiated. */
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

type Params = Record<string, string | true>;

const DEFAULT_THRESHOLD = 1024;
/**
 * Compression defaults: the tuning `ws`'s own documentation suggests for
 * production (its example sets level 3 and memLevel 7 over zlib's 6 and 8).
 */
const DEFAULT_LEVEL = 3;
const DEFAULT_MEM_LEVEL = 7;

/**
 * zlib cannot compress raw deflate with an 8-bit window (it silently uses 9,
 * whose back-references an 8-bit inflater rejects). A sender held to 8 bits
 * compresses with Huffman coding only: no back-references at all, so any
 * window inflates it (less compression, always valid).
 */
const MIN_ZLIB_WINDOW_BITS = 9;

/**
 * The settings a `perMessageDeflate` option asks for, checked (TypeError or
 * RangeError for nonsense); null when compression is off.
 */
export function resolveDeflateOptions(option: boolean | PerMessageDeflateOptions | undefined): PerMessageDeflateOptions | null {
  if (option === undefined || option === false) return null;
  if (option === true) return {};
  if (typeof option !== 'object' || option === null) throw new TypeError('perMessageDeflate must be a boolean or an options object');
  checkDeflateOptions(option);
  return { ...option };
}

function checkDeflateOptions(o: PerMessageDeflateOptions): void {
  const bits = (name: string, v: number | undefined): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < 8 || v > 15)) {
      throw new RangeError(`perMessageDeflate.${name} must be an integer from 8 to 15`);
    }
  };
  bits('serverMaxWindowBits', o.serverMaxWindowBits);
  bits('clientMaxWindowBits', o.clientMaxWindowBits);
  if (o.threshold !== undefined && (!Number.isFinite(o.threshold) || o.threshold < 0)) {
    throw new RangeError('perMessageDeflate.threshold must be a number >= 0');
  }
  if (o.level !== undefined && (!Number.isInteger(o.level) || o.level < 0 || o.level > 9)) {
    throw new RangeError('perMessageDeflate.level must be an integer from 0 to 9');
  }
  if (o.memLevel !== undefined && (!Number.isInteger(o.memLevel) || o.memLevel < 1 || o.memLevel > 9)) {
    throw new RangeError('perMessageDeflate.memLevel must be an integer from 1 to 9');
  }
}

/** A window-bits parameter value: "8".."15" as a number, or NaN. */
function windowBits(v: string | true | undefined): number {
  if (typeof v !== 'string' || !/^(8|9|1[0-5])$/.test(v)) return NaN;
  return Number(v);
}

/**
 * The server's choice among a client's offers (RFC 7692 §7.1): the first
 * offer it can accept, as the response parameters and the agreed parameters,
 * or null to decline them all.
 */
export function acceptDeflateOffer(offers: readonly Params[], options: PerMessageDeflateOptions): { response: Params; params: DeflateParams } | null {
  for (const offer of offers) {
    const params: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
    let clientWindowOffered = false;
    let clientWindowLimit = 15;
    let serverWindowRequested = 15;
    let valid = true;
    for (const [name, value] of Object.entries(offer)) {
      switch (name) {
        case 'server_no_context_takeover':
        case 'client_no_context_takeover':
          // §7.1.1: these take no value.
          if (value !== true) valid = false;
          else if (name === 'server_no_context_takeover') params.serverNoContextTakeover = true;
          else params.clientNoContextTakeover = true;
          break;
        case 'server_max_window_bits':
          // §7.1.2.1: a value is required.
          serverWindowRequested = windowBits(value);
          if (Number.isNaN(serverWindowRequested)) valid = false;
          break;
        case 'client_max_window_bits':
          // §7.1.2.2: the value is optional ("the client supports it").
          clientWindowOffered = true;
          if (value !== true) {
            clientWindowLimit = windowBits(value);
            if (Number.isNaN(clientWindowLimit)) valid = false;
          }
          break;
        default:
          // §7.1: an unknown parameter declines this offer.
          valid = false;
      }
    }
    if (!valid) continue;
    // Our compressor's window: at most what the client asked for and what we were told.
    const serverBits = Math.min(serverWindowRequested, options.serverMaxWindowBits ?? 15);
    params.serverMaxWindowBits = serverBits;
    if (options.serverNoContextTakeover === true) params.serverNoContextTakeover = true;
    if (options.clientNoContextTakeover === true) params.clientNoContextTakeover = true;
    const response: Params = {};
    if (params.serverNoContextTakeover) response.server_no_context_takeover = true;
    if (params.clientNoContextTakeover) response.client_no_context_takeover = true;
    if (serverBits < 15 || 'server_max_window_bits' in offer) response.server_max_window_bits = String(serverBits);
    if (clientWindowOffered) {
      // §7.1.2.2: only when offered; never above the client's own limit.
      const clientBits = Math.min(clientWindowLimit, options.clientMaxWindowBits ?? 15);
      params.clientMaxWindowBits = clientBits;
      if (clientBits < 15 || clientWindowLimit < 15) response.client_max_window_bits = String(clientBits);
    }
    return { response, params };
  }
  return null;
}

/** The server-side negotiator, for `WebSocketServer`'s extensions. */
export function deflateNegotiator(options: PerMessageDeflateOptions): ExtensionNegotiator {
  return {
    name: PERMESSAGE_DEFLATE,
    negotiate: (offers) => (SYNC_DEFLATE ? (acceptDeflateOffer(offers, options)?.response ?? null) : null),
  };
}

/** Reads back the agreed parameters from a response we (the server) built. */
export function deflateParamsOf(response: Params): DeflateParams {
  return {
    serverNoContextTakeover: response.server_no_context_takeover === true,
    clientNoContextTakeover: response.client_no_context_takeover === true,
    serverMaxWindowBits: typeof response.server_max_window_bits === 'string' ? Number(response.server_max_window_bits) : 15,
    clientMaxWindowBits: typeof response.client_max_window_bits === 'string' ? Number(response.client_max_window_bits) : 15,
  };
}

/** The client's offer (RFC 7692 §7.1), as extension parameters. */
export function deflateOffer(options: PerMessageDeflateOptions): Params {
  const offer: Params = {};
  if (options.serverNoContextTakeover === true) offer.server_no_context_takeover = true;
  if (options.clientNoContextTakeover === true) offer.client_no_context_takeover = true;
  if (options.serverMaxWindowBits !== undefined) offer.server_max_window_bits = String(options.serverMaxWindowBits);
  // Always say we can limit our window, as browsers do, so a server may ask it.
  offer.client_max_window_bits = options.clientMaxWindowBits !== undefined ? String(options.clientMaxWindowBits) : true;
  return offer;
}

/**
 * Checks a server's response to our offer (RFC 7692 §7.1, the client side):
 * the agreed parameters, or an Error for a response the client must refuse
 * (it then fails the connection).
 */
export function checkDeflateResponse(response: Params, options: PerMessageDeflateOptions): DeflateParams | Error {
  const params: DeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: options.clientNoContextTakeover === true,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: options.clientMaxWindowBits ?? 15,
  };
  for (const [name, value] of Object.entries(response)) {
    switch (name) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (value !== true) return new Error(`permessage-deflate: ${name} takes no value`);
        if (name === 'server_no_context_takeover') params.serverNoContextTakeover = true;
        else params.clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits': {
        const bits = windowBits(value);
        if (Number.isNaN(bits)) return new Error(`permessage-deflate: invalid server_max_window_bits "${String(value)}"`);
        if (options.serverMaxWindowBits !== undefined && bits > options.serverMaxWindowBits) {
          return new Error(`permessage-deflate: server_max_window_bits=${bits} is above the ${options.serverMaxWindowBits} offered`);
        }
        params.serverMaxWindowBits = bits;
        break;
      }
      case 'client_max_window_bits': {
        const bits = windowBits(value);
        if (Number.isNaN(bits)) return new Error(`permessage-deflate: invalid client_max_window_bits "${String(value)}"`);
        if (bits > (options.clientMaxWindowBits ?? 15)) return new Error(`permessage-deflate: client_max_window_bits=${bits} is above the offer`);
        params.clientMaxWindowBits = bits;
        break;
      }
      default:
        return new Error(`permessage-deflate: unknown parameter "${name}" in the response`);
    }
  }
  if (options.serverNoContextTakeover === true && !params.serverNoContextTakeover) {
    return new Error('permessage-deflate: the server did not accept server_no_context_takeover');
  }
  return params;
}

/** The trailing bytes of a sync flush, removed on the wire (RFC 7692 §7.2.1). */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * The parts of a `node:zlib` stream driven here: its native handle's
 * synchronous step and the two counters it reports through. These are what
 * Node's own `zlib.*Sync` functions use; they are not public, so their
 * presence is checked once (`SYNC_DEFLATE`) and without them the extension
 * is simply never negotiated.
 */
interface ZlibInternals {
  _handle: { writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void } | null;
  _writeState: Uint32Array;
  destroyed: boolean;
  errored: Error | null;
  reset(): void;
  close(): void;
  on(event: 'error', listener: () => void): unknown;
}

/** Whether this Node lets zlib run synchronously on a persistent stream. */
export const SYNC_DEFLATE: boolean = (() => {
  try {
    const probe = zlib.createDeflateRaw() as unknown as ZlibInternals;
    const ok = typeof probe._handle?.writeSync === 'function' && probe._writeState instanceof Uint32Array;
    probe.close();
    return ok;
  } catch {
    return false;
  }
})();

/**
 * The output of the run in progress (every run is synchronous, so one set
 * serves all streams; each stream's own output buffer is left at zlib's
 * minimum, Z_MIN_CHUNK, since it is never used): zlib writes into `scratch`
 * from `outLen` on; a full
 * scratch is copied out to `chunks`. A run that fits the scratch costs one
 * copy at the end, or none when its caller consumes it at once.
 */
const scratch = Buffer.allocUnsafe(64 * 1024);
let outLen = 0;
let chunks: Buffer[] = [];
let total = 0;
/** Input bytes the last `feed` left unread: the deflate stream ended (a block with BFINAL set) before them. */
let unread = 0;

/** `input` itself, or a copy when it is a view of the scratch (a borrowed result fed back in). */
function unborrowed(input: Uint8Array): Uint8Array {
  return input.buffer === scratch.buffer ? Uint8Array.prototype.slice.call(input) : input;
}

function begin(): void {
  outLen = 0;
  total = 0;
  if (chunks.length > 0) chunks = [];
}

/**
 * Feeds `input` to `stream` with `flush`. Output beyond `limit` bytes for
 * the run stops it with InflateError(tooBig); a zlib error with
 * InflateError(false), after which the stream is closed.
 */
function feed(stream: ZlibInternals, input: Uint8Array, flush: number, limit: number): void {
  const handle = stream._handle;
  if (handle === null) throw new InflateError(false, 'zlib stream is closed');
  const state = stream._writeState;
  let inOff = 0;
  let inLen = input.length;
  for (;;) {
    if (outLen === scratch.length) {
      chunks.push(Buffer.from(scratch));
      outLen = 0;
    }
    const room = scratch.length - outLen;
    handle.writeSync(flush, input, inOff, inLen, scratch, outLen, room);
    if (stream.destroyed) throw new InflateError(false, stream.errored?.message ?? 'zlib failed');
    const availOut = state[0]!;
    const availIn = state[1]!;
    outLen += room - availOut;
    total += room - availOut;
    if (total > limit) throw new InflateError(true, `inflated message exceeds maxPayload of ${limit} bytes`);
    inOff += inLen - availIn;
    inLen = availIn;
    // zlib is done with this input once it stops filling the whole output.
    if (availOut !== 0) break;
  }
  unread = inLen;
}

/**
 * The run's output: `borrow` returns a view of the scratch when it fits
 * (valid until the next run), else the output is copied into a buffer of its own.
 */
function finish(borrow: boolean): Buffer {
  const last = scratch.subarray(0, outLen);
  if (chunks.length === 0) return borrow ? last : Buffer.from(last);
  chunks.push(Buffer.from(last));
  const out = Buffer.concat(chunks, total);
  chunks = [];
  return out;
}

/** Why inflating failed: 1009 for too big, 1007 for data that is not deflate. */
export class InflateError extends Error {
  constructor(
    readonly tooBig: boolean,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Compressors for senders that reset after every message (no context
 * takeover), shared by every connection with the same settings: a message is
 * compressed whole and synchronously, so one stream serves them all, and a
 * server with many connections holds one compressor instead of one each.
 */
const sharedCompressors = new Map<string, ZlibInternals>();

/**
 * One connection's compressor and decompressor. Each zlib stream is created
 * on first use (a connection that never sends a large message never pays for
 * a compressor) and reset after each message when its side agreed to no
 * context takeover.
 */
export class PerMessageDeflate {
  readonly threshold: number;
  private readonly maxPayload: number;
  private readonly compressOptions: zlib.ZlibOptions;
  private readonly resetCompressor: boolean;
  private readonly resetDecompressor: boolean;
  private deflater: ZlibInternals | null = null;
  private inflater: ZlibInternals | null = null;

  /**
   * `maxPayload` bounds every inflated message (the compressed size is
   * bounded by the parser).
   */
  constructor(role: 'server' | 'client', params: DeflateParams, options: PerMessageDeflateOptions, maxPayload: number) {
    this.threshold = options.threshold ?? DEFAULT_THRESHOLD;
    this.maxPayload = maxPayload;
    const server = role === 'server';
    const bits = server ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    this.compressOptions = {
      chunkSize: zlib.constants.Z_MIN_CHUNK,
      windowBits: Math.max(bits, MIN_ZLIB_WINDOW_BITS),
      level: options.level ?? DEFAULT_LEVEL,
      memLevel: options.memLevel ?? DEFAULT_MEM_LEVEL,
      strategy: bits < MIN_ZLIB_WINDOW_BITS ? zlib.constants.Z_HUFFMAN_ONLY : zlib.constants.Z_DEFAULT_STRATEGY,
    };
    this.resetCompressor = server ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    this.resetDecompressor = server ? params.clientNoContextTakeover : params.serverNoContextTakeover;
  }

  /**
   * The compressed payload of one whole message (the sync-flush tail
   * removed, RFC 7692 §7.2.1). It may be a view of memory the next
   * compress or decompress call overwrites: the caller copies it, or hands
   * it on to something that does, before making another.
   */
  compress(data: Uint8Array): Buffer {
    let d = this.deflater;
    if (d === null || d.destroyed) {
      if (this.resetCompressor) {
        const o = this.compressOptions;
        const key = `${o.windowBits}/${o.level}/${o.memLevel}/${o.strategy}`;
        d = sharedCompressors.get(key) ?? null;
        if (d === null || d.destroyed) sharedCompressors.set(key, (d = quiet(zlib.createDeflateRaw(this.compressOptions))));
      } else {
        d = quiet(zlib.createDeflateRaw(this.compressOptions));
      }
      this.deflater = d;
    }
    begin();
    feed(d, unborrowed(data), zlib.constants.Z_SYNC_FLUSH, Infinity);
    const out = finish(true);
    if (this.resetCompressor) d.reset();
    // Nothing new since the last flush (an empty message) gives no output at
    // all; send the one-byte empty block of RFC 7692 §7.2.3.6 instead.
    if (out.length < TAIL.length) return Buffer.from([0x00]);
    return out.subarray(0, out.length - TAIL.length);
  }

  /**
   * Inflates one whole compressed message; more than `maxPayload` bytes out
   * stops it. Throws InflateError (and the stream is unusable afterwards:
   * the connection fails).
   */
  decompress(data: Buffer): Buffer {
    // An empty payload holds no block at all (the tail alone would be a cut
    // stored-block header at a byte boundary): it is an empty message.
    if (data.length === 0) return Buffer.alloc(0);
    // Inflating with the largest window accepts any window the peer used.
    const inf = (this.inflater ??= quiet(zlib.createInflateRaw({ windowBits: 15, chunkSize: zlib.constants.Z_MIN_CHUNK })));
    begin();
    feed(inf, unborrowed(data), zlib.constants.Z_NO_FLUSH, this.maxPayload);
    // A sender may end a message with a final block (RFC 7692 §7.2.3.4): its
    // stream is then over (input is left unread), and the next message starts
    // a new one.
    if (unread === 0) feed(inf, TAIL, zlib.constants.Z_SYNC_FLUSH, this.maxPayload);
    const out = finish(false);
    if (this.resetDecompressor || unread > 0) inf.reset();
    return out;
  }

  /** Frees the connection's own zlib streams (the connection is gone). */
  close(): void {
    if (!this.resetCompressor) this.deflater?.close();
    this.inflater?.close();
    this.deflater = null;
    this.inflater = null;
  }
}

function ignore(): void {}

/**
 * A zlib stream for synchronous use. Its failures are thrown by the call that
 * hit them; the listener only keeps a late 'error' event from becoming an
 * uncaught exception.
 */
function quiet(stream: zlib.DeflateRaw | zlib.InflateRaw): ZlibInternals {
  stream.on('error', ignore);
  return stream as unknown as ZlibInternals;
}
