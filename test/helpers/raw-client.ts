/**
 * A raw TCP peer for testing the server over real loopback sockets: it sends
 * whatever bytes a test writes by hand (HTTP requests, masked frames, broken
 * frames) and reads the server's answer incrementally: an HTTP response, then
 * frames one at a time, then the end of the TCP stream.
 *
 * Every wait is bounded: a read that the server never satisfies fails the test
 * with what was awaited and what had arrived, instead of hanging the run.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { ChunkQueue, frameSize } from './chunks.js';
import { clientFrame, closePayload, type FrameSpec } from './frames.js';

export const LOOPBACK = '127.0.0.1';
/** Default bound, in milliseconds, on any wait for the server. */
export const WAIT_MS = 5_000;

/** The key of RFC 6455 §1.3's example, and the accept value the RFC gives for it. */
export const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** `Sec-WebSocket-Accept` computed independently of src/ (RFC 6455 §4.2.2 step 5.4). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

/** Resolves like `promise`, or rejects after `ms` naming `what`; the timer never outlives the wait. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms` (for pacing writes or letting timers run; never for measuring). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `done()` holds, polling every few milliseconds; rejects after `ms` naming `what`. */
export async function until(what: string, done: () => boolean, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

export interface RequestSpec {
  method?: string;
  path?: string;
  /** The HTTP version in the request line, e.g. "1.1". */
  version?: string;
  /** Headers to add or override (case-insensitive); undefined removes a default one. */
  headers?: Record<string, string | undefined>;
}

/** A client's opening handshake (RFC 6455 §4.1) as raw text, with defaults that make it valid. */
export function upgradeRequest(spec: RequestSpec = {}): string {
  const headers = new Map<string, [string, string]>();
  const set = (name: string, value: string | undefined): void => {
    if (value === undefined) headers.delete(name.toLowerCase());
    else headers.set(name.toLowerCase(), [name, value]);
  };
  set('Host', `${LOOPBACK}`);
  set('Upgrade', 'websocket');
  set('Connection', 'Upgrade');
  set('Sec-WebSocket-Key', RFC_KEY);
  set('Sec-WebSocket-Version', '13');
  for (const [name, value] of Object.entries(spec.headers ?? {})) set(name, value);
  let s = `${spec.method ?? 'GET'} ${spec.path ?? '/'} HTTP/${spec.version ?? '1.1'}\r\n`;
  for (const [name, value] of headers.values()) s += `${name}: ${value}\r\n`;
  return s + '\r\n';
}

export interface RawResponse {
  status: number;
  /** Header values by lower-case name (repeated headers joined with ", "). */
  headers: Map<string, string>;
  body: string;
}

/** One frame as read from the server. */
export interface RawFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Decodes the frame at the start of `buf`, or returns undefined if it is not all there yet. */
export function parseFrame(buf: Buffer): { frame: RawFrame; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const b0 = buf[0] ?? 0;
  const b1 = buf[1] ?? 0;
  let len = b1 & 0x7f;
  let p = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    p = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    p = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  const key = masked ? buf.subarray(p, p + 4) : null;
  if (masked) p += 4;
  if (buf.length < p + len) return undefined;
  const payload = Buffer.from(buf.subarray(p, p + len));
  if (key !== null) for (let i = 0; i < len; i++) payload[i] = (payload[i] ?? 0) ^ (key[i & 3] ?? 0);
  return { frame: { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload }, size: p + len };
}

export class RawPeer {
  readonly socket: net.Socket;
  /** Bytes received and not yet consumed by a read. */
  private readonly received = new ChunkQueue();
  private wake: (() => void) | null = null;
  /** The server ended its side (FIN received). */
  ended = false;
  /** The socket is fully closed. */
  closed = false;
  error: Error | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', (err) => {
      this.error = err;
    });
  }

  /**
   * Connects to the server on loopback (a port), or on a Unix domain socket
   * (a path). `allowHalfOpen` keeps our side open after the server's FIN.
   */
  static connect(port: number | string, options: { allowHalfOpen?: boolean } = {}): Promise<RawPeer> {
    const allowHalfOpen = options.allowHalfOpen ?? false;
    const socket = typeof port === 'string' ? net.connect({ path: port, allowHalfOpen }) : net.connect({ port, host: LOOPBACK, allowHalfOpen });
    const peer = new RawPeer(socket);
    return withTimeout(
      new Promise<RawPeer>((resolve, reject) => {
        socket.once('connect', () => resolve(peer));
        socket.once('error', reject);
      }),
      WAIT_MS,
      'TCP connect',
    ).catch((err: unknown) => {
      socket.destroy();
      throw err;
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    this.received.push(chunk);
    this.notify();
  };

  /**
   * Stops reading for this peer and returns the bytes received and not yet
   * read, for a test that reads the socket itself from here on.
   */
  release(): Buffer {
    this.socket.off('data', this.onData);
    const rest = this.received.joined;
    this.received.consume(rest.length);
    return rest;
  }

  /** Number of received bytes not yet read. */
  get buffered(): number {
    return this.received.length;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Writes bytes and resolves once the kernel took them. */
  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Sends a frame built by hand, masked as a client's must be unless the spec says otherwise. */
  send(spec: FrameSpec): Promise<void> {
    return this.write(clientFrame(spec));
  }

  /** Sends a close frame with `code` and `reason`. */
  sendClose(code: number, reason = ''): Promise<void> {
    return this.send({ opcode: 0x8, payload: closePayload(code, reason) });
  }

  /**
   * Waits until `take(buffer)` returns something: it inspects the unread
   * bytes and returns the value read and how many bytes it consumed.
   */
  private async read<T>(
    take: (buf: Buffer, atEnd: boolean) => { value: T; size: number } | undefined,
    ms: number,
    what: string,
    need?: (head: Buffer) => number,
  ): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      // Look at the bytes only once enough of them are here (`need` reads the size from their head).
      const r = this.received;
      const enough = need === undefined || r.length >= need(r.peek(14)) || this.ended || this.closed;
      const got = enough ? take(r.joined, this.ended || this.closed) : undefined;
      if (got !== undefined) {
        r.consume(got.size);
        return got.value;
      }
      if (this.ended || this.closed) {
        throw new Error(`connection ended while waiting for ${what}; unread: ${describe(this.received.joined)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; unread: ${describe(this.received.joined)}`);
      await withTimeout(new Promise<void>((resolve) => (this.wake = resolve)), left, what).catch((err: unknown) => {
        this.wake = null;
        throw new Error(`${(err as Error).message}; unread: ${describe(this.received.joined)}`);
      });
    }
  }

  /** Reads an HTTP response head and its body (by Content-Length, or to the end of the stream). */
  readResponse(ms = WAIT_MS): Promise<RawResponse> {
    return this.read(
      (buf, atEnd) => {
        const headEnd = buf.indexOf('\r\n\r\n');
        if (headEnd === -1) return undefined;
        const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        assert.ok(m, `not an HTTP status line: ${JSON.stringify(lines[0])}`);
        const headers = new Map<string, string>();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).trim().toLowerCase();
          const value = line.slice(colon + 1).trim();
          const prev = headers.get(name);
          headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
        }
        const status = Number(m[1]);
        const start = headEnd + 4;
        let end = start;
        const length = headers.get('content-length');
        // RFC 9110 §6.4.1: a 1xx (interim or 101), 204 or 304 response has no content.
        if (status < 200 || status === 204 || status === 304) end = start;
        else if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
          const chunked = dechunk(buf, start);
          if (chunked === undefined) return undefined;
          return { value: { status, headers, body: chunked.body.toString('utf8') }, size: chunked.end };
        } else if (length !== undefined) end = start + Number(length);
        else if (atEnd) end = buf.length;
        else return undefined;
        if (buf.length < end) return undefined;
        return { value: { status, headers, body: buf.subarray(start, end).toString('utf8') }, size: end };
      },
      ms,
      'an HTTP response',
    );
  }

  /** Reads the next whole frame. */
  readFrame(ms = WAIT_MS): Promise<RawFrame> {
    return this.read(
      (buf) => {
        const got = parseFrame(buf);
        return got === undefined ? undefined : { value: got.frame, size: got.size };
      },
      ms,
      'a frame',
      frameSize,
    );
  }

  /** Reads the next frame, asserts it is an unmasked close frame, and returns its code (undefined if empty) and reason. */
  async readClose(ms = WAIT_MS): Promise<{ code: number | undefined; reason: string }> {
    const f = await this.readFrame(ms);
    assert.equal(f.opcode, 0x8, `expected a close frame, got opcode ${f.opcode}`);
    assert.equal(f.masked, false, 'a server must not mask its frames (RFC 6455 §5.1)');
    if (f.payload.length === 0) return { code: undefined, reason: '' };
    return { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') };
  }

  /** Waits for the server's FIN (or the socket closing). */
  async waitEnd(ms = WAIT_MS): Promise<void> {
    await this.waitFor(() => this.ended || this.closed, ms, 'the server to end the TCP connection');
  }

  /** Waits for the socket to close completely. */
  async waitClosed(ms = WAIT_MS): Promise<void> {
    await this.waitFor(() => this.closed, ms, 'the TCP connection to close');
  }

  private async waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      // Wake on any socket event; a 'data' event just loops again.
      await withTimeout(new Promise<void>((resolve) => (this.wake = resolve)), left, what).catch((err: unknown) => {
        this.wake = null;
        throw err;
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Decodes a chunked body starting at `pos` (RFC 9112 §7.1), or undefined if it is not all there yet. */
function dechunk(buf: Buffer, pos: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  for (;;) {
    const eol = buf.indexOf('\r\n', pos);
    if (eol === -1) return undefined;
    const size = parseInt(buf.subarray(pos, eol).toString('latin1'), 16);
    assert.ok(Number.isFinite(size), 'bad chunk size line');
    const start = eol + 2;
    if (buf.length < start + size + 2) return undefined;
    if (size === 0) return { body: Buffer.concat(parts), end: start + 2 };
    parts.push(buf.subarray(start, start + size));
    pos = start + size + 2;
  }
}

function describe(buf: Buffer): string {
  if (buf.length === 0) return '(nothing)';
  const shown = buf.subarray(0, 64);
  return `${buf.length} bytes: ${shown.toString('hex')}${buf.length > 64 ? '…' : ''}`;
}

/** Connects, sends a valid handshake (with `spec` applied), asserts the 101, and returns the open peer. */
export async function rawOpen(port: number | string, spec: RequestSpec = {}, options: { allowHalfOpen?: boolean } = {}): Promise<{ peer: RawPeer; response: RawResponse }> {
  const peer = await RawPeer.connect(port, options);
  try {
    await peer.write(upgradeRequest(spec));
    const response = await peer.readResponse();
    assert.equal(response.status, 101, `handshake refused: ${response.status} ${response.body}`);
    return { peer, response };
  } catch (err) {
    peer.destroy();
    throw err;
  }
}

/** Sends `request` on a fresh connection and returns the server's response. */
export async function rawRequest(port: number, request: string): Promise<RawResponse> {
  const peer = await RawPeer.connect(port);
  try {
    await peer.write(request);
    return await peer.readResponse();
  } finally {
    peer.destroy();
  }
}
