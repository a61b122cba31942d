/**
 * Driving `node:zlib` synchronously on persistent streams, for the
 * permessage-deflate codec (deflate.ts): the stepping loop, the one output
 * scratch every run shares, the streams shared by all connections, and the
 * packing of an idle connection's receive window.
 *
 * Node's own `zlib.*Sync` functions step a stream's native handle with
 * `writeSync`; `_processChunk` closes the stream after one call, so the
 * same internals are used here on streams that live across messages.
 */
import zlib from 'node:zlib';

/** The trailing bytes of a sync flush, removed on the wire (RFC 7692 §7.2.1). */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * The parts of a `node:zlib` stream driven here: its native handle's
 * synchronous step and the two counters it reports through. These are what
 * Node's own `zlib.*Sync` functions use; they are not public, so their
 * presence is checked once (`SYNC_DEFLATE`) and without them the extension
 * is simply never negotiated.
 */
export interface ZlibInternals {
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

/** `input` itself, or a copy when it is a view of the scratch (a borrowed result fed back in). */
export function unborrowed(input: Uint8Array): Uint8Array {
  return input.buffer === scratch.buffer ? Uint8Array.prototype.slice.call(input) : input;
}

export function begin(): void {
  outLen = 0;
  total = 0;
  if (chunks.length > 0) chunks = [];
}

/**
 * Feeds `input` to `stream` with `flush`; returns how many input bytes were
 * left unread (the deflate stream ended, a block with BFINAL set, before
 * them). Output beyond `limit` bytes for the run stops it with
 * InflateError(tooBig); a zlib error with InflateError(false), after which
 * the stream is closed.
 */
export function feed(stream: ZlibInternals, input: Uint8Array, flush: number, limit: number): number {
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
  return inLen;
}

/**
 * The run's output: `borrow` returns a view of the scratch when it fits
 * (valid until the next run), else the output is copied into a buffer of its own.
 */
export function finish(borrow: boolean): Buffer {
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

export function sharedCompressor(o: zlib.ZlibOptions): ZlibInternals {
  const key = `${o.windowBits}/${o.level}/${o.memLevel}/${o.strategy}`;
  let d = sharedCompressors.get(key) ?? null;
  if (d === null || d.destroyed) sharedCompressors.set(key, (d = newCompressor(o)));
  return d;
}

let sharedInflater: ZlibInternals | null = null;

/**
 * The inflater for messages that need no earlier context (a peer without
 * context takeover, or the first message of a peer's stream): shared by
 * every connection, and reset after each use.
 */
export function sharedDecompressor(): ZlibInternals {
  if (sharedInflater === null || sharedInflater.destroyed) sharedInflater = newInflater();
  return sharedInflater;
}

/** A raw inflater with the largest window (it accepts any window a peer used), primed with `dictionary` if given. */
export function newInflater(dictionary?: Uint8Array): ZlibInternals {
  const options: zlib.ZlibOptions = { windowBits: 15, chunkSize: zlib.constants.Z_MIN_CHUNK };
  // zlib copies the dictionary into its window at once (inflateSetDictionary).
  if (dictionary !== undefined && dictionary.length > 0) options.dictionary = dictionary;
  return quiet(zlib.createInflateRaw(options));
}

/** A raw compressor, primed with `dictionary` (deflateSetDictionary) if given. */
export function newCompressor(options: zlib.ZlibOptions, dictionary?: Uint8Array): ZlibInternals {
  return quiet(zlib.createDeflateRaw(dictionary !== undefined && dictionary.length > 0 ? { ...options, dictionary } : options));
}

/** How a released receive window is packed while idle: fast, and a window of text shrinks several times. */
const PACK_OPTIONS: zlib.ZlibOptions = { chunkSize: zlib.constants.Z_MIN_CHUNK, windowBits: 15, level: 1, memLevel: 8 };
let packInflater: ZlibInternals | null = null;

/** `window` compressed into a buffer of its own, exactly sized (a sync-flushed raw deflate stream). */
export function packWindow(window: Uint8Array): Uint8Array {
  const d = sharedCompressor(PACK_OPTIONS);
  begin();
  feed(d, window, zlib.constants.Z_SYNC_FLUSH, Infinity);
  const packed = Uint8Array.prototype.slice.call(finish(true));
  d.reset();
  return packed;
}

/** The bytes `packWindow` packed (a view of the scratch: valid until the next zlib run). */
export function unpackWindow(packed: Uint8Array, size: number): Uint8Array {
  const inf = (packInflater ??= newInflater());
  begin();
  feed(inf, packed, zlib.constants.Z_SYNC_FLUSH, size);
  const window = finish(true);
  inf.reset();
  return window;
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
