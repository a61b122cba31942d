/**
 * RedisChannelStore against a real redis-server: the ChannelStore contract of
 * the channels layer (offsets within an epoch, history trimming, expiry,
 * presence expiry) shared by several nodes, with atomic offsets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisChannelStore } from '../../src/redis/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const H = { size: 3, ttl: 60_000 };
let redis: RedisServer;
const stores: RedisChannelStore[] = [];
let prefixes = 0;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await redis.cleanup();
});

/** `n` stores (nodes) sharing one prefix of their own. */
async function nodes(n: number): Promise<RedisChannelStore[]> {
  const prefix = `cs${++prefixes}`;
  const made = Array.from({ length: n }, () => new RedisChannelStore({ url: redis.url, prefix }));
  stores.push(...made);
  await Promise.all(made.map((s) => s.ready()));
  return made;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('RedisChannelStore streams', () => {
  it('offsets count from 1 within an epoch, seen alike from every node; reads since a position or the newest n', async () => {
    const [a, b] = await nodes(2);
    assert.ok(a !== undefined && b !== undefined);
    const p0 = await a.position('c', H);
    assert.equal(p0.offset, 0);
    const x = await a.append('c', '{"data":1}', H);
    const y = await b.append('c', '{"data":2}', H);
    assert.deepEqual([x.offset, y.offset, x.epoch, y.epoch], [1, 2, p0.epoch, p0.epoch]);
    const r = await b.read('c', { offset: 0, epoch: p0.epoch }, 10, H);
    assert.deepEqual(r, { ok: true, top: { offset: 2, epoch: p0.epoch }, publications: [{ offset: 1, payload: '{"data":1}' }, { offset: 2, payload: '{"data":2}' }] });
    const newest = await a.read('c', null, 1, H);
    assert.ok(newest.ok);
    assert.deepEqual(newest.publications.map((p) => p.offset), [2]);
    const limited = await a.read('c', { offset: 0, epoch: p0.epoch }, 1, H);
    assert.ok(limited.ok);
    assert.deepEqual(limited.publications.map((p) => p.offset), [1]);
    assert.equal((await a.append('d', '{}', H)).offset, 1, 'channels are independent');
  });

  it('concurrent appends from three nodes get distinct, gapless offsets', async () => {
    const three = await nodes(3);
    const all = await Promise.all(three.flatMap((s, n) => Array.from({ length: 300 }, (_, i) => s.append('hot', `{"n":${n},"i":${i}}`, { size: 1000, ttl: 60_000 }))));
    const offsets = all.map((p) => p.offset).sort((x, y) => x - y);
    assert.deepEqual(offsets, Array.from({ length: 900 }, (_, i) => i + 1));
    assert.equal(new Set(all.map((p) => p.epoch)).size, 1);
  });

  it('keeps the last `size`: older positions are "trimmed"; other epochs and future offsets are "epoch"; size 0 is "no_history"', async () => {
    const [s] = await nodes(1);
    assert.ok(s !== undefined);
    const { epoch } = await s.position('c', H);
    for (let i = 1; i <= 5; i++) await s.append('c', `{"data":${i}}`, H);
    const ok = await s.read('c', { offset: 2, epoch }, 10, H);
    assert.ok(ok.ok);
    assert.deepEqual(ok.publications.map((p) => p.offset), [3, 4, 5]);
    assert.deepEqual(await s.read('c', { offset: 1, epoch }, 10, H), { ok: false, top: { offset: 5, epoch }, reason: 'trimmed' });
    assert.deepEqual(await s.read('c', { offset: 5, epoch }, 10, H), { ok: true, top: { offset: 5, epoch }, publications: [] });
    assert.equal(((await s.read('c', { offset: 1, epoch: 'old' }, 10, H)) as { reason: string }).reason, 'epoch');
    assert.equal(((await s.read('c', { offset: 9, epoch }, 10, H)) as { reason: string }).reason, 'epoch');
    assert.equal(((await s.read('c', { offset: 1, epoch }, 10, { size: 0, ttl: 0 })) as { reason: string }).reason, 'no_history');
  });

  it('a stream expires `ttl` after its last append: a new epoch, and recovery from the old one says "expired"', async () => {
    const [s] = await nodes(1);
    assert.ok(s !== undefined);
    const T = { size: 3, ttl: 300 };
    const first = await s.append('c', '{"data":1}', T);
    await sleep(150);
    await s.read('c', null, 1, T); // reads do not extend the life
    await sleep(400);
    const later = await s.position('c', T);
    assert.notEqual(later.epoch, first.epoch);
    assert.equal(later.offset, 0);
    assert.equal(((await s.read('c', first, 10, T)) as { reason: string }).reason, 'expired');
    // Appends do extend it.
    const e = await s.append('c', '{}', { size: 3, ttl: 1500 });
    await sleep(700);
    await s.append('c', '{}', { size: 3, ttl: 1500 });
    await sleep(700);
    assert.equal((await s.position('c', { size: 3, ttl: 1500 })).epoch, e.epoch);
  });

  it('hostile channel names are separate streams', async () => {
    const [s] = await nodes(1);
    assert.ok(s !== undefined);
    const names = ['', ':', '{x}', 'a}b{', '%7Bx%7D', '\uD800', 'é', 'a:b', 'a%3Ab'];
    for (const n of names) await s.append(n, JSON.stringify(n), H);
    for (const n of names) {
      const r = await s.read(n, null, 10, H);
      assert.ok(r.ok);
      assert.deepEqual(r.publications, [{ offset: 1, payload: JSON.stringify(n) }], JSON.stringify(n));
    }
  });
});

describe('RedisChannelStore presence', () => {
  it('entries are shared by every node, removed on leave, and expire unless refreshed', async () => {
    const [a, b] = await nodes(2);
    assert.ok(a !== undefined && b !== undefined);
    await a.presenceAdd('room', 'c1', '{"user":"ann"}', 60_000);
    await b.presenceAdd('room', 'c2', '{"user":"bob"}', 400);
    assert.deepEqual([...(await a.presenceList('room'))].sort(), [['c1', '{"user":"ann"}'], ['c2', '{"user":"bob"}']]);
    await sleep(250);
    await b.presenceAdd('room', 'c2', '{"user":"bob"}', 400); // refreshed
    await sleep(250);
    assert.ok((await a.presenceList('room')).has('c2'), 'a refreshed entry lives on');
    await sleep(400); // b "died": no refresh
    assert.deepEqual([...(await a.presenceList('room')).keys()], ['c1']);
    await a.presenceRemove('room', 'c1');
    assert.equal((await b.presenceList('room')).size, 0);
  });
});

describe('RedisChannelStore.close() when Redis does not answer', () => {
  // node-redis' close() waits for the reply to every command already sent: a
  // node shutting down while its Redis hangs, or dies unseen, would never finish.
  it('a hung Redis (SIGSTOP): close() gives up on the reply after a grace and fails the command, instead of waiting', async (t) => {
    const own = await startRedis();
    t.after(() => own.cleanup());
    const store = new RedisChannelStore({ url: own.url, prefix: 'hung', onError: () => {} });
    await store.ready();
    own.pause();
    const sent = store.presenceRemove('c', 'client-1').then(
      () => 'answered',
      () => 'failed',
    );
    await sleep(50);
    const started = Date.now();
    const first = await Promise.race([store.close().then(() => 'closed'), sleep(8000).then(() => 'still closing')]);
    assert.equal(first, 'closed', `close() after ${Date.now() - started} ms`);
    assert.equal(await Promise.race([sent, sleep(1000).then(() => 'still pending')]), 'failed');
    own.resume();
  });

  it('a stopped Redis: close() returns at once and fails what was queued', async (t) => {
    const own = await startRedis();
    t.after(() => own.cleanup());
    const store = new RedisChannelStore({ url: own.url, prefix: 'down', onError: () => {} });
    await store.ready();
    await own.stop();
    const queued = store.presenceRemove('c', 'client-1').then(
      () => 'answered',
      () => 'failed',
    );
    const first = await Promise.race([store.close().then(() => 'closed'), sleep(8000).then(() => 'still closing')]);
    assert.equal(first, 'closed');
    assert.equal(await Promise.race([queued, sleep(1000).then(() => 'still pending')]), 'failed');
  });
});
