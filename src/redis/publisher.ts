/**
 * The publishing half of a RedisBroker: consecutive publishes to the same
 * topic within one tick travel as one envelope in one PUBLISH (envelope.ts),
 * and the bytes awaiting Redis's reply are bounded.
 *
 * Why batch: per command, node-redis builds an argument array, a promise and
 * queue entries and writes several small buffers; at tens of thousands of
 * publishes per second that, and the garbage it makes, is most of the CPU.
 * A burst to one topic (a ticker, a busy room) then costs one command.
 *
 * Only a run of publishes to the same topic is batched: a publish to another
 * topic closes the batch first. So the order in which this node published is
 * the order of its PUBLISH commands on its one connection, which Redis keeps:
 * subscribers of several topics see a node's messages in publish order, not
 * only per topic (on a cluster, topics on different shards travel apart).
 * No delay is added: the batch goes out at the end of the current tick
 * (a microtask), before node-redis writes the tick's commands.
 */
import type { PublishCallback } from '../pubsub/broker.js';
import type { TopicMessage } from '../pubsub/message.js';
import { HEADER_SIZE, RECORD_HEADER_SIZE, encodeEnvelope } from './envelope.js';
import type { Transport } from './transport.js';

/** Largest envelope a run of publishes is batched into; a bigger single message goes alone. */
export const MAX_BATCH_BYTES = 64 * 1024;

/** Learns that a batch failed: the callbacks of its messages, and whether some had none. */
export type BatchFailed = (error: Error, topic: string, callbacks: PublishCallback[], uncalled: boolean) => void;

export class Publisher {
  private topic = '';
  private messages: TopicMessage[] = [];
  private callbacks: PublishCallback[] = [];
  private uncalled = false;
  private bytes = HEADER_SIZE;
  private scheduled = false;
  /** Bytes sent to Redis and not answered yet. */
  private pending = 0;
  private readonly flushBatch = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(
    private readonly transport: Transport,
    private readonly nodeId: Buffer,
    private readonly channelOf: (topic: string) => string,
    private readonly maxPendingBytes: number,
    private readonly failed: BatchFailed,
  ) {}

  /** Bytes awaiting Redis (sent, or in the open batch). */
  get pendingBytes(): number {
    return this.pending + (this.messages.length === 0 ? 0 : this.bytes);
  }

  /** Adds `message` to this tick's batch; false (nothing queued) when that would pass maxPendingBytes. */
  add(topic: string, message: TopicMessage, callback: PublishCallback | undefined): boolean {
    const size = RECORD_HEADER_SIZE + message.payload.length;
    if (this.pendingBytes + size > this.maxPendingBytes) return false;
    if (this.messages.length > 0 && (topic !== this.topic || this.bytes + size > MAX_BATCH_BYTES)) this.flush();
    this.topic = topic;
    this.messages.push(message);
    this.bytes += size;
    if (callback === undefined) this.uncalled = true;
    else this.callbacks.push(callback);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushBatch);
    }
    return true;
  }

  /** Sends the open batch, if any. */
  flush(): void {
    if (this.messages.length === 0) return;
    const { topic, callbacks, uncalled } = this;
    const envelope = encodeEnvelope(this.nodeId, this.messages);
    this.messages = [];
    this.callbacks = [];
    this.uncalled = false;
    this.bytes = HEADER_SIZE;
    const size = envelope.length;
    this.pending += size;
    this.transport.publish(this.channelOf(topic), envelope).then(
      () => {
        this.pending -= size;
        for (const cb of callbacks) cb(null);
      },
      (error: Error) => {
        this.pending -= size;
        this.failed(error, topic, callbacks, uncalled);
      },
    );
  }
}
