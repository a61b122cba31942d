/**
 * Scaffolding for the hostile-SERVER tests of the channels client
 * (test/node/channels-client-hostile*.test.ts): a scripted channel "server"
 * built on the public WebSocketServer that answers frames as each test
 * says, a raw HTTP server for broken handshakes and for the SSE + POST
 * fallback (PROTOCOL.md §9), a crash recorder, and the end-of-test check
 * that a disconnected client stays quiet (no attempt reaches the server).
 */
import { createHash } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { type ServerWebSocket, WebSocket, WebSocketServer } from '../../src/index.js';
import { Client } from '../../src/client-lib/client.js';
import { PROTOCOL, type ClientEvents, type ClientOptions, type Publication } from '../../src/client-lib/types.js';
import { type Json, until } from './channels.js';

export { until };
export type { Json };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Backoff and timeouts short enough for tests; the WebSocket transport only unless a test says otherwise. */
export const QUICK: ClientOptions = { WebSocket, transports: ['websocket'], minReconnectDelay: 20, maxReconnectDelay: 200, timeout: 1000 };

/** Records uncaught exceptions, unhandled rejections and process warnings until the test ends. */
export function watchProcess(t: TestContext): { crashes: unknown[]; warnings: Error[] } {
  const crashes: unknown[] = [];
  const warnings: Error[] = [];
  const crash = (e: unknown): void => void crashes.push(e);
  const warn = (w: Error): void => void warnings.push(w);
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  process.on('warning', warn);
  t.after(() => {
    process.off('uncaughtException', crash);
    process.off('unhandledRejection', crash);
    process.off('warning', warn);
  });
  return { crashes, warnings };
}

export type Logged = { type: keyof ClientEvents; event: unknown; at: number };

/** A client (disconnected after the test) and a log of its events. */
export function hostileClient(t: TestContext, url: string, options: ClientOptions = {}): { c: Client; log: Logged[] } {
  const c = new Client(url, { ...QUICK, ...options });
  t.after(() => c.disconnect());
  const log: Logged[] = [];
  for (const type of ['state', 'connecting', 'connected', 'disconnected', 'reconnecting', 'error'] as const) {
    c.on(type, (event) => log.push({ type, event, at: Date.now() }));
  }
  return { c, log };
}

export const events = <K extends keyof ClientEvents>(log: Logged[], type: K): ClientEvents[K][] =>
  log.filter((e) => e.type === type).map((e) => e.event as ClientEvents[K]);

/** Anything that counts connection attempts. */
export interface Attempts {
  readonly attempts: number[];
}

/**
 * The end of every test: disconnect() leaves the client 'disconnected', no
 * further attempt reaches the server within a wait longer than the longest
 * backoff + timeout, and the process saw no crash.
 */
export async function settle(c: Client, server: Attempts, crashes: unknown[], quietMs = 1500): Promise<void> {
  c.disconnect();
  assert.equal(c.state, 'disconnected');
  // An attempt already on the wire when disconnect() ran may still land: count from a moment later.
  await sleep(150);
  const n = server.attempts.length;
  await sleep(quietMs);
  assert.equal(server.attempts.length, n, 'no connection attempt after disconnect()');
  assert.equal(c.state, 'disconnected');
  assert.deepEqual(crashes, []);
}

/** How the scripted server answers; each hook gets the connection's number (0, 1, …). */
export interface Script {
  open?(ws: ServerWebSocket, n: number): void;
  /** A parsed frame from the client; return true when handled, else the well-behaved answer goes out. */
  frame?(ws: ServerWebSocket, f: Json, n: number): boolean;
}

/** The well-behaved answer to a client frame (a minimal server of PROTOCOL.md §2). */
export function answer(ws: ServerWebSocket, f: Json, n: number, extra: Json = {}): void {
  const id = f.id;
  switch (f.type) {
    case 'connect':
      return void ws.send(JSON.stringify({ id, type: 'connected', client: `c${n}`, user: '', ping: 25_000, ...extra }));
    case 'subscribe':
      return void ws.send(JSON.stringify({ id, type: 'subscribed', channel: f.channel, offset: 0, epoch: 'E', ...extra }));
    case 'unsubscribe':
      return void ws.send(JSON.stringify({ id, type: 'unsubscribed', channel: f.channel }));
    case 'publish':
      return void ws.send(JSON.stringify({ id, type: 'published', offset: 1, epoch: 'E' }));
    case 'ping':
      return void ws.send(JSON.stringify({ id, type: 'pong' }));
    default:
  }
}

/** A "channel server" on the public WebSocketServer that plays a script, recording every attempt and frame. */
export class ScriptedServer implements Attempts {
  readonly attempts: number[] = [];
  readonly conns: ServerWebSocket[] = [];
  readonly got: (Json & { n: number })[] = [];
  readonly closes: number[] = [];
  script: Script = {};
  port = 0;
  private readonly server: WebSocketServer;

  constructor(protocols: readonly string[] = [PROTOCOL]) {
    const index = new Map<ServerWebSocket, number>();
    this.server = new WebSocketServer({
      protocols,
      keepalive: false,
      handler: {
        upgrade: () => void this.attempts.push(Date.now()),
        open: (ws) => {
          index.set(ws, this.conns.length);
          this.conns.push(ws);
          this.script.open?.(ws, this.conns.length - 1);
        },
        message: (ws, data, binary) => {
          if (binary) return;
          const n = index.get(ws) ?? -1;
          const f = JSON.parse(data.toString()) as Json;
          this.got.push({ ...f, n });
          if (this.script.frame?.(ws, f, n) !== true) answer(ws, f, n);
        },
        close: (_ws, code) => void this.closes.push(code),
        error: () => undefined,
      },
    });
  }

  static async start(t: TestContext, script: Script = {}, protocols?: readonly string[]): Promise<ScriptedServer> {
    const s = new ScriptedServer(protocols);
    s.script = script;
    s.port = (await s.server.listen(0, '127.0.0.1')).port;
    t.after(() => s.server.close(100));
    return s;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/channels`;
  }

  /** Frames from the client of a type. */
  sent(type: string): (Json & { n: number })[] {
    return this.got.filter((f) => f.type === type);
  }

  /** The latest connection. */
  get last(): ServerWebSocket {
    const ws = this.conns.at(-1);
    if (!ws) throw new Error('no connection yet');
    return ws;
  }
}

/** Sends a JSON frame (or raw text) on a server connection. */
export const push = (ws: ServerWebSocket, f: Json | string): void => void ws.send(typeof f === 'string' ? f : JSON.stringify(f));

/** The Sec-WebSocket-Accept of a key (RFC 6455 §4.2.2). */
export const acceptOf = (key: string): string => createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC11B65`).digest('base64');

/** A text frame from a server (unmasked, RFC 6455 §5.2), for hand-made handshakes. */
export function textFrame(text: string): Buffer {
  const body = Buffer.from(text);
  if (body.length > 125) throw new Error('short frames only');
  return Buffer.concat([Buffer.from([0x81, body.length]), body]);
}

/**
 * A plain HTTP server: `upgrade` requests go to `onUpgrade` (a hand-made or
 * broken handshake), other requests to `onRequest` (the SSE fallback).
 * Counts every request as an attempt; destroys every socket at the end.
 */
export class RawServer implements Attempts {
  readonly attempts: number[] = [];
  /** Every request: method, path and body. */
  readonly requests: { method: string; url: string; body: string; headers: IncomingMessage['headers'] }[] = [];
  readonly sockets = new Set<Socket | Duplex>();
  port = 0;
  private readonly server: Server;

  constructor(
    onUpgrade: (req: IncomingMessage, socket: Duplex) => void,
    onRequest: (req: IncomingMessage, res: ServerResponse, body: string) => void,
  ) {
    this.server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        this.requests.push({ method: req.method ?? '', url: req.url ?? '', body, headers: req.headers });
        if (req.url?.endsWith('/connect')) this.attempts.push(Date.now());
        onRequest(req, res, body);
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      this.attempts.push(Date.now());
      socket.on('error', () => undefined);
      onUpgrade(req, socket);
    });
  }

  static async start(
    t: TestContext,
    onUpgrade: (req: IncomingMessage, socket: Duplex) => void,
    onRequest: (req: IncomingMessage, res: ServerResponse, body: string) => void = (_q, res) => res.writeHead(404).end(),
  ): Promise<RawServer> {
    const s = new RawServer(onUpgrade, onRequest);
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    s.port = (s.server.address() as AddressInfo).port;
    t.after(() => {
      for (const sock of s.sockets) sock.destroy();
      return new Promise<void>((r) => s.server.close(() => r()));
    });
    return s;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/channels`;
  }

  /** POSTs to `/send`, with their parsed bodies (one command or an array). */
  sends(): Json[] {
    return this.requests.filter((r) => r.url.endsWith('/send')).flatMap((r) => [JSON.parse(r.body) as Json | Json[]].flat());
  }
}

/** Writes one SSE event holding a frame: `data: <json>\n\n` (PROTOCOL.md §9). */
export const sse = (res: ServerResponse, f: Json | string): boolean => res.write(`data: ${typeof f === 'string' ? f : JSON.stringify(f)}\n\n`);

/** Starts a fallback event stream (200, text/event-stream) on `res`. */
export function openStream(res: ServerResponse, type = 'text/event-stream'): void {
  res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.flushHeaders();
}

/** The `connected` reply of the fallback (with a 43-character session). */
export const connectedSse = (body: string, extra: Json = {}): Json => ({
  id: (JSON.parse(body) as Json).id,
  type: 'connected',
  client: 'c',
  user: '',
  ping: 25_000,
  session: 'S'.repeat(43),
  ...extra,
});

/** The delays between consecutive attempts, in ms. */
export const gaps = (at: number[]): number[] => at.slice(1).map((x, i) => x - (at[i] ?? x));

/** A client connected to a scripted server (subscribed to `channel` when given), with its event log and publications. */
export async function connectedClient(t: TestContext, script: Script = {}, options: ClientOptions = {}, channel?: string) {
  const { crashes } = watchProcess(t);
  const s = await ScriptedServer.start(t, script);
  const { c, log } = hostileClient(t, s.url, options);
  const got: Publication[] = [];
  c.on('publication', (p) => got.push(p));
  if (channel !== undefined) c.subscribe(channel);
  c.connect();
  await until(() => c.state === 'connected', 'connected');
  if (channel !== undefined) await until(() => c.getSubscription(channel)?.state === 'subscribed', 'subscribed');
  return { s, c, log, got, crashes };
}
