/**
 * RFC 7692, the permessage-deflate extension: negotiation (§7.1) on both
 * sides, the compressed payload format (§7.2), and the receive-side rules
 * (§6: RSV1 marks the first frame of a compressed message; §8: what cannot be
 * inflated fails the connection), against the sans-I/O core.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import {
  Connection,
  type DeflateParams,
  Opcode,
  PerMessageDeflate,
  SYNC_DEFLATE,
  acceptDeflateOffer,
  acceptKey,
  checkDeflateResponse,
  checkUpgradeResponse,
  deflateNegotiator,
  deflateOffer,
  deflateParamsOf,
  formatExtensions,
  negotiateExtensions,
  parseExtensions,
  resolveDeflateOptions,
} from '../../src/protocol/index.js';
import { Recorder, assertFailedWith, clientFrame, connect, pattern, serverFrame } from '../helpers/frames.js';

const { Text, Binary, Continuation, Ping } = Opcode;
const DEFAULT: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** The offers in a header value, as parameter objects. */
function offers(header: string): Record<string, string | true>[] {
  const parsed = parseExtensions(header);
  assert.ok(!(parsed instanceof Error), String(parsed));
  return parsed.map((o) => o.params);
}

/** The server's response header for `header`, or null when it declines. */
function respond(header: string, options = {}): string | null {
  const accepted = acceptDeflateOffer(offers(header), options);
  return accepted === null ? null : formatExtensions([{ name: 'permessage-deflate', params: accepted.response }]);
}

function codec(role: 'server' | 'client', params: Partial<DeflateParams> = {}, maxPayload = 1 << 24, threshold?: number): PerMessageDeflate {
  return new PerMessageDeflate(role, { ...DEFAULT, ...params }, threshold === undefined ? {} : { threshold }, maxPayload);
}

const json = (n: number): string => JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, name: `user-${i}`, online: i % 3 === 0 })));

describe('RFC 7692 §7.1: the server accepts or declines each offer', () => {
  it('this Node can run zlib synchronously on persistent streams (else the extension is never negotiated)', () => {
    assert.equal(SYNC_DEFLATE, true);
  });

  it('accepts a bare offer with a bare response', () => {
    assert.equal(respond('permessage-deflate'), 'permessage-deflate');
  });

  it('accepts client_max_window_bits without a value and says nothing about it unless it limits the client', () => {
    assert.equal(respond('permessage-deflate; client_max_window_bits'), 'permessage-deflate');
    assert.equal(respond('permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 10 }), 'permessage-deflate; client_max_window_bits=10');
    assert.equal(respond('permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 14 }), 'permessage-deflate; client_max_window_bits=12');
  });

  it('§7.1.2.2: never sends client_max_window_bits to a client that did not offer it', () => {
    assert.equal(respond('permessage-deflate', { clientMaxWindowBits: 10 }), 'permessage-deflate');
  });

  it('§7.1.1.1: includes server_no_context_takeover when the client asks for it, or when configured', () => {
    assert.equal(respond('permessage-deflate; server_no_context_takeover'), 'permessage-deflate; server_no_context_takeover');
    assert.equal(respond('permessage-deflate', { serverNoContextTakeover: true }), 'permessage-deflate; server_no_context_takeover');
  });

  it('§7.1.1.2: may ask the client for client_no_context_takeover, offered or not', () => {
    assert.equal(respond('permessage-deflate', { clientNoContextTakeover: true }), 'permessage-deflate; client_no_context_takeover');
    assert.equal(respond('permessage-deflate; client_no_context_takeover'), 'permessage-deflate; client_no_context_takeover');
  });

  it('§7.1.2.1: answers server_max_window_bits with the same or a smaller value', () => {
    assert.equal(respond('permessage-deflate; server_max_window_bits=10'), 'permessage-deflate; server_max_window_bits=10');
    assert.equal(respond('permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 9 }), 'permessage-deflate; server_max_window_bits=9');
    assert.equal(respond('permessage-deflate', { serverMaxWindowBits: 11 }), 'permessage-deflate; server_max_window_bits=11');
  });

  it('accepts an 8-bit server window (compressing with Huffman coding only, which any window inflates)', () => {
    assert.equal(respond('permessage-deflate; server_max_window_bits=8'), 'permessage-deflate; server_max_window_bits=8');
    assert.equal(respond('permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 8 }), 'permessage-deflate; client_max_window_bits=8');
  });

  for (const bad of [
    'permessage-deflate; foo',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; server_max_window_bits=7',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; server_max_window_bits=010',
    'permessage-deflate; client_max_window_bits=abc',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; client_no_context_takeover=true',
  ]) {
    it(`§7.1: declines an invalid offer and takes the next valid one: ${bad}`, () => {
      assert.equal(respond(bad), null);
      assert.equal(respond(`${bad}, permessage-deflate; client_max_window_bits`), 'permessage-deflate');
    });
  }

  it('§7.1: declines an offer that repeats a parameter, taking the next one', () => {
    const parsed = parseExtensions('permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate; client_max_window_bits');
    assert.ok(!(parsed instanceof Error));
    assert.deepEqual(negotiateExtensions(parsed, [deflateNegotiator({})]), [{ name: 'permessage-deflate', params: {} }]);
  });

  it('the agreed parameters are read back from the response', () => {
    const accepted = acceptDeflateOffer(offers('permessage-deflate; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9'), {});
    assert.ok(accepted !== null);
    assert.deepEqual(deflateParamsOf(accepted.response), { serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 11, clientMaxWindowBits: 9 });
    assert.deepEqual(accepted.params, deflateParamsOf(accepted.response));
  });
});

describe('RFC 7692 §7.1: the client offers and checks the response', () => {
  it('offers client_max_window_bits like a browser, plus what it was asked to', () => {
    assert.deepEqual(deflateOffer({}), { client_max_window_bits: true });
    assert.equal(
      formatExtensions([{ name: 'permessage-deflate', params: deflateOffer({ serverNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 }) }]),
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12',
    );
  });

  it('accepts a valid response and applies it', () => {
    assert.deepEqual(checkDeflateResponse({}, {}), DEFAULT);
    assert.deepEqual(checkDeflateResponse({ server_no_context_takeover: true, client_no_context_takeover: true, server_max_window_bits: '9', client_max_window_bits: '10' }, {}), {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 9,
      clientMaxWindowBits: 10,
    });
  });

  for (const [why, response, options] of [
    ['an unknown parameter', { foo: true }, {}],
    ['a value on client_no_context_takeover', { client_no_context_takeover: '1' }, {}],
    ['server_max_window_bits out of range', { server_max_window_bits: '16' }, {}],
    ['server_max_window_bits without a value', { server_max_window_bits: true }, {}],
    ['server_max_window_bits above the value offered', { server_max_window_bits: '12' }, { serverMaxWindowBits: 10 }],
    ['client_max_window_bits above the value offered', { client_max_window_bits: '12' }, { clientMaxWindowBits: 10 }],
    ['no server_no_context_takeover after the client asked for it', {}, { serverNoContextTakeover: true }],
  ] as const) {
    it(`refuses a response with ${why}`, () => {
      assert.ok(checkDeflateResponse(response as Record<string, string | true>, options) instanceof Error);
    });
  }

  it('refuses a response that repeats a parameter', () => {
    const res = { statusCode: 101, headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': acceptKey(KEY), 'sec-websocket-extensions': 'permessage-deflate; client_no_context_takeover; client_no_context_takeover' } };
    assert.ok(checkUpgradeResponse(res, KEY, [], ['permessage-deflate']) instanceof Error);
  });

  it('rejects nonsense options when they are given, not at the first message', () => {
    assert.throws(() => resolveDeflateOptions({ serverMaxWindowBits: 7 }), RangeError);
    assert.throws(() => resolveDeflateOptions({ clientMaxWindowBits: 16 }), RangeError);
    assert.throws(() => resolveDeflateOptions({ level: 10 }), RangeError);
    assert.throws(() => resolveDeflateOptions({ threshold: -1 }), RangeError);
    assert.throws(() => resolveDeflateOptions('yes' as never), TypeError);
    assert.equal(resolveDeflateOptions(false), null);
    assert.deepEqual(resolveDeflateOptions(true), {});
  });
});

describe('RFC 7692 §7.2: compressed payloads', () => {
  it('§7.2.3.1/§7.2.3.2: "Hello" compresses to the RFC bytes, and again with context takeover', () => {
    const c = codec('server');
    assert.equal(c.compress(Buffer.from('Hello')).toString('hex'), 'f248cdc9c90700');
    assert.equal(c.compress(Buffer.from('Hello')).toString('hex'), 'f200110000');
  });

  it('§7.2.1: the trailing 00 00 ff ff is removed, and the payload inflates back with it appended', () => {
    const c = codec('client');
    for (const data of [Buffer.alloc(0), Buffer.from('a'), pattern(70_000), Buffer.from(json(500))]) {
      const out = c.compress(data);
      assert.notDeepEqual(out.subarray(-4), TAIL);
      // Each message is inflatable given the ones before it (context takeover), so check with a fresh codec per run below.
    }
    const sender = codec('client');
    const receiver = codec('server');
    for (const data of [Buffer.alloc(0), Buffer.from('a'), pattern(70_000), Buffer.from(json(500)), Buffer.from(json(500))]) {
      assert.ok(receiver.decompress(sender.compress(data)).equals(data));
    }
  });

  it('§7.2.3.3/§7.2.3.4: inflates a stored block and a block with BFINAL set, and goes on after it', () => {
    const c = codec('client');
    assert.equal(String(c.decompress(Buffer.from([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]))), 'Hello');
    assert.equal(String(c.decompress(Buffer.from([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]))), 'Hello');
    assert.equal(String(c.decompress(Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]))), 'Hello');
  });

  it('a sender without context takeover makes every message independent (inflatable alone)', () => {
    const c = codec('server', { serverNoContextTakeover: true });
    const data = Buffer.from(json(300));
    const a = c.compress(data);
    const b = c.compress(data);
    assert.ok(a.equals(b));
    assert.ok(inflateRawSync(Buffer.concat([b, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH }).equals(data));
  });

  it('with context takeover a repeated message costs a few bytes', () => {
    const c = codec('server');
    const data = Buffer.from(json(300));
    const first = c.compress(data).length;
    assert.ok(c.compress(data).length < first / 4);
  });

  it('compresses with the negotiated window: an 9-bit sender only refers 512 bytes back', () => {
    const c = codec('client', { clientMaxWindowBits: 9 });
    const data = Buffer.concat([pattern(600, 1), pattern(600, 1)]);
    const out = c.compress(data);
    // A 9-bit raw inflater accepts it (a larger distance would be an error).
    assert.ok(inflateRawSync(Buffer.concat([out, TAIL]), { windowBits: 9, finishFlush: constants.Z_SYNC_FLUSH }).equals(data));
  });

  it('an 8-bit sender makes no back-reference at all, so an 8-bit inflater takes it', () => {
    const c = codec('server', { serverMaxWindowBits: 8 });
    const data = Buffer.from(json(100));
    for (let i = 0; i < 3; i++) {
      const out = c.compress(data);
      assert.ok(out.length < data.length);
      assert.ok(inflateRawSync(Buffer.concat([out, TAIL]), { windowBits: 8, finishFlush: constants.Z_SYNC_FLUSH }).equals(data));
    }
  });

  it('round-trips any sequence of messages with any parameters (property)', () => {
    fc.assert(
      fc.property(
        fc.record({ serverNoContextTakeover: fc.boolean(), clientNoContextTakeover: fc.boolean(), serverMaxWindowBits: fc.integer({ min: 8, max: 15 }), clientMaxWindowBits: fc.integer({ min: 8, max: 15 }) }),
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.string({ maxLength: 2000 }).map((s) => Buffer.from(s.repeat(3)))), { maxLength: 12 }),
        (params, messages) => {
          const server = new PerMessageDeflate('server', params, {}, 1 << 24);
          const client = new PerMessageDeflate('client', params, {}, 1 << 24);
          for (const m of messages) {
            assert.ok(client.decompress(server.compress(m)).equals(Buffer.from(m)));
            assert.ok(server.decompress(client.compress(m)).equals(Buffer.from(m)));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('RFC 7692 §6, §8: compressed messages on a connection', () => {
  const deflated = (data: Uint8Array, params: Partial<DeflateParams> = {}): Buffer => codec('client', params).compress(data);

  it('inflates a compressed message (RSV1 on its only frame) before delivering it', () => {
    const h = connect('server', { deflate: codec('server') });
    const text = json(200);
    h.feed(clientFrame({ opcode: Text, rsv1: true, payload: deflated(Buffer.from(text)) }));
    assert.deepEqual(h.rec.messages().map((m) => [m.data.toString(), m.isBinary, m.compressed]), [[text, false, false]]);
  });

  it('§6.1: a compressed message may be fragmented: RSV1 on the first frame only, inflated whole', () => {
    const h = connect('server', { deflate: codec('server') });
    const data = pattern(50_000, 3);
    const z = deflated(data);
    const a = Math.floor(z.length / 3);
    h.feed(
      clientFrame({ opcode: Binary, rsv1: true, fin: false, payload: z.subarray(0, a) }),
      clientFrame({ opcode: Ping, payload: 'between' }),
      clientFrame({ opcode: Continuation, fin: false, payload: z.subarray(a, 2 * a) }),
      clientFrame({ opcode: Continuation, payload: z.subarray(2 * a) }),
    );
    const msgs = h.rec.messages();
    assert.equal(msgs.length, 1);
    assert.ok(msgs[0]!.data.equals(data));
  });

  it('§7.2.3.6: empty compressed messages (the one-byte empty block, or no payload at all) are empty, and the context goes on', () => {
    const h = connect('client', { deflate: codec('client') });
    const sender = codec('server');
    const frames = [json(20), '', json(20), '', ''].map((m) => serverFrame({ opcode: Text, rsv1: true, payload: sender.compress(Buffer.from(m)) }));
    assert.deepEqual([...frames[1]!.subarray(2)], [0x00]);
    h.feed(...frames, serverFrame({ opcode: Text, rsv1: true, payload: Buffer.alloc(0) }), serverFrame({ opcode: Text, rsv1: true, payload: sender.compress(Buffer.from('after')) }));
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), [json(20), '', json(20), '', '', '', 'after']);
  });

  it('an uncompressed message (RSV1 clear) is still delivered as it came', () => {
    const h = connect('server', { deflate: codec('server') });
    h.feed(clientFrame({ opcode: Text, payload: 'plain' }));
    assert.equal(h.rec.messages()[0]?.data.toString(), 'plain');
  });

  it('keeps the context across messages (context takeover), in pieces of any size', () => {
    const h = connect('client', { deflate: codec('client') });
    const sender = codec('server');
    const messages = [json(100), json(100), 'x'.repeat(10_000), json(100)];
    const bytes = Buffer.concat(messages.map((m) => serverFrame({ opcode: Text, rsv1: true, payload: sender.compress(Buffer.from(m)) })));
    h.feedBytewise(bytes);
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), messages);
  });

  it('compressed messages read from a reused buffer (borrowed chunks, any cuts) arrive intact and stay intact (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.constantFrom(0, 1, 200, 5000, 40_000)), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 60_000 }), { maxLength: 12 }),
        (specs, sizes) => {
          const sender = codec('client', {}, 1 << 24, 0);
          const expected: Buffer[] = [];
          const frames: Buffer[] = [];
          specs.forEach(([compress, n], i) => {
            const data = Buffer.from(json(Math.ceil(n / 40) + 1).slice(0, n));
            expected.push(data);
            frames.push(clientFrame({ opcode: Text, rsv1: compress, payload: compress ? Buffer.from(sender.compress(data)) : data }));
            if (i % 3 === 1) frames.push(clientFrame({ opcode: Ping, payload: 'p' }));
          });
          const stream = Buffer.concat(frames);
          const rec = new Recorder({ keepViews: true });
          const conn = new Connection(rec, { role: 'server', maxPayload: 1 << 24, deflate: codec('server') });
          const scratch = Buffer.alloc(stream.length);
          let at = 0;
          for (let k = 0; at < stream.length; k++) {
            const n = Math.min(stream.length - at, sizes[k % Math.max(1, sizes.length)] ?? stream.length);
            stream.copy(scratch, 0, at, at + n);
            conn.receive(scratch.subarray(0, n), true);
            scratch.fill(0x5a);
            at += n;
          }
          assert.deepEqual(rec.messages().map((m) => m.data.toString()), expected.map((d) => d.toString()));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('§6.1: RSV1 on a continuation frame fails with 1002', () => {
    const h = connect('server', { deflate: codec('server') });
    h.feed(clientFrame({ opcode: Text, fin: false, payload: 'a' }), clientFrame({ opcode: Continuation, rsv1: true, payload: 'b' }));
    assertFailedWith(h, 1002);
  });

  it('§6: RSV1 on a control frame fails with 1002', () => {
    const h = connect('server', { deflate: codec('server') });
    h.feed(clientFrame({ opcode: Ping, rsv1: true, payload: 'x' }));
    assertFailedWith(h, 1002);
  });

  it('RSV1 without the extension negotiated still fails with 1002', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, rsv1: true, payload: deflated(Buffer.from('hi')) }));
    assertFailedWith(h, 1002);
  });

  it('§8.1: data that does not inflate fails with 1007', () => {
    const h = connect('server', { deflate: codec('server') });
    h.feed(clientFrame({ opcode: Binary, rsv1: true, payload: Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]) }));
    assertFailedWith(h, 1007);
  });

  it('compressed text that inflates to invalid UTF-8 fails with 1007', () => {
    const h = connect('server', { deflate: codec('server') });
    h.feed(clientFrame({ opcode: Text, rsv1: true, payload: deflated(Buffer.from([0x68, 0x69, 0xc3, 0x28])) }));
    assertFailedWith(h, 1007);
  });

  it('a message that inflates beyond maxPayload fails with 1009 (a small bomb cannot balloon)', () => {
    const h = connect('server', { maxPayload: 100_000, deflate: codec('server', {}, 100_000) });
    const bomb = deflated(Buffer.alloc(10_000_000));
    assert.ok(bomb.length < 100_000, 'the compressed message itself is within maxPayload');
    h.feed(clientFrame({ opcode: Binary, rsv1: true, payload: bomb }));
    assertFailedWith(h, 1009);
  });

  it('arbitrary bytes as a compressed payload either inflate or fail with 1007/1009, never throw, and the connection stays consistent (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }), fc.boolean(), (payloads, text) => {
        const h = connect('server', { maxPayload: 4096, deflate: codec('server', {}, 4096) });
        for (const payload of payloads) h.feed(clientFrame({ opcode: text ? Text : Binary, rsv1: true, payload }));
        const code = h.rec.failCode();
        if (code !== undefined) assert.ok(code === 1007 || code === 1009, `failed with ${code}`);
        for (const m of h.rec.messages()) assert.ok(m.data.length <= 4096);
      }),
      { numRuns: 300 },
    );
  });

  it('a message that inflates to exactly maxPayload is delivered', () => {
    const h = connect('server', { maxPayload: 100_000, deflate: codec('server', {}, 100_000) });
    h.feed(clientFrame({ opcode: Binary, rsv1: true, payload: deflated(Buffer.alloc(100_000, 1)) }));
    assert.equal(h.rec.messages()[0]?.data.length, 100_000);
  });

  it('sends messages from the threshold on compressed (RSV1), shorter ones plain', () => {
    const h = connect('server', { deflate: codec('server', {}, 1 << 20, 1024) });
    h.conn.sendText('short');
    h.conn.sendText('é'.repeat(600)); // 600 characters, 1200 bytes
    h.conn.sendBytes(pattern(1023), true);
    h.conn.sendBytes(pattern(1024), true);
    const frames = h.sent();
    assert.deepEqual(frames.map((f) => f.rsv1), [false, true, false, true]);
    const receiver = codec('client');
    assert.equal(receiver.decompress(frames[1]!.payload).toString(), 'é'.repeat(600));
    assert.ok(receiver.decompress(frames[3]!.payload).equals(pattern(1024)));
  });

  it('never compresses control frames', () => {
    const h = connect('server', { deflate: codec('server', {}, 1 << 20, 0) });
    h.conn.ping(Buffer.alloc(100));
    h.conn.close(1000, 'bye');
    assert.deepEqual(h.sent().map((f) => f.rsv1), [false, false]);
  });

  it('a client masks the compressed payload', () => {
    const h = connect('client', { deflate: codec('client', {}, 1 << 20, 0) });
    h.conn.sendText(json(50));
    const [frame] = h.sent();
    assert.ok(frame !== undefined && frame.rsv1 && frame.masked);
    assert.equal(codec('server').decompress(frame.payload).toString(), json(50));
  });
});
