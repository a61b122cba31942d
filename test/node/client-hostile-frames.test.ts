/**
 * Hostile servers after the opening handshake: frames RFC 6455 §5 forbids a
 * server to send. Each one must make the client "_Fail the WebSocket
 * Connection_" (§7.1.7): a masked close frame with the code §7.4.1 names
 * (1002 protocol error, 1007 invalid data, 1009 too big), no further
 * processing of the server's bytes (not even its close frame), and for the
 * page (WHATWG WebSockets § Feedback from the protocol) `error`, then
 * `close` with 1006 and wasClean false.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import type { WebSocketOptions } from '../../src/index.js';
import { OP, assertFailsWith, connectRaw, openRaw, type Opened } from '../helpers/client-raw.js';
import { buildFrame, closePayload, serverFrame } from '../helpers/frames.js';

const P = [1002];

/** A client that negotiated permessage-deflate with the raw server (no parameters). */
async function openDeflate(t: TestContext, options: WebSocketOptions = {}): Promise<Opened> {
  const o = await connectRaw(t, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } }, options);
  await o.log.first('open');
  assert.equal(o.ws.extensions, 'permessage-deflate');
  return o;
}

async function fails(t: TestContext, bytes: Buffer, codes: readonly number[], options: WebSocketOptions = {}): Promise<Opened> {
  const o = await openRaw(t, options);
  await assertFailsWith(o, bytes, codes);
  return o;
}

/** A raw-deflated message body (RFC 7692 §7.2.1: the trailing 00 00 ff ff removed). */
function deflated(data: Buffer): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

describe('RFC 6455 §5.1, §5.3: a masked frame from the server → 1002', () => {
  for (const [name, opcode, payload] of [
    ['text', OP.TEXT, 'hidden'],
    ['binary', OP.BINARY, Buffer.from([1, 2, 3])],
    ['ping', OP.PING, 'p'],
    ['close', OP.CLOSE, closePayload(1000)],
  ] as const) {
    it(`a masked ${name} frame; nothing is dispatched and no pong is sent`, async (t) => {
      const o = await openRaw(t);
      const frame = buildFrame({ opcode, payload, mask: [0x11, 0x22, 0x33, 0x44] });
      const sent = await assertFailsWith(o, Buffer.concat([frame, serverFrame({ opcode: OP.TEXT, payload: 'after' })]), P);
      assert.equal(sent.length, 1, 'only the close frame was sent');
      assert.equal(o.log.all('message').length, 0);
    });
  }
});

describe('RFC 6455 §5.2: reserved bits and opcodes → 1002', () => {
  for (const bit of ['rsv1', 'rsv2', 'rsv3'] as const) {
    it(`${bit} on a text frame without an extension that defines it`, async (t) => {
      await fails(t, serverFrame({ opcode: OP.TEXT, [bit]: true, payload: 'x' }), P);
    });
  }
  it('rsv2 on a ping', async (t) => {
    await fails(t, serverFrame({ opcode: OP.PING, rsv2: true, payload: 'x' }), P);
  });
  for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    it(`reserved opcode 0x${opcode.toString(16)}`, async (t) => {
      const o = await fails(t, serverFrame({ opcode, payload: 'x' }), P);
      assert.equal(o.log.all('message').length, 0);
    });
  }
  it('RSV1 on a ping with permessage-deflate negotiated (RFC 7692 §6: data frames only)', async (t) => {
    const o = await openDeflate(t);
    await assertFailsWith(o, serverFrame({ opcode: OP.PING, rsv1: true, payload: 'x' }), P);
  });
  it('RSV1 on a continuation frame with permessage-deflate negotiated (RFC 7692 §6.1: first frame only)', async (t) => {
    const o = await openDeflate(t);
    const body = deflated(Buffer.from('hello hello hello'));
    const bytes = Buffer.concat([
      serverFrame({ opcode: OP.TEXT, fin: false, rsv1: true, payload: body.subarray(0, 3) }),
      serverFrame({ opcode: OP.CONTINUATION, rsv1: true, payload: body.subarray(3) }),
    ]);
    await assertFailsWith(o, bytes, P);
    assert.equal(o.log.all('message').length, 0);
  });
});

describe('RFC 6455 §5.5: control frames that are fragmented or over 125 bytes → 1002', () => {
  for (const [name, opcode] of [['ping', OP.PING], ['pong', OP.PONG], ['close', OP.CLOSE]] as const) {
    it(`a fragmented ${name} (FIN clear)`, async (t) => {
      await fails(t, serverFrame({ opcode, fin: false, payload: closePayload(1000) }), P);
    });
    it(`a ${name} of 126 bytes`, async (t) => {
      await fails(t, serverFrame({ opcode, payload: Buffer.concat([closePayload(1000), Buffer.alloc(124, 0x61)]) }), P);
    });
  }
  it('a ping whose 64-bit length says 2^32 (sent as a header only)', async (t) => {
    await fails(t, serverFrame({ opcode: OP.PING, declaredLength: 2n ** 32n }), P);
  });
});

describe('RFC 6455 §5.4: fragmentation out of order → 1002', () => {
  it('a continuation frame without a message started', async (t) => {
    await fails(t, serverFrame({ opcode: OP.CONTINUATION, payload: 'orphan' }), P);
  });
  it('an unfinished continuation frame without a message started', async (t) => {
    await fails(t, serverFrame({ opcode: OP.CONTINUATION, fin: false, payload: 'orphan' }), P);
  });
  for (const [first, second] of [[OP.TEXT, OP.TEXT], [OP.TEXT, OP.BINARY], [OP.BINARY, OP.TEXT], [OP.BINARY, OP.BINARY]] as const) {
    it(`a new data frame (opcode ${second}) inside a fragmented message (opcode ${first})`, async (t) => {
      const o = await fails(
        t,
        Buffer.concat([serverFrame({ opcode: first, fin: false, payload: 'start' }), serverFrame({ opcode: second, payload: 'intruder' })]),
        P,
      );
      assert.equal(o.log.all('message').length, 0);
    });
  }
});

describe('RFC 6455 §8.1: text that is not UTF-8 → 1007', () => {
  const bad: [string, Buffer[]][] = [
    ['a lone continuation byte', [Buffer.from([0x61, 0x80])]],
    ['0xff', [Buffer.from([0xff])]],
    ['an overlong "/" (C0 AF)', [Buffer.from([0xc0, 0xaf])]],
    ['a UTF-16 surrogate (ED A0 80)', [Buffer.from([0xed, 0xa0, 0x80])]],
    ['a code point above U+10FFFF (F4 90 80 80)', [Buffer.from([0xf4, 0x90, 0x80, 0x80])]],
    ['a message ending inside a code point', [Buffer.from([0x61, 0xe2, 0x82])]],
    ['bad bytes in the second fragment', [Buffer.from('valid '), Buffer.from([0xc3, 0x28])]],
    ['a code point split across fragments and never finished', [Buffer.from([0xf0, 0x9f]), Buffer.from([0x98])]],
  ];
  for (const [name, parts] of bad) {
    it(name, async (t) => {
      const frames = parts.map((p, i) =>
        serverFrame({ opcode: i === 0 ? OP.TEXT : OP.CONTINUATION, fin: i === parts.length - 1, payload: p }),
      );
      const o = await fails(t, Buffer.concat(frames), [1007]);
      assert.equal(o.log.all('message').length, 0);
    });
  }
  it('a code point split across fragments with a ping between is fine', async (t) => {
    const o = await openRaw(t);
    o.peer.write(
      Buffer.concat([
        serverFrame({ opcode: OP.TEXT, fin: false, payload: Buffer.from([0x61, 0xf0, 0x9f]) }),
        serverFrame({ opcode: OP.PING, payload: 'mid' }),
        serverFrame({ opcode: OP.CONTINUATION, payload: Buffer.from([0x98, 0x80, 0x62]) }),
      ]),
    );
    assert.equal(await o.log.message(1), 'a\u{1f600}b');
  });
});

describe('RFC 6455 §5.5.1, §7.4: close frames with a bad body → 1002', () => {
  it('a 1-byte close body', async (t) => {
    await fails(t, serverFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) }), P);
  });
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    it(`close code ${code} (never valid on the wire)`, async (t) => {
      await fails(t, serverFrame({ opcode: OP.CLOSE, payload: closePayload(code, 'bad') }), P);
    });
  }
});

describe('RFC 6455 §7.4.1 (1009) and §5.2: lengths over maxPayload', () => {
  it('a frame header announcing maxPayload + 1 fails without waiting for the payload', async (t) => {
    await fails(t, serverFrame({ opcode: OP.BINARY, declaredLength: 1025 }), [1009], { maxPayload: 1024 });
  });
  it('a 64-bit length with the top bit set (2^63) fails', async (t) => {
    await fails(t, serverFrame({ opcode: OP.BINARY, declaredLength: 2n ** 63n }), [1002, 1009]);
  });
  it('a 64-bit length of 2^64 - 1 fails', async (t) => {
    await fails(t, serverFrame({ opcode: OP.TEXT, declaredLength: 2n ** 64n - 1n }), [1002, 1009]);
  });
  it('a fragmented message whose fragments each fit but whose total does not → 1009', async (t) => {
    const part = Buffer.alloc(600, 0x61);
    const o = await fails(
      t,
      Buffer.concat([serverFrame({ opcode: OP.BINARY, fin: false, payload: part }), serverFrame({ opcode: OP.CONTINUATION, payload: part })]),
      [1009],
      { maxPayload: 1024 },
    );
    assert.equal(o.log.all('message').length, 0);
  });
  it('a 12 KiB compressed message that inflates to 16 MiB, over a 1 MiB maxPayload → 1009', async (t) => {
    const o = await openDeflate(t, { maxPayload: 1024 * 1024 });
    const bomb = deflated(Buffer.alloc(16 * 1024 * 1024));
    assert.ok(bomb.length < 32 * 1024);
    await assertFailsWith(o, serverFrame({ opcode: OP.BINARY, rsv1: true, payload: bomb }), [1009]);
    assert.equal(o.log.all('message').length, 0);
  });
  it('a compressed message that does not inflate fails (1007, as README documents)', async (t) => {
    const o = await openDeflate(t);
    await assertFailsWith(o, serverFrame({ opcode: OP.TEXT, rsv1: true, payload: Buffer.from([0xff, 0xff, 0xff, 0xff]) }), [1007]);
  });
});

describe('RFC 6455 §7.1.7: after failing, nothing more the server sent is processed', () => {
  it('a message before the violation in the same packet is delivered; those after it are not', async (t) => {
    const o = await openRaw(t);
    o.ws.binaryType = 'nodebuffer';
    const bytes = Buffer.concat([
      serverFrame({ opcode: OP.TEXT, payload: 'before' }),
      serverFrame({ opcode: 0x3 }),
      serverFrame({ opcode: OP.TEXT, payload: 'after' }),
      serverFrame({ opcode: OP.PING, payload: 'no pong for me' }),
    ]);
    const sent = await assertFailsWith(o, bytes, P);
    assert.equal(sent.length, 1, 'only the close frame was sent');
    await o.peer.waitClosed();
    assert.equal(o.peer.unread, 0, 'nothing was sent after the close frame');
    assert.deepEqual(o.log.types(), ['open', 'message', 'error', 'close']);
    assert.equal(o.log.all('message')[0]?.data, 'before');
  });
});
