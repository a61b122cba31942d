/**
 * RedisBroker when Redis goes away and comes back, and against a Redis that
 * wants credentials: local delivery goes on, cross-node publishes fail
 * visibly (callback, onError, diagnostics channel) without queueing, the
 * broker reconnects, re-subscribes and cross-node delivery resumes.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, describe, it } from 'node:test';
import { TopicMessage } from '../../src/pubsub/message.js';
import { type BrokerErrorEvent, RedisBroker } from '../../src/redis/index.js';
import { TcpProxy, recordNumbers, until } from '../helpers/channels.js';
import { withTimeout } from '../helpers/raw-client.js';
import { mustOpen, post } from '../helpers/sse.js';
import { TLS_CERT, TLS_KEY } from '../helpers/client-tls.js';
import { waitFor } from '../helpers/processes.js';
import { Sink, pubsubChannels, startRedis } from '../helpers/redis.js';
import { PublishStream, channelClient, channelNode, publishWhenBack, twoChannelNodes, watchCrashes, wsClient, wsNode } from '../helpers/redis-outage.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('Redis stops and restarts mid-stream', () => {
  it('local delivery continues, publishes fail at once, then the broker resubscribes and delivery resumes', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.cleanup());
    const errorsA: Error[] = [];
    const errorsB: Error[] = [];
    const a = new RedisBroker({ url: redis.url, prefix: 'f', onError: (e) => errorsA.push(e) });
    const b = new RedisBroker({ url: redis.url, prefix: 'f', onError: (e) => errorsB.push(e) });
    cleanups.push(() => a.close(), () => b.close());
    await Promise.all([a.ready(), b.ready()]);
    const events: BrokerErrorEvent[] = [];
    const onEvent = (e: unknown): void => {
      events.push(e as BrokerErrorEvent);
    };
    subscribe('fullduplex:broker:error', onEvent);
    cleanups.push(async () => {
      unsubscribe('fullduplex:broker:error', onEvent);
    });

    const [sa, sb] = [new Sink(), new Sink()];
    a.subscribe('t', sa);
    b.subscribe('t', sb);
    await waitFor('a subscribed', async () => (await pubsubChannels(redis, 'f:*')).length === 1);

    // b publishes a numbered stream every 5 ms; callbacks record failures.
    let seq = 0;
    let failed = 0;
    const timer = setInterval(() => {
      b.publish('t', TopicMessage.from('t', String(seq++)), undefined, (err) => {
        if (err !== null) failed++;
      });
    }, 5);
    cleanups.push(async () => clearInterval(timer));
    await waitFor('the stream at a', () => sa.got.length >= 20);

    assert.ok(a.isReady && b.isReady);
    await redis.kill();
    await waitFor('publish callbacks with errors', () => failed >= 5);
    assert.equal(b.isReady, false);
    assert.ok(errorsB.length > 0, 'onError heard of the lost connection');
    assert.ok(events.some((e) => e.broker === b && e.operation === 'publish' && e.topic === 't'), 'diagnostics event for a failed publish');
    assert.ok(events.some((e) => e.operation === 'connection'), 'diagnostics event for the connection');

    // Local delivery is untouched.
    const before = sb.got.length;
    assert.equal(b.publish('t', TopicMessage.from('t', 'local')), 1);
    assert.equal(sb.got.length, before + 1);

    // Nothing queues while Redis is away: a burst fails at once, every callback is called.
    const burst = await Promise.all(
      Array.from({ length: 10_000 }, () => new Promise<Error | null>((resolve) => b.publish('t', TopicMessage.from('t', 'x'), undefined, resolve))),
    );
    assert.ok(burst.every((e) => e instanceof Error));

    // A topic subscribed during the outage is subscribed once Redis is back.
    const late = new Sink();
    a.subscribe('late', late);

    await redis.restart();
    await waitFor('b ready again', () => b.isReady, 30_000);
    const resumedFrom = seq;
    await waitFor('the stream at a again', () => sa.got.some((m) => Number(m) > resumedFrom), 30_000);
    await waitFor('both channels resubscribed', async () => (await pubsubChannels(redis, 'f:*')).join() === 'f:late,f:t', 30_000);
    clearInterval(timer);
    await new Promise<void>((resolve, reject) => b.publish('late', TopicMessage.from('late', 'welcome'), undefined, (e) => (e === null ? resolve() : reject(e))));
    await waitFor('the late topic at a', () => late.got.includes('welcome'));

    // Exactly once and in order on both sides of the outage.
    const nums = sa.got.map(Number);
    assert.ok(nums.every((n, i) => i === 0 || n > (nums[i - 1] as number)), 'increasing, no duplicates');
  });
});

describe('production Redis: credentials', () => {
  it('an ACL user with a password, limited to its prefix, carries topics; a wrong password is reported', async () => {
    const redis = await startRedis({ password: 'admin-secret' });
    cleanups.push(() => redis.cleanup());
    await redis.cli(['ACL', 'SETUSER', 'chat', 'on', '>chat-secret', 'resetchannels', '&chat:*', '+@all', '~*']);
    const url = `redis://chat:chat-secret@127.0.0.1:${redis.port}`;
    const a = new RedisBroker({ url, prefix: 'chat', onError: () => {} });
    const b = new RedisBroker({ url: redis.url, username: 'chat', password: 'chat-secret', prefix: 'chat', onError: () => {} });
    cleanups.push(() => a.close(), () => b.close());
    await Promise.all([a.ready(), b.ready()]);
    const s = new Sink();
    a.subscribe('room', s);
    await waitFor('subscribed', async () => (await pubsubChannels(redis, 'chat:*')).length === 1);
    b.publish('room', TopicMessage.from('room', 'hi'));
    await waitFor('delivered', () => s.got.includes('hi'));

    // The ACL user may not use another prefix's channels: the failure is reported, not thrown.
    const errors: Error[] = [];
    const other = new RedisBroker({ url, prefix: 'other', onError: (e) => errors.push(e) });
    cleanups.push(() => other.close());
    await other.ready();
    const err = await new Promise<Error | null>((resolve) => other.publish('room', TopicMessage.from('room', 'x'), undefined, resolve));
    assert.match(String(err?.message), /NOPERM/);

    const wrong: Error[] = [];
    const bad = new RedisBroker({ url: redis.url, username: 'chat', password: 'nope', prefix: 'chat', onError: (e) => wrong.push(e) });
    cleanups.push(() => bad.close());
    await waitFor('the authentication error', () => wrong.length > 0);
    assert.match(String(wrong[0]?.message), /WRONGPASS|invalid username-password/i);
  });
});

describe('production Redis: TLS', () => {
  it('rediss:// with the server certificate as CA carries topics between brokers', async () => {
    const redis = await startRedis({ tls: { cert: TLS_CERT, key: TLS_KEY } });
    cleanups.push(() => redis.cleanup());
    assert.match(redis.url, /^rediss:/);
    const a = new RedisBroker({ url: redis.url, tls: { ca: TLS_CERT }, prefix: 'tls', onError: () => {} });
    const b = new RedisBroker({ url: redis.url, tls: { ca: TLS_CERT }, prefix: 'tls', onError: () => {} });
    cleanups.push(() => a.close(), () => b.close());
    await Promise.all([a.ready(), b.ready()]);
    const s = new Sink();
    a.subscribe('secure', s);
    await waitFor('subscribed', async () => (await pubsubChannels(redis, 'tls:*')).length === 1);
    b.publish('secure', TopicMessage.from('secure', 'over tls'));
    await waitFor('delivered', () => s.got.includes('over tls'));

    // An untrusted certificate is an error reported to onError, not a crash.
    const errors: Error[] = [];
    const untrusting = new RedisBroker({ url: redis.url, prefix: 'tls', onError: (e) => errors.push(e) });
    cleanups.push(() => untrusting.close());
    await waitFor('the certificate error', () => errors.length > 0);
    assert.match(String(errors[0]?.message), /certificate/i);
  });
});

describe('WebSocketServers on RedisBrokers while Redis is killed and restarted', () => {
  it('publishes fail through their callback in bounded time, nothing crashes, and delivery across the nodes resumes', async () => {
    const crashes = watchCrashes(cleanups);
    const redis = await startRedis();
    cleanups.push(() => redis.cleanup());
    const a = await wsNode(redis.url, 'k1', cleanups);
    const b = await wsNode(redis.url, 'k1', cleanups);
    const [ca, cb] = [await wsClient(a.port, cleanups), await wsClient(b.port, cleanups)];
    await waitFor('Redis knows both nodes', async () => (await redis.cli(['PUBSUB', 'NUMSUB', 'k1:t'])).trim().endsWith('2'));
    const stream = new PublishStream(a.wss, 't', 5, 1);
    cleanups.push(async () => stream.stop());
    await waitFor('the stream at the other node', () => cb.got.length >= 20);

    // Three outages: a long one, then two quick flaps.
    let resumedFrom = 0;
    for (const outageMs of [2000, 300, 300]) {
      await redis.kill();
      const killedAt = stream.seq;
      const failedBefore = stream.failed.length;
      await waitFor('publish callbacks with errors', () => stream.failed.length >= failedBefore + 20, 15_000);
      // README "Failures": publishes fail at once; none is left waiting on a dead Redis.
      await new Promise((r) => setTimeout(r, outageMs));
      assert.deepEqual(stream.waitingLongerThan(2000), [], 'publish callbacks pending for more than 2 s while Redis is down');
      const localBefore = ca.got.length;
      await waitFor('local delivery during the outage', () => ca.got.length > localBefore + 10);
      assert.ok(ca.got.some((m) => Number(m) > killedAt), 'the local client got publishes made while Redis was down');
      await redis.restart();
      resumedFrom = stream.seq;
      await waitFor('cross-node delivery resumes without restarting the servers', () => cb.got.some((m) => Number(m) > resumedFrom), 30_000);
    }
    await new Promise((r) => setTimeout(r, 500));
    stream.stop();
    await waitFor('every publish callback called', () => stream.waiting === 0, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    const nums = cb.got.map(Number);
    assert.ok(nums.every((n, i) => i === 0 || n > (nums[i - 1] as number)), 'in order, no duplicates at the remote client');
    // Once the other node was subscribed again (its first message after the restart), every publish whose
    // callback said Redis took it reached it (before that, at most once, as README "Failures" says).
    const failed = new Set(stream.failed);
    const from = nums.find((n) => n > resumedFrom) ?? stream.seq;
    const lost = Array.from({ length: stream.seq - from }, (_, i) => from + i).filter((n) => !failed.has(n) && !nums.includes(n));
    assert.deepEqual(lost, [], 'acknowledged publishes missing at the remote client after the last restart');
    assert.equal((await redis.cli(['PUBSUB', 'NUMSUB', 'k1:t'])).trim().split('\n').at(-1), '2', 'one Redis subscription per node');
    assert.deepEqual(crashes, []);
  });
});

describe('a Redis that hangs (SIGSTOP) and comes back (SIGCONT)', () => {
  it('pending bytes stay under maxPendingBytes, the excess fails at once, nothing crashes, and delivery resumes', async () => {
    const crashes = watchCrashes(cleanups);
    const redis = await startRedis();
    cleanups.push(() => redis.cleanup());
    const limit = 256 * 1024;
    const a = await wsNode(redis.url, 'k2', cleanups, limit);
    const b = await wsNode(redis.url, 'k2', cleanups);
    const cb = await wsClient(b.port, cleanups);
    await waitFor('Redis knows the subscribing node', async () => (await redis.cli(['PUBSUB', 'NUMSUB', 'k2:t'])).trim().endsWith('1'));
    // 50 publishes of 4 KiB every 5 ms: about 40 MB/s, far past the limit within the pause if it queued.
    const stream = new PublishStream(a.wss, 't', 5, 50, 4096);
    cleanups.push(async () => stream.stop());
    await waitFor('the stream at the other node', () => cb.got.length >= 50);

    const heapBefore = process.memoryUsage().heapUsed;
    redis.pause();
    let maxPending = 0;
    const failedBefore = stream.failed.length;
    const pausedUntil = Date.now() + 4000;
    while (Date.now() < pausedUntil) {
      maxPending = Math.max(maxPending, a.broker.pendingBytes);
      await new Promise((r) => setTimeout(r, 20));
    }
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    const failedDuringPause = stream.failed.length - failedBefore;
    redis.resume();
    assert.ok(maxPending <= limit, `pendingBytes ${maxPending} passed maxPendingBytes ${limit}`);
    assert.ok(failedDuringPause > 0, 'publishes beyond maxPendingBytes failed through their callbacks during the pause');
    // A gross bound only (tens of MB were published): a queue without bound would pass it.
    assert.ok(heapGrowth < 150 * 1024 * 1024, `heap grew by ${heapGrowth} bytes during a 4 s pause`);

    const resumedFrom = stream.seq;
    await waitFor('delivery resumes after SIGCONT', () => cb.got.some((m) => Number(m.split(' ')[0]) > resumedFrom), 30_000);
    stream.stop();
    await waitFor('every publish callback called after the pause', () => stream.waiting === 0, 30_000);
    assert.deepEqual(crashes, []);
  });
});

describe('a hung Redis that is then killed', () => {
  it('every publish waiting on it gets its callback with an error, pending bytes drop to 0, and delivery resumes after a restart', async () => {
    const crashes = watchCrashes(cleanups);
    const redis = await startRedis();
    cleanups.push(() => redis.cleanup());
    const a = await wsNode(redis.url, 'k3', cleanups, 1024 * 1024);
    const b = await wsNode(redis.url, 'k3', cleanups);
    const cb = await wsClient(b.port, cleanups);
    await waitFor('Redis knows the subscribing node', async () => (await redis.cli(['PUBSUB', 'NUMSUB', 'k3:t'])).trim().endsWith('1'));
    const stream = new PublishStream(a.wss, 't', 5, 10, 1024);
    cleanups.push(async () => stream.stop());
    await waitFor('the stream at the other node', () => cb.got.length >= 50);
    redis.pause();
    await waitFor('publishes waiting on the hung Redis', () => a.broker.pendingBytes > 0 && stream.waiting > 0);
    await new Promise((r) => setTimeout(r, 1000));
    await redis.kill();
    // The kernel closes a killed process's sockets: what waited on them must fail now.
    await waitFor('pending bytes back to 0', () => a.broker.pendingBytes === 0, 15_000);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(stream.waitingLongerThan(1000), [], 'publish callbacks still pending 1 s after Redis died');
    await redis.restart();
    const resumedFrom = stream.seq;
    await waitFor('delivery resumes', () => cb.got.some((m) => Number(m.split(' ')[0]) > resumedFrom), 30_000);
    stream.stop();
    await waitFor('every publish callback called', () => stream.waiting === 0, 15_000);
    assert.deepEqual(crashes, []);
  });
});

describe('channels while Redis hangs for a few seconds (SIGSTOP, SIGCONT)', () => {
  it('publishes made during the pause settle after it, and the client on the other node gets them once each, in order', async (t) => {
    const crashes = watchCrashes(cleanups);
    const { redis, a, b } = await twoChannelNodes(t, 'cp');
    const c = channelClient(t, b.port);
    const { sub, got } = recordNumbers(c, 'chat:p');
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed on B');
    await waitFor('B subscribed in Redis', async () => (await pubsubChannels(redis, 'cp:*')).some((ch) => ch.includes('chat')));
    for (let i = 1; i <= 3; i++) await a.server.publish('chat:p', i);
    await until(() => got.length === 3, 'live publications from A');
    redis.pause();
    const during = [4, 5, 6].map((i) => a.server.publish('chat:p', i).then(() => i, () => -i));
    await new Promise((r) => setTimeout(r, 3000));
    redis.resume();
    const settled = await withTimeout(Promise.all(during), 20_000, 'publishes made during the pause to settle after it');
    const ok = settled.filter((v) => v > 0);
    for (let i = 7; i <= 9; i++) await a.server.publish('chat:p', i);
    const expected = [1, 2, 3, ...ok, 7, 8, 9];
    await until(() => got.length >= expected.length, `every publication at B (got ${JSON.stringify(got)})`, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(got, expected);
    assert.deepEqual(crashes, []);
  });
});

describe('channels on two nodes across a Redis restart', () => {
  it('a client on node B keeps getting node A’s publications, and a reconnect recovers exactly or says recovered:false with a new epoch', async (t) => {
    const crashes = watchCrashes(cleanups);
    const { redis, a, b } = await twoChannelNodes(t, 'cr');
    // The first connection goes to B, the reconnect after a cut to A.
    const proxy = new TcpProxy([b.port, a.port]);
    await proxy.start(t);
    const c = channelClient(t, proxy.port);
    const { sub, got, subscribed } = recordNumbers(c, 'chat:r');
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed on B');
    assert.equal(b.server.clientCount, 1);
    for (let i = 1; i <= 5; i++) await a.server.publish('chat:r', i);
    await until(() => got.length === 5, 'five publications from A at B');
    const epoch1 = subscribed[0]?.epoch;

    await redis.kill();
    // A publish while Redis is away fails in bounded time (PROTOCOL §3: 500 when the store or broker failed).
    await assert.rejects(withTimeout(a.server.publish('chat:r', 6), 10_000, 'publish during the outage'), (e: Error) => !/timed out/.test(e.message));
    await redis.restart();
    // Redis kept nothing (no persistence): the stream starts anew, with a new epoch.
    const taken = await publishWhenBack(a, 'chat:r', 100);
    for (let v = 200; v < 205; v++) {
      await a.server.publish('chat:r', v);
      taken.push(v);
    }
    await until(() => taken.every((v) => got.includes(v)), `publications after the restart at B (got ${JSON.stringify(got)})`, 20_000);
    assert.equal(b.server.clientCount, 1, 'still on B');
    assert.deepEqual(got, [1, 2, 3, 4, 5, ...taken], 'once each, in order, nothing from before the outage repeated');
    for (const e of subscribed.slice(1)) {
      assert.ok(e.recovered === true || (e.recovered === false && e.reason === 'epoch' && e.epoch !== epoch1), `resubscribe: ${JSON.stringify(e)}`);
    }

    // A reconnect (to A) recovers from the new stream exactly.
    const before = subscribed.length;
    proxy.cut();
    for (let v = 300; v < 305; v++) {
      await a.server.publish('chat:r', v);
      taken.push(v);
    }
    await until(() => subscribed.length > before && taken.every((v) => got.includes(v)), 'recovered on A', 20_000);
    assert.equal(a.server.clientCount, 1);
    assert.equal(subscribed.at(-1)?.recovered, true, JSON.stringify(subscribed.at(-1)));
    assert.notEqual(subscribed.at(-1)?.epoch, epoch1);
    assert.deepEqual(got, [1, 2, 3, 4, 5, ...taken]);
    assert.deepEqual(crashes, []);
  });
});

describe('channels when only the broker’s Redis goes down (the store’s stays up)', () => {
  it('node B fills what the broker lost from the store (also from a stream made anew), then live delivery resumes, in order', async (t) => {
    const crashes = watchCrashes(cleanups);
    const [pubsub, history] = [await startRedis(), await startRedis()];
    t.after(() => pubsub.cleanup());
    t.after(() => history.cleanup());
    const [a, b] = [await channelNode(t, pubsub, 'cs', history), await channelNode(t, pubsub, 'cs', history)];
    const c = channelClient(t, b.port);
    const { sub, got, subscribed } = recordNumbers(c, 'chat:g');
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed on B');
    await waitFor('B subscribed in Redis', async () => (await pubsubChannels(pubsub, 'cs:*')).some((ch) => ch.includes('chat')));
    for (let i = 1; i <= 3; i++) await a.server.publish('chat:g', i);
    await until(() => got.length === 3, 'live publications from A');

    await pubsub.kill();
    await waitFor('A noticed', () => !a.broker.isReady);
    // PROTOCOL §3: 503, stored and delivered on A but not carried to the others now; they get it when they fill the gap.
    for (let i = 4; i <= 6; i++) await assert.rejects(withTimeout(a.server.publish('chat:g', i), 10_000, `publish ${i}`), (e: Error) => !/timed out/.test(e.message));
    // PROTOCOL §7: a node that missed a broadcast delivers it at the latest when it next compares with the store (every 5 s).
    await until(() => got.length === 6, `B filled the gap from the store while the broker is down (got ${JSON.stringify(got)})`, 15_000);

    // The store's Redis restarts empty too: the stream is made anew with a new epoch (§7). What A
    // stores now, B can only learn from the store; it must still reach B's client (or B must
    // resubscribe it with recovered:false), not be dropped for good.
    await history.kill();
    await history.restart();
    // Each publish rejects (503: the broker cannot carry it) but is stored once the store reconnected.
    const top = async (): Promise<number> => Number((await history.cli(['HGET', 'cs:meta:{chat%3Ag}', 'top'])).trim());
    for (let v = 7, until = Date.now() + 20_000; v <= 9 && Date.now() < until; ) {
      await a.server.publish('chat:g', v).catch(() => undefined);
      if ((await top()) === v - 6) v++;
      else await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await top(), 3, 'A stored 7, 8, 9 in the new stream');
    await until(() => got.includes(9) || subscribed.length > 1, `B's client heard of the new stream from the store (got ${JSON.stringify(got)})`, 15_000);

    await pubsub.restart();
    await waitFor('both brokers back', () => a.broker.isReady && b.broker.isReady, 30_000);
    await waitFor('B resubscribed in Redis', async () => (await pubsubChannels(pubsub, 'cs:*')).some((ch) => ch.includes('chat')), 30_000);
    for (let i = 10; i <= 13; i++) await a.server.publish('chat:g', i);
    await until(() => got.includes(13), 'live delivery after the broker’s Redis came back', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const after = got.slice(6);
    assert.deepEqual(got.slice(0, 6), [1, 2, 3, 4, 5, 6]);
    assert.ok(after.every((n, i) => i === 0 || n > (after[i - 1] as number)), `in order, once each: ${JSON.stringify(got)}`);
    assert.deepEqual(after.filter((n) => n >= 10), [10, 11, 12, 13]);
    for (const e of subscribed.slice(1)) assert.ok(e.recovered === false && e.reason === 'epoch', JSON.stringify(e));
    assert.deepEqual(crashes, []);
  });
});

describe('the HTTP fallback’s /send on the node that does not own the session', () => {
  it('is forwarded through Redis (202), gets a documented status at once while Redis is down, and is forwarded again after', async (t) => {
    const crashes = watchCrashes(cleanups);
    const { redis, a, b } = await twoChannelNodes(t, 'fb');
    const stream = await mustOpen(t, a.port);
    await waitFor('A subscribed to the session topic', async () => (await pubsubChannels(redis, 'fb:fd*')).length >= 1);
    const send = (port: number, body: unknown) => post(port, '/channels/send', { session: stream.session, body: JSON.stringify(body) }, 15_000);

    const via = await send(b.port, { id: 2, type: 'subscribe', channel: 'chat:s' });
    assert.equal(via.status, 202, via.body);
    assert.equal((await stream.reply(2)).type, 'subscribed');

    await redis.kill();
    await waitFor('B noticed', () => !b.broker.isReady);
    const started = Date.now();
    const down = await send(b.port, { id: 3, type: 'history', channel: 'chat:s' });
    // PROTOCOL §3/§9: 500 (the broker failed) or 503 (unavailable); never 202 for a command that was not forwarded.
    assert.ok(down.status === 503 || down.status === 500, `status ${down.status} ${down.body} after ${Date.now() - started} ms`);
    // The owning node still takes the session's commands itself.
    const local = await send(a.port, { id: 4, type: 'unsubscribe', channel: 'chat:s' });
    assert.equal(local.status, 204, local.body);

    await redis.restart();
    await waitFor('A resubscribed the session topic', async () => (await pubsubChannels(redis, 'fb:fd*')).length >= 1, 30_000);
    await waitFor('B ready again', () => b.broker.isReady, 30_000);
    // A's store may still be reconnecting: its subscribe then answers 500 (§3, the store failed); retry.
    for (let id = 5, until = Date.now() + 20_000; ; id++) {
      const again = await send(b.port, { id, type: 'subscribe', channel: 'chat:s' });
      assert.equal(again.status, 202, again.body);
      const reply = await stream.reply(id);
      if (reply.type === 'subscribed') break;
      assert.ok(reply.code === 500 && Date.now() < until, JSON.stringify(reply));
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(stream.events.filter((e) => e.id === 3).length, 0, 'the refused command was not run');
    assert.deepEqual(crashes, []);
  });
});
