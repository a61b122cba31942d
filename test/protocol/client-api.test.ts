/**
 * WHATWG WebSockets § The WebSocket interface: the parts of the API that need
 * no server — URL and protocol validation in the constructor, argument
 * checks of send() and close(), constants, binaryType, event handler
 * attributes — and the event classes. Where a connection attempt is needed it
 * goes to a loopback listener that never answers, and is closed at once.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../../src/index.js';
import { CloseEvent, ErrorEvent, MessageEvent } from '../../src/index.js';
import { ClientLog, RawServer, Scope } from '../helpers/client-peer.js';

/** A loopback listener that accepts and never answers, and a scope closing every client at the end. */
async function setup(t: TestContext): Promise<{ s: Scope; server: RawServer; open: (url?: string, protocols?: string | string[]) => WebSocket }> {
  const s = new Scope();
  t.after(() => s.dispose());
  const server = await s.rawServer();
  const open = (url = server.url(), protocols?: string | string[]): WebSocket => s.client(new WebSocket(url, protocols));
  return { s, server, open };
}

function assertDOMException(fn: () => unknown, name: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DOMException, `expected a DOMException, got ${String(err)}`);
    assert.equal(err.name, name);
    return true;
  });
}

describe('WHATWG WebSockets § The WebSocket interface: constants', () => {
  it('has CONNECTING=0, OPEN=1, CLOSING=2, CLOSED=3 on the constructor', () => {
    assert.equal(WebSocket.CONNECTING, 0);
    assert.equal(WebSocket.OPEN, 1);
    assert.equal(WebSocket.CLOSING, 2);
    assert.equal(WebSocket.CLOSED, 3);
    assert.equal(Reflect.set(WebSocket, 'OPEN', 5), false, 'constants are read-only');
    assert.equal(WebSocket.OPEN, 1);
  });

  it('has the same constants on instances, from the prototype (not own properties)', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    assert.deepEqual([ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED], [0, 1, 2, 3]);
    assert.equal(Object.hasOwn(ws, 'OPEN'), false);
    assert.equal(WebSocket.prototype.CLOSED, 3);
  });

  it('is an EventTarget', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    assert.ok(ws instanceof EventTarget);
    assert.equal(Object.prototype.toString.call(ws), '[object WebSocket]');
  });
});

describe('WHATWG WebSockets § The WebSocket interface: get a URL record', () => {
  it('keeps a ws: URL, serialised (lower-cased host, default path "/")', async (t) => {
    const { server, open } = await setup(t);
    const ws = open(`ws://127.0.0.1:${server.port}`);
    assert.equal(ws.url, `ws://127.0.0.1:${server.port}/`);
  });

  it('keeps the path and the query', async (t) => {
    const { server, open } = await setup(t);
    const ws = open(`ws://127.0.0.1:${server.port}/a/b?c=d&e`);
    assert.equal(ws.url, `ws://127.0.0.1:${server.port}/a/b?c=d&e`);
  });

  it('turns http: into ws:', async (t) => {
    const { server, open } = await setup(t);
    const ws = open(`http://127.0.0.1:${server.port}/x`);
    assert.equal(ws.url, `ws://127.0.0.1:${server.port}/x`);
  });

  it('turns https: into wss:', async (t) => {
    const { server, open } = await setup(t);
    const ws = open(`https://127.0.0.1:${server.port}/x`);
    assert.equal(ws.url, `wss://127.0.0.1:${server.port}/x`);
  });

  it('accepts an upper-case scheme', async (t) => {
    const { server, open } = await setup(t);
    const ws = open(`WS://127.0.0.1:${server.port}/`);
    assert.equal(ws.url, `ws://127.0.0.1:${server.port}/`);
  });

  it('leaves out the default port (80 for ws, 443 for wss)', async (t) => {
    const { open } = await setup(t);
    assert.equal(open('ws://127.0.0.1:80/').url, 'ws://127.0.0.1/');
    assert.equal(open('wss://127.0.0.1:443/').url, 'wss://127.0.0.1/');
    assert.equal(open('http://127.0.0.1:80/').url, 'ws://127.0.0.1/');
  });

  it('accepts a URL object', async (t) => {
    const { server, open } = await setup(t);
    const ws = open(new URL(server.url('/u')).href);
    assert.equal(ws.url, server.url('/u'));
  });

  for (const url of ['ftp://127.0.0.1/', 'file:///tmp/x', 'data:text/plain,x', 'javascript:alert(1)', 'mailto:a@b.c', 'blob:ws://127.0.0.1/x']) {
    it(`throws SyntaxError for another scheme: ${url}`, () => {
      assertDOMException(() => new WebSocket(url), 'SyntaxError');
    });
  }

  for (const url of ['ws://127.0.0.1/#frag', 'ws://127.0.0.1/#', 'http://127.0.0.1/path#x']) {
    it(`throws SyntaxError for a fragment: ${url}`, () => {
      assertDOMException(() => new WebSocket(url), 'SyntaxError');
    });
  }

  for (const url of ['', 'not a url', '/relative/path', '//127.0.0.1/', 'ws://', 'ws://[::1', 'ws://a b/']) {
    it(`throws SyntaxError for a URL that does not parse: ${JSON.stringify(url)}`, () => {
      assertDOMException(() => new WebSocket(url), 'SyntaxError');
    });
  }

  it('throws TypeError without arguments', () => {
    assert.throws(() => Reflect.construct(WebSocket, []), TypeError);
  });
});

describe('WHATWG WebSockets § The WebSocket interface: protocols', () => {
  it('accepts a single string and an array of distinct tokens', async (t) => {
    const { open } = await setup(t);
    assert.equal(open(undefined, 'chat').protocol, '');
    assert.equal(open(undefined, ['chat', 'superchat', 'v1.json']).protocol, '');
    assert.equal(open(undefined, []).protocol, '');
  });

  it('accepts any iterable of strings', async (t) => {
    const { s, server } = await setup(t);
    s.client(new WebSocket(server.url(), new Set(['a', 'b'])));
  });

  it('throws SyntaxError for a repeated protocol', () => {
    assertDOMException(() => new WebSocket('ws://127.0.0.1/', ['chat', 'chat']), 'SyntaxError');
  });

  it('throws SyntaxError for protocols repeated in a different case', () => {
    assertDOMException(() => new WebSocket('ws://127.0.0.1/', ['chat', 'CHAT']), 'SyntaxError');
  });

  for (const bad of ['', 'a b', 'a,b', 'foobar, foobar', 'ch\u00e2t', 'a/b', '[x]', 'a\tb', '"q"']) {
    it(`throws SyntaxError for a protocol that is not a token: ${JSON.stringify(bad)}`, () => {
      assertDOMException(() => new WebSocket('ws://127.0.0.1/', bad), 'SyntaxError');
      assertDOMException(() => new WebSocket('ws://127.0.0.1/', ['ok', bad]), 'SyntaxError');
    });
  }

  it('checks the URL before the protocols', () => {
    assertDOMException(() => new WebSocket('ftp://x/', ['a a']), 'SyntaxError');
  });
});

describe('WHATWG WebSockets § The WebSocket interface: options', () => {
  for (const [name, value] of [
    ['handshakeTimeout', 0],
    ['handshakeTimeout', -1],
    ['maxPayload', Number.NaN],
    ['closeTimeout', 0],
  ] as const) {
    it(`throws TypeError for ${name}: ${value}`, () => {
      assert.throws(() => new WebSocket('ws://127.0.0.1/', [], { [name]: value }), TypeError);
    });
  }
});

describe('WHATWG WebSockets § The WebSocket interface: attributes while CONNECTING', () => {
  it('starts CONNECTING with empty protocol and extensions and bufferedAmount 0', async (t) => {
    const { open } = await setup(t);
    const ws = open(undefined, ['chat']);
    assert.equal(ws.readyState, WebSocket.CONNECTING);
    assert.equal(ws.protocol, '');
    assert.equal(ws.extensions, '');
    assert.equal(ws.bufferedAmount, 0);
  });
});

describe('WHATWG WebSockets § binaryType', () => {
  it('is "blob" by default, as in browsers', async (t) => {
    const { open } = await setup(t);
    assert.equal(open().binaryType, 'blob');
  });

  it('takes "arraybuffer", "nodebuffer" and "blob"', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    ws.binaryType = 'arraybuffer';
    assert.equal(ws.binaryType, 'arraybuffer');
    ws.binaryType = 'nodebuffer';
    assert.equal(ws.binaryType, 'nodebuffer');
    ws.binaryType = 'blob';
    assert.equal(ws.binaryType, 'blob');
  });

  it('ignores a value that is not a BinaryType (WebIDL enumeration attribute)', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    ws.binaryType = 'arraybuffer';
    for (const bad of ['buffer', 'Blob', 'ARRAYBUFFER', '', 'fragments']) {
      Reflect.set(ws, 'binaryType', bad);
      assert.equal(ws.binaryType, 'arraybuffer');
    }
  });
});

describe('WHATWG WebSockets § send()', () => {
  it('throws InvalidStateError while CONNECTING', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    assertDOMException(() => ws.send('x'), 'InvalidStateError');
    assertDOMException(() => ws.send(new Uint8Array(1)), 'InvalidStateError');
    assertDOMException(() => ws.send(new Blob(['x'])), 'InvalidStateError');
    assert.equal(ws.bufferedAmount, 0);
  });

  it('throws TypeError without an argument', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    assert.throws(() => Reflect.apply(ws.send, ws, []), TypeError);
  });
});

describe('WHATWG WebSockets § close(): argument checks', () => {
  for (const code of [0, 999, 1001, 1002, 1005, 1006, 1015, 2000, 2999, 5000, 65535, -1, Number.NaN]) {
    it(`throws InvalidAccessError for code ${code}`, async (t) => {
      const { open } = await setup(t);
      const ws = open();
      assertDOMException(() => ws.close(code), 'InvalidAccessError');
      assert.equal(ws.readyState, WebSocket.CONNECTING);
    });
  }

  it('clamps and rounds the code as [Clamp] unsigned short: 999.6 is 1000, 70000 is 65535', async (t) => {
    const { open } = await setup(t);
    assertDOMException(() => open().close(70000), 'InvalidAccessError');
    assertDOMException(() => open().close(2999.4), 'InvalidAccessError');
    const ws = open();
    ws.close(999.6);
    assert.equal(ws.readyState, WebSocket.CLOSING);
  });

  for (const code of [1000, 3000, 4000, 4999]) {
    it(`accepts code ${code}`, async (t) => {
      const { open } = await setup(t);
      const ws = open();
      ws.close(code);
      assert.equal(ws.readyState, WebSocket.CLOSING);
    });
  }

  it('throws SyntaxError for a reason over 123 bytes of UTF-8', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    assertDOMException(() => ws.close(1000, 'x'.repeat(124)), 'SyntaxError');
    // 62 two-byte characters: 62 characters but 124 bytes.
    assertDOMException(() => ws.close(1000, '\u00e9'.repeat(62)), 'SyntaxError');
    assertDOMException(() => ws.close(undefined, 'x'.repeat(124)), 'SyntaxError');
    assert.equal(ws.readyState, WebSocket.CONNECTING);
  });

  it('accepts a reason of exactly 123 bytes', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    ws.close(1000, '\u00e9'.repeat(61) + 'x');
    assert.equal(ws.readyState, WebSocket.CLOSING);
  });

  it('checks the code before the reason', async (t) => {
    const { open } = await setup(t);
    assertDOMException(() => open().close(1001, 'x'.repeat(200)), 'InvalidAccessError');
  });

  it('checks its arguments even when already CLOSED', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    const log = new ClientLog(ws);
    ws.close();
    await log.closed();
    assertDOMException(() => ws.close(1001), 'InvalidAccessError');
    assertDOMException(() => ws.close(1000, 'x'.repeat(124)), 'SyntaxError');
    ws.close(1000);
    assert.equal(ws.readyState, WebSocket.CLOSED);
  });
});

describe('WHATWG WebSockets § close() while CONNECTING: fail the WebSocket connection', () => {
  it('sets CLOSING at once, then fires error and close (1006, not clean) and ends CLOSED', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    const log = new ClientLog(ws);
    ws.close(1000, 'never mind');
    assert.equal(ws.readyState, WebSocket.CLOSING);
    assert.deepEqual(log.types(), [], 'the events fire in a later task, not inside close()');
    const closed = await log.closed();
    assert.deepEqual(log.types(), ['error', 'close']);
    assert.equal(closed.code, 1006);
    assert.equal(closed.wasClean, false);
    assert.equal(closed.reason, '');
    assert.equal(ws.readyState, WebSocket.CLOSED);
  });

  it('does nothing when called again while CLOSING or CLOSED', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    const log = new ClientLog(ws);
    ws.close();
    ws.close(4000);
    await log.closed();
    ws.close();
    assert.deepEqual(log.types(), ['error', 'close']);
  });

  it('after closing, send() only adds to bufferedAmount', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    const log = new ClientLog(ws);
    ws.close();
    ws.send('abc');
    ws.send(new Uint8Array(10));
    ws.send(new Blob(['12345']));
    assert.equal(ws.bufferedAmount, 18);
    await log.closed();
    ws.send('\u00e9');
    assert.equal(ws.bufferedAmount, 20);
  });
});

describe('HTML § Event handler attributes: onopen, onmessage, onerror, onclose', () => {
  for (const name of ['onopen', 'onmessage', 'onerror', 'onclose'] as const) {
    it(`${name} is null by default, returns what was set, and null for a non-function`, async (t) => {
      const { open } = await setup(t);
      const ws = open();
      assert.equal(ws[name], null);
      const f = (): void => {};
      Reflect.set(ws, name, f);
      assert.equal(ws[name], f);
      Reflect.set(ws, name, 'not a function');
      assert.equal(ws[name], null);
      Reflect.set(ws, name, f);
      Reflect.set(ws, name, null);
      assert.equal(ws[name], null);
    });
  }

  it('calls the handler with the socket as this and the event', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    let seen: { self: unknown; event: Event } | null = null;
    ws.onopen = function (event) {
      seen = { self: this, event };
    };
    const e = new Event('open');
    ws.dispatchEvent(e);
    assert.deepEqual(seen, { self: ws, event: e });
  });

  it('runs together with addEventListener listeners, in registration order', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    const calls: string[] = [];
    ws.addEventListener('message', () => calls.push('listener 1'));
    ws.onmessage = () => calls.push('handler');
    ws.addEventListener('message', () => calls.push('listener 2'));
    ws.dispatchEvent(new MessageEvent('message', { data: 'x' }));
    assert.deepEqual(calls, ['listener 1', 'handler', 'listener 2']);
  });

  it('replacing the handler keeps its place; removing and setting again moves it last', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    const calls: string[] = [];
    ws.onclose = () => calls.push('first handler');
    ws.addEventListener('close', () => calls.push('listener'));
    ws.onclose = () => calls.push('second handler');
    ws.dispatchEvent(new CloseEvent('close'));
    assert.deepEqual(calls, ['second handler', 'listener']);
    calls.length = 0;
    ws.onclose = null;
    ws.onclose = () => calls.push('third handler');
    ws.dispatchEvent(new CloseEvent('close'));
    assert.deepEqual(calls, ['listener', 'third handler']);
  });

  it('a handler set to null is no longer called; one set to a new function replaces the old', async (t) => {
    const { open } = await setup(t);
    const ws = open();
    let a = 0;
    let b = 0;
    ws.onerror = () => a++;
    ws.dispatchEvent(new ErrorEvent('error'));
    ws.onerror = () => b++;
    ws.dispatchEvent(new ErrorEvent('error'));
    ws.onerror = null;
    ws.dispatchEvent(new ErrorEvent('error'));
    assert.deepEqual([a, b], [1, 1]);
  });
});

describe('WHATWG WebSockets § The CloseEvent interface', () => {
  it('defaults to wasClean false, code 0, reason ""', () => {
    const e = new CloseEvent('close');
    assert.ok(e instanceof Event);
    assert.equal(e.type, 'close');
    assert.equal(e.wasClean, false);
    assert.equal(e.code, 0);
    assert.equal(e.reason, '');
    assert.equal(Object.prototype.toString.call(e), '[object CloseEvent]');
  });

  it('takes wasClean, code and reason from its init dictionary', () => {
    const e = new CloseEvent('close', { wasClean: true, code: 4001, reason: 'bye', cancelable: true });
    assert.equal(e.wasClean, true);
    assert.equal(e.code, 4001);
    assert.equal(e.reason, 'bye');
    assert.equal(e.cancelable, true);
  });

  it('converts code as an unsigned short and reason as a USVString', () => {
    assert.equal(new CloseEvent('close', { code: 65537 }).code, 1);
    assert.equal(new CloseEvent('close', { reason: 'a\ud800b' }).reason, 'a\ufffdb');
  });

  it('has read-only attributes', () => {
    const e = new CloseEvent('close', { code: 1000 });
    assert.equal(Reflect.set(e, 'code', 1), false);
    assert.equal(e.code, 1000);
  });
});

describe('HTML § The ErrorEvent and MessageEvent interfaces', () => {
  it('ErrorEvent carries message and error', () => {
    const error = new Error('boom');
    const e = new ErrorEvent('error', { message: 'boom', error });
    assert.ok(e instanceof Event);
    assert.equal(e.message, 'boom');
    assert.equal(e.error, error);
    assert.equal(e.filename, '');
    assert.equal(e.lineno, 0);
    assert.equal(e.colno, 0);
    assert.equal(new ErrorEvent('error').error, undefined);
  });

  it('MessageEvent carries data and origin; data defaults to null', () => {
    const e = new MessageEvent('message', { data: 'hi', origin: 'ws://127.0.0.1:1' });
    assert.ok(e instanceof Event);
    assert.equal(e.data, 'hi');
    assert.equal(e.origin, 'ws://127.0.0.1:1');
    assert.equal(e.lastEventId, '');
    assert.equal(e.source, null);
    assert.deepEqual(e.ports, []);
    assert.equal(new MessageEvent('message').data, null);
    assert.equal(Object.prototype.toString.call(e), '[object MessageEvent]');
  });
});
