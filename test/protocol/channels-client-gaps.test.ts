/**
 * PROTOCOL.md §7 on the client side: a subscription delivers each
 * publication once and in offset order; a `pub` past a gap (the server
 * skipped offsets it could not read back) makes it ask `history` since its
 * last position, hold later `pub`s meanwhile, deliver what comes back, and
 * report what could not be had (410) before going on. Driven through a fake
 * client (the SubscriptionHost seam), so every reply is under the test's control.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Subscription, type SubscriptionHost } from '../../src/client-lib/subscription.js';
import type { Frame } from '../../src/client-lib/transport.js';
import type { ChannelErrorInfo, Publication } from '../../src/client-lib/types.js';

type Done = (error: ChannelErrorInfo | null, reply?: Frame) => void;

/** A fake client: records commands and lets the test answer each. */
function host(): SubscriptionHost & { sent: Record<string, unknown>[]; answer: Done[]; malformed: string[] } {
  const sent: Record<string, unknown>[] = [];
  const answer: Done[] = [];
  const malformed: string[] = [];
  return {
    sent,
    answer,
    connected: true,
    call(frame, done) {
      sent.push(frame);
      answer.push(done);
    },
    request: () => Promise.reject(new Error('unused')),
    delivered: () => undefined,
    malformed: ((what: string) => void malformed.push(what)) as SubscriptionHost['malformed'] & string[],
    forget: () => undefined,
    publish: () => Promise.reject(new Error('unused')),
    history: () => Promise.reject(new Error('unused')),
    presence: () => Promise.reject(new Error('unused')),
  } as SubscriptionHost & { sent: Record<string, unknown>[]; answer: Done[]; malformed: string[] };
}

const pub = (offset: number, epoch = 'E'): Publication => ({ channel: 'c', offset, epoch, data: offset });

/** A subscription subscribed at offset `at` of epoch E, with what it delivers and reports. */
function subscribed(h: ReturnType<typeof host>, at: number, options = {}) {
  const sub = new Subscription(h, 'c', options);
  const got: number[] = [];
  const errors: ChannelErrorInfo[] = [];
  sub.on('publication', (p) => got.push(p.offset));
  sub.on('error', (e) => errors.push(e));
  sub.start();
  h.answer[0]?.(null, { type: 'subscribed', offset: at, epoch: 'E' });
  return { sub, got, errors };
}

describe('§7 client: a gap in a channel’s offsets', () => {
  it('asks history since the last position, holds later pubs, then delivers everything once, in order', () => {
    const h = host();
    const { sub, got, errors } = subscribed(h, 2);
    sub.pub(pub(3));
    sub.pub(pub(6));
    assert.deepEqual(h.sent[1], { type: 'history', channel: 'c', since: { offset: 3, epoch: 'E' }, limit: 2 });
    sub.pub(pub(7));
    sub.pub(pub(6));
    assert.deepEqual(got, [3], 'nothing past the gap before it is filled');
    h.answer[1]?.(null, { type: 'history', offset: 7, epoch: 'E', publications: [{ offset: 4, data: 4 }, { offset: 5, data: 5 }] });
    assert.deepEqual(got, [3, 4, 5, 6, 7]);
    assert.deepEqual(errors, []);
    assert.deepEqual(sub.position, { offset: 7, epoch: 'E' });
  });

  it('what history cannot give is reported as 410 once, and delivery goes on after the gap', () => {
    const h = host();
    const { sub, got, errors } = subscribed(h, 1);
    sub.pub(pub(4));
    h.answer[1]?.({ code: 410, message: 'trimmed' } as ChannelErrorInfo);
    assert.deepEqual(got, [4]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 410);
    assert.match(errors[0]?.message ?? '', /2 publications of "c" between offsets 1 and 4/);
    sub.pub(pub(5));
    assert.deepEqual(got, [4, 5]);
  });

  it('a history that gives only part of the gap delivers that part and reports the rest', () => {
    const h = host();
    const { sub, got, errors } = subscribed(h, 1);
    sub.pub(pub(5));
    h.answer[1]?.(null, { type: 'history', offset: 5, epoch: 'E', publications: [{ offset: 3, data: 3 }] });
    assert.deepEqual(got, [3, 5]);
    assert.equal(errors[0]?.code, 410);
  });

  it('a history from another epoch fills nothing: the gap is reported', () => {
    const h = host();
    const { sub, got, errors } = subscribed(h, 1);
    sub.pub(pub(3));
    h.answer[1]?.(null, { type: 'history', offset: 9, epoch: 'F', publications: [{ offset: 2, data: 2 }] });
    assert.deepEqual(got, [3]);
    assert.equal(errors[0]?.code, 410);
  });

  it('the connection lost during the fill (499) drops the held pubs: the resubscribe recovers from the last delivered position', () => {
    const h = host();
    const { sub, got, errors } = subscribed(h, 2);
    sub.pub(pub(5));
    h.answer[1]?.({ code: 499, message: 'connection lost' } as ChannelErrorInfo);
    sub.lost();
    assert.deepEqual(got, []);
    assert.deepEqual(errors, []);
    sub.start();
    assert.deepEqual(h.sent[2], { type: 'subscribe', channel: 'c', recover: { offset: 2, epoch: 'E' } });
  });

  it('a gap of more than 100 asks for the first 100 (maxHistoryRead)', () => {
    const h = host();
    const { sub } = subscribed(h, 0);
    sub.pub(pub(500));
    assert.equal(h.sent[1]?.limit, 100);
  });

  it('a subscription with recover:false delivers past a gap as it comes', () => {
    const h = host();
    const { sub, got } = subscribed(h, 1, { recover: false });
    sub.pub(pub(5));
    assert.deepEqual(got, [5]);
    assert.equal(h.sent.length, 1);
  });

  it('a new epoch is no gap: delivery starts over; a later pub of the old epoch is stale', () => {
    const h = host();
    const { sub, got } = subscribed(h, 7);
    sub.pub(pub(1, 'F'));
    sub.pub(pub(8, 'E'));
    sub.pub(pub(2, 'F'));
    assert.deepEqual(got, [1, 2]);
    assert.equal(h.sent.length, 1);
    assert.deepEqual(sub.position, { offset: 2, epoch: 'F' });
  });

  it('recovered publications out of order are delivered in order; one without an integer offset is reported, not delivered', () => {
    const h = host();
    const sub = new Subscription(h, 'c', { since: { offset: 0, epoch: 'E' } });
    const got: number[] = [];
    sub.on('publication', (p) => got.push(p.offset));
    sub.start();
    h.answer[0]?.(null, { type: 'subscribed', offset: 3, epoch: 'E', recovered: true, publications: [{ offset: 3 }, { offset: 1 }, { offset: 'x' }, { offset: 2 }, { offset: 2 }] });
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(h.malformed.length, 1);
  });
});
