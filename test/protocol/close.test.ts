/**
 * RFC 6455 §5.5.1 (close), §7 (closing the connection), §7.4 (status codes).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CloseCode,
  Opcode,
  ReadyState,
  decodeClosePayload,
  encodeClosePayload,
  isValidWireCloseCode,
  ProtocolError,
} from '../../src/protocol/index.js';
import {
  assertFailedWith,
  clientFrame,
  closeFrameOf,
  closePayload,
  connect,
  frameTo,
  onlyFrame,
  serverFrame,
} from '../helpers/frames.js';

const { Text, Binary, Continuation, Close, Ping } = Opcode;

const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

/** RFC 6455 §7.4.1, §7.4.2 and the IANA registry: the codes a close frame may carry. */
function rfcAllowsOnWire(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

describe('RFC 6455 §5.5.1: the close frame body', () => {
  for (const role of ['server', 'client'] as const) {
    it(`an empty close payload is reported as 1005 and answered with an empty close frame (${role})`, () => {
      const h = connect(role);
      h.feed(frameTo(role, { opcode: Close }));
      assert.deepEqual(h.rec.events, [{ type: 'close', code: 1005, reason: '' }]);
      const reply = onlyFrame(h.sent());
      assert.equal(reply.opcode, Close);
      assert.equal(reply.payload.length, 0);
      assert.equal(reply.masked, role === 'client');
      assert.equal(h.conn.closeCode, 1005);
    });
  }

  it('fails with 1002 for a 1-byte close payload', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Close, payload: Buffer.from([0x03]) }));
    assert.deepEqual(h.rec.events.filter((e) => e.type === 'close'), []);
    assertFailedWith(h, 1002);
  });

  it('reports the code and the UTF-8 reason, and echoes both (browsers show the echoed reason to the page)', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Close, payload: closePayload(1001, 'going away — für immer 😀') }));
    assert.deepEqual(h.rec.events, [{ type: 'close', code: 1001, reason: 'going away — für immer 😀' }]);
    assert.deepEqual(closeFrameOf(onlyFrame(h.sent())), { code: 1001, reason: 'going away — für immer 😀' });
    assert.equal(h.conn.closeCode, 1001);
    assert.equal(h.conn.closeReason, 'going away — für immer 😀');
  });

  it('accepts a reason of 123 bytes, the most a control frame leaves room for', () => {
    const reason = '€'.repeat(41);
    assert.equal(Buffer.byteLength(reason), 123);
    const h = connect('client');
    h.feed(serverFrame({ opcode: Close, payload: closePayload(4000, reason) }));
    assert.deepEqual(h.rec.events, [{ type: 'close', code: 4000, reason }]);
  });

  it('fails with 1007 for a reason that is not valid UTF-8', () => {
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x61, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf]]) {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Close, payload: closePayload(1000, Uint8Array.from(bad)) }));
      assert.deepEqual(h.rec.events.filter((e) => e.type === 'close'), [], `reason ${bad}`);
      assertFailedWith(h, 1007);
    }
  });

  it('decodes a close frame whose payload arrives one byte at a time', () => {
    const h = connect('server');
    h.feedBytewise(clientFrame({ opcode: Close, payload: closePayload(3000, 'split') }));
    assert.deepEqual(h.rec.events, [{ type: 'close', code: 3000, reason: 'split' }]);
  });

  it('decodeClosePayload and encodeClosePayload agree', () => {
    assert.deepEqual(decodeClosePayload(encodeClosePayload(4999, 'ok')), { code: 4999, reason: 'ok' });
    assert.deepEqual(decodeClosePayload(encodeClosePayload(undefined, '')), { code: 1005, reason: '' });
    assert.deepEqual(encodeClosePayload(1000, 'é'), Buffer.from([0x03, 0xe8, 0xc3, 0xa9]));
    const err = decodeClosePayload(Buffer.from([0x03, 0xed]));
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.closeCode, 1002);
  });
});

describe('RFC 6455 §7.4: status codes on the wire', () => {
  it(`accepts and echoes every registered code: ${VALID_CODES.join(', ')}`, () => {
    for (const code of VALID_CODES) {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Close, payload: closePayload(code, 'why') }));
      assert.deepEqual(h.rec.events, [{ type: 'close', code, reason: 'why' }], `code ${code}`);
      assert.equal(closeFrameOf(onlyFrame(h.sent())).code, code, `code ${code}`);
    }
  });

  it('accepts and echoes every code from 3000 to 4999 (libraries, frameworks, applications)', () => {
    for (let code = 3000; code <= 4999; code++) {
      const h = connect('client');
      h.feed(serverFrame({ opcode: Close, payload: closePayload(code) }));
      assert.equal(h.rec.failCode(), undefined, `code ${code}`);
      assert.equal(closeFrameOf(onlyFrame(h.sent())).code, code, `code ${code}`);
    }
  });

  for (const code of INVALID_CODES) {
    it(`fails with 1002 for the code ${code}`, () => {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Close, payload: closePayload(code) }));
      assert.deepEqual(h.rec.events.filter((e) => e.type === 'close'), []);
      assertFailedWith(h, 1002);
    });
  }

  it('accepts exactly the codes RFC 6455 §7.4 allows, over all 65,536 values', () => {
    for (let code = 0; code <= 0xffff; code++) {
      const decoded = decodeClosePayload(closePayload(code));
      const accepted = !(decoded instanceof ProtocolError);
      assert.equal(accepted, rfcAllowsOnWire(code), `code ${code}`);
      assert.equal(isValidWireCloseCode(code), rfcAllowsOnWire(code), `code ${code}`);
      if (decoded instanceof ProtocolError) assert.equal(decoded.closeCode, 1002);
    }
  });
});

describe('RFC 6455 §5.5.1: nothing is read after a close frame', () => {
  it('discards data that follows the close frame in the same chunk', () => {
    const h = connect('server');
    h.feed(
      Buffer.concat([
        clientFrame({ opcode: Text, payload: 'before' }),
        clientFrame({ opcode: Close, payload: closePayload(1000) }),
        clientFrame({ opcode: Text, payload: 'after' }),
        clientFrame({ opcode: Ping, payload: 'after' }),
        clientFrame({ opcode: Close, payload: closePayload(1000) }),
      ]),
    );
    assert.deepEqual(h.rec.events.map((e) => e.type), ['message', 'close']);
    assert.deepEqual(h.sent().map((f) => f.opcode), [Close], 'only the close reply, no pong');
  });

  it('discards data in later chunks, even garbage', () => {
    const h = connect('client');
    h.feed(serverFrame({ opcode: Close }));
    h.feed(serverFrame({ opcode: Binary, payload: 'late' }), Buffer.from([0xff, 0xff, 0xff]));
    assert.deepEqual(h.rec.events, [{ type: 'close', code: 1005, reason: '' }]);
    assert.equal(h.rec.failCode(), undefined);
  });

  it('discards a fragmented message left unfinished by the close', () => {
    const h = connect('server');
    h.feed(
      clientFrame({ opcode: Binary, fin: false, payload: 'part' }),
      clientFrame({ opcode: Close, payload: closePayload(1000) }),
      clientFrame({ opcode: Continuation, payload: 'rest' }),
    );
    assert.deepEqual(h.rec.events.map((e) => e.type), ['close']);
  });
});

describe('RFC 6455 §5.5.1: nothing is sent after a close frame', () => {
  it('send*, ping and pong return false and write nothing once close() was called', () => {
    for (const role of ['server', 'client'] as const) {
      const h = connect(role);
      assert.equal(h.conn.close(1000), true);
      assert.deepEqual(h.sent().map((f) => f.opcode), [Close]);
      assert.equal(h.conn.sendText('x'), false);
      assert.equal(h.conn.sendBytes(Buffer.from('x'), true), false);
      assert.equal(h.conn.sendBytes(Buffer.from('x'), false), false);
      assert.equal(h.conn.sendFragment(Text, Buffer.from('x'), false), false);
      assert.equal(h.conn.sendRaw(Buffer.from([0x81, 0x01, 0x78])), false);
      assert.equal(h.conn.ping(Buffer.from('x')), false);
      assert.equal(h.conn.pong(Buffer.from('x')), false);
      assert.equal(h.conn.close(1000), false, 'a second close frame is never sent');
      assert.equal(h.conn.writer.take(), null);
    }
  });

  it('send* return false once the peer\'s close was answered', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Close, payload: closePayload(1000) }));
    h.sent();
    assert.equal(h.conn.sendText('x'), false);
    assert.equal(h.conn.close(1000), false);
    assert.equal(h.conn.writer.take(), null);
  });

  it('a ping received after our close is reported but not answered', () => {
    const h = connect('server');
    h.conn.close(1000);
    h.sent();
    h.feed(clientFrame({ opcode: Ping, payload: 'late' }));
    assert.deepEqual(h.rec.events, [{ type: 'ping', payload: Buffer.from('late') }]);
    assert.equal(h.conn.writer.take(), null);
  });

  it('failing after our close sends no second close frame', () => {
    const h = connect('server');
    h.conn.close(1000);
    h.sent();
    h.feed(clientFrame({ opcode: 0x3 }));
    assert.equal(h.rec.failCode(), 1002);
    assert.equal(h.conn.writer.take(), null);
    assert.equal(h.conn.readyState, ReadyState.Closed);
  });
});

describe('RFC 6455 §5.5.1: an endpoint MAY delay its close until its current message is sent', () => {
  it('with holdClose, the answer to the peer\'s close waits for releaseClose(), after the sends made meanwhile', () => {
    const h = connect('client');
    h.conn.holdClose = true;
    h.feed(serverFrame({ opcode: Close, payload: closePayload(4001) }));
    assert.deepEqual(h.sent(), [], 'the answer is held');
    assert.equal(h.conn.sendBytes(Buffer.from('late echo'), true), true);
    h.conn.releaseClose();
    const frames = h.sent();
    assert.deepEqual(frames.map((f) => f.opcode), [Binary, Close]);
    assert.equal(closeFrameOf(frames[1]!).code, 4001);
    assert.equal(h.conn.sendText('x'), false, 'nothing is sent after the close');
    assert.equal(h.conn.readyState, ReadyState.Closed);
  });

  it('with holdClose, a failure\'s close frame waits for releaseClose() too; input stops at once', () => {
    const h = connect('client');
    h.conn.holdClose = true;
    h.feed(serverFrame({ opcode: 0x3 }), serverFrame({ opcode: Text, payload: 'ignored' }));
    assert.equal(h.rec.failCode(), 1002);
    assert.deepEqual(h.rec.events.filter((e) => e.type === 'message'), []);
    assert.equal(h.conn.sendText('queued before the failure'), true);
    h.conn.releaseClose();
    const frames = h.sent();
    assert.deepEqual(frames.map((f) => f.opcode), [Text, Close]);
    assert.equal(closeFrameOf(frames[1]!).code, 1002);
    h.conn.releaseClose();
    assert.equal(h.conn.writer.take(), null, 'released once');
  });
});

describe('RFC 6455 §7.1: the closing handshake', () => {
  it('we close first: Open → Closing (close sent) → Closed when the peer answers', () => {
    const h = connect('server');
    assert.equal(h.conn.readyState, ReadyState.Open);
    assert.equal(h.conn.wantsTransportClose, false);
    h.conn.close(1000, 'done');
    assert.deepEqual(closeFrameOf(onlyFrame(h.sent())), { code: 1000, reason: 'done' });
    assert.equal(h.conn.readyState, ReadyState.Closing);
    assert.equal(h.conn.closeSent, true);
    assert.equal(h.conn.closeReceived, false);
    assert.equal(h.conn.wantsTransportClose, false, 'wait for the peer\'s close frame');
    h.feed(clientFrame({ opcode: Close, payload: closePayload(1000) }));
    assert.equal(h.conn.readyState, ReadyState.Closed);
    assert.equal(h.conn.closeReceived, true);
    assert.equal(h.conn.wantsTransportClose, true);
    assert.deepEqual(h.rec.events, [{ type: 'close', code: 1000, reason: '' }]);
    assert.equal(h.conn.writer.take(), null, 'no second close frame');
  });

  it('while Closing (close sent), data from the peer is still delivered', () => {
    const h = connect('client');
    h.conn.close(4001);
    h.feed(serverFrame({ opcode: Text, payload: 'in flight' }), serverFrame({ opcode: Close, payload: closePayload(4001) }));
    assert.deepEqual(h.rec.events.map((e) => e.type), ['message', 'close']);
    assert.equal(h.conn.readyState, ReadyState.Closed);
  });

  for (const role of ['server', 'client'] as const) {
    it(`the peer closes first (${role}): the reply is queued at once and the connection is Closed`, () => {
      const h = connect(role);
      h.feed(frameTo(role, { opcode: Close, payload: closePayload(1000, 'bye') }));
      assert.equal(h.conn.readyState, ReadyState.Closed);
      assert.equal(h.conn.closeReceived, true);
      assert.equal(h.conn.closeSent, true);
      assert.equal(h.conn.wantsTransportClose, true);
      const reply = onlyFrame(h.sent());
      assert.equal(reply.masked, role === 'client');
      assert.equal(closeFrameOf(reply).code, 1000);
    });
  }

  it('close() without a code sends an empty close frame; the reported code is 1005', () => {
    const h = connect('server');
    h.conn.close();
    assert.equal(onlyFrame(h.sent()).payload.length, 0);
    assert.equal(h.conn.closeCode, 1005);
  });

  it('close(code, reason) sends the code and the reason', () => {
    const h = connect('client');
    h.conn.close(4999, 'ünïcödé');
    const f = onlyFrame(h.sent());
    assert.equal(f.masked, true);
    assert.deepEqual(closeFrameOf(f), { code: 4999, reason: 'ünïcödé' });
  });

  it('fail(code, reason) sends that close frame, closes at once and ignores further input', () => {
    const h = connect('server');
    h.conn.fail(1011, 'internal error');
    assert.deepEqual(closeFrameOf(onlyFrame(h.sent())), { code: 1011, reason: 'internal error' });
    assert.equal(h.conn.readyState, ReadyState.Closed);
    assert.equal(h.conn.wantsTransportClose, true);
    h.feed(clientFrame({ opcode: Text, payload: 'ignored' }));
    assert.deepEqual(h.rec.events, []);
  });
});

describe('RFC 6455 §7.4, WHATWG close(): close() arguments', () => {
  for (const code of [...INVALID_CODES, -1, 1000.5, NaN, 70000]) {
    it(`close(${code}) throws RangeError and sends nothing`, () => {
      const h = connect('server');
      assert.throws(() => h.conn.close(code), RangeError);
      assert.equal(h.conn.writer.take(), null);
      assert.equal(h.conn.readyState, ReadyState.Open);
    });
  }

  it('close() accepts every code that may be sent', () => {
    for (const code of [...VALID_CODES, 3000, 3999, 4000, 4999]) {
      const h = connect('server');
      assert.equal(h.conn.close(code), true);
      assert.equal(closeFrameOf(onlyFrame(h.sent())).code, code);
    }
  });

  it('close() throws RangeError for a reason over 123 bytes, counted in UTF-8', () => {
    const h = connect('server');
    assert.throws(() => h.conn.close(1000, 'x'.repeat(124)), RangeError);
    assert.throws(() => h.conn.close(1000, '€'.repeat(42)), RangeError);
    assert.equal(h.conn.writer.take(), null);
    assert.equal(h.conn.close(1000, '€'.repeat(41)), true);
    assert.equal(onlyFrame(h.sent()).payload.length, 125);
  });

  it('close() throws RangeError for a reason without a code', () => {
    const h = connect('server');
    assert.throws(() => h.conn.close(undefined, 'why'), RangeError);
    assert.equal(h.conn.writer.take(), null);
  });

  it('close() validates its arguments even after a close frame was sent', () => {
    const h = connect('server');
    h.conn.close(1000);
    assert.throws(() => h.conn.close(1005), RangeError);
  });
});

describe('RFC 6455 §7.4.1: reserved codes are reported, never sent', () => {
  it('CloseCode names the codes of §7.4.1', () => {
    assert.equal(CloseCode.Normal, 1000);
    assert.equal(CloseCode.NoStatus, 1005);
    assert.equal(CloseCode.Abnormal, 1006);
    assert.equal(CloseCode.MessageTooBig, 1009);
    assert.equal(CloseCode.TlsHandshake, 1015);
  });

  it('a connection that never closed reports 1006', () => {
    const h = connect('server');
    assert.equal(h.conn.closeCode, 1006);
  });
});

describe('RFC 6455 §5.5: a failure reason is cut to fit a control frame', () => {
  it('fail() with a 200-byte reason sends a close payload of at most 125 bytes, cut on a character boundary', async () => {
    const { Connection, truncateUtf8 } = await import('../../src/protocol/connection.js');
    const events = { onMessage() {}, onPing() {}, onPong() {}, onPeerClose() {}, onFail() {} };
    const conn = new Connection(events, { role: 'server', maxPayload: 1024 });
    conn.fail(1011, 'é'.repeat(100));
    const out = conn.writer.take();
    const bytes = Buffer.concat(out === null ? [] : Array.isArray(out) ? out : [out]);
    assert.equal(bytes[0], 0x88);
    const len = bytes[1]! & 0x7f;
    assert.ok(len <= 125, `close payload is ${len} bytes`);
    assert.equal(bytes.readUInt16BE(2), 1011);
    assert.equal(bytes.subarray(4, 2 + len).toString('utf8'), 'é'.repeat(61));
    assert.equal(truncateUtf8('abc', 2), 'ab');
    assert.equal(truncateUtf8('a€', 3), 'a');
  });
});
