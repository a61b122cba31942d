// What every bench server shares: port and mode from argv/env, the READY line,
// and a control channel on stdin/stdout that is off the network path, so it
// costs every server the same (nothing) during a measurement:
//   mem  -> runs gc() twice (needs --expose-gc) and prints `MEM {json}`
//   cpu  -> prints `CPU {json}` (process.cpuUsage, µs)
//   stdin closed -> graceful close, then exit
// The servers differ only in the WebSocket library they wrap.
import { createInterface } from 'node:readline';
import { parsePublishCommand, broadcastPayload } from '../lib/payload.mjs';

export const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
export const host = '127.0.0.1';
/** `echo` (default) or `broadcast`. */
export const mode = process.env.BENCH_MODE ?? 'echo';
/**
 * BENCH_DEFLATE=1 (the echo-deflate scenario only): enable permessage-deflate,
 * context takeover both ways, 15-bit windows, every message compressed
 * (threshold 0), each library's default compression level otherwise.
 */
export const deflate = process.env.BENCH_DEFLATE === '1';
export const MAX_PAYLOAD = 64 * 1024 * 1024;

const payloads = new Map();
/**
 * Handles a broadcast trigger (`publish:<n>:<size>` as a text message): calls
 * `publish(payload)` n times. The same parsing runs in every server.
 */
export function onTrigger(text, publish) {
  const cmd = parsePublishCommand(text);
  if (cmd === null) return;
  let payload = payloads.get(cmd.size);
  if (payload === undefined) payloads.set(cmd.size, (payload = broadcastPayload(cmd.size)));
  for (let i = 0; i < cmd.count; i++) publish(payload);
}

/** Call once listening; `close` is an async graceful shutdown. */
export function ready(actualPort, close) {
  process.stdout.write(`READY ${actualPort}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    try {
      await close();
    } finally {
      process.exit(0);
    }
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'mem') {
      if (typeof globalThis.gc === 'function') {
        globalThis.gc();
        globalThis.gc();
      }
      // Let finalizers and freed native buffers settle before reading RSS.
      setTimeout(() => {
        const m = process.memoryUsage();
        process.stdout.write(`MEM ${JSON.stringify({ ...m, gc: typeof globalThis.gc === 'function' })}\n`);
      }, 50);
    } else if (cmd === 'cpu') {
      process.stdout.write(`CPU ${JSON.stringify(process.cpuUsage())}\n`);
    }
  });
  rl.on('close', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** A startup failure must be loud: the runner shows this and marks the row FAILED. */
export function fail(err) {
  process.stderr.write(`server failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
}

/** For a `ws` WebSocketServer: READY once it listens, a startup error is fatal, closing terminates every client. */
export function readyWhenListening(wss) {
  wss.on('error', fail);
  wss.on('listening', () => {
    ready(wss.address().port, () => new Promise((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => resolve());
    }));
  });
}
