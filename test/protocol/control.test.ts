/**
 * RFC 6455 §5.5 (control frames), §5.5.2 (ping), §5.5.3 (pong).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, Opcode, ReadyState, type ConnectionEvents } from '../../src/protocol/index.js';
import { COPY_THRESHOLD } from '../../src/protocol/writer.js';
import {
  assertFailedWith,
  buildFrame,
  clientFrame,
  closePayload,
  connect,
  decodeFrames,
  frameTo,
  onlyFrame,
  serverFrame,
  pattern,
} from '../helpers/frames.js';

const { Text, Binary, Continuation, Close, Ping, Pong } = Opcode;


describe('RFC 6455 §5.5: control frames', () => {
  for (const opcode of [Ping, Pong, Close]) {
    const name = opcode === Ping ? 'ping' : opcode === Pong ? 'pong' : 'close';

    it(`fails with 1002 for a ${name} with a 126-byte payload`, () => {
      const h = connect('server');
      const payload = opcode === Close ? closePayload(1000, 'r'.repeat(124)) : pattern(126);
      h.feed(clientFrame({ opcode, payload }));
      assert.deepEqual(h.rec.events.filter((e) => e.type !== 'fail'), []);
      assertFailedWith(h, 1002);
    });

    it(`fails with 1002 for a ${name} whose header claims a 64-bit length, before its payload`, () => {
      const h = connect('client');
      h.feed(serverFrame({ opcode, payload: pattern(200) }).subarray(0, 10));
      assertFailedWith(h, 1002);
    });

    it(`fails with 1002 for a fragmented ${name} (FIN=0)`, () => {
      const h = connect('server');
      const payload = opcode === Close ? closePayload(1000) : pattern(3);
      h.feed(clientFrame({ opcode, fin: false, payload }));
      assert.deepEqual(h.rec.events.filter((e) => e.type !== 'fail'), []);
      assertFailedWith(h, 1002);
    });
  }

  it('fails with 1002 for a fragmented ping even inside a fragmented message', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false, payload: 'a' }), clientFrame({ opcode: Ping, fin: false }));
    assertFailedWith(h, 1002);
  });

  it('a control payload handed to a handler is not overwritten by a later control frame', () => {
    // A ping split across chunks is gathered in a scratch buffer: the payload
    // given to onPing must stay what it was after the next ping arrives.
    const seen: Buffer[] = [];
    const handler: ConnectionEvents = {
      onMessage() {},
      onPing(payload) {
        seen.push(payload);
      },
      onPong(payload) {
        seen.push(payload);
      },
      onPeerClose() {},
      onFail() {},
    };
    const conn = new Connection(handler, { role: 'server', maxPayload: 1024 });
    for (const [opcode, text] of [
      [Ping, 'first ping'],
      [Pong, 'then a pong'],
      [Ping, 'SECOND PING'],
    ] as const) {
      const f = clientFrame({ opcode, payload: text });
      conn.receive(Buffer.from(f.subarray(0, 8)));
      conn.receive(Buffer.from(f.subarray(8)));
    }
    assert.deepEqual(seen.map((b) => b.toString()), ['first ping', 'then a pong', 'SECOND PING']);
  });

  it('a control frame split across chunks is read whole after a shorter one whose header ended a chunk', () => {
    const ping = clientFrame({ opcode: Ping, payload: 'hi' });
    const close = clientFrame({ opcode: Close, payload: closePayload(1000, 'a longer reason') });
    const h = connect('server');
    h.feed(ping.subarray(0, 6)); // the ping's header only
    h.feed(Buffer.concat([ping.subarray(6), close.subarray(0, 9)]));
    h.feed(close.subarray(9));
    assert.deepEqual(h.rec.events, [
      { type: 'ping', payload: Buffer.from('hi') },
      { type: 'close', code: 1000, reason: 'a longer reason' },
    ]);
  });
});

describe('RFC 6455 §5.5.2: ping', () => {
  for (const role of ['server', 'client'] as const) {
    it(`a ${role} answers a ping with a pong carrying the identical payload`, () => {
      for (const size of [0, 1, 125]) {
        const h = connect(role);
        const payload = pattern(size, size);
        h.feed(frameTo(role, { opcode: Ping, payload }));
        assert.deepEqual(h.rec.events, [{ type: 'ping', payload }]);
        const pong = onlyFrame(h.sent());
        assert.equal(pong.opcode, Pong);
        assert.equal(pong.fin, true);
        assert.equal(pong.masked, role === 'client', 'a client masks its pong (RFC 6455 §5.3)');
        assert.deepEqual(pong.payload, payload);
      }
    });
  }

  it('answers a ping that arrives one byte at a time', () => {
    const h = connect('server');
    h.feedBytewise(clientFrame({ opcode: Ping, payload: pattern(125, 3) }));
    assert.deepEqual(onlyFrame(h.sent()).payload, pattern(125, 3));
  });

  it('answers each of several pings in one chunk, in order', () => {
    const h = connect('server');
    h.feed(Buffer.concat(['a', 'bb', 'ccc'].map((payload) => clientFrame({ opcode: Ping, payload }))));
    assert.deepEqual(h.sent().map((f) => [f.opcode, f.payload.toString()]), [
      [Pong, 'a'],
      [Pong, 'bb'],
      [Pong, 'ccc'],
    ]);
  });

  it('queues the pong before data frames the user sends afterwards', () => {
    const h = connect('server');
    h.conn.sendText('sent before the ping');
    h.feed(clientFrame({ opcode: Ping, payload: 'ping!' }));
    h.conn.sendText('sent after the ping');
    h.conn.sendBytes(pattern(COPY_THRESHOLD + 10), true);
    const out = h.conn.writer.take();
    assert.deepEqual(decodeFrames(out).map((f) => [f.opcode, f.payload.length]), [
      [Text, 20],
      [Pong, 5],
      [Text, 19],
      [Binary, COPY_THRESHOLD + 10],
    ]);
  });

  it('the pong is on the wire before a large message sent afterwards (client, masked)', () => {
    const h = connect('client');
    h.feed(serverFrame({ opcode: Ping, payload: 'x' }));
    h.conn.sendBytes(pattern(COPY_THRESHOLD * 3), true);
    const frames = h.sent();
    assert.deepEqual(frames.map((f) => f.opcode), [Pong, Binary]);
    assert.ok(frames[1]?.payload.equals(pattern(COPY_THRESHOLD * 3)));
  });

  it('ping() sends a ping with the given payload, up to 125 bytes', () => {
    for (const role of ['server', 'client'] as const) {
      const h = connect(role);
      assert.equal(h.conn.ping(), true);
      assert.equal(h.conn.ping(pattern(125)), true);
      assert.deepEqual(h.sent().map((f) => [f.opcode, f.fin, f.masked, f.payload]), [
        [Ping, true, role === 'client', Buffer.alloc(0)],
        [Ping, true, role === 'client', pattern(125)],
      ]);
    }
  });

  it('ping() and pong() throw RangeError for a payload over 125 bytes, and queue nothing', () => {
    const h = connect('server');
    assert.throws(() => h.conn.ping(pattern(126)), RangeError);
    assert.throws(() => h.conn.pong(pattern(126)), RangeError);
    assert.throws(() => h.conn.ping(pattern(COPY_THRESHOLD + 1)), RangeError);
    assert.equal(h.conn.writer.take(), null);
    assert.equal(h.conn.readyState, ReadyState.Open);
  });
});

describe('RFC 6455 §5.5.3: pong', () => {
  it('accepts an unsolicited pong and sends nothing in reply', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Pong, payload: 'heartbeat' }));
    assert.deepEqual(h.rec.events, [{ type: 'pong', payload: Buffer.from('heartbeat') }]);
    assert.equal(h.conn.writer.take(), null);
    assert.equal(h.conn.readyState, ReadyState.Open);
  });

  it('accepts pongs of 0 and 125 bytes', () => {
    const h = connect('client');
    h.feed(serverFrame({ opcode: Pong }), serverFrame({ opcode: Pong, payload: pattern(125) }));
    assert.deepEqual(h.rec.events, [
      { type: 'pong', payload: Buffer.alloc(0) },
      { type: 'pong', payload: pattern(125) },
    ]);
  });

  it('pong() sends an unsolicited pong', () => {
    const h = connect('client');
    assert.equal(h.conn.pong(Buffer.from('beat')), true);
    const f = onlyFrame(h.sent());
    assert.deepEqual([f.opcode, f.masked, f.payload.toString()], [Pong, true, 'beat']);
  });

  it('a continuation frame after a pong alone is still an orphan (1002)', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Pong }), buildFrame({ opcode: Continuation, mask: [1, 2, 3, 4] }));
    assertFailedWith(h, 1002);
  });
});
