/**
 * Moving a connection's pending frames onto its socket: one write for the
 * common single-buffer case, a corked burst (one writev) otherwise.
 */
import type { Socket } from 'node:net';
import type { FrameWriter } from '../protocol/writer.js';

/** Writes everything pending in `writer` to `socket`. Returns false when the socket's buffer is over its high-water mark. */
export function flushWriter(writer: FrameWriter, socket: Socket): boolean {
  const out = writer.take();
  if (out === null) return true;
  if (!Array.isArray(out)) return socket.write(out);
  socket.cork();
  let ok = true;
  for (let i = 0; i < out.length; i++) ok = socket.write(out[i]!);
  socket.uncork();
  return ok;
}
