/**
 * The client's connection logic without sockets (PROTOCOL.md §6, §10): a
 * scripted WebSocket and mocked timers drive it through the backoff
 * schedule and its reset, the heartbeat, resubscription with recovery,
 * commands across connection losses, terminal closes and payload encoding.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../../src/client-lib/client.js';
import { backoffDelay } from '../../src/client-lib/backoff.js';
import { decodePayload, encodePayload } from '../../src/client-lib/payload.js';
import type { ClientEvents, WebSocketConstructor } from '../../src/client-lib/types.js';

/** A WebSocket the test drives by hand. */
class ScriptedSocket {
  static all: ScriptedSocket[] = [];
  readyState = 0;
  protocol = '';
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Record<string, unknown>[] = [];
  constructor(
    readonly url: string,
    readonly protocols: string,
  ) {
    ScriptedSocket.all.push(this);
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.protocol = this.protocols;
    this.onopen?.({});
  }
  recv(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** Opens and answers `connect`. */
  accept(ping = 25_000): void {
    this.open();
    const hello = this.sent[0];
    this.recv({ id: hello?.id, type: 'connected', client: `c${ScriptedSocket.all.length}`, user: 'u', ping });
  }
}

const last = (): ScriptedSocket => {
  const s = ScriptedSocket.all.at(-1);
  assert.ok(s, 'a socket was opened');
  return s;
};

function setup(t: TestContext, options: ConstructorParameters<typeof Client>[1] = {}) {
  ScriptedSocket.all = [];
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  // The top of every jitter range, so the schedule is exact.
  t.mock.method(Math, 'random', () => 0.999_999_999);
  const c = new Client('ws://example.test/channels', {
    WebSocket: ScriptedSocket as unknown as WebSocketConstructor,
    transports: ['websocket'],
    ...options,
  });
  const events: { type: keyof ClientEvents; event: unknown }[] = [];
  for (const type of ['state', 'connecting', 'connected', 'disconnected', 'reconnecting'] as const) c.on(type, (event) => events.push({ type, event }));
  t.after(() => c.disconnect());
  return { c, events };
}

/** Lets the client's promise continuations (the token) run. */
const settle = () => new Promise<void>((r) => queueMicrotask(r)).then(() => new Promise<void>((r) => queueMicrotask(r)));

describe('§6 backoff', () => {
  it('full jitter: uniformly random below min × 2^attempt, capped at max', () => {
    const top = () => 0.999_999_999;
    assert.deepEqual(
      Array.from({ length: 9 }, (_, n) => backoffDelay(n, 500, 20_000, top)),
      [499, 999, 1999, 3999, 7999, 15_999, 19_999, 19_999, 19_999],
    );
    assert.equal(backoffDelay(3, 500, 20_000, () => 0), 0);
    assert.equal(backoffDelay(10_000, 500, 20_000, top), 19_999, 'no overflow for huge attempts');
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(4, 100, 1000);
      assert.ok(d >= 0 && d < 1000);
    }
  });

  it('the client follows the schedule while attempts fail, and resets it after a stable connection', async (t) => {
    const { c, events } = setup(t, { minReconnectDelay: 500, maxReconnectDelay: 4000, stableAfter: 10_000 });
    c.connect();
    await settle();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      last().drop();
      await settle();
      const r = events.at(-1)?.event as ClientEvents['reconnecting'];
      assert.equal(events.at(-1)?.type, 'reconnecting');
      assert.equal(r.attempt, i + 1);
      delays.push(r.delay);
      t.mock.timers.tick(r.delay);
      await settle();
    }
    assert.deepEqual(delays, [499, 999, 1999, 3999, 3999, 3999]);
    // Connected, then lost quickly: the schedule goes on.
    last().accept();
    t.mock.timers.tick(1000);
    last().drop();
    assert.deepEqual(events.at(-1)?.event, { attempt: 7, delay: 3999 });
    t.mock.timers.tick(3999);
    await settle();
    // Connected for longer than stableAfter: back to the first step.
    last().accept();
    t.mock.timers.tick(10_000);
    last().recv({ type: 'ping' });
    last().drop(1001, 'going away');
    assert.deepEqual(
      events.slice(-3).map((e) => e.type),
      ['disconnected', 'state', 'reconnecting'],
    );
    assert.deepEqual(events.at(-3)?.event, { code: 1001, reason: 'going away', reconnect: true });
    assert.deepEqual(events.at(-1)?.event, { attempt: 1, delay: 499 });
  });
});

describe('§6 heartbeat', () => {
  it('answers pings; a connection silent beyond ping + grace is closed (4502) and replaced', async (t) => {
    const { c, events } = setup(t, { pingGrace: 500 });
    c.connect();
    await settle();
    const ws = last();
    ws.accept(1000);
    assert.equal(c.state, 'connected');
    t.mock.timers.tick(1400);
    ws.recv({ type: 'ping' });
    assert.deepEqual(ws.sent.at(-1), { type: 'pong' });
    t.mock.timers.tick(1499);
    assert.equal(c.state, 'connected');
    t.mock.timers.tick(1);
    assert.deepEqual(events.find((e) => e.type === 'disconnected')?.event, { code: 4502, reason: 'heartbeat timeout', reconnect: true });
    assert.equal(ws.readyState, 3, 'the dead socket was closed');
    assert.equal(c.state, 'reconnecting');
  });
});

describe('§7/§2 subscriptions and commands across reconnections', () => {
  it('resubscribes with recover from the last position; commands wait for a connection; in-flight ones fail with 499', async (t) => {
    const { c } = setup(t, { commandTimeout: 60_000 });
    const sub = c.subscribe('room');
    const queued = c.publish('room', { a: 1 });
    c.connect();
    await settle();
    const ws = last();
    ws.accept();
    const subscribe = ws.sent.find((f) => f.type === 'subscribe');
    assert.deepEqual(subscribe, { id: subscribe?.id, type: 'subscribe', channel: 'room' });
    const publish = ws.sent.find((f) => f.type === 'publish');
    assert.deepEqual(publish, { id: publish?.id, type: 'publish', channel: 'room', data: { a: 1 } });
    ws.recv({ id: publish?.id, type: 'published', offset: 1, epoch: 'E' });
    assert.deepEqual(await queued, { offset: 1, epoch: 'E' });
    ws.recv({ id: subscribe?.id, type: 'subscribed', channel: 'room', offset: 1, epoch: 'E' });
    ws.recv({ type: 'pub', channel: 'room', offset: 2, epoch: 'E', data: 'x' });
    assert.deepEqual(sub.position, { offset: 2, epoch: 'E' });

    const inflight = c.history('room');
    ws.drop();
    await assert.rejects(inflight, { code: 499, message: 'connection lost' });
    t.mock.timers.tick(1000);
    await settle();
    last().accept();
    const again = last().sent.find((f) => f.type === 'subscribe');
    assert.deepEqual(again?.recover, { offset: 2, epoch: 'E' });
  });

  it('a command with no reply rejects with 408 after commandTimeout', async (t) => {
    const { c } = setup(t, { commandTimeout: 300 });
    c.connect();
    await settle();
    last().accept();
    const p = c.presence('room');
    t.mock.timers.tick(300);
    await assert.rejects(p, { code: 408 });
  });
});

describe('§6/§10 closes', () => {
  it('a protocol close before connected is terminal: no fallback, no retry', async (t) => {
    const { c, events } = setup(t, { transports: ['websocket', 'sse'] });
    c.connect();
    await settle();
    last().open();
    last().recv({ type: 'disconnect', code: 4401, reason: 'authentication failed', reconnect: false });
    last().drop(4401, 'authentication failed');
    await settle();
    assert.deepEqual(events.find((e) => e.type === 'disconnected')?.event, { code: 4401, reason: 'authentication failed', reconnect: false });
    assert.equal(events.filter((e) => e.type === 'connecting').length, 1);
    assert.equal(c.state, 'disconnected');
  });

  it('the disconnect push decides whether to reconnect', async (t) => {
    const { c, events } = setup(t);
    c.connect();
    await settle();
    last().accept();
    last().recv({ type: 'disconnect', code: 4503, reason: 'slow consumer', reconnect: true });
    last().drop(4503, 'slow consumer');
    assert.deepEqual(events.find((e) => e.type === 'disconnected')?.event, { code: 4503, reason: 'slow consumer', reconnect: true });
    t.mock.timers.tick(1000);
    await settle();
    last().accept();
    last().recv({ type: 'disconnect', code: 4000, reason: 'kicked', reconnect: false });
    last().drop(4000, 'kicked');
    assert.equal(c.state, 'disconnected');
  });

  it('a WebSocket that does not reach connected within `timeout` is given up', async (t) => {
    const { c, events } = setup(t, { timeout: 2000 });
    c.connect();
    await settle();
    const ws = last();
    ws.open();
    t.mock.timers.tick(1999);
    assert.equal(c.state, 'connecting');
    t.mock.timers.tick(1);
    await settle();
    assert.equal(ws.readyState, 3);
    assert.deepEqual(events.find((e) => e.type === 'disconnected')?.event, { code: 1006, reason: 'timeout', reconnect: true });
  });
});

describe('§1 payloads', () => {
  it('bytes travel as base64, everything else as JSON data', () => {
    assert.deepEqual(encodePayload({ a: 1 }), { data: { a: 1 } });
    assert.deepEqual(encodePayload('text'), { data: 'text' });
    assert.deepEqual(encodePayload(new Uint8Array([0, 255, 16])), { b64: 'AP8Q' });
    assert.deepEqual(encodePayload(new Uint8Array([1, 2, 3, 4]).subarray(1, 3)), { b64: 'AgM=' });
    assert.deepEqual(encodePayload(new Uint8Array([7]).buffer), { b64: 'Bw==' });
    const big = new Uint8Array(100_000).map((_, i) => i % 251);
    assert.deepEqual(decodePayload(encodePayload(big)), big);
    assert.deepEqual(decodePayload({ b64: 'AP8Q' }), new Uint8Array([0, 255, 16]));
    assert.deepEqual(decodePayload({ data: [1] }), [1]);
  });
});
