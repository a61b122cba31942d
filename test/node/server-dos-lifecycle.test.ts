/**
 * Denial-of-service probes of the server, part 4: connections that are held
 * open. The README's limits: `handshakeTimeout` ("a client that has not
 * completed its request (or an async upgrade hook that has not answered) is
 * dropped (408 / 503)"), `closeTimeout` ("a peer that does not answer our
 * close frame, or does not close TCP after the closing handshake, is
 * destroyed"), `keepalive` ("if it then stays silent for timeout it is
 * terminated"), and `close()` ("graceful: 1001 to everyone, wait, then
 * terminate stragglers", waiting at most closeTimeout). Thousands of
 * abandoned handshakes, half-closed handshakes, clients that never answer a
 * close or a ping and a shutdown in the middle of all of it, in each of the
 * three ways a server meets its sockets, while another client is served.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { ServerHandler } from '../../src/index.js';
import { LOOPBACK, type RawPeer, delay, until, upgradeRequest } from '../helpers/raw-client.js';
import { BINARY, MODES, MiB, PING, TEXT, assertServed, dosServer, floodUntilStalled, frameBytes, isOver } from '../helpers/server-dos.js';

/** A raw socket that records whether the server ended or closed it, and what it sent. */
interface Abandoned {
  socket: net.Socket;
  over: boolean;
  received: string;
}

/** Opens `n` connections at once, each sending `bytes` (maybe nothing) and then nothing more. */
async function abandon(port: number, n: number, bytes: string, own: (s: net.Socket) => void): Promise<Abandoned[]> {
  const all = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Abandoned>((resolve, reject) => {
          const socket = net.connect({ port, host: LOOPBACK });
          own(socket);
          const a: Abandoned = { socket, over: false, received: '' };
          socket.setEncoding('latin1');
          socket.on('data', (s: string) => (a.received += s));
          socket.on('end', () => (a.over = true));
          socket.on('close', () => (a.over = true));
          socket.on('error', () => (a.over = true));
          socket.once('connect', () => {
            if (bytes.length > 0) socket.write(bytes);
            resolve(a);
          });
          socket.once('error', reject);
        }),
    ),
  );
  return all;
}

const HALF_HEAD = upgradeRequest().slice(0, 40);

describe('README handshakeTimeout: thousands of handshakes abandoned at once are all dropped', () => {
  it('listen: 1,000 silent connections and 1,000 half-sent heads: all ended (408) after handshakeTimeout, while a new client is served meanwhile', { timeout: 60_000 }, async (t) => {
    const d = await dosServer(t, 'listen', { handshakeTimeout: 1000, keepalive: false });
    const silent = await abandon(d.port, 1000, '', (s) => d.own(s));
    const half = await abandon(d.port, 1000, HALF_HEAD, (s) => d.own(s));
    await assertServed(d.port, 'a client during the attack');
    const all = [...silent, ...half];
    await until('every abandoned connection to be ended by the server', () => all.every((a) => a.over), 20_000);
    const timedOut = half.filter((a) => a.received.startsWith('HTTP/1.1 408')).length;
    assert.ok(timedOut > 900, `${timedOut} of 1,000 half heads got 408`);
    assert.equal(all.filter((a) => a.received.includes(' 101 ')).length, 0);
    assert.equal(d.opened.length, 1, 'only the served client opened');
    await assertServed(d.port, 'a client after the attack');
  });

  it('attach: 200 half-sent heads are dropped by the attached HTTP server\'s own headersTimeout (README: handshakeTimeout bounds heads only where the WebSocketServer parses them, listen())', { timeout: 60_000 }, async (t) => {
    // Node checks headersTimeout every connectionsCheckingInterval (30 s by default): shortened here.
    const d = await dosServer(t, 'attach', { handshakeTimeout: 60_000, keepalive: false }, {}, { headersTimeout: 1000, requestTimeout: 1000, connectionsCheckingInterval: 200 });
    const half = await abandon(d.port, 200, HALF_HEAD, (s) => d.own(s));
    await assertServed(d.port, 'a client during the attack');
    const started = Date.now();
    await until('the half-sent heads to be dropped', () => half.every((a) => a.over), 15_000).catch(() => {});
    const left = half.filter((a) => !a.over).length;
    assert.equal(left, 0, `${left} of 200 connections that never completed their request head are still open ${Date.now() - started} ms after headersTimeout (1000 ms) ran out`);
    const answered = half.filter((a) => a.received.startsWith('HTTP/1.1 408')).length;
    assert.ok(answered > 0, 'the HTTP server answers 408');
  });

  for (const mode of ['attach', 'handleUpgrade'] as const) {
    it(`${mode}: 1,000 complete heads whose async upgrade hook never answers: all get 503 after handshakeTimeout; other paths are served meanwhile`, { timeout: 60_000 }, async (t) => {
      const stall: ServerHandler = { upgrade: (req) => (req.url === '/stall' ? new Promise(() => {}) : undefined) };
      const d = await dosServer(t, mode, { handshakeTimeout: 1000, keepalive: false }, stall);
      const stuck = await abandon(d.port, 1000, upgradeRequest({ path: '/stall' }), (s) => d.own(s));
      await assertServed(d.port, 'a client during the attack');
      await until('every stalled handshake to be ended', () => stuck.every((a) => a.over), 20_000);
      const refused = stuck.filter((a) => a.received.startsWith('HTTP/1.1 503')).length;
      assert.equal(refused, 1000, `${refused} of 1,000 got 503`);
      assert.equal(d.opened.length, 1);
    });
  }
});

describe('RFC 6455 §7.1.5: 500 clients that reset TCP right after their handshake', () => {
  for (const mode of MODES) {
    it(`${mode}: every connection is closed with 1006 and forgotten; another client is served`, { timeout: 60_000 }, async (t) => {
      const d = await dosServer(t, mode, { keepalive: false });
      const all = await abandon(d.port, 500, upgradeRequest(), (s) => d.own(s));
      await until('500 connections to open', () => d.opened.length === 500, 20_000);
      for (const a of all) a.socket.resetAndDestroy();
      await until('500 close handler calls', () => d.closed.length === 500, 20_000);
      assert.ok(d.closed.every((c) => c.code === 1006));
      assert.equal(d.wss.clients.size, 0);
      await assertServed(d.port);
    });
  }
});

describe('RFC 9112 §9.6 / RFC 6455 §4.1: a client that half-closes TCP (FIN) during its handshake', () => {
  const cuts = [
    { name: 'in the middle of the request head', bytes: HALF_HEAD },
    { name: 'right after a complete request head', bytes: upgradeRequest() },
  ];
  for (const mode of MODES) {
    for (const cut of cuts) {
      it(`${mode}: ${cut.name}: the server ends the connection; nothing is left open`, async (t) => {
        const d = await dosServer(t, mode, { handshakeTimeout: 5000, keepalive: false, closeTimeout: 500 });
        const peer = await d.connect({ allowHalfOpen: true });
        await peer.write(cut.bytes);
        peer.socket.end();
        await peer.waitEnd(10_000);
        await until('no connection left open', () => d.wss.clients.size === 0, 10_000);
        for (const ws of d.opened) assert.equal(await d.closeOf(ws), 1006, 'a connection that opened saw no close frame');
        await assertServed(d.port);
      });
    }
  }
});

describe('README closeTimeout: a client that never answers the server\'s close frame', () => {
  for (const mode of MODES) {
    it(`${mode}: one that reads the close frame but keeps sending pings and data instead is destroyed after closeTimeout`, { timeout: 30_000 }, async (t) => {
      const d = await dosServer(t, mode, { closeTimeout: 500, keepalive: false });
      const peer = await d.open();
      const ws = await d.nthOpen(1);
      peer.socket.on('error', () => {});
      ws.close(1000, 'go away');
      const started = Date.now();
      const close = await peer.readClose();
      assert.equal(close.code, 1000);
      // Busy, not silent: traffic must not extend the closing handshake.
      const ping = frameBytes(PING, 'still here');
      const data = frameBytes(TEXT, 'more data');
      while (!peer.closed && !peer.ended && Date.now() - started < 10_000) {
        peer.socket.write(ping);
        peer.socket.write(data);
        await delay(10);
      }
      assert.ok(peer.ended || peer.closed, 'the server cut the connection');
      assert.equal(await d.closeOf(ws), 1006, 'no close frame came back');
      assert.ok(Date.now() - started < 10_000);
      await assertServed(d.port);
    });

    it(`${mode}: one that sends its own close frame, then neither reads nor closes TCP, is destroyed after closeTimeout`, { timeout: 30_000 }, async (t) => {
      const d = await dosServer(t, mode, { closeTimeout: 500, keepalive: false });
      const peer = await d.open({}, { allowHalfOpen: true });
      const ws = await d.nthOpen(1);
      // Below maxBackpressure (1 MiB), so the server still reads: over it, reading would pause and the
      // close frame would not be read at all (only keepalive then frees the connection).
      for (let i = 0; i < 8; i++) ws.send(Buffer.alloc(64 * 1024));
      peer.socket.pause();
      await peer.sendClose(1000);
      // RFC 6455 §7.1.1: the server closes TCP first; a peer that never reads its FIN is not waited for beyond closeTimeout.
      assert.equal(await d.closeOf(ws, 10_000), 1000, 'the handler sees the code of the close frame that came');
      await until('the connection to leave the clients set', () => d.wss.clients.size === 0);
      await assertServed(d.port);
    });

    it(`${mode}: one that reads nothing (the close frame stuck behind 10 MiB of output) is destroyed after closeTimeout`, { timeout: 30_000 }, async (t) => {
      const d = await dosServer(t, mode, { closeTimeout: 500, keepalive: false });
      const peer = await d.open();
      peer.socket.pause();
      const ws = await d.nthOpen(1);
      for (let i = 0; i < 10; i++) ws.send(Buffer.alloc(MiB));
      ws.close(1001);
      assert.equal(await d.closeOf(ws, 10_000), 1006);
      assert.ok(ws.bufferedAmount === 0 || ws.readyState === 3);
      await assertServed(d.port);
    });
  }
});

describe('README close(): a graceful shutdown in the middle of an attack finishes within closeTimeout', () => {
  for (const mode of MODES) {
    it(`${mode}: heads in flight, stalled upgrade hooks, a message half sent, a client that never reads, a flooder: close() resolves, everyone is ended`, { timeout: 60_000 }, async (t) => {
      const CLOSE_TIMEOUT = 1000;
      const stall: ServerHandler = { upgrade: (req) => (req.url === '/stall' ? new Promise(() => {}) : undefined) };
      // handshakeTimeout well above closeTimeout, so close() (not the timeout) must end the heads; not
      // much more, as each stalled hook's timer outlives close() (see the next test).
      const d = await dosServer(t, mode, { closeTimeout: CLOSE_TIMEOUT, handshakeTimeout: 8_000, keepalive: false, maxBackpressure: 64 * 1024 }, stall);
      const halfHeads = await abandon(d.port, 50, HALF_HEAD, (s) => d.own(s));
      const hooked = await abandon(d.port, 50, upgradeRequest({ path: '/stall' }), (s) => d.own(s));
      const midMessage = await d.open();
      await midMessage.send({ opcode: TEXT, fin: false, payload: 'the first half' });
      const deaf = await d.open();
      deaf.socket.pause();
      const flooder = await d.open();
      await until('three connections', () => d.opened.length === 3);
      const [, deafWs, flooderWs] = d.opened;
      assert.ok(deafWs && flooderWs);
      for (let i = 0; i < 8; i++) deafWs.send(Buffer.alloc(MiB));
      const flood = await floodUntilStalled(flooder.socket, frameBytes(BINARY, Buffer.alloc(64, 1)), 256 * MiB, 500);
      assert.ok(flood.stalled);

      const started = Date.now();
      await d.wss.close();
      const took = Date.now() - started;
      t.diagnostic(`close() took ${took} ms (closeTimeout ${CLOSE_TIMEOUT} ms)`);
      assert.ok(took < CLOSE_TIMEOUT + 4000, `close() took ${took} ms`);
      assert.equal(d.wss.clients.size, 0);

      // The client in the middle of a message got 1001 (RFC 6455 §7.4.1: going away) and may answer it.
      const close = await midMessage.readClose();
      assert.equal(close.code, 1001);
      await until('the stalled handshakes to be ended', () => hooked.every((a) => a.over), 10_000);
      for (const a of hooked) assert.match(a.received, /^HTTP\/1\.1 503 |^$/, 'a stalled handshake gets 503 (or is cut)');
      assert.equal(hooked.filter((a) => a.received.includes(' 101 ')).length, 0);
      if (mode === 'listen') {
        // The server owns these heads: they are ended too (the HTTP server of attach/handleUpgrade is the application's).
        await until('the half-sent heads to be ended', () => halfHeads.every((a) => a.over), 10_000);
        await assert.rejects(assertServed(d.port), 'the port no longer accepts connections');
      }
      // Neither answered the 1001 (one reads nothing, the other is not read): terminated, no close frame seen.
      assert.equal(await d.closeOf(deafWs), 1006);
      assert.equal(await d.closeOf(flooderWs), 1006);
      await until('the deaf client and the flooder to be cut off', () => isOver(deaf) && isOver(flooder), 10_000);
    });
  }
});

describe('README close(): nothing of a closed server keeps the process alive', () => {
  for (const mode of MODES) {
    it(`${mode}: handshakes whose async upgrade hook was still pending leave no timer running after close()`, async (t) => {
      const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      let hooks = 0;
      const stall: ServerHandler = { upgrade: () => (hooks++, new Promise(() => {})) };
      const d = await dosServer(t, mode, { handshakeTimeout: 20_000, keepalive: false }, stall);
      const before = timers();
      const stuck = await abandon(d.port, 20, upgradeRequest(), (s) => d.own(s));
      await until('the 20 hooks to be pending', () => hooks === 20);
      await d.wss.close();
      await until('the stalled handshakes to be refused', () => stuck.every((a) => a.over), 10_000);
      for (const a of stuck) assert.match(a.received, /^HTTP\/1\.1 503 /);
      // The process could exit now; a handshakeTimeout timer per refused handshake (20 s here) would hold it.
      const left = timers() - before;
      assert.ok(left < 10, `${left} timers still keep the event loop alive after close() resolved and every handshake was refused`);
    });
  }
});

describe('README keepalive: clients that never answer pings are terminated', () => {
  for (const mode of MODES) {
    it(`${mode}: a client that floods pings and never reads (so the server stopped reading it) is terminated too`, { timeout: 30_000 }, async (t) => {
      const d = await dosServer(t, mode, { keepalive: { interval: 1000, timeout: 1000 }, maxBackpressure: 64 * 1024, closeTimeout: 500 });
      const flooder = await d.open();
      const ws = await d.nthOpen(1);
      const flood = await floodUntilStalled(flooder.socket, frameBytes(PING, Buffer.alloc(125)), 512 * MiB, 500);
      assert.ok(flood.stalled);
      // Its pongs never leave, its later pings are never read: to the server it is silent.
      assert.equal(await d.closeOf(ws, 15_000), 1006);
      await until('the flooder to be cut off', () => isOver(flooder), 10_000);
      await assertServed(d.port);
    });

    it(`${mode}: 100 silent clients (50 reading, 50 not) are terminated after interval + timeout; one that answers stays`, { timeout: 30_000 }, async (t) => {
      const d = await dosServer(t, mode, { keepalive: { interval: 200, timeout: 300 }, closeTimeout: 500 });
      const silent: RawPeer[] = [];
      for (let i = 0; i < 100; i++) {
        const p = await d.open();
        if (i % 2 === 1) p.socket.pause();
        silent.push(p);
      }
      const alive = await d.open();
      let answering = true;
      void (async () => {
        while (answering && !alive.closed) {
          const f = await alive.readFrame(5_000).catch(() => null);
          if (f === null) break;
          if (f.opcode === PING) await alive.send({ opcode: 0xa, payload: f.payload }).catch(() => {});
        }
      })();
      const started = Date.now();
      await until('the 100 silent clients to be terminated', () => d.closed.length >= 100, 15_000);
      t.after(() => (answering = false));
      t.diagnostic(`terminated after ${Date.now() - started} ms (interval 200 ms, timeout 300 ms)`);
      assert.ok(d.closed.every((c) => c.code === 1006), 'terminated without a closing handshake');
      await until('every silent socket to be ended', () => silent.every(isOver), 10_000);
      await delay(600);
      assert.equal(d.wss.clients.size, 1, 'the client that answers pings stays');
      assert.ok(!isOver(alive));
      answering = false;
      await assertServed(d.port);
    });
  }
});
