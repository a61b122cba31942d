/**
 * RFC 6455 §1.3 (accept key), §4.1 (client requirements, checking the
 * server's response), §4.2 (server requirements, checking the request),
 * §4.4 (version negotiation), §11.3 (header grammar).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  WEBSOCKET_GUID,
  acceptKey,
  buildAcceptResponse,
  buildRefusal,
  checkUpgradeRequest,
  checkUpgradeResponse,
  generateKey,
  headerList,
  isValidKey,
  isWebSocketRequest,
  targetPath,
  type HeaderMap,
  type UpgradeRequestInfo,
} from '../../src/protocol/index.js';

const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** The request of RFC 6455 §1.2, as Node hands it over (lower-case names). */
function request(headers: HeaderMap = {}, method = 'GET', httpVersion = '1.1'): UpgradeRequestInfo {
  const base: HeaderMap = {
    host: 'server.example.com',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': RFC_KEY,
    origin: 'http://example.com',
    'sec-websocket-version': '13',
  };
  const merged: HeaderMap = { ...base };
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  return { method, httpVersion, headers: merged };
}

function refusal(req: UpgradeRequestInfo): { status: number; headers: Record<string, string> | undefined } {
  const r = checkUpgradeRequest(req);
  assert.equal(r.ok, false, 'the request should be refused');
  if (r.ok) throw new Error('unreachable');
  return { status: r.status, headers: r.headers };
}

function accepted(req: UpgradeRequestInfo): Extract<ReturnType<typeof checkUpgradeRequest>, { ok: true }> {
  const r = checkUpgradeRequest(req);
  if (!r.ok) assert.fail(`the request was refused with ${r.status}: ${r.message}`);
  return r;
}

describe('RFC 6455 §1.3, §4.2.2: Sec-WebSocket-Accept', () => {
  it(`acceptKey("${RFC_KEY}") is "${RFC_ACCEPT}" (the RFC's example)`, () => {
    assert.equal(acceptKey(RFC_KEY), RFC_ACCEPT);
  });

  it('the GUID is the one RFC 6455 §1.3 fixes', () => {
    assert.equal(WEBSOCKET_GUID, '258EAFA5-E914-47DA-95CA-C5AB0DC85B11');
  });

  it('generateKey() gives a valid key: base64 of 16 bytes, fresh each time', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 32; i++) {
      const k = generateKey();
      assert.ok(isValidKey(k), k);
      assert.equal(Buffer.from(k, 'base64').length, 16);
      keys.add(k);
    }
    assert.equal(keys.size, 32);
  });
});

describe('RFC 6455 §4.2.1: reading the client\'s opening handshake', () => {
  it('accepts the RFC §1.2 request and returns its key and origin', () => {
    const r = accepted(request());
    assert.equal(r.key, RFC_KEY);
    assert.equal(r.origin, 'http://example.com');
    assert.deepEqual(r.protocols, []);
    assert.deepEqual(r.extensions, []);
  });

  it('refuses a method other than GET with 405 and Allow: GET', () => {
    for (const method of ['POST', 'HEAD', 'PUT', 'get']) {
      const r = refusal(request({}, method));
      assert.equal(r.status, 405, method);
      assert.deepEqual(r.headers, { Allow: 'GET' });
    }
  });

  it('refuses HTTP/1.0 (and older) with 400; accepts 1.1 and later', () => {
    assert.equal(refusal(request({}, 'GET', '1.0')).status, 400);
    assert.equal(refusal(request({}, 'GET', '0.9')).status, 400);
    accepted(request({}, 'GET', '1.1'));
    accepted(request({}, 'GET', '2.0'));
  });

  it('refuses a request without Host with 400', () => {
    assert.equal(refusal(request({ host: undefined })).status, 400);
    assert.equal(refusal(request({ host: '' })).status, 400);
  });

  it('refuses a missing Upgrade header, or one without the websocket token, with 400', () => {
    for (const upgrade of [undefined, '', 'h2c', 'websockets', 'web socket']) {
      assert.equal(refusal(request({ upgrade })).status, 400, String(upgrade));
    }
  });

  it('accepts the websocket token in any case, and among other tokens', () => {
    for (const upgrade of ['WebSocket', 'WEBSOCKET', 'foo, websocket', 'websocket, foo', ' websocket ']) {
      accepted(request({ upgrade }));
    }
  });

  it('refuses a Connection header lacking the upgrade token with 400', () => {
    for (const connection of [undefined, '', 'keep-alive', 'close', 'upgraded', 'keep-alive upgrade']) {
      assert.equal(refusal(request({ connection })).status, 400, String(connection));
    }
  });

  it('accepts "Connection: keep-alive, Upgrade" and the token in any case', () => {
    for (const connection of ['keep-alive, Upgrade', 'upgrade', 'UPGRADE,keep-alive']) accepted(request({ connection }));
    accepted(request({ connection: ['keep-alive', 'Upgrade'] }));
  });

  it('answers a missing or other version with 426 and Sec-WebSocket-Version: 13 (§4.4)', () => {
    for (const version of [undefined, '', '12', '14', '8', '13.0', 'thirteen']) {
      const r = refusal(request({ 'sec-websocket-version': version }));
      assert.equal(r.status, 426, String(version));
      assert.deepEqual(r.headers, { 'Sec-WebSocket-Version': '13' });
    }
  });

  it('refuses a key that is not the base64 of 16 bytes with 400', () => {
    const keys: Record<string, string | undefined> = {
      missing: undefined,
      empty: '',
      '15 bytes': Buffer.alloc(15, 1).toString('base64'),
      '17 bytes': Buffer.alloc(17, 1).toString('base64'),
      '16 bytes without padding': Buffer.alloc(16, 1).toString('base64').replace(/=+$/, ''),
      garbage: 'not a websocket key!!!==',
      'base64url alphabet': Buffer.from([0xfb, 0xff, ...Array(14).fill(0)]).toString('base64url') + '==',
      'non-canonical last character': RFC_KEY.replace('ZQ==', 'ZR=='),
    };
    for (const [name, key] of Object.entries(keys)) {
      assert.equal(refusal(request({ 'sec-websocket-key': key })).status, 400, name);
    }
  });

  it('accepts any base64 of 16 bytes as a key, with surrounding spaces trimmed', () => {
    accepted(request({ 'sec-websocket-key': Buffer.alloc(16, 0xff).toString('base64') }));
    assert.equal(accepted(request({ 'sec-websocket-key': ` ${RFC_KEY} ` })).key, RFC_KEY);
  });

  it('reads the subprotocols offered, keeping the client\'s order', () => {
    assert.deepEqual(accepted(request({ 'sec-websocket-protocol': 'chat, superchat' })).protocols, ['chat', 'superchat']);
    assert.deepEqual(accepted(request({ 'sec-websocket-protocol': 'superchat,chat,v2.json' })).protocols, [
      'superchat',
      'chat',
      'v2.json',
    ]);
    assert.deepEqual(accepted(request({ 'sec-websocket-protocol': ['b', 'a, c'] })).protocols, ['b', 'a', 'c']);
  });

  it('refuses a subprotocol offered twice with 400', () => {
    assert.equal(refusal(request({ 'sec-websocket-protocol': 'chat, superchat, chat' })).status, 400);
    assert.equal(refusal(request({ 'sec-websocket-protocol': ['chat', 'chat'] })).status, 400);
  });

  it('refuses a subprotocol that is not an HTTP token with 400 (§4.1, §11.3.4)', () => {
    for (const value of ['chat room', 'chat/1', '"chat"', 'chät', 'a;b', 'x{y}']) {
      assert.equal(refusal(request({ 'sec-websocket-protocol': value })).status, 400, value);
    }
  });

  it('reads the extensions offered, in order, with their parameters', () => {
    const r = accepted(
      request({ 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10' }),
    );
    assert.deepEqual(
      r.extensions.map((e) => [e.name, { ...e.params }]),
      [
        ['permessage-deflate', { client_max_window_bits: true }],
        ['permessage-deflate', { server_max_window_bits: '10' }],
      ],
    );
  });

  it('refuses a malformed Sec-WebSocket-Extensions with 400', () => {
    for (const value of ['permessage-deflate;', ';x', 'a; b=', 'a b', 'a; b="c d"']) {
      assert.equal(refusal(request({ 'sec-websocket-extensions': value })).status, 400, value);
    }
  });

  it('falls back to Sec-WebSocket-Origin for the origin (older drafts)', () => {
    assert.equal(accepted(request({ origin: undefined, 'sec-websocket-origin': 'http://old.example' })).origin, 'http://old.example');
    assert.equal(accepted(request({ origin: undefined })).origin, undefined);
  });
});

describe('which requests are WebSocket handshakes, and for which path', () => {
  it('an Upgrade that offers websocket (any case, among other tokens), or a Sec-WebSocket-Key, means a handshake', () => {
    assert.equal(isWebSocketRequest({ upgrade: 'websocket' }), true);
    assert.equal(isWebSocketRequest({ upgrade: 'h2c, WebSocket' }), true);
    assert.equal(isWebSocketRequest({ 'sec-websocket-key': RFC_KEY }), true);
  });

  it('another Upgrade (h2c), or none, is a plain request: a server may ignore Upgrade (RFC 9110 §7.8)', () => {
    assert.equal(isWebSocketRequest({ upgrade: 'h2c' }), false);
    assert.equal(isWebSocketRequest({ upgrade: 'websocketx' }), false);
    assert.equal(isWebSocketRequest({ host: 'a' }), false);
  });

  it('the path of an origin-form target, without its query', () => {
    assert.equal(targetPath('/chat'), '/chat');
    assert.equal(targetPath('/chat?room=1'), '/chat');
    assert.equal(targetPath('/'), '/');
  });

  it('the path of an absolute-form target (RFC 9112 §3.2.2; RFC 6455 §4.1: an http or https URI), "/" when it has none', () => {
    assert.equal(targetPath('http://example.com:8080/chat?room=1'), '/chat');
    assert.equal(targetPath('HTTPS://example.com/a/b'), '/a/b');
    assert.equal(targetPath('ws://[::1]:9000/chat'), '/chat');
    assert.equal(targetPath('http://example.com'), '/');
    assert.equal(targetPath('http://example.com?x=1'), '/');
  });

  it('any other target is its own path (it matches no configured path that starts with "/")', () => {
    assert.equal(targetPath('*'), '*');
    assert.equal(targetPath('ftp://example.com/chat'), 'ftp://example.com/chat');
  });
});

describe('RFC 6455 §4.2.2: the server\'s answer', () => {
  it('buildAcceptResponse writes the 101 response of RFC §1.3 byte for byte', () => {
    assert.equal(
      buildAcceptResponse(RFC_KEY, undefined, undefined),
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        '\r\n',
    );
  });

  it('buildAcceptResponse adds the chosen subprotocol, extensions and extra headers', () => {
    assert.equal(
      buildAcceptResponse(RFC_KEY, 'chat', 'permessage-deflate; server_no_context_takeover', { 'X-Served-By': 'fd' }),
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        'Sec-WebSocket-Protocol: chat\r\n' +
        'Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n' +
        'X-Served-By: fd\r\n' +
        '\r\n',
    );
  });

  it('buildAcceptResponse refuses extra headers that would split the response', () => {
    assert.throws(() => buildAcceptResponse(RFC_KEY, undefined, undefined, { 'X-A': 'a\r\nSet-Cookie: x=1' }), TypeError);
    assert.throws(() => buildAcceptResponse(RFC_KEY, undefined, undefined, { 'X A': 'a' }), TypeError);
  });

  it('buildAcceptResponse refuses a subprotocol or extensions value that would split the response', () => {
    assert.throws(() => buildAcceptResponse(RFC_KEY, 'chat\r\nSet-Cookie: x=1', undefined), TypeError);
    assert.throws(() => buildAcceptResponse(RFC_KEY, undefined, 'permessage-deflate\r\n\r\ninjected'), TypeError);
  });

  it('buildRefusal writes a status line, Connection: close and a Content-Length in bytes', () => {
    const body = 'Upgrade Required — version 13';
    assert.equal(
      buildRefusal(426, body, { 'Sec-WebSocket-Version': '13' }),
      'HTTP/1.1 426 Upgrade Required\r\n' +
        'Connection: close\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Sec-WebSocket-Version: 13\r\n' +
        '\r\n' +
        body,
    );
    assert.equal(Buffer.byteLength(body), 31);
  });

  it('buildRefusal of a refused request carries its status and headers', () => {
    const r = checkUpgradeRequest(request({}, 'POST'));
    assert.equal(r.ok, false);
    if (r.ok) return;
    const text = buildRefusal(r.status, r.message, r.headers);
    assert.ok(text.startsWith('HTTP/1.1 405 Method Not Allowed\r\n'));
    assert.ok(text.includes('\r\nAllow: GET\r\n'));
    assert.ok(text.endsWith(`Content-Length: ${Buffer.byteLength(r.message)}\r\nAllow: GET\r\n\r\n${r.message}`));
  });

  it('buildRefusal with an empty body says Content-Length: 0', () => {
    assert.equal(
      buildRefusal(400, ''),
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n\r\n',
    );
  });
});

describe('RFC 6455 §4.1: the client validates the server\'s response', () => {
  const good = (): HeaderMap => ({
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-accept': RFC_ACCEPT,
  });
  const check = (headers: HeaderMap, statusCode = 101, protocols: string[] = [], extensions: string[] = []) =>
    checkUpgradeResponse({ statusCode, headers }, RFC_KEY, protocols, extensions);

  it('accepts the RFC §1.3 response; no subprotocol chosen gives ""', () => {
    const r = check(good());
    assert.ok(!(r instanceof Error), r instanceof Error ? r.message : '');
    assert.equal(r.protocol, '');
    assert.deepEqual(r.extensions, []);
  });

  it('fails for any status other than 101', () => {
    for (const status of [200, 100, 301, 400, 426]) assert.ok(check(good(), status) instanceof Error, String(status));
  });

  it('fails when Upgrade is missing or not websocket; accepts it in any case', () => {
    assert.ok(check({ ...good(), upgrade: undefined }) instanceof Error);
    assert.ok(check({ ...good(), upgrade: 'h2c' }) instanceof Error);
    assert.ok(!(check({ ...good(), upgrade: 'WebSocket' }) instanceof Error));
  });

  it('fails when Connection is missing or lacks upgrade', () => {
    assert.ok(check({ ...good(), connection: undefined }) instanceof Error);
    assert.ok(check({ ...good(), connection: 'keep-alive' }) instanceof Error);
    assert.ok(!(check({ ...good(), connection: 'keep-alive, UPGRADE' }) instanceof Error));
  });

  it('fails when Sec-WebSocket-Accept is missing or wrong', () => {
    assert.ok(check({ ...good(), 'sec-websocket-accept': undefined }) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-accept': acceptKey(generateKey()) }) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-accept': RFC_ACCEPT.toLowerCase() }) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-accept': RFC_KEY }) instanceof Error);
  });

  it('returns the subprotocol the server chose among those offered', () => {
    const r = check({ ...good(), 'sec-websocket-protocol': 'superchat' }, 101, ['chat', 'superchat']);
    assert.ok(!(r instanceof Error));
    assert.equal(r.protocol, 'superchat');
  });

  it('fails when the server chose a subprotocol that was not offered', () => {
    assert.ok(check({ ...good(), 'sec-websocket-protocol': 'chat' }) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-protocol': 'v3' }, 101, ['v1', 'v2']) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-protocol': 'CHAT' }, 101, ['chat']) instanceof Error);
  });

  it('fails when the server chose more than one subprotocol, or an empty one', () => {
    assert.ok(check({ ...good(), 'sec-websocket-protocol': 'chat, superchat' }, 101, ['chat', 'superchat']) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-protocol': ['chat', 'superchat'] }, 101, ['chat', 'superchat']) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-protocol': '' }, 101, ['chat']) instanceof Error);
  });

  it('fails when the server accepted an extension that was not offered', () => {
    assert.ok(check({ ...good(), 'sec-websocket-extensions': 'permessage-deflate' }) instanceof Error);
    assert.ok(check({ ...good(), 'sec-websocket-extensions': 'x-other' }, 101, [], ['permessage-deflate']) instanceof Error);
  });

  it('fails for a malformed extensions header', () => {
    assert.ok(check({ ...good(), 'sec-websocket-extensions': 'permessage-deflate;' }, 101, [], ['permessage-deflate']) instanceof Error);
  });

  it('returns the extensions accepted, with their parameters', () => {
    const r = check(
      { ...good(), 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover; client_max_window_bits=12' },
      101,
      [],
      ['permessage-deflate'],
    );
    assert.ok(!(r instanceof Error));
    assert.deepEqual(
      r.extensions.map((e) => [e.name, { ...e.params }]),
      [['permessage-deflate', { server_no_context_takeover: true, client_max_window_bits: '12' }]],
    );
  });
});

describe('RFC 7230 §7: header lists', () => {
  it('headerList splits on commas, trims, and drops empty elements', () => {
    assert.deepEqual(headerList(' a ,b,, c ,'), ['a', 'b', 'c']);
    assert.deepEqual(headerList(undefined), []);
    assert.deepEqual(headerList(''), []);
  });
});
