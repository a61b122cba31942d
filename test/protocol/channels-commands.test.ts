/**
 * PROTOCOL.md §1, §2, §4, §5 without sockets: parsing and validation of
 * client commands (every code a parse can give), fallback POST bodies, the
 * server's frames, channel rules, and the dispatcher's answers while the
 * server shuts down.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand, parseFrame, validChannel } from '../../src/channels/commands.js';
import { parseBody } from '../../src/channels/fallback.js';
import { historyFrame, pubFrame, storedPayload, subscribedFrame } from '../../src/channels/frames.js';
import { ChannelRules } from '../../src/channels/rules.js';
import { Dispatcher, type DispatchHost } from '../../src/channels/dispatch.js';
import { Session } from '../../src/channels/session.js';
import { CHANNEL_DEFAULTS } from '../../src/channels/options.js';
import { MemoryStore } from '../../src/channels/memory-store.js';
import { LocalBroker } from '../../src/pubsub/local.js';
import { Presence } from '../../src/channels/presence.js';
import { ErrorCode, shouldReconnect } from '../../src/client-lib/codes.js';

describe('§1/§2 command parsing', () => {
  it('accepts every command with its fields', () => {
    assert.deepEqual(parseFrame('{"id":1,"type":"connect","token":"t","name":"app"}'), { type: 'connect', id: 1, token: 't', name: 'app' });
    assert.deepEqual(parseFrame('{"id":1,"type":"connect"}'), { type: 'connect', id: 1, token: undefined, name: undefined });
    assert.deepEqual(parseFrame('{"id":2,"type":"subscribe","channel":"a"}'), { type: 'subscribe', id: 2, channel: 'a', recover: null });
    assert.deepEqual(parseFrame('{"id":2,"type":"subscribe","channel":"a","recover":{"offset":4,"epoch":"e"}}'), {
      type: 'subscribe',
      id: 2,
      channel: 'a',
      recover: { offset: 4, epoch: 'e' },
    });
    assert.deepEqual(parseFrame('{"id":3,"type":"unsubscribe","channel":"a"}'), { type: 'unsubscribe', id: 3, channel: 'a' });
    assert.deepEqual(parseFrame('{"id":4,"type":"publish","channel":"a","data":{"x": [1, 2]}}'), { type: 'publish', id: 4, channel: 'a', payload: '{"data":{"x":[1,2]}}' });
    assert.deepEqual(parseFrame('{"id":4,"type":"publish","channel":"a","data":null}'), { type: 'publish', id: 4, channel: 'a', payload: '{"data":null}' });
    assert.deepEqual(parseFrame('{"id":4,"type":"publish","channel":"a","b64":"AAE="}'), { type: 'publish', id: 4, channel: 'a', payload: '{"b64":"AAE="}' });
    assert.deepEqual(parseFrame('{"id":5,"type":"history","channel":"a","limit":3,"since":{"offset":0,"epoch":"e"}}'), {
      type: 'history',
      id: 5,
      channel: 'a',
      limit: 3,
      since: { offset: 0, epoch: 'e' },
    });
    assert.deepEqual(parseFrame('{"id":6,"type":"presence","channel":"a"}'), { type: 'presence', id: 6, channel: 'a' });
    assert.deepEqual(parseFrame('{"id":7,"type":"ping"}'), { type: 'ping', id: 7 });
    assert.deepEqual(parseFrame('{"type":"pong"}'), { type: 'pong' });
    // Unknown fields are ignored.
    assert.deepEqual(parseFrame('{"id":7,"type":"ping","future":true}'), { type: 'ping', id: 7 });
  });

  it('400 for what is not a well-formed command; the id is kept when it was readable', () => {
    const cases: [string, number | null][] = [
      ['', null],
      ['{', null],
      ['null', null],
      ['[]', null],
      ['"x"', null],
      ['{"type":"ping"}', null],
      ['{"id":0,"type":"ping"}', null],
      ['{"id":1.5,"type":"ping"}', null],
      ['{"id":"1","type":"ping"}', null],
      ['{"id":9007199254740992,"type":"ping"}', null],
      ['{"id":1}', 1],
      ['{"id":1,"type":"connect","token":5}', 1],
      ['{"id":1,"type":"connect","name":"' + 'n'.repeat(200) + '"}', 1],
      ['{"id":2,"type":"subscribe"}', 2],
      ['{"id":2,"type":"subscribe","channel":5}', 2],
      ['{"id":2,"type":"subscribe","channel":"a","recover":5}', 2],
      ['{"id":2,"type":"subscribe","channel":"a","recover":{"offset":-1,"epoch":"e"}}', 2],
      ['{"id":2,"type":"subscribe","channel":"a","recover":{"offset":1}}', 2],
      ['{"id":4,"type":"publish","channel":"a"}', 4],
      ['{"id":4,"type":"publish","channel":"a","data":1,"b64":"AA=="}', 4],
      ['{"id":4,"type":"publish","channel":"a","b64":"AA"}', 4],
      ['{"id":4,"type":"publish","channel":"a","b64":"A A="}', 4],
      ['{"id":5,"type":"history","channel":"a","limit":"3"}', 5],
      ['{"id":5,"type":"history","channel":"a","since":{"offset":1,"epoch":3}}', 5],
    ];
    for (const [text, id] of cases) {
      assert.deepEqual(
        (({ id: i, code }) => ({ id: i, code }))(parseFrame(text) as { id: number | null; code: number }),
        { id, code: ErrorCode.BadRequest },
        text,
      );
    }
  });

  it('404 for an unknown type', () => {
    assert.deepEqual(parseCommand({ id: 3, type: 'rpc' }), { id: 3, code: ErrorCode.UnknownCommand, message: 'unknown command type "rpc"' });
  });

  it('§4 channel names: 1 to 255 characters, no control characters', () => {
    for (const ok of ['a', 'chat:room/1', 'ünïcödé ✓', 'x'.repeat(255)]) assert.equal(validChannel(ok), true, ok);
    for (const bad of ['', 'x'.repeat(256), 'a\u0000', 'tab\there', 'del\u007f', 5, null]) assert.equal(validChannel(bad), false, String(bad));
  });

  it('§9 fallback bodies: one command or an array of up to 16, each within the size limit', () => {
    assert.equal(parseBody('{"id":1,"type":"ping"}').length, 1);
    assert.equal(parseBody(JSON.stringify(Array.from({ length: 16 }, (_, i) => ({ id: i + 1, type: 'ping' })))).length, 16);
    assert.deepEqual(parseBody(JSON.stringify(Array.from({ length: 17 }, (_, i) => ({ id: i + 1, type: 'ping' })))).map((c) => 'code' in c && c.code), [ErrorCode.BadRequest]);
    assert.deepEqual(parseBody('nope'), [{ id: null, code: ErrorCode.BadRequest, message: 'not JSON' }]);
    const big = [{ id: 1, type: 'ping' }, { id: 2, type: 'publish', channel: 'a', data: 'x'.repeat(100) }];
    assert.deepEqual(parseBody(JSON.stringify(big), 64).map((c) => ('code' in c ? c.code : c.type)), ['ping', ErrorCode.TooLarge]);
    assert.deepEqual(parseBody(JSON.stringify(big[1]), 64).map((c) => ('code' in c ? [c.id, c.code] : c.type)), [[2, ErrorCode.TooLarge]]);
  });
});

describe('§2/§3 server frames', () => {
  it('splices stored payloads into pub pushes and replies without re-serialising them', () => {
    const payload = storedPayload('{"data":{"t":"hi"}}', '{"client":"c","user":"u"}');
    assert.equal(payload, '{"data":{"t":"hi"},"info":{"client":"c","user":"u"}}');
    assert.equal(storedPayload('{"b64":"AA=="}', null), '{"b64":"AA=="}');
    assert.deepEqual(JSON.parse(pubFrame('ch"1', 3, 'ep', payload)), { type: 'pub', channel: 'ch"1', offset: 3, epoch: 'ep', data: { t: 'hi' }, info: { client: 'c', user: 'u' } });
    const pubs = [
      { offset: 2, payload: '{"data":1}' },
      { offset: 3, payload: '{"b64":"AA=="}' },
    ];
    assert.deepEqual(JSON.parse(subscribedFrame(7, 'c', { offset: 3, epoch: 'e' }, { recovered: true, publications: pubs })), {
      id: 7,
      type: 'subscribed',
      channel: 'c',
      offset: 3,
      epoch: 'e',
      recovered: true,
      publications: [
        { offset: 2, data: 1 },
        { offset: 3, b64: 'AA==' },
      ],
    });
    assert.deepEqual(JSON.parse(subscribedFrame(7, 'c', { offset: 3, epoch: 'e' }, { recovered: false, reason: 'trimmed', publications: [] })), {
      id: 7,
      type: 'subscribed',
      channel: 'c',
      offset: 3,
      epoch: 'e',
      recovered: false,
      reason: 'trimmed',
    });
    assert.deepEqual(JSON.parse(subscribedFrame(7, 'c', { offset: 0, epoch: 'e' }, null)), { id: 7, type: 'subscribed', channel: 'c', offset: 0, epoch: 'e' });
    assert.deepEqual(JSON.parse(historyFrame(8, 'c', { offset: 3, epoch: 'e' }, pubs)).publications, [
      { offset: 2, data: 1 },
      { offset: 3, b64: 'AA==' },
    ]);
  });
});

describe('§4 channel options by name or pattern', () => {
  it('the first matching rule wins; missing fields come from the defaults', () => {
    const rules = new ChannelRules([
      { match: 'chat:vip', publish: false },
      { match: 'chat:*', history: { size: 10, ttl: 1000 }, publish: true, presence: true },
      { match: /^feed\.\d+$/, history: { size: 3, ttl: 0 } },
      { match: (c) => c.endsWith('!'), presence: true },
    ]);
    assert.deepEqual(rules.get('chat:vip'), { history: { size: 0, ttl: 300_000 }, presence: false, publish: false });
    assert.deepEqual(rules.get('chat:lobby'), { history: { size: 10, ttl: 1000 }, presence: true, publish: true });
    assert.equal(rules.get('chat:').publish, true);
    assert.equal(rules.get('xchat:a').publish, false);
    assert.equal(rules.get('feed.12').history.size, 3);
    assert.equal(rules.get('feed.x').history.size, 0);
    assert.equal(rules.get('hey!').presence, true);
    // Regex metacharacters in a pattern are literal.
    assert.equal(new ChannelRules([{ match: 'a.b*', publish: true }]).get('axb1').publish, false);
    assert.throws(() => new ChannelRules([{ match: 'x', history: { size: -1, ttl: 0 } }]), RangeError);
  });
});

describe('§5/§6 codes', () => {
  it('reconnect after 4500–4999 and transport losses, never after 4000–4499, 1000 or 1009', () => {
    for (const code of [1001, 1006, 1011, 1012, 4500, 4501, 4502, 4503, 4504, 4999]) assert.equal(shouldReconnect(code), true, String(code));
    for (const code of [1000, 1009, 4000, 4400, 4401, 4406, 4429, 4499]) assert.equal(shouldReconnect(code), false, String(code));
  });
});

class FakeSession extends Session {
  readonly transport = 'websocket' as const;
  readonly sent: string[] = [];
  ended: number | null = null;
  send(text: string): void {
    this.sent.push(text);
  }
  get bufferedAmount(): number {
    return 0;
  }
  attachFanout(): boolean {
    return true;
  }
  detachFanout(): void {}
  protected end(code: number): void {
    this.ended = code;
  }
}

describe('dispatcher', () => {
  it('503 while the server shuts down; 401 before connect; pings are answered at once', async (t) => {
    const store = new MemoryStore();
    t.after(() => store.close());
    const broker = new LocalBroker();
    const host: DispatchHost<unknown> = {
      limits: CHANNEL_DEFAULTS,
      rules: new ChannelRules(),
      store,
      broker,
      presenceKeeper: new Presence({ store, broker, presenceTtl: 1000, reportError: () => undefined }),
      hooks: {},
      closing: false,
      hub: () => {
        throw new Error('not reached');
      },
      existingHub: () => undefined,
      connected: () => undefined,
      reportError: () => undefined,
    };
    const d = new Dispatcher(host);
    const s = new FakeSession({ transport: 'websocket', headers: {}, url: '/', origin: undefined, remoteAddress: undefined }, Date.now());
    d.handle(s, { type: 'subscribe', id: 1, channel: 'a', recover: null });
    assert.equal(JSON.parse(s.sent[0] ?? '').code, ErrorCode.Unauthorized);
    assert.equal(await d.connect(s, { type: 'connect', id: 2, token: undefined, name: undefined }), true);
    assert.equal(JSON.parse(s.sent[1] ?? '').type, 'connected');
    (host as { closing: boolean }).closing = true;
    d.handle(s, { type: 'subscribe', id: 3, channel: 'a', recover: null });
    assert.deepEqual(JSON.parse(s.sent[2] ?? ''), { id: 3, type: 'error', code: ErrorCode.Unavailable, message: 'server is shutting down' });
    d.handle(s, { type: 'ping', id: 4 });
    assert.deepEqual(JSON.parse(s.sent[3] ?? ''), { id: 4, type: 'pong' });
  });
});
