/**
 * Hostile clients of the fallback's Server-Sent Events stream (PROTOCOL.md
 * §9, §6, §7, §8): one that never reads, one that vanishes mid-stream, a
 * second connect waving the first one's session, reconnection with recovery
 * (and a forged `Last-Event-ID` or position), and `close()` with streams and
 * POSTs in flight. The stream is parsed as the WHATWG HTML spec's
 * Server-Sent Events section says (test/helpers/sse.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../helpers/channels.js';
import { tcpBaseline } from '../helpers/listener.js';
import { LOOPBACK, RawPeer, withTimeout } from '../helpers/raw-client.js';
import { type SseStream, RawSse, command, mustOpen, openSse, post, serve } from '../helpers/sse.js';

const MiB = 1024 * 1024;

/** Subscribes `s` to `channel` (optionally recovering) and returns the `subscribed` reply. */
async function subscribe(s: SseStream, id: number, channel: string, recover?: { offset: number; epoch: string }) {
  assert.equal((await command(s, { id, type: 'subscribe', channel, ...(recover === undefined ? {} : { recover }) })).status, 204);
  const r = await s.reply(id);
  assert.equal(r.type, 'subscribed', JSON.stringify(r));
  return r as { offset: number; epoch: string; recovered?: boolean; reason?: string; publications?: { offset: number; data: unknown }[] };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('§9 the event stream', () => {
  it('is text/event-stream, not cached or buffered by proxies, one JSON frame per event; heartbeat pings arrive, and silence ends it with 4502', async (t) => {
    const { port, server } = await serve(t, { ping: 150, pingGrace: 400 });
    const s = await mustOpen(t, port);
    assert.equal(s.res.statusCode, 200);
    assert.equal(s.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.match(s.res.headers['cache-control'] ?? '', /no-store/);
    assert.equal(s.res.headers['x-accel-buffering'], 'no');
    assert.equal(s.events[0]?.type, 'connected');
    assert.match(s.session, /^[A-Za-z0-9_-]{43}$/);
    await s.next((e) => e.type === 'ping', 'a heartbeat ping');
    // Nothing comes up (no pong): the server gives up after ping + pingGrace.
    const bye = await s.disconnected(10_000);
    assert.deepEqual(bye, { type: 'disconnect', code: 4502, reason: 'heartbeat timeout', reconnect: true });
    assert.deepEqual(s.junk, [], 'every event held JSON');
    await until(() => server.clientCount === 0, 'the session to be gone');
  });

  it('a client that stops reading is cut off near maxBufferedBytes (4503), not after the server buffered everything for it', async (t) => {
    const { port, server } = await serve(t, { maxBufferedBytes: 256 * 1024 });
    const raw = await RawSse.subscribed(t, port, 'flood');
    raw.socket.pause();
    const before = raw.received;
    // 48 MiB published in one burst (all appends run before any timer can fire).
    const payload = 'x'.repeat(64 * 1024);
    await Promise.all(Array.from({ length: 768 }, () => server.publish('flood', payload)));
    await new Promise((r) => setTimeout(r, 1500));
    raw.socket.resume();
    await until(() => raw.saw('"type":"disconnect"') || raw.closed, 'the disconnect', 30_000);
    const got = raw.received - before;
    assert.ok(raw.saw('{"type":"disconnect","code":4503,"reason":"slow consumer","reconnect":true}'), 'disconnected as a slow consumer');
    // The bound: maxBufferedBytes plus what the kernel's socket buffers held (a few MiB on loopback).
    assert.ok(got < 12 * MiB, `the server sent ${(got / MiB).toFixed(1)} MiB to a client it should have cut off after 0.25 MiB`);
  });

  it('a client that never reads again is released: its connection and session do not outlive the slow-consumer cut-off', async (t) => {
    const { port, server, sessionTopics } = await serve(t, { maxBufferedBytes: 256 * 1024 });
    const raw = await RawSse.subscribed(t, port, 'flood');
    raw.socket.pause();
    const payload = 'x'.repeat(64 * 1024);
    await Promise.all(Array.from({ length: 256 }, () => server.publish('flood', payload)));
    // PROTOCOL.md §6/§8: closed with 4503. A close that waits forever for a reader that never comes is no close:
    // the server must let go (as the WebSocket side does after closeTimeout, 5 s).
    await until(() => server.clientCount === 0, 'the server to let go of the non-reading client', 15_000);
    assert.equal(sessionTopics(), 0);
    assert.equal((await post(port, '/channels/send', { session: raw.session, body: '{"id":3,"type":"ping"}' })).status, 404);
  });

  it('a client that vanishes mid-stream, while publications flow: no crash, its session ends at once (leave sent, secret dead)', async (t) => {
    const { port, server, sessionTopics } = await serve(t, { publishRate: 10_000, publishBurst: 10_000 });
    const watcher = await mustOpen(t, port);
    await subscribe(watcher, 2, 'chat:m');
    const leaving = await mustOpen(t, port);
    await subscribe(leaving, 2, 'chat:m');
    await watcher.next((e) => e.type === 'join' && e.client === leaving.client, 'the join');
    let n = 0;
    let stop = false;
    const flow = (async () => {
      while (!stop) {
        await server.publish('chat:m', ++n);
        if (n % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await until(() => leaving.pubs('chat:m').length > 50, 'publications on the stream');
    leaving.close();
    await until(() => server.clientCount === 1, 'the session to end with its stream');
    await new Promise((r) => setTimeout(r, 100));
    stop = true;
    await flow;
    assert.equal(sessionTopics(), 1);
    await watcher.next((e) => e.type === 'leave' && e.client === leaving.client, 'the leave');
    assert.equal((await command(leaving, { id: 3, type: 'ping' })).status, 404);
    await until(() => watcher.pubs('chat:m').length === n, 'every publication for the watcher');
    assert.deepEqual(watcher.pubs('chat:m'), range(1, n));
  });

  it('a second connect carrying the first session\'s header or a Last-Event-ID opens a new, separate session', async (t) => {
    const { port, server } = await serve(t);
    const first = await mustOpen(t, port);
    await subscribe(first, 2, 'chat:two');
    const second = await mustOpen(t, port, { session: first.session, headers: { 'Last-Event-ID': '1' } });
    assert.notEqual(second.session, first.session);
    assert.notEqual(second.client, first.client);
    assert.equal(server.clientCount, 2);
    await subscribe(second, 2, 'chat:two');
    await server.publish('chat:two', 'once');
    await first.next((e) => e.type === 'pub', 'the pub on the first stream');
    await second.next((e) => e.type === 'pub', 'the pub on the second stream');
    assert.equal((await command(first, { id: 3, type: 'ping' })).status, 204);
    await first.reply(3);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(first.pubs('chat:two').length + second.pubs('chat:two').length, 2, 'each stream got the publication once');
    assert.ok(!first.ended && !second.ended);
  });
});

describe('§7 recovery over the fallback', () => {
  it('a client that reconnects gets exactly what it missed, then live publications, even while publishing continues; Last-Event-ID changes nothing', async (t) => {
    const { port, server } = await serve(t);
    const a = await mustOpen(t, port);
    const sub = await subscribe(a, 2, 'chat:r');
    for (let i = 1; i <= 3; i++) await server.publish('chat:r', i);
    await until(() => a.pubs('chat:r').length === 3, 'the first three');
    a.close();
    await until(() => server.clientCount === 0, 'the first session to end');
    for (let i = 4; i <= 6; i++) await server.publish('chat:r', i);
    // The SSE spec's reconnection header, forged: this protocol recovers by position (§7), never by event id.
    const b = await mustOpen(t, port, { headers: { 'Last-Event-ID': '9999' } });
    assert.equal(b.events.length, 1, 'nothing replayed on connect');
    // Publications race with the recovering subscribe.
    const racing = (async () => {
      for (let i = 7; i <= 40; i++) {
        await server.publish('chat:r', i);
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const r = await subscribe(b, 2, 'chat:r', { offset: 3, epoch: sub.epoch });
    await racing;
    assert.equal(r.recovered, true);
    const recovered = (r.publications ?? []).map((p) => p.offset);
    await until(() => recovered.length + b.pubs('chat:r').length >= 37, 'every publication after offset 3');
    await new Promise((r2) => setTimeout(r2, 100));
    assert.deepEqual([...recovered, ...b.pubs('chat:r')], range(4, 40), 'each once, in order, no gap');
    assert.equal(recovered[0], 4);
  });

  it('a forged or stale position is never answered with a promise the stream then breaks', async (t) => {
    const { port, server } = await serve(t);
    const s = await mustOpen(t, port);
    for (let i = 1; i <= 3; i++) await server.publish('chat:f', i);
    const other = await subscribe(s, 2, 'chat:f', { offset: 1, epoch: 'not-the-epoch' });
    assert.equal(other.recovered, false);
    assert.equal(other.reason, 'epoch');
    assert.equal((await command(s, { id: 3, type: 'unsubscribe', channel: 'chat:f' })).status, 204);
    await s.reply(3);
    const bad = await command(s, { id: 4, type: 'subscribe', channel: 'chat:f', recover: { offset: -1, epoch: other.epoch } });
    assert.equal(bad.status, 204);
    assert.equal((await s.reply(4)).code, 400);
    // A position beyond the channel's top (forged, or from a reset store that reused the epoch).
    const future = await subscribe(s, 5, 'chat:f', { offset: 999, epoch: other.epoch });
    await server.publish('chat:f', 4);
    const pub = await s.next((e) => e.type === 'pub', 'the next publication');
    // PROTOCOL.md §2 subscribe: "Every later pub of the channel to this client has a greater offset" than the reply's.
    assert.ok(Number(pub.offset) > future.offset, `subscribed at offset ${future.offset} (recovered: ${String(future.recovered)}), then got pub ${String(pub.offset)}`);
  });
});

describe('shutdown', () => {
  it('close() still gives a client that is reading, but behind, its disconnect push (PROTOCOL.md §3: sent right before the server closes)', async (t) => {
    const { port, server } = await serve(t, { maxBufferedBytes: 256 * MiB });
    const s = await mustOpen(t, port);
    await subscribe(s, 2, 'chat:behind');
    const payload = 'z'.repeat(64 * 1024);
    // 4 MiB for it in one burst; it reads as fast as it can, and close() starts at once.
    await Promise.all(Array.from({ length: 64 }, () => server.publish('chat:behind', payload)));
    await withTimeout(server.close(), 10_000, 'ChannelServer.close()');
    const bye = await s.disconnected(10_000);
    assert.equal(bye.code, 1001);
    assert.deepEqual(s.pubs('chat:behind'), range(1, 64), 'and every publication before it');
  });

  it('a connect still in authenticate when close() starts is told to come back (503, PROTOCOL.md §5), not that it was a bad request', async (t) => {
    let authenticating = false;
    let finish: () => void = () => undefined;
    const { port, server } = await serve(t, {
      authenticate: async () => {
        authenticating = true;
        await new Promise<void>((r) => (finish = r));
        return { user: 'u' };
      },
    });
    const stalled = openSse(t, port);
    await until(() => authenticating, 'the connect to be in authenticate');
    const closing = server.close();
    finish();
    await withTimeout(closing, 10_000, 'ChannelServer.close()');
    const r = await withTimeout(stalled, 5_000, 'the answer to the stalled connect');
    assert.ok('status' in r);
    // The client library maps a 4xx other than 401/404/408/429 to 4400: it would never come back (client-lib/transport.ts codeOf).
    assert.equal(r.status, 503, `answered ${r.status} ${'body' in r ? r.body : ''}`);
  });

  it('close() with streams (one stuck), a POST mid-body and a connect mid-authenticate ends them all in bounded time', async (t) => {
    const tcp = tcpBaseline();
    let authenticating = false;
    const { port, server } = await serve(t, {
      maxBufferedBytes: 256 * MiB,
      authenticate: async (req) => {
        if (req.headers['x-stall'] !== undefined) {
          authenticating = true;
          await new Promise((r) => setTimeout(r, 60_000).unref());
        }
        return { user: 'u' };
      },
    });
    const readers = [await mustOpen(t, port), await mustOpen(t, port)];
    for (const s of readers) await subscribe(s, 2, 'chat:s');
    const stuck = await RawSse.subscribed(t, port, 'chat:s');
    stuck.socket.pause();
    const payload = 'y'.repeat(64 * 1024);
    await Promise.all(Array.from({ length: 128 }, () => server.publish('chat:s', payload)));
    // The reading clients are caught up; only the stuck one lags.
    await until(() => readers.every((s) => s.pubs('chat:s').length === 128), 'the readers to catch up');
    const half = await RawPeer.connect(port);
    t.after(() => half.destroy());
    await half.write(`POST /channels/send HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Type: application/json\r\nX-Fullduplex-Session: ${readers[0]?.session ?? ''}\r\nContent-Length: 100\r\n\r\n{"id":3,`);
    const stalled = openSse(t, port, { headers: { 'X-Stall': '1' } });
    await until(() => authenticating, 'the connect to be in authenticate');

    const started = Date.now();
    await withTimeout(server.close(), 10_000, 'ChannelServer.close()');
    const took = Date.now() - started;
    for (const s of readers) {
      const bye = await s.disconnected(10_000);
      assert.equal(bye.code, 1001);
      assert.equal(bye.reconnect, true);
    }
    // Answered (its status: the next test) or cut, not left open.
    const refused = await withTimeout(stalled, 5_000, 'the answer to the stalled connect').then(
      (r) => ('status' in r ? r.status : 200),
      () => 0,
    );
    assert.notEqual(refused, 200, 'no session opened during shutdown');
    await half.waitClosed();
    stuck.socket.resume();
    await until(() => stuck.closed, 'the stuck stream to be closed', 10_000);
    assert.equal(server.clientCount, 0);
    await tcp();
    assert.ok(took < 10_000, `close() took ${took} ms`);
  });
});
