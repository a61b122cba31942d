/**
 * RedisBroker on a real three-master Redis Cluster with sharded pub/sub
 * (SPUBLISH/SSUBSCRIBE, Redis 7): topics spread over the shards, each node
 * SSUBSCRIBEs only the topics it has subscribers for, and delivery is exactly
 * once and in publish order per node and topic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TopicMessage } from '../../src/pubsub/message.js';
import { RedisBroker } from '../../src/redis/index.js';
import { closeAll, numbered, openClient, sendNumbered, startServeNode, type Client, type ServeNode } from '../helpers/nodes.js';
import { waitFor } from '../helpers/processes.js';
import { Sink, lines, startRedisCluster, type RedisCluster } from '../helpers/redis.js';

let cluster: RedisCluster;
const brokers: RedisBroker[] = [];

before(async () => {
  cluster = await startRedisCluster();
});

after(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await cluster.cleanup();
});

async function broker(prefix: string): Promise<RedisBroker> {
  const b = new RedisBroker({ cluster: cluster.urls, prefix, onError: () => {} });
  brokers.push(b);
  await b.ready();
  return b;
}

/** Sharded channels with subscribers, per master (PUBSUB SHARDCHANNELS answers for the node's own slots). */
async function shardChannels(pattern: string): Promise<string[][]> {
  return Promise.all(cluster.ports.map(async (port) => lines(await cluster.cli(port, ['PUBSUB', 'SHARDCHANNELS', pattern])).sort()));
}

describe('Redis Cluster, sharded pub/sub', () => {
  it('topics spread over the masters; SSUBSCRIBE only while there are local subscribers', async () => {
    const b = await broker('sh');
    const s = new Sink();
    const topics = Array.from({ length: 30 }, (_, i) => `room-${i}`);
    for (const t of topics) b.subscribe(t, s);
    await waitFor('30 sharded channels', async () => (await shardChannels('sh:*')).flat().length === 30);
    const perMaster = await shardChannels('sh:*');
    assert.ok(perMaster.every((c) => c.length > 0), `every master owns some topics: ${perMaster.map((c) => c.length).join('/')}`);
    b.unsubscribeAll(s);
    await waitFor('no sharded channels', async () => (await shardChannels('sh:*')).flat().length === 0);
  });

  it('three brokers: every subscriber gets every message once, in order per publishing node and topic', async () => {
    const nodes = await Promise.all([broker('cl'), broker('cl'), broker('cl')]);
    const topics = ['a', 'b', 'c', 'd', 'e', 'f'];
    const sinks = nodes.map((b) => {
      const s = new Sink();
      for (const t of topics) b.subscribe(t, s);
      return s;
    });
    await waitFor('every node subscribed to every topic', async () => {
      const counts = await Promise.all(
        cluster.ports.map(async (port) => lines(await cluster.cli(port, ['PUBSUB', 'SHARDNUMSUB', ...topics.map((t) => `cl:${t}`)]))),
      );
      // SHARDNUMSUB answers channel, count pairs; only the owning master counts the subscribers.
      const total = counts.flat().filter((_, i) => i % 2 === 1).reduce((n, c) => n + Number(c), 0);
      return total === topics.length * 3;
    });
    const N = 200;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      nodes.forEach((b, n) => {
        for (const t of topics) {
          sent.push(new Promise((resolve, reject) => b.publish(t, TopicMessage.from(t, `${t}:${n}:${i}`), undefined, (e) => (e === null ? resolve() : reject(e)))));
        }
      });
    }
    await Promise.all(sent);
    const total = N * 3 * topics.length;
    await waitFor(`${total} messages at every node`, () => sinks.every((s) => s.got.length >= total), 30_000);
    for (const s of sinks) {
      assert.equal(s.got.length, total, 'no duplicates');
      for (const t of topics) {
        for (let n = 0; n < 3; n++) {
          const stream = s.got.filter((m) => m.startsWith(`${t}:${n}:`));
          assert.deepEqual(stream, Array.from({ length: N }, (_, i) => `${t}:${n}:${i}`));
        }
      }
    }
  });
});

describe('fullduplex serve --redis-cluster', () => {
  const nodes: ServeNode[] = [];
  const clients: Client[] = [];
  after(async () => {
    await closeAll(clients);
    await Promise.all(nodes.map((n) => n.child.stop()));
  });

  it('two serve nodes share topics through the cluster (sharded pub/sub)', async () => {
    nodes.push(...(await Promise.all([0, 1].map(() => startServeNode(['--redis-cluster', cluster.urls.join(',')])))));
    for (const n of nodes) assert.match(n.child.output(), /topics through Redis at redis:\/\/127\.0\.0\.1:\d+\/?,redis:/);
    const group = await Promise.all(nodes.map((n) => openClient(n.url('/topics/news'))));
    clients.push(...group);
    await waitFor('both nodes SSUBSCRIBEd', async () => {
      const counts = await Promise.all(cluster.ports.map(async (port) => lines(await cluster.cli(port, ['PUBSUB', 'SHARDNUMSUB', 'fullduplex:news']))[1]));
      return counts.reduce((n, c) => n + Number(c), 0) === 2;
    });
    group.forEach((c, i) => sendNumbered(c, `n${i}`, 100));
    await waitFor('100 messages each way', () => group.every((c) => c.got.length >= 100));
    assert.deepEqual(numbered(group[0]?.got ?? [], 'n1'), Array.from({ length: 100 }, (_, k) => `n1:${k}`));
    assert.deepEqual(numbered(group[1]?.got ?? [], 'n0'), Array.from({ length: 100 }, (_, k) => `n0:${k}`));
  });
});

