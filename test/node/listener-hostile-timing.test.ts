/**
 * Slow and stalled clients against a server that owns its port (`listen()`):
 * slowloris heads dribbled a byte at a time (alone, 200 at once, and on a
 * later head of a kept-alive connection), and `close()` while heads are in
 * flight. Contract (README, src/server/types.ts): a client has
 * `handshakeTimeout` ms to send its request, then gets 408 and is closed;
 * `close()` ends connections still sending a head (503 or a close) and
 * resolves in bounded time. Bounds are generous (a loaded 2-core machine):
 * they catch a hang or a missing timeout, they measure nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertClosedByServer,
  assertEchoes,
  closedWithin,
  connectionIn,
  connectNoDelay,
  dribble,
  echoRequest,
  get,
  leaveNoTcpBehind,
  listenOwned,
  tcpBaseline,
  text,
} from '../helpers/listener.js';
import { delay, rawOpen, upgradeRequest, type RawPeer } from '../helpers/raw-client.js';

leaveNoTcpBehind();

/** How late past handshakeTimeout a 408 may come: the sweep's period plus a loaded machine's scheduling. */
const MARGIN_MS = 4_000;

/** A handshake padded so that dribbling it takes far longer than any timeout here. */
const longHead = upgradeRequest({ headers: { 'X-Pad': 'p'.repeat(400) } });

/** Reads the server's answer to a stalled head: its status, and that the connection then closes. */
async function statusThenClosed(peer: RawPeer, ms: number): Promise<number> {
  const res = await peer.readResponse(ms);
  await assertClosedByServer(peer, ms);
  return res.status;
}

describe('listen(): slowloris heads get 408 within handshakeTimeout and are closed', () => {
  it('first head: one byte every 40 ms → 408 after handshakeTimeout (not before), then closed', async (t) => {
    const handshakeTimeout = 600;
    const { s, port, log } = await listenOwned(t, { handshakeTimeout });
    const peer = await connectNoDelay(s, port);
    const start = Date.now();
    const dribbling = dribble(peer, longHead, 40);
    const status = await statusThenClosed(peer, handshakeTimeout + MARGIN_MS);
    const elapsed = Date.now() - start;
    const sent = await dribbling;
    assert.equal(status, 408);
    assert.ok(elapsed >= handshakeTimeout - 50, `408 after ${elapsed} ms, before the ${handshakeTimeout} ms the client was given`);
    assert.ok(sent < longHead.length, 'the head was sent in full before the timeout');
    assert.equal(log.all('open').length, 0);
  });

  it('second head on a kept-alive connection: one byte every 40 ms → 408, then closed', async (t) => {
    const handshakeTimeout = 600;
    const { peer } = await connectionIn(t, 'second head', { handshakeTimeout });
    const dribbling = dribble(peer, get('/slow', `X-Pad: ${'p'.repeat(400)}\r\n`), 40);
    // node:http checks its headers timeout every min(1000, handshakeTimeout) ms.
    assert.equal(await statusThenClosed(peer, handshakeTimeout + 1_000 + MARGIN_MS), 408);
    await dribbling;
  });

  it('second head: empty lines trickled a byte every 100 ms (RFC 9112 §2.2 asks to skip "at least one") do not hold the connection open past handshakeTimeout', async (t) => {
    const handshakeTimeout = 600;
    const { peer } = await connectionIn(t, 'second head', { handshakeTimeout });
    const bound = handshakeTimeout + 1_000 + MARGIN_MS;
    const start = Date.now();
    // Offered for longer than the bound (and than node:http's 5 s keep-alive timeout, which each byte restarts).
    await dribble(peer, '\r\n'.repeat(Math.ceil((bound + 3_000) / 200)), 100);
    const elapsed = Date.now() - start;
    assert.ok(peer.ended || peer.closed || peer.error !== null, `the connection is still open after ${elapsed} ms of empty lines`);
    assert.ok(elapsed <= bound, `the connection was ended only after ${elapsed} ms`);
  });

  it('a POST whose body is dribbled one byte every 50 ms gets 408 and is closed (README: a client that has not completed its request is dropped)', async (t) => {
    const handshakeTimeout = 600;
    const { s, port } = await listenOwned(t, { handshakeTimeout }, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(`POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 400\r\n\r\n`);
    const dribbling = dribble(peer, 'b'.repeat(400), 50);
    // node:http's request timeout is max(handshakeTimeout, 1 s), checked every min(1 s, handshakeTimeout).
    assert.equal(await statusThenClosed(peer, 2_000 + MARGIN_MS), 408);
    assert.ok((await dribbling) < 400, 'the body was sent in full before the timeout');
  });

  it('200 slowloris connections at once are all answered 408 and closed, and a normal handshake meanwhile succeeds', async (t) => {
    const handshakeTimeout = 1_000;
    const { s, wss, port } = await listenOwned(t, { handshakeTimeout });
    const restored = tcpBaseline();
    const slow = await Promise.all(Array.from({ length: 200 }, () => s.connect(port)));
    const dribbling = slow.map((p) => dribble(p, longHead, 100));
    const answers = slow.map((p) => statusThenClosed(p, handshakeTimeout + MARGIN_MS + 4_000));
    await delay(200);
    const { peer } = await rawOpen(port);
    s.peer(peer);
    await peer.write(text('not starved'));
    await assertEchoes(peer, ['not starved']);
    const statuses = await Promise.all(answers);
    await Promise.all(dribbling);
    assert.deepEqual(
      statuses.filter((status) => status !== 408),
      [],
      'every slow connection gets 408',
    );
    assert.equal(wss.clients.size, 1, 'only the normal handshake opened a WebSocket');
    await peer.write(text('still open'));
    await assertEchoes(peer, ['still open']);
    peer.destroy();
    await restored();
  });
});

describe('listen(): close() while heads are in flight', () => {
  it('20 half-sent heads, 5 dribbling ones, a half-sent second head and an open WebSocket: all ended (503 or a close), close() resolves long before handshakeTimeout', async (t) => {
    // The default handshakeTimeout (10 s): close() must not wait for it.
    const { s, wss, port } = await listenOwned(t, {}, echoRequest);
    const half = await Promise.all(Array.from({ length: 20 }, () => connectNoDelay(s, port)));
    await Promise.all(half.map((p, i) => p.write(longHead.slice(0, 10 + i * 7))));
    const slow = await Promise.all(Array.from({ length: 5 }, () => connectNoDelay(s, port)));
    const dribbling = slow.map((p) => dribble(p, longHead, 30));
    const kept = await connectNoDelay(s, port);
    await kept.write(get('/first'));
    assert.equal((await kept.readResponse()).status, 200);
    await kept.write(get('/second').slice(0, 15));
    const { peer: ws } = await rawOpen(port);
    s.peer(ws);
    await delay(100);

    const closing = closedWithin(wss, 5_000);
    assert.equal((await ws.readClose()).code, 1001);
    await ws.sendClose(1001);
    await closing;
    for (const p of [...half, ...slow, kept, ws]) await assertClosedByServer(p);
    await Promise.all(dribbling);
    for (const p of [...half, ...slow]) {
      const got = p.release().toString('latin1');
      assert.ok(got === '' || got.startsWith('HTTP/1.1 503 '), `a head in flight was answered ${JSON.stringify(got.slice(0, 60))}, not 503 or a close`);
    }
  });
});
