/**
 * The chat's channels across a node crash (issue 11, test/scale): three
 * `fullduplex serve --redis` nodes behind Debian's nginx round-robin, one
 * real Redis, channels clients (fullduplex/client in Node, on the package's
 * own WebSocket) connecting only through nginx to /channels.
 *
 * A client on node X keeps its place in `chat:<room>` while X is killed with
 * SIGKILL and a client on another node keeps publishing: it reconnects
 * through nginx to a surviving node and gets every publication it missed
 * once, in offset order, with `recovered: true`, before any new one
 * (PROTOCOL.md §7). The dead node's clients then drop out of `presence`
 * within `presenceTtl` (PROTOCOL.md §8: 30 s by default, which serve uses).
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client, type Publication } from '../../src/client-lib/index.js';
import type { SubscribedEvent } from '../../src/client-lib/types.js';
import { WebSocket } from '../../src/index.js';
import type { Nginx } from '../helpers/nginx.js';
import { type ServeNode, startBalancedNodes, waitFor } from '../helpers/nodes.js';
import type { RedisServer } from '../helpers/redis.js';

const ROOM = 'chat:failover';
/** presenceTtl (PROTOCOL.md §8), which `serve` leaves at its default. */
const PRESENCE_TTL = 30_000;
/** Slack for a loaded 2-core machine on top of the documented bound. */
const MARGIN = 8_000;
/** Publications B makes before the kill, while X is being killed, and after A is back. */
const BEFORE = 8;
const DURING = 16;
const AFTER = 5;
/** B's pace: under the server's publishRate (20/s, burst 40, PROTOCOL.md §8). */
const PACE_MS = 60;

let nodes: ServeNode[] = [];
let nginx: Nginx;
let stop: (() => Promise<void>) | undefined;
const clients: Client[] = [];
let releaseGate = (): void => {};

before(async () => {
  ({ nodes, nginx, stop } = await startBalancedNodes());
});

after(async () => {
  releaseGate();
  for (const c of clients) c.disconnect();
  await stop?.();
});

/**
 * Open sockets of each node process (Linux /proc/PID/fd). nginx opens one
 * upstream connection per WebSocket and keeps no idle ones (no `keepalive`
 * in its config), so the node a client landed on is the one whose count went
 * up when it connected. (Not /proc/net/tcp: on a busy machine that table
 * changes while it is read, and a connection can be missed.)
 */
function connectionsPerNode(): Map<ServeNode, number> {
  const count = (pid: number | undefined): number => {
    if (pid === undefined) return 0;
    let sockets = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++;
      } catch {
        // Closed since the listing.
      }
    }
    return sockets;
  };
  return new Map(nodes.map((n) => [n, count(n.child.process.pid)]));
}

interface Member {
  client: Client;
  got: Publication[];
  subscribed: SubscribedEvent[];
  /** Subscribed events and publication offsets, in arrival order. */
  log: string[];
  node: ServeNode;
}

/** Connects `name` through nginx (WebSocket only), subscribes to ROOM, and finds the node it landed on. */
async function join(name: string, options: { reconnect?: boolean; token?: () => Promise<string> } = {}): Promise<Member> {
  const before = connectionsPerNode();
  const client = new Client(`${nginx.url}/channels`, {
    WebSocket,
    token: options.token ?? name,
    transports: ['websocket'],
    reconnect: options.reconnect ?? true,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
    timeout: 3000,
  });
  clients.push(client);
  const got: Publication[] = [];
  const subscribed: SubscribedEvent[] = [];
  const log: string[] = [];
  const sub = client.subscribe(ROOM, { recover: true });
  sub.on('publication', (p) => {
    got.push(p);
    log.push(`pub ${p.offset}`);
  });
  sub.on('subscribed', (e) => {
    subscribed.push(e);
    log.push('subscribed');
  });
  client.connect();
  await waitFor(`${name} subscribed`, () => subscribed.length === 1);
  let node: ServeNode | undefined;
  await waitFor(`the node ${name} landed on`, () => {
    const now = connectionsPerNode();
    const grew = nodes.filter((n) => (now.get(n) ?? 0) > (before.get(n) ?? 0));
    node = grew.length === 1 ? grew[0] : undefined;
    return node !== undefined;
  });
  assert.ok(node !== undefined);
  return { client, got, subscribed, log, node };
}

/** Joins until round-robin puts the member on (or off) `node`; the others are disconnected. */
async function joinWhere(name: string, wanted: (n: ServeNode) => boolean, options: { reconnect?: boolean } = {}): Promise<Member> {
  for (let attempt = 0; attempt < 6; attempt++) {
    const m = await join(name, options);
    if (wanted(m.node)) return m;
    const count = connectionsPerNode().get(m.node) ?? 0;
    m.client.disconnect();
    await waitFor(`${name}'s extra connection closed`, () => (connectionsPerNode().get(m.node) ?? 0) < count);
  }
  assert.fail(`nginx never put ${name} where wanted in 6 tries`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const text = (p: Publication): string => (p.data as { text: string }).text;
const texts = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('channels through nginx round-robin: a node killed under a subscribed client', () => {
  it('the client recovers what it missed on another node, once and in order; the dead node leaves presence within presenceTtl', { timeout: 58_000 }, async () => {
    // A's reconnections wait at this gate until B has published a few messages
    // after A lost its node, so there is always something to recover.
    let gate: Promise<void> | null = null;
    const ada = await join('Ada', {
      token: async () => {
        if (gate !== null) await gate;
        return 'Ada';
      },
    });
    const x = ada.node;
    // Another client of X, which does not come back: presence must drop it.
    const carol = await joinWhere('Carol', (n) => n === x, { reconnect: false });
    const bob = await joinWhere('Bob', (n) => n !== x);
    const adaOnX = ada.client.clientId;
    const carolOnX = carol.client.clientId;
    assert.ok(adaOnX !== null && carolOnX !== null && bob.client.clientId !== null);
    const ids = async (): Promise<string[]> => (await bob.client.presence(ROOM)).map((e) => e.client);
    await waitFor('all three in presence', async () => {
      const now = await ids();
      return [adaOnX, carolOnX, bob.client.clientId].every((id) => id !== null && now.includes(id));
    });

    for (const t of texts('before', BEFORE)) {
      await bob.client.publish(ROOM, { text: t });
      await sleep(PACE_MS);
    }
    await waitFor('the live messages at Ada', () => ada.got.length === BEFORE);

    let published = 0;
    let publishedAtDrop: number | null = null;
    gate = new Promise<void>((resolve) => (releaseGate = resolve));
    ada.client.on('disconnected', () => (publishedAtDrop ??= published));
    const publisher = (async () => {
      try {
        for (const t of texts('during', DURING)) {
          await bob.client.publish(ROOM, { text: t });
          published++;
          if (publishedAtDrop !== null && published - publishedAtDrop >= 5) releaseGate();
          await sleep(PACE_MS);
        }
      } finally {
        releaseGate();
      }
    })();
    await sleep(2 * PACE_MS);
    const killedAt = Date.now();
    await x.child.kill();
    await publisher;
    assert.ok(publishedAtDrop !== null, 'Ada was disconnected when her node died');

    await waitFor('Ada resubscribed on a surviving node', () => ada.subscribed.length === 2, 20_000);
    await waitFor('every missed message at Ada', () => ada.got.length === BEFORE + DURING, 20_000);
    for (const t of texts('after', AFTER)) await bob.client.publish(ROOM, { text: t });
    await waitFor('the new messages at Ada', () => ada.got.length === BEFORE + DURING + AFTER, 20_000);

    const back = ada.subscribed[1];
    assert.ok(back !== undefined);
    assert.equal(back.recovered, true, `recovery failed: ${back.reason ?? ''}`);
    assert.ok(back.missed >= 5, `at least the 5 messages published while Ada was away were missed (missed ${back.missed})`);
    assert.notEqual(ada.client.clientId, adaOnX, 'a new session');
    assert.ok(ada.client.connected && carol.client.state === 'disconnected');
    // Every message once, in publication order, offsets consecutive.
    assert.deepEqual(ada.got.map(text), [...texts('before', BEFORE), ...texts('during', DURING), ...texts('after', AFTER)]);
    const first = ada.got[0]?.offset ?? 0;
    assert.deepEqual(ada.got.map((p) => p.offset), Array.from({ length: ada.got.length }, (_, i) => first + i));
    // The recovered ones came right after the resubscription, before anything live.
    const at = ada.log.lastIndexOf('subscribed');
    const lastOnX = Number(/^pub (\d+)$/.exec(ada.log[at - 1] ?? '')?.[1]);
    assert.ok(lastOnX >= first + BEFORE - 1, `the last message Ada got on X: ${ada.log[at - 1] ?? ''}`);
    assert.equal(back.offset, lastOnX + back.missed, 'the resubscription covers exactly the messages after the last one seen on X');
    assert.deepEqual(ada.log.slice(at + 1, at + 1 + back.missed), Array.from({ length: back.missed }, (_, i) => `pub ${lastOnX + 1 + i}`));

    // Presence: the dead node refreshes nothing, so its entries expire.
    const bound = PRESENCE_TTL + MARGIN;
    await waitFor(
      `X's clients gone from presence within ${bound} ms of the kill`,
      async () => {
        const now = await ids();
        return !now.includes(adaOnX) && !now.includes(carolOnX);
      },
      Math.max(0, killedAt + bound - Date.now()),
      250,
    );
    const now = await ids();
    assert.ok(ada.client.clientId !== null && now.includes(ada.client.clientId), 'Ada’s new session is present');
    assert.ok(bob.client.clientId !== null && now.includes(bob.client.clientId), 'Bob is still present');
  });
});
