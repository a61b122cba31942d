/**
 * A strict HTTP/1.1 request-head parser (RFC 9112 §2–§5, RFC 9110 §5), sans
 * I/O: bytes in, a request head or the status code to refuse with out. It
 * is for a server that owns its port and only ever reads request heads (a
 * WebSocket handshake is a GET with no content), so it reads no content and
 * refuses any request that announces some.
 *
 * Strict where RFC 9112 lets a recipient choose between tolerating and
 * rejecting: lines end with CR LF only (§2.2), no obs-fold (§5.2), no
 * whitespace before a field's colon (§5.1), no CR, LF, NUL or other control
 * character in a value (RFC 9110 §5.5), exactly one Host (§3.2). What is left
 * to the caller is meaning: the WebSocket handshake checks (handshake.ts)
 * take the head as it comes out of here.
 */

/** A complete request head. */
export interface RequestHead {
  method: string;
  /** The request-target as sent (RFC 9112 §3.2), 1 to `maxTargetLength` visible ASCII characters. */
  target: string;
  /** "1.1", "1.0", … (the major version is always 1). */
  httpVersion: string;
  /**
   * Field values by lower-cased name (a null-prototype object). Repeated
   * fields are joined with ", " in order (RFC 9110 §5.3); values are trimmed
   * of surrounding whitespace (RFC 9112 §5); obs-text bytes are latin1.
   */
  headers: Record<string, string>;
  /** Field lines as sent: name, value, name, value… (names in their own case, values trimmed). */
  rawHeaders: string[];
  /** Bytes of the head, through the empty line that ends it: what follows belongs to the next layer. */
  size: number;
}

/** Why a request is refused, and the status to answer with. */
export interface HeadError {
  status: 400 | 405 | 414 | 431 | 505;
  reason: string;
}

export type HeadResult = { head: RequestHead; error?: undefined } | { error: HeadError; head?: undefined };

export interface Http1Limits {
  /** Bytes of the whole head, request line included (default 16 KiB; more → 431, RFC 6585 §5). */
  maxHeadSize?: number;
  /** Characters of the request-target (default 8 KiB; more → 414, RFC 9112 §3). */
  maxTargetLength?: number;
  /** Header field lines (default 100; more → 431). */
  maxHeaders?: number;
  /** Methods served; any other → 405 (RFC 9110 §15.5.6). Default: every method. */
  methods?: readonly string[];
  /**
   * Whether a head that announces content (Transfer-Encoding, or a non-zero
   * Content-Length) is returned (true) or refused with 400 (false, the
   * default). A caller that hands such requests to another HTTP layer reads
   * the head only to route it; `contentError` tells what the default refuses.
   */
  allowContent?: boolean;
}

const DEFAULT_MAX_HEAD = 16 * 1024;
const DEFAULT_MAX_TARGET = 8 * 1024;
const DEFAULT_MAX_HEADERS = 100;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** tchar (RFC 9110 §5.6.2): the characters of a token (method, field name). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = TCHAR[c + 0x20] = 1;

/** A field value holds SP, HTAB, VCHAR and obs-text only (RFC 9110 §5.5): no other control, no DEL. */
const DEL = 0x7f;

const fail = (status: HeadError['status'], reason: string): { error: HeadError } => ({ error: { status, reason } });

/** uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3); the empty value is allowed (RFC 9112 §3.2). */
const HOST = /^(?:\[[0-9A-Za-z.:_~!$&'()*+,;=%-]+\]|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/;

/**
 * Reads one request head from bytes that arrive in any pieces. `push` each
 * piece: null while the head is incomplete (and nothing is wrong yet), then
 * the head or the error. Errors are found as early as the bytes allow (a bad
 * request line fails before the headers arrive). After a result, the bytes
 * that followed the head are `rest()`.
 *
 * The bytes are kept and scanned as a latin1 string (one character per
 * byte, so offsets are byte offsets): one conversion per piece, which also
 * frees the caller's buffer at once (it may be a read buffer shared by every
 * socket), and every name and value is a slice of it, where reading each out
 * of a buffer would cost a native call apiece.
 */
export class RequestHeadReader {
  private readonly maxHead: number;
  private readonly maxTarget: number;
  private readonly maxHeaders: number;
  private readonly methods: readonly string[] | undefined;
  private readonly allowContent: boolean;
  /** Every byte pushed so far, as latin1 (one character per byte: the bytes come back from it exactly). */
  private text = '';
  /** Where the current line starts, and how far it was scanned for LF. */
  private lineStart = 0;
  private scanned = 0;
  private method = '';
  private target = '';
  private httpVersion = '';
  private readonly headers: Record<string, string> = Object.create(null) as Record<string, string>;
  private readonly rawHeaders: string[] = [];
  private count = 0;
  private result: HeadResult | null = null;

  constructor(limits: Http1Limits = {}) {
    this.maxHead = limits.maxHeadSize ?? DEFAULT_MAX_HEAD;
    this.maxTarget = limits.maxTargetLength ?? DEFAULT_MAX_TARGET;
    this.maxHeaders = limits.maxHeaders ?? DEFAULT_MAX_HEADERS;
    this.methods = limits.methods;
    this.allowContent = limits.allowContent === true;
  }

  /**
   * Adds bytes; the result once there is one (then the same result on every
   * later call). The reader keeps no view of `chunk`: the caller may reuse it.
   */
  push(chunk: Uint8Array): HeadResult | null {
    this.text += latin1(chunk);
    if (this.result === null) this.result = this.scan();
    return this.result;
  }

  /** Every byte pushed so far, the head included. */
  received(): Buffer {
    return Buffer.from(this.text, 'latin1');
  }

  /** The bytes after the head (empty until the head is complete). */
  rest(): Buffer {
    const head = this.result?.head;
    return head !== undefined && head.size < this.text.length ? Buffer.from(this.text.slice(head.size), 'latin1') : Buffer.alloc(0);
  }

  private scan(): HeadResult | null {
    const text = this.text;
    for (;;) {
      const lf = text.indexOf('\n', this.scanned);
      if (lf < 0) {
        this.scanned = text.length;
        return this.tooLong(text.length);
      }
      if (lf + 1 > this.maxHead) return this.tooLong(lf + 1);
      // RFC 9112 §2.2: the line terminator is CR LF; a bare LF is not accepted here.
      if (lf === this.lineStart || text.charCodeAt(lf - 1) !== CR) return fail(400, 'line ended by LF without CR (RFC 9112 §2.2)');
      const start = this.lineStart;
      const end = lf - 1;
      this.lineStart = this.scanned = lf + 1;
      // RFC 9112 §2.2: a CR anywhere else in a line is a bare CR.
      const cr = text.indexOf('\r', start);
      if (cr < end) return fail(400, 'bare CR (RFC 9112 §2.2)');
      if (this.method === '') {
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        if (end === start) continue;
        const line = this.requestLine(text, start, end);
        if (line !== null) return line;
        continue;
      }
      if (end === start) return this.finish(lf + 1);
      const field = this.fieldLine(text, start, end);
      if (field !== null) return field;
    }
  }

  /** Limits while waiting for more bytes: 414 for a request line that is too long, 431 for a head. */
  private tooLong(seen: number): HeadResult | null {
    if (this.method === '' && seen - this.lineStart > this.maxTarget + 64) {
      return fail(414, `request line over ${this.maxTarget} characters of target (RFC 9112 §3)`);
    }
    if (seen > this.maxHead) return fail(431, `request head over ${this.maxHead} bytes (RFC 6585 §5)`);
    return null;
  }

  /** request-line = method SP request-target SP HTTP-version (RFC 9112 §3). */
  private requestLine(text: string, start: number, end: number): HeadResult | null {
    let i = start;
    while (i < end && TCHAR[text.charCodeAt(i)] === 1) i++;
    if (i === start || i === end || text.charCodeAt(i) !== SP) return fail(400, 'malformed method (RFC 9112 §3.1)');
    const method = text.slice(start, i);
    const t0 = ++i;
    for (let c = text.charCodeAt(i); i < end && c > SP && c < DEL; c = text.charCodeAt(++i));
    if (i === t0 || i === end || text.charCodeAt(i) !== SP) return fail(400, 'malformed request-target (RFC 9112 §3.2)');
    if (i - t0 > this.maxTarget) return fail(414, `request-target over ${this.maxTarget} characters (RFC 9112 §3)`);
    const target = text.slice(t0, i);
    // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3)
    const major = text.charCodeAt(i + 6);
    const minor = text.charCodeAt(i + 8);
    if (end - i !== 9 || !text.startsWith('HTTP/', i + 1) || !isDigit(major) || text.charCodeAt(i + 7) !== 0x2e || !isDigit(minor)) {
      return fail(400, 'malformed HTTP-version (RFC 9112 §2.3)');
    }
    // RFC 9110 §15.6.6: a major version we do not speak.
    if (major !== 0x31) return fail(505, `HTTP/${text[i + 6]}.${text[i + 8]} is not supported`);
    const form = targetForm(method, target);
    if (form !== null) return fail(400, form);
    if (this.methods !== undefined && !this.methods.includes(method)) return fail(405, `method ${method} not allowed`);
    this.method = method;
    this.target = target;
    this.httpVersion = minor === 0x31 ? '1.1' : minor === 0x30 ? '1.0' : `1.${text[i + 8]}`;
    return null;
  }

  /** field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). */
  private fieldLine(text: string, start: number, end: number): HeadResult | null {
    const first = text.charCodeAt(start);
    // RFC 9112 §5.2 (obs-fold) and §2.2 (whitespace before the first field).
    if (first === SP || first === HTAB) return fail(400, 'folded or indented field line (RFC 9112 §5.2)');
    if (++this.count > this.maxHeaders) return fail(431, `more than ${this.maxHeaders} header fields`);
    let i = start;
    let upper = false;
    for (let c = first; i < end && TCHAR[c] === 1; c = text.charCodeAt(++i)) if (c <= 0x5a && c >= 0x41) upper = true;
    if (i === end || text.charCodeAt(i) !== COLON) {
      const b = text.charCodeAt(i);
      if (b === SP || b === HTAB) return fail(400, 'whitespace between field name and colon (RFC 9112 §5.1)');
      return fail(400, 'malformed field name (RFC 9110 §5.1)');
    }
    if (i === start) return fail(400, 'empty field name (RFC 9110 §5.1)');
    const rawName = text.slice(start, i);
    const name = upper ? rawName.toLowerCase() : rawName;
    let v0 = i + 1;
    let v1 = end;
    for (let c = text.charCodeAt(v0); v0 < v1 && (c === SP || c === HTAB); c = text.charCodeAt(++v0));
    for (let c = text.charCodeAt(v1 - 1); v1 > v0 && (c === SP || c === HTAB); c = text.charCodeAt(--v1 - 1));
    for (let j = v0; j < v1; j++) {
      const b = text.charCodeAt(j);
      if ((b < SP && b !== HTAB) || b === DEL) return fail(400, `control character in field ${name} (RFC 9110 §5.5)`);
    }
    const value = text.slice(v0, v1);
    this.rawHeaders.push(rawName, value);
    const before = this.headers[name];
    if (before !== undefined) {
      // RFC 9112 §3.2: more than one Host field line is refused.
      if (name === 'host') return fail(400, 'more than one Host (RFC 9112 §3.2)');
      // RFC 6265 §5.4: cookie pairs are separated by "; ", not ", ".
      this.headers[name] = `${before}${name === 'cookie' ? '; ' : ', '}${value}`;
    } else this.headers[name] = value;
    return null;
  }

  /** The head is complete: the checks that need all of it. */
  private finish(size: number): HeadResult {
    const h = this.headers;
    const host = h.host;
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with an invalid one, is refused.
    if (host === undefined && this.httpVersion !== '1.0') return fail(400, 'missing Host (RFC 9112 §3.2)');
    if (host !== undefined && !HOST.test(host)) return fail(400, 'invalid Host (RFC 9112 §3.2)');
    if (!this.allowContent) {
      const content = contentError(h);
      if (content !== null) return { error: content };
    }
    return { head: { method: this.method, target: this.target, httpVersion: this.httpVersion, headers: h, rawHeaders: this.rawHeaders, size } };
  }
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

const latin1 = (bytes: Uint8Array): string =>
  (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('latin1');

/**
 * Why a head is refused by a reader of heads only: it announces content
 * (RFC 9112 §6), which is refused rather than left to be read as something
 * else, or its Content-Length is invalid. Null when it announces none.
 */
export function contentError(headers: Record<string, string | string[] | undefined>): HeadError | null {
  if (headers['transfer-encoding'] !== undefined) return { status: 400, reason: 'Transfer-Encoding in a request this server reads no content of (RFC 9112 §6.1)' };
  const length = headers['content-length'];
  if (length === undefined) return null;
  // RFC 9112 §6.3: an invalid Content-Length is unrecoverable; a list of equal values is one value.
  const values = String(length).split(',').map((v) => v.trim());
  if (!values.every((v) => /^[0-9]+$/.test(v))) return { status: 400, reason: 'invalid Content-Length (RFC 9112 §6.3)' };
  if (values.some((v) => Number(v) !== 0)) return { status: 400, reason: 'content in a request this server reads no content of (RFC 9112 §6.3)' };
  return null;
}

/**
 * Which request-target forms go with which methods (RFC 9112 §3.2): origin-form
 * ("/path?query") and absolute-form ("scheme:…") for any method but CONNECT,
 * authority-form ("host:port") for CONNECT only, asterisk-form ("*") for
 * OPTIONS only. The reason, or null when the form fits.
 */
function targetForm(method: string, target: string): string | null {
  if (method === 'CONNECT') return /^[^/?#@]+:[0-9]+$/.test(target) ? null : 'CONNECT needs authority-form (RFC 9112 §3.2.3)';
  if (target === '*') return method === 'OPTIONS' ? null : 'asterisk-form is for OPTIONS only (RFC 9112 §3.2.4)';
  if (target.charCodeAt(0) === 0x2f || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(target)) return null;
  return 'request-target is neither origin-form nor absolute-form (RFC 9112 §3.2)';
}

/** One request head from bytes already in hand: null when they end before it does. */
export function parseRequestHead(bytes: Uint8Array, limits?: Http1Limits): HeadResult | null {
  return new RequestHeadReader(limits).push(bytes);
}
