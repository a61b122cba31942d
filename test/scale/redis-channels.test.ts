/**
 * The channels layer on real Redis: two ChannelServer nodes, each with its
 * own RedisBroker and RedisChannelStore on one redis-server, as two
 * processes would have. A client whose node dies reconnects to the other
 * (through a TCP proxy) and recovers what it missed, once and in order;
 * offsets are the same on both nodes because the stream lives in Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Client } from '../../src/client-lib/client.js';
import type { SubscribedEvent } from '../../src/client-lib/types.js';
import { WebSocket } from '../../src/index.js';
import { RedisBroker, RedisChannelStore } from '../../src/redis/index.js';
import { TcpProxy, recordNumbers, startChannels, until } from '../helpers/channels.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const CHAT = { match: 'chat:*', history: { size: 100, ttl: 60_000 }, presence: true, publish: true };
let redis: RedisServer;

before(async () => {
  redis = await startRedis();
});
after(() => redis.cleanup());

/** One node: a channel server on its own Redis broker and store (closed after the test). */
async function node(t: TestContext) {
  const broker = new RedisBroker({ url: redis.url, prefix: 'ch', onError: () => {} });
  const store = new RedisChannelStore({ url: redis.url, prefix: 'ch' });
  await Promise.all([broker.ready(), store.ready()]);
  const n = await startChannels(t, { channels: [CHAT], broker, store });
  // After the server's own close (t.after runs last-registered first).
  t.after(async () => {
    await broker.close();
    await store.close();
  });
  return n;
}

describe('channels on Redis (RedisBroker + RedisChannelStore)', () => {
  it('a client whose node dies reconnects to the other and recovers what it missed, once and in order', async (t) => {
    const [a, b] = [await node(t), await node(t)];
    const proxy = new TcpProxy([a.port, b.port]);
    await proxy.start(t);
    const c = new Client(`ws://127.0.0.1:${proxy.port}/channels`, { WebSocket, transports: ['websocket'], minReconnectDelay: 20, maxReconnectDelay: 200, timeout: 1500 });
    t.after(() => c.disconnect());
    const { sub, got, subscribed } = recordNumbers(c, 'chat:ha');
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed');
    const [home, other] = a.server.clientCount === 1 ? [a, b] : [b, a];
    // Published on the other node: through Redis pub/sub to the client's node.
    for (let i = 1; i <= 5; i++) await other.server.publish('chat:ha', i);
    await until(() => got.length === 5, 'live publications from the other node');
    await home.server.close();
    for (let i = 6; i <= 10; i++) await other.server.publish('chat:ha', i);
    await until(() => subscribed.length === 2 && got.length === 10, 'recovered on the other node', 20_000);
    assert.equal(subscribed[1]?.recovered, true);
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The stream is Redis's: both nodes' stores see offset 10.
    assert.equal((await redis.cli(['HGET', 'ch:meta:{chat%3Aha}', 'top'])).trim(), '10');
  });
});
