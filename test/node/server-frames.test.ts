/**
 * RFC 6455 §5 (framing) and §7 (closing) on the server over real loopback
 * sockets: raw TCP peers complete the handshake, then send hand-made frames,
 * masked as a client's must be, and read back the server's frames byte by byte.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ProtocolError } from '../../src/protocol/errors.js';
import type { WebSocketServerOptions } from '../../src/index.js';
import { buildHeader, clientFrame, closePayload, type FrameSpec } from '../helpers/frames.js';
import { RawPeer, delay, rawOpen, upgradeRequest, withTimeout } from '../helpers/raw-client.js';
import { EventLog, Scope } from '../helpers/server-harness.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/** An echo server and one raw peer that completed the handshake. */
async function opened(t: TestContext, options: WebSocketServerOptions = {}, peerOptions: { allowHalfOpen?: boolean } = {}): Promise<{ s: Scope; peer: RawPeer; log: EventLog; port: number }> {
  const s = new Scope();
  t.after(() => s.dispose());
  const { port, log } = await s.listen(options);
  const { peer } = await rawOpen(port, {}, peerOptions);
  s.peer(peer);
  await log.first('open');
  return { s, peer, log, port };
}

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/**
 * Asserts the server failed the connection (RFC 6455 §7.1.7): a close frame
 * with `code`, then the end of the TCP stream; the error handler saw the
 * ProtocolError and the close handler reported 1006 (no close frame from the peer).
 */
async function assertFailed(peer: RawPeer, log: EventLog, code: number): Promise<void> {
  const close = await peer.readClose();
  assert.equal(close.code, code, `close frame carries ${close.code} (${close.reason}), expected ${code}`);
  await peer.waitEnd();
  assert.equal(peer.buffered, 0, 'nothing follows the close frame');
  const err = await log.first('error');
  assert.equal((err.error as ProtocolError).closeCode, code);
  const closed = await log.first('close');
  assert.equal(closed.code, 1006);
  assert.equal(log.all('message').length, 0, 'the bad message was not delivered');
}

describe('RFC 6455 §5.6: data frames are echoed', () => {
  it('text and binary, of every length encoding', async (t) => {
    const { peer } = await opened(t);
    for (const n of [0, 1, 125, 126, 65535, 65536, 200_000]) {
      const text = 'é'.repeat(n >> 1) + (n & 1 ? 'x' : '');
      await peer.send({ opcode: TEXT, payload: text });
      const f = await peer.readFrame();
      assert.deepEqual([f.fin, f.rsv, f.opcode, f.masked], [true, 0, TEXT, false]);
      assert.equal(f.payload.toString('utf8'), text);
      const bytes = pattern(n, n);
      await peer.send({ opcode: BINARY, payload: bytes });
      const g = await peer.readFrame();
      assert.deepEqual([g.fin, g.opcode, g.masked], [true, BINARY, false]);
      assert.ok(g.payload.equals(bytes), `binary of ${n} bytes`);
    }
  });

  it('a fragmented text message with code points split across fragments', async (t) => {
    const { peer, log } = await opened(t);
    const bytes = Buffer.from('añ€😀z', 'utf8');
    // One byte per fragment: every multi-byte code point is split.
    for (let i = 0; i < bytes.length; i++) {
      await peer.send({ opcode: i === 0 ? TEXT : CONT, fin: i === bytes.length - 1, payload: bytes.subarray(i, i + 1) });
    }
    const f = await peer.readFrame();
    assert.equal(f.payload.toString('utf8'), 'añ€😀z');
    assert.equal((await log.first('message')).isBinary, false);
  });

  it('control frames interleaved with a fragmented message (RFC 6455 §5.4)', async (t) => {
    const { peer } = await opened(t);
    await peer.write(
      Buffer.concat([
        clientFrame({ opcode: BINARY, fin: false, payload: 'ab' }),
        clientFrame({ opcode: PING, payload: 'mid' }),
        clientFrame({ opcode: CONT, fin: true, payload: 'cd' }),
      ]),
    );
    const pong = await peer.readFrame();
    assert.deepEqual([pong.opcode, pong.payload.toString()], [PONG, 'mid']);
    const msg = await peer.readFrame();
    assert.deepEqual([msg.opcode, msg.payload.toString()], [BINARY, 'abcd']);
  });
});

describe('RFC 6455 §5.1-§5.5: a bad frame fails the connection with its exact code', () => {
  const cases: { name: string; bytes: () => Buffer; code: number }[] = [
    { name: 'an unmasked frame → 1002 (§5.1)', bytes: () => clientFrame({ opcode: TEXT, payload: 'hi', mask: null }), code: 1002 },
    { name: 'RSV1 without an extension → 1002 (§5.2)', bytes: () => clientFrame({ opcode: TEXT, rsv1: true, payload: 'hi' }), code: 1002 },
    { name: 'RSV2 → 1002 (§5.2)', bytes: () => clientFrame({ opcode: TEXT, rsv2: true, payload: 'hi' }), code: 1002 },
    { name: 'RSV3 → 1002 (§5.2)', bytes: () => clientFrame({ opcode: BINARY, rsv3: true, payload: 'hi' }), code: 1002 },
    { name: 'reserved data opcode 0x3 → 1002 (§5.2)', bytes: () => clientFrame({ opcode: 0x3, payload: 'hi' }), code: 1002 },
    { name: 'reserved data opcode 0x7 → 1002 (§5.2)', bytes: () => clientFrame({ opcode: 0x7 }), code: 1002 },
    { name: 'reserved control opcode 0xB → 1002 (§5.2)', bytes: () => clientFrame({ opcode: 0xb }), code: 1002 },
    { name: 'reserved control opcode 0xF → 1002 (§5.2)', bytes: () => clientFrame({ opcode: 0xf, payload: 'x' }), code: 1002 },
    { name: 'a fragmented ping → 1002 (§5.5)', bytes: () => clientFrame({ opcode: PING, fin: false, payload: 'p' }), code: 1002 },
    { name: 'a ping over 125 bytes → 1002 (§5.5)', bytes: () => clientFrame({ opcode: PING, payload: pattern(126) }), code: 1002 },
    { name: 'a close frame over 125 bytes → 1002 (§5.5)', bytes: () => clientFrame({ opcode: CLOSE, payload: closePayload(1000, 'r'.repeat(124)) }), code: 1002 },
    { name: 'a continuation with no message started → 1002 (§5.4)', bytes: () => clientFrame({ opcode: CONT, payload: 'x' }), code: 1002 },
    {
      name: 'a new data frame inside a fragmented message → 1002 (§5.4)',
      bytes: () => Buffer.concat([clientFrame({ opcode: TEXT, fin: false, payload: 'a' }), clientFrame({ opcode: TEXT, payload: 'b' })]),
      code: 1002,
    },
    {
      name: 'a 64-bit length with its most significant bit set → 1002 (§5.2)',
      bytes: () => buildHeader({ opcode: BINARY, mask: [1, 2, 3, 4], declaredLength: 1n << 63n, lengthEncoding: 64 }),
      code: 1002,
    },
    { name: 'invalid UTF-8 in a text frame → 1007 (§8.1)', bytes: () => clientFrame({ opcode: TEXT, payload: Buffer.from([0x61, 0xff, 0x62]) }), code: 1007 },
    { name: 'a UTF-16 surrogate encoded in UTF-8 → 1007 (§8.1)', bytes: () => clientFrame({ opcode: TEXT, payload: Buffer.from([0xed, 0xa0, 0x80]) }), code: 1007 },
    { name: 'an overlong encoding → 1007 (§8.1)', bytes: () => clientFrame({ opcode: TEXT, payload: Buffer.from([0xc0, 0xaf]) }), code: 1007 },
    {
      name: 'a text message ending inside a code point → 1007 (§8.1)',
      bytes: () => Buffer.concat([clientFrame({ opcode: TEXT, fin: false, payload: 'a' }), clientFrame({ opcode: CONT, payload: Buffer.from([0xe2, 0x82]) })]),
      code: 1007,
    },
    { name: 'a close frame of 1 byte → 1002 (§5.5.1)', bytes: () => clientFrame({ opcode: CLOSE, payload: Buffer.from([0x03]) }), code: 1002 },
    { name: 'a close reason that is not UTF-8 → 1007 (§5.5.1)', bytes: () => clientFrame({ opcode: CLOSE, payload: closePayload(1000, Buffer.from([0xff])) }), code: 1007 },
  ];
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    cases.push({ name: `close code ${code} → 1002 (§7.4)`, bytes: () => clientFrame({ opcode: CLOSE, payload: closePayload(code) }), code: 1002 });
  }
  for (const c of cases) {
    it(c.name, async (t) => {
      const { peer, log } = await opened(t);
      await peer.write(c.bytes());
      await assertFailed(peer, log, c.code);
    });
  }

  it('invalid UTF-8 fails the connection before the rest of the frame is sent (§8.1)', async (t) => {
    const { peer, log } = await opened(t);
    const payload = Buffer.alloc(1000, 0x61);
    payload[10] = 0xff;
    const frame = clientFrame({ opcode: TEXT, payload });
    // The header and the first 20 payload bytes only; the other 980 never go out.
    await peer.write(frame.subarray(0, 6 + 4 + 20));
    await assertFailed(peer, log, 1007);
  });

  it('invalid UTF-8 in a first fragment fails before the message is finished (§8.1)', async (t) => {
    const { peer, log } = await opened(t);
    await peer.send({ opcode: TEXT, fin: false, payload: Buffer.from([0x61, 0x62, 0xc3, 0x28]) });
    await assertFailed(peer, log, 1007);
  });

  it('invalid UTF-8 split across TCP writes fails at the byte that breaks it (§8.1)', async (t) => {
    const { peer, log } = await opened(t);
    peer.socket.setNoDelay(true);
    const frame = clientFrame({ opcode: TEXT, payload: Buffer.from([0x61, 0xf0, 0x9f, 0x28, 0x61, 0x61]) });
    await peer.write(frame.subarray(0, 6 + 3)); // header, "a", then the first two bytes of a 4-byte sequence
    await delay(10);
    await peer.write(frame.subarray(9, 10)); // 0x28 cannot continue it
    await assertFailed(peer, log, 1007);
  });

  it('a header announcing more than maxPayload → 1009 before the payload is sent (§10.4)', async (t) => {
    const { peer, log } = await opened(t, { maxPayload: 1024 });
    await peer.write(buildHeader({ opcode: BINARY, mask: [1, 2, 3, 4], declaredLength: 1025 }));
    await assertFailed(peer, log, 1009);
  });

  it('fragments adding up to more than maxPayload → 1009 at the header that crosses it (§10.4)', async (t) => {
    const { peer, log } = await opened(t, { maxPayload: 1024 });
    await peer.send({ opcode: TEXT, fin: false, payload: 'a'.repeat(1000) });
    await peer.write(buildHeader({ opcode: CONT, mask: [1, 2, 3, 4], declaredLength: 25 }));
    await assertFailed(peer, log, 1009);
  });

  it('a message of exactly maxPayload is accepted', async (t) => {
    const { peer } = await opened(t, { maxPayload: 1024 });
    await peer.send({ opcode: BINARY, fin: false, payload: pattern(1000) });
    await peer.send({ opcode: CONT, fin: true, payload: pattern(24) });
    const f = await peer.readFrame();
    assert.equal(f.payload.length, 1024);
  });
});

describe('RFC 6455 §5.5.2-§5.5.3: ping and pong', () => {
  it('a ping is answered by a pong with the same payload', async (t) => {
    const { peer, log } = await opened(t);
    for (const payload of [Buffer.alloc(0), Buffer.from('hello'), pattern(125)]) {
      await peer.send({ opcode: PING, payload });
      const f = await peer.readFrame();
      assert.deepEqual([f.fin, f.opcode, f.masked], [true, PONG, false]);
      assert.ok(f.payload.equals(payload));
    }
    assert.equal((await log.nth('ping', 3)).payload.length, 125);
  });

  it('an unsolicited pong reaches the pong handler and is not answered', async (t) => {
    const { peer, log } = await opened(t);
    await peer.send({ opcode: PONG, payload: 'beat' });
    assert.equal((await log.first('pong')).payload.toString(), 'beat');
    // The next answer is the echo of a message sent after: nothing came for the pong.
    await peer.send({ opcode: TEXT, payload: 'after' });
    const f = await peer.readFrame();
    assert.deepEqual([f.opcode, f.payload.toString()], [TEXT, 'after']);
  });
});

describe('RFC 6455 §5.5.1, §7.1: the closing handshake started by the peer', () => {
  it('a close 1000 is echoed with 1000, and the server closes TCP first', async (t) => {
    // allowHalfOpen: our side stays open, so seeing 'end' proves the server's FIN came first.
    const { peer, log } = await opened(t, {}, { allowHalfOpen: true });
    await peer.sendClose(1000, 'bye');
    const close = await peer.readClose();
    assert.equal(close.code, 1000);
    await peer.waitEnd();
    assert.equal(peer.socket.writableEnded, false, 'the client had not ended its side');
    peer.socket.end();
    const closed = await log.first('close');
    assert.deepEqual([closed.code, closed.reason], [1000, 'bye']);
    assert.equal(closed.ws.readyState, 3);
  });

  it('every code that may be sent is echoed as it came', async (t) => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999]) {
      const { peer, log } = await opened(t);
      await peer.sendClose(code, 'r');
      assert.equal((await peer.readClose()).code, code);
      await peer.waitEnd();
      assert.equal((await log.first('close')).code, code);
    }
  });

  it('an empty close is answered with an empty close; the handler sees 1005', async (t) => {
    const { peer, log } = await opened(t);
    await peer.send({ opcode: CLOSE });
    const close = await peer.readClose();
    assert.equal(close.code, undefined);
    await peer.waitEnd();
    assert.equal((await log.first('close')).code, 1005);
  });

  it('nothing after the close frame is read (§5.5.1)', async (t) => {
    const { peer, log } = await opened(t);
    await peer.write(Buffer.concat([clientFrame({ opcode: CLOSE, payload: closePayload(1000) }), clientFrame({ opcode: TEXT, payload: 'late' })]));
    assert.equal((await peer.readClose()).code, 1000);
    await peer.waitEnd();
    assert.equal(peer.buffered, 0);
    await log.first('close');
    assert.equal(log.all('message').length, 0);
  });

  it('a peer that half-closes TCP without a close frame gets the server\'s FIN; the handler sees 1006', async (t) => {
    const { peer, log } = await opened(t, {}, { allowHalfOpen: true });
    peer.socket.end();
    await peer.waitEnd();
    assert.equal((await log.first('close')).code, 1006);
  });
});

describe('Chunk boundaries: any TCP segmentation parses the same', () => {
  it('frames written one byte per TCP write', async (t) => {
    const { peer } = await opened(t);
    peer.socket.setNoDelay(true);
    const bytes = Buffer.concat([
      clientFrame({ opcode: TEXT, payload: 'héllo 😀' }),
      clientFrame({ opcode: BINARY, fin: false, payload: pattern(130) }),
      clientFrame({ opcode: PING, payload: 'p', mask: [0xde, 0xad, 0xbe, 0xef] }),
      clientFrame({ opcode: CONT, fin: true, payload: pattern(3, 7) }),
    ]);
    for (let i = 0; i < bytes.length; i++) {
      await peer.write(bytes.subarray(i, i + 1));
      if (i % 8 === 7) await delay(1);
    }
    const a = await peer.readFrame();
    assert.deepEqual([a.opcode, a.payload.toString()], [TEXT, 'héllo 😀']);
    const b = await peer.readFrame();
    assert.deepEqual([b.opcode, b.payload.toString()], [PONG, 'p']);
    const c = await peer.readFrame();
    assert.equal(c.opcode, BINARY);
    assert.ok(c.payload.equals(Buffer.concat([pattern(130), pattern(3, 7)])));
  });

  it('many frames in one TCP write are all answered, in order', async (t) => {
    const { peer } = await opened(t);
    const frames: Buffer[] = [];
    for (let i = 0; i < 500; i++) frames.push(clientFrame({ opcode: i % 2 ? BINARY : TEXT, payload: `m${i}` }));
    frames.push(clientFrame({ opcode: PING, payload: 'end' }));
    await peer.write(Buffer.concat(frames));
    for (let i = 0; i < 500; i++) {
      const f = await peer.readFrame();
      assert.deepEqual([f.opcode, f.payload.toString()], [i % 2 ? BINARY : TEXT, `m${i}`]);
    }
    const pong = await peer.readFrame();
    assert.deepEqual([pong.opcode, pong.payload.toString()], [PONG, 'end']);
  });

  it('frames sent in the same TCP write as the handshake request', async (t) => {
    const s = new Scope();
    t.after(() => s.dispose());
    const { port, log } = await s.listen();
    const peer = await s.connect(port);
    await peer.write(Buffer.concat([Buffer.from(upgradeRequest()), clientFrame({ opcode: TEXT, payload: 'early' })]));
    assert.equal((await peer.readResponse()).status, 101);
    const f = await peer.readFrame();
    assert.equal(f.payload.toString(), 'early');
    await log.first('message');
  });

  it('a 4 MiB message as 65,536 fragments of 64 bytes is accepted and echoed', async (t) => {
    const { peer, log } = await opened(t);
    const message = pattern(4 * 1024 * 1024, 3);
    const count = message.length / 64;
    const frames: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const spec: FrameSpec = { opcode: i === 0 ? BINARY : CONT, fin: i === count - 1, payload: message.subarray(i * 64, i * 64 + 64) };
      frames.push(clientFrame(spec));
    }
    assert.equal(frames.length, 65536);
    await withTimeout(peer.write(Buffer.concat(frames)), 20_000, 'writing 65,536 fragments');
    const f = await peer.readFrame(20_000);
    assert.deepEqual([f.fin, f.opcode], [true, BINARY]);
    assert.ok(f.payload.equals(message), 'the echo is the whole message');
    assert.equal(log.all('message').length, 1);
  });
});
