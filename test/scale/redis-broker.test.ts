/**
 * RedisBroker against a real redis-server: interest routing, exactly-once
 * delivery in publish order across three brokers, a broker's own publishes,
 * 10,000 subscribers, thousands of topics at once, prefixes and hostile topic
 * names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { TopicMessage } from '../../src/pubsub/message.js';
import { RedisBroker, type RedisBrokerOptions } from '../../src/redis/index.js';
import { channelName } from '../../src/redis/channel.js';
import { waitFor } from '../helpers/processes.js';
import { Sink, startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
let admin: ReturnType<typeof createClient>;
const brokers: RedisBroker[] = [];
let prefixes = 0;

before(async () => {
  redis = await startRedis();
  admin = createClient({ url: redis.url });
  admin.on('error', () => {});
  await admin.connect();
});

after(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  admin.destroy();
  await redis.cleanup();
});

/** A connected broker on the test's Redis; every test gets a prefix of its own. */
async function broker(prefix: string, options: RedisBrokerOptions = {}): Promise<RedisBroker> {
  const b = new RedisBroker({ url: redis.url, prefix, onError: () => {}, ...options });
  brokers.push(b);
  await b.ready();
  return b;
}

function freshPrefix(): string {
  return `t${++prefixes}`;
}

const text = (s: string): TopicMessage => TopicMessage.from('t', s);

/** Publishes and resolves once Redis took it (or rejects with the publish error). */
function publish(b: RedisBroker, topic: string, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => b.publish(topic, TopicMessage.from(topic, data), undefined, (err) => (err === null ? resolve() : reject(err))));
}

const channels = (pattern: string): Promise<string[]> => admin.pubSubChannels(pattern).then((c) => c.map(String).sort());

describe('interest routing: a node subscribes to a channel only while it has local subscribers', () => {
  it('SUBSCRIBEs on the first local subscriber and UNSUBSCRIBEs after the last', async () => {
    const p = freshPrefix();
    const b = await broker(p);
    const [s1, s2] = [new Sink(), new Sink()];
    assert.deepEqual(await channels(`${p}:*`), []);
    b.subscribe('room', s1);
    b.subscribe('room', s2);
    await waitFor('the channel to be subscribed', async () => (await channels(`${p}:*`)).length === 1);
    assert.deepEqual(await channels(`${p}:*`), [`${p}:room`]);
    assert.equal((await admin.pubSubNumSub(`${p}:room`))[`${p}:room`], 1, 'one SUBSCRIBE for two local subscribers');
    b.unsubscribe('room', s1);
    await publish(b, 'room', 'still'); // a round trip on the other connection: time for a wrong UNSUBSCRIBE to land
    assert.deepEqual(await channels(`${p}:*`), [`${p}:room`], 'a remaining subscriber keeps the channel');
    b.unsubscribe('room', s2);
    await waitFor('the channel to be unsubscribed', async () => (await channels(`${p}:*`)).length === 0);
    assert.equal(b.redisSubscriptions, 0);
  });

  it('unsubscribeAll of a subscriber in many topics releases each channel', async () => {
    const p = freshPrefix();
    const b = await broker(p);
    const s = new Sink();
    for (const t of ['a', 'b', 'c']) b.subscribe(t, s);
    await waitFor('three channels', async () => (await channels(`${p}:*`)).length === 3);
    b.unsubscribeAll(s);
    await waitFor('no channels', async () => (await channels(`${p}:*`)).length === 0);
  });

  it('subscribe → unsubscribe → subscribe races end subscribed; … → unsubscribe ends unsubscribed', async () => {
    const p = freshPrefix();
    const b = await broker(p);
    const s = new Sink();
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    // Within one tick, and spread over ticks so that commands are in flight together.
    b.subscribe('x', s);
    b.unsubscribe('x', s);
    b.subscribe('x', s);
    for (let i = 0; i < 20; i++) {
      b.unsubscribe('y', s);
      if (i % 3 === 0) await tick();
      b.subscribe('y', s);
      await Promise.resolve();
      b.unsubscribe('z', s);
      b.subscribe('z', s);
      await tick();
      b.unsubscribe('z', s);
    }
    await waitFor('x and y subscribed, z not', async () => (await channels(`${p}:*`)).join() === `${p}:x,${p}:y`);
    // Stable: nothing still in flight changes it.
    await publish(b, 'x', 'sync');
    assert.deepEqual(await channels(`${p}:*`), [`${p}:x`, `${p}:y`]);
    assert.equal(b.redisSubscriptions, 2);
  });

  it('the subscription listener sees every local change, before and after counts', async () => {
    const b = await broker(freshPrefix());
    const seen: string[] = [];
    b.onSubscriptionChange((topic, before, after) => seen.push(`${topic}:${before}->${after}`));
    const [s1, s2] = [new Sink(), new Sink()];
    b.subscribe('t', s1);
    b.subscribe('t', s2);
    b.unsubscribeAll(s1);
    b.unsubscribe('t', s2);
    assert.deepEqual(seen, ['t:0->1', 't:1->2', 't:2->1', 't:1->0']);
  });
});

describe('delivery: every subscriber on every node, exactly once, in publish order per node', () => {
  it('three brokers each publish 1,000 messages; every subscriber gets all 3,000 once, in order per publisher', async () => {
    const p = freshPrefix();
    const nodes = await Promise.all([broker(p), broker(p), broker(p)]);
    const sinks = nodes.map((b) => {
      const pair = [new Sink(), new Sink()];
      for (const s of pair) b.subscribe('feed', s);
      return pair;
    });
    await waitFor('every node subscribed', async () => (await admin.pubSubNumSub(`${p}:feed`))[`${p}:feed`] === 3);
    const N = 1000;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < N; i++) nodes.forEach((b, n) => sent.push(publish(b, 'feed', `${n}:${i}`)));
    await Promise.all(sent);
    const all = sinks.flat();
    await waitFor('3,000 messages at every subscriber', () => all.every((s) => s.got.length >= 3 * N));
    await publish(nodes[0] as RedisBroker, 'feed', 'end');
    await waitFor('the end marker everywhere', () => all.every((s) => s.got.at(-1) === 'end'));
    for (const s of all) {
      assert.equal(s.got.length, 3 * N + 1, 'no duplicates');
      for (let n = 0; n < 3; n++) {
        const mine = s.got.filter((m) => m.startsWith(`${n}:`));
        assert.deepEqual(mine, Array.from({ length: N }, (_, i) => `${n}:${i}`));
      }
    }
  });

  it("a node's own subscribers get its publish once: synchronously, not again through Redis", async () => {
    const p = freshPrefix();
    const [a, b] = await Promise.all([broker(p), broker(p)]);
    const mine = new Sink();
    const theirs = new Sink();
    a.subscribe('t', mine);
    b.subscribe('t', theirs);
    await waitFor('both subscribed', async () => (await admin.pubSubNumSub(`${p}:t`))[`${p}:t`] === 2);
    const n = a.publish('t', text('hello'));
    assert.equal(n, 1, 'delivered to the local subscriber before publish returns');
    assert.deepEqual(mine.got, ['hello']);
    await new Promise<void>((resolve) => a.publish('t', text('second'), undefined, () => resolve()));
    // Redis sends a's messages to a's subscriber connection before anything published after them.
    await publish(b, 't', 'marker');
    await waitFor('the marker at a', () => mine.got.includes('marker'));
    assert.deepEqual(mine.got, ['hello', 'second', 'marker']);
    await waitFor('everything at b', () => theirs.got.length === 3);
    // b's own marker reached b's subscriber synchronously, whenever a's two came through Redis.
    assert.deepEqual(theirs.got.filter((m) => m !== 'marker'), ['hello', 'second']);
    assert.equal(theirs.got.filter((m) => m === 'marker').length, 1);
  });

  it('binary and text survive the trip; exclude applies to the local subscribers only', async () => {
    const p = freshPrefix();
    const [a, b] = await Promise.all([broker(p), broker(p)]);
    const [self, other, remote] = [new Sink(), new Sink(), new Sink()];
    a.subscribe('t', self);
    a.subscribe('t', other);
    b.subscribe('t', remote);
    await waitFor('both subscribed', async () => (await admin.pubSubNumSub(`${p}:t`))[`${p}:t`] === 2);
    assert.equal(a.publish('t', TopicMessage.from('t', Buffer.from([1, 2, 3])), self), 1);
    a.publish('t', TopicMessage.from('t', 'é text'), self);
    await waitFor('two at b', () => remote.got.length === 2);
    assert.deepEqual(self.got, []);
    assert.deepEqual(other.binary, [true, false]);
    assert.deepEqual(remote.binary, [true, false]);
    assert.deepEqual(remote.got, [Buffer.from([1, 2, 3]).toString(), 'é text']);
  });

  it('a burst to one topic is batched into a few PUBLISHes; interleaved topics keep the node’s publish order', async () => {
    const p = freshPrefix();
    const [a, b] = await Promise.all([broker(p), broker(p)]);
    const s = new Sink();
    b.subscribe('one', s);
    b.subscribe('two', s);
    await waitFor('b subscribed', async () => (await channels(`${p}:*`)).length === 2);
    await admin.configResetStat();
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 1000; i++) sent.push(publish(a, 'one', `one:${i}`));
    await Promise.all(sent);
    const calls = Number(/cmdstat_publish:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1]);
    assert.ok(calls >= 1 && calls <= 2, `PUBLISH commands for 1,000 messages in a tick: ${calls}`);
    await waitFor('1,000 at b', () => s.got.length === 1000);
    assert.deepEqual(s.got, Array.from({ length: 1000 }, (_, i) => `one:${i}`));
    s.got.length = 0;
    const mixed: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) mixed.push(publish(a, i % 3 === 0 ? 'two' : 'one', `m${i}`));
    await Promise.all(mixed);
    await waitFor('300 at b', () => s.got.length === 300);
    assert.deepEqual(s.got, Array.from({ length: 300 }, (_, i) => `m${i}`), 'one node’s publish order across topics');
  });

  it('10,000 subscribers of one topic on one node all get every message of another node', async () => {
    const p = freshPrefix();
    const [a, b] = await Promise.all([broker(p), broker(p)]);
    const sinks = Array.from({ length: 10_000 }, () => new Sink());
    for (const s of sinks) a.subscribe('big', s);
    await waitFor('a subscribed', async () => (await channels(`${p}:*`)).length === 1);
    assert.equal(a.subscriberCount('big'), 10_000);
    for (let i = 0; i < 5; i++) await publish(b, 'big', `m${i}`);
    await waitFor('5 messages at every subscriber', () => sinks.every((s) => s.got.length === 5));
    assert.ok(sinks.every((s) => s.got.join() === 'm0,m1,m2,m3,m4'));
  });

  it('5,000 topics subscribed in one tick go out as a few batched SUBSCRIBEs and each carries its own messages', async () => {
    const p = freshPrefix();
    const [a, b] = await Promise.all([broker(p), broker(p)]);
    await admin.configResetStat();
    const T = 5000;
    const sinks = Array.from({ length: T }, () => new Sink());
    sinks.forEach((s, i) => a.subscribe(`topic-${i}`, s));
    await waitFor('5,000 channels', async () => (await channels(`${p}:*`)).length === T, 30_000, 100);
    const stats = await admin.info('commandstats');
    const calls = Number(/cmdstat_subscribe:calls=(\d+)/.exec(stats)?.[1]);
    assert.ok(calls >= 1 && calls <= Math.ceil(T / 1024), `SUBSCRIBE commands: ${calls}`);
    const sent: Promise<void>[] = [];
    for (let i = 0; i < T; i++) sent.push(publish(b, `topic-${i}`, `for ${i}`));
    await Promise.all(sent);
    await waitFor('one message per topic', () => sinks.every((s) => s.got.length === 1), 30_000);
    sinks.forEach((s, i) => assert.deepEqual(s.got, [`for ${i}`]));
    for (const s of sinks) a.unsubscribeAll(s);
    await waitFor('no channels', async () => (await channels(`${p}:*`)).length === 0, 30_000, 100);
  });
});

describe('channels: prefixes and topic names', () => {
  it('brokers with different prefixes never hear each other, even when one prefix extends the other', async () => {
    const [a, b] = await Promise.all([broker('app'), broker('app:x')]);
    const [sa, sb] = [new Sink(), new Sink()];
    a.subscribe('x:y', sa); // would be app:x:y without escaping
    b.subscribe('y', sb); //  app:x:y
    await waitFor('two channels', async () => (await channels('app:*')).length === 2);
    await publish(b, 'y', 'from b');
    await publish(a, 'x:y', 'from a');
    await publish(a, 'y', 'a on y');
    await publish(b, 'x:y', 'b on x:y');
    // Round trips on both subscriber connections: anything misrouted would have arrived.
    await waitFor('own-topic deliveries', () => sa.got.length >= 1 && sb.got.length >= 1);
    await publish(a, 'x:y', 'end');
    await publish(b, 'y', 'end');
    await waitFor('end markers', () => sa.got.at(-1) === 'end' && sb.got.at(-1) === 'end');
    assert.deepEqual(sa.got, ['from a', 'end']);
    assert.deepEqual(sb.got, ['from b', 'end']);
  });

  it('hostile topic names each reach exactly their own subscribers; no topic makes a hash tag', async () => {
    const p = freshPrefix();
    const [a, b] = await Promise.all([broker(p), broker(p)]);
    const topics = ['', ':', '::', '%', '%3A', '%25', '{', '}', '{x}', 'a{b}c', '{}', '*', '?', '[a-z]', 'a\nb', 'a\r\nb', ' ', '\u0000', 'é', '😀',
      '\uD800', '\uDC00', '\uD801', '%uD800', `${p}:x`, 'x'.repeat(10_000)];
    assert.equal(new Set(topics.map((t) => channelName(p, t))).size, topics.length, 'distinct channels');
    for (const t of topics) assert.ok(!/[{}]/.test(channelName(p, t).slice(p.length)), `no braces in ${JSON.stringify(t)}`);
    const sinks = topics.map(() => new Sink());
    topics.forEach((t, i) => a.subscribe(t, sinks[i] as Sink));
    await waitFor('every topic subscribed', async () => (await channels(`${p}:*`)).length === topics.length);
    for (const [i, t] of topics.entries()) await publish(b, t, `#${i}`);
    await waitFor('one message per topic', () => sinks.every((s) => s.got.length >= 1));
    await publish(b, topics[0] as string, 'end');
    await waitFor('the end marker', () => sinks[0]?.got.at(-1) === 'end');
    sinks.forEach((s, i) => assert.deepEqual(s.got, i === 0 ? ['#0', 'end'] : [`#${i}`], JSON.stringify(topics[i])));
  });
});

describe('bounds and bad input', () => {
  it('publishes beyond maxPendingBytes fail at once instead of queueing; later ones go out again', async () => {
    const b = await broker(freshPrefix(), { maxPendingBytes: 10_000 });
    const payload = 'x'.repeat(95); // 100 bytes with its record header
    const results = await Promise.all(
      Array.from({ length: 1000 }, () => new Promise<Error | null>((resolve) => b.publish('t', text(payload), undefined, resolve))),
    );
    const ok = results.filter((e) => e === null).length;
    assert.ok(ok >= 90 && ok <= 100, `${ok} went out`);
    assert.match(String(results.at(-1)?.message), /maxPendingBytes/);
    assert.equal(b.pendingBytes, 0);
    await publish(b, 't', 'after');
  });

  it('a message on the channel that is not a valid envelope is dropped and reported', async () => {
    const p = freshPrefix();
    const errors: Error[] = [];
    const b = await broker(p, { onError: (e) => errors.push(e) });
    const s = new Sink();
    b.subscribe('t', s);
    await waitFor('subscribed', async () => (await channels(`${p}:*`)).length === 1);
    await admin.publish(`${p}:t`, 'not an envelope');
    await admin.publish(`${p}:t`, Buffer.concat([Buffer.from([1]), Buffer.alloc(8, 9), Buffer.from([0, 0, 0, 0, 1, 0xff])])); // text, not UTF-8
    await publish(await broker(p), 't', 'good');
    await waitFor('the good message', () => s.got.includes('good'));
    assert.deepEqual(s.got, ['good']);
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]?.message), /version/);
    assert.match(String(errors[1]?.message), /UTF-8/);
  });
});

