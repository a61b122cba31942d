/**
 * The read side of a connection's socket.
 *
 * A plain TCP socket reads into one buffer shared by every connection
 * (Node's documented `onread` user-buffer mode, switched on for a socket that
 * already exists): a read allocates nothing, lands in memory that stays in
 * cache, and skips the stream machinery. Node calls back synchronously after
 * each read and before the next, so one buffer serves every socket as long
 * as nothing keeps a view of it: chunks are handed on as `borrowed`, and the
 * parser copies each payload out of them (or, for a compressed message,
 * inflates it straight from there).
 *
 * Any other stream (TLS, a framework's Duplex), or a Node whose sockets lack
 * the hook, reads through 'data' events; the receiver sees the same bytes in
 * the same order either way.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { simdReadBuffer } from '../protocol/mask.js';

export interface ChunkReceiver {
  /**
   * Bytes from the peer, in order. A `borrowed` chunk is overwritten by the
   * next read: nothing may keep a view of it after the call.
   */
  receiveChunk(chunk: Buffer, borrowed: boolean): void;
}

/** Size of the shared read buffer (when it cannot live in WebAssembly memory): the most one read takes. */
const READ_BUFFER_SIZE = 256 * 1024;

/**
 * The one slot a stream carries for this library: its receiver. A `Link`
 * sets it to itself when it takes the stream (and finds itself there from
 * its stream listeners), so reading adds no second property to the socket.
 */
export const kReceiver = Symbol('fullduplex.receiver');
type ReadingStream = Duplex & { [kReceiver]?: ChunkReceiver };

interface UserBufferHooks {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

/**
 * The symbols under which a `net.Socket` keeps its `onread` options, found on
 * a socket built with them; null when this Node keeps them elsewhere.
 */
const hooks: UserBufferHooks | null = (() => {
  try {
    // (@types/node 20 lists `onread` for connect() only; Node takes it here too.)
    const options = { onread: { buffer: Buffer.alloc(1), callback: () => true } };
    const probe = new Socket(options as ConstructorParameters<typeof Socket>[0]);
    const find = (name: string): symbol | undefined =>
      Object.getOwnPropertySymbols(probe).find((s) => s.description === name);
    const buffer = find('kBuffer');
    const callback = find('kBufferCb');
    const generator = find('kBufferGen');
    probe.destroy();
    if (buffer === undefined || callback === undefined || generator === undefined) return null;
    return { buffer, callback, generator };
  } catch {
    return null;
  }
})();

let shared: Buffer | null = null;

/** Whether sockets can read into the shared buffer (false: 'data' events everywhere). */
export const SHARED_READ_BUFFER = hooks !== null && process.env.FULLDUPLEX_READ_EVENTS !== '1';

/**
 * Starts delivering `socket`'s bytes to `receiver`, first any the stream
 * already buffered, then every read (none until the stream is resumed, when
 * `paused`). Call once the bytes before (the handshake's `head`) were handed
 * over. A socket already reading (its request head was read this way) is
 * handed on: the next read goes to `receiver`.
 */
export function startReading(socket: Duplex, receiver: ChunkReceiver, paused = false): void {
  const s = socket as ReadingStream;
  s[kReceiver] = receiver;
  // Bytes the stream read before we took over go first.
  if (s.readableLength > 0) {
    let chunk: Buffer | null;
    while (!s.destroyed && (chunk = s.read() as Buffer | null) !== null) receiver.receiveChunk(chunk, false);
  }
  if (s.destroyed) return;
  if (s.listenerCount('data', onData) === 0) {
    useSharedBuffer(s);
    // With the shared buffer Node never emits 'data'; listening anyway means a
    // Node that kept the slots but stopped honouring them still delivers every
    // byte (as owned chunks) instead of dropping it.
    s.on('data', onData);
  }
  // Paused (read-side flow control from the first flush): stopped for real,
  // also in the shared-buffer mode, where only pause() stops the handle; not
  // resumed first, as a resume takes effect a tick later.
  if (paused) s.pause();
  else s.resume();
}

/**
 * Gives `socket`'s reading back to its 'data' events, for another reader that
 * takes it over (node:http): from the shared buffer, each read is pushed into
 * the stream as a copy, as Node would have delivered it.
 */
export function stopReading(socket: Duplex): void {
  const s = socket as ReadingStream;
  s.removeListener('data', onData);
  s[kReceiver] = readsIntoSharedBuffer(s) ? { receiveChunk: (chunk: Buffer) => void s.push(Buffer.from(chunk)) } : undefined;
}

/** Whether `socket` reads into the shared buffer (for tests). @internal */
export function readsIntoSharedBuffer(socket: Duplex): boolean {
  return hooks !== null && shared !== null && (socket as unknown as Record<symbol, unknown>)[hooks.buffer] === shared;
}

/** Switches a plain TCP (or pipe) socket to reading into the shared buffer; leaves any other stream as it is. */
function useSharedBuffer(socket: ReadingStream): void {
  if (!SHARED_READ_BUFFER || hooks === null || !(socket instanceof Socket)) return;
  if ((socket as Socket & { encrypted?: boolean }).encrypted === true) return;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buf: Uint8Array) => void } | null })._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function') return;
  // In WebAssembly memory where SIMD unmasking is available: payloads are
  // then unmasked where they were read and copied out once.
  const buf = (shared ??= simdReadBuffer() ?? Buffer.allocUnsafeSlow(READ_BUFFER_SIZE));
  const slots = socket as unknown as Record<symbol, unknown>;
  slots[hooks.buffer] = buf;
  slots[hooks.callback] = onRead;
  slots[hooks.generator] = null;
  handle.useUserBuffer(buf);
}

function onRead(this: ReadingStream, nread: number, buf: Buffer): boolean {
  this[kReceiver]?.receiveChunk(buf.subarray(0, nread), true);
  // False stops the handle. A paused socket in this mode reads nothing into
  // its stream buffer, so the stream keeps asking for more (read(0) from
  // Node's read-ahead restarts the handle): each such read stops it again.
  return this.readableFlowing !== false;
}

function onData(this: ReadingStream, chunk: Buffer): void {
  this[kReceiver]?.receiveChunk(chunk, false);
}
