/**
 * The RedisBroker's wire pieces, without Redis: topic → channel names (one to
 * one, prefix-safe, no hash tags) and the message envelope.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TopicMessage } from '../../src/pubsub/message.js';
import { channelName, checkPrefix, escapeTopic } from '../../src/redis/channel.js';
import { ENVELOPE_VERSION, HEADER_SIZE, decodeEnvelope, encodeEnvelope, newNodeId } from '../../src/redis/envelope.js';

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

  it('lays out version, flags, node id, payload', () => {
    const bytes = encodeEnvelope(me, TopicMessage.from('t', Buffer.from([7, 8])));
    assert.equal(bytes.length, HEADER_SIZE + 2);
    assert.equal(bytes[0], ENVELOPE_VERSION);
    assert.equal(bytes[1], 0x01, 'binary flag');
    assert.deepEqual(bytes.subarray(2, 10), me);
    assert.deepEqual([...bytes.subarray(10)], [7, 8]);
    assert.equal(encodeEnvelope(me, TopicMessage.from('t', 't'))[1], 0x00, 'text');
  });

  it('round-trips text and binary from another node', () => {
    for (const m of [TopicMessage.from('t', 'héllo'), TopicMessage.from('t', Buffer.from([0, 255])), TopicMessage.from('t', '')]) {
      const d = decodeEnvelope(other, encodeEnvelope(me, m), 't');
      assert.equal(d.kind, 'message');
      if (d.kind !== 'message') return;
      assert.deepEqual(d.message.payload, m.payload);
      assert.equal(d.message.binary, m.binary);
    }
  });

  it('recognises its own node id', () => {
    assert.equal(decodeEnvelope(me, encodeEnvelope(me, TopicMessage.from('t', 'x')), 't').kind, 'own');
  });

  it('rejects short envelopes, other versions and text that is not UTF-8', () => {
    assert.equal(decodeEnvelope(me, Buffer.alloc(HEADER_SIZE - 1), 't').kind, 'invalid');
    const v2 = encodeEnvelope(other, TopicMessage.from('t', 'x'));
    v2[0] = 2;
    assert.equal(decodeEnvelope(me, v2, 't').kind, 'invalid');
    const bad = encodeEnvelope(other, TopicMessage.from('t', Buffer.from([0xc3, 0x28])));
    bad[1] = 0; // claims text
    assert.equal(decodeEnvelope(me, bad, 't').kind, 'invalid');
  });
});
