/**
 * The strict HTTP/1.1 request-head parser (src/protocol/http1.ts), section by
 * section of RFC 9112 (message syntax) and RFC 9110 (field semantics): every
 * rule with the status it must produce, and properties over arbitrary input
 * (any split of a head parses the same; no input throws).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type HeadResult, type Http1Limits, RequestHeadReader, parseRequestHead } from '../../src/protocol/http1.js';

const UPGRADE =
  'GET /chat?room=1 HTTP/1.1\r\n' +
  'Host: example.com:8080\r\n' +
  'Upgrade: websocket\r\n' +
  'Connection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
  'Sec-WebSocket-Version: 13\r\n' +
  '\r\n';

function parse(text: string, limits?: Http1Limits): HeadResult | null {
  return parseRequestHead(Buffer.from(text, 'latin1'), limits);
}

/** The head of a request that must parse. */
function head(text: string, limits?: Http1Limits) {
  const r = parse(text, limits);
  assert.ok(r !== null, 'complete');
  assert.equal(r.error, undefined, r.error?.reason);
  return r.head!;
}

/** The status a request must be refused with. */
function refused(text: string, status: number, limits?: Http1Limits): void {
  const r = parse(text, limits);
  assert.ok(r !== null, `refused with ${status}, not waiting for more`);
  assert.equal(r.head, undefined, 'refused, not parsed');
  assert.equal(r.error!.status, status, r.error!.reason);
}

/** A request with the given header lines after Host. */
const withFields = (...lines: string[]): string => `GET / HTTP/1.1\r\nHost: a\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;

describe('RFC 9112 §3: the request line', () => {
  it('parses method, target and version of a WebSocket upgrade, and the size of the head', () => {
    const h = head(UPGRADE);
    assert.equal(h.method, 'GET');
    assert.equal(h.target, '/chat?room=1');
    assert.equal(h.httpVersion, '1.1');
    assert.equal(h.size, Buffer.byteLength(UPGRADE));
    assert.equal(h.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==');
    assert.equal(Object.getPrototypeOf(h.headers), null, 'no prototype: "constructor" is not a header');
  });

  it('§3.1: the method is a token, case-sensitive', () => {
    assert.equal(head("M-SEARCH!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n").method, "M-SEARCH!#$%&'*+.^_`|~");
    assert.equal(head('get / HTTP/1.1\r\nHost: a\r\n\r\n').method, 'get');
    for (const bad of ['G(T', 'G/T', 'GE\x01', 'GÉT']) refused(`${bad} / HTTP/1.1\r\nHost: a\r\n\r\n`, 400);
  });

  it('§3: exactly one SP between the parts', () => {
    refused('GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('GET /  HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400);
    refused(' GET / HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('GET /\r\nHost: a\r\n\r\n', 400);
  });

  it('§3.2: the target is visible ASCII; no controls, spaces or bytes over 0x7E', () => {
    assert.equal(head('GET /a/b;c=d?e=f&g=%20|{}^ HTTP/1.1\r\nHost: a\r\n\r\n').target, '/a/b;c=d?e=f&g=%20|{}^');
    for (const bad of ['/a\x7fb', '/a\x00b', '/caf\xe9']) refused(`GET ${bad} HTTP/1.1\r\nHost: a\r\n\r\n`, 400);
  });

  it('§3.2: origin-form and absolute-form for GET; asterisk-form only with OPTIONS; authority-form only with CONNECT', () => {
    assert.equal(head('GET ws://example.com/chat HTTP/1.1\r\nHost: example.com\r\n\r\n').target, 'ws://example.com/chat');
    assert.equal(head('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n').target, '*');
    assert.equal(head('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n').target, 'example.com:443');
    refused('GET * HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('GET chat HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('CONNECT /chat HTTP/1.1\r\nHost: a\r\n\r\n', 400);
  });

  it('§3: a target longer than maxTargetLength → 414, as soon as the line shows it', () => {
    refused(`GET /${'a'.repeat(100)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414, { maxTargetLength: 100 });
    assert.equal(head(`GET /${'a'.repeat(99)} HTTP/1.1\r\nHost: a\r\n\r\n`, { maxTargetLength: 100 }).target.length, 100);
    // no line end yet: the request line alone is already too long
    refused(`GET /${'a'.repeat(400)}`, 414, { maxTargetLength: 100 });
  });

  it('§2.3: HTTP-version is "HTTP/" DIGIT "." DIGIT, case-sensitive; another major version → 505 (RFC 9110 §15.6.6)', () => {
    assert.equal(head('GET / HTTP/1.0\r\n\r\n').httpVersion, '1.0');
    assert.equal(head('GET / HTTP/1.2\r\nHost: a\r\n\r\n').httpVersion, '1.2');
    for (const v of ['HTTP/2.0', 'HTTP/3.0', 'HTTP/0.9']) refused(`GET / ${v}\r\nHost: a\r\n\r\n`, 505);
    for (const v of ['http/1.1', 'HTTP/1.10', 'HTTP/1', 'HTTP/1.1.1', 'HTTP/11', 'HTTPS/1.1']) refused(`GET / ${v}\r\nHost: a\r\n\r\n`, 400);
  });

  it('§2.2: empty lines before the request line are ignored (and counted in the size)', () => {
    const text = `\r\n\r\n${UPGRADE}`;
    assert.equal(head(text).size, Buffer.byteLength(text));
  });

  it('methods: a method not served → 405 (RFC 9110 §15.5.6), before any field arrives', () => {
    refused('POST / HTTP/1.1\r\n', 405, { methods: ['GET'] });
    assert.equal(head(UPGRADE, { methods: ['GET'] }).method, 'GET');
  });
});

describe('RFC 9112 §2.2: lines end with CR LF', () => {
  it('a bare LF ends nothing: 400', () => {
    refused('GET / HTTP/1.1\nHost: a\r\n\r\n', 400);
    refused('GET / HTTP/1.1\r\nHost: a\n\r\n', 400);
    refused('GET / HTTP/1.1\r\nHost: a\r\n\n', 400);
    refused('\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400);
  });

  it('a bare CR anywhere: 400', () => {
    refused('GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n', 400);
    refused('GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n', 400);
    refused('GET / HTTP/1.1\r\nX: a\r\r\nHost: a\r\n\r\n', 400);
  });
});

describe('RFC 9112 §5, RFC 9110 §5: field lines', () => {
  it('§5.1: names are lower-cased tokens; values lose surrounding whitespace only', () => {
    const h = head(withFields('X-Thing:  \t a  b \t', 'EMPTY:', 'x-Upper-Case:V'));
    assert.equal(h.headers['x-thing'], 'a  b');
    assert.equal(h.headers.empty, '');
    assert.equal(h.headers['x-upper-case'], 'V');
  });

  it('§5.1: whitespace between name and colon → 400', () => {
    refused(withFields('Upgrade : websocket'), 400);
    refused(withFields('Upgrade\t: websocket'), 400);
  });

  it('RFC 9110 §5.1: a name that is not a token, or empty → 400', () => {
    for (const bad of ['X(y): 1', 'X y: 1', ': 1', 'Xé: 1', 'X"y": 1', 'NoColon']) refused(withFields(bad), 400);
  });

  it('§5.2: obs-fold (a line starting with SP or HTAB) → 400; so is whitespace before the first field (§2.2)', () => {
    refused(withFields('X: a', ' b'), 400);
    refused(withFields('X: a', '\tb'), 400);
    refused('GET / HTTP/1.1\r\n Host: a\r\n\r\n', 400);
  });

  it('RFC 9110 §5.5: NUL, DEL and other controls in a value → 400; HTAB and obs-text are allowed', () => {
    for (const c of ['\x00', '\x01', '\x1f', '\x7f', '\x0b']) refused(withFields(`X: a${c}b`), 400);
    assert.equal(head(withFields('X: a\tb\xe9\xff')).headers.x, 'a\tb\xe9\xff');
  });

  it('RFC 9110 §5.3: repeated fields are one list, in order, joined with ", "', () => {
    const h = head(withFields('Sec-WebSocket-Protocol: a', 'X: 1', 'sec-websocket-protocol: b, c', 'SEC-WEBSOCKET-PROTOCOL: d'));
    assert.equal(h.headers['sec-websocket-protocol'], 'a, b, c, d');
  });

  it('maxHeaders: one field more → 431', () => {
    const lines = Array.from({ length: 5 }, (_, i) => `X-${i}: ${i}`);
    assert.equal(Object.keys(head(withFields(...lines.slice(0, 4)), { maxHeaders: 5 }).headers).length, 5);
    refused(withFields(...lines), 431, { maxHeaders: 5 });
  });

  it('maxHeadSize: a head over it → 431, even before its end arrives', () => {
    refused(withFields(`X: ${'a'.repeat(200)}`), 431, { maxHeadSize: 200 });
    refused(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(300)}`, 431, { maxHeadSize: 200 });
    const exact = withFields(`X: ${'a'.repeat(10)}`);
    assert.equal(head(exact, { maxHeadSize: Buffer.byteLength(exact) }).size, Buffer.byteLength(exact));
    refused(exact, 431, { maxHeadSize: Buffer.byteLength(exact) - 1 });
  });
});

describe('RFC 9112 §3.2: Host', () => {
  it('HTTP/1.1 without Host → 400; HTTP/1.0 may omit it', () => {
    refused('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n', 400);
    assert.equal(head('GET / HTTP/1.0\r\n\r\n').headers.host, undefined);
  });

  it('more than one Host line → 400, whatever the values', () => {
    refused('GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n', 400);
    refused('GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nhost: b\r\n\r\n', 400);
  });

  it('a valid uri-host [":" port] (RFC 3986 §3.2.2; zone IDs, RFC 6874): names, IPv4, IPv6 literals, percent-encoding, empty; anything else → 400', () => {
    for (const ok of ['example.com', 'example.com:8080', '127.0.0.1:1', '[::1]:443', '[fe80::1%25eth0]', 'a%41b', '', 'host:']) {
      assert.equal(head(`GET / HTTP/1.1\r\nHost: ${ok}\r\n\r\n`).headers.host, ok);
    }
    for (const bad of ['a b', 'a/b', 'a@b', 'a:b', 'a:80:80', '[::1', 'a%4', 'a?b', 'a#b', 'a\\b']) refused(`GET / HTTP/1.1\r\nHost: ${bad}\r\n\r\n`, 400);
  });
});

describe('RFC 9112 §6: no content is read', () => {
  it('Transfer-Encoding → 400 (with or without Content-Length: §6.1 smuggling)', () => {
    refused(withFields('Transfer-Encoding: chunked'), 400);
    refused(withFields('Transfer-Encoding: chunked', 'Content-Length: 0'), 400);
  });

  it('Content-Length: 0 (or a list of zeros) is no content; any other length or an invalid one → 400 (§6.3)', () => {
    assert.equal(head(withFields('Content-Length: 0')).headers['content-length'], '0');
    assert.equal(head(withFields('Content-Length: 0', 'Content-Length: 00')).headers['content-length'], '0, 00');
    for (const bad of ['5', '0, 5', '-0', '0x0', '', '1e3']) refused(withFields(`Content-Length: ${bad}`), 400);
  });
});

describe('reading in pieces', () => {
  it('null until the head is complete; then the head, and the bytes after it are rest()', () => {
    const reader = new RequestHeadReader();
    const bytes = Buffer.concat([Buffer.from(UPGRADE), Buffer.from([0x81, 0x80, 1, 2, 3, 4])]);
    assert.equal(reader.push(bytes.subarray(0, 10)), null);
    assert.equal(reader.push(bytes.subarray(10, UPGRADE.length - 1)), null);
    const r = reader.push(bytes.subarray(UPGRADE.length - 1, UPGRADE.length + 2));
    assert.equal(r?.head?.size, UPGRADE.length);
    reader.push(bytes.subarray(UPGRADE.length + 2));
    assert.deepEqual(reader.rest(), Buffer.from([0x81, 0x80, 1, 2, 3, 4]));
  });

  it('a bad request line fails at once, before any field arrives', () => {
    const reader = new RequestHeadReader();
    assert.equal(reader.push(Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n'))?.error?.status, 400);
  });

  it('property: any split of a valid head parses exactly as the whole', () => {
    const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
    const value = fc.stringMatching(/^[\x21-\x7e\x80-\xff]([\x20-\x7e\t\x80-\xff]{0,30}[\x21-\x7e\x80-\xff])?$/);
    const target = fc.stringMatching(/^\/[\x21-\x7e]{0,40}$/);
    fc.assert(
      fc.property(
        token,
        target,
        fc.array(fc.tuple(token, value), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (method, path, fields, cuts) => {
          const lines = fields.filter(([n]) => !['host', 'transfer-encoding', 'content-length'].includes(n.toLowerCase()));
          const text = `${method} ${path} HTTP/1.1\r\nHost: h\r\n${lines.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\nrest`;
          const bytes = Buffer.from(text, 'latin1');
          const whole = parseRequestHead(bytes);
          assert.ok(whole?.head !== undefined, whole?.error?.reason);
          const reader = new RequestHeadReader();
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          let result: HeadResult | null = null;
          let from = 0;
          for (const p of [...points, bytes.length]) {
            result = reader.push(bytes.subarray(from, p));
            from = p;
          }
          assert.deepEqual(result, whole);
          assert.equal(reader.rest().toString('latin1'), 'rest');
          const expected: Record<string, string> = Object.create(null) as Record<string, string>;
          expected.host = 'h';
          for (const [n, v] of lines) {
            const k = n.toLowerCase();
            expected[k] = expected[k] === undefined ? v : `${expected[k]}, ${v}`;
          }
          assert.deepEqual(whole.head.headers, expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: arbitrary bytes, in any pieces, never throw: null, a head, or one of the five statuses', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), fc.boolean(), (pieces, prefixed) => {
        const reader = new RequestHeadReader({ maxHeadSize: 256 });
        if (prefixed) reader.push(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n'));
        let r: HeadResult | null = null;
        for (const p of pieces) r = reader.push(p);
        if (r?.error !== undefined) assert.ok([400, 405, 414, 431, 505].includes(r.error.status));
      }),
      { numRuns: 500 },
    );
  });

  it('property: one control byte put into a field value → 400', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x1f }).filter((b) => b !== 0x09), fc.nat(20), (b, at) => {
        const v = 'abcdefghijklmnopqrstu';
        const i = 1 + (at % (v.length - 1));
        const text = withFields(`X: ${v.slice(0, i)}${String.fromCharCode(b)}${v.slice(i)}`);
        refused(text, 400);
      }),
    );
  });
});
