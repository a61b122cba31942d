/**
 * fullduplex/client against the channel server over real loopback sockets:
 * every command through the client API, connection states, reconnection
 * with recovery exactly once (also when history is gone), dead-connection
 * detection by the heartbeat, authorization on recovery.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../../src/client-lib/client.js';
import type { ChannelErrorInfo, ClientEvents, ClientOptions, Publication, SubscribedEvent } from '../../src/client-lib/types.js';
import { ChannelError } from '../../src/client-lib/codes.js';
import { WebSocket } from '../../src/index.js';
import { ChannelServer } from '../../src/channels/server.js';
import { TcpProxy, recordNumbers, startChannels, until } from '../helpers/channels.js';

const CHAT = { match: 'chat:*', history: { size: 100, ttl: 60_000 }, presence: true, publish: true };
const FAST: ClientOptions = { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 200, timeout: 3000 };

function client(t: TestContext, url: string, options: ClientOptions = {}): Client {
  const c = new Client(url, { ...FAST, ...options });
  t.after(() => c.disconnect());
  return c;
}

/** Records every event of a client. */
function record(c: Client): { type: keyof ClientEvents; event: unknown }[] {
  const log: { type: keyof ClientEvents; event: unknown }[] = [];
  for (const type of ['state', 'connecting', 'connected', 'disconnected', 'reconnecting', 'error'] as const) {
    c.on(type, (event) => log.push({ type, event }));
  }
  return log;
}

describe('client API over WebSocket', () => {
  it('connects, subscribes, publishes with acknowledgement, reads history and presence', async (t) => {
    const { url } = await startChannels(t, { channels: [CHAT], authenticate: (_r, token) => (token ? { user: token, info: { n: 1 } } : null) });
    let tokens = 0;
    const c = client(t, url, {
      token: async () => {
        tokens++;
        return 'carol';
      },
    });
    const log = record(c);
    const got: Publication[] = [];
    const sub = c.subscribe('chat:a');
    sub.on('publication', (p) => got.push(p));
    const joins: string[] = [];
    sub.on('join', (j) => joins.push(j.user));
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed');
    assert.equal(c.transport, 'websocket');
    assert.equal(c.user, 'carol');
    assert.equal(tokens, 1);
    assert.deepEqual(
      log.filter((e) => e.type === 'state').map((e) => e.event),
      [
        { state: 'connecting', transport: null },
        { state: 'connected', transport: 'websocket' },
      ],
    );
    const ack = await sub.publish({ text: 'hello' });
    assert.equal(ack.offset, 1);
    await c.publish('chat:a', new Uint8Array([9, 8, 7]));
    await until(() => got.length === 2, 'two publications');
    assert.deepEqual(got[0], { channel: 'chat:a', offset: 1, epoch: ack.epoch, data: { text: 'hello' }, info: { client: c.clientId, user: 'carol' } });
    assert.deepEqual(got[1]?.data, new Uint8Array([9, 8, 7]));
    const h = await sub.history({ limit: 10 });
    assert.deepEqual(h.publications.map((p) => p.offset), [1, 2]);
    assert.deepEqual(await sub.presence(), [{ client: c.clientId, user: 'carol', info: { n: 1 } }]);
    await until(() => joins.includes('carol'), 'own join');
    await assert.rejects(c.publish('other', 1), { code: 403 });
    await assert.rejects(c.history('other'), { code: 405 });
    const ended: unknown[] = [];
    sub.on('unsubscribed', (e) => ended.push(e));
    sub.unsubscribe();
    assert.deepEqual(ended, [{ channel: 'chat:a', code: 0, reason: 'unsubscribed' }]);
    assert.equal(c.getSubscription('chat:a'), undefined);
  });

  it('server.unsubscribe ends a subscription with an unsubscribed push; the client does not come back to it', async (t) => {
    const { url, server } = await startChannels(t, { channels: [CHAT] });
    const c = client(t, url);
    const sub = c.subscribe('chat:kick');
    const ended: unknown[] = [];
    sub.on('unsubscribed', (e) => ended.push(e));
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed');
    assert.equal(server.unsubscribe(c.clientId ?? '', 'chat:kick', 4403, 'kicked from the room'), true);
    await until(() => ended.length === 1, 'unsubscribed push');
    assert.deepEqual(ended[0], { channel: 'chat:kick', code: 4403, reason: 'kicked from the room' });
    assert.equal(c.getSubscription('chat:kick'), undefined);
    await server.publish('chat:kick', 'not for you');
    assert.deepEqual(await server.presence('chat:kick'), []);
    assert.equal(server.unsubscribe(c.clientId ?? '', 'chat:kick'), false);
  });

  it('a publish with no reply in time rejects with 408; a refused subscribe ends the subscription', async (t) => {
    const { url } = await startChannels(t, {
      channels: [CHAT],
      authorize: async (_c, action, channel) => {
        if (action === 'publish') await new Promise((r) => setTimeout(r, 500));
        return channel !== 'chat:closed';
      },
    });
    const c = client(t, url, { commandTimeout: 100 });
    c.connect();
    await assert.rejects(c.publish('chat:a', 1), { code: 408 });
    const sub = c.subscribe('chat:closed');
    const errors: ChannelErrorInfo[] = [];
    sub.on('error', (e) => errors.push(e));
    await until(() => errors.length === 1, 'refusal');
    assert.ok(errors[0] instanceof ChannelError);
    assert.deepEqual([errors[0].code, errors[0].message], [403, 'not allowed to subscribe to this channel']);
    assert.equal(sub.state, 'unsubscribed');
  });

  it('a refused connect is terminal: disconnected {4401, reconnect: false}, no retry', async (t) => {
    const { url } = await startChannels(t, { authenticate: () => null });
    const c = client(t, url);
    const log = record(c);
    c.connect();
    await until(() => log.some((e) => e.type === 'disconnected'), 'disconnected');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(log.find((e) => e.type === 'disconnected')?.event, { code: 4401, reason: 'authentication failed', reconnect: false });
    assert.equal(c.state, 'disconnected');
    assert.equal(log.filter((e) => e.type === 'connecting').length, 1, 'not the SSE fallback either: the server answered');
  });
});

describe('reconnection and recovery', () => {
  it('a dropped connection reconnects and gets every missed publication exactly once, in order', async (t) => {
    const { port, server } = await startChannels(t, { channels: [CHAT] });
    const proxy = new TcpProxy([port]);
    await proxy.start(t);
    const c = client(t, `ws://127.0.0.1:${proxy.port}/channels`, { transports: ['websocket'] });
    const log = record(c);
    const { sub, got, subscribed } = recordNumbers(c, 'chat:room');
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed');
    // A publisher that keeps going through the cut and the reconnection.
    let n = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop && n < 400) {
        await server.publish('chat:room', ++n);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await until(() => got.length >= 20, 'first publications');
    proxy.cut();
    await until(() => log.some((e) => e.type === 'reconnecting'), 'reconnecting');
    await until(() => subscribed.length === 2, 'resubscribed');
    await until(() => got.length >= n && n > 40, 'catching up');
    stop = true;
    await publisher;
    await until(() => got.length === n, 'every publication');
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), 'each once, in order');
    const again = subscribed[1];
    assert.equal(again?.recovered, true);
    const disconnected = log.find((e) => e.type === 'disconnected')?.event as ClientEvents['disconnected'];
    assert.deepEqual([disconnected.code, disconnected.reconnect], [1006, true]);
    const reconnecting = log.find((e) => e.type === 'reconnecting')?.event as ClientEvents['reconnecting'];
    assert.equal(reconnecting.attempt, 1);
    assert.ok(reconnecting.delay >= 0 && reconnecting.delay <= 20, 'first delay within [0, minReconnectDelay]');
  });

  it('says recovered: false (epoch) when the server restarted with its in-memory history', async (t) => {
    const first = new ChannelServer({ channels: [CHAT] });
    const { port } = await first.listen(0);
    t.after(() => first.close());
    const c = client(t, `ws://127.0.0.1:${port}/channels`, { transports: ['websocket'] });
    const sub = c.subscribe('chat:r');
    const events: SubscribedEvent[] = [];
    sub.on('subscribed', (e) => events.push(e));
    c.connect();
    await until(() => events.length === 1, 'subscribed');
    await first.publish('chat:r', 'before');
    await until(() => sub.position?.offset === 1, 'publication seen');
    await first.close();
    const second = new ChannelServer({ channels: [CHAT] });
    await second.listen(port);
    t.after(() => second.close());
    await until(() => events.length === 2, 'resubscribed to the new server');
    assert.deepEqual([events[1]?.recovered, events[1]?.reason, events[1]?.missed], [false, 'epoch', 0]);
    await second.publish('chat:r', 'after');
    await until(() => sub.position?.epoch === events[1]?.epoch && sub.position?.offset === 1, 'new epoch followed');
  });

  it('detects a dead connection by the heartbeat and reconnects', async (t) => {
    const { port } = await startChannels(t, { ping: 150, pingGrace: 5000 });
    const proxy = new TcpProxy([port]);
    await proxy.start(t);
    const c = client(t, `ws://127.0.0.1:${proxy.port}/channels`, { transports: ['websocket'], pingGrace: 300 });
    const log = record(c);
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(c.state, 'connected', 'pings keep a live connection up');
    proxy.frozen = true;
    const started = Date.now();
    await until(() => log.some((e) => e.type === 'disconnected'), 'dead connection noticed');
    const took = Date.now() - started;
    proxy.frozen = false;
    assert.deepEqual(log.find((e) => e.type === 'disconnected')?.event, { code: 4502, reason: 'heartbeat timeout', reconnect: true });
    assert.ok(took < 5000, `noticed after ${took} ms, bounded by ping + grace`);
    await until(() => c.state === 'connected', 'reconnected');
  });

  it('authorization is checked again on recovery', async (t) => {
    let allowed = true;
    const { port, server } = await startChannels(t, { channels: [CHAT], authorize: () => allowed });
    const proxy = new TcpProxy([port]);
    await proxy.start(t);
    const c = client(t, `ws://127.0.0.1:${proxy.port}/channels`, { transports: ['websocket'] });
    const sub = c.subscribe('chat:vip');
    const got: unknown[] = [];
    const ended: unknown[] = [];
    sub.on('publication', (p) => got.push(p.data));
    sub.on('unsubscribed', (e) => ended.push(e));
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed');
    allowed = false;
    proxy.cut();
    await server.publish('chat:vip', 'secret while away');
    await until(() => ended.length === 1, 'refused on resubscribe');
    assert.deepEqual(ended[0], { channel: 'chat:vip', code: 403, reason: 'not allowed to subscribe to this channel' });
    assert.deepEqual(got, []);
  });
});
