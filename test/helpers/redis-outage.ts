/**
 * Scaffolding for the Redis failure probes: a WebSocketServer node on its own
 * RedisBroker, a client that records what it receives, a steady numbered
 * publish stream that tracks each callback (so a publish left hanging is
 * seen), a recorder of uncaught errors (a crash in production), and channel
 * nodes on Redis with a reconnecting client.
 */
import type { TestContext } from 'node:test';
import { Client } from '../../src/client-lib/client.js';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { RedisBroker, RedisChannelStore } from '../../src/redis/index.js';
import { startChannels } from './channels.js';
import { withTimeout } from './raw-client.js';
import { type RedisServer, startRedis } from './redis.js';
import { CHAT } from './sse.js';

type Cleanups = (() => Promise<unknown>)[];

/** A server node on a RedisBroker whose connections subscribe to topic `t`. */
export async function wsNode(url: string, prefix: string, cleanups: Cleanups, maxPendingBytes?: number): Promise<{ wss: WebSocketServer; broker: RedisBroker; port: number }> {
  const broker = new RedisBroker({ url, prefix, onError: () => {}, ...(maxPendingBytes === undefined ? {} : { maxPendingBytes }) });
  await broker.ready();
  const wss = new WebSocketServer({ broker, handler: { open: (ws) => void ws.subscribe('t') } });
  const { port } = await wss.listen(0);
  cleanups.push(async () => {
    await wss.close();
    await broker.close();
  });
  return { wss, broker, port };
}

/** A client of `wsNode` keeping every text message. */
export function wsClient(port: number, cleanups: Cleanups): Promise<{ ws: WebSocket; got: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const got: string[] = [];
    ws.onmessage = (e) => void got.push(String(e.data));
    ws.onopen = () => resolve({ ws, got });
    ws.onerror = () => reject(new Error('cannot connect'));
    cleanups.push(async () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = new Promise((r) => (ws.onclose = r));
      ws.close();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    });
  });
}

/**
 * `perTick` numbered publishes (`"<n>"`, or `"<n> xxx…"` with `pad` bytes)
 * every `everyMs` through `wss.publish` with a callback; failures and the
 * send time of every callback not yet called are kept.
 */
export class PublishStream {
  seq = 0;
  readonly failed: number[] = [];
  private readonly sentAt = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(wss: WebSocketServer, topic: string, everyMs: number, perTick: number, pad = 0) {
    const padding = pad > 0 ? ` ${'x'.repeat(pad)}` : '';
    this.timer = setInterval(() => {
      for (let i = 0; i < perTick; i++) {
        const n = this.seq++;
        this.sentAt.set(n, Date.now());
        wss.publish(topic, `${n}${padding}`, {
          callback: (err) => {
            this.sentAt.delete(n);
            if (err !== null) this.failed.push(n);
          },
        });
      }
    }, everyMs);
  }

  /** Publishes whose callback has not been called yet. */
  get waiting(): number {
    return this.sentAt.size;
  }

  /** Numbers of the publishes still waiting for their callback after `ms`. */
  waitingLongerThan(ms: number): number[] {
    const now = Date.now();
    return [...this.sentAt].filter(([, t]) => now - t > ms).map(([n]) => n);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Records uncaught exceptions and unhandled rejections until the cleanups run. */
export function watchCrashes(cleanups: Cleanups): unknown[] {
  const crashes: unknown[] = [];
  const record = (e: unknown): void => void crashes.push(e);
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  cleanups.push(async () => {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  });
  return crashes;
}

/** A channel node on its own RedisBroker and RedisChannelStore (closed after the test). */
export async function channelNode(t: TestContext, redis: RedisServer, prefix: string, storeRedis: RedisServer = redis) {
  const broker = new RedisBroker({ url: redis.url, prefix, onError: () => {} });
  const store = new RedisChannelStore({ url: storeRedis.url, prefix });
  await Promise.all([broker.ready(), store.ready()]);
  const n = await startChannels(t, { channels: [CHAT], broker, store });
  t.after(async () => {
    await broker.close();
    await store.close();
  });
  return { ...n, broker };
}

/**
 * A fresh redis-server and two channel nodes on it (prefix `prefix`). The
 * server's cleanup is registered first, so the nodes are closed after Redis
 * has stopped, as a node shutting down during an outage would be.
 */
export async function twoChannelNodes(t: TestContext, prefix: string) {
  const redis = await startRedis();
  t.after(() => redis.cleanup());
  const [a, b] = [await channelNode(t, redis, prefix), await channelNode(t, redis, prefix)];
  return { redis, a, b };
}

/** Publishes on `node` until one is taken (Redis back), each value once; returns the values taken. */
export async function publishWhenBack(node: { server: { publish(c: string, d: unknown): Promise<unknown> } }, channel: string, first: number): Promise<number[]> {
  const deadline = Date.now() + 30_000;
  for (let v = first; ; v++) {
    try {
      await withTimeout(node.server.publish(channel, v), 10_000, `publish ${v}`);
      return [v];
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A channels client on the WebSocket transport that reconnects fast (disconnected after the test). */
export function channelClient(t: TestContext, port: number): Client {
  const c = new Client(`ws://127.0.0.1:${port}/channels`, { WebSocket, transports: ['websocket'], minReconnectDelay: 20, maxReconnectDelay: 200, timeout: 1500 });
  t.after(() => c.disconnect());
  return c;
}
