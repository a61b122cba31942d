/**
 * A real load balancer: Debian's nginx in front of three
 * `fullduplex serve --redis` nodes, proxying WebSocket upgrades round-robin.
 * Clients connect only through nginx; topic messages cross nodes; killing a
 * node drops only the clients it held, and they reconnect through nginx to
 * the others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Nginx } from '../helpers/nginx.js';
import { type Client, type ServeNode, closeAll, numbered, openClient, sendNumbered, startBalancedNodes, waitFor } from '../helpers/nodes.js';
import type { RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
let nodes: ServeNode[] = [];
let nginx: Nginx;
let stop: (() => Promise<void>) | undefined;
const clients: Client[] = [];

before(async () => {
  ({ redis, nodes, nginx, stop } = await startBalancedNodes());
});

after(async () => {
  await closeAll(clients);
  await stop?.();
});

async function nodesSubscribed(topic: string): Promise<number> {
  return Number((await redis.cli(['PUBSUB', 'NUMSUB', `fullduplex:${topic}`])).trim().split('\n')[1]);
}

/** Every client gets `count` numbered messages from every other one, once and in order. */
async function exchange(group: Client[], tag: string, count: number): Promise<void> {
  for (const c of group) c.got.length = 0;
  group.forEach((c, i) => sendNumbered(c, `${tag}${i}`, count));
  const expected = (group.length - 1) * count;
  await waitFor(`${expected} messages at each of ${group.length} clients`, () => group.every((c) => c.got.length >= expected), 30_000);
  group.forEach((c, i) => {
    assert.equal(c.got.length, expected);
    group.forEach((_, j) => {
      if (j !== i) assert.deepEqual(numbered(c.got, `${tag}${j}`), Array.from({ length: count }, (_, k) => `${tag}${j}:${k}`));
    });
  });
}

describe('nginx round-robin in front of three nodes', () => {
  it('carries topic messages between clients on different nodes; a killed node drops only its clients, who reconnect', async () => {
    // One at a time, so that round-robin puts two on each node.
    const group: Client[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await openClient(`${nginx.url}/topics/lb`);
      group.push(c);
      clients.push(c);
    }
    await waitFor('all three nodes subscribed', async () => (await nodesSubscribed('lb')) === 3);
    await exchange(group, 'a', 50);

    const victim = nodes[1];
    assert.ok(victim !== undefined);
    await victim.child.kill();
    await waitFor('the victim’s clients to be dropped', () => group.filter((c) => !c.isOpen()).length >= 2);
    // nginx noticed at once; give anything else a moment to go wrong before counting.
    await waitFor('the dead node unsubscribed', async () => (await nodesSubscribed('lb')) === 2);
    const dropped = group.filter((c) => !c.isOpen());
    const kept = group.filter((c) => c.isOpen());
    assert.equal(dropped.length, 2, 'exactly the two clients the killed node held');
    assert.equal(kept.length, 4);

    // The dropped clients reconnect through nginx, which skips the dead node.
    const back = await Promise.all(dropped.map(() => openClient(`${nginx.url}/topics/lb`)));
    clients.push(...back);
    await exchange([...kept, ...back], 'b', 50);
    assert.ok(kept.every((c) => c.isOpen()), 'the survivors’ clients were never disturbed');
  });
});
