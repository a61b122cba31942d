/**
 * The pure negotiation functions of protocol/negotiate.ts, used by both
 * sides: the subprotocol choice (RFC 6455 §4.2.2), the server's extension
 * answer and its codec (RFC 6455 §9.1, RFC 7692 §7.1), the codec for a value
 * another transport agreed, the client's request headers (RFC 6455 §4.1,
 * WHATWG WebSockets § 2.2) and the client's check of the response (RFC 6455
 * §4.1, RFC 7692 §7.1).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  PerMessageDeflate,
  SYNC_DEFLATE,
  chooseSubprotocol,
  clientRequestHeaders,
  negotiateClient,
  negotiateServerExtensions,
  parseExtensions,
  serverCodecFor,
  serverNegotiators,
  type ExtensionNegotiator,
  type ExtensionOffer,
  type HeaderMap,
  type PerMessageDeflateOptions,
} from '../../src/protocol/index.js';

const MAX = 1 << 20;
const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
/** RFC 6455 §1.3's accept value for RFC_KEY, written out rather than computed by src/. */
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

function offers(header: string): ExtensionOffer[] {
  const parsed = parseExtensions(header);
  if (parsed instanceof Error) assert.fail(`test offer "${header}" does not parse: ${parsed.message}`);
  return parsed;
}

/** A negotiator for a made-up extension that accepts the first offer with `answer`, recording what it was shown. */
function fakeNegotiator(name: string, answer: Record<string, string | true> | null): ExtensionNegotiator & { seen: Array<Record<string, string | true>>[] } {
  const seen: Array<Record<string, string | true>>[] = [];
  return {
    name,
    seen,
    negotiate(o) {
      seen.push(o.map((p) => ({ ...p })));
      return answer;
    },
  };
}

/** The server's answer for `header` with permessage-deflate `deflate` and `extra` negotiators; fails on an Error. */
function serverAnswer(header: string, deflate: PerMessageDeflateOptions | null, extra: ExtensionNegotiator[] = []): { extensions: string; deflate: PerMessageDeflate | null } {
  const r = negotiateServerExtensions(offers(header), serverNegotiators(deflate, extra), deflate, MAX);
  if (r instanceof Error) assert.fail(`negotiation failed: ${r.message}`);
  return r;
}

/** A 101 response to RFC_KEY with `headers` added (undefined removes a default one). */
function response(headers: HeaderMap = {}, statusCode = 101): { statusCode: number; headers: HeaderMap } {
  const merged: HeaderMap = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': RFC_ACCEPT };
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  return { statusCode, headers: merged };
}

function clientFails(res: { statusCode: number; headers: HeaderMap }, protocols: string[], deflate: PerMessageDeflateOptions | null, pattern: RegExp): void {
  const r = negotiateClient(res, RFC_KEY, protocols, deflate, MAX);
  assert.ok(r instanceof Error, `expected an Error, got ${JSON.stringify(r)}`);
  assert.match(r.message, pattern);
}

/** Lower-cased header names of `headers`, asserting none appears twice in different cases. */
function lowerNames(headers: Record<string, unknown>): Map<string, string> {
  const names = new Map<string, string>();
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    assert.ok(!names.has(lower), `header ${name} appears twice (also as ${names.get(lower)})`);
    names.set(lower, name);
  }
  return names;
}

/** The value of header `name` (any case) in `headers`. */
function headerValue(headers: Record<string, string | number | string[]>, name: string): string | number | string[] | undefined {
  const actual = lowerNames(headers).get(name.toLowerCase());
  return actual === undefined ? undefined : headers[actual];
}

describe('this Node runs zlib synchronously (the precondition of every permessage-deflate rule below)', () => {
  it('SYNC_DEFLATE is true', () => {
    assert.equal(SYNC_DEFLATE, true);
  });
});

describe('RFC 6455 §4.2.2 /subprotocol/: chooseSubprotocol', () => {
  it("picks the client's first offered subprotocol that the server speaks, not the server's first", () => {
    assert.equal(chooseSubprotocol(['b', 'a', 'c'], ['a', 'b']), 'b');
    assert.equal(chooseSubprotocol(['x', 'a'], ['b', 'a']), 'a');
  });

  it('answers undefined when none is shared, none is offered or the server speaks none', () => {
    assert.equal(chooseSubprotocol(['x', 'y'], ['a', 'b']), undefined);
    assert.equal(chooseSubprotocol([], ['a']), undefined);
    assert.equal(chooseSubprotocol(['a'], []), undefined);
  });

  it('compares exactly: subprotocol names are case-sensitive tokens', () => {
    assert.equal(chooseSubprotocol(['Chat'], ['chat']), undefined);
  });
});

describe('RFC 6455 §9.1: serverNegotiators, the server\'s order of preference', () => {
  it('puts permessage-deflate first, before the application\'s negotiators, in their order', () => {
    const a = fakeNegotiator('x-a', null);
    const b = fakeNegotiator('x-b', null);
    assert.deepEqual(
      serverNegotiators({}, [a, b]).map((n) => n.name),
      ['permessage-deflate', 'x-a', 'x-b'],
    );
  });

  it('has only the application\'s negotiators when permessage-deflate is off, and none by default', () => {
    const a = fakeNegotiator('x-a', null);
    assert.deepEqual(serverNegotiators(null, [a]), [a]);
    assert.deepEqual(serverNegotiators(null), []);
    assert.deepEqual(serverNegotiators({}).map((n) => n.name), ['permessage-deflate']);
  });

  it('throws TypeError when permessage-deflate is given both as the option and as a negotiator', () => {
    assert.throws(() => serverNegotiators({}, [fakeNegotiator('permessage-deflate', {})]), TypeError);
  });

  it('does not change the array it was given', () => {
    const list = [fakeNegotiator('x-a', null)];
    serverNegotiators({}, list);
    assert.equal(list.length, 1);
  });
});

describe('RFC 6455 §9.1, RFC 7692 §7.1: negotiateServerExtensions', () => {
  it('accepts a plain permessage-deflate offer with a codec, and names it in the answer', () => {
    const r = serverAnswer('permessage-deflate; client_max_window_bits', {});
    assert.equal(r.extensions, 'permessage-deflate');
    assert.ok(r.deflate instanceof PerMessageDeflate);
    assert.equal(r.deflate.sharedCompressionKey, null, 'context takeover: output depends on history, so it is not shared');
  });

  it('answers server_no_context_takeover when the server asks for it; the codec then compresses shareably', () => {
    const r = serverAnswer('permessage-deflate', { serverNoContextTakeover: true });
    assert.equal(r.extensions, 'permessage-deflate; server_no_context_takeover');
    assert.ok(r.deflate instanceof PerMessageDeflate);
    assert.notEqual(r.deflate.sharedCompressionKey, null);
  });

  it('answers in the server\'s order, whatever order the client offered in', () => {
    const r = serverAnswer('x-a; k=v, permessage-deflate', {}, [fakeNegotiator('x-a', { k: 'v' })]);
    assert.equal(r.extensions, 'permessage-deflate, x-a; k=v');
    assert.ok(r.deflate instanceof PerMessageDeflate);
  });

  it('has no codec when only another extension was accepted', () => {
    const r = serverAnswer('x-a', {}, [fakeNegotiator('x-a', { mode: 'fast' })]);
    assert.equal(r.extensions, 'x-a; mode=fast');
    assert.equal(r.deflate, null);
  });

  it('has no codec when permessage-deflate is accepted by an application negotiator but the option is off', () => {
    const r = serverAnswer('permessage-deflate', null, [fakeNegotiator('permessage-deflate', {})]);
    assert.equal(r.extensions, 'permessage-deflate');
    assert.equal(r.deflate, null);
  });

  it('answers nothing, with no codec, when the client offers nothing, or the server supports nothing', () => {
    assert.deepEqual(negotiateServerExtensions([], serverNegotiators({}), {}, MAX), { extensions: '', deflate: null });
    assert.deepEqual(negotiateServerExtensions(offers('permessage-deflate'), [], null, MAX), { extensions: '', deflate: null });
  });

  it('declines a permessage-deflate offer with an unknown parameter (RFC 7692 §7.1), taking the next acceptable one', () => {
    assert.deepEqual(serverAnswer('permessage-deflate; x_unknown', {}), { extensions: '', deflate: null });
    const r = serverAnswer('permessage-deflate; x_unknown, permessage-deflate; server_max_window_bits=10', {});
    assert.equal(r.extensions, 'permessage-deflate; server_max_window_bits=10');
    assert.ok(r.deflate instanceof PerMessageDeflate);
  });

  it('declines an offer that repeats a parameter, so a negotiator never sees it', () => {
    const n = fakeNegotiator('x-a', {});
    assert.deepEqual(serverAnswer('x-a; k=1; k=2', null, [n]), { extensions: '', deflate: null });
    assert.equal(n.seen.length, 0);
  });

  it('shows a negotiator every offer of its own extension, in the client\'s order', () => {
    const n = fakeNegotiator('x-a', null);
    serverAnswer('x-a; k=1, x-b, x-a; k=2', null, [n]);
    assert.deepEqual(n.seen, [[{ k: '1' }, { k: '2' }]]);
  });

  it('returns an Error when a negotiator answers with a parameter that is not a token', () => {
    const bad = negotiateServerExtensions(offers('x-a'), [fakeNegotiator('x-a', { k: 'two words' })], null, MAX);
    assert.ok(bad instanceof Error);
    assert.match(bad.message, /x-a/);
    const badName = negotiateServerExtensions(offers('x-a'), [fakeNegotiator('x-a', { 'k=v': true })], null, MAX);
    assert.ok(badName instanceof Error);
  });

  it('pairs with the client: the server codec\'s output inflates with the codec negotiateClient builds', () => {
    const server = serverAnswer('permessage-deflate; client_max_window_bits', { serverNoContextTakeover: true });
    const client = negotiateClient(
      response({ 'sec-websocket-extensions': server.extensions }),
      RFC_KEY,
      [],
      { serverNoContextTakeover: true },
      MAX,
    );
    assert.ok(!(client instanceof Error), client instanceof Error ? client.message : '');
    assert.ok(server.deflate !== null && client.deflate !== null);
    const text = Buffer.from('a compressible message '.repeat(200));
    const wire = Buffer.from(server.deflate.compress(text));
    assert.ok(wire.length < text.length / 4, `compressed to ${wire.length} bytes`);
    assert.deepEqual(client.deflate.decompress(wire), text);
  });
});

describe('serverCodecFor: the codec for extensions another transport agreed (RFC 8441 over HTTP/2)', () => {
  it('is null for no extensions, for other extensions, and when the server has no permessage-deflate option', () => {
    assert.equal(serverCodecFor('', {}, MAX), null);
    assert.equal(serverCodecFor('x-a; k=v', {}, MAX), null);
    assert.equal(serverCodecFor('permessage-deflate', null, MAX), null);
  });

  it('builds the server codec from the agreed parameters', () => {
    const takeover = serverCodecFor('permessage-deflate', {}, MAX);
    assert.ok(takeover instanceof PerMessageDeflate);
    assert.equal(takeover.sharedCompressionKey, null);
    const reset = serverCodecFor('x-a, permessage-deflate; server_no_context_takeover; client_max_window_bits=10', {}, MAX);
    assert.ok(reset instanceof PerMessageDeflate);
    assert.notEqual(reset.sharedCompressionKey, null);
  });

  it('the codec honours the agreed server window: a 10-bit key differs from a 15-bit one', () => {
    const w10 = serverCodecFor('permessage-deflate; server_no_context_takeover; server_max_window_bits=10', {}, MAX);
    const w15 = serverCodecFor('permessage-deflate; server_no_context_takeover', {}, MAX);
    assert.ok(w10 instanceof PerMessageDeflate && w15 instanceof PerMessageDeflate);
    assert.notEqual(w10.sharedCompressionKey, w15.sharedCompressionKey);
  });

  it('returns an Error for a value that does not parse', () => {
    for (const bad of ['permessage-deflate;', 'permessage-deflate; =1', '"quoted"', 'a b']) {
      assert.ok(serverCodecFor(bad, {}, MAX) instanceof Error, `"${bad}" should be refused`);
    }
  });

  it('returns an Error for permessage-deflate parameters no negotiation could have agreed (RFC 7692 §7.1)', () => {
    // Each of these parses, but would leave a codec that throws on the first
    // compressed send (window 20) or silently ignores what was agreed.
    for (const bad of [
      'permessage-deflate; server_max_window_bits=20',
      'permessage-deflate; server_max_window_bits=abc',
      'permessage-deflate; server_no_context_takeover=1',
      'permessage-deflate; x_unknown',
    ]) {
      const r = serverCodecFor(bad, {}, MAX);
      assert.ok(r instanceof Error, `"${bad}" should be refused, got ${r === null ? 'null' : 'a codec'}`);
    }
  });
});

describe('RFC 6455 §4.1, WHATWG WebSockets § 2.2: clientRequestHeaders', () => {
  const base = { key: RFC_KEY, protocols: [] as string[], deflate: null };

  it('writes the handshake\'s own headers', () => {
    const h = clientRequestHeaders(base);
    assert.equal(headerValue(h, 'Connection'), 'Upgrade');
    assert.equal(headerValue(h, 'Upgrade'), 'websocket');
    assert.equal(headerValue(h, 'Sec-WebSocket-Key'), RFC_KEY);
    assert.equal(headerValue(h, 'Sec-WebSocket-Version'), '13');
    assert.equal(headerValue(h, 'Sec-WebSocket-Protocol'), undefined, 'no protocols, no header');
    assert.equal(headerValue(h, 'Sec-WebSocket-Extensions'), undefined, 'no deflate options, no offer');
    assert.equal(headerValue(h, 'Origin'), undefined);
  });

  it("the application's headers cannot replace the handshake's, in any letter case", () => {
    const h = clientRequestHeaders({
      ...base,
      protocols: ['chat'],
      headers: {
        connection: 'keep-alive',
        UPGRADE: 'h2c',
        'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAAAA==',
        'sec-websocket-version': '8',
        'Sec-WebSocket-Protocol': 'evil',
        'sec-websocket-extensions': 'x-evil',
        'X-Token': 'abc',
      },
    });
    assert.equal(headerValue(h, 'connection'), 'Upgrade');
    assert.equal(headerValue(h, 'upgrade'), 'websocket');
    assert.equal(headerValue(h, 'sec-websocket-key'), RFC_KEY);
    assert.equal(headerValue(h, 'sec-websocket-version'), '13');
    assert.equal(headerValue(h, 'sec-websocket-protocol'), 'chat');
    assert.equal(headerValue(h, 'sec-websocket-extensions'), undefined);
    assert.equal(headerValue(h, 'x-token'), 'abc', 'other headers pass through');
  });

  it('skips application headers whose value is undefined, keeps arrays and numbers', () => {
    const h = clientRequestHeaders({ ...base, headers: { 'X-Gone': undefined, 'X-Many': ['a', 'b'], 'X-Num': 7 } });
    assert.equal(headerValue(h, 'x-gone'), undefined);
    assert.deepEqual(headerValue(h, 'x-many'), ['a', 'b']);
    assert.equal(headerValue(h, 'x-num'), 7);
  });

  it('the Origin option wins over an Origin in the headers; without the option the header\'s is kept', () => {
    const both = clientRequestHeaders({ ...base, headers: { origin: 'http://a.example' }, origin: 'http://b.example' });
    assert.equal(headerValue(both, 'Origin'), 'http://b.example');
    const given = clientRequestHeaders({ ...base, headers: { Origin: 'http://a.example' } });
    assert.equal(headerValue(given, 'Origin'), 'http://a.example');
  });

  it('sends Pragma and Cache-Control no-cache unless the application gives its own', () => {
    const h = clientRequestHeaders(base);
    assert.equal(headerValue(h, 'Pragma'), 'no-cache');
    assert.equal(headerValue(h, 'Cache-Control'), 'no-cache');
    const own = clientRequestHeaders({ ...base, headers: { 'cache-control': 'max-age=0', PRAGMA: 'x' } });
    assert.equal(headerValue(own, 'Cache-Control'), 'max-age=0');
    assert.equal(headerValue(own, 'Pragma'), 'x');
  });

  it('joins the offered subprotocols into one Sec-WebSocket-Protocol, in order', () => {
    const h = clientRequestHeaders({ ...base, protocols: ['chat', 'superchat', 'v2.json'] });
    assert.equal(headerValue(h, 'Sec-WebSocket-Protocol'), 'chat, superchat, v2.json');
  });

  it('offers permessage-deflate only when deflate options are given, always saying client_max_window_bits', () => {
    assert.equal(headerValue(clientRequestHeaders({ ...base, deflate: {} }), 'Sec-WebSocket-Extensions'), 'permessage-deflate; client_max_window_bits');
    const h = clientRequestHeaders({
      ...base,
      deflate: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 },
    });
    assert.equal(
      headerValue(h, 'Sec-WebSocket-Extensions'),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12',
    );
  });
});

describe('RFC 6455 §4.1: negotiateClient fails the connection on a bad response', () => {
  it('any status but 101', () => {
    clientFails(response({}, 200), [], null, /200/);
    clientFails(response({}, 403), [], null, /403/);
  });

  it('no "Upgrade: websocket"', () => {
    clientFails(response({ upgrade: undefined }), [], null, /Upgrade/);
    clientFails(response({ upgrade: 'h2c' }), [], null, /Upgrade/);
  });

  it('no "Connection: Upgrade"', () => {
    clientFails(response({ connection: undefined }), [], null, /Connection/);
    clientFails(response({ connection: 'close' }), [], null, /Connection/);
  });

  it('a missing or wrong Sec-WebSocket-Accept', () => {
    clientFails(response({ 'sec-websocket-accept': undefined }), [], null, /Accept/);
    clientFails(response({ 'sec-websocket-accept': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' }), [], null, /Accept/);
  });

  it('a subprotocol the client did not offer, or more than one', () => {
    clientFails(response({ 'sec-websocket-protocol': 'superchat' }), ['chat'], null, /subprotocol/);
    clientFails(response({ 'sec-websocket-protocol': 'chat' }), [], null, /subprotocol/);
    clientFails(response({ 'sec-websocket-protocol': 'chat, superchat' }), ['chat', 'superchat'], null, /subprotocol/);
  });

  it('an extension the client did not offer', () => {
    clientFails(response({ 'sec-websocket-extensions': 'x-a' }), [], {}, /x-a/);
    clientFails(response({ 'sec-websocket-extensions': 'permessage-deflate' }), [], null, /permessage-deflate/);
  });

  it('permessage-deflate accepted twice', () => {
    clientFails(response({ 'sec-websocket-extensions': 'permessage-deflate, permessage-deflate' }), [], {}, /more than once/);
  });

  it('permessage-deflate with parameters the client must refuse (RFC 7692 §7.1)', () => {
    const bad = [
      'permessage-deflate; x_unknown',
      'permessage-deflate; server_no_context_takeover=1',
      'permessage-deflate; server_max_window_bits=16',
      'permessage-deflate; server_max_window_bits',
      'permessage-deflate; client_max_window_bits',
      'permessage-deflate; client_max_window_bits=7',
      'permessage-deflate; server_max_window_bits=10; server_max_window_bits=10',
    ];
    for (const value of bad) {
      const r = negotiateClient(response({ 'sec-websocket-extensions': value }), RFC_KEY, [], {}, MAX);
      assert.ok(r instanceof Error, `"${value}" should fail the connection`);
    }
  });

  it('a server window above the one offered, or no server_no_context_takeover after asking for it', () => {
    clientFails(response({ 'sec-websocket-extensions': 'permessage-deflate; server_max_window_bits=12' }), [], { serverMaxWindowBits: 10 }, /server_max_window_bits/);
    clientFails(response({ 'sec-websocket-extensions': 'permessage-deflate' }), [], { serverNoContextTakeover: true }, /server_no_context_takeover/);
  });

  it('an extensions header that does not parse', () => {
    clientFails(response({ 'sec-websocket-extensions': 'permessage-deflate;' }), [], {}, /Extensions/);
  });
});

describe('RFC 6455 §4.1: negotiateClient on a good response', () => {
  it('with nothing negotiated: no protocol, no extensions, no codec', () => {
    assert.deepEqual(negotiateClient(response(), RFC_KEY, ['chat'], {}, MAX), { protocol: '', extensions: '', deflate: null });
  });

  it('accepts the header names in any case of value and token lists', () => {
    const r = negotiateClient(response({ upgrade: 'WebSocket', connection: 'keep-alive, upgrade' }), RFC_KEY, [], null, MAX);
    assert.ok(!(r instanceof Error), r instanceof Error ? r.message : '');
  });

  it('the chosen subprotocol', () => {
    const r = negotiateClient(response({ 'sec-websocket-protocol': 'superchat' }), RFC_KEY, ['chat', 'superchat'], null, MAX);
    assert.deepEqual(r, { protocol: 'superchat', extensions: '', deflate: null });
  });

  it('permessage-deflate with its codec, and the extensions as the server named them', () => {
    const r = negotiateClient(
      response({ 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10' }),
      RFC_KEY,
      [],
      {},
      MAX,
    );
    assert.ok(!(r instanceof Error), r instanceof Error ? r.message : '');
    assert.equal(r.protocol, '');
    assert.equal(r.extensions, 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10');
    assert.ok(r.deflate instanceof PerMessageDeflate);
  });

  it('client_no_context_takeover in the answer makes the client codec reset (shareable output)', () => {
    const keep = negotiateClient(response({ 'sec-websocket-extensions': 'permessage-deflate' }), RFC_KEY, [], {}, MAX);
    const reset = negotiateClient(response({ 'sec-websocket-extensions': 'permessage-deflate; client_no_context_takeover' }), RFC_KEY, [], {}, MAX);
    assert.ok(keep instanceof Object && !(keep instanceof Error) && keep.deflate !== null);
    assert.ok(reset instanceof Object && !(reset instanceof Error) && reset.deflate !== null);
    assert.equal(keep.deflate.sharedCompressionKey, null);
    assert.notEqual(reset.deflate.sharedCompressionKey, null);
  });
});
