/**
 * RFC 6455 §9.1: the Sec-WebSocket-Extensions grammar.
 *
 *   extension-list = 1#extension
 *   extension      = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatExtensions, isToken, negotiateExtensions, parseExtensions, type ExtensionOffer } from '../../src/protocol/index.js';

type Plain = { name: string; params: Record<string, string | true>; repeated?: string };

/** parseExtensions' result as plain objects (its params have a null prototype), or the error message. */
function parse(header: string): Plain[] | string {
  const r = parseExtensions(header);
  if (r instanceof Error) return r.message;
  return r.map((e) => ({ ...e, params: { ...e.params } }));
}

function parseOk(header: string): Plain[] {
  const r = parse(header);
  if (typeof r === 'string') assert.fail(`"${header}" was rejected: ${r}`);
  return r;
}

function rejects(header: string): void {
  assert.ok(parseExtensions(header) instanceof Error, `"${header}" should be rejected`);
}

describe('RFC 6455 §9.1: extension-list', () => {
  it('parses one extension without parameters', () => {
    assert.deepEqual(parseOk('permessage-deflate'), [{ name: 'permessage-deflate', params: {} }]);
  });

  it('parses several extensions, in order', () => {
    assert.deepEqual(parseOk('foo, bar,baz'), [
      { name: 'foo', params: {} },
      { name: 'bar', params: {} },
      { name: 'baz', params: {} },
    ]);
  });

  it('keeps the same extension offered twice with different parameters (RFC 7692 §5 offers)', () => {
    assert.deepEqual(parseOk('permessage-deflate; client_max_window_bits=10, permessage-deflate'), [
      { name: 'permessage-deflate', params: { client_max_window_bits: '10' } },
      { name: 'permessage-deflate', params: {} },
    ]);
  });

  it('skips empty list elements, as the #rule allows (RFC 7230 §7)', () => {
    assert.deepEqual(parseOk(', foo ,, bar ,'), [
      { name: 'foo', params: {} },
      { name: 'bar', params: {} },
    ]);
  });

  it('allows spaces and tabs around separators', () => {
    assert.deepEqual(parseOk('\tfoo \t;\ta = 1 ; b\t,  bar'), [
      { name: 'foo', params: { a: '1', b: true } },
      { name: 'bar', params: {} },
    ]);
  });

  it('rejects an extension name that is not a token', () => {
    for (const h of ['"foo"', 'foo bar', 'fo@o', '=foo', ';foo', 'föö']) rejects(h);
  });
});

describe('RFC 6455 §9.1: extension-param', () => {
  it('parses a parameter without a value as true', () => {
    assert.deepEqual(parseOk('permessage-deflate; client_no_context_takeover'), [
      { name: 'permessage-deflate', params: { client_no_context_takeover: true } },
    ]);
  });

  it('parses a parameter with a token value', () => {
    assert.deepEqual(parseOk('permessage-deflate; server_max_window_bits=10'), [
      { name: 'permessage-deflate', params: { server_max_window_bits: '10' } },
    ]);
  });

  it('parses a quoted-string value, unquoting it', () => {
    assert.deepEqual(parseOk('permessage-deflate; client_max_window_bits="15"'), [
      { name: 'permessage-deflate', params: { client_max_window_bits: '15' } },
    ]);
  });

  it('parses quoted-pair escapes inside a quoted string', () => {
    assert.deepEqual(parseOk('x; a="\\1\\0"'), [{ name: 'x', params: { a: '10' } }]);
  });

  it('parses several parameters, mixing all three forms', () => {
    assert.deepEqual(parseOk('x-ext; a; b=2; c="three"'), [{ name: 'x-ext', params: { a: true, b: '2', c: 'three' } }]);
  });

  it('rejects a quoted value that is not itself a token (§9.1)', () => {
    for (const h of ['x; a="b c"', 'x; a=""', 'x; a="b,c"', 'x; a="b;c"']) rejects(h);
  });

  it('rejects an unterminated quoted string', () => {
    for (const h of ['x; a="b', 'x; a="', 'x; a="b\\"']) rejects(h);
  });

  it('rejects a missing parameter name', () => {
    for (const h of ['x;', 'x; ', 'x;;a', 'x; =1']) rejects(h);
  });

  it('rejects "=" with no value', () => {
    for (const h of ['x; a=', 'x; a= ', 'x; a=, y', 'x; a=;b']) rejects(h);
  });

  it('marks an offer that names a parameter twice (it is declined, the rest of the header still counts)', () => {
    assert.deepEqual(parseOk('x; a=1; a=2, x; b'), [
      { name: 'x', params: { a: '1' }, repeated: 'a' },
      { name: 'x', params: { b: true } },
    ]);
    assert.deepEqual(parseOk('x; a; a'), [{ name: 'x', params: { a: true }, repeated: 'a' }]);
    const seen: Record<string, string | true>[][] = [];
    const offers = parseExtensions('x; a=1; a=2, x; b') as ExtensionOffer[];
    const accepted = negotiateExtensions(offers, [{ name: 'x', negotiate: (offers) => (seen.push([...offers]), offers[0] ?? null) }]);
    assert.deepEqual(seen.map((list) => list.map((p) => ({ ...p }))), [[{ b: true }]]);
    assert.ok(!(accepted instanceof Error));
    assert.deepEqual(accepted.map((e) => ({ ...e, params: { ...e.params } })), [{ name: 'x', params: { b: true } }]);
  });

  it('allows the same parameter in different extensions', () => {
    assert.deepEqual(parseOk('x; a=1, y; a=2'), [
      { name: 'x', params: { a: '1' } },
      { name: 'y', params: { a: '2' } },
    ]);
  });

  it('rejects junk after a parameter', () => {
    for (const h of ['x; a=1 2', 'x; a b', 'x; a="1"b', 'x; a=1 "2"']) rejects(h);
  });

  it('takes parameter names literally, even "__proto__" and "constructor"', () => {
    const r = parseExtensions('x; __proto__=1; constructor');
    assert.ok(!(r instanceof Error));
    const params = r[0]?.params;
    assert.ok(params !== undefined);
    assert.deepEqual(Object.keys(params), ['__proto__', 'constructor']);
    assert.equal(params['__proto__'], '1');
    assert.equal(params['constructor'], true);
  });
});

describe('RFC 6455 §9.1: formatting extensions', () => {
  it('formats parameters with and without values', () => {
    assert.equal(
      formatExtensions([
        { name: 'permessage-deflate', params: { server_no_context_takeover: true, client_max_window_bits: '10' } },
        { name: 'x', params: {} },
      ]),
      'permessage-deflate; server_no_context_takeover; client_max_window_bits=10, x',
    );
  });

  it('formats an empty list as an empty string', () => {
    assert.equal(formatExtensions([]), '');
  });

  const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
  const offer: fc.Arbitrary<ExtensionOffer> = fc.record({
    name: token,
    params: fc
      .uniqueArray(fc.tuple(token, fc.oneof(fc.constant(true as const), token)), { selector: ([k]) => k, maxLength: 5 })
      .map((entries) => Object.fromEntries(entries) as Record<string, string | true>),
  });

  it('parse(format(list)) gives the list back (property)', () => {
    fc.assert(
      fc.property(fc.array(offer, { minLength: 1, maxLength: 5 }), (list) => {
        const header = formatExtensions(list);
        assert.deepEqual(parse(header), list.map((e) => ({ name: e.name, params: { ...e.params } })), header);
      }),
      { numRuns: 500 },
    );
  });

  it('format(parse(header)) is a fixed point of parsing (property)', () => {
    const spacing = fc.constantFrom('', ' ', '\t', '  ');
    const quoted = fc.boolean();
    const rawHeader = fc
      .array(
        fc.tuple(
          token,
          fc.uniqueArray(fc.tuple(token, fc.option(fc.tuple(token, quoted)), spacing), { selector: ([k]) => k, maxLength: 4 }),
          spacing,
        ),
        { minLength: 1, maxLength: 4 },
      )
      .map((exts) =>
        exts
          .map(
            ([name, params, sp]) =>
              sp +
              name +
              params
                .map(([k, v, s]) => `${s};${s}${k}` + (v === null ? '' : `=${v[1] ? `"${v[0]}"` : v[0]}`))
                .join('') +
              sp,
          )
          .join(','),
      );
    fc.assert(
      fc.property(rawHeader, (header) => {
        const first = parse(header);
        assert.notEqual(typeof first, 'string', header);
        const r = parseExtensions(header);
        assert.ok(!(r instanceof Error));
        assert.deepEqual(parse(formatExtensions(r)), first);
      }),
      { numRuns: 500 },
    );
  });

  it('every name and value parseExtensions returns is a token', () => {
    const r = parseExtensions('a; b="c"; d=e; f, g');
    assert.ok(!(r instanceof Error));
    for (const ext of r) {
      assert.ok(isToken(ext.name));
      for (const [k, v] of Object.entries(ext.params)) {
        assert.ok(isToken(k));
        if (v !== true) assert.ok(isToken(v));
      }
    }
  });
});

describe('RFC 6455 §9.1: server-side negotiation (negotiateExtensions)', () => {
  const levels = {
    name: 'x-level',
    negotiate: (offers: ReadonlyArray<Record<string, string | true>>) => (offers.length > 0 ? { level: String(offers.length) } : null),
  };
  const never = { name: 'x-never', negotiate: () => null };

  it("gives each negotiator all the client's offers of its extension, in order, and keeps the server's order", async () => {
    const { negotiateExtensions } = await import('../../src/protocol/extensions.js');
    const seen: Array<ReadonlyArray<Record<string, string | true>>> = [];
    const spy = { name: 'x-spy', negotiate: (o: ReadonlyArray<Record<string, string | true>>) => (seen.push(o), {}) };
    const offers: ExtensionOffer[] = [
      { name: 'x-spy', params: { a: '1' } },
      { name: 'x-level', params: {} },
      { name: 'x-spy', params: { b: true } },
    ];
    const result = negotiateExtensions(offers, [levels, spy, never]);
    assert.deepEqual(result, [
      { name: 'x-level', params: { level: '1' } },
      { name: 'x-spy', params: {} },
    ]);
    assert.deepEqual(seen, [[{ a: '1' }, { b: true }]]);
  });

  it('accepts nothing the client did not offer', async () => {
    const { negotiateExtensions } = await import('../../src/protocol/extensions.js');
    assert.deepEqual(negotiateExtensions([{ name: 'x-other', params: {} }], [levels]), []);
    assert.deepEqual(negotiateExtensions([], [levels, never]), []);
  });

  it('refuses a negotiator answer that is not a valid header parameter', async () => {
    const { negotiateExtensions } = await import('../../src/protocol/extensions.js');
    const bad = { name: 'x-bad', negotiate: () => ({ 'a b': 'c' }) };
    assert.ok(negotiateExtensions([{ name: 'x-bad', params: {} }], [bad]) instanceof Error);
    const badValue = { name: 'x-bad', negotiate: () => ({ a: 'b\r\nX: y' }) };
    assert.ok(negotiateExtensions([{ name: 'x-bad', params: {} }], [badValue]) instanceof Error);
  });
});
