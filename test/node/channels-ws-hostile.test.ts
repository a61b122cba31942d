/**
 * Hostile clients of the channel protocol over WebSocket, up to the point of
 * traffic (PROTOCOL.md §1, §2, §4, §5, §7): frames before `connect`,
 * malformed and oversized frames, forged ids, names and recovery positions,
 * racing subscriptions. Every expectation comes from PROTOCOL.md; `Peer`
 * sends exactly the frames a test chooses. Floods, presence storms, slow
 * readers, heartbeats and shutdown: channels-ws-hostile-traffic.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, ErrorCode } from '../../src/client-lib/codes.js';
import { LocalBroker } from '../../src/pubsub/local.js';
import type { TopicMessage } from '../../src/pubsub/message.js';
import type { PublishCallback, TopicSubscriber } from '../../src/pubsub/broker.js';
import { type Json, Peer, startChannels, until } from '../helpers/channels.js';
import { CHAT, errors, offsets, range, sleep, slowFor } from '../helpers/channels-hostile.js';
import { command, mustOpen } from '../helpers/sse.js';

describe('before connect (PROTOCOL.md §2 connect, §1, §5)', () => {
  it('every command before connect gets 401 (ping too), the connection stays, and connect then works', async (t) => {
    const { url } = await startChannels(t, { channels: [CHAT] });
    const p = await Peer.open(t, url);
    const before = [{ type: 'subscribe', channel: 'chat:1' }, { type: 'publish', channel: 'chat:1', data: 1 }, { type: 'history', channel: 'chat:1' }, { type: 'presence', channel: 'chat:1' }, { type: 'unsubscribe', channel: 'chat:1' }, { type: 'ping' }];
    for (const [i, frame] of before.entries()) {
      const r = await p.call({ id: 10 + i, ...frame });
      assert.deepEqual([r.type, r.code], ['error', ErrorCode.Unauthorized], JSON.stringify(frame));
    }
    assert.equal((await p.call({ id: 1, type: 'connect' })).type, 'connected');
    assert.equal((await p.call({ id: 20, type: 'subscribe', channel: 'chat:1' })).type, 'subscribed');
    assert.equal(p.closeCode, null);
  });

  it('4501: commands, garbage and pongs are no connect; the timeout still closes the connection', async (t) => {
    const { url } = await startChannels(t, { connectTimeout: 300 });
    const p = await Peer.open(t, url);
    let id = 1;
    const busy = setInterval(() => {
      if (p.readyState !== 1) return;
      p.send({ type: 'pong' });
      p.send({ id: ++id, type: 'ping' });
    }, 50);
    t.after(() => clearInterval(busy));
    assert.equal(await p.closed(), CloseCode.ConnectTimeout);
    assert.deepEqual(p.frames.at(-1), { type: 'disconnect', code: 4501, reason: 'no connect in time', reconnect: true });
  });

  it('two connects, pipelined while authenticate runs: the second gets 409, the first identity stands', async (t) => {
    const { url } = await startChannels(t, { authenticate: async (_r, token) => (await sleep(50), { user: String(token) }) });
    const p = await Peer.open(t, url);
    p.send({ id: 1, type: 'connect', token: 'alice' });
    p.send({ id: 2, type: 'connect', token: 'mallory' });
    assert.deepEqual([(await p.reply(2)).code, (await p.reply(1)).user], [ErrorCode.Conflict, 'alice']);
    assert.equal((await p.call({ id: 3, type: 'connect', token: 'mallory' })).code, ErrorCode.Conflict);
    assert.deepEqual(await p.call({ id: 4, type: 'ping' }), { id: 4, type: 'pong' });
  });

  it('a connect with an ill-typed token or name gets 400; one over maxMessageSize gets 413 and no authenticate', async (t) => {
    const tokens: unknown[] = [];
    const { url } = await startChannels(t, { maxMessageSize: 4096, authenticate: (_r, token) => (tokens.push(token), { user: 'u' }) });
    const p = await Peer.open(t, url);
    for (const [id, bad] of [[2, { token: 5 }], [3, { token: { a: 1 } }], [4, { token: ['x'] }], [5, { name: 7 }]] as const) {
      assert.equal((await p.call({ id, type: 'connect', ...bad })).code, ErrorCode.BadRequest, JSON.stringify(bad));
    }
    p.send({ id: 6, type: 'connect', token: 'x'.repeat(8000) });
    assert.deepEqual(await p.next((f) => f.code === ErrorCode.TooLarge, 'the 413'), { type: 'error', code: 413, message: 'frame larger than 4096 bytes' });
    assert.deepEqual(tokens, [], 'authenticate never saw a malformed or oversized connect');
  });

  it('a long token within maxMessageSize reaches authenticate (PROTOCOL.md §8 sets no token limit)', async (t) => {
    const tokens: number[] = [];
    const { url } = await startChannels(t, { authenticate: (_r, token) => (tokens.push(token?.length ?? -1), { user: 'u' }) });
    const p = await Peer.open(t, url);
    const r = await p.call({ id: 1, type: 'connect', token: 'x'.repeat(16 * 1024) });
    assert.equal(r.type, 'connected', `a 16 KiB token in a 16 KiB frame (limit 64 KiB) was answered ${JSON.stringify(r)}`);
    assert.deepEqual(tokens, [16 * 1024]);
  });

  it('binary frames, invalid JSON and JSON that is not an object: 400 without an id, before and after connect', async (t) => {
    const { url } = await startChannels(t);
    const p = await Peer.open(t, url);
    const junk = (): void => {
      p.sendBinary(new TextEncoder().encode('{"id":1,"type":"connect"}'));
      for (const text of ['{"id":1,"type":"connect"', '', ' ', '[{"id":1,"type":"connect"}]', '"connect"', '42', 'null', 'true', '{"id":1,"type":"connect"}x']) p.send(text);
    };
    junk();
    await until(() => errors(p).length === 10, '10 errors');
    assert.ok(errors(p).every((f) => f.code === ErrorCode.BadRequest && !('id' in f)), JSON.stringify(errors(p)));
    assert.equal((await p.call({ id: 1, type: 'connect', extra: { ignored: [1] } })).type, 'connected', 'unknown fields are ignored');
    junk();
    await until(() => errors(p).length === 20, '10 more errors');
    assert.ok(errors(p).every((f) => f.code === ErrorCode.BadRequest && !('id' in f)));
    assert.equal(p.closeCode, null);
  });

  it('unknown types get 404 with the id; a missing or ill-typed type 400', async (t) => {
    const { url } = await startChannels(t);
    const p = await Peer.connected(t, url);
    for (const [i, type] of ['fly', 'Subscribe', 'pub', 'connected', 'x'.repeat(1000)].entries()) {
      assert.deepEqual([(await p.call({ id: 10 + i, type })).code], [ErrorCode.UnknownCommand], type.slice(0, 20));
    }
    assert.deepEqual(await p.call({ id: 3 }), { id: 3, type: 'error', code: 400, message: 'type must be a string' });
    assert.equal((await p.call({ id: 4, type: ['ping'] })).code, ErrorCode.BadRequest);
  });

  it('ids: 2^53−1 is answered; 0, negative, fractional, 2^53, 1e400, strings and null get 400 without an id; a pending id 409; a finished id may be reused', async (t) => {
    const { url } = await startChannels(t, { authorize: slowFor('slow', 200) });
    const p = await Peer.connected(t, url);
    assert.deepEqual(await p.call({ id: 2 ** 53 - 1, type: 'ping' }), { id: 2 ** 53 - 1, type: 'pong' });
    for (const id of ['0', '-3', '1.5', '9007199254740992', '1e400', '"7"', 'null', '[7]', '{}']) p.send(`{"id":${id},"type":"ping"}`);
    p.send('{"type":"ping"}');
    await until(() => errors(p).length === 10, '10 errors');
    assert.ok(errors(p).every((f) => f.code === ErrorCode.BadRequest && !('id' in f)), JSON.stringify(errors(p)));
    p.send({ id: 5, type: 'subscribe', channel: 'slow' });
    p.send({ id: 5, type: 'presence', channel: 'a' });
    assert.equal((await p.next((f) => f.id === 5)).code, ErrorCode.Conflict);
    assert.equal((await p.next((f) => f.id === 5)).type, 'subscribed', 'the first command with the id ran');
    p.send({ id: 5, type: 'unsubscribe', channel: 'slow' });
    assert.equal((await p.next((f) => f.id === 5)).type, 'unsubscribed', 'an answered id is free again');
  });

  it('the error budget: maxErrors error replies, then disconnect 4400 and close, also before connect', async (t) => {
    const { url } = await startChannels(t, { maxErrors: 20 });
    const p = await Peer.open(t, url);
    for (let i = 0; i < 60; i++) p.send(i % 2 === 0 ? '{bad' : `{"id":${i},"type":"history","channel":"c"}`);
    assert.equal(await p.closed(), CloseCode.TooManyErrors);
    const n = errors(p).length;
    assert.ok(n >= 21 && n <= 23, `${n} error replies for a budget of 20`);
    assert.deepEqual(p.frames.at(-1), { type: 'disconnect', code: 4400, reason: 'too many protocol errors', reconnect: false });
  });
});

describe('frame size (PROTOCOL.md §5 abuse, §8 maxMessageSize)', () => {
  it('maxMessageSize bytes are read; more gets 413 (no id), up to 4× it; beyond 4× the connection closes with 1009', async (t) => {
    const { url } = await startChannels(t, { maxMessageSize: 1024, channels: [CHAT] });
    const p = await Peer.connected(t, url);
    await p.call({ id: 2, type: 'subscribe', channel: 'chat:size' });
    const frame = (id: number, bytes: number): string => {
      const head = `{"id":${id},"type":"publish","channel":"chat:size","data":"`;
      return `${head}${'x'.repeat(bytes - head.length - 2)}"}`;
    };
    assert.equal(Buffer.byteLength(frame(3, 1024)), 1024);
    p.send(frame(3, 1024));
    assert.equal((await p.reply(3)).type, 'published');
    // The limit is in bytes: 550 characters, 1,041 bytes of UTF-8.
    const wide = `{"id":4,"type":"publish","channel":"chat:size","data":"${'é'.repeat(494)}"}`;
    assert.deepEqual([wide.length < 1024, Buffer.byteLength(wide) > 1024], [true, true]);
    p.send(wide);
    assert.deepEqual(await p.next((f) => f.type === 'error'), { type: 'error', code: 413, message: 'frame larger than 1024 bytes' });
    p.send(frame(5, 4096));
    assert.equal((await p.next((f) => f.type === 'error')).code, ErrorCode.TooLarge, 'exactly 4× is still read');
    assert.deepEqual(await p.call({ id: 6, type: 'ping' }), { id: 6, type: 'pong' });
    assert.deepEqual(offsets(p, 'chat:size'), [1], 'nothing over the limit was published');
    p.send(frame(7, 4097));
    assert.equal(await p.closed(), 1009);
  });
});

describe('subscriptions (PROTOCOL.md §2 subscribe/unsubscribe, §4, §7)', () => {
  it('subscribing twice (also pipelined) gets 409 and delivers once; unsubscribing from a channel never joined succeeds', async (t) => {
    const { url, server } = await startChannels(t, { channels: [CHAT], authorize: slowFor('chat:slow', 100) });
    const p = await Peer.connected(t, url);
    for (const [i, channel] of ['chat:a', 'chat:slow'].entries()) {
      p.send({ id: 10 + i, type: 'subscribe', channel });
      p.send({ id: 20 + i, type: 'subscribe', channel });
      const [a, b] = [await p.reply(10 + i), await p.reply(20 + i)];
      assert.deepEqual([a.type, b.code], ['subscribed', ErrorCode.Conflict], channel);
      await server.publish(channel, 'once');
      await until(() => offsets(p, channel).length === 1, 'the pub');
    }
    assert.deepEqual(await p.call({ id: 4, type: 'unsubscribe', channel: 'never' }), { id: 4, type: 'unsubscribed', channel: 'never' });
    await sleep(50);
    assert.deepEqual([offsets(p, 'chat:a'), offsets(p, 'chat:slow')], [[1], [1]]);
  });

  it('channel names: empty, over 255 units, control characters get 400; 255 units, non-ASCII and lone surrogates are names', async (t) => {
    const { url } = await startChannels(t, { maxChannels: 20 });
    const p = await Peer.connected(t, url);
    for (const [i, channel] of ['', 'x'.repeat(256), '😀'.repeat(128), 'a\u0000', 'a\u001f', 'a\u007f', 'a\tb', 5, null, ['a']].entries()) {
      assert.equal((await p.call({ id: 10 + i, type: 'subscribe', channel })).code, ErrorCode.BadRequest, JSON.stringify(channel));
    }
    for (const [i, channel] of ['x'.repeat(255), '😀'.repeat(127), 'ü ß', '\ud800', '*', 'chat:*', ' '].entries()) {
      const r = await p.call({ id: 30 + i, type: 'subscribe', channel });
      assert.deepEqual([r.type, r.channel], ['subscribed', channel], JSON.stringify(channel).slice(0, 20));
    }
  });

  it('reserved broker topics: no channel a client names reaches the layer\'s fd: topics (PROTOCOL.md §9 "Sharing the broker")', async (t) => {
    const published: string[] = [];
    class Spy extends LocalBroker {
      override publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number {
        published.push(topic);
        return super.publish(topic, message, exclude, callback);
      }
    }
    const broker = new Spy();
    t.after(() => broker.close());
    const { url, port, server } = await startChannels(t, { broker, channels: [{ match: '*', publish: true, presence: true, history: { size: 10, ttl: 60_000 } }] });
    const sse = await mustOpen(t, port);
    const sessionTopic = [...broker.topics()].find((x) => x.startsWith('fd:s:')) ?? assert.fail('no session topic');
    const victim = await Peer.connected(t, url);
    await victim.call({ id: 2, type: 'subscribe', channel: 'room' });
    const p = await Peer.connected(t, url);
    const names = [sessionTopic, 'fd:c:room', 'fd:', 'fd:c:', 'fd:s:x'];
    for (const [i, channel] of names.entries()) {
      assert.equal((await p.call({ id: 10 + i, type: 'subscribe', channel })).type, 'subscribed');
      assert.equal((await p.call({ id: 20 + i, type: 'publish', channel, data: { id: 1, type: 'ping' } })).type, 'published');
    }
    assert.deepEqual(published.filter((x) => !names.some((n) => x === `fd:c:${n}`) && x !== 'fd:c:room'), [], 'only the channels\' own topics');
    assert.equal((await command(sse, { id: 7, type: 'ping' })).status, 204);
    await sse.reply(7);
    assert.deepEqual(sse.events.map((e) => e.type), ['connected', 'pong'], 'the session saw nothing of it');
    assert.deepEqual(p.pubs(sessionTopic).length, 1);
    assert.equal(victim.pubs('room').length, 0);
    assert.equal((await server.history('room')).offset, 0);
  });

  it('maxChannels counts subscriptions in progress: pipelined subscribes beyond it get 430; an unsubscribe frees a slot', async (t) => {
    const { url } = await startChannels(t, { maxChannels: 5, authorize: async (_c, _a, ch) => (await sleep(100), ch !== 'no') });
    const p = await Peer.connected(t, url);
    for (let i = 0; i < 8; i++) p.send({ id: 10 + i, type: 'subscribe', channel: `c${i}` });
    const replies = await Promise.all(range(8).map((i) => p.reply(9 + i)));
    assert.deepEqual(replies.map((r) => r.code ?? r.type), ['subscribed', 'subscribed', 'subscribed', 'subscribed', 'subscribed', 430, 430, 430]);
    assert.equal((await p.call({ id: 20, type: 'subscribe', channel: 'c9' })).code, ErrorCode.TooManyChannels);
    await p.call({ id: 21, type: 'unsubscribe', channel: 'c0' });
    assert.equal((await p.call({ id: 22, type: 'subscribe', channel: 'no' })).code, ErrorCode.Forbidden);
    assert.equal((await p.call({ id: 23, type: 'subscribe', channel: 'c9' })).type, 'subscribed', 'a refused subscribe took no slot');
  });

  it('subscribe racing unsubscribe: after subscribe, unsubscribe, the client is out; after subscribe, unsubscribe, subscribe, it is in', async (t) => {
    const { url, server } = await startChannels(t, { channels: [CHAT], authorize: slowFor('chat:', 100) });
    const p = await Peer.connected(t, url);
    const client = (await p.reply(1)).client;
    p.send({ id: 2, type: 'subscribe', channel: 'chat:out' });
    p.send({ id: 3, type: 'unsubscribe', channel: 'chat:out' });
    p.send({ id: 4, type: 'subscribe', channel: 'chat:in' });
    p.send({ id: 5, type: 'unsubscribe', channel: 'chat:in' });
    p.send({ id: 6, type: 'subscribe', channel: 'chat:in' });
    assert.deepEqual([(await p.reply(3)).type, (await p.reply(5)).type], ['unsubscribed', 'unsubscribed']);
    await Promise.all([2, 4].map((id) => p.reply(id)));
    const last = await p.reply(6);
    // §2: 409 means "already subscribed"; after its unsubscribe was answered the client is not.
    assert.equal(last.type, 'subscribed', `subscribe after unsubscribe answered ${JSON.stringify(last)}`);
    for (const channel of ['chat:out', 'chat:in']) await server.publish(channel, channel);
    await until(() => offsets(p, 'chat:in').length === 1, 'the pub of chat:in');
    assert.deepEqual(offsets(p, 'chat:out'), []);
    assert.deepEqual((await server.presence('chat:in')).map((e) => e.client), [client]);
    assert.deepEqual(await server.presence('chat:out'), []);
  });

  it('recover with a forged epoch, a bad offset or a future offset never gets recovered:true, and later pubs follow the reply', async (t) => {
    const { url, server } = await startChannels(t, { channels: [CHAT] });
    for (let i = 1; i <= 5; i++) await server.publish('chat:r', i);
    const { epoch } = await server.history('chat:r');
    const p = await Peer.connected(t, url);
    for (const [i, recover] of [{ offset: -1, epoch }, { offset: 1.5, epoch }, { offset: '2', epoch }, { offset: 2 }, { epoch }, { offset: 2, epoch: 3 }, 'x', null].entries()) {
      assert.equal((await p.call({ id: 40 + i, type: 'subscribe', channel: 'chat:r', recover })).code, ErrorCode.BadRequest, JSON.stringify(recover));
    }
    // A future offset: one past the top (what a client of a reset store would hold), far, and the largest id.
    const cases = [() => ({ offset: 2, epoch: 'forged' }), () => ({ offset: 2, epoch: 'e'.repeat(100) }), (top: number) => ({ offset: top + 1, epoch }), () => ({ offset: 999, epoch }), () => ({ offset: 2 ** 53 - 1, epoch })];
    for (const [i, at] of cases.entries()) {
      const recover = at((await server.history('chat:r')).offset);
      const r = await p.call({ id: 10 + i, type: 'subscribe', channel: 'chat:r', recover });
      assert.notEqual(r.recovered, true, `${JSON.stringify(recover).slice(0, 60)} answered ${JSON.stringify(r)}`);
      if (r.type === 'subscribed') {
        assert.equal(r.publications, undefined);
        await server.publish('chat:r', 'next');
        const pub = await p.next((f) => f.type === 'pub', 'the next pub');
        assert.ok(Number(pub.offset) > Number(r.offset), `reply at ${String(r.offset)}, then pub ${String(pub.offset)}`);
        await p.call({ id: 20 + i, type: 'unsubscribe', channel: 'chat:r' });
      }
    }
    const top = (await server.history('chat:r')).offset;
    const ok = await p.call({ id: 30, type: 'subscribe', channel: 'chat:r', recover: { offset: 0, epoch } });
    assert.equal(ok.recovered, true);
    assert.deepEqual((ok.publications as Json[]).map((x) => x.offset), range(top));
  });
});
