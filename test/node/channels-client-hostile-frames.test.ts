/**
 * The channels client against a server that sends hostile FRAMES once
 * connected (PROTOCOL.md §1–§3, §7): text that is not a JSON object, replies
 * with unknown ids, duplicate or wrong-typed replies, binary and huge
 * frames, and `pub` pushes that break the offset rules (for a channel not
 * subscribed, going backwards, repeating, jumping, a new epoch, malformed
 * offsets and payloads). The client must neither crash nor stall, deliver
 * each publication at most once and in order, and stay usable.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../../src/index.js';
import { ChannelError } from '../../src/client-lib/codes.js';
import { type Json, connectedClient, events, push, settle, sleep, until } from '../helpers/channels-client-hostile.js';

const pub = (offset: unknown, data: unknown = offset, epoch = 'E', channel = 'room'): Json => ({ type: 'pub', channel, offset, epoch, data });

/** The client still works: a publish is answered and resolves. */
async function stillWorks(c: { publish(ch: string, d: unknown): Promise<{ offset: number }> }): Promise<void> {
  assert.equal((await c.publish('room', 'probe')).offset, 1);
}

describe('channels client: frames that are not protocol objects', () => {
  it('ignores non-JSON, non-object, array, deeply nested, type-less, unknown-type and binary frames, and stays usable', async (t) => {
    const { s, c, log, got, crashes } = await connectedClient(t, {}, {}, 'room');
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    for (const text of ['not json', '{"type":', '42', '"pub"', 'null', 'true', '[1,2]', JSON.stringify([pub(1)]), deep, '{}', '{"id":2}', '{"type":"bogus","channel":"room"}', '{"type":7}']) {
      push(s.last, text);
    }
    s.last.send(Buffer.from(JSON.stringify(pub(1))), { binary: true });
    await sleep(200);
    assert.equal(c.state, 'connected');
    assert.deepEqual(got, [], 'a publication came out of a malformed or binary frame');
    assert.equal(events(log, 'disconnected').length, 0);
    await stillWorks(c);
    await settle(c, s, crashes, 300);
  });

  it('a reply whose id matches no command, and a duplicate reply, change nothing', async (t) => {
    const { s, c, crashes } = await connectedClient(t, {
      frame: (ws, f) => {
        if (f.type !== 'publish') return false;
        for (const offset of [7, 8]) push(ws, { id: f.id, type: 'published', offset, epoch: 'E' }); // the same id twice
        push(ws, { id: Number(f.id) + 1, type: 'published', offset: 9, epoch: 'E' }); // the id of the NEXT command
        push(ws, { id: 123_456, type: 'error', code: 500, message: 'stray' });
        return true;
      },
    });
    assert.deepEqual(await c.publish('room', 1), { offset: 7, epoch: 'E' });
    // The stray reply for the next id arrived before that command existed: it must not answer it.
    const second = await c.publish('room', 2);
    assert.equal(second.offset, 7);
    await settle(c, s, crashes, 300);
  });

  it('an error push without id is an `error` event; an error reply rejects the command with its code', async (t) => {
    const { s, c, log, crashes } = await connectedClient(t, {
      frame: (ws, f) => f.type === 'publish' && (push(ws, { id: f.id, type: 'error', code: 429, message: 'slow down' }), true),
    });
    push(s.last, { type: 'error', code: 400, message: 'bad json' });
    await until(() => events(log, 'error').length === 1, 'error event');
    assert.equal(events(log, 'error')[0]?.code, 400);
    await assert.rejects(c.publish('room', 1), (e: ChannelError) => e instanceof ChannelError && e.code === 429 && e.message === 'slow down');
    await settle(c, s, crashes, 300);
  });

  it('a reply of the wrong type for a command does not resolve the command with garbage', async (t) => {
    const { s, c, crashes } = await connectedClient(t, {
      frame: (ws, f) => f.type === 'publish' && (push(ws, { id: f.id, type: 'presence', channel: 'room', clients: [] }), true),
    });
    const outcome = await c.publish('room', 1).then(
      (r) => r,
      (e: unknown) => e,
    );
    // §2: the success reply of `publish` is `published` with an offset; anything else is not an acknowledgement.
    assert.ok(outcome instanceof ChannelError || Number.isInteger((outcome as { offset: unknown }).offset), `publish resolved with ${JSON.stringify(outcome)}`);
    await settle(c, s, crashes, 300);
  });

  it('a binary or text frame bigger than the client accepts closes that connection cleanly: pending commands reject, the client reconnects or stops, no crash', async (t) => {
    // A WebSocket that accepts at most 64 KiB messages (the WHATWG API has no such option; fullduplex's has).
    class Small extends WebSocket {
      constructor(url: string, protocols: string) {
        super(url, protocols, { maxPayload: 64 * 1024 });
      }
    }
    const { s, c, log, crashes } = await connectedClient(t, { frame: (_ws, f) => f.type === 'publish' }, { WebSocket: Small });
    const pending = c.publish('room', 1);
    await until(() => s.sent('publish').length === 1, 'publish sent');
    push(s.last, JSON.stringify(pub(1, 'x'.repeat(200 * 1024))));
    await assert.rejects(pending, { code: 499 });
    await until(() => events(log, 'disconnected').length === 1, 'disconnected');
    // The client's WebSocket fails the connection (RFC 6455 §7.4.1 1009); WHATWG reports a failed connection as 1006.
    assert.ok([1006, 1009].includes(events(log, 'disconnected')[0]?.code ?? 0));
    await settle(c, s, crashes, 300);
  });

  it('a huge (8 MiB) publication is delivered whole', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    const big = 'y'.repeat(8 * 1024 * 1024);
    push(s.last, pub(1, big));
    await until(() => got.length === 1, 'the big publication');
    assert.equal(got[0]?.data, big);
    await settle(c, s, crashes, 300);
  });
});

describe('channels client: pub pushes that break the offset rules (PROTOCOL.md §7)', () => {
  it('a pub for a channel the client did not subscribe to is not delivered', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    push(s.last, pub(1, 'x', 'E', 'other'));
    push(s.last, { type: 'join', channel: 'other', client: 'z', user: 'z' });
    push(s.last, { type: 'unsubscribed', channel: 'other', code: 4000, reason: 'x' });
    push(s.last, pub(1, 'mine'));
    await until(() => got.length === 1, 'own publication');
    assert.deepEqual(got.map((p) => [p.channel, p.data]), [['room', 'mine']]);
    await settle(c, s, crashes, 300);
  });

  it('offsets going backwards or repeating are dropped: each publication is delivered once, in order', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    for (const o of [1, 2, 3, 2, 3, 1, 3, 4]) push(s.last, pub(o));
    await until(() => got.length >= 4, 'four publications');
    await sleep(100);
    assert.deepEqual(got.map((p) => p.offset), [1, 2, 3, 4]);
    await settle(c, s, crashes, 300);
  });

  it('a pub whose offset is not a number is not delivered and does not disable the duplicate check', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    for (const f of [pub(1), pub(2), pub('x', 'bad'), pub(null, 'bad'), { type: 'pub', channel: 'room', epoch: 'E', data: 'bad' }, pub(2), pub(1), pub(3)]) push(s.last, f);
    await until(() => got.some((p) => p.data === 3), 'offset 3');
    await sleep(100);
    // §7: a client MUST ignore a pub whose offset is not greater than the last it delivered in the same epoch.
    assert.deepEqual(got.map((p) => p.data), [1, 2, 3]);
    await settle(c, s, crashes, 300);
  });

  it('a gap (offsets 1, 2, then 5) is noticed: the client recovers 3 and 4 or reports the gap, never skips it silently', async (t) => {
    const { s, c, log, got, crashes } = await connectedClient(t, {}, {}, 'room');
    for (const o of [1, 2, 5]) push(s.last, pub(o));
    await until(() => got.length >= 2, 'publications');
    await sleep(500);
    // §7 promises a subscriber every publication "with no gap": a jump means the server lost some.
    // Recovering = a new subscribe that recovers from offset 2 (or a history since it); reporting = an `error` event.
    const recovering = s.sent('subscribe').some((f) => (f.recover as Json | undefined)?.offset === 2) || s.sent('history').length > 0;
    const reported = events(log, 'error').length > 0;
    assert.ok(recovering || reported, `offsets delivered ${got.map((p) => p.offset).join(',')} with neither recovery nor report`);
    await settle(c, s, crashes, 300);
  });

  it('an epoch change mid-stream starts over from the new epoch, and the duplicate check follows it', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    for (const f of [pub(1), pub(2), pub(1, 'F1', 'F'), pub(2, 'F2', 'F'), pub(1, 'F1', 'F'), pub(2, 'F2', 'F'), pub(3, 'F3', 'F')]) push(s.last, f);
    await until(() => got.length >= 5, 'five publications');
    await sleep(100);
    assert.deepEqual(got.map((p) => `${p.epoch}${p.offset}`), ['E1', 'E2', 'F1', 'F2', 'F3']);
    assert.deepEqual(c.getSubscription('room')?.position, { offset: 3, epoch: 'F' });
    await settle(c, s, crashes, 300);
  });

  it('a `b64` that is not valid base64 neither crashes the process nor stops later publications', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    push(s.last, { type: 'pub', channel: 'room', offset: 1, epoch: 'E', b64: '***not base64***' });
    push(s.last, pub(2, 'after'));
    await until(() => got.some((p) => p.data === 'after') || crashes.length > 0, 'the next publication', 3000);
    await sleep(100);
    assert.deepEqual(crashes, [], 'an invalid b64 from the server crashed the process');
    assert.equal(got.at(-1)?.data, 'after');
    await settle(c, s, crashes, 300);
  });

  it('a recovered list with an invalid b64 in the `subscribed` reply does not crash', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {
      frame: (ws, f) =>
        f.type === 'subscribe' &&
        (push(ws, { id: f.id, type: 'subscribed', channel: f.channel, offset: 2, epoch: 'E', recovered: true, publications: [{ offset: 1, b64: '%%' }, { offset: 2, data: 'ok' }] }), true),
    });
    c.subscribe('room', { since: { offset: 0, epoch: 'E' } });
    await until(() => got.some((p) => p.data === 'ok') || crashes.length > 0, 'the recovered publication', 3000);
    assert.deepEqual(crashes, []);
    await settle(c, s, crashes, 300);
  });

  it('a pub with both `data` and `b64` (§1: never both) is delivered at most once and does not crash', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {}, {}, 'room');
    push(s.last, { type: 'pub', channel: 'room', offset: 1, epoch: 'E', data: 'text', b64: 'AAE=' });
    push(s.last, pub(2));
    await until(() => got.some((p) => p.offset === 2), 'the next publication');
    assert.ok(got.filter((p) => p.offset === 1).length <= 1);
    await settle(c, s, crashes, 300);
  });

  it('recovered publications out of order or repeated in a `subscribed` reply are delivered once, in order', async (t) => {
    const { s, c, got, crashes } = await connectedClient(t, {
      frame: (ws, f) => {
        if (f.type !== 'subscribe') return false;
        const list = [3, 1, 2, 3, 4, 4].map((o) => ({ offset: o, data: o }));
        push(ws, { id: f.id, type: 'subscribed', channel: f.channel, offset: 4, epoch: 'E', recovered: true, publications: list });
        return true;
      },
    });
    c.subscribe('room', { since: { offset: 0, epoch: 'E' } });
    await until(() => got.some((p) => p.offset === 4), 'offset 4');
    const offsets = got.map((p) => p.offset);
    assert.deepEqual(offsets, [...new Set(offsets)].sort((a, b) => a - b), `delivered ${offsets.join(',')}`);
    await settle(c, s, crashes, 300);
  });
});
