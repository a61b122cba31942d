/**
 * The channels client (fullduplex/client) against a hostile or broken
 * SERVER, over the WebSocket: a server that never answers `connect`, closes
 * with every class of close code (PROTOCOL.md §6), negotiates no or another
 * subprotocol, answers the upgrade with something other than 101, stalls the
 * handshake, goes silent (the heartbeat, §6), and the public API called in
 * hostile orders. Each test ends with `settle`: after disconnect() the
 * client is 'disconnected', no attempt reaches the server, nothing crashed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ChannelError } from '../../src/client-lib/codes.js';
import type { ServerWebSocket } from '../../src/index.js';
import {
  type Json,
  RawServer,
  ScriptedServer,
  acceptOf,
  connectedClient,
  events,
  gaps,
  hostileClient,
  push,
  settle,
  sleep,
  textFrame,
  until,
  watchProcess,
} from '../helpers/channels-client-hostile.js';

/** A `connected` reply to the `connect` frame `f`. */
const connected = (f: Json): Json => ({ id: f.id, type: 'connected', client: 'c', user: '', ping: 25_000 });

/** The server says goodbye: a `disconnect` push, then the close frame with the same code (§6). */
function goodbye(ws: ServerWebSocket, code: number, reconnect: boolean): void {
  push(ws, { type: 'disconnect', code, reason: 'bye', reconnect });
  ws.close(code, 'bye');
}

describe('channels client: a server that never completes connect', () => {
  // Ways of never completing `connect`: each must end in the `timeout` option, then a retry with backoff.
  const stalls: [string, (ws: ServerWebSocket, f: Json) => void][] = [
    ['silence', () => undefined],
    ['a `connected` with another id', (ws, f) => push(ws, { ...connected(f), id: Number(f.id) + 1000 })],
    ['a `connected` without id', (ws, f) => push(ws, { ...connected(f), id: undefined })],
    ['pushes only (ping, pub)', (ws) => (push(ws, { type: 'ping' }), push(ws, { type: 'pub', channel: 'a', offset: 1, epoch: 'E', data: 1 }))],
  ];
  for (const [name, reply] of stalls) {
    it(`${name}: the timeout option fails the attempt and the client reconnects with backoff within [0, maxReconnectDelay]`, async (t) => {
      const { crashes } = watchProcess(t);
      const s = await ScriptedServer.start(t, { frame: (ws, f) => (f.type === 'connect' && reply(ws, f), true) });
      const { c, log } = hostileClient(t, s.url, { timeout: 300, minReconnectDelay: 50, maxReconnectDelay: 150 });
      c.connect();
      await until(() => s.attempts.length >= 4, 'four attempts', 15_000);
      assert.equal(c.state === 'connecting' || c.state === 'reconnecting', true);
      // §6: each wait is in [0, min(max, min × 2^n)]; the attempt itself lasts `timeout` (300 ms) before it.
      // Seen from the server, one handshake may take longer than the next on a loaded machine: the
      // lower bound only says the attempts are not a storm.
      for (const gap of gaps(s.attempts)) assert.ok(gap >= 150 && gap < 300 + 150 + 1000, `gap ${gap} ms`);
      const delays = events(log, 'reconnecting').map((e) => e.delay);
      assert.ok(delays.every((d, i) => d >= 0 && d <= Math.min(150, 50 * 2 ** i)), `delays ${delays.join(',')}`);
      assert.ok(events(log, 'disconnected').every((e) => e.reconnect && e.code === 1006));
      assert.equal(events(log, 'connected').length, 0);
      // Each timed-out attempt closed its WebSocket: no connection piles up at the server.
      await until(() => s.closes.length >= s.attempts.length - 1, 'timed-out sockets closed');
      await settle(c, s, crashes);
    });
  }

  it('disconnect() during connect ends the attempt at once: every pending command rejects and no timer keeps the client going', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, { frame: () => true });
    const { c } = hostileClient(t, s.url, { timeout: 5000, commandTimeout: 10_000 });
    c.connect();
    const published = c.publish('a', 1);
    const settledAt: number[] = [];
    const outcome = published.then(
      () => 'resolved',
      (e: unknown) => (settledAt.push(Date.now()), e),
    );
    await until(() => s.sent('connect').length === 1, 'connect sent');
    const t0 = Date.now();
    c.disconnect();
    assert.equal(c.state, 'disconnected');
    // disconnect() "stops" the client (types.ts): a command the application is waiting on must not
    // wait out the 10 s commandTimeout; the brief's contract: it rejects with a clear error.
    const result = await Promise.race([outcome, sleep(2000).then(() => 'still pending 2 s after disconnect()')]);
    assert.ok(result instanceof ChannelError, String(result));
    assert.ok((settledAt[0] ?? Infinity) - t0 < 2000);
    await settle(c, s, crashes);
  });

  it('connect() after disconnect() connects again, and connect() twice is one attempt', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t);
    const { c } = hostileClient(t, s.url);
    c.connect();
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    assert.equal(s.attempts.length, 1);
    c.disconnect();
    c.disconnect();
    assert.equal(c.state, 'disconnected');
    c.connect();
    await until(() => c.state === 'connected', 'connected again');
    assert.equal(s.attempts.length, 2);
    await settle(c, s, crashes);
  });
});

describe('channels client: close codes from the server (PROTOCOL.md §6)', () => {
  // [code, must reconnect]: 4000–4499 and 1009 terminal; 1001, 1006, 1011, 4500–4999 reconnect;
  // 1000 is terminal (codes.ts: only the client itself closes with it).
  const table: [number, boolean][] = [
    [1000, false],
    [1001, true],
    [1011, true],
    [1009, false],
    [4000, false],
    [4400, false],
    [4401, false],
    [4406, false],
    [4429, false],
    [4499, false],
    [4500, true],
    [4501, true],
    [4502, true],
    [4503, true],
    [4504, true],
    [4999, true],
  ];
  for (const [code, again] of table) {
    it(`a close with ${code} after connected: ${again ? 'reconnects' : 'stops'}, and a sent command rejects with 499`, async (t) => {
      const { s, c, log, crashes } = await connectedClient(t, { frame: (_ws, f) => f.type === 'publish' }); // publishes are never answered
      const pending = c.publish('a', 1);
      await until(() => s.sent('publish').length === 1, 'publish sent');
      s.last.close(code, 'hostile');
      await assert.rejects(pending, (e: ChannelError) => e instanceof ChannelError && e.code === 499);
      await until(() => events(log, 'disconnected').length === 1, 'disconnected');
      assert.deepEqual(events(log, 'disconnected')[0], { code, reason: 'hostile', reconnect: again });
      if (again) await until(() => s.attempts.length === 2 && c.state === 'connected', 'reconnected');
      else {
        assert.equal(c.state, 'disconnected');
        await sleep(500); // longer than maxReconnectDelay
        assert.equal(s.attempts.length, 1, 'no reconnection after a terminal code');
      }
      await settle(c, s, crashes, 500);
    });
  }

  const ends: [string, (ws: ServerWebSocket) => void, number, boolean][] = [
    ['an abrupt TCP close (1006)', (ws) => ws.terminate(), 1006, true],
    ['a close frame without a code (1005)', (ws) => ws.close(), 1005, true],
    ['a `disconnect` push 4503 reconnect:true', (ws) => goodbye(ws, 4503, true), 4503, true],
    ['a `disconnect` push 4600 reconnect:false (the push decides)', (ws) => goodbye(ws, 4600, false), 4600, false],
    // §6: "4000–4499: the client MUST NOT reconnect by itself", whatever a hostile push claims.
    ['a `disconnect` push 4401 that claims reconnect:true', (ws) => goodbye(ws, 4401, true), 4401, false],
  ];
  for (const [name, end, code, again] of ends) {
    it(`${name}: ${again ? 'reconnects' : 'stops'}`, async (t) => {
      const { s, c, log, crashes } = await connectedClient(t);
      end(s.last);
      await until(() => events(log, 'disconnected').length === 1, 'disconnected');
      assert.deepEqual(
        events(log, 'disconnected').map((e) => [e.code, e.reconnect]),
        [[code, again]],
      );
      if (again) await until(() => s.attempts.length === 2 && c.state === 'connected', 'reconnected');
      else {
        await sleep(500);
        assert.equal(s.attempts.length, 1, 'no reconnection');
      }
      await settle(c, s, crashes, 300);
    });
  }

  it('a server that drops every connection right after `connected` gets backoff, not a storm', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, {
      frame: (ws, f) => {
        if (f.type !== 'connect') return false;
        push(ws, connected(f));
        ws.terminate();
        return true;
      },
    });
    const { c, log } = hostileClient(t, s.url, { minReconnectDelay: 100, maxReconnectDelay: 400 });
    c.connect();
    await sleep(2000);
    // Full jitter averages half the ceiling: 2 s of 100, 200, 400, 400 … ms ceilings cannot fit more than ~20.
    assert.ok(s.attempts.length >= 3 && s.attempts.length < 40, `${s.attempts.length} attempts in 2 s`);
    const delays = events(log, 'reconnecting').map((e) => e.delay);
    assert.ok(delays.every((d, i) => d <= Math.min(400, 100 * 2 ** i)), `delays ${delays.join(',')}`);
    await settle(c, s, crashes);
  });
});

describe('channels client: broken handshakes', () => {
  it('a server that negotiates no subprotocol: the connection does not count as a channel connection (§1: 4406, no reconnect)', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, {}, []); // answers `connect` perfectly, but chose no subprotocol
    const { c, log } = hostileClient(t, s.url);
    c.connect();
    await until(() => events(log, 'disconnected').length > 0 || c.state === 'connected', 'an outcome');
    await sleep(300);
    assert.equal(events(log, 'connected').length, 0, 'connected over a connection without fullduplex.channels.v1');
    assert.equal(events(log, 'disconnected')[0]?.code, 4406);
    await settle(c, s, crashes, 500);
  });

  /** A 101 that picks a subprotocol the client never offered (RFC 6455 §4.1: the client must fail it), then a `connected`. */
  const otherProtocol = (req: IncomingMessage, socket: Duplex): void => {
    const key = String(req.headers['sec-websocket-key']);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptOf(key)}\r\nSec-WebSocket-Protocol: chat.v2\r\n\r\n`);
    socket.write(textFrame('{"id":1,"type":"connected","client":"x","user":"","ping":25000}'));
  };
  const answers: [string, (req: IncomingMessage, socket: Duplex) => void][] = [
    ['a 101 with another subprotocol', otherProtocol],
    ['200 OK', (_q, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')],
    ['503', (_q, socket) => socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n')],
    ['garbage', (_q, socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n')],
  ];
  for (const [name, onUpgrade] of answers) {
    it(`an upgrade answered with ${name}: the WebSocket fails, the client retries with backoff`, async (t) => {
      const { crashes } = watchProcess(t);
      const s = await RawServer.start(t, onUpgrade);
      const { c, log } = hostileClient(t, s.url);
      c.connect();
      await until(() => s.attempts.length >= 3, 'retries');
      assert.equal(events(log, 'connected').length, 0);
      assert.ok(events(log, 'disconnected').every((e) => e.reconnect));
      await settle(c, s, crashes);
    });
  }

  it('a server that stalls mid-handshake (half a 101 head, then nothing): the timeout fails the attempt', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await RawServer.start(t, (_req, socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs'));
    const { c, log } = hostileClient(t, s.url, { timeout: 400 });
    c.connect();
    await until(() => s.attempts.length >= 2, 'a second attempt');
    assert.ok((s.attempts[1] ?? 0) - (s.attempts[0] ?? 0) >= 350);
    assert.equal(events(log, 'disconnected')[0]?.reason, 'timeout');
    await settle(c, s, crashes);
  });
});

describe('channels client: liveness (PROTOCOL.md §6 heartbeat)', () => {
  it('a server that goes silent after connected: the client closes it after ping + pingGrace (4502) and reconnects', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, {
      frame: (ws, f) => {
        // Answers `connect`, then nothing at all (the publish below stays unanswered).
        if (f.type === 'connect') push(ws, { ...connected(f), ping: 300 });
        return true;
      },
    });
    const { c, log } = hostileClient(t, s.url, { pingGrace: 200 });
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    const t0 = Date.now();
    const pending = c.publish('a', 1);
    pending.catch(() => undefined);
    await until(() => events(log, 'disconnected').length === 1, 'heartbeat timeout', 5000);
    assert.ok(Date.now() - t0 >= 400, 'not before ping + grace');
    assert.deepEqual(events(log, 'disconnected')[0], { code: 4502, reason: 'heartbeat timeout', reconnect: true });
    await assert.rejects(pending, { code: 499 });
    await until(() => s.attempts.length === 2, 'reconnected');
    await until(() => s.closes.length >= 1, 'the dead connection closed by the client');
    await settle(c, s, crashes);
  });

  it('protocol pings keep the connection alive and are answered with pong', async (t) => {
    const { s, c, log, crashes } = await connectedClient(t, { frame: (ws, f) => f.type === 'connect' && (push(ws, { ...connected(f), ping: 200 }), true) }, { pingGrace: 200 });
    const timer = setInterval(() => push(s.last, { type: 'ping' }), 100);
    t.after(() => clearInterval(timer));
    await sleep(1500);
    clearInterval(timer);
    assert.equal(events(log, 'disconnected').length, 0);
    assert.ok(s.sent('pong').length >= 5);
    assert.ok(s.sent('pong').every((f) => f.id === undefined));
    await settle(c, s, crashes);
  });

  it('an absurd `ping` interval in `connected` (2^40 ms) does not overflow the heartbeat timer into a 1 ms loop', async (t) => {
    const { warnings } = watchProcess(t);
    const { s, c, crashes } = await connectedClient(t, { frame: (ws, f) => f.type === 'connect' && (push(ws, { ...connected(f), ping: 2 ** 40 }), true) });
    await sleep(300);
    // Node clamps a setTimeout beyond 2^31−1 ms to 1 ms and warns: the heartbeat would then re-arm every millisecond.
    const overflows = warnings.filter((w) => w.name === 'TimeoutOverflowWarning');
    assert.equal(overflows.length, 0, `${overflows.length} TimeoutOverflowWarnings in 300 ms, the first: ${overflows[0]?.message}`);
    await settle(c, s, crashes, 300);
  });

  it('a negative `ping` interval in `connected` does not make the client drop every connection at once', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, { frame: (ws, f) => f.type === 'connect' && (push(ws, { ...connected(f), ping: -1e9 }), true) });
    const { c, log } = hostileClient(t, s.url);
    c.connect();
    await until(() => events(log, 'connected').length > 0, 'connected');
    await sleep(500);
    // §6: the connection is dead after `ping + pingGrace` ms of silence; a connection that just answered is not.
    assert.deepEqual(events(log, 'disconnected'), []);
    assert.equal(s.attempts.length, 1);
    await settle(c, s, crashes, 300);
  });
});
