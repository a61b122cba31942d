/**
 * Scaffolding for the denial-of-service probes of the server (server-dos*.test.ts):
 * an echo server in each of the three ways a server meets its sockets (its own
 * port with `listen()`, `attach()`ed to a node:http server, and `handleUpgrade`
 * called from a framework's 'upgrade' listener), that records what the server
 * tells its handler; a raw client that floods the server until the server
 * stops reading; a check that another client is still served; and the
 * process's peak memory.
 *
 * Everything a test opens is registered and torn down by `t.after`, with
 * bounded waits.
 */
import assert from 'node:assert/strict';
import { type Server as HttpServer, type ServerOptions, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocketServer, type ServerHandler, type ServerWebSocket, type WebSocketServerOptions } from '../../src/index.js';
import { clientFrame } from './frames.js';
import { LOOPBACK, RawPeer, WAIT_MS, delay, rawOpen, until, withTimeout, type RequestSpec } from './raw-client.js';

export type Mode = 'listen' | 'attach' | 'handleUpgrade';
export const MODES: readonly Mode[] = ['listen', 'attach', 'handleUpgrade'];

export const TEXT = 0x1;
export const BINARY = 0x2;
export const CONT = 0x0;
export const CLOSE = 0x8;
export const PING = 0x9;

/** `Sec-WebSocket-Extensions` offering permessage-deflate with its defaults (RFC 7692 §7). */
export const DEFLATE_OFFER: RequestSpec = { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } };

/** A close the server reported to its `close` handler. */
export interface Closed {
  ws: ServerWebSocket;
  code: number;
}

export interface DosServer {
  wss: WebSocketServer;
  port: number;
  /** The node:http server (attach and handleUpgrade), null for listen(). */
  http: HttpServer | null;
  /** Connections in the order they opened. */
  opened: ServerWebSocket[];
  closed: Closed[];
  /** Close codes of the protocol errors reported to the `error` handler. */
  errorCodes: number[];
  /** Messages handed to the `message` handler (and echoed). */
  messages: number;
  /** Pings handed to the `ping` handler. */
  pings: number;
  /** Opens a raw peer (handshake done, 101 checked), registered for teardown. */
  open(spec?: RequestSpec, options?: { allowHalfOpen?: boolean }): Promise<RawPeer>;
  /** A raw TCP connection with nothing sent yet, registered for teardown. */
  connect(options?: { allowHalfOpen?: boolean }): Promise<RawPeer>;
  /** Registers a socket made by the test for teardown. */
  own(socket: Socket | RawPeer): void;
  /** Waits for the `close` handler of `ws` and returns the code it saw. */
  closeOf(ws: ServerWebSocket, ms?: number): Promise<number>;
  /** The `n`-th connection to open (1-based), once it has. */
  nthOpen(n: number): Promise<ServerWebSocket>;
}

/**
 * An echo server (every message sent back as it came, ignoring
 * backpressure, as a naive application does) in `mode`, with `extra` hooks
 * called after the recording ones.
 */
export async function dosServer(t: TestContext, mode: Mode, options: WebSocketServerOptions = {}, extra: ServerHandler = {}, httpOptions: ServerOptions = {}): Promise<DosServer> {
  const peers: (Socket | RawPeer)[] = [];
  const s: Omit<DosServer, 'wss' | 'port' | 'http'> = {
    opened: [],
    closed: [],
    errorCodes: [],
    messages: 0,
    pings: 0,
    async open(spec = {}, peerOptions = {}) {
      const { peer } = await rawOpen(port, spec, peerOptions);
      peers.push(peer);
      return peer;
    },
    async connect(peerOptions = {}) {
      const peer = await RawPeer.connect(port, peerOptions);
      peers.push(peer);
      return peer;
    },
    own(socket) {
      peers.push(socket);
    },
    async closeOf(ws, ms = WAIT_MS) {
      await until('the close handler', () => s.closed.some((c) => c.ws === ws), ms);
      const c = s.closed.find((x) => x.ws === ws);
      assert.ok(c);
      return c.code;
    },
    async nthOpen(n) {
      await until(`connection #${n} to open`, () => s.opened.length >= n);
      const ws = s.opened[n - 1];
      assert.ok(ws);
      return ws;
    },
  };
  const handler: ServerHandler = {
    ...extra,
    open(ws) {
      s.opened.push(ws);
      extra.open?.(ws);
    },
    message(ws, data, isBinary) {
      s.messages++;
      ws.send(data, { binary: isBinary });
      extra.message?.(ws, data, isBinary);
    },
    ping(ws, payload) {
      s.pings++;
      extra.ping?.(ws, payload);
    },
    close(ws, code, reason) {
      s.closed.push({ ws, code });
      extra.close?.(ws, code, reason);
    },
    error(ws, error, source) {
      const code = (error as { closeCode?: unknown }).closeCode;
      if (typeof code === 'number') s.errorCodes.push(code);
      extra.error?.(ws, error, source);
    },
  };
  let http: HttpServer | null = null;
  let wss: WebSocketServer;
  let port: number;
  if (mode === 'listen') {
    wss = new WebSocketServer({ ...options, handler });
    port = (await wss.listen(0, LOOPBACK)).port;
  } else {
    const server = createServer(httpOptions, (_req, res) => res.end('plain'));
    http = server;
    if (mode === 'attach') wss = new WebSocketServer({ ...options, server, handler });
    else {
      const framework = new WebSocketServer({ ...options, handler });
      wss = framework;
      server.on('upgrade', (req, socket, head) => framework.handleUpgrade(req, socket, head));
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => resolve());
    });
    const address = server.address();
    assert.ok(address !== null && typeof address !== 'string');
    port = address.port;
  }
  t.after(async () => {
    for (const p of peers) p.destroy();
    await withTimeout(wss.close(100), WAIT_MS, 'WebSocketServer.close()');
    if (http !== null) {
      const h = http;
      h.closeAllConnections();
      await withTimeout(new Promise<void>((resolve) => h.close(() => resolve())), WAIT_MS, 'the HTTP server to close');
    }
  });
  return Object.assign(s, { wss, port, http });
}

/**
 * Asserts that a fresh client of the server is served: handshake, a text
 * message echoed intact, and a clean closing handshake (RFC 6455 §7.1.2).
 */
export async function assertServed(port: number, what = 'another client'): Promise<void> {
  const { peer } = await rawOpen(port);
  try {
    const text = `${what} is still served`;
    await peer.send({ opcode: TEXT, payload: text });
    const f = await peer.readFrame(10_000);
    assert.equal(f.opcode, TEXT);
    assert.equal(f.payload.toString('utf8'), text, `${what} got its echo`);
    await peer.sendClose(1000);
    const close = await peer.readClose(10_000);
    assert.equal(close.code, 1000);
  } finally {
    peer.destroy();
  }
}

export interface FloodResult {
  /** Bytes the kernel took from the flooding client before its writes stalled. */
  written: number;
  /** Whether the writes stalled (the server stopped reading) rather than hitting `maxBytes`. */
  stalled: boolean;
}

/**
 * Writes `unit` (one or more whole frames) over and over, in batches, never
 * reading, until the kernel stops taking them for `stallMs` (the server has
 * stopped reading, and every buffer on the way is full) or `maxBytes` went
 * out. The socket's own reading is paused first, so the server's output
 * backs up too.
 */
export async function floodUntilStalled(socket: Socket, unit: Buffer, maxBytes: number, stallMs = 1000): Promise<FloodResult> {
  socket.pause();
  const batch = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(64 * 1024 / unit.length)) }, () => unit));
  let written = 0;
  while (written < maxBytes) {
    if (socket.destroyed || !socket.writable) return { written, stalled: false };
    const ok = socket.write(batch);
    written += batch.length;
    if (!ok) {
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => socket.once('drain', () => resolve(true))),
        delay(stallMs).then(() => false),
      ]);
      if (!drained) return { written: written - socket.writableLength, stalled: true };
    }
  }
  return { written, stalled: false };
}

/** Turns a raw peer into a sink: it reads (and drops) everything from now on, so it also sees the end of the stream. */
export function discardIncoming(peer: RawPeer): void {
  peer.release();
  peer.socket.on('data', () => {});
  peer.socket.resume();
}

/**
 * Whether the server ended or cut the connection. A paused socket never
 * reads the FIN or the reset, so the peer reads (and drops) what is left first.
 */
export function isOver(peer: RawPeer): boolean {
  if (peer.socket.isPaused()) discardIncoming(peer);
  return peer.closed || peer.ended || peer.socket.destroyed;
}

/** A masked frame built once, for floods. */
export function frameBytes(opcode: number, payload: Buffer | string, fin = true): Buffer {
  return clientFrame({ opcode, payload, fin });
}

/** The process's peak resident set since it started, in bytes (a high-water mark: transient peaks count). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

// A full collection before a baseline, so garbage of earlier tests does not hide growth.
v8.setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/**
 * Samples the growth of the JavaScript heap plus ArrayBuffer memory (over a
 * baseline taken after a full collection) every 10 ms while `run` runs, and
 * returns the largest seen. Garbage made meanwhile counts: bounds must be generous.
 */
export async function peakGrowth(run: () => Promise<void>): Promise<number> {
  collect();
  const base = process.memoryUsage();
  const baseline = base.heapUsed + base.arrayBuffers;
  let peak = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.arrayBuffers - baseline);
  };
  const timer = setInterval(sample, 10);
  try {
    await run();
    sample();
  } finally {
    clearInterval(timer);
  }
  return peak;
}

export const MiB = 1024 * 1024;
