/**
 * The RedisBroker's wire pieces, without Redis: topic → channel names (one to
 * one, prefix-safe, no hash tags) and the message envelope.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TopicMessage } from '../../src/pubsub/message.js';
import { channelName, checkPrefix, escapeTopic } from '../../src/redis/channel.js';
import { ENVELOPE_VERSION, HEADER_SIZE, RECORD_HEADER_SIZE, decodeEnvelope, encodeEnvelope, newNodeId } from '../../src/redis/envelope.js';

// Any UTF-16 string, lone surrogates included.
const anyString = fc.string({ unit: 'binary' });
const withSpecials = fc.string({ unit: fc.constantFrom('%', ':', '{', '}', 'a', '\uD800', '\uDC00', 'u', '3', 'A') });
const topic = fc.oneof(anyString, withSpecials);

/** The channel name as Redis stores it: UTF-8 bytes of the JS string. */
const wire = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

describe('channel names', () => {
  it('leave ordinary topics readable', () => {
    assert.equal(channelName('fullduplex', 'room-1/général 😀'), 'fullduplex:room-1/général 😀');
  });

  it('escape %, :, {, } and lone surrogates', () => {
    assert.equal(escapeTopic('a:b{c}d%e'), 'a%3Ab%7Bc%7Dd%25e');
    assert.equal(escapeTopic('\uD800x\uDC00'), '%uD800x%uDC00');
    assert.equal(escapeTopic('\uD83D\uDE00'), '\uD83D\uDE00', 'a surrogate pair is a character, kept');
  });

  it('are one to one on the wire (after UTF-8 encoding)', () => {
    fc.assert(
      fc.property(topic, topic, (a, b) => {
        if (a !== b) assert.notEqual(wire(channelName('p', a)), wire(channelName('p', b)));
      }),
      { numRuns: 2000 },
    );
  });

  it('never collide across different prefixes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), topic, topic, (p1, p2, t1, t2) => {
        if (p1 !== p2) assert.notEqual(wire(channelName(p1, t1)), wire(channelName(p2, t2)));
      }),
      { numRuns: 2000 },
    );
    assert.notEqual(channelName('app', 'x:y'), channelName('app:x', 'y'));
  });

  it('refuse a prefix with a lone surrogate (two would be the same bytes)', () => {
    assert.throws(() => checkPrefix('p\uD800'), TypeError);
    assert.equal(checkPrefix('chat{1}:é'), 'chat{1}:é');
  });

  it('contain no hash-tag braces and no colon from the topic', () => {
    fc.assert(
      fc.property(topic, (t) => {
        assert.doesNotMatch(escapeTopic(t), /[{}:]/);
      }),
    );
  });
});

describe('envelope', () => {
  const me = newNodeId();
  const other = newNodeId();
  const msg = (data: string | Buffer): TopicMessage => TopicMessage.from('t', data);

  it('lays out version, node id, then flags + length + payload per message', () => {
    const bytes = encodeEnvelope(me, [msg(Buffer.from([7, 8])), msg('hi')]);
    assert.equal(bytes.length, HEADER_SIZE + RECORD_HEADER_SIZE + 2 + RECORD_HEADER_SIZE + 2);
    assert.equal(bytes[0], ENVELOPE_VERSION);
    assert.deepEqual(bytes.subarray(1, 9), me);
    assert.deepEqual([...bytes.subarray(9)], [0x01, 0, 0, 0, 2, 7, 8, 0x00, 0, 0, 0, 2, 0x68, 0x69]);
  });

  it('round-trips text, binary and empty messages from another node, in order', () => {
    const sent = [msg('héllo'), msg(Buffer.from([0, 255])), msg(''), msg(Buffer.alloc(0))];
    const d = decodeEnvelope(other, encodeEnvelope(me, sent), 't');
    assert.equal(d.kind, 'messages');
    if (d.kind !== 'messages') return;
    assert.deepEqual(d.messages.map((m) => [m.topic, m.payload, m.binary]), sent.map((m) => ['t', m.payload, m.binary]));
  });

  it('recognises its own node id', () => {
    assert.equal(decodeEnvelope(me, encodeEnvelope(me, [msg('x')]), 't').kind, 'own');
  });

  it('rejects short or truncated envelopes, other versions, no message, and text that is not UTF-8', () => {
    const reason = (b: Buffer): string => {
      const d = decodeEnvelope(me, b, 't');
      return d.kind === 'invalid' ? d.reason : `not rejected: ${d.kind}`;
    };
    assert.match(reason(Buffer.alloc(HEADER_SIZE - 1)), /shorter than its header/);
    const good = encodeEnvelope(other, [msg('abc')]);
    const v2 = Buffer.from(good);
    v2[0] = 2;
    assert.match(reason(v2), /version 2/);
    assert.match(reason(good.subarray(0, HEADER_SIZE)), /without a message/);
    assert.match(reason(good.subarray(0, HEADER_SIZE + 3)), /truncated record header/);
    assert.match(reason(good.subarray(0, good.length - 1)), /truncated record/);
    const bad = encodeEnvelope(other, [msg(Buffer.from([0xc3, 0x28]))]);
    bad[HEADER_SIZE] = 0; // claims text
    assert.match(reason(bad), /UTF-8/);
  });

  it('decodes whatever it encodes (property)', () => {
    const message = fc.oneof(fc.string().map((t) => msg(t)), fc.uint8Array({ maxLength: 300 }).map((b) => msg(Buffer.from(b))));
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), (sent) => {
        const d = decodeEnvelope(other, encodeEnvelope(me, sent), 't');
        assert.equal(d.kind, 'messages');
        if (d.kind === 'messages') assert.deepEqual(d.messages.map((m) => [m.payload, m.binary]), sent.map((m) => [m.payload, m.binary]));
      }),
    );
  });
});
