/**
 * In-process topics through the public API (issue 10, "In-process topics,
 * complete"): a connection's subscriptions, the server's subscriber counts
 * and subscription callback, publish, one shared frame per publish, the
 * Broker seam, compressed subscribers (RFC 7692 §7.1.1), and the
 * slow-consumer policy (maxBackpressure, dropped, closeOnBackpressureLimit)
 * with bounded memory.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { WebSocket as WsClient } from 'ws';
import {
  DiagnosticsChannel,
  LocalBroker,
  TopicMessage,
  WebSocketServer,
  type Broker,
  type PublishCallback,
  type ServerWebSocket,
  type SubscriptionListener,
  type TopicSubscriber,
} from '../../src/index.js';
import { RawPeer, rawOpen, until, delay, withTimeout, type RawFrame, type RequestSpec, type RawResponse } from '../helpers/raw-client.js';
import { type EventLog, type Scope, listening } from '../helpers/server-harness.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
/** RSV1 as RawFrame.rsv reports it (the three RSV bits, RSV1 highest). */
const RSV1 = 4;

interface Opened<T> {
  peer: RawPeer;
  ws: ServerWebSocket<T>;
  response: RawResponse;
}

/** Opens `n` raw peers one after another, each paired with its server-side connection. */
async function rawPeers<T>(s: Scope, port: number, log: EventLog<T>, n: number, spec: RequestSpec = {}): Promise<Opened<T>[]> {
  const out: Opened<T>[] = [];
  for (let i = 0; i < n; i++) {
    const opens = log.all('open').length;
    const { peer, response } = await rawOpen(port, spec);
    s.peer(peer);
    out.push({ peer, ws: (await log.nth('open', opens + 1)).ws, response });
  }
  return out;
}

async function expectFrame(peer: RawPeer, opcode: number, payload: Buffer | string, rsv = 0): Promise<RawFrame> {
  const f = await peer.readFrame();
  assert.equal(f.opcode, opcode, 'opcode');
  assert.equal(f.rsv, rsv, 'RSV bits');
  assert.equal(f.fin, true);
  assert.equal(f.masked, false);
  assert.deepEqual(f.payload, typeof payload === 'string' ? Buffer.from(payload) : payload);
  return f;
}

/** `size` bytes whose first four are `seq` (big-endian), the rest a fill that depends on it. */
function numbered(seq: number, size: number): Buffer {
  const b = Buffer.alloc(size, seq & 0xff);
  b.writeUInt32BE(seq, 0);
  return b;
}

/** RFC 7692 §7.2.2: append the tail the sender removed, then inflate. */
function inflate(payload: Buffer): Buffer {
  return zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0x00, 0x00, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** Records every `fullduplex:message:dropped` event for the test's duration. */
function recordDrops(t: TestContext): DropEvent[] {
  const events: DropEvent[] = [];
  const listener = (m: unknown): void => {
    events.push(m as DropEvent);
  };
  diagnostics_channel.subscribe(DiagnosticsChannel.MessageDropped, listener);
  t.after(() => diagnostics_channel.unsubscribe(DiagnosticsChannel.MessageDropped, listener));
  return events;
}

interface DropEvent {
  connection: unknown;
  topic: string;
  bytes: number;
  bufferedAmount: number;
}

/** Collects every message a `ws` client receives. */
function collect(ws: WsClient): Buffer[] {
  const got: Buffer[] = [];
  ws.on('message', (data: Buffer) => got.push(data));
  return got;
}

describe('a connection\'s subscriptions', () => {
  it('subscribe / unsubscribe say whether anything changed; isSubscribed and subscriptions follow', async (t) => {
    const { s, port, log, wss } = await listening(t, {}, {});
    const [a] = await rawPeers(s, port, log, 1);
    assert.ok(a);
    const ws = a.ws;
    assert.deepEqual(ws.subscriptions, []);
    assert.equal(ws.isSubscribed('news'), false);
    assert.equal(ws.subscribe('news'), true);
    assert.equal(ws.subscribe('news'), false, 'already subscribed');
    assert.equal(ws.subscribe('sport'), true);
    assert.equal(ws.isSubscribed('news'), true);
    assert.deepEqual(ws.subscriptions.sort(), ['news', 'sport']);
    assert.equal(wss.subscriberCount('news'), 1);
    assert.equal(ws.unsubscribe('news'), true);
    assert.equal(ws.unsubscribe('news'), false, 'no longer subscribed');
    assert.equal(ws.unsubscribe('never'), false);
    assert.equal(ws.isSubscribed('news'), false);
    assert.deepEqual(ws.subscriptions, ['sport']);
    assert.equal(wss.subscriberCount('news'), 0);
    assert.equal(wss.subscriberCount('sport'), 1);
  });

  it('subscriberCount counts each connection once per topic', async (t) => {
    const { s, port, log, wss } = await listening(t, {}, {});
    const peers = await rawPeers(s, port, log, 3);
    for (const { ws } of peers) ws.subscribe('room');
    peers[0]?.ws.subscribe('room');
    peers[0]?.ws.subscribe('other');
    assert.equal(wss.subscriberCount('room'), 3);
    assert.equal(wss.subscriberCount('other'), 1);
    assert.equal(wss.subscriberCount('nobody'), 0);
  });

  it('closing unsubscribes from every topic; a closed connection cannot subscribe', async (t) => {
    const { s, port, log, wss } = await listening(t, {}, {});
    const [a, b] = await rawPeers(s, port, log, 2);
    assert.ok(a && b);
    a.ws.subscribe('x');
    a.ws.subscribe('y');
    b.ws.subscribe('x');
    await a.peer.sendClose(1000);
    await a.peer.readClose();
    await log.first('close');
    assert.equal(wss.subscriberCount('x'), 1);
    assert.equal(wss.subscriberCount('y'), 0);
    assert.deepEqual(a.ws.subscriptions, []);
    assert.equal(a.ws.isSubscribed('x'), false);
    assert.equal(a.ws.subscribe('z'), false, 'a closed connection subscribes to nothing');
    assert.equal(wss.subscriberCount('z'), 0);
    b.peer.destroy();
    await log.nth('close', 2);
    assert.equal(wss.subscriberCount('x'), 0, 'a connection that vanished without a close frame leaves too');
  });
});

describe('the subscription(ws, topic, before, after) callback', () => {
  it('reports each change with local counts before and after, including those a close makes', async (t) => {
    const calls: Array<[ServerWebSocket, string, number, number]> = [];
    const { s, port, log } = await listening(t, {}, { subscription: (ws, topic, before, after) => calls.push([ws, topic, before, after]) });
    const [a, b] = await rawPeers(s, port, log, 2);
    assert.ok(a && b);
    const name = (ws: ServerWebSocket): string => (ws === a.ws ? 'a' : ws === b.ws ? 'b' : '?');
    a.ws.subscribe('t');
    b.ws.subscribe('t');
    a.ws.subscribe('t'); // no change: no call
    b.ws.subscribe('u');
    a.ws.unsubscribe('t');
    a.ws.unsubscribe('t'); // no change: no call
    b.peer.destroy();
    await log.first('close');
    assert.deepEqual(
      calls.map(([ws, topic, before, after]) => [name(ws), topic, before, after]),
      [
        ['a', 't', 0, 1],
        ['b', 't', 1, 2],
        ['b', 'u', 0, 1],
        ['a', 't', 2, 1],
        ['b', 't', 1, 0],
        ['b', 'u', 1, 0],
      ],
    );
  });

  it('a change the callback itself makes does not hide the rest of a close\'s changes', async (t) => {
    // Presence logic: when the host leaves "room", its guest is taken out too.
    const calls: string[] = [];
    const who = new Map<ServerWebSocket, string>();
    let guest: ServerWebSocket | null = null;
    const { s, port, log } = await listening(t, {}, {
      subscription: (ws, topic, before, after) => {
        calls.push(`${who.get(ws) ?? '?'} ${topic} ${before}->${after}`);
        if (who.get(ws) === 'host' && topic === 'room' && after < before) guest?.unsubscribe('room');
      },
    });
    const [host, g] = await rawPeers(s, port, log, 2);
    assert.ok(host && g);
    who.set(host.ws, 'host');
    who.set(g.ws, 'guest');
    guest = g.ws;
    host.ws.subscribe('room');
    host.ws.subscribe('lobby');
    g.ws.subscribe('room');
    host.peer.destroy();
    await log.first('close');
    assert.deepEqual(calls, [
      'host room 0->1',
      'host lobby 0->1',
      'guest room 1->2',
      'host room 2->1',
      'guest room 1->0',
      'host lobby 1->0',
    ]);
  });

  it('a throwing callback is reported as "subscription" and the subscription still holds', async (t) => {
    const sources: string[] = [];
    const { s, port, log, wss } = await listening(t, {}, {
      subscription: () => {
        throw new Error('presence store down');
      },
      error: (_ws, _error, source) => sources.push(source),
    });
    const [a] = await rawPeers(s, port, log, 1);
    assert.ok(a);
    assert.equal(a.ws.subscribe('t'), true);
    assert.deepEqual(sources, ['subscription']);
    assert.equal(wss.subscriberCount('t'), 1);
    assert.equal(a.ws.readyState, 1, 'the connection stays open');
  });
});

describe('publish', () => {
  it('wss.publish returns the local deliveries; every subscriber gets the exact frame, text or binary', async (t) => {
    const { s, port, log, wss } = await listening(t, {}, {});
    const peers = await rawPeers(s, port, log, 3);
    for (const { ws } of peers.slice(0, 2)) ws.subscribe('room');
    assert.equal(wss.publish('room', 'hello room'), 2);
    assert.equal(wss.publish('room', Buffer.from([1, 2, 3])), 2);
    assert.equal(wss.publish('room', Buffer.from('as text'), { binary: false }), 2);
    assert.equal(wss.publish('room', 'as bytes', { binary: true }), 2);
    assert.equal(wss.publish('empty', 'nobody'), 0);
    for (const { peer } of peers.slice(0, 2)) {
      await expectFrame(peer, TEXT, 'hello room');
      await expectFrame(peer, BINARY, Buffer.from([1, 2, 3]));
      await expectFrame(peer, TEXT, 'as text');
      await expectFrame(peer, BINARY, 'as bytes');
    }
    // The third never subscribed: the next frame it sees is one sent to it directly.
    const third = peers[2];
    assert.ok(third);
    third.ws.send('direct');
    await expectFrame(third.peer, TEXT, 'direct');
  });

  it('ws.publish excludes the sender and counts the others', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const [a, b, c] = await rawPeers(s, port, log, 3);
    assert.ok(a && b && c);
    for (const { ws } of [a, b, c]) ws.subscribe('room');
    assert.equal(a.ws.publish('room', 'from a'), 2);
    await expectFrame(b.peer, TEXT, 'from a');
    await expectFrame(c.peer, TEXT, 'from a');
    a.ws.send('direct');
    await expectFrame(a.peer, TEXT, 'direct');
  });

  it('publishing bytes as text that are not UTF-8 throws TypeError (RFC 6455 §5.6)', async (t) => {
    const { wss } = await listening(t, {}, {});
    assert.throws(() => wss.publish('t', Buffer.from([0xc3, 0x28]), { binary: false }), TypeError);
  });

  it('one publish is framed once: every subscriber is handed the same frame object (a custom TopicSubscriber shows it)', async (t) => {
    const broker = new LocalBroker();
    const { s, port, log, wss } = await listening(t, { broker }, {});
    const frames: Buffer[] = [];
    const messages: TopicMessage[] = [];
    const subscriber = (): TopicSubscriber => ({
      topics: null,
      deliver(message) {
        messages.push(message);
        frames.push(message.frame());
        return true;
      },
    });
    broker.subscribe('t', subscriber());
    broker.subscribe('t', subscriber());
    const [a] = await rawPeers(s, port, log, 1);
    assert.ok(a);
    a.ws.subscribe('t');
    assert.equal(wss.publish('t', 'hello'), 3);
    assert.equal(messages.length, 2);
    assert.equal(messages[0], messages[1], 'one TopicMessage for all subscribers');
    assert.equal(frames[0], frames[1], 'the same frame Buffer, not equal copies');
    assert.deepEqual(frames[0], Buffer.from([0x81, 0x05, ...Buffer.from('hello')]));
    const f = await a.peer.readFrame();
    assert.deepEqual(Buffer.from([0x81, f.payload.length, ...f.payload]), frames[0], 'the connection got those bytes');
  });

  it('a subscriber that declines a message is not counted', async (t) => {
    const broker = new LocalBroker();
    const { wss } = await listening(t, { broker }, {});
    broker.subscribe('t', { topics: null, deliver: () => false });
    broker.subscribe('t', { topics: null, deliver: () => true });
    assert.equal(wss.publish('t', 'x'), 1);
  });
});

/** A Broker that records what the server asks of it and delegates to a LocalBroker. */
class RecordingBroker implements Broker {
  readonly local = new LocalBroker();
  readonly calls: Array<{ op: string; topic?: string; subscriber?: TopicSubscriber }> = [];
  readonly published: Array<{ topic: string; message: TopicMessage; exclude: TopicSubscriber | undefined }> = [];
  closed = 0;

  subscribe(topic: string, subscriber: TopicSubscriber): boolean {
    this.calls.push({ op: 'subscribe', topic, subscriber });
    return this.local.subscribe(topic, subscriber);
  }
  unsubscribe(topic: string, subscriber: TopicSubscriber): boolean {
    this.calls.push({ op: 'unsubscribe', topic, subscriber });
    return this.local.unsubscribe(topic, subscriber);
  }
  unsubscribeAll(subscriber: TopicSubscriber): void {
    this.calls.push({ op: 'unsubscribeAll', subscriber });
    this.local.unsubscribeAll(subscriber);
  }
  subscriberCount(topic: string): number {
    this.calls.push({ op: 'subscriberCount', topic });
    return this.local.subscriberCount(topic);
  }
  topics(): IterableIterator<string> {
    return this.local.topics();
  }
  publish(topic: string, message: TopicMessage, exclude?: TopicSubscriber, callback?: PublishCallback): number {
    this.published.push({ topic, message, exclude });
    return this.local.publish(topic, message, exclude, callback);
  }
  onSubscriptionChange(listener: SubscriptionListener | null): void {
    this.calls.push({ op: listener === null ? 'onSubscriptionChange(null)' : 'onSubscriptionChange' });
    this.local.onSubscriptionChange(listener);
  }
  async close(): Promise<void> {
    this.closed++;
    await this.local.close();
  }
}

describe('the broker option: the server\'s topics go through the Broker it is given', () => {
  it('subscribe, unsubscribe, counts, publish (with exclude and callback) and close reach the broker', async (t) => {
    const broker = new RecordingBroker();
    const changes: string[] = [];
    const { s, port, log, wss } = await listening(t, { broker }, { subscription: (_ws, topic, before, after) => changes.push(`${topic} ${before}->${after}`) });
    assert.equal(wss.broker, broker);
    assert.deepEqual(broker.calls.map((c) => c.op), ['onSubscriptionChange'], 'the subscription callback listens on the broker');
    const [a, b] = await rawPeers(s, port, log, 2);
    assert.ok(a && b);

    a.ws.subscribe('t');
    b.ws.subscribe('t');
    a.ws.unsubscribe('t');
    a.ws.subscribe('t');
    const ops = broker.calls.slice(1).map((c) => [c.op, c.topic, c.subscriber === a.ws ? 'a' : c.subscriber === b.ws ? 'b' : c.subscriber]);
    assert.deepEqual(ops, [
      ['subscribe', 't', 'a'],
      ['subscribe', 't', 'b'],
      ['unsubscribe', 't', 'a'],
      ['subscribe', 't', 'a'],
    ]);
    assert.deepEqual(changes, ['t 0->1', 't 1->2', 't 2->1', 't 1->2'], 'the callback hears the broker\'s counts');
    assert.equal(wss.subscriberCount('t'), 2);
    assert.deepEqual(broker.calls.at(-1), { op: 'subscriberCount', topic: 't' });

    const outcome: Array<Error | null> = [];
    assert.equal(wss.publish('t', 'to all', { callback: (err) => outcome.push(err) }), 2);
    assert.equal(b.ws.publish('t', Buffer.from([9]), {}), 1);
    assert.equal(broker.published.length, 2);
    const [first, second] = broker.published;
    assert.ok(first && second);
    assert.equal(first.topic, 't');
    assert.equal(first.message.topic, 't');
    assert.deepEqual(first.message.payload, Buffer.from('to all'));
    assert.equal(first.message.binary, false);
    assert.equal(first.exclude, undefined);
    assert.deepEqual(outcome, [null], 'the publish callback is passed to the broker');
    assert.equal(second.message.binary, true);
    assert.equal(second.exclude, b.ws, 'ws.publish excludes its sender through the broker');
    await expectFrame(a.peer, TEXT, 'to all');
    await expectFrame(b.peer, TEXT, 'to all');
    await expectFrame(a.peer, BINARY, Buffer.from([9]));

    b.peer.destroy();
    await log.first('close');
    const last = broker.calls.at(-1);
    assert.equal(last?.op, 'unsubscribeAll');
    assert.equal(last?.subscriber, b.ws, 'a closed connection leaves through unsubscribeAll');

    await withTimeout(wss.close(1000), 10_000, 'wss.close()');
    assert.equal(broker.closed, 0, 'a broker the application gave is the application\'s to close');
  });

  it('a server without a broker option closes its own LocalBroker on close', async (t) => {
    const { wss } = await listening(t, {}, {});
    assert.ok(wss.broker instanceof LocalBroker);
    // A subscriber that is not a connection leaves only when the broker closes.
    const other: TopicSubscriber = { topics: null, deliver: () => true };
    wss.broker.subscribe('t', other);
    assert.equal(wss.subscriberCount('t'), 1);
    await withTimeout(wss.close(1000), 10_000, 'wss.close()');
    assert.equal(wss.subscriberCount('t'), 0);
    assert.equal(other.topics, null);
  });
});

describe('RFC 7692 §7.1.1: topic messages to compressing subscribers', () => {
  const OFFER = { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } };
  const LARGE = 'a topic message that compresses well; '.repeat(100);

  it('without server context takeover, a large message is compressed once and arrives with RSV1 set; plain peers get it plain', async (t) => {
    const { s, port, log, wss } = await listening(t, { perMessageDeflate: { serverNoContextTakeover: true } }, { open: (ws) => void ws.subscribe('t') });
    const deflating = await rawPeers(s, port, log, 2, OFFER);
    const [plain] = await rawPeers(s, port, log, 1);
    assert.ok(plain);
    for (const d of deflating) assert.equal(d.response.headers.get('sec-websocket-extensions'), 'permessage-deflate; server_no_context_takeover');
    assert.equal(plain.response.headers.get('sec-websocket-extensions'), undefined);

    assert.equal(wss.publish('t', LARGE), 3);
    const wire: Buffer[] = [];
    for (const d of deflating) {
      const f = await d.peer.readFrame();
      assert.equal(f.opcode, TEXT);
      assert.equal(f.rsv, RSV1, 'RSV1 marks a compressed message (RFC 7692 §6)');
      assert.ok(f.payload.length < LARGE.length / 4, `compressed to ${f.payload.length} of ${LARGE.length} bytes`);
      assert.equal(inflate(f.payload).toString('utf8'), LARGE);
      wire.push(f.payload);
    }
    assert.deepEqual(wire[0], wire[1], 'both got the same compressed bytes');
    await expectFrame(plain.peer, TEXT, LARGE);

    // Below the threshold (1024 bytes by default) it goes uncompressed to everyone.
    assert.equal(wss.publish('t', 'short'), 3);
    for (const d of [...deflating, plain]) await expectFrame(d.peer, TEXT, 'short');
    // Each compressed message stands alone: a second one inflates with a fresh inflater.
    assert.equal(wss.publish('t', Buffer.from(LARGE)), 3);
    for (const d of deflating) {
      const f = await d.peer.readFrame();
      assert.equal(f.rsv, RSV1);
      assert.equal(f.opcode, BINARY);
      assert.equal(inflate(f.payload).toString('utf8'), LARGE);
    }
  });

  it('subscribers with different agreed windows each get output their window can inflate (RFC 7692 §7.1.2.1)', async (t) => {
    const { s, port, log, wss } = await listening(t, { perMessageDeflate: { serverNoContextTakeover: true } }, { open: (ws) => void ws.subscribe('t') });
    const [narrow] = await rawPeers(s, port, log, 1, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=10' } });
    const [wide] = await rawPeers(s, port, log, 1, OFFER);
    assert.ok(narrow && wide);
    assert.equal(narrow.response.headers.get('sec-websocket-extensions'), 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10');
    // 2,000 incompressible bytes, four times: only a window over 2,000 bytes can refer back to them.
    const block = Buffer.alloc(2000);
    for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
    const payload = Buffer.concat([block, block, block, block]);
    assert.equal(wss.publish('t', payload), 2);
    const tail = Buffer.from([0x00, 0x00, 0xff, 0xff]);
    const n = await narrow.peer.readFrame();
    const w = await wide.peer.readFrame();
    assert.equal(n.rsv, RSV1);
    assert.equal(w.rsv, RSV1);
    assert.deepEqual(zlib.inflateRawSync(Buffer.concat([n.payload, tail]), { windowBits: 10, finishFlush: zlib.constants.Z_SYNC_FLUSH }), payload, 'the 10-bit peer inflates it with a 10-bit window');
    assert.deepEqual(inflate(w.payload), payload);
    assert.ok(w.payload.length < n.payload.length / 2, `the wide window refers back (${w.payload.length} vs ${n.payload.length} bytes)`);
  });

  it('with server context takeover, topic messages go uncompressed (RSV1 clear) while direct sends are compressed', async (t) => {
    const { s, port, log, wss } = await listening(t, { perMessageDeflate: true }, { open: (ws) => void ws.subscribe('t') });
    const [d] = await rawPeers(s, port, log, 1, OFFER);
    assert.ok(d);
    assert.equal(d.response.headers.get('sec-websocket-extensions'), 'permessage-deflate');
    assert.equal(wss.publish('t', LARGE), 1);
    await expectFrame(d.peer, TEXT, LARGE, 0);
    d.ws.send(LARGE);
    const direct = await d.peer.readFrame();
    assert.equal(direct.rsv, RSV1, 'the connection does compress what it sends itself');
    assert.equal(inflate(direct.payload).toString('utf8'), LARGE);
  });

  it('a client that asks for server_no_context_takeover gets compressed topic messages', async (t) => {
    const { s, port, log, wss } = await listening(t, { perMessageDeflate: true }, { open: (ws) => void ws.subscribe('t') });
    const [d] = await rawPeers(s, port, log, 1, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_no_context_takeover' } });
    assert.ok(d);
    assert.equal(d.response.headers.get('sec-websocket-extensions'), 'permessage-deflate; server_no_context_takeover');
    assert.equal(wss.publish('t', LARGE), 1);
    const f = await d.peer.readFrame();
    assert.equal(f.rsv, RSV1);
    assert.equal(inflate(f.payload).toString('utf8'), LARGE);
  });
});

describe('slow consumers: maxBackpressure', () => {
  const MAX_BACKPRESSURE = 512 * 1024;
  const SIZE = 60_000;
  /** A 60,000-byte payload takes a 4-byte header (16-bit length, RFC 6455 §5.2). */
  const FRAME = SIZE + 4;

  it('peers that never read stop getting topic messages; each drop is reported; fast subscribers get every message', async (t) => {
    const drops = recordDrops(t);
    const dropped: Array<{ ws: ServerWebSocket; message: TopicMessage }> = [];
    const { s, port, log, wss } = await listening(
      t,
      { maxBackpressure: MAX_BACKPRESSURE },
      { open: (ws) => void ws.subscribe('t'), dropped: (ws, message) => dropped.push({ ws, message }) },
    );
    const slow = await rawPeers(s, port, log, 2);
    for (const { peer } of slow) peer.socket.pause();
    const fastClients = [await s.client(`ws://127.0.0.1:${port}/`), await s.client(`ws://127.0.0.1:${port}/`)];
    const fastGot = fastClients.map(collect);
    const fastWs = [(await log.nth('open', 3)).ws, (await log.nth('open', 4)).ws];
    const dropsOf = (ws: ServerWebSocket): number => dropped.filter((d) => d.ws === ws).length;

    let n = 0;
    let taken = -1;
    // A slow peer's kernel buffers take a few MiB before the server buffers anything.
    while (n < 2000 && !slow.every(({ ws }) => dropsOf(ws) >= 5)) {
      taken = wss.publish('t', numbered(n, SIZE));
      n++;
      // Paced by the fast subscribers, so they never fall behind themselves.
      await until('the fast subscribers to keep up', () => fastGot.every((g) => g.length >= n - 2), 20_000);
    }
    assert.ok(n < 2000, 'the slow peers were never dropped');
    assert.equal(taken, 2, 'the last publish reached only the fast subscribers');
    await until('the fast subscribers to get everything', () => fastGot.every((g) => g.length === n), 20_000);
    for (const got of fastGot) {
      for (let i = 0; i < n; i++) assert.deepEqual(got[i], numbered(i, SIZE), `fast subscriber message ${i}`);
    }
    for (const ws of fastWs) assert.equal(dropsOf(ws), 0, 'a fast subscriber loses nothing');
    assert.equal(dropped.length, drops.length, 'one diagnostics event per dropped callback');

    for (const { ws } of slow) {
      assert.ok(ws.bufferedAmount <= MAX_BACKPRESSURE, `bufferedAmount ${ws.bufferedAmount}`);
      const mine = drops.filter((d) => d.connection === ws);
      assert.equal(mine.length, dropsOf(ws));
      for (const d of mine) {
        assert.equal(d.topic, 't');
        assert.equal(d.bytes, FRAME);
        assert.ok(d.bufferedAmount + d.bytes > MAX_BACKPRESSURE, `dropped at ${d.bufferedAmount} buffered`);
        assert.ok(d.bufferedAmount <= MAX_BACKPRESSURE);
      }
      for (const d of dropped.filter((x) => x.ws === ws)) assert.equal(d.message.topic, 't');
    }

    // What a slow peer did get is exactly the messages before its first drop, in order.
    for (const { ws, peer } of slow) {
      const delivered = n - dropsOf(ws);
      const seqs = dropped.filter((d) => d.ws === ws).map((d) => d.message.payload.readUInt32BE(0));
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => delivered + i), 'the drops are the tail');
      peer.socket.resume();
      for (let i = 0; i < delivered; i++) {
        const f = await peer.readFrame(20_000);
        assert.equal(f.opcode, BINARY);
        assert.equal(f.payload.readUInt32BE(0), i);
        assert.deepEqual(f.payload, numbered(i, SIZE));
      }
      await delay(100);
      assert.equal(peer.buffered, 0, 'nothing after the last delivered message');
    }
  });

  it('closeOnBackpressureLimit: the slow consumer is closed with 1008 and a reason that says why', async (t) => {
    const drops = recordDrops(t);
    const dropped: ServerWebSocket[] = [];
    const { s, port, log, wss } = await listening(
      t,
      { maxBackpressure: MAX_BACKPRESSURE, closeOnBackpressureLimit: true, closeTimeout: 30_000 },
      { open: (ws) => void ws.subscribe('t'), dropped: (ws) => dropped.push(ws) },
    );
    const [slow] = await rawPeers(s, port, log, 1);
    assert.ok(slow);
    slow.peer.socket.pause();
    const fast = await s.client(`ws://127.0.0.1:${port}/`);
    const fastGot = collect(fast);
    let n = 0;
    while (n < 2000 && slow.ws.readyState === 1) {
      wss.publish('t', numbered(n, SIZE));
      n++;
      await until('the fast subscriber to keep up', () => fastGot.length >= n - 2, 20_000);
    }
    assert.equal(slow.ws.readyState, 2, 'CLOSING: its close frame is queued behind what it has not read');
    assert.ok(dropped.length >= 1 && dropped.every((ws) => ws === slow.ws));
    assert.ok(drops.length >= 1 && drops.every((d) => d.connection === slow.ws));
    assert.equal(wss.publish('t', numbered(n, SIZE)), 1, 'a closing connection takes no more topic messages');
    n++;
    await until('the fast subscriber to get everything', () => fastGot.length === n, 20_000);
    assert.equal(log.all('close').length, 0);

    slow.peer.socket.resume();
    let frame: RawFrame;
    for (;;) {
      frame = await slow.peer.readFrame(20_000);
      if (frame.opcode !== BINARY) break;
    }
    assert.equal(frame.opcode, CLOSE);
    assert.equal(frame.payload.readUInt16BE(0), 1008, 'RFC 6455 §7.4.1: 1008 policy violation');
    assert.match(frame.payload.subarray(2).toString('utf8'), /backpressure|slow/i);
    await slow.peer.sendClose(1008);
    const closed = await log.first('close', 20_000);
    assert.equal(closed.ws, slow.ws);
    assert.equal(closed.code, 1008);
    await slow.peer.waitEnd(20_000);
    assert.equal(wss.subscriberCount('t'), 1);
  });

  it('a message larger than maxBackpressure still reaches a subscriber with nothing buffered (it is not a slow consumer)', async (t) => {
    const LIMIT = 64 * 1024;
    const dropped: ServerWebSocket[] = [];
    const { s, port, log, wss } = await listening(
      t,
      { maxBackpressure: LIMIT },
      { open: (ws) => void ws.subscribe('t'), dropped: (ws) => dropped.push(ws) },
    );
    const [idle] = await rawPeers(s, port, log, 1);
    assert.ok(idle);
    assert.equal(idle.ws.bufferedAmount, 0);
    const big = numbered(1, 100 * 1024);
    assert.equal(wss.publish('t', big), 1, 'an idle subscriber takes it');
    assert.deepEqual(dropped, []);
    await expectFrame(idle.peer, BINARY, big);
  });

  it('with closeOnBackpressureLimit, one large message does not close an idle subscriber', async (t) => {
    const LIMIT = 64 * 1024;
    const { s, port, log, wss } = await listening(t, { maxBackpressure: LIMIT, closeOnBackpressureLimit: true }, { open: (ws) => void ws.subscribe('t') });
    const [idle] = await rawPeers(s, port, log, 1);
    assert.ok(idle);
    const big = numbered(2, 100 * 1024);
    wss.publish('t', big);
    assert.equal(idle.ws.readyState, 1, 'still open');
    await expectFrame(idle.peer, BINARY, big);
  });

  it('server memory stays bounded: 200 non-reading subscribers, a publisher that keeps going', async (t) => {
    // Over Unix domain sockets: loopback TCP would let the kernel absorb about
    // 4 MiB per non-reading peer (800 MiB for 200) before the server buffers
    // anything; a Unix socket takes about 200 KiB.
    const LIMIT = 64 * 1024;
    const PAYLOAD = 8 * 1024;
    const PUBLISH_FRAME = PAYLOAD + 4;
    const COUNT = 200;
    const dir = mkdtempSync(path.join(tmpdir(), 'fullduplex-topics-'));
    const sock = path.join(dir, 'ws.sock');
    const http = createServer();
    const droppedFor = new Set<ServerWebSocket>();
    const wss = new WebSocketServer({
      server: http,
      maxBackpressure: LIMIT,
      handler: { open: (ws) => void ws.subscribe('t'), dropped: (ws) => void droppedFor.add(ws) },
    });
    const peers: RawPeer[] = [];
    t.after(async () => {
      for (const p of peers) p.destroy();
      await withTimeout(wss.close(100), 10_000, 'wss.close()');
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      rmSync(dir, { recursive: true, force: true });
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(sock, () => resolve());
    });
    for (let i = 0; i < COUNT; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => rawOpen(sock)));
      for (const { peer } of batch) {
        peers.push(peer);
        peer.socket.pause();
      }
    }
    await until('every connection to open', () => wss.clients.size === COUNT);
    assert.equal(wss.subscriberCount('t'), COUNT);

    let maxBuffered = 0;
    let extra = 0;
    let taken = -1;
    let published = 0;
    // Publish until every subscriber has been dropped, then 50 more.
    while (published < 1000 && extra < 50) {
      taken = wss.publish('t', numbered(published, PAYLOAD));
      published++;
      if (droppedFor.size === COUNT) extra++;
      await new Promise((resolve) => setImmediate(resolve));
      for (const ws of wss.clients) maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
    }
    assert.equal(droppedFor.size, COUNT, `only ${droppedFor.size} subscribers were ever dropped in ${published} publishes`);
    assert.equal(taken, 0, 'nobody takes more once all are over the limit');
    assert.ok(maxBuffered <= LIMIT + PUBLISH_FRAME, `a connection buffered ${maxBuffered} bytes (limit ${LIMIT})`);
    assert.equal(wss.clients.size, COUNT, 'dropping messages closes nobody');
  });
});
