/**
 * Hostile traffic over the channel protocol's WebSocket transport
 * (PROTOCOL.md §2, §3, §5–§8): publishes over the rate, refused or huge;
 * floods from many clients on two nodes; a presence join/leave storm; a
 * subscriber that stops reading; silent and over-eager heartbeat peers; a
 * shutdown mid-traffic. Expectations come from PROTOCOL.md. Frames before
 * and around `connect`, names, ids and recovery: channels-ws-hostile.test.ts.
 */
import { type TestContext, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, ErrorCode } from '../../src/client-lib/codes.js';
import { MemoryStore } from '../../src/channels/memory-store.js';
import { Bus, BusBroker, type Json, Peer, startChannels, until } from '../helpers/channels.js';
import { CHAT, FAST, closeFrameBytes, drainTail, errors, offsets, range, rawSubscriber, sleep } from '../helpers/channels-hostile.js';
import { withTimeout } from '../helpers/raw-client.js';
import { mustOpen, post } from '../helpers/sse.js';

/** Two channel servers sharing a store, over a broker that delivers across them late and out of order. */
async function twoNodes(t: TestContext): Promise<string[]> {
  const bus = new Bus();
  bus.jitter = 3;
  const store = new MemoryStore();
  t.after(() => store.close());
  const urls: string[] = [];
  for (let i = 0; i < 2; i++) {
    const broker = new BusBroker(bus);
    t.after(() => broker.close());
    urls.push((await startChannels(t, { ...FAST, broker, store, channels: [CHAT] })).url);
  }
  return urls;
}

const SLOW = '{"type":"disconnect","code":4503,"reason":"slow consumer","reconnect":true}';

describe('publishing (PROTOCOL.md §2 publish, §5, §8)', () => {
  it('over the rate: 429 with the id and nothing stored; when the flood goes on, disconnect 4429 and close', async (t) => {
    const { url, server } = await startChannels(t, { publishRate: 1, publishBurst: 5, maxErrors: 30, channels: [CHAT] });
    const watcher = await Peer.connected(t, url);
    await watcher.call({ id: 2, type: 'subscribe', channel: 'chat:rl' });
    const p = await Peer.connected(t, url);
    for (let id = 10; id < 22; id++) p.send({ id, type: 'publish', channel: 'chat:rl', data: id });
    const replies = await Promise.all(range(12).map((i) => p.reply(9 + i)));
    const ok = replies.filter((r) => r.type === 'published');
    assert.ok(ok.length >= 5 && ok.length <= 6, `${ok.length} of 12 went through a burst of 5`);
    assert.ok(replies.filter((r) => r.type === 'error').every((r) => r.code === ErrorCode.RateLimited && typeof r.id === 'number'));
    assert.equal((await server.history('chat:rl')).offset, ok.length, 'refused publishes were not stored');
    // The flood goes on, pipelined as a flooder sends it: every publish beyond the rate is one §8 answers with 429.
    for (let id = 100; id < 200; id++) p.send({ id, type: 'publish', channel: 'chat:rl', data: id });
    const code = await p.closed();
    const codes = errors(p).slice(replies.length - ok.length).map((f) => f.code);
    assert.equal(code, CloseCode.Flooding, `closed ${code} after error replies ${JSON.stringify([...new Set(codes)])} (${codes.length})`);
    assert.deepEqual(p.frames.at(-1), { type: 'disconnect', code: 4429, reason: 'too many rate-limited commands', reconnect: false });
    await sleep(50);
    assert.deepEqual(offsets(watcher, 'chat:rl'), range((await server.history('chat:rl')).offset));
  });

  it('403 when authorize or the channel refuses: nothing stored, nothing delivered', async (t) => {
    const { url, server } = await startChannels(t, {
      channels: [CHAT, { match: 'news:*', publish: false, history: { size: 10, ttl: 60_000 } }],
      authenticate: (_r, token) => ({ user: String(token) }),
      authorize: (client, action, channel) => !(client.user === 'mallory' && action === 'publish' && channel === 'chat:ro'),
    });
    const alice = await Peer.connected(t, url, 'alice');
    const mallory = await Peer.connected(t, url, 'mallory');
    for (const [i, channel] of ['chat:ro', 'news:1'].entries()) assert.equal((await alice.call({ id: 10 + i, type: 'subscribe', channel })).type, 'subscribed');
    for (const [id, channel] of [[3, 'chat:ro'], [4, 'news:1']] as const) {
      assert.deepEqual([(await mallory.call({ id, type: 'publish', channel, data: 'forged' })).code], [ErrorCode.Forbidden], channel);
      assert.equal((await server.history(channel)).offset, 0);
    }
    assert.equal((await alice.call({ id: 5, type: 'publish', channel: 'chat:ro', data: 'real' })).type, 'published');
    await until(() => alice.pubs('chat:ro').length === 1, 'alice\'s own pub');
    assert.deepEqual(alice.frames.filter((f) => f.type === 'pub').map((f) => f.data), ['real']);
  });

  it('payloads up to maxMessageSize arrive intact, as data and as b64', async (t) => {
    const { url } = await startChannels(t, { channels: [CHAT] });
    const p = await Peer.connected(t, url);
    await p.call({ id: 2, type: 'subscribe', channel: 'chat:big' });
    const text = 'ü€😀x'.repeat(6000);
    const bytes = Buffer.from(Array.from({ length: 48_000 }, (_, i) => (i * 31) & 255)).toString('base64');
    assert.equal((await p.call({ id: 3, type: 'publish', channel: 'chat:big', data: { text } })).type, 'published');
    assert.equal((await p.call({ id: 4, type: 'publish', channel: 'chat:big', b64: bytes })).type, 'published');
    await until(() => p.pubs('chat:big').length === 2, 'both pubs');
    assert.deepEqual([(p.pubs('chat:big')[0]?.data as { text: string }).text === text, p.pubs('chat:big')[1]?.b64 === bytes], [true, true]);
  });

  it('a deeply nested data value (valid JSON, 40 KB) is answered with a reply, not a 1011 close', async (t) => {
    const { url } = await startChannels(t, { channels: [CHAT] });
    const p = await Peer.connected(t, url);
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    p.send(`{"id":2,"type":"publish","channel":"chat:deep","data":${deep}}`);
    const answer = await Promise.race([p.reply(2).then((r) => JSON.stringify(r).slice(0, 80)), p.closed().then((c) => `close ${c} ${p.closeReason}`)]);
    assert.match(answer, /"id":2,"type":"(published|error)"/, `the publish was answered: ${answer}`);
    assert.deepEqual(await p.call({ id: 3, type: 'ping' }), { id: 3, type: 'pong' });
  });

  it('the same value POSTed to the fallback\'s /send is answered on the stream; the server process survives it', async (t) => {
    const { port } = await startChannels(t, { channels: [CHAT] });
    const stream = await mustOpen(t, port);
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const body = `{"id":2,"type":"publish","channel":"chat:deep","data":${deep}}`;
    const answer = await post(port, '/channels/send', { session: stream.session, body }, 3000).then((r) => String(r.status), (err: unknown) => String(err));
    assert.equal(answer, '204', `POST /channels/send answered: ${answer}`);
    assert.match(JSON.stringify(await stream.reply(2)), /"type":"(published|error)"/);
  });

  it('a flood from eight clients on two nodes: every subscriber sees offsets 1..N once, in one order, each ack matching its pub', async (t) => {
    const urls = await twoNodes(t);
    const peers = await Promise.all(range(8).map((i) => Peer.connected(t, urls[i % 2] ?? '')));
    for (const p of peers) await p.call({ id: 2, type: 'subscribe', channel: 'chat:flood' });
    const per = 40;
    for (const [c, p] of peers.entries()) for (let k = 0; k < per; k++) p.send({ id: 100 + k, type: 'publish', channel: 'chat:flood', data: `${c}:${k}` });
    const n = peers.length * per;
    await until(() => peers.every((p) => p.pubs('chat:flood').length >= n && p.frames.filter((f) => f.type === 'published').length === per), 'every pub and ack', 15_000);
    await sleep(100);
    const order = peers[0]?.pubs('chat:flood').map((f) => f.data);
    const byOffset = new Map(peers[0]?.pubs('chat:flood').map((f) => [Number(f.offset), f.data]));
    for (const [c, p] of peers.entries()) {
      assert.deepEqual(offsets(p, 'chat:flood'), range(n), `client ${c}: each offset once, in order`);
      assert.deepEqual(p.pubs('chat:flood').map((f) => f.data), order, `client ${c}: the same order`);
      for (const ack of p.frames.filter((f) => f.type === 'published')) assert.equal(byOffset.get(Number(ack.offset)), `${c}:${Number(ack.id) - 100}`);
      assert.deepEqual(errors(p), []);
    }
  });

  it('clients that drop and recover on the other node mid-flood get each missed publication once, in order, then live ones', async (t) => {
    const urls = await twoNodes(t);
    const publishers = await Promise.all(range(4).map((i) => Peer.connected(t, urls[i % 2] ?? '')));
    let stop = false;
    let id = 10;
    const flow = publishers.map(async (p) => {
      while (!stop) assert.equal((await p.call({ id: ++id, type: 'publish', channel: 'chat:rr', data: id })).type, 'published');
    });
    for (let round = 0; round < 10; round++) {
      const first = await Peer.connected(t, urls[round % 2] ?? '');
      const s = await first.call({ id: 2, type: 'subscribe', channel: 'chat:rr' });
      await sleep(10);
      first.close();
      await first.closed();
      const from = Number(first.pubs('chat:rr').at(-1)?.offset ?? s.offset);
      await sleep(5 * (round % 4));
      const again = await Peer.connected(t, urls[(round + 1) % 2] ?? '');
      const r = await again.call({ id: 2, type: 'subscribe', channel: 'chat:rr', recover: { offset: from, epoch: s.epoch } });
      await sleep(30);
      const got = [...(r.publications as Json[]).map((x) => Number(x.offset)), ...offsets(again, 'chat:rr')];
      assert.equal(r.recovered, true);
      assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => from + 1 + i), `round ${round}: from ${from + 1}, no gap, no duplicate`);
      again.close();
    }
    stop = true;
    await Promise.all(flow);
  });
});

describe('presence (PROTOCOL.md §2 presence, §3 join/leave, §8 presenceTtl)', () => {
  it('200 clients join and leave (clean closes, abrupt ones, mid-subscribe): presence ends with the watcher only, also after presenceTtl; every join has its leave', async (t) => {
    const ttl = 1500;
    const { url, port, server } = await startChannels(t, { presenceTtl: ttl, channels: [CHAT] });
    const watcher = await Peer.connected(t, url);
    const me = (await watcher.reply(1)).client;
    await watcher.call({ id: 2, type: 'subscribe', channel: 'chat:p' });
    const cycle = async (i: number): Promise<void> => {
      if (i % 4 >= 2) {
        const raw = await rawSubscriber(t, port, 'chat:p', i % 4 === 2);
        return raw.destroy();
      }
      const p = await Peer.connected(t, url);
      if (i % 4 === 0) await p.call({ id: 2, type: 'subscribe', channel: 'chat:p' });
      else p.send({ id: 2, type: 'subscribe', channel: 'chat:p' });
      p.close();
    };
    for (let i = 0; i < 200; i += 10) await Promise.all(range(10).map((k) => cycle(i + k - 1)));
    await until(() => server.clientCount === 1, 'every storm client gone');
    const balanced = (): boolean => {
      const inside = new Set<unknown>();
      for (const f of watcher.frames) if (f.type === 'join') inside.add(f.client);
      else if (f.type === 'leave') inside.delete(f.client);
      return inside.size === 1 && inside.has(me);
    };
    await until(balanced, 'a leave for every join');
    const joins = watcher.frames.filter((f) => f.type === 'join' && f.client !== me).length;
    assert.ok(joins >= 100, `${joins} joins seen (100 clients at least completed their subscribe)`);
    for (const wait of [0, ttl * 2]) {
      await sleep(wait);
      assert.deepEqual((await server.presence('chat:p')).map((e) => e.client), [me]);
      assert.deepEqual(((await watcher.call({ id: 3 + wait, type: 'presence', channel: 'chat:p' })).clients as Json[]).map((e) => e.client), [me]);
      assert.ok(balanced(), 'no join of a ghost came later');
    }
  });
});

describe('slow consumers (PROTOCOL.md §6 4503, §8 maxBufferedBytes)', () => {
  it('a subscriber that stops reading is closed with 4503, its buffer stays near maxBufferedBytes, and the readers get everything', async (t) => {
    const limit = 128 * 1024;
    const { url, port, server } = await startChannels(t, { ...FAST, maxBufferedBytes: limit, channels: [CHAT] });
    const readers = [await Peer.connected(t, url), await Peer.connected(t, url)];
    for (const r of readers) await r.call({ id: 2, type: 'subscribe', channel: 'chat:slow' });
    const stuck = await rawSubscriber(t, port, 'chat:slow');
    stuck.socket.pause();
    const ws = [...server.wss.clients].find((c) => c.remotePort === stuck.socket.localPort) ?? assert.fail('the stuck connection');
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, ws.bufferedAmount)), 1);
    t.after(() => clearInterval(sample));
    const publishers = await Promise.all(range(4).map(() => Peer.connected(t, url)));
    const payload = 'y'.repeat(60_000);
    await withTimeout(Promise.all(publishers.map(async (p) => {
      for (let id = 2; id < 82; id++) assert.equal((await p.call({ id, type: 'publish', channel: 'chat:slow', data: payload })).type, 'published');
    })), 15_000, 'the publishers');
    clearInterval(sample);
    await until(() => readers.every((r) => r.pubs('chat:slow').length === 320), 'the readers to get all 320');
    for (const r of readers) assert.deepEqual(offsets(r, 'chat:slow'), range(320));
    const end = drainTail(stuck);
    await until(() => end.tail.includes(closeFrameBytes(4503, 'slow consumer')), 'the close frame 4503', 10_000);
    assert.ok(end.tail.includes(SLOW), 'the disconnect push before it');
    assert.ok(most <= limit + 64 * 1024, `the server buffered ${most} bytes for it (limit ${limit})`);
    assert.ok(end.received < 12 * 1024 * 1024, `it was sent ${end.received} bytes of the 19 MB published`);
    stuck.destroy();
  });

  it('a client that asks for big replies and does not read them: the server stops reading it and buffers about one reply, then 4503', async (t) => {
    const limit = 256 * 1024;
    const { port, server } = await startChannels(t, { maxBufferedBytes: limit, channels: [CHAT] });
    for (let i = 0; i < 100; i++) await server.publish('chat:h', 'z'.repeat(60_000));
    const stuck = await rawSubscriber(t, port, 'chat:other');
    stuck.socket.pause();
    const ws = [...server.wss.clients][0] ?? assert.fail('the connection');
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, ws.bufferedAmount)), 1);
    t.after(() => clearInterval(sample));
    // maxPending (32) history replies of 6 MB each: 190 MB if the server took them all.
    for (let id = 10; id < 42; id++) await stuck.send({ opcode: 1, mask: [1, 2, 3, 4], payload: JSON.stringify({ id, type: 'history', channel: 'chat:h' }) });
    await sleep(1500);
    clearInterval(sample);
    const end = drainTail(stuck);
    await until(() => end.tail.includes(closeFrameBytes(4503, 'slow consumer')), 'the close frame 4503', 10_000);
    assert.ok(end.tail.includes(SLOW));
    assert.ok(most < limit + 2 * 6_200_000, `the server buffered ${(most / 2 ** 20).toFixed(1)} MiB for it`);
    stuck.destroy();
  });
});

describe('heartbeat (PROTOCOL.md §6)', () => {
  it('a client that only receives is closed with 4502; pongs unasked and often, or pings only, are liveness and never punished', async (t) => {
    const { url, server } = await startChannels(t, { ping: 200, pingGrace: 600, channels: [CHAT] });
    const silent = await Peer.connected(t, url);
    await silent.call({ id: 2, type: 'subscribe', channel: 'chat:hb' });
    const chatty = await Peer.connected(t, url);
    const pinger = await Peer.connected(t, url);
    let id = 10;
    const timers = [
      setInterval(() => void server.publish('chat:hb', 'tick'), 50),
      setInterval(() => chatty.readyState === 1 && [{ type: 'pong' }, { id: 1, type: 'pong' }, { type: 'pong', extra: 'x' }].forEach((f) => chatty.send(f)), 5),
      setInterval(() => pinger.readyState === 1 && pinger.send({ id: ++id, type: 'ping' }), 100),
    ];
    t.after(() => timers.forEach(clearInterval));
    assert.equal(await silent.closed(), CloseCode.HeartbeatTimeout);
    assert.deepEqual(silent.frames.at(-1), { type: 'disconnect', code: 4502, reason: 'heartbeat timeout', reconnect: true });
    assert.ok(silent.pubs('chat:hb').length > 0 && silent.frames.some((f) => f.type === 'ping'));
    await sleep(1200);
    for (const p of [chatty, pinger]) {
      assert.equal(p.closeCode, null);
      assert.deepEqual(errors(p), []);
    }
  });
});

describe('shutdown (PROTOCOL.md §6 1001)', () => {
  it('close() with 20 clients publishing and one not reading: each reader gets disconnect 1001 (reconnect) last, then close 1001; close() ends in bounded time', async (t) => {
    const { url, port, server } = await startChannels(t, { ...FAST, channels: [CHAT] });
    const peers = await Promise.all(range(20).map(() => Peer.connected(t, url)));
    for (const p of peers) await p.call({ id: 2, type: 'subscribe', channel: 'chat:s' });
    const stuck = await rawSubscriber(t, port, 'chat:s');
    stuck.socket.pause();
    let id = 10;
    const pump = setInterval(() => {
      for (const p of peers) if (p.readyState === 1) for (let k = 0; k < 3; k++) p.send({ id: ++id, type: 'publish', channel: 'chat:s', data: id });
    }, 2);
    t.after(() => clearInterval(pump));
    await until(() => (peers[0]?.pubs('chat:s').length ?? 0) > 300, 'publications flowing');
    // The reader that never answers the close frame holds close() for the close timeout (5 s), no longer.
    await withTimeout(server.close(), 10_000, 'ChannelServer.close()');
    clearInterval(pump);
    for (const [i, p] of peers.entries()) {
      assert.equal(await p.closed(), 1001, `client ${i}`);
      assert.equal(p.closeReason, 'server shutting down');
      assert.deepEqual(p.frames.at(-1), { type: 'disconnect', code: 1001, reason: 'server shutting down', reconnect: true }, `client ${i}: the disconnect came last`);
    }
    assert.equal(server.clientCount, 0);
    drainTail(stuck);
    await until(() => stuck.closed, 'the stuck connection to be closed');
  });
});
