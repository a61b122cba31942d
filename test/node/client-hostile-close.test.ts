/**
 * Hostile servers in the closing handshake (RFC 6455 §7, WHATWG WebSockets §
 * Feedback from the protocol) and with pings (RFC 6455 §5.5.2-5.5.3). Every
 * wait is bounded by the client's documented closeTimeout; the close event's
 * code is the one of the first close frame received (§7.1.5), 1006 when none
 * was, and wasClean says whether the closing handshake completed before TCP
 * closed (§7.1.4, §7.1.5).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../../src/index.js';
import { withTimeout } from '../helpers/client-peer.js';
import { OP, assertFailed, openRaw } from '../helpers/client-raw.js';
import { closeFrameOf, closePayload, serverFrame } from '../helpers/frames.js';

const CLOSE_TIMEOUT = 300;

describe('RFC 6455 §7.1.1: a server that sends its close frame but never closes TCP', () => {
  it('the client echoes, waits about closeTimeout for the server to close first, then closes TCP: clean, the server\'s code', async (t) => {
    const { ws, peer, log } = await openRaw(t, { closeTimeout: CLOSE_TIMEOUT });
    const started = Date.now();
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(4001, 'bye') }));
    const echo = await peer.readFrame();
    assert.equal(closeFrameOf(echo).code, 4001);
    assert.equal(ws.readyState, WebSocket.CLOSING);
    await peer.waitEnd();
    assert.ok(Date.now() - started >= CLOSE_TIMEOUT * 0.8, 'the client closed TCP before its closeTimeout');
    const closed = await log.closed();
    assert.deepEqual(log.types(), ['open', 'close']);
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4001, 'bye', true]);
  });

  it('...and keeps sending messages and pings after it: none is dispatched or answered, the close stays bounded', async (t) => {
    const { peer, log } = await openRaw(t, { closeTimeout: CLOSE_TIMEOUT });
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    const noise = setInterval(() => {
      if (peer.socket.writable) peer.write(Buffer.concat([serverFrame({ opcode: OP.TEXT, payload: 'late' }), serverFrame({ opcode: OP.PING, payload: 'late' })]));
    }, 10);
    t.after(() => clearInterval(noise));
    const echo = await peer.readFrame();
    assert.equal(echo.opcode, OP.CLOSE);
    const closed = await log.closed();
    assert.equal(closed.code, 1000);
    assert.equal(log.all('message').length, 0);
    await peer.waitEnd();
    assert.equal(peer.unread, 0, 'the client sent something after its close frame');
  });
});

describe('RFC 6455 §7.1.5: the server drops TCP without a close frame → 1006, not clean', () => {
  for (const [name, bytes] of [
    ['between frames', Buffer.alloc(0)],
    ['in the middle of a frame header', serverFrame({ opcode: OP.TEXT, payload: 'x'.repeat(300) }).subarray(0, 3)],
    ['in the middle of a payload', serverFrame({ opcode: OP.TEXT, payload: 'half a message' }).subarray(0, 8)],
    ['in the middle of a fragmented message', serverFrame({ opcode: OP.TEXT, fin: false, payload: 'first half' })],
    ['in the middle of a close frame', serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'cut') }).subarray(0, 4)],
  ] as const) {
    it(`FIN ${name}: no message, close 1006`, async (t) => {
      const { peer, log } = await openRaw(t);
      peer.socket.end(bytes);
      const closed = await log.closed();
      assert.deepEqual([closed.code, closed.wasClean, closed.readyState], [1006, false, WebSocket.CLOSED]);
      assert.equal(log.all('message').length, 0);
      assert.equal(log.types().at(-1), 'close');
      assert.ok(log.all('error').length <= 1);
      await peer.waitClosed();
    });
  }
});

describe('RFC 6455 §7 / WHATWG § close(): the server misbehaves after the client\'s close frame', () => {
  it('never answers but keeps TCP open and keeps sending: close 1006 within closeTimeout, nothing dispatched', async (t) => {
    const { ws, peer, log } = await openRaw(t, { closeTimeout: CLOSE_TIMEOUT });
    ws.close(1000, 'bye');
    assert.equal(closeFrameOf(await peer.readFrame()).code, 1000);
    const noise = setInterval(() => peer.socket.writable && peer.write(serverFrame({ opcode: OP.TEXT, payload: 'ignored' })), 10);
    t.after(() => clearInterval(noise));
    const closed = await log.closed(CLOSE_TIMEOUT + 5_000);
    assert.deepEqual([closed.code, closed.wasClean], [1006, false]);
    assert.equal(log.all('message').length, 0);
    await peer.waitEnd();
  });

  it('answers with another code and reason: the close event carries the server\'s (WHATWG close code = first close frame received)', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(4000, 'client reason');
    assert.deepEqual(closeFrameOf(await peer.readFrame()), { code: 4000, reason: 'client reason' });
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(1001, 'server reason') }));
    peer.end();
    const closed = await log.closed();
    assert.deepEqual(log.types(), ['open', 'close']);
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [1001, 'server reason', true]);
  });

  it('answers with an empty close frame: 1005, clean', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(4000);
    await peer.readFrame();
    peer.write(serverFrame({ opcode: OP.CLOSE }));
    peer.end();
    const closed = await log.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [1005, '', true]);
  });

  for (const [name, payload] of [
    ['code 1005 on the wire', closePayload(1005)],
    ['a 1-byte body', Buffer.from([0x03])],
    ['a reason that is not UTF-8', Buffer.concat([closePayload(1000), Buffer.from([0xff])])],
  ] as const) {
    it(`answers with ${name}: the connection fails (error, close 1006), no second close frame`, async (t) => {
      const { ws, peer, log } = await openRaw(t);
      ws.close(1000);
      await peer.readFrame();
      peer.write(serverFrame({ opcode: OP.CLOSE, payload }));
      peer.end();
      await assertFailed(log);
      await peer.waitClosed();
      assert.equal(peer.unread, 0, 'the client sent another frame after its close frame');
    });
  }

  it('answers with a close frame and then a masked frame, then closes TCP: still clean (nothing after the close frame is read)', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(1000);
    await peer.readFrame();
    peer.socket.end(Buffer.concat([serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000) }), Buffer.from([0x81, 0x81, 1, 2, 3, 4, 5])]));
    const closed = await log.closed();
    assert.deepEqual([closed.code, closed.wasClean], [1000, true]);
    assert.deepEqual(log.types(), ['open', 'close']);
  });
});

describe('RFC 6455 §5.5.2-5.5.3: pongs carry the ping\'s payload', () => {
  it('empty, 1-byte and 125-byte binary pings, 50 in one packet: 50 masked pongs, same payloads, same order', async (t) => {
    const { peer } = await openRaw(t);
    const payloads = Array.from({ length: 50 }, (_, i) =>
      i === 0 ? Buffer.alloc(0) : i === 1 ? Buffer.from([0]) : Buffer.from(Array.from({ length: 125 }, (_, j) => (i * 7 + j * 13) & 0xff)),
    );
    peer.write(Buffer.concat(payloads.map((payload) => serverFrame({ opcode: OP.PING, payload }))));
    for (const p of payloads) {
      const f = await peer.readFrame();
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.masked, true);
      assert.deepEqual(f.payload, p);
    }
  });

  it('pings between the fragments of a message: each answered with its payload, the message intact', async (t) => {
    const { peer, log } = await openRaw(t);
    const text = 'fragmented \u{1f600} message';
    const bytes = Buffer.from(text);
    const cuts = [0, 5, 12, 14, bytes.length];
    const frames: Buffer[] = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      frames.push(serverFrame({ opcode: i === 0 ? OP.TEXT : OP.CONTINUATION, fin: i + 2 === cuts.length, payload: bytes.subarray(cuts[i], cuts[i + 1]) }));
      if (i + 2 < cuts.length) frames.push(serverFrame({ opcode: OP.PING, payload: `ping ${i}` }));
    }
    // One frame per TCP segment, so some pings arrive before the rest of the message exists.
    peer.socket.setNoDelay(true);
    for (const f of frames) {
      peer.write(f);
      await new Promise((r) => setTimeout(r, 5));
    }
    for (let i = 0; i < 3; i++) {
      const f = await peer.readFrame();
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.payload.toString(), `ping ${i}`);
    }
    assert.equal(await log.message(1), text);
    assert.equal(log.all('message').length, 1);
  });

  it('a ping delivered one byte per TCP segment is answered with the same payload', async (t) => {
    const { peer } = await openRaw(t);
    peer.socket.setNoDelay(true);
    const payload = Buffer.from('one byte at a time, still the same payload');
    for (const b of serverFrame({ opcode: OP.PING, payload })) {
      peer.write(Buffer.of(b));
      await new Promise((r) => setImmediate(r));
    }
    const f = await peer.readFrame();
    assert.equal(f.opcode, OP.PONG);
    assert.deepEqual(f.payload, payload);
  });

  it('10,000 distinct pings in large packets: every pong has its ping\'s payload', async (t) => {
    const { peer } = await openRaw(t);
    const n = 10_000;
    const payloadOf = (i: number): Buffer => Buffer.from(`ping #${i} `.padEnd(120, String.fromCharCode(97 + (i % 26))));
    const all: Buffer[] = [];
    for (let i = 0; i < n; i++) all.push(serverFrame({ opcode: OP.PING, payload: payloadOf(i) }));
    peer.write(Buffer.concat(all));
    await withTimeout(
      (async () => {
        for (let i = 0; i < n; i++) {
          const f = await peer.readFrame();
          assert.equal(f.opcode, OP.PONG);
          assert.equal(f.payload.toString(), payloadOf(i).toString(), `pong #${i}`);
        }
      })(),
      20_000,
      '10,000 pongs',
    );
  });
});
