/**
 * Moving a connection's pending frames onto its socket: one write for the
 * common single-buffer case, a corked burst (one writev) otherwise.
 */
import type { Socket } from 'node:net';
import type { FrameWriter } from '../protocol/writer.js';

/**
 * Writes everything pending in `writer` to `socket`; `written`, if given, is
 * called once the last of it has left the socket's buffer. Returns false when
 * the socket's buffer is over its high-water mark.
 */
export function flushWriter(writer: FrameWriter, socket: Socket, written?: (err?: Error | null) => void): boolean {
  const out = writer.take();
  if (out === null) return true;
  if (!Array.isArray(out)) return socket.write(out, written);
  socket.cork();
  let ok = true;
  const last = out.length - 1;
  for (let i = 0; i < last; i++) ok = socket.write(out[i]!);
  ok = socket.write(out[last]!, written);
  socket.uncork();
  return ok;
}
