/**
 * The in-process broker: topic → the local subscribers of it. The default
 * broker of every server, and the local half of brokers that span processes
 * (they keep one and add the transport between processes).
 */
import type { Broker, PublishCallback, SubscriptionListener, TopicSubscriber } from './broker.js';
import type { TopicMessage } from './message.js';

export class LocalBroker implements Broker {
  private readonly subscribers = new Map<string, Set<TopicSubscriber>>();
  private listener: SubscriptionListener | null = null;

  subscribe(topic: string, subscriber: TopicSubscriber): boolean {
    if (typeof topic !== 'string') throw new TypeError('a topic is a string');
    const mine = (subscriber.topics ??= new Set());
    if (mine.has(topic)) return false;
    mine.add(topic);
    let subs = this.subscribers.get(topic);
    if (subs === undefined) this.subscribers.set(topic, (subs = new Set()));
    subs.add(subscriber);
    this.listener?.(topic, subs.size - 1, subs.size);
    return true;
  }

  unsubscribe(topic: string, subscriber: TopicSubscriber): boolean {
    const mine = subscriber.topics;
    if (mine === null || !mine.delete(topic)) return false;
    if (mine.size === 0) subscriber.topics = null;
    this.remove(topic, subscriber);
    return true;
  }

  unsubscribeAll(subscriber: TopicSubscriber): void {
    const mine = subscriber.topics;
    if (mine === null) return;
    subscriber.topics = null;
    for (const topic of mine) this.remove(topic, subscriber);
  }

  subscriberCount(topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0;
  }

  topics(): IterableIterator<string> {
    return this.subscribers.keys();
  }

  publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number {
    const n = this.deliver(topic, message, exclude);
    callback?.(null);
    return n;
  }

  /** Hands `message` to every local subscriber of `topic` but `exclude`; returns how many took it. */
  deliver(topic: string, message: TopicMessage, exclude?: TopicSubscriber): number {
    const subs = this.subscribers.get(topic);
    if (subs === undefined) return 0;
    let n = 0;
    for (const s of subs) {
      if (s !== exclude && s.deliver(message)) n++;
    }
    return n;
  }

  onSubscriptionChange(listener: SubscriptionListener | null): void {
    this.listener = listener;
  }

  async close(): Promise<void> {
    for (const subs of this.subscribers.values()) for (const s of subs) s.topics = null;
    this.subscribers.clear();
  }

  private remove(topic: string, subscriber: TopicSubscriber): void {
    const subs = this.subscribers.get(topic);
    if (subs === undefined || !subs.delete(subscriber)) return;
    const after = subs.size;
    if (after === 0) this.subscribers.delete(topic);
    this.listener?.(topic, after + 1, after);
  }
}
