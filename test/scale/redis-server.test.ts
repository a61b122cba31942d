/**
 * WebSocketServer with `broker: RedisBroker`, through the public API: two
 * servers in this process stand for two nodes (each with its own broker and
 * Redis connections), the package's own WebSocket client on each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { RedisBroker } from '../../src/redis/index.js';
import { waitFor } from '../helpers/processes.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { wsNode } from '../helpers/redis-outage.js';

let redis: RedisServer;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await redis.cleanup();
});

interface Received {
  data: string;
  binary: boolean;
}

/** A server node on a RedisBroker whose connections subscribe to the topic in their path. */
async function node(prefix: string, deflate: boolean): Promise<{ wss: WebSocketServer; broker: RedisBroker; port: number }> {
  const broker = new RedisBroker({ url: redis.url, prefix, onError: () => {} });
  await broker.ready();
  const wss = new WebSocketServer({
    broker,
    perMessageDeflate: deflate ? { threshold: 0, serverNoContextTakeover: true } : false,
    handler: {
      open: (ws) => {
        ws.subscribe('t');
      },
      message: (ws, data, isBinary) => {
        ws.publish('t', data, { binary: isBinary });
      },
    },
  });
  const { port } = await wss.listen(0);
  cleanups.push(async () => {
    await wss.close();
    await broker.close();
  });
  return { wss, broker, port };
}

function client(port: number): Promise<{ ws: WebSocket; got: Received[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    ws.binaryType = 'arraybuffer';
    const got: Received[] = [];
    ws.onmessage = (e) => {
      const binary = e.data instanceof ArrayBuffer;
      got.push({ data: binary ? Buffer.from(e.data as ArrayBuffer).toString() : String(e.data), binary });
    };
    ws.onopen = () => resolve({ ws, got });
    ws.onerror = () => reject(new Error('cannot connect'));
    cleanups.push(async () => {
      if (ws.readyState !== WebSocket.CLOSED) {
        const closed = new Promise((r) => (ws.onclose = r));
        ws.close();
        await closed;
      }
    });
  });
}

describe('WebSocketServer with a RedisBroker', () => {
  it('wss.publish reaches the other node’s clients, text and binary, and its callback hears Redis took it', async () => {
    const [a, b] = await Promise.all([node('srv1', false), node('srv1', false)]);
    const [ca, cb] = await Promise.all([client(a.port), client(b.port)]);
    await waitFor('both nodes subscribed', () => a.broker.redisSubscriptions === 1 && b.broker.redisSubscriptions === 1);
    await waitFor('Redis knows both', async () => (await redis.cli(['PUBSUB', 'NUMSUB', 'srv1:t'])).trim().endsWith('2'));
    const err = await new Promise<Error | null>((resolve) => a.wss.publish('t', 'hello', { callback: resolve }));
    assert.equal(err, null);
    a.wss.publish('t', Buffer.from('bytes'));
    a.wss.publish('t', Buffer.from('as text'), { binary: false });
    const expected = [
      { data: 'hello', binary: false },
      { data: 'bytes', binary: true },
      { data: 'as text', binary: false },
    ];
    await waitFor('three messages at both clients', () => ca.got.length === 3 && cb.got.length === 3);
    assert.deepEqual(ca.got, expected);
    assert.deepEqual(cb.got, expected);
  });

  it('ws.publish skips only the sender; remote clients that negotiated permessage-deflate get it compressed and intact', async () => {
    const [a, b] = await Promise.all([node('srv2', false), node('srv2', true)]);
    const [sender, local] = [await client(a.port), await client(a.port)];
    const [remote1, remote2] = [await client(b.port), await client(b.port)];
    assert.match(remote1.ws.extensions, /permessage-deflate/);
    await waitFor('Redis knows both nodes', async () => (await redis.cli(['PUBSUB', 'NUMSUB', 'srv2:t'])).trim().endsWith('2'));
    const big = 'x'.repeat(5000);
    sender.ws.send(big);
    sender.ws.send('small');
    await waitFor('two messages at the others', () => [local, remote1, remote2].every((c) => c.got.length === 2));
    for (const c of [local, remote1, remote2]) assert.deepEqual(c.got.map((m) => m.data), [big, 'small']);
    assert.deepEqual(sender.got, []);
  });

  it('while Redis is away, wss.publish still reaches local clients and its callback gets the error', async () => {
    const own = await startRedis();
    cleanups.push(() => own.cleanup());
    const { wss, broker, port } = await wsNode(own.url, 'srv3', cleanups);
    const c = await client(port);
    await waitFor('subscribed', () => broker.redisSubscriptions === 1);
    await own.kill();
    await waitFor('the broker noticed', () => !broker.isReady);
    const err = await new Promise<Error | null>((resolve) => wss.publish('t', 'local only', { callback: resolve }));
    assert.ok(err instanceof Error);
    await waitFor('the local client got it', () => c.got.length === 1);
    assert.equal(c.got[0]?.data, 'local only');
  });
});
