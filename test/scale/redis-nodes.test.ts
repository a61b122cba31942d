/**
 * Three `fullduplex serve --redis` processes sharing topics through one real
 * Redis, with WebSocket clients on each: cross-node delivery exactly once and
 * in order, and `kill -9` of one node leaving the others and their clients
 * untouched. Clients connect to /topics/room: each message a client sends
 * goes to every other subscriber of the topic, on every node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Client, type ServeNode, closeAll, numbered, openClient, sendNumbered, startServeNode, waitFor } from '../helpers/nodes.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
let nodes: ServeNode[] = [];
const clients: Client[] = [];

before(async () => {
  redis = await startRedis();
});

after(async () => {
  await closeAll(clients);
  await Promise.all(nodes.map((n) => n.child.stop()));
  await redis.cleanup();
});

/** Nodes subscribed to `topic` in Redis (PUBSUB NUMSUB of its channel). */
async function nodesSubscribed(topic: string): Promise<number> {
  const out = (await redis.cli(['PUBSUB', 'NUMSUB', `fullduplex:${topic}`])).trim().split('\n');
  return Number(out[1]);
}

describe('three serve --redis nodes', () => {
  before(async () => {
    nodes = await Promise.all([0, 1, 2].map(() => startServeNode(['--redis', redis.url])));
  });

  it('every client gets every other client’s messages once, in send order, across nodes', async () => {
    // Two clients per node.
    const room = await Promise.all(nodes.flatMap((n) => [openClient(n.url('/topics/room')), openClient(n.url('/topics/room'))]));
    clients.push(...room);
    await waitFor('every node subscribed to the room', async () => (await nodesSubscribed('room')) === 3);
    const N = 200;
    room.forEach((c, i) => sendNumbered(c, `c${i}`, N));
    const expected = (room.length - 1) * N;
    await waitFor(`${expected} messages at every client`, () => room.every((c) => c.got.length >= expected), 30_000);
    room.forEach((c, i) => {
      assert.equal(c.got.length, expected, 'exactly once');
      assert.deepEqual(numbered(c.got, `c${i}`), [], 'not its own');
      room.forEach((_, j) => {
        if (j !== i) assert.deepEqual(numbered(c.got, `c${j}`), Array.from({ length: N }, (_, k) => `c${j}:${k}`));
      });
    });
    await closeAll(room);
    await waitFor('no node subscribed once the clients left', async () => (await nodesSubscribed('room')) === 0);
  });

  it('kill -9 of one node drops only its own clients; the others keep talking', async () => {
    const per = await Promise.all(nodes.map((n) => Promise.all([openClient(n.url('/topics/k')), openClient(n.url('/topics/k'))])));
    clients.push(...per.flat());
    await waitFor('every node subscribed', async () => (await nodesSubscribed('k')) === 3);
    const [victim, ...survivors] = nodes;
    assert.ok(victim !== undefined);
    await victim.child.kill();
    const [dead = [], ...alive] = per;
    await Promise.all(dead.map((c) => c.closed));
    for (const c of dead) assert.equal((await c.closed).code, 1006, 'abnormal closure: the node vanished');
    await waitFor('the dead node’s subscription gone from Redis', async () => (await nodesSubscribed('k')) === 2);
    const living = alive.flat();
    assert.ok(living.every((c) => c.isOpen()), 'the other nodes’ clients are untouched');
    living.forEach((c, i) => sendNumbered(c, `s${i}`, 50));
    const expected = (living.length - 1) * 50;
    await waitFor('cross-node delivery among the survivors', () => living.every((c) => c.got.length >= expected), 30_000);
    living.forEach((c, i) => {
      assert.equal(c.got.length, expected);
      living.forEach((_, j) => {
        if (j !== i) assert.deepEqual(numbered(c.got, `s${j}`), Array.from({ length: 50 }, (_, k) => `s${j}:${k}`));
      });
    });
    assert.equal(survivors.filter((n) => n.child.process.exitCode === null).length, 2);
  });
});
