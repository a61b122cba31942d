/**
 * The event classes a WebSocket fires: `MessageEvent` (HTML § 9.2.4),
 * `CloseEvent` (WHATWG WebSockets § The CloseEvent interface) and
 * `ErrorEvent` (HTML § 8.1.4.7).
 *
 * Node 20 has a global `MessageEvent` but no `CloseEvent` or `ErrorEvent`,
 * and Node 23+ adds a global `CloseEvent`; these are our own so behaviour is
 * the same on every supported version. Each extends the global `Event`, so
 * `instanceof Event` holds and Node's `EventTarget` dispatches them.
 * Attributes are read-only getters over private fields, as WebIDL makes them.
 */
import { webIdlShape } from './webidl.js';

/** WebIDL § Integer types, `unsigned short` without [Clamp]: modulo 2^16. */
function toUnsignedShort(value: unknown): number {
  const n = Number(value);
  if (!Number.isFinite(n)) return 0;
  const int = Math.trunc(n);
  return ((int % 0x10000) + 0x10000) % 0x10000;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** WebIDL § USVString conversion: lone surrogates become U+FFFD. */
export function toUSVString(value: unknown): string {
  const s = `${value as string}`;
  LONE_SURROGATE.lastIndex = 0;
  return LONE_SURROGATE.test(s) ? s.replace(LONE_SURROGATE, '\uFFFD') : s;
}

/** DOM § EventInit (Node's typings keep theirs private). */
export interface EventInit {
  bubbles?: boolean;
  cancelable?: boolean;
  composed?: boolean;
}

export interface CloseEventInit extends EventInit {
  wasClean?: boolean;
  code?: number;
  reason?: string;
}

/** WHATWG WebSockets § The CloseEvent interface. */
export class CloseEvent extends Event {
  readonly #wasClean: boolean;
  readonly #code: number;
  readonly #reason: string;

  constructor(type: string, init?: CloseEventInit) {
    super(type, init);
    this.#wasClean = Boolean(init?.wasClean);
    this.#code = init?.code === undefined ? 0 : toUnsignedShort(init.code);
    this.#reason = init?.reason === undefined ? '' : toUSVString(init.reason);
  }

  /** True when the closing handshake completed and TCP closed after it (RFC 6455 §7.1.4). */
  get wasClean(): boolean {
    return this.#wasClean;
  }

  /** The WebSocket connection close code (RFC 6455 §7.1.5): 1005 without a status, 1006 without a close frame. */
  get code(): number {
    return this.#code;
  }

  /** The WebSocket connection close reason (RFC 6455 §7.1.6). */
  get reason(): string {
    return this.#reason;
  }
}

export interface ErrorEventInit extends EventInit {
  message?: string;
  filename?: string;
  lineno?: number;
  colno?: number;
  error?: unknown;
}

/** HTML § The ErrorEvent interface. A WebSocket fires it with `message` and the `error` behind it. */
export class ErrorEvent extends Event {
  readonly #message: string;
  readonly #filename: string;
  readonly #lineno: number;
  readonly #colno: number;
  readonly #error: unknown;

  constructor(type: string, init?: ErrorEventInit) {
    super(type, init);
    this.#message = init?.message === undefined ? '' : `${init.message}`;
    this.#filename = init?.filename === undefined ? '' : toUSVString(init.filename);
    this.#lineno = init?.lineno === undefined ? 0 : Number(init.lineno) >>> 0;
    this.#colno = init?.colno === undefined ? 0 : Number(init.colno) >>> 0;
    this.#error = init?.error;
  }

  get message(): string {
    return this.#message;
  }

  get filename(): string {
    return this.#filename;
  }

  get lineno(): number {
    return this.#lineno;
  }

  get colno(): number {
    return this.#colno;
  }

  /** The Error that caused the event, when there is one. */
  get error(): unknown {
    return this.#error;
  }
}

export interface MessageEventInit<T = unknown> extends EventInit {
  data?: T;
  origin?: string;
  lastEventId?: string;
  source?: null;
  ports?: readonly never[];
}

const NO_PORTS: readonly never[] = Object.freeze([]);

/**
 * HTML § The MessageEvent interface, as a WebSocket uses it: `data` and
 * `origin` (WHATWG WebSockets § Feedback from the protocol). `source` is
 * always null and `ports` always empty: a WebSocket has neither.
 */
export class MessageEvent<T = unknown> extends Event {
  readonly #data: T | null;
  readonly #origin: string;
  readonly #lastEventId: string;

  constructor(type: string, init?: MessageEventInit<T>) {
    super(type, init);
    this.#data = init?.data ?? null;
    this.#origin = init?.origin === undefined ? '' : toUSVString(init.origin);
    this.#lastEventId = init?.lastEventId === undefined ? '' : `${init.lastEventId}`;
  }

  /** The message: a string, or the binary data in the form the socket's `binaryType` asks for. */
  get data(): T {
    return this.#data as T;
  }

  /** The serialisation of the WebSocket URL's origin. */
  get origin(): string {
    return this.#origin;
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  get source(): null {
    return null;
  }

  get ports(): readonly never[] {
    return NO_PORTS;
  }
}

webIdlShape(CloseEvent, 'CloseEvent', 1);
webIdlShape(ErrorEvent, 'ErrorEvent', 1);
webIdlShape(MessageEvent, 'MessageEvent', 1);
