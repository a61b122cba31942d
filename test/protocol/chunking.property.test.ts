/**
 * RFC 6455 §5: a WebSocket is a byte stream; where TCP cuts it must not
 * matter. A random valid conversation written by a client-role Connection is
 * fed to a server-role Connection whole, in random pieces and one byte at a
 * time: the events (and the server's answers) are the same every way.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Connection, Opcode } from '../../src/protocol/index.js';
import { COPY_THRESHOLD } from '../../src/protocol/writer.js';
import {
  Recorder,
  clientFrame,
  decodeFrames,
  joinOutput,
  splitAt,
  unicodeText,
  type RecordedEvent,
  pattern,
} from '../helpers/frames.js';

type Control = { kind: 'ping'; payload: Uint8Array } | { kind: 'pong'; payload: Uint8Array };

type Item =
  | { kind: 'text'; text: string; cuts: number[]; controls: (Control | null)[] }
  | { kind: 'binary'; data: Uint8Array; cuts: number[]; controls: (Control | null)[] }
  | Control;

interface Conversation {
  items: Item[];
  close: { code: number; reason: string } | null;
}


const control: fc.Arbitrary<Control> = fc
  .tuple(fc.boolean(), fc.uint8Array({ maxLength: 125 }))
  .map(([isPing, payload]): Control => (isPing ? { kind: 'ping', payload } : { kind: 'pong', payload }));

/**
 * Fragment boundaries for `length` bytes: sorted, possibly repeated or at the
 * ends (so empty fragments occur), with an optional control frame after each.
 */
function fragmentation(length: number): fc.Arbitrary<{ cuts: number[]; controls: (Control | null)[] }> {
  return fc
    .array(fc.tuple(fc.integer({ min: 0, max: length }), fc.option(control, { freq: 3 })), { maxLength: 6 })
    .map((pairs) => {
      const sorted = [...pairs].sort((a, b) => a[0] - b[0]);
      return { cuts: sorted.map((p) => p[0]), controls: sorted.map((p) => p[1]) };
    });
}

const text: fc.Arbitrary<Item> = unicodeText({ maxLength: 50 }).chain((t) =>
  fragmentation(Buffer.byteLength(t)).map((f) => ({ kind: 'text' as const, text: t, ...f })),
);

const binaryData: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 12, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  // Sizes around the 16-bit length and the writer's copy threshold.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(125, 126, 65535, 65536, COPY_THRESHOLD, COPY_THRESHOLD + 1, 70000), fc.nat(255))
      .map(([n, seed]) => pattern(n, seed)),
  },
);

const binary: fc.Arbitrary<Item> = binaryData.chain((data) =>
  fragmentation(data.length).map((f) => ({ kind: 'binary' as const, data, ...f })),
);

const conversation: fc.Arbitrary<Conversation> = fc.record({
  items: fc.array(fc.oneof(text, binary, control), { maxLength: 8 }),
  close: fc.option(
    fc.record({
      code: fc.constantFrom(1000, 1001, 1011, 3000, 4999),
      reason: fc.constantFrom('', 'bye', 'déjà vu 😀'),
    }),
  ),
});

function sendControl(client: Connection, c: Control): void {
  if (c.kind === 'ping') client.ping(c.payload);
  else client.pong(c.payload);
}

/** Writes the conversation with a client Connection and returns the bytes, and the events a server must see. */
function serialise(conv: Conversation): { stream: Buffer; expected: RecordedEvent[] } {
  const client = new Connection(new Recorder(), { role: 'client', maxPayload: 1 << 24 });
  const expected: RecordedEvent[] = [];
  const expectControl = (c: Control): void => {
    expected.push({ type: c.kind, payload: Buffer.from(c.payload) });
  };
  for (const item of conv.items) {
    if (item.kind === 'ping' || item.kind === 'pong') {
      sendControl(client, item);
      expectControl(item);
      continue;
    }
    const bytes = item.kind === 'text' ? Buffer.from(item.text, 'utf8') : item.data;
    const opcode = item.kind === 'text' ? Opcode.Text : Opcode.Binary;
    if (item.cuts.length === 0) {
      if (item.kind === 'text') client.sendText(item.text);
      else client.sendBytes(item.data, true);
    } else {
      let from = 0;
      item.cuts.forEach((cut, i) => {
        client.sendFragment(i === 0 ? opcode : Opcode.Continuation, bytes.subarray(from, cut), false);
        from = cut;
        const c = item.controls[i];
        if (c) {
          sendControl(client, c);
          expectControl(c);
        }
      });
      client.sendFragment(Opcode.Continuation, bytes.subarray(from), true);
    }
    expected.push({ type: 'message', data: Buffer.from(bytes), isBinary: item.kind === 'binary', compressed: false });
  }
  const parts = [joinOutput(client.writer.take())];
  if (conv.close !== null) {
    client.close(conv.close.code, conv.close.reason);
    expected.push({ type: 'close', code: conv.close.code, reason: conv.close.reason });
    // Anything after the close frame must be ignored, however it is cut.
    parts.push(joinOutput(client.writer.take()), clientFrame({ opcode: Opcode.Text, payload: 'after close' }), Buffer.from([0xff]));
  }
  return { stream: Buffer.concat(parts), expected };
}

/** Feeds `pieces` (copies: the server unmasks in place) and returns its events and the frames it answered with. */
function run(stream: Buffer, cuts: readonly number[]): { events: RecordedEvent[]; answers: [number, string][] } {
  const rec = new Recorder();
  const server = new Connection(rec, { role: 'server', maxPayload: 1 << 24 });
  // One private copy per run, at an odd offset so alignment varies too.
  const backing = Buffer.alloc(stream.length + 1);
  stream.copy(backing, 1);
  const own = backing.subarray(1);
  for (const piece of splitAt(own, cuts)) server.receive(piece as Buffer);
  const answers = decodeFrames(server.writer.take()).map((f): [number, string] => [f.opcode, f.payload.toString('hex')]);
  return { events: rec.events, answers };
}

/**
 * Feeds the pieces as borrowed chunks, the way a socket reading into one
 * reused buffer does: each piece is copied into the same scratch buffer,
 * pushed, and the scratch is scribbled over at once. Events are recorded by
 * reference, so any view of a borrowed chunk kept by the parser shows up as
 * corrupted data.
 */
function runBorrowed(stream: Buffer, cuts: readonly number[]): { events: RecordedEvent[]; answers: [number, string][] } {
  const rec = new Recorder({ keepViews: true });
  const server = new Connection(rec, { role: 'server', maxPayload: 1 << 24 });
  const scratch = Buffer.alloc(stream.length + 1);
  for (const piece of splitAt(stream, cuts)) {
    scratch.set(piece, 1);
    server.receive(scratch.subarray(1, 1 + piece.length), true);
    scratch.fill(0xa5);
  }
  const answers = decodeFrames(server.writer.take()).map((f): [number, string] => [f.opcode, f.payload.toString('hex')]);
  return { events: rec.events, answers };
}

/** The whole stream gives the events sent; cut at `cuts`, it gives the same events and answers. */
function assertCutsDoNotMatter(stream: Buffer, expected: RecordedEvent[], cuts: readonly number[]): void {
  const whole = run(stream, []);
  assert.deepEqual(whole.events, expected, 'the whole stream gives the events sent');
  const pieces = run(stream, cuts);
  assert.deepEqual(pieces.events, whole.events);
  assert.deepEqual(pieces.answers, whole.answers);
}

const withCuts = conversation.chain((conv) => {
  const { stream, expected } = serialise(conv);
  const cuts =
    stream.length < 2
      ? fc.constant<number[]>([])
      : fc
          .uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 })
          .map((c) => c.sort((a, b) => a - b));
  return cuts.map((c) => ({ conv, stream, expected, cuts: c }));
});

describe('RFC 6455 §5: the byte stream may be cut anywhere', () => {
  it('random pieces give the same events and answers as the whole stream (property)', () => {
    fc.assert(
      fc.property(withCuts, ({ stream, expected, cuts }) => assertCutsDoNotMatter(stream, expected, cuts)),
      { numRuns: 300 },
    );
  });

  it('borrowed pieces (a reused read buffer, overwritten after each) give the same events and answers (property)', () => {
    fc.assert(
      fc.property(withCuts, ({ stream, expected, cuts }) => {
        const whole = run(stream, []);
        assert.deepEqual(whole.events, expected);
        const borrowed = runBorrowed(stream, cuts);
        assert.deepEqual(borrowed.events, whole.events);
        assert.deepEqual(borrowed.answers, whole.answers);
      }),
      { numRuns: 300 },
    );
  });

  it('one-byte pieces give the same events and answers as the whole stream (property)', () => {
    fc.assert(
      fc.property(conversation, (conv) => {
        const { stream, expected } = serialise(conv);
        const everyByte = Array.from({ length: Math.max(0, stream.length - 1) }, (_, i) => i + 1);
        assertCutsDoNotMatter(stream, expected, everyByte);
      }),
      { numRuns: 60 },
    );
  });

  it('the server answers every ping with a pong of the same payload, and a close with a close echoing its code and reason', () => {
    fc.assert(
      fc.property(withCuts, ({ stream, expected, cuts }) => {
        const { answers } = run(stream, cuts);
        const want: [number, string][] = [];
        for (const e of expected) {
          if (e.type === 'ping') want.push([Opcode.Pong, e.payload.toString('hex')]);
          if (e.type === 'close') want.push([Opcode.Close, Buffer.concat([Buffer.from([e.code >> 8, e.code & 0xff]), Buffer.from(e.reason)]).toString('hex')]);
        }
        assert.deepEqual(answers, want);
      }),
      { numRuns: 100 },
    );
  });
});
