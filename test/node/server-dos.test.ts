/**
 * Denial-of-service probes of the server, part 1: floods from clients that
 * send without reading. A hostile (or broken) client must not make the server
 * buffer without bound: the README promises that "the server also stops
 * reading from a connection while its output is over [maxBackpressure], so a
 * peer that sends without reading what it is sent ... cannot grow the
 * server's memory without bound", and that a slow consumer's topic messages
 * are dropped (or it is closed with 1008). Each probe runs against a server
 * that owns its port (`listen`), one attached to a node:http server, and one
 * fed by `handleUpgrade`, and checks that another client is served meanwhile.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SendResult } from '../../src/index.js';
import { delay, until } from '../helpers/raw-client.js';
import { BINARY, MODES, MiB, PING, assertServed, discardIncoming, dosServer, floodUntilStalled, frameBytes } from '../helpers/server-dos.js';

const LIMIT = 64 * 1024;
/** One read of the server (its shared read buffer is 256 KiB) can queue at most about as many bytes of answers. */
const ONE_READ = 256 * 1024;
const SMALL = { maxBackpressure: LIMIT, highWaterMark: LIMIT, keepalive: false as const, closeTimeout: 500 };

const floods = [
  {
    name: 'a ping flood (125-byte pings): each is answered with a pong (RFC 6455 §5.5.2), but pongs do not pile up',
    unit: frameBytes(PING, Buffer.alloc(125, 0x61)),
    count: (d: { pings: number }) => d.pings,
  },
  {
    name: 'an echo nobody reads (16-byte binary messages echoed by a handler that ignores backpressure)',
    unit: frameBytes(BINARY, Buffer.alloc(16, 0x62)),
    count: (d: { messages: number }) => d.messages,
  },
];

describe('README maxBackpressure: a client that sends and never reads makes the server stop reading it', () => {
  for (const mode of MODES) {
    for (const flood of floods) {
      it(`${mode}: ${flood.name}`, { timeout: 60_000 }, async (t) => {
        const d = await dosServer(t, mode, SMALL);
        const flooder = await d.open();
        const ws = await d.nthOpen(1);
        const result = await floodUntilStalled(flooder.socket, flood.unit, 512 * MiB);
        assert.ok(result.stalled, `the server kept reading: ${result.written} bytes taken without a stall`);
        // What the server holds for this client: at most the limit plus the answers of the read that crossed it.
        assert.ok(ws.bufferedAmount <= LIMIT + ONE_READ, `server buffers ${ws.bufferedAmount} bytes for a client that does not read`);
        assert.ok(ws.bufferedAmount > 0, 'the answers back up on the server once the client stops reading');
        // Reading is paused: nothing more is parsed while the client reads nothing.
        const handled = flood.count(d);
        assert.ok(handled > 0);
        await delay(300);
        assert.equal(flood.count(d), handled, 'frames were still parsed after the server should have stopped reading');
        assert.ok(ws.bufferedAmount <= LIMIT + ONE_READ);
        await assertServed(d.port);

        // Once the client reads again, so does the server: the pause is flow control, not a hang.
        discardIncoming(flooder);
        await until('the server to resume reading the flooder', () => flood.count(d) > handled, 10_000);
        flooder.destroy();
        assert.equal(await d.closeOf(ws), 1006);
        await until('the flooder to leave the clients set', () => d.wss.clients.size === 0);
      });
    }
  }
});

describe('README slow consumers: topic messages to a client that does not read', () => {
  const MESSAGE = 64 * 1024;
  const COUNT = 400; // 25 MiB: beyond what the loopback socket buffers absorb

  for (const mode of MODES) {
    it(`${mode}: dropped over maxBackpressure, never buffered beyond it; a reading subscriber gets every message`, { timeout: 60_000 }, async (t) => {
      let dropped = 0;
      const d = await dosServer(t, mode, { ...SMALL, maxBackpressure: 256 * 1024 }, { open: (ws) => ws.subscribe('room'), dropped: () => dropped++ });
      const slow = await d.open();
      slow.socket.pause();
      const reader = await d.open();
      const slowWs = await d.nthOpen(1);
      const readerWs = await d.nthOpen(2);
      let got = 0;
      const reading = (async () => {
        while (got < COUNT) {
          const f = await reader.readFrame(20_000);
          assert.equal(f.opcode, BINARY);
          assert.equal(f.payload.length, MESSAGE);
          assert.equal(f.payload.readUInt32BE(0), got, 'messages arrive in order, none missing');
          got++;
        }
      })();
      let peak = 0;
      for (let i = 0; i < COUNT; i++) {
        const payload = Buffer.alloc(MESSAGE, 0x63);
        payload.writeUInt32BE(i, 0);
        // The reader must keep up, or it becomes a slow consumer too.
        await until('the reading subscriber to catch up', () => readerWs.bufferedAmount + MESSAGE <= 256 * 1024, 20_000);
        d.wss.publish('room', payload);
        peak = Math.max(peak, slowWs.bufferedAmount);
      }
      await reading;
      assert.equal(got, COUNT);
      assert.ok(dropped > 0, 'the slow consumer missed messages (dropped handler)');
      // A message is taken only while buffered + message <= maxBackpressure (or nothing is buffered).
      assert.ok(peak <= 256 * 1024 + MESSAGE + 14, `the slow consumer's buffer peaked at ${peak} bytes`);
      assert.equal(slowWs.readyState, 1, 'without closeOnBackpressureLimit the slow consumer stays open');
      await assertServed(d.port);
    });

    it(`${mode}: closeOnBackpressureLimit closes it with 1008; as it reads nothing, closeTimeout then cuts it off`, { timeout: 60_000 }, async (t) => {
      const d = await dosServer(t, mode, { ...SMALL, maxBackpressure: 256 * 1024, closeOnBackpressureLimit: true }, { open: (ws) => ws.subscribe('room') });
      const slow = await d.open();
      slow.socket.pause();
      const slowWs = await d.nthOpen(1);
      const started = Date.now();
      for (let i = 0; i < COUNT && slowWs.readyState === 1; i++) {
        d.wss.publish('room', Buffer.alloc(MESSAGE, 0x64));
        if (i % 4 === 3) await delay(1);
      }
      assert.equal(slowWs.readyState, 2, 'the slow consumer is closing');
      assert.equal(slowWs.send('more'), SendResult.Dropped, 'nothing more is queued after the close frame');
      // Its close frame sits behind output it never reads: the close timeout (500 ms) ends it.
      assert.equal(await d.closeOf(slowWs, 10_000), 1006);
      assert.ok(Date.now() - started < 10_000);
      assert.equal(d.wss.subscriberCount('room'), 0, 'it left its topic');
      await assertServed(d.port);
    });
  }
});

describe('RFC 6455 §5.5.1: a client that sends its close frame, then keeps sending data', () => {
  for (const mode of MODES) {
    it(`${mode}: the data is not delivered; the server answers the close, and the TCP connection ends within closeTimeout`, { timeout: 30_000 }, async (t) => {
      const d = await dosServer(t, mode, SMALL);
      const peer = await d.open();
      const ws = await d.nthOpen(1);
      await peer.sendClose(1000, 'bye');
      const unit = frameBytes(BINARY, Buffer.alloc(1000, 0x65));
      const batch = Buffer.concat(Array.from({ length: 64 }, () => unit));
      peer.socket.on('error', () => {});
      // "The application MUST NOT send any further data frames after sending a Close frame": this one does, for 5 s at most.
      const deadline = Date.now() + 5_000;
      while (!peer.closed && !peer.ended && Date.now() < deadline) {
        if (!peer.socket.write(batch)) await Promise.race([new Promise((r) => peer.socket.once('drain', r)), delay(50)]);
        else await delay(0);
      }
      assert.ok(peer.ended || peer.closed, 'the server ended the connection while the client kept sending');
      const close = await peer.readClose();
      assert.equal(close.code, 1000, 'the close was echoed (RFC 6455 §5.5.1)');
      assert.equal(await d.closeOf(ws), 1000);
      assert.equal(d.messages, 0, 'no data frame after the close frame reached the handler');
      await assertServed(d.port);
    });
  }
});
