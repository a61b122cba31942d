/**
 * permessage-deflate (RFC 7692): the per-connection codec.
 *
 * Compression is computation, not I/O, so it lives in the core: each message
 * is compressed or inflated whole and synchronously, by persistent
 * `node:zlib` streams stepped the way Node's own `zlib.*Sync` functions step
 * theirs. That keeps messages in order with no queue, keeps the sliding
 * window across messages (context takeover), and caps the inflated size
 * while inflating, so a small compressed message cannot balloon past
 * `maxPayload`. The parameters are negotiated in deflate-params.ts; the
 * zlib stepping is in zlib-sync.ts.
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
import { WindowHistory } from './deflate-window.js';
import {
  InflateError,
  SYNC_DEFLATE,
  TAIL,
  type ZlibInternals,
  begin,
  feed,
  finish,
  newCompressor,
  newInflater,
  packWindow,
  sharedCompressor,
  sharedDecompressor,
  unborrowed,
  unpackWindow,
} from './zlib-sync.js';

export { InflateError, SYNC_DEFLATE };

/**
 * Codecs holding memory of their own between messages (zlib streams, or a
 * window not yet packed), for `releaseIdleDeflateContexts`; `onLive` is told
 * when the first one appears (to start the idle sweep).
 */
const liveCodecs = new Set<PerMessageDeflate>();
let onLive: (() => void) | null = null;

/**
 * Sets the function called whenever a codec starts holding memory while none
 * did: the I/O layer starts its idle sweep then (the core has no timers).
 */
export function onDeflateContextsLive(hook: (() => void) | null): void {
  onLive = hook;
}

/**
 * The idle sweep: every codec that compressed or inflated nothing since the
 * previous call releases what it holds (`PerMessageDeflate.release`).
 * Called every T, it frees a connection's streams after T to 2T of silence.
 * Returns how many codecs still hold memory (0: the sweep may stop).
 */
export function releaseIdleDeflateContexts(): number {
  for (const codec of liveCodecs) codec.releaseIfIdle();
  return liveCodecs.size;
}

/** How many codecs hold memory of their own now (a diagnostic). */
export function liveDeflateContexts(): number {
  return liveCodecs.size;
}

/**
 * One connection's compressor and decompressor.
 *
 * A zlib stream with its window is most of a compressed connection's memory
 * (about 190 KB for a 15-bit compressor at memLevel 7, 40 KB for an
 * inflater), so a connection holds streams of its own only while it is
 * busy:
 * - a side without context takeover uses the streams every connection
 *   shares, reset after each message;
 * - with context takeover, the first message of a stream needs no context
 *   either (nothing came before it), so it goes through the shared streams
 *   too, and only its bytes are kept (the window); the second message gets
 *   a stream of its own, primed with them as its dictionary;
 * - after an idle interval (`release`) the streams are freed; what the RFC
 *   obliges us to keep (the peer's window) is kept packed.
 */
export class PerMessageDeflate {
  readonly threshold: number;
  private readonly maxPayload: number;
  private readonly compressOptions: zlib.ZlibOptions;
  private readonly resetCompressor: boolean;
  private readonly resetDecompressor: boolean;
  private deflater: ZlibInternals | null = null;
  private inflater: ZlibInternals | null = null;
  /** What we sent through the shared compressor while we have none of our own: the next one's dictionary. */
  private readonly sent: WindowHistory | null;
  /** The peer's window (null when it resets after every message). */
  private readonly received: WindowHistory | null;
  /** The peer's window while idle, packed (`packWindow`). */
  private packed: Uint8Array | null = null;
  /** Whether a message went through since the last idle sweep. */
  private used = false;
  private live = false;

  /**
   * `maxPayload` bounds every inflated message (the compressed size is
   * bounded by the parser).
   */
  constructor(role: 'server' | 'client', params: DeflateParams, options: PerMessageDeflateOptions, maxPayload: number) {
    this.threshold = options.threshold ?? DEFAULT_THRESHOLD;
    this.maxPayload = maxPayload;
    const server = role === 'server';
    const bits = server ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    const windowBits = Math.max(bits, MIN_ZLIB_WINDOW_BITS);
    this.compressOptions = {
      chunkSize: zlib.constants.Z_MIN_CHUNK,
      windowBits,
      level: options.level ?? DEFAULT_LEVEL,
      memLevel: options.memLevel ?? DEFAULT_MEM_LEVEL,
      strategy: bits < MIN_ZLIB_WINDOW_BITS ? zlib.constants.Z_HUFFMAN_ONLY : zlib.constants.Z_DEFAULT_STRATEGY,
    };
    this.resetCompressor = server ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    this.resetDecompressor = server ? params.clientNoContextTakeover : params.serverNoContextTakeover;
    this.sent = this.resetCompressor ? null : new WindowHistory(2 ** windowBits);
    const peerBits = server ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    this.received = this.resetDecompressor ? null : new WindowHistory(2 ** peerBits);
  }

  /**
   * The compressed payload of one whole message (the sync-flush tail
   * removed, RFC 7692 §7.2.1). It may be a view of memory the next
   * compress or decompress call overwrites: the caller copies it, or hands
   * it on to something that does, before making another.
   */
  compress(data: Uint8Array): Buffer {
    const sent = this.sent;
    let d = this.deflater;
    if (d === null && sent !== null && sent.length > 0) {
      // Context takeover (§7.1.1): this stream goes on from what went out
      // through the shared compressor, which the peer's window holds.
      d = this.deflater = newCompressor(this.compressOptions, sent.bytes());
      sent.clear();
    }
    const shared = d === null;
    if (d === null) d = sharedCompressor(this.compressOptions);
    this.touch();
    const input = unborrowed(data);
    begin();
    feed(d, input, zlib.constants.Z_SYNC_FLUSH, Infinity);
    const out = finish(true);
    if (shared) {
      d.reset();
      sent?.append(input);
    }
    // Nothing new since the last flush (an empty message) gives no output at
    // all; send the one-byte empty block of RFC 7692 §7.2.3.6 instead.
    if (out.length < TAIL.length) return Buffer.from([0x00]);
    return out.subarray(0, out.length - TAIL.length);
  }

  /**
   * Inflates one whole compressed message; more than `maxPayload` bytes out
   * stops it. Throws InflateError (and the connection's own stream is
   * unusable afterwards: the connection fails).
   */
  decompress(data: Buffer): Buffer {
    // An empty payload holds no block at all (the tail alone would be a cut
    // stored-block header at a byte boundary): it is an empty message.
    if (data.length === 0) return Buffer.alloc(0);
    const received = this.received;
    let inf = this.inflater;
    if (inf === null && received !== null && (this.packed !== null || received.length > 0)) {
      // The peer may refer back into its earlier messages: a stream of our
      // own with its window as the dictionary.
      if (this.packed !== null) {
        received.append(unpackWindow(this.packed, received.size));
        this.packed = null;
      }
      inf = this.inflater = newInflater(received.bytes());
    }
    const shared = inf === null;
    if (inf === null) inf = sharedDecompressor();
    this.touch();
    let out: Buffer;
    let unread: number;
    try {
      begin();
      unread = feed(inf, unborrowed(data), zlib.constants.Z_NO_FLUSH, this.maxPayload);
      // A sender may end a message with a final block (RFC 7692 §7.2.3.4):
      // its stream is then over (input is left unread), and the next message
      // starts a new one.
      if (unread === 0) feed(inf, TAIL, zlib.constants.Z_SYNC_FLUSH, this.maxPayload);
      out = finish(false);
    } finally {
      if (shared && !inf.destroyed) inf.reset();
    }
    if (unread > 0) {
      // A new stream with an empty window follows. Not a reset: Node's reset
      // of a raw inflater applies its preset dictionary again.
      if (!shared) inf.close();
      this.inflater = null;
      received?.clear();
    } else received?.append(out);
    return out;
  }

  /**
   * Frees the zlib streams (the next message makes them again), as far as
   * RFC 7692 allows:
   * - the compressor always: context takeover lets a sender refer to earlier
   *   messages but never obliges it to (§7.1.1.1, §7.1.1.2); the next
   *   message starts from an empty window, which the peer's inflater,
   *   keeping its own, decodes like any other block;
   * - the inflater: when the peer resets after every message there is
   *   nothing to keep; otherwise the peer may refer back into its earlier
   *   messages, so their last 2^window_bits bytes (an inflater's whole state
   *   between messages: deflate-window.ts) are kept, packed, and become the
   *   next inflater's dictionary.
   * Like compress and decompress, it overwrites what compress() lent.
   */
  release(): void {
    this.deflater?.close();
    this.deflater = null;
    this.sent?.clear();
    this.inflater?.close();
    this.inflater = null;
    const received = this.received;
    if (received !== null && received.length > 0) {
      this.packed = packWindow(received.bytes());
      received.clear();
    }
    this.unlist();
  }

  /** For the idle sweep: `release` if no message went through since the last call. */
  releaseIfIdle(): void {
    if (this.used) this.used = false;
    else this.release();
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

  /** Whether this codec holds zlib streams of its own now (a diagnostic). */
  get holdsStreams(): boolean {
    return this.deflater !== null || this.inflater !== null;
  }

  /** Frees everything (the connection is gone). */
  close(): void {
    this.deflater?.close();
    this.inflater?.close();
    this.deflater = null;
    this.inflater = null;
    this.packed = null;
    this.sent?.clear();
    this.received?.clear();
    this.unlist();
  }

  private touch(): void {
    this.used = true;
    if (this.live) return;
    this.live = true;
    liveCodecs.add(this);
    if (liveCodecs.size === 1) onLive?.();
  }

  private unlist(): void {
    this.used = false;
    if (!this.live) return;
    this.live = false;
    liveCodecs.delete(this);
  }
}
