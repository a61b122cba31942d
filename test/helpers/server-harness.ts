/**
 * Test scaffolding for the server: a handler that records every call (and
 * lets a test await one), and a scope that owns every server, socket and
 * client a test opens and tears them all down afterwards, so a test file ends
 * with no handle left behind.
 */
import type { Server as HttpServer } from 'node:http';
import type { TestContext } from 'node:test';
import { WebSocket as WsClient } from 'ws';
import { WebSocketServer, type ServerHandler, type WebSocketServerOptions } from '../../src/index.js';
import type { ServerWebSocket } from '../../src/index.js';
import { LOOPBACK, RawPeer, WAIT_MS, withTimeout } from './raw-client.js';

export type ServerEvent<T> =
  | { type: 'open'; ws: ServerWebSocket<T> }
  | { type: 'message'; ws: ServerWebSocket<T>; data: Buffer; isBinary: boolean }
  | { type: 'drain'; ws: ServerWebSocket<T> }
  | { type: 'close'; ws: ServerWebSocket<T>; code: number; reason: string }
  | { type: 'ping'; ws: ServerWebSocket<T>; payload: Buffer }
  | { type: 'pong'; ws: ServerWebSocket<T>; payload: Buffer }
  | { type: 'error'; ws: ServerWebSocket<T>; error: Error };

type EventOf<T, K extends ServerEvent<T>['type']> = Extract<ServerEvent<T>, { type: K }>;

/**
 * Records the calls a server makes into its handler (data copied, since the
 * server only lends it), then forwards them to `inner`. The `upgrade` hook is
 * forwarded untouched.
 */
export class EventLog<T = unknown> {
  readonly events: ServerEvent<T>[] = [];
  readonly handler: ServerHandler<T>;
  private wake: (() => void) | null = null;

  constructor(inner: ServerHandler<T> = {}) {
    const push = (e: ServerEvent<T>): void => {
      this.events.push(e);
      const w = this.wake;
      this.wake = null;
      w?.();
    };
    const handler: ServerHandler<T> = {
      open: (ws) => {
        push({ type: 'open', ws });
        inner.open?.(ws);
      },
      message: (ws, data, isBinary) => {
        push({ type: 'message', ws, data: Buffer.from(data), isBinary });
        inner.message?.(ws, data, isBinary);
      },
      drain: (ws) => {
        push({ type: 'drain', ws });
        inner.drain?.(ws);
      },
      close: (ws, code, reason) => {
        push({ type: 'close', ws, code, reason });
        inner.close?.(ws, code, reason);
      },
      ping: (ws, payload) => {
        push({ type: 'ping', ws, payload: Buffer.from(payload) });
        inner.ping?.(ws, payload);
      },
      pong: (ws, payload) => {
        push({ type: 'pong', ws, payload: Buffer.from(payload) });
        inner.pong?.(ws, payload);
      },
      error: (ws, error, source) => {
        if (ws !== null) push({ type: 'error', ws, error });
        inner.error?.(ws, error, source);
      },
    };
    if (inner.upgrade !== undefined) handler.upgrade = inner.upgrade.bind(inner);
    // Not recorded, but passed on: the server only reports these when the handler has them.
    if (inner.subscription !== undefined) handler.subscription = inner.subscription.bind(inner);
    if (inner.dropped !== undefined) handler.dropped = inner.dropped.bind(inner);
    this.handler = handler;
  }

  all<K extends ServerEvent<T>['type']>(type: K): EventOf<T, K>[] {
    return this.events.filter((e): e is EventOf<T, K> => e.type === type);
  }

  /** Waits until at least `count` events of `type` were recorded and returns the `count`-th. */
  async nth<K extends ServerEvent<T>['type']>(type: K, count: number, ms = WAIT_MS): Promise<EventOf<T, K>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.all(type);
      const e = found[count - 1];
      if (e !== undefined) return e;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for handler call #${count} of "${type}" (have ${found.length})`);
      await withTimeout(new Promise<void>((resolve) => (this.wake = resolve)), left, `handler "${type}"`).catch((err: unknown) => {
        this.wake = null;
        throw err;
      });
    }
  }

  /** Waits for the first event of `type`. */
  first<K extends ServerEvent<T>['type']>(type: K, ms = WAIT_MS): Promise<EventOf<T, K>> {
    return this.nth(type, 1, ms);
  }
}

/** A handler that echoes every message back as it came (text as text, binary as binary). */
export function echo<T>(extra: ServerHandler<T> = {}): ServerHandler<T> {
  return {
    ...extra,
    message(ws, data, isBinary) {
      ws.send(isBinary ? data : data.toString('utf8'), { binary: isBinary });
      extra.message?.(ws, data, isBinary);
    },
  };
}

/**
 * Owns what a test opens. `dispose()` (registered with `t.after`) destroys
 * raw peers and clients first, so closing the servers never waits on them.
 */
export class Scope {
  private readonly servers: WebSocketServer<any>[] = [];
  private readonly httpServers: HttpServer[] = [];
  private readonly peers: RawPeer[] = [];
  private readonly clients: WsClient[] = [];

  /** A WebSocketServer on its own HTTP server (`listen`), with `log` recording its handler calls. */
  async listen<T = unknown>(options: WebSocketServerOptions<T> = {}, inner?: ServerHandler<T>): Promise<{ wss: WebSocketServer<T>; port: number; log: EventLog<T> }> {
    const log = new EventLog<T>(inner ?? options.handler ?? echo<T>());
    const wss = new WebSocketServer<T>({ ...options, handler: log.handler });
    this.servers.push(wss);
    const address = await wss.listen(0, LOOPBACK);
    return { wss, port: address.port, log };
  }

  /** Registers a WebSocketServer made by the test, so it is closed afterwards. */
  server<T>(wss: WebSocketServer<T>): WebSocketServer<T> {
    this.servers.push(wss);
    return wss;
  }

  /** Starts `server` on a loopback port and registers it for closing. */
  async http(server: HttpServer): Promise<number> {
    this.httpServers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    return address.port;
  }

  peer(p: RawPeer): RawPeer {
    this.peers.push(p);
    return p;
  }

  async connect(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<RawPeer> {
    return this.peer(await RawPeer.connect(port, options));
  }

  /** A `ws` client, resolved once open. */
  async client(url: string, protocols?: string | string[], options?: ConstructorParameters<typeof WsClient>[2]): Promise<WsClient> {
    const ws = new WsClient(url, protocols, options);
    this.clients.push(ws);
    await wsOpened(ws, url);
    return ws;
  }

  /** A `ws` client not yet open (for tests about failed handshakes). */
  rawClient(url: string, protocols?: string | string[], options?: ConstructorParameters<typeof WsClient>[2]): WsClient {
    const ws = new WsClient(url, protocols, options);
    this.clients.push(ws);
    return ws;
  }

  async dispose(): Promise<void> {
    for (const p of this.peers) p.destroy();
    for (const c of this.clients) c.terminate();
    await Promise.all(this.servers.map((s) => withTimeout(s.close(100), WAIT_MS, 'WebSocketServer.close()')));
    await Promise.all(
      this.httpServers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }
}

/** Resolves once a `ws` client is open; rejects on its error or after WAIT_MS. */
export function wsOpened(ws: WsClient, url: string): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }),
    WAIT_MS,
    `ws client to open ${url}`,
  );
}

/** Resolves with the code and reason of a `ws` client's close event. */
export function clientClosed(ws: WsClient, ms = WAIT_MS): Promise<{ code: number; reason: string }> {
  return withTimeout(
    new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString('utf8') }))),
    ms,
    'the ws client to close',
  );
}

/** Resolves with the next message a `ws` client receives. */
export function clientMessage(ws: WsClient, ms = WAIT_MS): Promise<{ data: Buffer; isBinary: boolean }> {
  return withTimeout(
    new Promise((resolve) =>
      ws.once('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
        const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        resolve({ data: buf, isBinary });
      }),
    ),
    ms,
    'a message on the ws client',
  );
}

/** A Scope torn down after the test. */
export function scopeFor(t: TestContext): Scope {
  const s = new Scope();
  t.after(() => s.dispose());
  return s;
}

/** A listening server in a scope torn down after the test. */
export async function listening<T = unknown>(t: TestContext, options: WebSocketServerOptions<T> = {}, handler?: ServerHandler<T>) {
  const s = scopeFor(t);
  return { s, ...(await s.listen<T>(options, handler)) };
}
