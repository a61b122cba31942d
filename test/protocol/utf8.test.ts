/**
 * RFC 6455 §8.1 (text must be UTF-8, RFC 3629) and the incremental
 * Utf8Validator that checks it as bytes arrive.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Opcode, Utf8Validator } from '../../src/protocol/index.js';
import { isUtf8 } from '../../src/protocol/utf8.js';
import {
  type Harness,
  assertFailedWith,
  buildHeader,
  clientFrame,
  connect,
  cutPoints,
  serverFrame,
  splitAt,
  unicodeText,
} from '../helpers/frames.js';

const { Text, Continuation } = Opcode;

const VALID: Record<string, string> = {
  'ASCII (1 byte)': 'Hello, world',
  'U+0000 and U+007F': '\u0000\u007f',
  '2-byte sequences (U+0080, U+00E9, U+07FF)': '\u0080é\u07ff',
  '3-byte sequences (U+0800, U+20AC, U+D7FF, U+E000, U+FFFD, U+FFFF)': '\u0800€\ud7ff\ue000\ufffd\uffff',
  '4-byte sequences (U+10000, U+1F600, U+10FFFF)': '\u{10000}😀\u{10ffff}',
  'a mix of every length': 'κόσμε – 世界 – 😀𝄞 – ok',
};

const INVALID: Record<string, number[]> = {
  'overlong 2-byte "/" (C0 AF)': [0xc0, 0xaf],
  'overlong 2-byte (C1 BF)': [0xc1, 0xbf],
  'overlong 3-byte "/" (E0 80 AF)': [0xe0, 0x80, 0xaf],
  'overlong 3-byte U+07FF (E0 9F BF)': [0xe0, 0x9f, 0xbf],
  'overlong 4-byte "/" (F0 80 80 AF)': [0xf0, 0x80, 0x80, 0xaf],
  'overlong 4-byte U+FFFF (F0 8F BF BF)': [0xf0, 0x8f, 0xbf, 0xbf],
  'surrogate U+D800 (ED A0 80)': [0xed, 0xa0, 0x80],
  'surrogate U+DFFF (ED BF BF)': [0xed, 0xbf, 0xbf],
  'surrogate pair encoded separately (ED A0 BD ED B8 80)': [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80],
  'above U+10FFFF (F4 90 80 80)': [0xf4, 0x90, 0x80, 0x80],
  'lead byte F5': [0xf5, 0x80, 0x80, 0x80],
  'lead byte F7 (U+1FFFFF)': [0xf7, 0xbf, 0xbf, 0xbf],
  '5-byte form (F8 88 80 80 80)': [0xf8, 0x88, 0x80, 0x80, 0x80],
  'bytes FE and FF': [0xfe, 0xff],
  'a lone continuation byte (80)': [0x80],
  'a stray continuation after ASCII (61 BF)': [0x61, 0xbf],
  'a stray continuation after a complete sequence (C3 A9 80)': [0xc3, 0xa9, 0x80],
  'a sequence cut short by ASCII (E2 28 A1)': [0xe2, 0x28, 0xa1],
  'truncated 2-byte sequence at the end (C3)': [0x61, 0xc3],
  'truncated 3-byte sequence at the end (E2 82)': [0x61, 0xe2, 0x82],
  'truncated 4-byte sequence at the end (F0 9F 98)': [0x61, 0xf0, 0x9f, 0x98],
};

/** Ways to deliver `bytes` as one text message to a server; each returns the harness to check. */
const deliveries: Record<string, (bytes: Buffer) => Harness> = {
  'in one frame': (bytes) => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, payload: bytes }));
    return h;
  },
  'in one frame fed one byte at a time': (bytes) => {
    const h = connect('server');
    h.feedBytewise(clientFrame({ opcode: Text, payload: bytes }));
    return h;
  },
  'in one-byte fragments': (bytes) => {
    const h = connect('server');
    if (bytes.length === 0) {
      h.feed(clientFrame({ opcode: Text }));
      return h;
    }
    for (let i = 0; i < bytes.length; i++) {
      h.feed(
        clientFrame({ opcode: i === 0 ? Text : Continuation, fin: i === bytes.length - 1, payload: bytes.subarray(i, i + 1) }),
      );
    }
    return h;
  },
  'in two fragments split at every point, then an empty final fragment': (bytes) => {
    // Returns the last harness; every split is checked to agree with it.
    let last: Harness | null = null;
    const verdicts = new Set<string>();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const h = connect('server');
      h.feed(
        clientFrame({ opcode: Text, fin: false, payload: bytes.subarray(0, cut) }),
        clientFrame({ opcode: Continuation, fin: false, payload: bytes.subarray(cut) }),
        clientFrame({ opcode: Continuation, fin: true }),
      );
      verdicts.add(String(h.rec.failCode()));
      last = h;
    }
    assert.equal(verdicts.size, 1, 'every split point gives the same verdict');
    assert.ok(last !== null);
    return last;
  },
};

describe('RFC 6455 §8.1: valid UTF-8 text is accepted', () => {
  for (const [name, text] of Object.entries(VALID)) {
    for (const [how, deliver] of Object.entries(deliveries)) {
      it(`${name}, ${how}`, () => {
        const h = deliver(Buffer.from(text, 'utf8'));
        assert.equal(h.rec.failCode(), undefined);
        assert.deepEqual(h.rec.messages().map((m) => m.data.toString('utf8')), [text]);
      });
    }
  }

  it('an empty text message', () => {
    const h = connect('client');
    h.feed(serverFrame({ opcode: Text }));
    assert.deepEqual(h.rec.messages().map((m) => m.data.length), [0]);
  });
});

describe('RFC 6455 §8.1: invalid UTF-8 text fails the connection with 1007', () => {
  for (const [name, bytes] of Object.entries(INVALID)) {
    for (const [how, deliver] of Object.entries(deliveries)) {
      it(`${name}, ${how}`, () => {
        const h = deliver(Buffer.from(bytes));
        assert.deepEqual(h.rec.messages(), []);
        assertFailedWith(h, 1007);
      });
    }
  }

  it('binary messages are not checked', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Opcode.Binary, payload: Buffer.from([0xff, 0xc0, 0xed, 0xa0, 0x80]) }));
    assert.equal(h.rec.messages().length, 1);
    assert.equal(h.rec.failCode(), undefined);
  });
});

describe('RFC 6455 §8.1: the failure comes with the byte that breaks the text (fail fast)', () => {
  it('in the first fragment of a message, before any other fragment is sent', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false, payload: Buffer.from([0x61, 0x62, 0xff]) }));
    assertFailedWith(h, 1007);
  });

  it('in a middle fragment, before the final fragment is sent', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false, payload: 'good ' }));
    assert.equal(h.rec.failCode(), undefined);
    h.feed(clientFrame({ opcode: Continuation, fin: false, payload: Buffer.from([0x62, 0x61, 0x64, 0xc0, 0x80]) }));
    assertFailedWith(h, 1007);
  });

  it('mid-frame, with the payload arriving one byte at a time: on the bad byte, not after', () => {
    const payload = Buffer.concat([Buffer.from('valid prefix é€😀 '), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(' never read')]);
    const badAt = payload.indexOf(0xa0);
    const frame = clientFrame({ opcode: Text, payload });
    const headerLength = 6;
    const h = connect('server');
    h.feed(frame.subarray(0, headerLength));
    for (let i = 0; i < badAt; i++) {
      h.feed(frame.subarray(headerLength + i, headerLength + i + 1));
      assert.equal(h.rec.failCode(), undefined, `byte ${i} is still a valid prefix`);
    }
    h.feed(frame.subarray(headerLength + badAt, headerLength + badAt + 1));
    assertFailedWith(h, 1007);
  });

  it('mid-frame, in the first chunk of a large frame whose rest never arrives', () => {
    const h = connect('client');
    const header = buildHeader({ opcode: Text, declaredLength: 1 << 20 });
    h.feed(Buffer.concat([header, Buffer.from('text then '), Buffer.from([0xf8])]));
    assertFailedWith(h, 1007);
  });

  it('on the 2nd byte of a 4-byte sequence begun at the end of the previous fragment (F4 | 90)', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false, payload: Buffer.from([0x61, 0xf4]) }));
    assert.equal(h.rec.failCode(), undefined, 'F4 may start U+100000..U+10FFFF');
    const next = clientFrame({ opcode: Continuation, fin: true, payload: Buffer.from([0x90, 0x80, 0x80, 0x61]) });
    h.feed(next.subarray(0, 6 + 1)); // header and the 0x90 only
    assertFailedWith(h, 1007);
  });

  it('on the 2nd byte of a sequence split across fragments: overlong E0 | 80, surrogate ED | A0, overlong F0 | 8F', () => {
    for (const [lead, second] of [
      [0xe0, 0x80],
      [0xed, 0xa0],
      [0xf0, 0x8f],
    ] as const) {
      const h = connect('server');
      h.feed(clientFrame({ opcode: Text, fin: false, payload: Buffer.from([lead]) }));
      assert.equal(h.rec.failCode(), undefined);
      h.feed(clientFrame({ opcode: Continuation, fin: false, payload: Buffer.from([second]) }));
      assertFailedWith(h, 1007);
    }
  });

  it('on the 3rd byte of a sequence whose first two bytes came in the previous fragment', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false, payload: Buffer.from([0xf0, 0x9f]) }));
    assert.equal(h.rec.failCode(), undefined);
    h.feed(clientFrame({ opcode: Continuation, fin: false, payload: Buffer.from([0x41]) }));
    assertFailedWith(h, 1007);
  });

  it('a valid sequence split across fragments at every byte is accepted (F0 9F 98 80)', () => {
    const bytes = Buffer.from('😀');
    for (let cut = 1; cut < 4; cut++) {
      const h = connect('server');
      h.feed(
        clientFrame({ opcode: Text, fin: false, payload: bytes.subarray(0, cut) }),
        clientFrame({ opcode: Continuation, payload: bytes.subarray(cut) }),
      );
      assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), ['😀']);
    }
  });

  it('at the end of the message when the final fragment leaves a sequence open', () => {
    const h = connect('server');
    h.feed(clientFrame({ opcode: Text, fin: false, payload: Buffer.from([0x61, 0xe2, 0x82]) }));
    assert.equal(h.rec.failCode(), undefined);
    h.feed(clientFrame({ opcode: Continuation, fin: true }));
    assertFailedWith(h, 1007);
  });

  it('validation restarts with each message: an open sequence does not leak into the next message', () => {
    const h = connect('server', { maxPayload: 1 << 20 });
    h.feed(
      clientFrame({ opcode: Text, fin: false, payload: 'é' }),
      clientFrame({ opcode: Continuation, payload: '€' }),
      clientFrame({ opcode: Text, fin: false, payload: Buffer.from([0xc3]) }),
      clientFrame({ opcode: Continuation, payload: Buffer.from([0x80]) }),
    );
    assert.deepEqual(h.rec.messages().map((m) => m.data.toString()), ['é€', 'À']);
  });
});

/**
 * Whether `bytes` can be continued into valid UTF-8: either it is valid, or
 * it is valid up to a trailing incomplete sequence that some continuation
 * completes. A second byte is constrained to a range whose ends are among
 * 80, 8F, 90, 9F, A0, BF (RFC 3629 §4), so trying those is exhaustive.
 */
function isValidPrefix(bytes: Uint8Array): boolean {
  if (isUtf8(bytes)) return true;
  for (let k = 1; k <= 3 && k <= bytes.length; k++) {
    if (!isUtf8(bytes.subarray(0, bytes.length - k))) continue;
    const tail = Array.from(bytes.subarray(bytes.length - k));
    for (const second of [0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf]) {
      for (const total of [2, 3, 4]) {
        if (total <= k) continue;
        const seq = [...tail];
        if (seq.length === 1) seq.push(second);
        while (seq.length < total) seq.push(0x80);
        if (isUtf8(Uint8Array.from(seq))) return true;
      }
    }
  }
  return false;
}

/** Bytes that are likely to be almost UTF-8: valid text, mutated text, tricky fragments, or noise. */
const nearlyUtf8: fc.Arbitrary<Uint8Array> = fc.oneof(
  unicodeText().map((s) => Uint8Array.from(Buffer.from(s, 'utf8'))),
  fc
    .tuple(unicodeText(), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('replace', 'insert', 'delete'))
    .map(([s, at, byte, how]) => {
      const b = Array.from(Buffer.from(s, 'utf8'));
      const i = b.length === 0 ? 0 : at % b.length;
      if (how === 'replace' && b.length > 0) b[i] = byte;
      else if (how === 'insert') b.splice(i, 0, byte);
      else b.splice(i, 1);
      return Uint8Array.from(b);
    }),
  fc
    .array(
      fc.constantFrom(
        [0x61],
        [0xc3, 0xa9],
        [0xe2, 0x82, 0xac],
        [0xf0, 0x9f, 0x98, 0x80],
        [0xf4, 0x8f, 0xbf, 0xbf],
        [0xed, 0x9f, 0xbf],
        [0xee, 0x80, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0xf0, 0x8f, 0xbf, 0xbf],
        [0xe0, 0x9f, 0xbf],
        [0xed, 0xa0, 0x80],
        [0xc1, 0xbf],
        [0xf4],
        [0xf0],
        [0xe0],
        [0xed],
        [0x80],
        [0x90],
        [0xa0],
        [0xbf],
        [0xc0],
        [0xc2],
        [0xf5],
        [0xff],
      ),
      { maxLength: 12 },
    )
    .map((parts) => Uint8Array.from(parts.flat())),
  fc.uint8Array({ maxLength: 24 }),
);

const bytesAndCuts = nearlyUtf8.chain((bytes) => cutPoints(bytes.length).map((cuts) => ({ bytes, cuts })));

describe('Utf8Validator: incremental validation agrees with whole-buffer validation', () => {
  it('feeding random pieces gives the verdict of isUtf8 on the whole (property)', () => {
    fc.assert(
      fc.property(bytesAndCuts, ({ bytes, cuts }) => {
        const v = new Utf8Validator();
        let ok = true;
        for (const piece of splitAt(bytes, cuts)) {
          if (!v.feed(piece, 0, piece.length)) {
            ok = false;
            break;
          }
        }
        assert.equal(ok && v.complete, isUtf8(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects on exactly the piece holding the first byte that no valid text can follow (property)', () => {
    fc.assert(
      fc.property(bytesAndCuts, ({ bytes, cuts }) => {
        let firstBad = -1;
        for (let n = 1; n <= bytes.length; n++) {
          if (!isValidPrefix(bytes.subarray(0, n))) {
            firstBad = n - 1;
            break;
          }
        }
        const v = new Utf8Validator();
        let from = 0;
        for (const end of [...cuts, bytes.length]) {
          const accepted = v.feed(bytes, from, end);
          const holdsBad = firstBad >= from && firstBad < end;
          assert.equal(accepted, !holdsBad, `piece [${from}, ${end}) of ${Buffer.from(bytes).toString('hex')}, first bad byte ${firstBad}`);
          if (!accepted) return;
          from = end;
        }
        assert.equal(firstBad, -1);
      }),
      { numRuns: 2000 },
    );
  });

  it('never rejects a prefix of valid UTF-8, and calls it complete exactly when it ends on a boundary (property)', () => {
    const arb = unicodeText({ maxLength: 30 }).chain((s) => {
      const bytes = Buffer.from(s, 'utf8');
      return fc
        .integer({ min: 0, max: bytes.length })
        .chain((n) => cutPoints(n).map((cuts) => ({ prefix: bytes.subarray(0, n), cuts })));
    });
    fc.assert(
      fc.property(arb, ({ prefix, cuts }) => {
        const v = new Utf8Validator();
        for (const piece of splitAt(prefix, cuts)) assert.equal(v.feed(piece, 0, piece.length), true);
        assert.equal(v.complete, isUtf8(prefix));
      }),
      { numRuns: 1000 },
    );
  });

  it('feeds honour start and end offsets into a larger buffer', () => {
    const data = Buffer.from([0xff, 0xe2, 0x82, 0xac, 0xff]);
    const v = new Utf8Validator();
    assert.equal(v.feed(data, 1, 3), true);
    assert.equal(v.complete, false);
    assert.equal(v.feed(data, 3, 4), true);
    assert.equal(v.complete, true);
  });

  it('reset() forgets an open sequence entirely, including its narrowed range', () => {
    // F0 narrows the next byte to 90..BF, F4 to 80..8F; after reset a
    // 2-byte sequence must again accept any continuation byte.
    for (const [lead, text] of [
      [0xf0, 'À'], // C3 80: 80 is below F0's lower bound
      [0xf4, 'ÿ'], // C3 BF: BF is above F4's upper bound
      [0xe0, 'Ā'], // C4 80
      [0xed, 'ſ'], // C5 BF
    ] as const) {
      const v = new Utf8Validator();
      assert.equal(v.feed(Uint8Array.of(lead), 0, 1), true);
      v.reset();
      assert.equal(v.complete, true);
      const bytes = Buffer.from(text);
      assert.equal(v.feed(bytes, 0, 1), true);
      assert.equal(v.feed(bytes, 1, 2), true, `after 0x${lead.toString(16)} and reset, ${text} is valid`);
      assert.equal(v.complete, true);
    }
  });

  it('a large valid text fed in 1,000-byte pieces is accepted', () => {
    const text = Buffer.from('aé€😀'.repeat(50_000));
    const v = new Utf8Validator();
    for (let i = 0; i < text.length; i += 1000) assert.equal(v.feed(text, i, Math.min(text.length, i + 1000)), true);
    assert.equal(v.complete, true);
  });
});
