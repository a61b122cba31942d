/**
 * The half every broker that spans processes shares: its own subscribers
 * live in a LocalBroker, which delivers to them at once; the subclass adds
 * the transport between processes (`publish` to the others, delivery of what
 * they publish with `local.deliver`, `close`). RedisBroker is one; a broker
 * on another bus (NATS, a message queue) is written the same way.
 */
import type { Broker, PublishCallback, SubscriptionListener, TopicSubscriber } from './broker.js';
import { LocalBroker } from './local.js';
import type { TopicMessage } from './message.js';

export abstract class RelayBroker implements Broker {
  /** This process's subscribers. */
  protected readonly local = new LocalBroker();

  subscribe(topic: string, subscriber: TopicSubscriber): boolean {
    return this.local.subscribe(topic, subscriber);
  }

  unsubscribe(topic: string, subscriber: TopicSubscriber): boolean {
    return this.local.unsubscribe(topic, subscriber);
  }

  unsubscribeAll(subscriber: TopicSubscriber): void {
    this.local.unsubscribeAll(subscriber);
  }

  subscriberCount(topic: string): number {
    return this.local.subscriberCount(topic);
  }

  topics(): IterableIterator<string> {
    return this.local.topics();
  }

  abstract publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number;
  abstract onSubscriptionChange(listener: SubscriptionListener | null): void;
  abstract close(): Promise<void>;
}
