/**
 * RFC 6455 §5.4 (fragmentation) and §10.4 (maxPayload across fragments).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Opcode, ReadyState } from '../../src/protocol/index.js';
import {
  RFC_MASK,
  assertFailedWith,
  buildHeader,
  clientFrame,
  closeFrameOf,
  closePayload,
  connect,
  onlyFrame,
  serverFrame,
  pattern,
} from '../helpers/frames.js';

const { Text, Binary, Continuation, Ping, Pong, Close } = Opcode;


describe('RFC 6455 §5.4: a fragmented message is delivered whole, in order', () => {
  it('reassembles text fragments in order', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Text, fin: false, payload: 'one ' }),
      clientFrame({ opcode: Continuation, fin: false, payload: 'two ' }),
      clientFrame({ opcode: Continuation, fin: false, payload: 'three ' }),
      clientFrame({ opcode: Continuation, fin: true, payload: 'four' }),
    );
    assert.deepEqual(h.rec.events, [{ type: 'message', data: Buffer.from('one two three four'), isBinary: false, compressed: false }]);
  });

  it('reassembles binary fragments in order, each fragment in its own chunk', () => {
    const h = connect('client');
    const parts = [pattern(10, 1), pattern(300, 2), pattern(70000, 3), pattern(1, 4)];
    parts.forEach((p, i) =>
      h.feed(serverFrame({ opcode: i === 0 ? Binary : Continuation, fin: i === parts.length - 1, payload: p })),
    );
    assert.deepEqual(h.rec.events, [{ type: 'message', data: Buffer.concat(parts), isBinary: true, compressed: false }]);
  });

  it('reassembles fragments that arrive one byte at a time', () => {
    const h = connect('server');
    h.feedBytewise(
      Buffer.concat([
        clientFrame({ opcode: Binary, fin: false, payload: pattern(5, 1) }),
        clientFrame({ opcode: Continuation, fin: false, payload: pattern(130, 2) }),
        clientFrame({ opcode: Continuation, fin: true, payload: pattern(3, 3) }),
      ]),
    );
    assert.deepEqual(h.rec.messages().map((m) => m.data), [Buffer.concat([pattern(5, 1), pattern(130, 2), pattern(3, 3)])]);
  });

  it('delivers messages before and after a fragmented one separately', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Text, payload: 'a' }),
      clientFrame({ opcode: Text, fin: false, payload: 'b' }),
      clientFrame({ opcode: Continuation, payload: 'c' }),
      clientFrame({ opcode: Binary, payload: 'd' }),
    );
    assert.deepEqual(
      h.rec.messages().map((m) => [m.data.toString(), m.isBinary]),
      [['a', false], ['bc', false], ['d', true]],
    );
  });

  it('accepts empty fragments anywhere in a message', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Text, fin: false }),
      clientFrame({ opcode: Continuation, fin: false, payload: 'ab' }),
      clientFrame({ opcode: Continuation, fin: false }),
      clientFrame({ opcode: Continuation, fin: false, payload: 'c' }),
      clientFrame({ opcode: Continuation, fin: true }),
    );
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), ['abc']);
  });

  it('delivers a message made only of empty fragments as an empty message', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Binary, fin: false }),
      clientFrame({ opcode: Continuation, fin: false }),
      clientFrame({ opcode: Continuation, fin: true }),
    );
    assert.deepEqual(h.rec.events, [{ type: 'message', data: Buffer.alloc(0), isBinary: true, compressed: false }]);
  });

  it('delivers a valid 4 MB message sent as 65,536 fragments of 64 bytes, intact', () => {
    const fragments = 65536;
    const data = pattern(fragments * 64, 5);
    const frames: Buffer[] = [];
    for (let i = 0; i < fragments; i++) {
      frames.push(
        clientFrame({
          opcode: i === 0 ? Binary : Continuation,
          fin: i === fragments - 1,
          payload: data.subarray(i * 64, (i + 1) * 64),
          mask: [i & 0xff, 0x5a, (i >> 8) & 0xff, 0xc3],
        }),
      );
    }
    const stream = Buffer.concat(frames);
    // Whole, then in chunks that cut headers and payloads everywhere.
    for (const chunk of [stream.length, 4099]) {
      const h = connect('server', { maxPayload: data.length });
      for (let i = 0; i < stream.length; i += chunk) h.feed(stream.subarray(i, i + chunk));
      const messages = h.rec.messages();
      assert.equal(messages.length, 1, `chunk ${chunk}`);
      assert.ok(messages[0]?.data.equals(data), `chunk ${chunk}`);
      assert.equal(h.conn.readyState, ReadyState.Open);
    }
  });

  it('accepts a million empty fragments followed by a final fragment', () => {
    const count = 1_000_000;
    // Masked empty continuation frames: 0x00 0x80 + key, 6 bytes each.
    const empty = clientFrame({ opcode: Continuation, fin: false });
    const first = clientFrame({ opcode: Text, fin: false });
    const last = clientFrame({ opcode: Continuation, fin: true, payload: 'done ✓' });
    const stream = Buffer.allocUnsafe(first.length + (count - 1) * empty.length + last.length);
    let at = first.copy(stream, 0);
    for (let i = 1; i < count; i++) at += empty.copy(stream, at);
    last.copy(stream, at);
    const h = connect('server', { maxPayload: 1024 });
    h.feed(stream);
    assert.deepEqual(h.rec.events, [{ type: 'message', data: Buffer.from('done ✓'), isBinary: false, compressed: false }]);
  });
});

describe('RFC 6455 §5.4: control frames may be injected between fragments', () => {
  it('answers a ping between fragments at once, and still delivers the message', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Text, fin: false, payload: 'Hel' }),
      clientFrame({ opcode: Ping, payload: 'are you there' }),
    );
    const pong = onlyFrame(h.sent());
    assert.equal(pong.opcode, Pong);
    assert.deepEqual(pong.payload, Buffer.from('are you there'));
    h.feed(clientFrame({ opcode: Continuation, payload: 'lo' }));
    assert.deepEqual(h.rec.events, [
      { type: 'ping', payload: Buffer.from('are you there') },
      { type: 'message', data: Buffer.from('Hello'), isBinary: false, compressed: false },
    ]);
  });

  it('accepts pongs between fragments', () => {
    const h = connect('client');
    h.feed(
      serverFrame({ opcode: Binary, fin: false, payload: 'a' }),
      serverFrame({ opcode: Pong, payload: 'p1' }),
      serverFrame({ opcode: Continuation, fin: false, payload: 'b' }),
      serverFrame({ opcode: Pong }),
      serverFrame({ opcode: Continuation, fin: true, payload: 'c' }),
    );
    assert.deepEqual(h.rec.events, [
      { type: 'pong', payload: Buffer.from('p1') },
      { type: 'pong', payload: Buffer.alloc(0) },
      { type: 'message', data: Buffer.from('abc'), isBinary: true, compressed: false },
    ]);
  });

  it('accepts a control frame split across chunks between fragments', () => {
    const h = connect('server');
    const ping = clientFrame({ opcode: Ping, payload: pattern(100) });
    h.feed(clientFrame({ opcode: Binary, fin: false, payload: 'x' }), ping.subarray(0, 50));
    h.feed(ping.subarray(50), clientFrame({ opcode: Continuation, payload: 'y' }));
    assert.deepEqual(h.rec.events, [
      { type: 'ping', payload: pattern(100) },
      { type: 'message', data: Buffer.from('xy'), isBinary: true, compressed: false },
    ]);
  });

  it('a close between fragments ends the connection; the unfinished message is never delivered', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Text, fin: false, payload: 'never ' }),
      clientFrame({ opcode: Close, payload: closePayload(1001, 'bye') }),
      clientFrame({ opcode: Continuation, payload: 'delivered' }),
    );
    assert.deepEqual(h.rec.events, [{ type: 'close', code: 1001, reason: 'bye' }]);
    assert.equal(closeFrameOf(onlyFrame(h.sent())).code, 1001);
    assert.equal(h.conn.readyState, ReadyState.Closed);
  });
});

describe('RFC 6455 §5.4: fragments must follow the sequence first, continuation..., final', () => {
  it('fails with 1002 for a continuation frame when no message was started', () => {
    for (const fin of [true, false]) {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Continuation, fin, payload: 'orphan' }));
      assert.deepEqual(h.rec.messages(), []);
      assertFailedWith(h, 1002);
    }
  });

  it('fails with 1002 for a continuation frame after a message was completed', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Text, fin: false, payload: 'a' }),
      clientFrame({ opcode: Continuation, fin: true, payload: 'b' }),
      clientFrame({ opcode: Continuation, fin: true, payload: 'c' }),
    );
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), ['ab']);
    assertFailedWith(h, 1002);
  });

  it('fails with 1002 for a continuation frame after an unfragmented message', () => {
    const h = connect('client');
    h.feed(serverFrame({ opcode: Binary, payload: 'a' }), serverFrame({ opcode: Continuation, payload: 'b' }));
    assertFailedWith(h, 1002);
  });

  for (const [first, next] of [
    [Text, Text],
    [Text, Binary],
    [Binary, Text],
    [Binary, Binary],
  ] as const) {
    for (const fin of [true, false]) {
      it(`fails with 1002 for a new ${next === Text ? 'text' : 'binary'} frame (FIN=${fin ? 1 : 0}) while a ${first === Text ? 'text' : 'binary'} message is in progress`, () => {
        const h = connect('server');
        h.feed(clientFrame({ opcode: first, fin: false, payload: 'a' }), clientFrame({ opcode: next, fin, payload: 'b' }));
        assert.deepEqual(h.rec.messages(), []);
        assertFailedWith(h, 1002);
      });
    }
  }

  it('fails with 1002 for a new data frame after a message that started with an empty fragment', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false }), clientFrame({ opcode: Text, payload: 'x' }));
    assertFailedWith(h, 1002);
  });
});

describe('RFC 6455 §10.4: maxPayload bounds the whole message, not each fragment', () => {
  it('fails with 1009 as soon as a fragment header takes the message over the limit', () => {
    const h = connect('server', { maxPayload: 100 });
    h.feed(
      clientFrame({ opcode: Binary, fin: false, payload: pattern(60) }),
      buildHeader({ opcode: Continuation, mask: RFC_MASK, declaredLength: 41 }),
    );
    assert.deepEqual(h.rec.messages(), []);
    assertFailedWith(h, 1009);
  });

  it('fails with 1009 for many small fragments adding up past the limit', () => {
    const h = connect('server', { maxPayload: 1000 });
    h.feed(clientFrame({ opcode: Text, fin: false, payload: 'x'.repeat(10) }));
    for (let i = 0; i < 99; i++) h.feed(clientFrame({ opcode: Continuation, fin: false, payload: 'x'.repeat(10) }));
    assert.equal(h.rec.failCode(), undefined, 'exactly 1000 bytes so far');
    h.feed(buildHeader({ opcode: Continuation, mask: RFC_MASK, declaredLength: 1 }));
    assertFailedWith(h, 1009);
  });

  it('accepts a fragmented message of exactly maxPayload bytes, and counts the next message from zero', () => {
    const h = connect('server', { maxPayload: 100 });
    h.feed(
      clientFrame({ opcode: Binary, fin: false, payload: pattern(60) }),
      clientFrame({ opcode: Continuation, fin: true, payload: pattern(40) }),
      clientFrame({ opcode: Binary, fin: false, payload: pattern(50) }),
      clientFrame({ opcode: Continuation, fin: true, payload: pattern(50) }),
    );
    assert.deepEqual(h.rec.messages().map((m) => m.data.length), [100, 100]);
    assert.equal(h.conn.readyState, ReadyState.Open);
  });
});
