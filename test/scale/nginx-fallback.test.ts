/**
 * The HTTP fallback behind a round-robin load balancer without sticky
 * sessions (PROTOCOL.md §9): three `fullduplex serve --redis` nodes, Debian's
 * nginx in front of them, and in front of nginx a proxy that strips
 * `Upgrade`, so the channels clients (fullduplex/client in Node) must fall
 * back to SSE + POST. Each client's stream stays on the node that opened it
 * while its POSTs are spread over all three by nginx; a POST that lands on
 * another node reaches the session through Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, type Publication } from '../../src/client-lib/index.js';
import { WebSocket } from '../../src/index.js';
import type { Nginx } from '../helpers/nginx.js';
import { startBalancedNodes, waitFor } from '../helpers/nodes.js';
import { NoUpgradeProxy } from '../helpers/proxies.js';

let nginx: Nginx;
let stop: (() => Promise<void>) | undefined;
let proxy: NoUpgradeProxy;
const clients: Client[] = [];

before(async () => {
  ({ nginx, stop } = await startBalancedNodes());
  proxy = await NoUpgradeProxy.start(nginx.port, 'strip');
});

after(async () => {
  for (const c of clients) c.disconnect();
  await proxy?.close();
  await stop?.();
});

interface Member {
  client: Client;
  got: Publication[];
}

async function join(name: string, room: string): Promise<Member> {
  const client = new Client(`ws://127.0.0.1:${proxy.port}/channels`, { WebSocket, token: name, minReconnectDelay: 50, maxReconnectDelay: 500 });
  clients.push(client);
  const got: Publication[] = [];
  const sub = client.subscribe(room);
  sub.on('publication', (p) => got.push(p));
  const subscribed = new Promise<void>((resolve, reject) => {
    sub.on('subscribed', () => resolve());
    sub.on('error', (e) => reject(new Error(`${name}: subscribe failed: ${e.code} ${e.message}`)));
  });
  client.connect();
  await subscribed;
  return { client, got };
}

describe('the fallback through nginx round-robin, no sticky sessions', () => {
  it('clients on SSE + POST publish and receive through any node, each message once and in order', async () => {
    const ada = await join('Ada', 'chat:lb');
    const grace = await join('Grace', 'chat:lb');
    assert.equal(ada.client.transport, 'sse');
    assert.equal(grace.client.transport, 'sse');
    assert.ok(proxy.upgradeAttempts >= 2, 'the clients tried a WebSocket first');

    // Every publish is a POST that nginx sends to the next node in turn: with
    // three nodes, most land away from the node holding the session.
    const count = 6;
    for (let i = 0; i < count; i++) {
      const [a, g] = await Promise.all([ada.client.publish('chat:lb', { text: `ada ${i}` }), grace.client.publish('chat:lb', { text: `grace ${i}` })]);
      assert.ok(a.offset > 0 && g.offset > 0);
    }
    const texts = (m: Member, who: string): string[] =>
      m.got.map((p) => (p.data as { text: string }).text).filter((t) => t.startsWith(who));
    await waitFor('every message at both clients', () => [ada, grace].every((m) => m.got.length >= 2 * count), 30_000);
    const inOrder = (who: string): string[] => Array.from({ length: count }, (_, i) => `${who} ${i}`);
    for (const m of [ada, grace]) {
      assert.equal(m.got.length, 2 * count);
      assert.deepEqual(texts(m, 'ada'), inOrder('ada'));
      assert.deepEqual(texts(m, 'grace'), inOrder('grace'));
    }
    assert.equal(ada.client.transport, 'sse');
    assert.equal(grace.client.transport, 'sse');
  });
});
