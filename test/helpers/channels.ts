/**
 * Test scaffolding for the channel layer: a raw protocol peer (a WebSocket
 * speaking `fullduplex.channels.v1` frame by frame), a broker that spans
 * "nodes" inside one process (so cross-node routing is tested without
 * Redis), a TCP proxy that can cut or freeze connections, and a poll helper.
 */
import { type AddressInfo, type Server, type Socket, createServer, connect } from 'node:net';
import type { TestContext } from 'node:test';
import type { Broker, PublishCallback, SubscriptionListener, TopicSubscriber } from '../../src/pubsub/broker.js';
import { RelayBroker } from '../../src/pubsub/relay.js';
import type { TopicMessage } from '../../src/pubsub/message.js';
import { ChannelServer } from '../../src/channels/server.js';
import type { ChannelServerOptions } from '../../src/channels/options.js';
import { WebSocket } from '../../src/index.js';
import { PROTOCOL, type SubscribedEvent } from '../../src/client-lib/types.js';
import type { Client } from '../../src/client-lib/client.js';
import type { Subscription } from '../../src/client-lib/subscription.js';

export const WAIT = 10_000;

export type Json = { [key: string]: unknown };

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function until<T>(check: () => T, what: string, ms = WAIT): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The first item of `items` from index `from` on that `match`es, with its index. */
export function firstMatch<T>(items: readonly T[], from: number, match: (item: T) => boolean): { item: T; index: number } | undefined {
  for (let index = from; index < items.length; index++) {
    const item = items[index];
    if (item !== undefined && match(item)) return { item, index };
  }
  return undefined;
}

/** A channel server on a free loopback port, closed after the test. */
export async function startChannels<T = unknown>(t: TestContext, options: ChannelServerOptions<T> = {}): Promise<{ server: ChannelServer<T>; port: number; url: string; http: string }> {
  const server = new ChannelServer<T>({ onError: () => undefined, ...options });
  const { port } = await server.listen(0, '127.0.0.1');
  t.after(() => server.close());
  return { server, port, url: `ws://127.0.0.1:${port}/channels`, http: `http://127.0.0.1:${port}/channels` };
}

/** A raw protocol peer: sends JSON frames, records every frame and the close. */
export class Peer {
  readonly frames: Json[] = [];
  closeCode: number | null = null;
  closeReason = '';
  private seen = 0;
  private readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (e) => {
      this.frames.push(JSON.parse(String(e.data)) as Json);
    };
    ws.onclose = (e) => {
      this.closeCode = e.code;
      this.closeReason = e.reason;
    };
  }

  static async open(t: TestContext, url: string, protocol: string | string[] = PROTOCOL): Promise<Peer> {
    const ws = new WebSocket(url, protocol);
    const peer = new Peer(ws);
    t.after(() => ws.close());
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('peer could not connect'));
    });
    return peer;
  }

  /** Opens a peer and completes `connect`. */
  static async connected(t: TestContext, url: string, token?: string): Promise<Peer> {
    const peer = await Peer.open(t, url);
    peer.send({ id: 1, type: 'connect', ...(token === undefined ? {} : { token }) });
    const reply = await peer.reply(1);
    if (reply.type !== 'connected') throw new Error(`connect failed: ${JSON.stringify(reply)}`);
    return peer;
  }

  send(frame: Json | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  /** The reply to command `id`. */
  reply(id: number): Promise<Json> {
    return until(() => this.frames.find((f) => f.id === id), `reply to command ${id}`);
  }

  /** The next frame (after those already taken by `next`) that matches. */
  async next(match: (f: Json) => boolean, what = 'a frame'): Promise<Json> {
    return until(() => {
      const found = firstMatch(this.frames, this.seen, match);
      if (found !== undefined) this.seen = found.index + 1;
      return found?.item;
    }, what);
  }

  /** Resolves with the close code once the connection closed. */
  closed(): Promise<number> {
    return until(() => this.closeCode ?? undefined, 'close').then((c) => c);
  }

  /** Sends a command and waits for its reply. */
  async call(frame: Json & { id: number }): Promise<Json> {
    this.send(frame);
    return this.reply(frame.id);
  }

  pubs(channel: string): Json[] {
    return this.frames.filter((f) => f.type === 'pub' && f.channel === channel);
  }

  close(): void {
    this.ws.close();
  }
}

/** The shared medium of BusBrokers: every "node" of a test cluster in one process. */
export class Bus {
  readonly nodes = new Set<BusBroker>();
  /** Delay cross-node deliveries by this many ms (0: next macrotask)… */
  delay = 0;
  /** …plus a random 0..jitter ms each, so messages from different nodes arrive out of order. */
  jitter = 0;
  /** Lose every cross-node message (a broker outage). */
  lossy = false;
}

/**
 * A broker that spans the nodes on one Bus, like a RedisBroker across
 * processes: local subscribers at once, other nodes on a later macrotask.
 */
export class BusBroker extends RelayBroker {

  constructor(private readonly bus: Bus) {
    super();
    bus.nodes.add(this);
  }

  publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number {
    const n = this.local.deliver(topic, message, exclude);
    // A node taken off the bus (a dead or partitioned one) reaches no one else.
    if (this.bus.nodes.has(this) && !this.bus.lossy) {
      for (const other of this.bus.nodes) {
        if (other !== this) setTimeout(() => other.local.deliver(topic, message), this.bus.delay + Math.random() * this.bus.jitter);
      }
    }
    callback?.(null);
    return n;
  }

  onSubscriptionChange(listener: SubscriptionListener | null): void {
    this.local.onSubscriptionChange(listener);
  }

  async close(): Promise<void> {
    this.bus.nodes.delete(this);
    await this.local.close();
  }
}

/**
 * A TCP proxy in front of one or more targets (round-robin per connection)
 * that can cut every connection (`cut`), or freeze them (`freeze`: bytes stop
 * flowing both ways, the sockets stay open), as a network blip would.
 */
export class TcpProxy {
  port = 0;
  frozen = false;
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private next = 0;

  constructor(private readonly targets: number[]) {
    this.server = createServer((client) => {
      const port = this.targets[this.next++ % this.targets.length] ?? 0;
      const upstream = connect(port, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket): void => {
        from.on('data', (chunk) => {
          if (!this.frozen) to.write(chunk);
        });
      };
      forward(client, upstream);
      forward(upstream, client);
      const end = (): void => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async start(t: TestContext): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    t.after(() => this.stop());
    return this.port;
  }

  /** Destroys every proxied connection (the clients see a connection loss, 1006). */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  get connections(): number {
    return this.pairs.size;
  }

  stop(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** Subscribes `c` to `channel` and records what arrives: each publication's data as a number, and every `subscribed` event. */
export function recordNumbers(c: Client, channel: string): { sub: Subscription; got: number[]; subscribed: SubscribedEvent[] } {
  const sub = c.subscribe(channel);
  const got: number[] = [];
  const subscribed: SubscribedEvent[] = [];
  sub.on('publication', (p) => got.push(Number(p.data)));
  sub.on('subscribed', (e) => subscribed.push(e));
  return { sub, got, subscribed };
}
