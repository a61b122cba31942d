/**
 * PROTOCOL.md §7 without sockets: the MemoryStore's streams (offsets,
 * epochs, trimming, expiry, presence expiry), the Hub's ordering of
 * publications that arrive out of order or twice, and the client
 * subscription's exactly-once delivery across resubscribes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/channels/memory-store.js';
import { Hub, type HubHost } from '../../src/channels/hub.js';
import { pubFrame } from '../../src/channels/frames.js';
import { encodeEvent, encodePublication } from '../../src/channels/wire.js';
import { LocalBroker } from '../../src/pubsub/local.js';
import { Session } from '../../src/channels/session.js';
import { Roster } from '../../src/channels/presence.js';
import { Subscription, type SubscriptionHost } from '../../src/client-lib/subscription.js';
import type { Frame } from '../../src/client-lib/transport.js';
import type { Publication, SubscribedEvent } from '../../src/client-lib/types.js';

const H = { size: 3, ttl: 1000 };

describe('§7 MemoryStore streams', () => {
  it('offsets count from 1 within an epoch; reads since a position, or the newest n', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const p0 = await store.position('c', H);
    assert.equal(p0.offset, 0);
    const a = await store.append('c', '{"data":1}', H);
    const b = await store.append('c', '{"data":2}', H);
    assert.deepEqual([a.offset, b.offset, a.epoch === p0.epoch, b.epoch === p0.epoch], [1, 2, true, true]);
    const r = await store.read('c', { offset: 0, epoch: p0.epoch }, 10, H);
    assert.deepEqual(r, { ok: true, top: { offset: 2, epoch: p0.epoch }, publications: [{ offset: 1, payload: '{"data":1}' }, { offset: 2, payload: '{"data":2}' }] });
    const newest = await store.read('c', null, 1, H);
    assert.ok(newest.ok);
    assert.deepEqual(newest.publications.map((p) => p.offset), [2]);
    const limited = await store.read('c', { offset: 0, epoch: p0.epoch }, 1, H);
    assert.ok(limited.ok);
    assert.deepEqual(limited.publications.map((p) => p.offset), [1]);
    // Channels are independent.
    assert.equal((await store.append('d', '{}', H)).offset, 1);
  });

  it('keeps the last `size`: older positions are "trimmed"; other epochs are "epoch"; a future offset is "epoch"', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const { epoch } = await store.position('c', H);
    for (let i = 1; i <= 5; i++) await store.append('c', `{"data":${i}}`, H);
    const ok = await store.read('c', { offset: 2, epoch }, 10, H);
    assert.ok(ok.ok);
    assert.deepEqual(ok.publications.map((p) => p.offset), [3, 4, 5]);
    assert.deepEqual(await store.read('c', { offset: 1, epoch }, 10, H), { ok: false, top: { offset: 5, epoch }, reason: 'trimmed' });
    assert.equal(((await store.read('c', { offset: 1, epoch: 'old' }, 10, H)) as { reason: string }).reason, 'epoch');
    assert.equal(((await store.read('c', { offset: 9, epoch }, 10, H)) as { reason: string }).reason, 'epoch');
    assert.equal(((await store.read('c', { offset: 1, epoch }, 10, { size: 0, ttl: 0 })) as { reason: string }).reason, 'no_history');
  });

  it('a stream expires `ttl` after its last append: a new epoch, and recovery from the old one says "expired"', async (t) => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now });
    t.after(() => store.close());
    const first = await store.append('c', '{"data":1}', H);
    now += 900;
    await store.read('c', null, 1, H);
    now += 200; // 1100 ms after the append: reads do not extend the life
    const after = await store.position('c', H);
    assert.notEqual(after.epoch, first.epoch);
    assert.equal(after.offset, 0);
    assert.equal(((await store.read('c', first, 10, H)) as { reason: string }).reason, 'expired');
    // Appends do extend it.
    const e = await store.append('c', '{}', H);
    now += 900;
    await store.append('c', '{}', H);
    now += 900;
    assert.equal((await store.position('c', H)).epoch, e.epoch);
  });

  it('presence entries expire unless refreshed (a dead node\'s entries vanish within the ttl)', async (t) => {
    let now = 0;
    const store = new MemoryStore({ now: () => now });
    t.after(() => store.close());
    await store.presenceAdd('c', 'a', '{"client":"a"}', 100);
    await store.presenceAdd('c', 'b', '{"client":"b"}', 100);
    now = 60;
    await store.presenceAdd('c', 'a', '{"client":"a"}', 100);
    now = 120;
    assert.deepEqual([...(await store.presenceList('c')).keys()], ['a']);
    await store.presenceRemove('c', 'a');
    assert.equal((await store.presenceList('c')).size, 0);
  });
});

class ListSession extends Session {
  readonly transport = 'sse' as const;
  readonly got: string[] = [];
  send(text: string): void {
    this.got.push(text);
  }
  get bufferedAmount(): number {
    return 0;
  }
  attachFanout(): boolean {
    return false;
  }
  detachFanout(): void {}
  protected end(): void {}
}

async function hubWith(store: MemoryStore, gapWait = 20) {
  const broker = new LocalBroker();
  const fanned: string[] = [];
  const host: HubHost = {
    broker,
    store,
    gapWait,
    fanout: (_c, frame) => fanned.push(frame.toString()),
    hubEmpty: () => undefined,
    reportError: (err) => {
      throw err;
    },
  };
  const hub = new Hub(host, 'c', { history: H, presence: false, publish: true });
  await hub.ready;
  return { hub, broker, fanned, offsets: () => fanned.map((f) => (JSON.parse(f) as { offset?: number }).offset ?? 0) };
}

function pub(hub: Hub, offset: number, epoch: string): void {
  hub.deliver(encodePublication('c', offset, epoch, pubFrame('c', offset, epoch, `{"data":${offset}}`)));
}

describe('§7 the hub: in order, once', () => {
  it('drops duplicates and holds an out-of-order publication until the gap closes', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const { hub, offsets } = await hubWith(store, 5_000);
    const e = hub.epoch;
    pub(hub, 1, e);
    pub(hub, 1, e);
    pub(hub, 3, e);
    pub(hub, 4, e);
    assert.deepEqual(offsets(), [1]);
    pub(hub, 2, e);
    assert.deepEqual(offsets(), [1, 2, 3, 4]);
    pub(hub, 3, e);
    assert.deepEqual(offsets(), [1, 2, 3, 4]);
    hub.acquire();
    hub.release(new ListSession({ transport: 'sse', headers: {}, url: '/', origin: undefined, remoteAddress: undefined }, 0));
  });

  it('fills a gap that does not close from the store, or skips it when the store cannot', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const { hub, offsets } = await hubWith(store);
    for (let i = 1; i <= 3; i++) await store.append('c', `{"data":${i}}`, H);
    const e = hub.epoch;
    pub(hub, 1, e);
    pub(hub, 3, e); // 2 never comes through the broker
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(offsets(), [1, 2, 3]);
    // Offsets 4..9 were appended but only 9 arrives; the store keeps 3 (7, 8, 9): 4..6 are skipped.
    for (let i = 4; i <= 9; i++) await store.append('c', `{"data":${i}}`, H);
    pub(hub, 9, e);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(offsets(), [1, 2, 3, 7, 8, 9]);
    hub.acquire();
    hub.release(new ListSession({ transport: 'sse', headers: {}, url: '/', origin: undefined, remoteAddress: undefined }, 0));
  });

  it('catches up with the store on publications that never arrived and left no gap', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const { hub, offsets } = await hubWith(store);
    for (let i = 1; i <= 2; i++) await store.append('c', `{"data":${i}}`, H);
    await hub.catchUp();
    assert.deepEqual(offsets(), [1, 2]);
    await hub.catchUp();
    assert.deepEqual(offsets(), [1, 2], 'nothing new: nothing delivered');
    hub.acquire();
    hub.release(new ListSession({ transport: 'sse', headers: {}, url: '/', origin: undefined, remoteAddress: undefined }, 0));
  });

  it('a buffering member gets everything delivered meanwhile, in order, events included', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const { hub } = await hubWith(store);
    const s = new ListSession({ transport: 'sse', headers: {}, url: '/', origin: undefined, remoteAddress: undefined }, 0);
    hub.acquire();
    hub.startBuffering(s);
    pub(hub, 1, hub.epoch);
    hub.deliver(encodeEvent('c', '{"type":"join","channel":"c","client":"x","user":""}'));
    pub(hub, 2, hub.epoch);
    assert.deepEqual(s.got, []);
    assert.deepEqual(hub.takeBuffered(s).map((b) => b.offset), [1, 0, 2]);
    hub.goLive(s);
    pub(hub, 3, hub.epoch);
    assert.equal(s.got.length, 1);
    hub.release(s);
  });

  it('follows a new epoch (the stream was made anew)', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const { hub, offsets } = await hubWith(store);
    pub(hub, 1, hub.epoch);
    pub(hub, 1, 'fresh');
    pub(hub, 2, 'fresh');
    assert.deepEqual(offsets(), [1, 1, 2]);
    assert.equal(hub.epoch, 'fresh');
    hub.acquire();
    hub.release(new ListSession({ transport: 'sse', headers: {}, url: '/', origin: undefined, remoteAddress: undefined }, 0));
  });
});

describe('§7 client subscription: exactly once across resubscribes', () => {
  function fakeHost(): SubscriptionHost & { replies: ((f: Frame) => void)[]; sent: Record<string, unknown>[] } {
    const replies: ((f: Frame) => void)[] = [];
    const sent: Record<string, unknown>[] = [];
    return {
      replies,
      sent,
      connected: true,
      call(frame, done) {
        sent.push(frame);
        replies.push((f) => done(null, f));
      },
      request: () => Promise.reject(new Error('unused')),
      delivered: () => undefined,
      malformed: () => undefined,
      forget: () => undefined,
      publish: () => Promise.reject(new Error('unused')),
      history: () => Promise.reject(new Error('unused')),
      presence: () => Promise.reject(new Error('unused')),
    };
  }

  it('recovers from its last position, delivers missed ones once, ignores replays, and reports recovered:false', () => {
    const host = fakeHost();
    const sub = new Subscription(host, 'c');
    const got: number[] = [];
    const events: SubscribedEvent[] = [];
    sub.on('publication', (p: Publication) => got.push(p.offset));
    sub.on('subscribed', (e) => events.push(e));
    sub.start();
    assert.deepEqual(host.sent[0], { type: 'subscribe', channel: 'c' });
    host.replies[0]?.({ type: 'subscribed', offset: 5, epoch: 'E' });
    sub.pub({ channel: 'c', offset: 6, epoch: 'E', data: 6 });
    sub.pub({ channel: 'c', offset: 6, epoch: 'E', data: 6 });
    sub.lost();
    sub.start();
    assert.deepEqual(host.sent[1], { type: 'subscribe', channel: 'c', recover: { offset: 6, epoch: 'E' } });
    host.replies[1]?.({
      type: 'subscribed',
      offset: 8,
      epoch: 'E',
      recovered: true,
      publications: [
        { offset: 6, data: 6 },
        { offset: 7, data: 7 },
        { offset: 8, data: 8 },
      ],
    });
    sub.pub({ channel: 'c', offset: 8, epoch: 'E', data: 8 });
    sub.pub({ channel: 'c', offset: 9, epoch: 'E', data: 9 });
    assert.deepEqual(got, [6, 7, 8, 9]);
    assert.deepEqual(events[1], { channel: 'c', offset: 8, epoch: 'E', missed: 3, recovered: true });
    sub.lost();
    sub.start();
    host.replies[2]?.({ type: 'subscribed', offset: 2, epoch: 'F', recovered: false, reason: 'epoch' });
    assert.deepEqual(events[2], { channel: 'c', offset: 2, epoch: 'F', missed: 0, recovered: false, reason: 'epoch' });
    assert.deepEqual(sub.position, { offset: 2, epoch: 'F' });
    sub.pub({ channel: 'c', offset: 3, epoch: 'F', data: 3 });
    assert.deepEqual(got, [6, 7, 8, 9, 3]);
  });

  it('a 409 on subscribe (the server still holds the channel) is cleared by one unsubscribe and retry', () => {
    const host = fakeHost();
    const fails: ((err: { code: number; message: string } | null) => void)[] = [];
    host.call = (frame, done) => {
      host.sent.push(frame);
      fails.push((err) => (err ? done(err) : done(null, { type: frame.type === 'unsubscribe' ? 'unsubscribed' : 'subscribed', offset: 0, epoch: 'E' })));
    };
    const sub = new Subscription(host, 'c');
    const errors: unknown[] = [];
    sub.on('error', (e) => errors.push(e));
    sub.start();
    fails[0]?.({ code: 409, message: 'already subscribed' });
    assert.equal(host.sent[1]?.type, 'unsubscribe');
    fails[1]?.(null);
    assert.equal(host.sent[2]?.type, 'subscribe');
    fails[2]?.({ code: 409, message: 'already subscribed' });
    assert.equal(errors.length, 1, 'a second 409 is a refusal');
    assert.equal(sub.state, 'unsubscribed');
  });

  it('starts from a position given by the application (`since`)', () => {
    const host = fakeHost();
    const sub = new Subscription(host, 'c', { since: { offset: 41, epoch: 'S' } });
    sub.start();
    assert.deepEqual(host.sent[0], { type: 'subscribe', channel: 'c', recover: { offset: 41, epoch: 'S' } });
    const noRecover = new Subscription(host, 'd', { since: { offset: 41, epoch: 'S' }, recover: false });
    noRecover.start();
    assert.deepEqual(host.sent[1], { type: 'subscribe', channel: 'd' });
  });
});

describe('presence roster: healing when a node dies silently', () => {
  it('acts on a difference with the store only when it persists over two lists', () => {
    const r = new Roster();
    const a = '{"client":"a","user":"ann"}';
    const b = '{"client":"b","user":"bob"}';
    assert.deepEqual(r.reconcile('c', new Map([['a', a]])), [], 'the first list is taken as it is');
    r.observe('{"type":"join","channel":"c","client":"b","user":"bob"}');
    // b joined but the list was read before the store had it: no leave yet.
    assert.deepEqual(r.reconcile('c', new Map([['a', a]])), []);
    assert.deepEqual(r.reconcile('c', new Map([['a', a], ['b', b]])), []);
    // a's node died: gone from the store on two lists in a row.
    assert.deepEqual(r.reconcile('c', new Map([['b', b]])), []);
    assert.deepEqual(r.reconcile('c', new Map([['b', b]])), ['{"type":"leave","channel":"c","client":"a","user":"ann"}']);
    // An entry nobody announced (its join was lost) shows up after two lists.
    const d = '{"client":"d","user":"dee"}';
    assert.deepEqual(r.reconcile('c', new Map([['b', b], ['d', d]])), []);
    assert.deepEqual(r.reconcile('c', new Map([['b', b], ['d', d]])), ['{"type":"join","channel":"c","client":"d","user":"dee"}']);
    r.observe('{"type":"leave","channel":"c","client":"d","user":"dee"}');
    assert.deepEqual(r.reconcile('c', new Map([['b', b]])), []);
  });
});
