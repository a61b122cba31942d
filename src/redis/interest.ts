/**
 * Interest routing: a node is subscribed to a topic's Redis channel exactly
 * while it has local subscribers to that topic.
 *
 * Local changes arrive one by one and synchronously (a connection subscribing
 * is a plain method call); they are collected in a set of touched topics and
 * reconciled once per microtask: for each, the wanted state (local
 * subscribers > 0) is compared with the requested state, and the differences
 * go out as a few SUBSCRIBE / UNSUBSCRIBE commands of up to `batch` channels,
 * all in one pipelined write. A topic that went 0 → 1 → 0 within one tick
 * costs nothing, and a later change always wins: commands on one connection
 * are applied by Redis in the order they were sent, so after any sequence of
 * subscribe/unsubscribe the last command sent for a channel matches the
 * wanted state.
 *
 * A command that fails (the connection dropped before its reply) is not
 * trusted: its topics are marked touched again and reconciled when a
 * connection becomes ready or after a retry delay. node-redis itself
 * re-subscribes, after a reconnect, every channel whose SUBSCRIBE succeeded.
 */
import type { Transport } from './transport.js';

/** How long after a failed SUBSCRIBE/UNSUBSCRIBE the touched topics are reconciled again. */
export const RETRY_DELAY_MS = 1000;

export class Interest {
  /** channel → topic, for every channel we asked Redis to keep us subscribed to. */
  private readonly requested = new Map<string, string>();
  /** Topics whose wanted state may differ from the requested one. */
  private touched = new Set<string>();
  private scheduled = false;
  private retry: NodeJS.Timeout | null = null;
  /** False until the transport first connected, and again once closed. */
  private live = false;

  constructor(
    private readonly transport: Transport,
    private readonly wanted: (topic: string) => boolean,
    private readonly channelOf: (topic: string) => string,
    private readonly report: (error: Error, operation: 'subscribe' | 'unsubscribe') => void,
  ) {}

  /** The topic carried by `channel`, if we are subscribed to it. */
  topicOf(channel: string): string | undefined {
    return this.requested.get(channel);
  }

  /** Number of channels currently requested (for tests and metrics). */
  get size(): number {
    return this.requested.size;
  }

  /** Local subscribers of `topic` changed. */
  touch(topic: string): void {
    this.touched.add(topic);
    this.schedule();
  }

  /** The transport connected (first time or again): reconcile what is pending. */
  start(): void {
    this.live = true;
    this.schedule();
  }

  stop(): void {
    this.live = false;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    this.touched.clear();
    this.requested.clear();
  }

  private schedule(): void {
    if (this.scheduled || !this.live || this.touched.size === 0) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (!this.live) return;
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    const unsubscribed: string[] = []; // the topics of `unsubscribe`, index for index
    const touched = this.touched;
    this.touched = new Set();
    for (const topic of touched) {
      const channel = this.channelOf(topic);
      const want = this.wanted(topic);
      const have = this.requested.has(channel);
      if (want && !have) {
        this.requested.set(channel, topic);
        subscribe.push(channel);
      } else if (!want && have) {
        this.requested.delete(channel);
        unsubscribe.push(channel);
        unsubscribed.push(topic);
      }
    }
    const batch = this.transport.batch;
    for (let i = 0; i < subscribe.length; i += batch) {
      const channels = subscribe.slice(i, i + batch);
      this.transport.subscribe(channels).catch((error: Error) => this.subscribeFailed(channels, error));
    }
    for (let i = 0; i < unsubscribe.length; i += batch) {
      const channels = unsubscribe.slice(i, i + batch);
      const topics = unsubscribed.slice(i, i + batch);
      this.transport.unsubscribe(channels).catch((error: Error) => this.unsubscribeFailed(channels, topics, error));
    }
  }

  private subscribeFailed(channels: string[], error: Error): void {
    if (!this.live) return;
    this.report(error, 'subscribe');
    for (const channel of channels) {
      const topic = this.requested.get(channel);
      if (topic === undefined) continue; // unsubscribed since: nothing to redo
      this.requested.delete(channel);
      this.touched.add(topic);
    }
    this.retryLater();
  }

  private unsubscribeFailed(channels: string[], topics: string[], error: Error): void {
    if (!this.live) return;
    this.report(error, 'unsubscribe');
    // node-redis keeps the channel's listener when UNSUBSCRIBE fails, and
    // re-subscribes it after reconnecting: count it as requested again so the
    // next reconciliation unsubscribes it (unless it is wanted by then).
    channels.forEach((channel, i) => {
      const topic = topics[i];
      if (topic === undefined || this.requested.has(channel)) return;
      this.requested.set(channel, topic);
      this.touched.add(topic);
    });
    this.retryLater();
  }

  private retryLater(): void {
    if (this.retry !== null) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.schedule();
    }, RETRY_DELAY_MS);
    this.retry.unref();
  }
}
