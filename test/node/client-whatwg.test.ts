/**
 * An independent conformance audit of the WHATWG WebSocket client against
 * the WebSockets Standard (https://websockets.spec.whatwg.org/) and WebIDL,
 * over real loopback sockets: the constructor's URL and protocols, send()
 * of every BufferSource kind, Blobs and odd values, bufferedAmount around
 * closing, and close()'s argument conversions. Each test names the spec step
 * it checks; what test/protocol/client-api.test.ts and test/node/client.test.ts
 * already cover is not repeated here.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../../src/index.js';
import { ClientLog } from '../helpers/client-peer.js';
import { OP, connectRaw, dialRaw, openRaw, scope } from '../helpers/client-raw.js';
import { closeFrameOf, closePayload, serverFrame } from '../helpers/frames.js';

/** A client that will never connect anywhere (closed at once): only its URL is read. */
function urlOf(t: TestContext, url: string): string {
  const s = scope(t);
  const ws = s.client(new WebSocket(url));
  const href = ws.url;
  ws.close();
  return href;
}

function assertThrowsDOM(fn: () => unknown, name: string): void {
  assert.throws(fn, (err: unknown) => err instanceof DOMException && err.name === name, `expected a ${name} DOMException`);
}

describe('WHATWG WebSockets § new WebSocket(url): get a URL record, and the url attribute', () => {
  it('step 1 (URL parser): a port over 65535 does not parse → SyntaxError', () => {
    assertThrowsDOM(() => new WebSocket('ws://127.0.0.1:65536/'), 'SyntaxError');
    assertThrowsDOM(() => new WebSocket('ws://127.0.0.1:-1/'), 'SyntaxError');
  });

  it('step 1 (no base URL in Node): "chat", "?q=1" and "./x" are relative → SyntaxError (a browser would resolve them against the document)', () => {
    for (const url of ['chat', '?q=1', './x', '127.0.0.1:80']) assertThrowsDOM(() => new WebSocket(url), 'SyntaxError');
  });

  it('steps 3-4 + URL serializer: http/https map to ws/wss and a port that is the new scheme\'s default disappears', (t) => {
    assert.equal(urlOf(t, 'http://127.0.0.1:80/a'), 'ws://127.0.0.1/a');
    assert.equal(urlOf(t, 'https://127.0.0.1:443/a'), 'wss://127.0.0.1/a');
    assert.equal(urlOf(t, 'http://127.0.0.1:443/a'), 'ws://127.0.0.1:443/a');
    assert.equal(urlOf(t, 'https://127.0.0.1:80/a'), 'wss://127.0.0.1:80/a');
    assert.equal(urlOf(t, 'wss://127.0.0.1:443'), 'wss://127.0.0.1/');
  });

  it('url is the serialisation: percent-encoded path and query, IPv6 in brackets, host lower-cased, dot segments resolved', (t) => {
    assert.equal(urlOf(t, 'ws://127.0.0.1:1/a b/ä?x=ö&y=a b'), 'ws://127.0.0.1:1/a%20b/%C3%A4?x=%C3%B6&y=a%20b');
    assert.equal(urlOf(t, 'ws://[0:0::1]:1/'), 'ws://[::1]:1/');
    assert.equal(urlOf(t, 'WS://LOCALHOST:1/x/../y'), 'ws://localhost:1/y');
  });

  it('the url argument is a USVString: a lone surrogate becomes U+FFFD, percent-encoded as %EF%BF%BD', (t) => {
    assert.equal(urlOf(t, 'ws://127.0.0.1:1/\uD800'), 'ws://127.0.0.1:1/%EF%BF%BD');
  });

  it('a URL object argument is read, not changed: http: becomes ws: on the socket only', (t) => {
    const input = new URL('http://127.0.0.1:1/p');
    assert.equal(urlOf(t, input.href), 'ws://127.0.0.1:1/p');
    const s = scope(t);
    const ws = s.client(new WebSocket(input));
    ws.close();
    assert.equal(input.href, 'http://127.0.0.1:1/p');
  });

  it('the request target sent is the path and query of the serialised URL', async (t) => {
    const s = scope(t);
    const server = await s.rawServer();
    s.client(new WebSocket(`http://127.0.0.1:${server.port}/a b/ä?x=ö`));
    const req = await (await server.next()).readRequest();
    assert.equal(req.target, '/a%20b/%C3%A4?x=%C3%B6');
  });
});

describe('WHATWG WebSockets § new WebSocket(url, protocols): the protocols argument', () => {
  it('step 3: a string is a sequence of that one string; an empty sequence sends no Sec-WebSocket-Protocol', async (t) => {
    for (const [protocols, expected] of [
      ['chat', 'chat'],
      [['chat'], 'chat'],
      [['a', 'b', 'c'], 'a, b, c'],
      [[], undefined],
      [undefined, undefined],
    ] as const) {
      const o = await dialRaw(t, {}, protocols as string[] | undefined);
      const req = await o.peer.readRequest();
      assert.equal(req.headers.get('sec-websocket-protocol'), expected, `protocols ${JSON.stringify(protocols)}`);
    }
  });

  it('WebIDL (DOMString or sequence<DOMString>): null is the string "null", a valid token', async (t) => {
    const o = await dialRaw(t, {}, null as unknown as string[]);
    const req = await o.peer.readRequest();
    assert.equal(req.headers.get('sec-websocket-protocol'), 'null');
  });

  it('step 4: the empty string, a separator or a non-ASCII character in a string argument → SyntaxError', () => {
    for (const p of ['', 'a,b', 'a b', 'chät', '"q"', 'a/b']) assertThrowsDOM(() => new WebSocket('ws://127.0.0.1:1/', p), 'SyntaxError');
  });

  it('protocols offered but none chosen by the server (no Sec-WebSocket-Protocol): the connection opens with protocol ""', async (t) => {
    const o = await connectRaw(t, {}, {}, ['a', 'b']);
    await o.log.first('open');
    assert.equal(o.ws.protocol, '');
  });

  it('step 4: an empty array is fine and the protocol attribute stays "" after open', async (t) => {
    const o = await connectRaw(t, {}, {}, []);
    await o.log.first('open');
    assert.equal(o.ws.protocol, '');
  });
});

describe('WHATWG WebSockets § Feedback from the protocol: attributes and data once open', () => {
  it('"set extensions to the extensions in use": the server\'s Sec-WebSocket-Extensions value as sent (RFC 6455 §9.1), not re-serialised', async (t) => {
    const value = 'permessage-deflate;server_no_context_takeover';
    const o = await connectRaw(t, { headers: { 'Sec-WebSocket-Extensions': value } });
    await o.log.first('open');
    assert.equal(o.ws.extensions, value);
  });

  it('binaryType "arraybuffer": each message gets its own ArrayBuffer; later messages (fragmented too) never overwrite it', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.binaryType = 'arraybuffer';
    const part = (fin: boolean, opcode: number, payload: string): Buffer => serverFrame({ opcode, fin, payload });
    peer.write(Buffer.concat([part(false, OP.BINARY, 'aaaa'), part(true, OP.CONTINUATION, 'bbbb'), part(true, OP.BINARY, 'cc')]));
    const first = (await log.message(1)) as ArrayBuffer;
    const second = (await log.message(2)) as ArrayBuffer;
    peer.write(Buffer.concat([part(false, OP.BINARY, 'dddd'), part(true, OP.CONTINUATION, 'eeee'), part(true, OP.BINARY, 'ff')]));
    await log.message(4);
    assert.deepEqual([Buffer.from(first).toString(), Buffer.from(second).toString()], ['aaaabbbb', 'cc']);
    assert.deepEqual([first.byteLength, second.byteLength], [8, 2]);
  });
});

describe('WHATWG WebSockets § send(data): ArrayBuffer and every ArrayBufferView kind', () => {
  it('each TypedArray kind and a DataView send exactly the bytes of their range, as binary, copied at the call', async (t) => {
    const { ws, peer } = await openRaw(t);
    const source = new ArrayBuffer(64);
    new Uint8Array(source).forEach((_, i, a) => (a[i] = i));
    const kinds = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
    const views: ArrayBufferView[] = [...kinds.map((Kind) => new Kind(source, 8, 3)), new DataView(source, 3, 5), Buffer.from(source, 60, 4)];
    let total = 0;
    const expected: string[] = [];
    for (const v of views) {
      expected.push(Buffer.from(source, v.byteOffset, v.byteLength).toString('hex'));
      ws.send(v);
      total += v.byteLength;
      // "bufferedAmount increases by the byte length of data" at each call.
      assert.equal(ws.bufferedAmount, total, v.constructor.name);
    }
    // The bytes are a copy "held by the buffer source" when send() runs: later writes do not leak.
    new Uint8Array(source).fill(0xee);
    for (const [i, v] of views.entries()) {
      const f = await peer.readFrame();
      assert.equal(f.opcode, OP.BINARY, v.constructor.name);
      assert.equal(f.payload.toString('hex'), expected[i], v.constructor.name);
    }
  });

  it('an empty ArrayBuffer and an empty view send empty binary messages', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send(new ArrayBuffer(0));
    ws.send(new Float64Array(0));
    for (let i = 0; i < 2; i++) {
      const f = await peer.readFrame();
      assert.deepEqual([f.opcode, f.payload.length], [OP.BINARY, 0]);
    }
  });

  it('WebIDL § get a copy of the bytes held by the buffer source: a detached ArrayBuffer, or a view on one, is the empty byte sequence (an empty binary message)', async (t) => {
    const { ws, peer } = await openRaw(t);
    const detached = new ArrayBuffer(4);
    const view = new Uint16Array(detached, 2, 1);
    structuredClone(detached, { transfer: [detached] });
    ws.send(detached);
    ws.send(view);
    assert.equal(ws.bufferedAmount, 0);
    for (let i = 0; i < 2; i++) {
      const f = await peer.readFrame();
      assert.deepEqual([f.opcode, f.payload.length], [OP.BINARY, 0]);
    }
  });

  it('WebIDL overloads: a SharedArrayBuffer is neither ArrayBuffer nor a view, so it is sent as the USVString "[object SharedArrayBuffer]"', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send(new SharedArrayBuffer(4) as unknown as ArrayBuffer);
    const f = await peer.readFrame();
    assert.deepEqual([f.opcode, f.payload.toString()], [OP.TEXT, '[object SharedArrayBuffer]']);
  });

  it('WebIDL § ArrayBufferView conversion: a view on a SharedArrayBuffer (no [AllowShared] in BufferSource) throws TypeError', async (t) => {
    const { ws } = await openRaw(t);
    const shared = new SharedArrayBuffer(8);
    assert.throws(() => ws.send(new Uint8Array(shared)), TypeError);
    assert.throws(() => ws.send(new DataView(shared)), TypeError);
    assert.equal(ws.bufferedAmount, 0);
  });

  it('WebIDL § ArrayBuffer conversion: a resizable ArrayBuffer, or a view on one (no [AllowResizable]), throws TypeError', async (t) => {
    const { ws } = await openRaw(t);
    const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;
    const resizable = new Resizable(4, { maxByteLength: 8 });
    assert.throws(() => ws.send(resizable), TypeError);
    assert.throws(() => ws.send(new Uint8Array(resizable)), TypeError);
  });
});

describe('WHATWG WebSockets § send(data): strings and other values', () => {
  it('a USVString: lone surrogates are sent as U+FFFD (EF BF BD), and bufferedAmount counts those 3 bytes each', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send('\uD800a\uDC00\uD83D\uDE00');
    assert.equal(ws.bufferedAmount, 3 + 1 + 3 + 4);
    const f = await peer.readFrame();
    assert.equal(f.opcode, OP.TEXT);
    assert.equal(f.payload.toString('hex'), 'efbfbd61efbfbdf09f9880');
  });

  it('WebIDL overloads: null, undefined, a number and an object are converted to USVString and sent as text', async (t) => {
    const { ws, peer } = await openRaw(t);
    const send = ws.send.bind(ws) as (data: unknown) => void;
    send(null);
    send(undefined);
    send(12.5);
    send({ toString: () => 'x\uDC00' });
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const f = await peer.readFrame();
      assert.equal(f.opcode, OP.TEXT);
      got.push(f.payload.toString());
    }
    assert.deepEqual(got, ['null', 'undefined', '12.5', 'x\uFFFD']);
    // A Symbol has no USVString conversion: TypeError, nothing sent or counted.
    assert.throws(() => send(Symbol('s')), TypeError);
    assert.equal(ws.bufferedAmount, 0);
  });
});

describe('WHATWG WebSockets § send(data): Blob', () => {
  it('a Blob (its type ignored), a File and an empty Blob are binary; bufferedAmount grows by their size at the call', async (t) => {
    const { ws, peer } = await openRaw(t);
    ws.send(new Blob(['é', 'x'], { type: 'text/plain' }));
    assert.equal(ws.bufferedAmount, 3);
    ws.send(new File(['file'], 'name.txt', { type: 'text/plain' }));
    ws.send(new Blob([]));
    assert.equal(ws.bufferedAmount, 7);
    const frames = [await peer.readFrame(), await peer.readFrame(), await peer.readFrame()];
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.payload.toString()]),
      [
        [OP.BINARY, 'éx'],
        [OP.BINARY, 'file'],
        [OP.BINARY, ''],
      ],
    );
  });
});

describe('WHATWG WebSockets § send(data) once closing: "increase bufferedAmount", send nothing', () => {
  it('after close() while OPEN, every kind of data only adds to bufferedAmount, in CLOSING and CLOSED alike; nothing but the close frame is sent', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(1000);
    assert.equal(ws.readyState, WebSocket.CLOSING);
    ws.send('é');
    ws.send(new ArrayBuffer(3));
    ws.send(new Int32Array(2));
    ws.send(new Blob(['1234']));
    assert.equal(ws.bufferedAmount, 2 + 3 + 8 + 4);
    const frames = await peer.readUntil(OP.CLOSE);
    assert.deepEqual(frames.map((f) => f.opcode), [OP.CLOSE]);
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    peer.end();
    await log.closed();
    assert.equal(ws.bufferedAmount, 17, 'never decreases: the data was never sent');
    ws.send('abc');
    assert.equal(ws.bufferedAmount, 20);
    await peer.waitEnd();
    assert.equal(peer.unread, 0, 'nothing sent after the close frame');
  });

  it('after the server\'s close frame (CLOSING without close()), send() adds to bufferedAmount and sends nothing', async (t) => {
    const { ws, peer } = await openRaw(t);
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(4000, 'x') }));
    const echo = await peer.readFrame();
    assert.equal(echo.opcode, OP.CLOSE);
    assert.equal(ws.readyState, WebSocket.CLOSING);
    ws.send('abcd');
    ws.send(new Blob(['ab']));
    assert.equal(ws.bufferedAmount, 6);
    peer.end();
    await peer.waitEnd();
    assert.equal(peer.unread, 0);
  });
});

describe('WHATWG WebSockets § close(code, reason): conversions and repeated calls', () => {
  it('WebIDL [Clamp] unsigned short: null and NaN are 0 → InvalidAccessError; "3000" is 3000', async (t) => {
    const { ws, peer } = await openRaw(t);
    const close = ws.close.bind(ws) as (code?: unknown, reason?: unknown) => void;
    assertThrowsDOM(() => close(null), 'InvalidAccessError');
    assertThrowsDOM(() => close(Number.NaN), 'InvalidAccessError');
    assertThrowsDOM(() => close('1000x'), 'InvalidAccessError');
    assert.throws(() => close(1000n), TypeError, 'ToNumber of a BigInt throws');
    assert.equal(ws.readyState, WebSocket.OPEN);
    close('3000', null);
    const f = await peer.readFrame();
    assert.deepEqual(closeFrameOf(f), { code: 3000, reason: 'null' });
  });

  it('reason is a USVString: a lone surrogate is sent as EF BF BD; 121 ASCII + a lone surrogate is 124 bytes → SyntaxError', async (t) => {
    const { ws, peer } = await openRaw(t);
    assertThrowsDOM(() => ws.close(1000, 'a'.repeat(121) + '\uD800'), 'SyntaxError');
    ws.close(1000, 'a\uD800');
    const f = await peer.readFrame();
    assert.equal(f.payload.subarray(2).toString('hex'), '61efbfbd');
  });

  it('close() three times while OPEN: CLOSING at once, no event inside close(), one close frame, one close event', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    ws.close(4001, 'first');
    assert.equal(ws.readyState, WebSocket.CLOSING);
    ws.close(4002, 'second');
    ws.close();
    assert.deepEqual(log.types(), ['open'], 'nothing fires synchronously inside close()');
    const frame = await peer.readFrame();
    assert.deepEqual(closeFrameOf(frame), { code: 4001, reason: 'first' });
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(4001, 'first') }));
    peer.end();
    const closed = await log.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4001, 'first', true]);
    await peer.waitEnd();
    assert.equal(peer.unread, 0, 'a second close frame was sent');
    assert.deepEqual(log.types(), ['open', 'close']);
  });

  it('close() after the server\'s close frame (CLOSING) sends nothing more: the echo is the only close frame', async (t) => {
    const { ws, peer, log } = await openRaw(t);
    peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(4000) }));
    await peer.readFrame();
    ws.close(4005, 'late');
    peer.end();
    const closed = await log.closed();
    assert.equal(closed.code, 4000);
    await peer.waitEnd();
    assert.equal(peer.unread, 0);
  });

  it('close() inside the close listener: the state stays CLOSED and no second close event fires (WPT close-nested)', async (t) => {
    const { ws, peer } = await openRaw(t);
    const log = new ClientLog(ws);
    const states: number[] = [];
    ws.onclose = () => {
      ws.close();
      ws.close(1000, 'again');
      states.push(ws.readyState);
    };
    ws.close();
    await peer.readFrame();
    peer.write(serverFrame({ opcode: OP.CLOSE }));
    peer.end();
    await log.closed();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(states, [WebSocket.CLOSED]);
    assert.deepEqual(log.types(), ['close']);
  });
});
