/**
 * The channel server over real loopback WebSockets, frame by frame
 * (PROTOCOL.md): every command, every error code a client can cause, the
 * documented close codes for abuse, limits and timeouts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, CloseCode } from '../../src/client-lib/codes.js';
import { Peer, startChannels, until } from '../helpers/channels.js';
import { rawOpen } from '../helpers/raw-client.js';

const CHAT = { match: 'chat:*', history: { size: 5, ttl: 60_000 }, presence: true, publish: true };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('§2 commands and replies', () => {
  it('connect, subscribe, publish (acknowledged), history, presence, ping, unsubscribe', async (t) => {
    const { url } = await startChannels(t, {
      channels: [CHAT],
      authenticate: (_req, token) => (token === 'alice-token' ? { user: 'alice', info: { color: 'red' } } : null),
    });
    const p = await Peer.open(t, url);
    const connected = await p.call({ id: 1, type: 'connect', token: 'alice-token' });
    assert.equal(connected.type, 'connected');
    assert.equal(connected.user, 'alice');
    assert.equal(typeof connected.client, 'string');
    assert.equal(connected.ping, 25_000);

    const sub = await p.call({ id: 2, type: 'subscribe', channel: 'chat:1' });
    assert.deepEqual(sub, { id: 2, type: 'subscribed', channel: 'chat:1', offset: 0, epoch: sub.epoch });
    const join = await p.next((f) => f.type === 'join');
    assert.deepEqual(join, { type: 'join', channel: 'chat:1', client: connected.client, user: 'alice', info: { color: 'red' } });

    const pub = await p.call({ id: 3, type: 'publish', channel: 'chat:1', data: { text: 'hi' } });
    assert.deepEqual(pub, { id: 3, type: 'published', offset: 1, epoch: sub.epoch });
    const push = await p.next((f) => f.type === 'pub');
    assert.deepEqual(push, { type: 'pub', channel: 'chat:1', offset: 1, epoch: sub.epoch, data: { text: 'hi' }, info: { client: connected.client, user: 'alice' } });

    await p.call({ id: 4, type: 'publish', channel: 'chat:1', b64: 'AAECAw==' });
    const bin = await p.next((f) => f.type === 'pub');
    assert.equal(bin.b64, 'AAECAw==');
    assert.equal(bin.offset, 2);

    const history = await p.call({ id: 5, type: 'history', channel: 'chat:1', limit: 1 });
    assert.equal(history.offset, 2);
    assert.deepEqual(history.publications, [{ offset: 2, b64: 'AAECAw==', info: { client: connected.client, user: 'alice' } }]);
    const since = await p.call({ id: 6, type: 'history', channel: 'chat:1', since: { offset: 0, epoch: sub.epoch } });
    assert.deepEqual((since.publications as { offset: number }[]).map((x) => x.offset), [1, 2]);

    const presence = await p.call({ id: 7, type: 'presence', channel: 'chat:1' });
    assert.deepEqual(presence.clients, [{ client: connected.client, user: 'alice', info: { color: 'red' } }]);

    assert.deepEqual(await p.call({ id: 8, type: 'ping' }), { id: 8, type: 'pong' });
    assert.deepEqual(await p.call({ id: 9, type: 'unsubscribe', channel: 'chat:1' }), { id: 9, type: 'unsubscribed', channel: 'chat:1' });
    const gone = await p.call({ id: 10, type: 'presence', channel: 'chat:1' });
    assert.deepEqual(gone.clients, []);
    // Unsubscribing again is not an error.
    assert.equal((await p.call({ id: 11, type: 'unsubscribe', channel: 'chat:1' })).type, 'unsubscribed');
  });

  it('server-side publish reaches subscribers with no publisher info; join and leave reach others', async (t) => {
    const { url, server } = await startChannels(t, { channels: [CHAT] });
    const a = await Peer.connected(t, url);
    const b = await Peer.connected(t, url);
    await a.call({ id: 2, type: 'subscribe', channel: 'chat:x' });
    await b.call({ id: 2, type: 'subscribe', channel: 'chat:x' });
    const bId = (await b.reply(1)).client;
    await a.next((f) => f.type === 'join' && f.client === bId, 'join of b');
    assert.deepEqual((await server.presence('chat:x')).map((e) => e.client).sort(), [(await a.reply(1)).client, bId].sort());
    const pos = await server.publish('chat:x', { from: 'server' });
    assert.equal(pos.offset, 1);
    const pa = await a.next((f) => f.type === 'pub');
    assert.deepEqual(pa, { type: 'pub', channel: 'chat:x', offset: 1, epoch: pos.epoch, data: { from: 'server' } });
    await server.publish('chat:x', new Uint8Array([255, 0]));
    assert.equal((await b.next((f) => f.type === 'pub' && f.offset === 2)).b64, '/wA=');
    assert.deepEqual(await server.history('chat:x'), {
      offset: 2,
      epoch: pos.epoch,
      publications: [
        { offset: 1, data: { from: 'server' } },
        { offset: 2, b64: '/wA=' },
      ],
    });
    b.close();
    await a.next((f) => f.type === 'leave' && f.client === bId, 'leave of b');
  });

  it('recovers what a subscriber missed, exactly once and in order, or says why it cannot', async (t) => {
    const { url, server } = await startChannels(t, { channels: [CHAT] });
    const p = await Peer.connected(t, url);
    const s = await p.call({ id: 2, type: 'subscribe', channel: 'chat:r' });
    for (let i = 1; i <= 3; i++) await server.publish('chat:r', i);
    await until(() => p.pubs('chat:r').length === 3, 'three pubs');
    await p.call({ id: 3, type: 'unsubscribe', channel: 'chat:r' });
    for (let i = 4; i <= 6; i++) await server.publish('chat:r', i);
    const r = await p.call({ id: 4, type: 'subscribe', channel: 'chat:r', recover: { offset: 3, epoch: s.epoch } });
    assert.equal(r.recovered, true);
    assert.equal(r.offset, 6);
    assert.deepEqual((r.publications as { offset: number; data: number }[]).map((x) => [x.offset, x.data]), [[4, 4], [5, 5], [6, 6]]);
    await server.publish('chat:r', 7);
    assert.equal((await p.next((f) => f.type === 'pub' && f.offset === 7)).data, 7);
    assert.equal(p.pubs('chat:r').filter((f) => Number(f.offset) <= 6 && Number(f.offset) > 3).length, 0, 'no duplicates as pushes');

    // History keeps 5: offsets 3..7 remain; asking from 1 is too old.
    await p.call({ id: 5, type: 'unsubscribe', channel: 'chat:r' });
    const trimmed = await p.call({ id: 6, type: 'subscribe', channel: 'chat:r', recover: { offset: 1, epoch: s.epoch } });
    assert.deepEqual([trimmed.recovered, trimmed.reason, trimmed.offset], [false, 'trimmed', 7]);
    assert.equal(trimmed.publications, undefined);
    await p.call({ id: 7, type: 'unsubscribe', channel: 'chat:r' });
    const epoch = await p.call({ id: 8, type: 'subscribe', channel: 'chat:r', recover: { offset: 1, epoch: 'another' } });
    assert.deepEqual([epoch.recovered, epoch.reason], [false, 'epoch']);
    // Nothing missed: recovered at once.
    await p.call({ id: 9, type: 'unsubscribe', channel: 'chat:r' });
    const same = await p.call({ id: 10, type: 'subscribe', channel: 'chat:r', recover: { offset: 7, epoch: s.epoch } });
    assert.deepEqual([same.recovered, same.publications], [true, []]);
    // A channel without history.
    const none = await p.call({ id: 11, type: 'subscribe', channel: 'plain', recover: { offset: 3, epoch: 'x' } });
    assert.deepEqual([none.recovered, none.reason], [false, 'no_history']);
  });
});

describe('§5 error codes', () => {
  it('400 bad_request: not JSON, not an object, binary frame, bad id, bad channel, bad payload', async (t) => {
    const { url } = await startChannels(t, { channels: [CHAT] });
    const p = await Peer.connected(t, url);
    p.send('{not json');
    assert.deepEqual(await p.next((f) => f.type === 'error'), { type: 'error', code: 400, message: 'not JSON' });
    p.send('[1,2]');
    assert.equal((await p.next((f) => f.type === 'error')).code, ErrorCode.BadRequest);
    p.sendBinary(new Uint8Array([1, 2, 3]));
    assert.equal((await p.next((f) => f.type === 'error')).code, ErrorCode.BadRequest);
    p.send({ id: -1, type: 'ping' });
    assert.equal((await p.next((f) => f.type === 'error')).code, ErrorCode.BadRequest);
    for (const [id, frame] of [
      [2, { type: 'subscribe', channel: '' }],
      [3, { type: 'subscribe', channel: 'a\nb' }],
      [4, { type: 'subscribe', channel: 'x'.repeat(256) }],
      [5, { type: 'publish', channel: 'chat:1', data: 1, b64: 'AA==' }],
      [6, { type: 'publish', channel: 'chat:1' }],
      [7, { type: 'publish', channel: 'chat:1', b64: 'not base64!' }],
      [8, { type: 'subscribe', channel: 'chat:1', recover: { offset: 'x' } }],
      [9, { type: 'history', channel: 'chat:1', limit: -2 }],
      [10, { type: 7 }],
    ] as const) {
      const reply = await p.call({ id, ...frame });
      assert.deepEqual([reply.type, reply.code], ['error', ErrorCode.BadRequest], JSON.stringify(frame));
    }
  });

  it('401 unauthorized: a command before connect; a refused connect closes with 4401', async (t) => {
    const { url } = await startChannels(t, { authenticate: (_r, token) => (token === 'good' ? { user: 'u' } : null) });
    const p = await Peer.open(t, url);
    assert.equal((await p.call({ id: 1, type: 'subscribe', channel: 'a' })).code, ErrorCode.Unauthorized);
    const refused = await p.call({ id: 2, type: 'connect', token: 'bad' });
    assert.equal(refused.code, ErrorCode.Unauthorized);
    assert.deepEqual(await p.next((f) => f.type === 'disconnect'), { type: 'disconnect', code: 4401, reason: 'authentication failed', reconnect: false });
    assert.equal(await p.closed(), CloseCode.Unauthorized);
  });

  it('403 forbidden: authorize says no to subscribe, recovery, publish, history and presence; publish not allowed by the channel', async (t) => {
    const { url, server } = await startChannels(t, {
      channels: [CHAT, { match: 'readonly', publish: false, history: { size: 5, ttl: 0 } }],
      authenticate: () => ({ user: 'bob' }),
      authorize: async (_client, action, channel) => !(channel === 'chat:secret' || (action === 'publish' && channel === 'chat:nopub')),
    });
    await server.publish('chat:secret', 'classified');
    const p = await Peer.connected(t, url);
    for (const [id, frame] of [
      [2, { type: 'subscribe', channel: 'chat:secret' }],
      [3, { type: 'subscribe', channel: 'chat:secret', recover: { offset: 0, epoch: 'e' } }],
      [4, { type: 'history', channel: 'chat:secret' }],
      [5, { type: 'history', channel: 'chat:secret', since: { offset: 0, epoch: 'e' } }],
      [6, { type: 'presence', channel: 'chat:secret' }],
      [7, { type: 'publish', channel: 'chat:nopub', data: 1 }],
      [8, { type: 'publish', channel: 'readonly', data: 1 }],
    ] as const) {
      const reply = await p.call({ id, ...frame });
      assert.deepEqual([reply.type, reply.code], ['error', ErrorCode.Forbidden], JSON.stringify(frame));
    }
    assert.equal(p.pubs('chat:secret').length, 0);
    assert.ok(!JSON.stringify(p.frames).includes('classified'), 'nothing of the channel leaked');
  });

  it('404 unknown_command, 405 not_available, 409 conflict, 410 unrecoverable', async (t) => {
    const { url, server } = await startChannels(t, {
      channels: [{ match: 'small', history: { size: 2, ttl: 0 }, publish: true }],
      authorize: async (_c, _a, channel) => {
        if (channel === 'slow') await sleep(200);
        return true;
      },
    });
    const p = await Peer.connected(t, url);
    assert.deepEqual(await p.call({ id: 2, type: 'fly', channel: 'x' }), { id: 2, type: 'error', code: 404, message: 'unknown command type "fly"' });
    assert.equal((await p.call({ id: 3, type: 'history', channel: 'plain' })).code, ErrorCode.NotAvailable);
    assert.equal((await p.call({ id: 4, type: 'presence', channel: 'plain' })).code, ErrorCode.NotAvailable);
    assert.equal((await p.call({ id: 5, type: 'connect' })).code, ErrorCode.Conflict);
    await p.call({ id: 6, type: 'subscribe', channel: 'small' });
    assert.equal((await p.call({ id: 7, type: 'subscribe', channel: 'small' })).code, ErrorCode.Conflict);
    // An id still in progress.
    p.send({ id: 8, type: 'subscribe', channel: 'slow' });
    assert.equal((await p.call({ id: 8, type: 'ping' })).type, 'pong', 'ping is answered at once, not tracked');
    p.send({ id: 8, type: 'history', channel: 'slow' });
    assert.equal((await p.next((f) => f.id === 8 && f.type === 'error')).code, ErrorCode.Conflict);
    // Unsubscribed while the subscribe was in progress.
    p.send({ id: 9, type: 'subscribe', channel: 'slow2' });
    p.send({ id: 10, type: 'unsubscribe', channel: 'slow2' });
    await p.reply(10);
    const s = await p.call({ id: 11, type: 'subscribe', channel: 'small' }).then(() => p.reply(6));
    for (let i = 0; i < 4; i++) await server.publish('small', i);
    const gone = await p.call({ id: 12, type: 'history', channel: 'small', since: { offset: 0, epoch: s.epoch } });
    assert.deepEqual([gone.code, gone.message], [ErrorCode.Unrecoverable, 'position unrecoverable: trimmed']);
  });

  it('413 too_large, and 1009 for a frame over four times the limit', async (t) => {
    const { url } = await startChannels(t, { maxMessageSize: 1024, channels: [CHAT] });
    const p = await Peer.connected(t, url);
    p.send({ id: 2, type: 'publish', channel: 'chat:1', data: 'x'.repeat(2000) });
    assert.equal((await p.next((f) => f.type === 'error')).code, ErrorCode.TooLarge);
    assert.equal((await p.call({ id: 3, type: 'ping' })).type, 'pong', 'the connection lives on');
    p.send({ id: 4, type: 'publish', channel: 'chat:1', data: 'x'.repeat(5000) });
    assert.equal(await p.closed(), 1009);
  });

  it('429 rate_limited, then 4429 when the flood goes on', async (t) => {
    const { url } = await startChannels(t, { publishRate: 1, publishBurst: 3, maxErrors: 5, channels: [CHAT] });
    const watcher = await Peer.connected(t, url);
    await watcher.call({ id: 2, type: 'subscribe', channel: 'chat:1' });
    const p = await Peer.connected(t, url);
    for (let id = 2; id < 30; id++) p.send({ id, type: 'publish', channel: 'chat:1', data: id });
    const limited = await p.next((f) => f.type === 'error');
    assert.equal(limited.code, ErrorCode.RateLimited);
    assert.deepEqual(await p.next((f) => f.type === 'disconnect'), { type: 'disconnect', code: 4429, reason: 'too many rate-limited commands', reconnect: false });
    assert.equal(await p.closed(), CloseCode.Flooding);
    // The burst went through, nothing more.
    await until(() => watcher.pubs('chat:1').length === 3, 'the burst');
    await sleep(50);
    assert.deepEqual(watcher.pubs('chat:1').map((f) => f.data), [2, 3, 4]);
  });

  it('430 too_many_channels, 431 too_many_pending', async (t) => {
    const { url } = await startChannels(t, {
      maxChannels: 2,
      maxPending: 2,
      authorize: async (_c, _a, channel) => {
        if (channel.startsWith('slow')) await sleep(300);
        return true;
      },
    });
    const p = await Peer.connected(t, url);
    await p.call({ id: 2, type: 'subscribe', channel: 'a' });
    await p.call({ id: 3, type: 'subscribe', channel: 'b' });
    assert.equal((await p.call({ id: 4, type: 'subscribe', channel: 'c' })).code, ErrorCode.TooManyChannels);
    p.send({ id: 5, type: 'history', channel: 'slow1' });
    p.send({ id: 6, type: 'history', channel: 'slow2' });
    assert.equal((await p.call({ id: 7, type: 'history', channel: 'slow3' })).code, ErrorCode.TooManyPending);
  });

  it('500 internal: a hook that throws is an error reply, not a crash', async (t) => {
    const { url } = await startChannels(t, {
      authorize: () => {
        throw new Error('hook bug');
      },
    });
    const p = await Peer.connected(t, url);
    assert.deepEqual(await p.call({ id: 2, type: 'subscribe', channel: 'a' }), { id: 2, type: 'error', code: 500, message: 'internal error' });
    assert.equal((await p.call({ id: 3, type: 'subscribe', channel: 'a' })).code, 500, 'the failed subscribe left nothing behind');
  });

  it('an authenticate hook that throws: 500 and close 4500 (reconnect)', async (t) => {
    const { url } = await startChannels(t, {
      authenticate: async () => {
        throw new Error('db down');
      },
    });
    const p = await Peer.open(t, url);
    assert.equal((await p.call({ id: 1, type: 'connect' })).code, 500);
    assert.deepEqual(await p.next((f) => f.type === 'disconnect'), { type: 'disconnect', code: 4500, reason: 'internal error', reconnect: true });
    assert.equal(await p.closed(), CloseCode.Internal);
  });
});

describe('§5, §6 abuse and close codes', () => {
  it('4400: too many errors; other clients are untouched', async (t) => {
    const { url, server } = await startChannels(t, { maxErrors: 5, channels: [CHAT] });
    const good = await Peer.connected(t, url);
    await good.call({ id: 2, type: 'subscribe', channel: 'chat:1' });
    const bad = await Peer.connected(t, url);
    for (let i = 0; i < 50; i++) bad.send('garbage');
    assert.equal(await bad.closed(), CloseCode.TooManyErrors);
    // The budget, and the error that found it empty (followed by the disconnect).
    assert.equal(bad.frames.filter((f) => f.type === 'error').length, 6);
    await server.publish('chat:1', 'still here');
    assert.equal((await good.next((f) => f.type === 'pub')).data, 'still here');
  });

  it('4406: a client that did not negotiate the subprotocol', async (t) => {
    const { url } = await startChannels(t);
    const p = await Peer.open(t, url, []);
    assert.equal(await p.closed(), CloseCode.NotNegotiated);
  });

  it('4501: no connect within connectTimeout', async (t) => {
    const { url } = await startChannels(t, { connectTimeout: 200 });
    const p = await Peer.open(t, url);
    assert.equal(await p.closed(), CloseCode.ConnectTimeout);
    assert.deepEqual(await p.next((f) => f.type === 'disconnect'), { type: 'disconnect', code: 4501, reason: 'no connect in time', reconnect: true });
  });

  it('heartbeat: pings every `ping` ms; a client that never answers is closed with 4502', async (t) => {
    const { url } = await startChannels(t, { ping: 200, pingGrace: 600 });
    const silent = await Peer.connected(t, url);
    const live = await Peer.connected(t, url);
    const pong = setInterval(() => live.readyState === 1 && live.send({ type: 'pong' }), 50);
    t.after(() => clearInterval(pong));
    await silent.next((f) => f.type === 'ping', 'a ping');
    assert.equal(await silent.closed(), CloseCode.HeartbeatTimeout);
    assert.equal(live.closeCode, null, 'a client that answers stays');
  });

  it('4503: a client that stops reading is cut off; memory stays bounded', async (t) => {
    const { port, server } = await startChannels(t, { maxBufferedBytes: 256 * 1024, channels: [CHAT] });
    const { peer } = await rawOpen(port, { path: '/channels', headers: { 'Sec-WebSocket-Protocol': 'fullduplex.channels.v1' } });
    t.after(() => peer.destroy());
    const mask = [1, 2, 3, 4];
    await peer.send({ opcode: 1, mask, payload: JSON.stringify({ id: 1, type: 'connect' }) });
    await peer.send({ opcode: 1, mask, payload: JSON.stringify({ id: 2, type: 'subscribe', channel: 'chat:flood' }) });
    await until(() => server.clientCount === 1, 'the session');
    await sleep(100);
    peer.socket.pause();
    const big = 'y'.repeat(16 * 1024);
    // Publish until the server gives up on the reader (bounded: 4000 × 16 KiB).
    for (let i = 0; i < 4000 && server.clientCount > 0; i++) {
      await server.publish('chat:flood', big);
      if (i % 50 === 0) await sleep(5);
    }
    await until(() => server.clientCount === 0, 'the slow consumer closed', 15_000);
  });

  it('shutdown: clients get disconnect 1001 with reconnect: true', async (t) => {
    const { url, server } = await startChannels(t);
    const p = await Peer.connected(t, url);
    await server.close();
    assert.deepEqual(await p.next((f) => f.type === 'disconnect'), { type: 'disconnect', code: 1001, reason: 'server shutting down', reconnect: true });
    assert.equal(await p.closed(), 1001);
  });

  it('server.disconnect(client, code, reason): the application ends a session', async (t) => {
    const { url, server } = await startChannels(t);
    const p = await Peer.connected(t, url);
    const id = String((await p.reply(1)).client);
    assert.equal(server.disconnect(id, 4000, 'kicked'), true);
    assert.deepEqual(await p.next((f) => f.type === 'disconnect'), { type: 'disconnect', code: 4000, reason: 'kicked', reconnect: false });
    assert.equal(await p.closed(), 4000);
    assert.equal(server.disconnect('nobody'), false);
  });
});
