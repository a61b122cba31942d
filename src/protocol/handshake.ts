/**
 * The opening handshake (RFC 6455 §4): checks of the client's request and the
 * server's response, the accept key, and the bytes of the server's answer.
 * Pure functions over header maps; the I/O layers feed them.
 */
import * as crypto from 'node:crypto';
import { type ExtensionOffer, isToken, parseExtensions } from './extensions.js';

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Headers as Node gives them: lower-case names, repeated ones joined or in arrays. */
export type HeaderMap = Record<string, string | string[] | undefined>;

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 step 5.4). */
export function acceptKey(key: string): string {
  return sha1Base64(key + WEBSOCKET_GUID);
}

/** One-shot `crypto.hash` (Node >= 20.12) is ~2.5x cheaper than a Hash object; fall back where it is missing. */
const sha1Base64: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha1', text, 'base64')
    : (text) => crypto.createHash('sha1').update(text).digest('base64');

/** A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (RFC 6455 §4.1). */
export function generateKey(): string {
  return crypto.randomBytes(16).toString('base64');
}

/** Whether a key is the base64 of exactly 16 bytes (RFC 6455 §11.3.1). */
export function isValidKey(key: string): boolean {
  // 16 bytes are 22 base64 digits and "=="; the last digit carries 2 bits, so
  // canonical encodings end in A, Q, g or w.
  return key.length === 24 && KEY_PATTERN.test(key);
}

const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

function header(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Splits a comma-separated header value into trimmed, non-empty elements. */
export function headerList(value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const part of value.split(',')) {
    const t = part.trim();
    if (t !== '') out.push(t);
  }
  return out;
}

function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  // The common case, a header that is just the token, without splitting.
  if (value.length === token.length && value.toLowerCase() === token) return true;
  return headerList(value).some((t) => t.toLowerCase() === token);
}

/**
 * Whether a request means to open a WebSocket: its Upgrade offers
 * "websocket", or it carries a Sec-WebSocket-Key (a broken handshake, to
 * be refused with the check's status rather than served as a page). Any
 * other Upgrade (h2c, say) may be ignored (RFC 9110 §7.8): the request is a
 * plain one.
 */
export function isWebSocketRequest(headers: HeaderMap): boolean {
  return hasToken(header(headers, 'upgrade'), 'websocket') || headers['sec-websocket-key'] !== undefined;
}

/**
 * The path of a request-target, without its query: origin-form ("/chat?x")
 * as it is, absolute-form ("http://host:port/chat?x", which a server MUST
 * accept, RFC 9112 §3.2.2; RFC 6455 §4.1 allows an http or https URI) by
 * its path, "/" when it has none.
 */
export function targetPath(target: string): string {
  let start = 0;
  if (target.charCodeAt(0) !== 0x2f) {
    const m = /^(?:https?|wss?):\/\/[^/?#]*/i.exec(target);
    if (m === null) return target;
    start = m[0].length;
  }
  let end = target.length;
  for (let i = start; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f || c === 0x23) end = i;
  }
  return end > start ? target.slice(start, end) : '/';
}

export interface UpgradeRequestInfo {
  method: string;
  /** "1.1" */
  httpVersion: string;
  headers: HeaderMap;
}

/** A request that passed every check of RFC 6455 §4.2.1. */
export interface AcceptableRequest {
  ok: true;
  key: string;
  /** Subprotocols offered, in the client's order of preference. */
  protocols: string[];
  extensions: ExtensionOffer[];
  origin: string | undefined;
}

/** A request refused: the HTTP status to answer with, and why. */
export interface RefusedRequest {
  ok: false;
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Checks a client's opening handshake (RFC 6455 §4.2.1). */
export function checkUpgradeRequest(req: UpgradeRequestInfo): AcceptableRequest | RefusedRequest {
  const h = req.headers;
  if (req.method !== 'GET') {
    return { ok: false, status: 405, message: 'WebSocket handshake must use GET', headers: { Allow: 'GET' } };
  }
  const [major, minor] = req.httpVersion === '1.1' ? [1, 1] : req.httpVersion.split('.').map(Number);
  if (!(major! > 1 || (major === 1 && minor! >= 1))) {
    return { ok: false, status: 400, message: 'WebSocket handshake needs HTTP/1.1 or later' };
  }
  if (!header(h, 'host')) return { ok: false, status: 400, message: 'missing Host header' };
  if (!hasToken(header(h, 'upgrade'), 'websocket')) {
    return { ok: false, status: 400, message: 'Upgrade header must be "websocket"' };
  }
  if (!hasToken(header(h, 'connection'), 'upgrade')) {
    return { ok: false, status: 400, message: 'Connection header must include "Upgrade"' };
  }
  const version = header(h, 'sec-websocket-version');
  if (version === undefined || version.trim() !== '13') {
    return {
      ok: false,
      status: 426,
      message: 'unsupported WebSocket version; only 13 is supported',
      headers: { 'Sec-WebSocket-Version': '13' },
    };
  }
  const key = header(h, 'sec-websocket-key')?.trim();
  if (key === undefined || !isValidKey(key)) {
    return { ok: false, status: 400, message: 'Sec-WebSocket-Key must be base64 of 16 bytes' };
  }
  const protocols = headerList(header(h, 'sec-websocket-protocol'));
  const seen = new Set<string>();
  for (const p of protocols) {
    if (!isToken(p)) return { ok: false, status: 400, message: `invalid subprotocol "${p}"` };
    if (seen.has(p)) return { ok: false, status: 400, message: `subprotocol "${p}" offered twice` };
    seen.add(p);
  }
  const extHeader = header(h, 'sec-websocket-extensions');
  let extensions: ExtensionOffer[] = [];
  if (extHeader !== undefined) {
    const parsed = parseExtensions(extHeader);
    if (parsed instanceof Error) return { ok: false, status: 400, message: `invalid Sec-WebSocket-Extensions: ${parsed.message}` };
    extensions = parsed;
  }
  return { ok: true, key, protocols, extensions, origin: header(h, 'origin') ?? header(h, 'sec-websocket-origin') };
}

/** Rejects characters that would split a header line. */
function checkHeaderValue(name: string, value: string): void {
  if (/[\r\n\0]/.test(value) || !isToken(name)) throw new TypeError(`invalid header ${name}`);
}

/** The bytes of a 101 response accepting the handshake. */
export function buildAcceptResponse(
  key: string,
  protocol: string | undefined,
  extensions: string | undefined,
  extraHeaders?: Record<string, string>,
): string {
  let s =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' +
    acceptKey(key) +
    '\r\n';
  // These values may come from application callbacks: never let one end the header block.
  if (protocol) {
    checkHeaderValue('Sec-WebSocket-Protocol', protocol);
    s += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  }
  if (extensions) {
    checkHeaderValue('Sec-WebSocket-Extensions', extensions);
    s += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  }
  if (extraHeaders) {
    for (const [k, v] of Object.entries(extraHeaders)) {
      checkHeaderValue(k, v);
      s += `${k}: ${v}\r\n`;
    }
  }
  return s + '\r\n';
}

const REASON_PHRASES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The bytes of an HTTP error response that refuses a handshake and closes the connection. */
export function buildRefusal(status: number, body: string, extraHeaders?: Record<string, string>): string {
  const phrase = REASON_PHRASES[status] ?? 'Error';
  let s = `HTTP/1.1 ${status} ${phrase}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  if (extraHeaders) {
    for (const [k, v] of Object.entries(extraHeaders)) {
      checkHeaderValue(k, v);
      s += `${k}: ${v}\r\n`;
    }
  }
  return s + '\r\n' + body;
}

export interface ResponseInfo {
  statusCode: number;
  headers: HeaderMap;
  /** "1.1" (checked when given: a 101 only exists from HTTP/1.1 on). */
  httpVersion?: string;
}

export interface AcceptedResponse {
  ok: true;
  protocol: string;
  extensions: ExtensionOffer[];
  /** The Sec-WebSocket-Extensions value as the server sent it ("" without one): "the extensions in use" (RFC 6455 §9.1, WHATWG `extensions`). */
  extensionsHeader: string;
}

/**
 * Checks a server's answer to our handshake (RFC 6455 §4.1, "the client MUST
 * validate the server's response"): returns the chosen subprotocol and
 * extensions, or an Error saying why the connection must fail.
 */
export function checkUpgradeResponse(
  res: ResponseInfo,
  key: string,
  offeredProtocols: readonly string[],
  offeredExtensions: readonly string[] = [],
): AcceptedResponse | Error {
  const h = res.headers;
  if (res.statusCode !== 101) return new Error(`server answered the handshake with status ${res.statusCode}, not 101`);
  // RFC 9110 §15.2: HTTP/1.0 has no 1xx responses; the handshake is an HTTP/1.1 upgrade (RFC 6455 §1.3).
  if (res.httpVersion !== undefined && !/^1\.[1-9]$/.test(res.httpVersion)) return new Error(`server answered the handshake in HTTP/${res.httpVersion}`);
  // RFC 6455 §4.1: the value must be "websocket" (any case), not a list that contains it.
  if (header(h, 'upgrade')?.trim().toLowerCase() !== 'websocket') return new Error('server response lacks "Upgrade: websocket"');
  if (!hasToken(header(h, 'connection'), 'upgrade')) return new Error('server response lacks "Connection: Upgrade"');
  const accept = header(h, 'sec-websocket-accept');
  if (accept === undefined || accept.trim() !== acceptKey(key)) return new Error('server sent a wrong Sec-WebSocket-Accept');
  const protoValue = header(h, 'sec-websocket-protocol');
  let protocol = '';
  if (protoValue !== undefined) {
    const list = headerList(protoValue);
    if (list.length !== 1 || !offeredProtocols.includes(list[0]!)) {
      return new Error(`server chose subprotocol "${protoValue}", which the client did not offer`);
    }
    protocol = list[0]!;
  }
  let extensions: ExtensionOffer[] = [];
  const extValue = header(h, 'sec-websocket-extensions');
  if (extValue !== undefined) {
    const parsed = parseExtensions(extValue);
    if (parsed instanceof Error) return new Error(`server sent an invalid Sec-WebSocket-Extensions: ${parsed.message}`);
    for (const ext of parsed) {
      if (!offeredExtensions.includes(ext.name)) return new Error(`server accepted extension "${ext.name}", which the client did not offer`);
      if (ext.repeated !== undefined) return new Error(`server sent parameter "${ext.repeated}" of extension "${ext.name}" more than once`);
    }
    extensions = parsed;
  }
  return { ok: true, protocol, extensions, extensionsHeader: extValue ?? '' };
}
