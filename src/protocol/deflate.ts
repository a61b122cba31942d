/**
 * permessage-deflate (RFC 7692): the per-connection codec.
 *
 * Compression is computation, not I/O, so it lives in the core: each message
 * is compressed or inflated whole and synchronously, by persistent
 * `node:zlib` streams stepped the way Node's own `zlib.*Sync` functions step
 * theirs. That keeps messages in order with no queue, keeps the sliding
 * window across messages (context takeover), and caps the inflated size
 * while inflating, so a small compressed message cannot balloon past
 * `maxPayload`. The parameters are negotiated in deflate-params.ts.
 */
import zlib from 'node:zlib';
import {
  DEFAULT_LEVEL,
  DEFAULT_MEM_LEVEL,
  DEFAULT_THRESHOLD,
  type DeflateParams,
  MIN_ZLIB_WINDOW_BITS,
  type PerMessageDeflateOptions,
} from './deflate-params.js';

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
        const key = this.sharedCompressionKey ?? '';
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

  /**
   * For a sender that resets its context after every message (no context
   * takeover, RFC 7692 §7.1.1): a key naming its compression settings, so a
   * message compressed once serves every connection with the same key (a
   * topic message). Null when this sender keeps its context: its output
   * depends on what it sent before.
   */
  get sharedCompressionKey(): string | null {
    if (!this.resetCompressor) return null;
    const o = this.compressOptions;
    return `${o.windowBits}/${o.level}/${o.memLevel}/${o.strategy}`;
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
