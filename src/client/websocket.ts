/**
 * The WebSocket client: the WHATWG WebSocket interface
 * (https://websockets.spec.whatwg.org/) over node:http / node:https, on the
 * sans-I/O protocol core.
 *
 * `WebSocket` is the API object; its methods follow the spec's algorithms
 * step by step. `ClientSession` (session.ts) runs the connection behind it.
 */
import { Blob } from 'node:buffer';
import { CloseCode, MAX_CLOSE_REASON_BYTES } from '../protocol/close.js';
import { isToken } from '../protocol/extensions.js';
import { ReadyState } from '../protocol/ready-state.js';
import { type CloseEvent, type ErrorEvent, type MessageEvent, toUSVString } from './events.js';
import { type BinaryType, type MessageData, type WebSocketOptions, resolveOptions } from './options.js';
import { ClientSession } from './session.js';
import { webIdlShape } from './webidl.js';

const CONNECTING = ReadyState.Connecting;
const OPEN = ReadyState.Open;
const CLOSING = ReadyState.Closing;
const CLOSED = ReadyState.Closed;

/** The events a WebSocket fires, for typed listeners. */
export interface WebSocketEventMap {
  open: Event;
  message: MessageEvent<MessageData>;
  error: ErrorEvent;
  close: CloseEvent;
}

type EventType = keyof WebSocketEventMap;
type EventHandler<K extends EventType> = ((this: WebSocket, event: WebSocketEventMap[K]) => unknown) | null;
type ListenerOptions = boolean | { capture?: boolean; once?: boolean; passive?: boolean; signal?: AbortSignal };
type Listener = ((event: Event) => void) | { handleEvent(event: Event): void };


/** One event handler IDL attribute (HTML § Event handlers): its current value and the listener registered for it. */
interface HandlerSlot<K extends EventType> {
  fn: NonNullable<EventHandler<K>>;
  readonly listener: (event: Event) => void;
}
type HandlerSlots = { [K in EventType]?: HandlerSlot<K> };

// Typed overloads for listeners, merged into the class below (as the DOM's own declarations do).
export interface WebSocket {
  addEventListener<K extends EventType>(
    type: K,
    listener: (this: WebSocket, event: WebSocketEventMap[K]) => unknown,
    options?: ListenerOptions,
  ): void;
  addEventListener(type: string, listener: Listener, options?: ListenerOptions): void;
  removeEventListener<K extends EventType>(
    type: K,
    listener: (this: WebSocket, event: WebSocketEventMap[K]) => unknown,
    options?: boolean | { capture?: boolean },
  ): void;
  removeEventListener(type: string, listener: Listener, options?: boolean | { capture?: boolean }): void;
}

/**
 * WHATWG WebSockets § The WebSocket interface, plus Node options.
 *
 * ```ts
 * const ws = new WebSocket('wss://example.com/chat', ['chat.v1']);
 * ws.onmessage = (e) => console.log(e.data);
 * ws.onopen = () => ws.send('hello');
 * ```
 */
export class WebSocket extends EventTarget {
  // WebIDL constants: read-only properties of the constructor and the prototype (defined after the class).
  declare static readonly CONNECTING: typeof CONNECTING;
  declare static readonly OPEN: typeof OPEN;
  declare static readonly CLOSING: typeof CLOSING;
  declare static readonly CLOSED: typeof CLOSED;
  declare readonly CONNECTING: typeof CONNECTING;
  declare readonly OPEN: typeof OPEN;
  declare readonly CLOSING: typeof CLOSING;
  declare readonly CLOSED: typeof CLOSED;

  readonly #c: ClientSession;
  #handlers: HandlerSlots | null = null;

  /**
   * WHATWG WebSockets § The WebSocket interface, `new WebSocket(url, protocols)`.
   * Throws a "SyntaxError" DOMException for a URL that is not ws(s)/http(s),
   * has a fragment or does not parse, and for duplicate or invalid protocols.
   */
  constructor(url: string | URL, protocols?: string | Iterable<string>, options?: WebSocketOptions) {
    super();
    if (arguments.length === 0) throw new TypeError("Failed to construct 'WebSocket': 1 argument required, but only 0 present.");
    // 1-2. Let urlRecord be the result of getting a URL record given url (no base URL in Node).
    const urlRecord = getURLRecord(toUSVString(url));
    // 3. If protocols is a string, set protocols to a sequence consisting of just that string.
    const list = protocolList(protocols);
    // 4. If any of the values in protocols occur more than once or otherwise fail to match the
    //    requirements for elements of `Sec-WebSocket-Protocol` (RFC 6455 §4.1: tokens), throw a
    //    "SyntaxError" DOMException. Duplicates compare ASCII case-insensitively, as browsers do
    //    (WPT websockets/Create-protocols-repeated-case-insensitive).
    const seen = new Set<string>();
    for (const p of list) {
      if (!isToken(p)) throw new DOMException(`Invalid subprotocol "${p}": it must be an HTTP token`, 'SyntaxError');
      const folded = p.toLowerCase();
      if (seen.has(folded)) throw new DOMException(`Subprotocol "${p}" is given more than once`, 'SyntaxError');
      seen.add(folded);
    }
    const resolved = resolveOptions(options);
    // 5-7. Set this's url to urlRecord and establish a WebSocket connection in parallel.
    this.#c = new ClientSession(this, urlRecord, list, resolved);
  }

  /** The URL, serialised; `http:` and `https:` read as `ws:` and `wss:`. */
  get url(): string {
    return this.#c.url.href;
  }

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  get readyState(): ReadyState {
    return this.#c.readyState;
  }

  /**
   * Bytes of application data passed to `send()` and not yet handed to the
   * network (framing excluded), plus everything sent after closing began
   * (WHATWG WebSockets § bufferedAmount).
   */
  get bufferedAmount(): number {
    return this.#c.bufferedAmount;
  }

  /** The extensions the server accepted, as a header value ("" until open). */
  get extensions(): string {
    return this.#c.extensions;
  }

  /** The subprotocol the server chose, or "". */
  get protocol(): string {
    return this.#c.protocol;
  }

  get binaryType(): BinaryType {
    return this.#c.binaryType;
  }

  /** WebIDL enumeration attribute: a value that is not a BinaryType is ignored. */
  set binaryType(value: BinaryType) {
    const v = `${value}`;
    if (v === 'blob' || v === 'arraybuffer' || v === 'nodebuffer') this.#c.binaryType = v;
  }

  /**
   * WHATWG WebSockets § The WebSocket interface, send(data). Throws an
   * "InvalidStateError" DOMException while CONNECTING; after closing began
   * the data is not sent, only counted in `bufferedAmount`.
   */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): void {
    if (arguments.length === 0) throw new TypeError("Failed to execute 'send' on 'WebSocket': 1 argument required, but only 0 present.");
    const c = this.#c;
    // 1. If this's ready state is CONNECTING, then throw an "InvalidStateError" DOMException.
    if (c.readyState === CONNECTING) throw new DOMException('WebSocket is still in the CONNECTING state', 'InvalidStateError');
    // 2. Run the appropriate set of steps from the following list (WebIDL picks the overload).
    if (typeof data === 'string') c.sendText(data);
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) c.sendBinary(bufferSourceBytes(data));
    else if (data instanceof Blob) c.sendBlob(data);
    else c.sendText(toUSVString(data));
  }

  /**
   * WHATWG WebSockets § The WebSocket interface, close(code, reason).
   * Throws "InvalidAccessError" unless code is 1000 or 3000-4999, and
   * "SyntaxError" for a reason over 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string): void {
    // WebIDL: `optional [Clamp] unsigned short code, optional USVString reason`;
    // "missing" becomes null and the empty string.
    const c = code === undefined ? null : clampUnsignedShort(code);
    const r = reason === undefined ? '' : toUSVString(reason);
    // Close the WebSocket, step 1.
    if (c !== null && c !== CloseCode.Normal && !(c >= 3000 && c <= 4999)) {
      throw new DOMException(`The close code must be 1000 or in 3000-4999; got ${c}`, 'InvalidAccessError');
    }
    // Steps 2-3.
    if (Buffer.byteLength(r) > MAX_CLOSE_REASON_BYTES) {
      throw new DOMException(`The close reason must be at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8`, 'SyntaxError');
    }
    // Step 4.
    this.#c.close(c, r);
  }

  get onopen(): EventHandler<'open'> {
    return this.#getHandler('open');
  }
  set onopen(fn: EventHandler<'open'>) {
    this.#setHandler('open', fn);
  }

  get onmessage(): EventHandler<'message'> {
    return this.#getHandler('message');
  }
  set onmessage(fn: EventHandler<'message'>) {
    this.#setHandler('message', fn);
  }

  get onerror(): EventHandler<'error'> {
    return this.#getHandler('error');
  }
  set onerror(fn: EventHandler<'error'>) {
    this.#setHandler('error', fn);
  }

  get onclose(): EventHandler<'close'> {
    return this.#getHandler('close');
  }
  set onclose(fn: EventHandler<'close'>) {
    this.#setHandler('close', fn);
  }

  #getHandler<K extends EventType>(type: K): EventHandler<K> {
    const slots: HandlerSlots | null = this.#handlers;
    return slots?.[type]?.fn ?? null;
  }

  /**
   * HTML § Event handler attributes: the first non-null value registers one
   * listener; later values replace the handler in that listener's place;
   * null (or anything not callable) removes it.
   */
  #setHandler<K extends EventType>(type: K, fn: EventHandler<K>): void {
    const slots: HandlerSlots = (this.#handlers ??= {});
    const current = slots[type] as HandlerSlot<K> | undefined;
    if (typeof fn !== 'function') {
      if (current !== undefined) {
        this.removeEventListener(type, current.listener);
        slots[type] = undefined;
      }
      return;
    }
    if (current !== undefined) {
      current.fn = fn;
      return;
    }
    const slot: HandlerSlot<K> = {
      fn,
      listener: (event: Event) => {
        slot.fn.call(this, event as WebSocketEventMap[K]);
      },
    };
    (slots as { [P in K]?: HandlerSlot<K> })[type] = slot;
    this.addEventListener(type, slot.listener);
  }
}

const READY_STATE_CONSTANTS: PropertyDescriptorMap = {
  CONNECTING: { value: CONNECTING, enumerable: true },
  OPEN: { value: OPEN, enumerable: true },
  CLOSING: { value: CLOSING, enumerable: true },
  CLOSED: { value: CLOSED, enumerable: true },
};
Object.defineProperties(WebSocket, READY_STATE_CONSTANTS);
Object.defineProperties(WebSocket.prototype, READY_STATE_CONSTANTS);
webIdlShape(WebSocket, 'WebSocket', 1, { close: 0 });

// Constructor helpers

/**
 * WebIDL § BufferSource (no [AllowShared], no [AllowResizable]): a view on a
 * SharedArrayBuffer, or a resizable buffer, is a TypeError; "get a copy of
 * the bytes held by the buffer source" gives nothing for a detached one.
 */
function bufferSourceBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  const view = ArrayBuffer.isView(data) ? data : null;
  const buffer = view === null ? (data as ArrayBuffer) : view.buffer;
  if (!(buffer instanceof ArrayBuffer)) throw new TypeError('send() does not take a view on a SharedArrayBuffer');
  if ((buffer as { resizable?: boolean }).resizable === true) throw new TypeError('send() does not take a resizable ArrayBuffer');
  try {
    // A detached buffer has no bytes (and a DataView on one throws here).
    if (view === null) return buffer.byteLength === 0 ? new Uint8Array(0) : new Uint8Array(buffer);
    return view.byteLength === 0 ? new Uint8Array(0) : new Uint8Array(buffer, view.byteOffset, view.byteLength);
  } catch {
    return new Uint8Array(0);
  }
}

/**
 * WHATWG WebSockets § The WebSocket interface, "get a URL record": parse,
 * map http(s) to ws(s), allow only ws and wss, refuse a fragment.
 */
function getURLRecord(input: string): URL {
  let url: URL;
  try {
    // 1-2. Parse url; failure is a "SyntaxError" DOMException.
    url = new URL(input);
  } catch {
    throw new DOMException(`Invalid URL: ${input}`, 'SyntaxError');
  }
  // 3-4. "http" becomes "ws", "https" becomes "wss".
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  // 5. Any other scheme than ws or wss is a "SyntaxError".
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new DOMException(`The URL's scheme must be ws, wss, http or https; got "${url.protocol.slice(0, -1)}"`, 'SyntaxError');
  }
  // 6. A fragment, even an empty one, is a "SyntaxError" ('#' appears in a serialised URL only there).
  if (url.href.includes('#')) throw new DOMException('The URL must not have a fragment', 'SyntaxError');
  return url;
}

/** WebIDL `(DOMString or sequence<DOMString>)`, defaulting to an empty sequence. */
function protocolList(protocols: string | Iterable<string> | undefined): string[] {
  if (protocols === undefined) return [];
  if (typeof protocols === 'object' && protocols !== null && Symbol.iterator in protocols) {
    return Array.from(protocols, (p) => toUSVString(p));
  }
  return [toUSVString(protocols)];
}

/** WebIDL § Integer types, `[Clamp] unsigned short`: clamp to 0-65535, round half to even. */
function clampUnsignedShort(value: number): number {
  let x = +value;
  if (Number.isNaN(x)) return 0;
  x = Math.min(Math.max(x, 0), 0xffff);
  const floor = Math.floor(x);
  const frac = x - floor;
  if (frac > 0.5) return floor + 1;
  if (frac < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

