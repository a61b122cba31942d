/**
 * Moving a connection's pending frames onto its socket: one write for the
 * common single-buffer case, a corked burst (one writev) otherwise.
 */
import type { Duplex } from 'node:stream';

/**
 * Writes `out` (a connection's taken output) to `socket`; `written`, if
 * given, is called once the last of it has left the socket's buffer. Returns
 * false when the socket's buffer is over its high-water mark.
 */
export function flushOutput(out: Buffer | Buffer[] | null, socket: Duplex, written?: (err?: Error | null) => void): boolean {
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

/** Something with frames to write once per tick. */
export interface Flushable {
  flush(): void;
}

// Connections (server and client alike) with frames queued outside a receive
// pass: one microtask per tick flushes each of them once.
let dirty: Flushable[] = [];
let flushScheduled = false;

function flushQueued(): void {
  const list = dirty;
  dirty = [];
  flushScheduled = false;
  for (let i = 0; i < list.length; i++) list[i]!.flush();
}

/** Flushes `target` later this tick. The caller keeps its own "already queued" flag. */
export function queueFlush(target: Flushable): void {
  dirty.push(target);
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flushQueued);
  }
}
