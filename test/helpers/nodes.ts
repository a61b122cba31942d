/**
 * Server nodes for the scale tests: `fullduplex serve` processes (the built
 * CLI, dist/cli/main.js, as users run it), each on its own loopback port,
 * sharing topics through Redis with --redis or --redis-cluster; and
 * WebSocket clients (the package's own) that record what they receive.
 */
import { fileURLToPath } from 'node:url';
import { type CloseEvent, WebSocket } from '../../src/index.js';
import { type Nginx, startNginx } from './nginx.js';
import { type Child, freePort, startChild, waitFor } from './processes.js';
import { type RedisServer, startRedis } from './redis.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface ServeNode {
  readonly port: number;
  readonly child: Child;
  /** ws://127.0.0.1:port + path */
  url(path: string): string;
}

/** Starts `fullduplex serve --port P ...args` and waits until it listens. */
export async function startServeNode(args: string[], port?: number): Promise<ServeNode> {
  const p = port ?? (await freePort());
  const child = startChild(process.execPath, [CLI, 'serve', '--port', String(p), ...args]);
  await waitFor(`serve on port ${p} to listen`, () => {
    if (child.process.exitCode !== null) throw new Error(`serve exited ${child.process.exitCode}: ${child.output()}`);
    return child.output().includes('listening on');
  });
  return { port: p, child, url: (path) => `ws://127.0.0.1:${p}${path}` };
}

/** A WebSocket client that keeps every text message it receives. */
export interface Client {
  readonly ws: WebSocket;
  readonly got: string[];
  /** Resolves with the close event, whenever the connection closes. */
  readonly closed: Promise<CloseEvent>;
  readonly isOpen: () => boolean;
}

/** Opens a client to `url`; rejects if the handshake fails. */
export function openClient(url: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const got: string[] = [];
    let open = false;
    const closed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e)));
    ws.addEventListener('message', (e) => {
      got.push(String(e.data));
    });
    ws.addEventListener('open', () => {
      open = true;
      resolve({ ws, got, closed, isOpen: () => ws.readyState === WebSocket.OPEN });
    });
    ws.addEventListener('error', () => {
      if (!open) reject(new Error(`cannot connect to ${url}`));
    });
  });
}

/** Closes every client still open and waits for each close. */
export async function closeAll(clients: Client[]): Promise<void> {
  for (const c of clients) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.close();
  await Promise.all(clients.map((c) => c.closed));
}

/** Sends `count` messages `${tag}:${i}` from `client`. */
export function sendNumbered(client: Client, tag: string, count: number): void {
  for (let i = 0; i < count; i++) client.ws.send(`${tag}:${i}`);
}

/** The messages of `tag` in `got`, which must be `${tag}:0` .. `${tag}:${count - 1}` in order. */
export function numbered(got: string[], tag: string): string[] {
  return got.filter((m) => m.startsWith(`${tag}:`));
}

export { freePort, waitFor };

/** A real Redis, three `serve --redis` nodes on free loopback ports, and nginx round-robin in front of them. */
export interface BalancedNodes {
  redis: RedisServer;
  nodes: ServeNode[];
  nginx: Nginx;
  /** Stops nginx, every node still running and Redis. */
  stop(): Promise<void>;
}

export async function startBalancedNodes(count = 3): Promise<BalancedNodes> {
  const redis = await startRedis();
  const nodes: ServeNode[] = [];
  let nginx: Nginx;
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    const started = await Promise.allSettled(ports.map((p) => startServeNode(['--redis', redis.url], p)));
    for (const r of started) if (r.status === 'fulfilled') nodes.push(r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    nginx = await startNginx(ports);
  } catch (err) {
    // Nothing of a half-started setup outlives the failure.
    await Promise.all(nodes.map((n) => n.child.stop()));
    await redis.cleanup();
    throw err;
  }
  return {
    redis,
    nodes,
    nginx,
    async stop() {
      await nginx.cleanup();
      await Promise.all(nodes.map((n) => n.child.stop()));
      await redis.cleanup();
    },
  };
}
