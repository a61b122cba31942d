/**
 * An independent conformance audit of the WHATWG WebSocket client's events
 * and interface shape, over real loopback sockets: WHATWG WebSockets §
 * Feedback from the protocol (one task per event, states seen by each),
 * the event objects fired, DOM § EventTarget listener semantics with real
 * protocol events (duplicates, capture, handleEvent, once, signal, removal
 * during dispatch, exceptions), and the WebIDL shape of the interface.
 * What test/protocol/client-api.test.ts and test/node/client.test.ts cover
 * is not repeated here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CloseEvent, MessageEvent, WebSocket } from '../../src/index.js';
import { ClientLog, withTimeout } from '../helpers/client-peer.js';
import { OP, connectRaw, dialRaw, openRaw } from '../helpers/client-raw.js';
import { closePayload, serverFrame } from '../helpers/frames.js';

const text = (s: string): Buffer => serverFrame({ opcode: OP.TEXT, payload: s });

/** Resolves once `cond()` holds, polling each turn of the event loop (bounded). */
function until(cond: () => boolean, what: string): Promise<void> {
  return withTimeout(
    (async () => {
      while (!cond()) await new Promise((r) => setImmediate(r));
    })(),
    5_000,
    what,
  );
}

describe('WHATWG WebSockets § Feedback from the protocol: one task per event', () => {
  it('101 + two messages + a close frame in one packet, then FIN: open, message, message, close, each seeing the right readyState', async (t) => {
    const trailing = Buffer.concat([text('a'), text('b'), serverFrame({ opcode: OP.CLOSE, payload: closePayload(4000, 'bye') })]);
    const o = await connectRaw(t, { trailing });
    o.peer.end();
    const seen: string[] = [];
    for (const type of ['open', 'message', 'close'] as const) {
      o.ws.addEventListener(type, (e) => seen.push(`${type}${e instanceof MessageEvent ? `:${String(e.data)}` : ''}@${o.ws.readyState}`));
    }
    const closed = await o.log.closed();
    assert.deepEqual(seen, ['open@1', 'message:a@1', 'message:b@1', 'close@3']);
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4000, 'bye', true]);
  });

  it('close() in the open listener: messages that came with the 101 are not dispatched ("if ready state is not OPEN, return")', async (t) => {
    const trailing = Buffer.concat([text('a'), text('b')]);
    const o = await connectRaw(t, { trailing });
    o.ws.onopen = () => o.ws.close(1000);
    await o.peer.readUntil(OP.CLOSE);
    o.peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    o.peer.end();
    const closed = await o.log.closed();
    assert.deepEqual(o.log.types(), ['open', 'close']);
    assert.equal(closed.wasClean, true);
  });
});

describe('WHATWG WebSockets § Feedback from the protocol: the event objects', () => {
  it('open is a plain Event; message a MessageEvent; close a CloseEvent; none bubbles or is cancelable; target is the socket', async (t) => {
    const o = await connectRaw(t, { trailing: Buffer.concat([text('hi'), serverFrame({ opcode: OP.BINARY, payload: 'b' })]) });
    // (currentTarget and eventPhase are Node's EventTarget's business: Node 20 resets them after the first listener.)
    const events: Event[] = [];
    for (const type of ['open', 'message', 'close']) o.ws.addEventListener(type, (e) => events.push(e));
    await o.log.nth('message', 2);
    o.peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    o.peer.end();
    await o.log.closed();
    assert.deepEqual(events.map((e) => e.type), ['open', 'message', 'message', 'close']);
    assert.equal(Object.getPrototypeOf(events[0]), Event.prototype, 'open is fired as an Event');
    for (const e of events) {
      assert.deepEqual([e.bubbles, e.cancelable, e.composed, e.defaultPrevented, e.target], [false, false, false, false, o.ws], e.type);
    }
    const [, m1, m2, close] = events;
    assert.ok(m1 instanceof MessageEvent && m2 instanceof MessageEvent);
    assert.deepEqual([m1.data, m1.lastEventId, m1.source, m1.ports.length], ['hi', '', null, 0]);
    assert.ok(m2.data instanceof Blob, 'binaryType "blob" by default');
    assert.equal(m2.data.type, '', 'the Blob has no type');
    assert.equal(await m2.data.text(), 'b');
    assert.ok(close instanceof CloseEvent);
  });

  it('the error event of a failed connection is an Event that does not bubble and is not cancelable, and close follows even when it is canceled', async (t) => {
    const o = await connectRaw(t, { accept: 'wrong' });
    const errors: Event[] = [];
    o.ws.onerror = (e) => {
      errors.push(e);
      e.preventDefault();
      e.stopImmediatePropagation();
    };
    const closed = await o.log.closed();
    assert.equal(errors.length, 1);
    const [e] = errors;
    assert.ok(e instanceof Event);
    assert.deepEqual([e.type, e.bubbles, e.cancelable, e.defaultPrevented], ['error', false, false, false]);
    assert.equal(closed.code, 1006);
  });
});

describe('DOM § EventTarget: listeners on real protocol events', () => {
  it('one function added twice is one listener: it fires once per message, and one removal stops it', async (t) => {
    // (Capture flags are left out: Node 20's own EventTarget mismatches capture on removal, for any target.)
    const o = await openRaw(t);
    const calls: string[] = [];
    const fn = (e: Event): void => void calls.push(String((e as MessageEvent).data));
    o.ws.addEventListener('message', fn);
    o.ws.addEventListener('message', fn);
    o.ws.onmessage = fn;
    o.peer.write(text('1'));
    await o.log.nth('message', 1);
    assert.deepEqual(calls, ['1', '1'], 'the listener once and the handler once');
    o.ws.removeEventListener('message', fn);
    o.peer.write(text('2'));
    await o.log.nth('message', 2);
    assert.deepEqual(calls, ['1', '1', '2'], 'removeEventListener leaves the handler attribute in place');
  });

  it('handleEvent objects are called with the object as this; once fires a single time; an aborted signal removes the listener', async (t) => {
    const o = await openRaw(t);
    const calls: string[] = [];
    const handler = {
      name: 'obj',
      handleEvent(this: { name: string }, e: Event): void {
        calls.push(`${this.name}:${String((e as MessageEvent).data)}`);
      },
    };
    o.ws.addEventListener('message', handler);
    o.ws.addEventListener('message', (e) => calls.push(`once:${String(e.data)}`), { once: true });
    const abort = new AbortController();
    o.ws.addEventListener('message', (e) => calls.push(`signal:${String(e.data)}`), { signal: abort.signal });
    o.peer.write(text('1'));
    await o.log.nth('message', 1);
    abort.abort();
    o.peer.write(text('2'));
    await o.log.nth('message', 2);
    assert.deepEqual(calls, ['obj:1', 'once:1', 'signal:1', 'obj:2']);
  });

  it('order is registration order, onmessage included; a listener removed (or a handler set to null) by an earlier one is not called for the same event', async (t) => {
    const o = await openRaw(t);
    const calls: string[] = [];
    const later = (): void => void calls.push('later');
    o.ws.addEventListener('message', () => {
      calls.push('first');
      if (calls.length === 1) {
        o.ws.removeEventListener('message', later);
        o.ws.onmessage = null;
      }
    });
    o.ws.onmessage = () => calls.push('onmessage');
    o.ws.addEventListener('message', later);
    o.ws.addEventListener('message', () => calls.push('last'));
    o.peer.write(text('1'));
    await o.log.nth('message', 1);
    assert.deepEqual(calls, ['first', 'last']);
  });

  it('a listener that throws does not stop the others nor the connection; the exception is reported as uncaught on process (Node EventTarget), once each', async (t) => {
    const reported: unknown[] = [];
    process.setUncaughtExceptionCaptureCallback((err) => reported.push(err));
    t.after(() => process.setUncaughtExceptionCaptureCallback(null));
    const o = await dialRaw(t);
    const boomOpen = new Error('open listener');
    const boomMessage = new Error('onmessage');
    const boomClose = new Error('close listener');
    const calls: string[] = [];
    o.ws.addEventListener('open', () => {
      throw boomOpen;
    });
    o.ws.addEventListener('open', () => {
      calls.push('open 2');
      o.ws.send('still open');
    });
    o.ws.onmessage = () => {
      throw boomMessage;
    };
    o.ws.addEventListener('message', (e) => calls.push(`message ${String(e.data)}`));
    o.ws.addEventListener('close', () => {
      throw boomClose;
    });
    o.ws.addEventListener('close', (e) => calls.push(`close ${e.code}`));
    await o.peer.handshake();
    assert.equal((await o.peer.readFrame()).payload.toString(), 'still open');
    o.peer.write(Buffer.concat([text('1'), text('2')]));
    await o.log.nth('message', 2);
    assert.equal(o.ws.readyState, WebSocket.OPEN);
    o.peer.write(serverFrame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    o.peer.end();
    await o.log.closed();
    await until(() => reported.length >= 4, 'the four exceptions to be reported');
    assert.deepEqual(calls, ['open 2', 'message 1', 'message 2', 'close 1000']);
    assert.deepEqual(reported, [boomOpen, boomMessage, boomMessage, boomClose]);
  });

  it('dispatchEvent of a synthetic close on an OPEN socket runs the listeners and changes nothing else', async (t) => {
    const o = await openRaw(t);
    let onclose = 0;
    o.ws.onclose = () => onclose++;
    assert.equal(o.ws.dispatchEvent(new CloseEvent('close', { code: 1000, wasClean: true })), true);
    assert.equal(onclose, 1);
    assert.equal(o.ws.readyState, WebSocket.OPEN);
    o.peer.write(text('still here'));
    assert.equal(await o.log.message(1), 'still here');
  });
});

describe('WebIDL § interface objects: the shape of WebSocket', () => {
  const proto = WebSocket.prototype;
  const attributes = ['url', 'readyState', 'bufferedAmount', 'onopen', 'onerror', 'onclose', 'extensions', 'protocol', 'onmessage', 'binaryType'];
  const readonly = ['url', 'readyState', 'bufferedAmount', 'extensions', 'protocol'];

  it('§3.7.6-3.7.7: attributes are accessors and operations are methods on the prototype, all enumerable and configurable', () => {
    for (const name of [...attributes, 'send', 'close']) {
      const d = Object.getOwnPropertyDescriptor(proto, name);
      assert.ok(d !== undefined, name);
      assert.deepEqual([name, d.enumerable, d.configurable], [name, true, true]);
    }
  });

  it('§3.7.6: readonly attributes have no setter (assignment throws in strict code); the others have one', (t) => {
    for (const name of attributes) {
      const d = Object.getOwnPropertyDescriptor(proto, name);
      assert.equal(typeof d?.get, 'function', name);
      assert.equal(d?.set === undefined, readonly.includes(name), name);
    }
    const o = new ClientLog(new WebSocket('ws://127.0.0.1:1/'));
    t.after(() => o.ws.close());
    assert.throws(() => Reflect.apply(() => ((o.ws as unknown as { url: string }).url = 'x'), null, []), TypeError);
  });

  it('§3.7.6: the getters check their this value (TypeError on a non-WebSocket, on the prototype itself)', () => {
    for (const name of attributes) {
      const get = Object.getOwnPropertyDescriptor(proto, name)?.get;
      assert.throws(() => get?.call({}), TypeError, name);
      assert.throws(() => get?.call(proto), TypeError, name);
    }
    assert.throws(() => proto.send.call({} as WebSocket, 'x'), TypeError);
    assert.throws(() => proto.close.call({} as WebSocket), TypeError);
  });

  it('§3.7.1, §3.7.7: length is the number of required arguments: WebSocket 1, send 1, close 0', () => {
    assert.deepEqual([WebSocket.length, proto.send.length, proto.close.length], [1, 1, 0]);
  });

  it('§3.7.3: Symbol.toStringTag is a data property of the prototype: "WebSocket", not writable or enumerable, configurable', () => {
    const d = Object.getOwnPropertyDescriptor(proto, Symbol.toStringTag);
    assert.deepEqual(d, { value: 'WebSocket', writable: false, enumerable: false, configurable: true });
    assert.equal(Object.prototype.toString.call(proto), '[object WebSocket]');
  });

  it('§3.7.5 constants: CONNECTING..CLOSED are enumerable, non-writable, non-configurable values on the constructor and the prototype', () => {
    for (const [name, value] of [['CONNECTING', 0], ['OPEN', 1], ['CLOSING', 2], ['CLOSED', 3]] as const) {
      for (const holder of [WebSocket, proto]) {
        assert.deepEqual(Object.getOwnPropertyDescriptor(holder, name), { value, writable: false, enumerable: true, configurable: false });
      }
    }
  });

  it('the interface object needs new, inherits from EventTarget, and an instance\'s prototype chain is WebSocket → EventTarget', () => {
    assert.throws(() => Reflect.apply(WebSocket as unknown as () => void, undefined, ['ws://127.0.0.1:1/']), TypeError);
    assert.equal(Object.getPrototypeOf(WebSocket), EventTarget);
    assert.equal(Object.getPrototypeOf(proto), EventTarget.prototype);
  });
});
