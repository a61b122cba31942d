/**
 * Scaffolding for the Redis failure probes: a WebSocketServer node on its own
 * RedisBroker, a client that records what it receives, a steady numbered
 * publish stream that tracks each callback (so a publish left hanging is
 * seen), and a recorder of uncaught errors (a crash in production).
 */
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { RedisBroker } from '../../src/redis/index.js';

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
