/**
 * The seam between a server's topics and whatever carries them: the
 * in-process `LocalBroker` (the default) or a broker that spans processes
 * (`RedisBroker`, from `fullduplex/redis`).
 *
 * A broker keeps who is subscribed to what on this process, delivers a
 * published message to the local subscribers at once, and, if it spans
 * processes, to every other process's subscribers too. It knows nothing of
 * sockets or WebSocket frames: a subscriber is anything that can take a
 * `TopicMessage` (a server connection is one; so can a test double be).
 */
import type { TopicMessage } from './message.js';

/** Something subscribed to topics: a server connection, or anything that takes published messages. */
export interface TopicSubscriber {
  /**
   * The topics this subscriber is in, kept by the broker (null while none):
   * stored on the subscriber so that an idle connection costs no map entry.
   */
  topics: Set<string> | null;
  /**
   * Takes one published message. Returns false when the subscriber dropped
   * it (a slow consumer over its limit, or a connection that is closing).
   */
  deliver(message: TopicMessage): boolean;
}

/** Called once a cross-process publish was handed to the broker's transport, or failed to be. */
export type PublishCallback = (error: Error | null) => void;

/** How many subscribers a topic has on this process, before and after a change. */
export type SubscriptionListener = (topic: string, before: number, after: number) => void;

export interface Broker {
  /** Adds `subscriber` to `topic`; false if it already was. */
  subscribe(topic: string, subscriber: TopicSubscriber): boolean;
  /** Removes `subscriber` from `topic`; false if it was not in it. */
  unsubscribe(topic: string, subscriber: TopicSubscriber): boolean;
  /** Removes `subscriber` from every topic (a connection closed). */
  unsubscribeAll(subscriber: TopicSubscriber): void;
  /** Subscribers of `topic` on this process. */
  subscriberCount(topic: string): number;
  /** Topics with at least one subscriber on this process. */
  topics(): IterableIterator<string>;
  /**
   * Delivers `message` to every local subscriber of `topic` but `exclude`,
   * synchronously, and (for a broker that spans processes) to every other
   * process's subscribers, each exactly once, in publish order per
   * publishing process. Returns the number of local subscribers that took
   * it. `callback`, when given, learns whether the cross-process part went
   * out (a local-only broker calls it with null at once).
   */
  publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number;
  /** Listens to changes in local subscriber counts (for presence, interest routing, metrics). */
  onSubscriptionChange(listener: SubscriptionListener | null): void;
  /** Releases what the broker holds (connections to Redis); local subscriptions are forgotten. */
  close(): Promise<void>;
}
