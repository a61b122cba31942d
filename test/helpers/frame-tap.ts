/**
 * Frames seen on a socket beside the library using it: what arrives
 * (`tapReads`, ahead of the library's own reader, copied because `ws` unmasks
 * received payloads in place) and what leaves (`tapWrites`, for libraries
 * that frame and write by themselves).
 */
import type net from 'node:net';
import { parseFrame, type RawFrame } from './raw-client.js';

/** Parses a byte stream into `frames` as it comes, piece by piece. */
function collector(frames: RawFrame[]): (chunk: Uint8Array) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (let f = parseFrame(buf); f !== undefined; f = parseFrame(buf)) {
      frames.push(f.frame);
      buf = buf.subarray(f.size);
    }
  };
}

/** Frames read off `socket`, as they pass. */
export function tapReads(socket: net.Socket): RawFrame[] {
  const frames: RawFrame[] = [];
  socket.prependListener('data', collector(frames));
  return frames;
}

/** Frames written to `socket`, as they leave. */
export function tapWrites(socket: net.Socket): RawFrame[] {
  const frames: RawFrame[] = [];
  const collect = collector(frames);
  const write = socket.write.bind(socket) as (chunk: Uint8Array, ...rest: unknown[]) => boolean;
  (socket as unknown as { write: typeof write }).write = (chunk, ...rest) => {
    collect(chunk);
    return write(chunk, ...rest);
  };
  return frames;
}
