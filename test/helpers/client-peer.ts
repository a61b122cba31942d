/**
 * Test scaffolding for the client: a raw TCP "server" that answers the
 * opening handshake by hand and then reads and writes frames byte for byte,
 * a recorder of a WebSocket's events, and a scope that tears everything down.
 *
 * Every wait is bounded: a read the client never satisfies fails the test
 * with what was awaited, instead of hanging the run.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { WebSocket } from '../../src/index.js';
import { ChunkQueue, frameSize } from './chunks.js';
import { decodeFrames, type DecodedFrame } from './frames.js';

export const LOOPBACK = '127.0.0.1';
/** Default bound, in milliseconds, on any wait. */
export const WAIT_MS = 5_000;

/** Resolves like `promise`, or rejects after `ms` naming `what`; the timer never outlives the wait. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `Sec-WebSocket-Accept` computed independently of src/ (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

export type ClientEvent =
  | { type: 'open'; readyState: number }
  | { type: 'message'; data: unknown; origin: string }
  | { type: 'error'; message: string; error: unknown; readyState: number }
  | { type: 'close'; code: number; reason: string; wasClean: boolean; readyState: number };

type EventOf<K extends ClientEvent['type']> = Extract<ClientEvent, { type: K }>;

/** Records every event a WebSocket fires, in order, and lets a test await one. */
export class ClientLog {
  readonly events: ClientEvent[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    ws.addEventListener('open', () => this.push({ type: 'open', readyState: ws.readyState }));
    ws.addEventListener('message', (e) => this.push({ type: 'message', data: e.data, origin: e.origin }));
    ws.addEventListener('error', (e) => this.push({ type: 'error', message: e.message, error: e.error, readyState: ws.readyState }));
    ws.addEventListener('close', (e) =>
      this.push({ type: 'close', code: e.code, reason: e.reason, wasClean: e.wasClean, readyState: ws.readyState }),
    );
  }

  private push(e: ClientEvent): void {
    this.events.push(e);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The types of the events so far, in order. */
  types(): string[] {
    return this.events.map((e) => e.type);
  }

  all<K extends ClientEvent['type']>(type: K): EventOf<K>[] {
    return this.events.filter((e): e is EventOf<K> => e.type === type);
  }

  /** Resolves with the `n`-th event (1-based) of `type`, once it has fired. */
  async nth<K extends ClientEvent['type']>(type: K, n: number, ms = WAIT_MS): Promise<EventOf<K>> {
    const found = (): EventOf<K> | undefined => this.all(type)[n - 1];
    const wait = new Promise<EventOf<K>>((resolve) => {
      const check = (): void => {
        const e = found();
        if (e !== undefined) resolve(e);
        else this.waiters.push(check);
      };
      check();
    });
    return withTimeout(wait, ms, `${type} event #${n} (so far: ${this.types().join(', ') || 'none'})`);
  }

  first<K extends ClientEvent['type']>(type: K, ms = WAIT_MS): Promise<EventOf<K>> {
    return this.nth(type, 1, ms);
  }

  /** Resolves with the close event. */
  closed(ms = WAIT_MS): Promise<EventOf<'close'>> {
    return this.first('close', ms);
  }

  /** Resolves with the data of the `n`-th message. */
  async message(n: number, ms = WAIT_MS): Promise<unknown> {
    return (await this.nth('message', n, ms)).data;
  }
}

export interface HandshakeRequest {
  method: string;
  target: string;
  version: string;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Map<string, string>;
  /** The request head exactly as received. */
  raw: string;
}

export interface AnswerOptions {
  /** Status line after "HTTP/1.1 " (default "101 Switching Protocols"). */
  status?: string;
  /** Replaces the correct Sec-WebSocket-Accept value; null leaves the header out. */
  accept?: string | null;
  /** Leave out "Upgrade: websocket" / "Connection: Upgrade". */
  omitUpgrade?: boolean;
  omitConnection?: boolean;
  /** More header lines, e.g. { 'Sec-WebSocket-Protocol': 'chat' }. */
  headers?: Record<string, string>;
  /** Bytes sent in the same write as the response head (frames right behind the 101). */
  trailing?: Buffer;
}

/** One connection accepted by a RawServer: a hand-driven WebSocket server endpoint. */
export class RawPeer {
  private readonly received = new ChunkQueue();
  private waiters: (() => void)[] = [];
  /** The client sent FIN or the connection closed. */
  ended = false;
  closed = false;
  readonly closedPromise: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {
      // A reset by the client under test; 'close' follows.
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.closed = true;
        this.wake();
        resolve();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `take` returns a value (called on every arrival of data or end). */
  private until<T>(take: () => T | undefined, what: string, ms = WAIT_MS): Promise<T> {
    const wait = new Promise<T>((resolve, reject) => {
      const check = (): void => {
        let v: T | undefined;
        try {
          v = take();
        } catch (err) {
          reject(err);
          return;
        }
        if (v !== undefined) resolve(v);
        else if (this.ended) reject(new Error(`connection ended while waiting for ${what}`));
        else this.waiters.push(check);
      };
      check();
    });
    return withTimeout(wait, ms, what);
  }

  /** Reads the client's request head. */
  readRequest(): Promise<HandshakeRequest> {
    return this.until(() => {
      const buf = this.received.joined;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const raw = buf.subarray(0, end + 4).toString('latin1');
      this.received.consume(end + 4);
      const [requestLine = '', ...lines] = raw.slice(0, -4).split('\r\n');
      const [method = '', target = '', version = ''] = requestLine.split(' ');
      const headers = new Map<string, string>();
      for (const line of lines) {
        const i = line.indexOf(':');
        const name = line.slice(0, i).trim().toLowerCase();
        const value = line.slice(i + 1).trim();
        const prev = headers.get(name);
        headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
      }
      return { method, target, version, headers, raw };
    }, 'the handshake request');
  }

  /** Reads the request and answers it (a correct 101 unless `options` say otherwise). */
  async handshake(options: AnswerOptions = {}): Promise<HandshakeRequest> {
    const req = await this.readRequest();
    const key = req.headers.get('sec-websocket-key') ?? '';
    let head = `HTTP/1.1 ${options.status ?? '101 Switching Protocols'}\r\n`;
    if (!options.omitUpgrade) head += 'Upgrade: websocket\r\n';
    if (!options.omitConnection) head += 'Connection: Upgrade\r\n';
    const accept = options.accept === undefined ? acceptFor(key) : options.accept;
    if (accept !== null) head += `Sec-WebSocket-Accept: ${accept}\r\n`;
    for (const [k, v] of Object.entries(options.headers ?? {})) head += `${k}: ${v}\r\n`;
    head += '\r\n';
    const bytes = Buffer.from(head, 'latin1');
    this.socket.write(options.trailing === undefined ? bytes : Buffer.concat([bytes, options.trailing]));
    return req;
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** Reads the next whole frame the client sent. */
  readFrame(ms = WAIT_MS): Promise<DecodedFrame> {
    return this.until(
      () => {
        const r = this.received;
        const size = frameSize(r.peek(14));
        if (r.length < size) return undefined;
        const frame = decodeFrames(r.joined.subarray(0, size))[0];
        r.consume(size);
        return frame;
      },
      'a frame from the client',
      ms,
    );
  }

  /** Reads frames until one with `opcode` arrives; returns all read, that one last. */
  async readUntil(opcode: number, ms = WAIT_MS): Promise<DecodedFrame[]> {
    const frames: DecodedFrame[] = [];
    for (;;) {
      const f = await this.readFrame(ms);
      frames.push(f);
      if (f.opcode === opcode) return frames;
    }
  }

  /** Bytes received and not yet consumed by a read. */
  get unread(): number {
    return this.received.length;
  }

  /** Resolves when the client has sent FIN (or the connection closed). */
  waitEnd(ms = WAIT_MS): Promise<void> {
    return this.until(() => (this.ended ? true : undefined), 'the client to close TCP', ms).then(
      () => undefined,
      (err: unknown) => {
        if (this.ended) return;
        throw err;
      },
    );
  }

  /** Resolves when the TCP connection has fully closed. */
  waitClosed(ms = WAIT_MS): Promise<void> {
    return withTimeout(this.closedPromise, ms, 'the TCP connection to close');
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Size of the first whole frame in `buf`, or undefined when it is not all there yet. */
/** A loopback TCP server whose connections a test drives by hand. */
export class RawServer {
  readonly peers: RawPeer[] = [];
  private waiters: (() => void)[] = [];
  private taken = 0;

  private constructor(
    readonly server: net.Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => {
      this.peers.push(new RawPeer(socket));
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  static async listen(): Promise<RawServer> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return new RawServer(server, address.port);
  }

  url(path = '/'): string {
    return `ws://${LOOPBACK}:${this.port}${path}`;
  }

  /** Resolves with the next connection not yet taken. */
  next(ms = WAIT_MS): Promise<RawPeer> {
    const index = this.taken++;
    const wait = new Promise<RawPeer>((resolve) => {
      const check = (): void => {
        const p = this.peers[index];
        if (p !== undefined) resolve(p);
        else this.waiters.push(check);
      };
      check();
    });
    return withTimeout(wait, ms, `connection #${index + 1}`);
  }

  async close(): Promise<void> {
    for (const p of this.peers) p.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Owns what a test opens and releases it all afterwards, in reverse order. */
export class Scope {
  private cleanups: (() => Promise<void> | void)[] = [];

  add(cleanup: () => Promise<void> | void): void {
    this.cleanups.push(cleanup);
  }

  async rawServer(): Promise<RawServer> {
    const s = await RawServer.listen();
    this.add(() => s.close());
    return s;
  }

  /**
   * Registers a client. At the end one still open is closed, and its close
   * event awaited after every server is gone (so a peer that never answers
   * the close does not hold the test for a whole closeTimeout).
   */
  client<T extends WebSocket>(ws: T): T {
    const closed = new Promise<void>((resolve) => {
      if (ws.readyState === 3) resolve();
      else ws.addEventListener('close', () => resolve());
    });
    this.add(() => {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close();
      this.closing.push(withTimeout(closed, WAIT_MS, 'a client left open by the test to close'));
    });
    return ws;
  }

  private closing: Promise<void>[] = [];

  async dispose(): Promise<void> {
    const list = this.cleanups.reverse();
    this.cleanups = [];
    const errors: unknown[] = [];
    for (const c of list) {
      try {
        await c();
      } catch (err) {
        errors.push(err);
      }
    }
    const closing = this.closing;
    this.closing = [];
    for (const r of await Promise.allSettled(closing)) if (r.status === 'rejected') errors.push(r.reason);
    if (errors.length > 0) throw errors[0];
  }
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
