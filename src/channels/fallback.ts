/**
 * The HTTP fallback (PROTOCOL.md §9): `POST <path>/connect` opens a session
 * whose response is its Server-Sent Events stream; `POST <path>/send` carries
 * commands, identified by the `X-Fullduplex-Session` header (never the URL).
 *
 * CSRF defence on every request: the origin allow-list, `Content-Type:
 * application/json` (a form cannot send it, and cross-origin `fetch` with it
 * needs a preflight that only allowed origins pass), and sessions bound to
 * the Origin that opened them. A `send` for a session on another node is
 * published to that session's broker topic, so no sticky sessions are needed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { ErrorCode } from '../client-lib/codes.js';
import type { Broker } from '../pubsub/broker.js';
import { LocalBroker } from '../pubsub/local.js';
import { targetPath } from '../index.js';
import { type Command, type CommandError, jsonText, parseCommand } from './commands.js';
import type { Dispatcher } from './dispatch.js';
import { errorFrame } from './frames.js';
import type { ChannelLimits, ChannelServerOptions } from './options.js';
import { type Session, requestOf } from './session.js';
import { SseSession } from './sse-session.js';
import { encodeRouted, sessionTopic } from './wire.js';

export const SESSION_HEADER = 'x-fullduplex-session';
/** Most commands in one `send` POST. */
export const MAX_BATCH = 16;

export interface FallbackHost<T> {
  readonly path: string;
  readonly limits: ChannelLimits;
  /** How long an ended stream whose client stopped reading is kept before it is cut. */
  readonly closeTimeout: number;
  readonly broker: Broker;
  readonly closing: boolean;
  readonly dispatch: Dispatcher<T>;
  sessionOpened(session: Session<T>): void;
  closed(session: Session<T>): void;
  reportError(error: unknown, context: string): void;
}

type Origins = ChannelServerOptions['allowedOrigins'];

export class Fallback<T> {
  /** Local fallback sessions by the hash of their secret. */
  private readonly sessions = new Map<string, SseSession<T>>();
  /** Every open stream response, started or still in authenticate. */
  private readonly streams = new Set<ServerResponse>();
  /** Resolves `drain()` once the last stream is closed. */
  private drained: (() => void) | null = null;
  private readonly connectPath: string;
  private readonly sendPath: string;

  constructor(
    private readonly host: FallbackHost<T>,
    private readonly allowedOrigins: Origins,
  ) {
    this.connectPath = `${host.path}/connect`;
    this.sendPath = `${host.path}/send`;
  }

  /** Serves a fallback request; false if `req` is not for the fallback. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    // The path of the target, also in absolute-form (RFC 9112 §3.2.2).
    const path = targetPath(req.url ?? '/');
    if (path !== this.connectPath && path !== this.sendPath) return false;
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    if (!this.originAllowed(origin, req)) {
      respond(res, 403, 'origin not allowed');
      return true;
    }
    const cors = this.corsHeaders(origin);
    if (req.method === 'OPTIONS') {
      // The CORS preflight: answered only for an explicitly allowed origin.
      if (Object.keys(cors).length === 0) respond(res, 403, 'cross-origin requests are not allowed');
      else res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'POST', 'Access-Control-Allow-Headers': `Content-Type, ${SESSION_HEADER}`, 'Access-Control-Max-Age': '600' }).end();
      return true;
    }
    if (req.method !== 'POST') {
      respond(res, 405, 'use POST', { ...cors, Allow: 'POST, OPTIONS' });
      return true;
    }
    const type = req.headers['content-type'] ?? '';
    if (type.split(';')[0]?.trim().toLowerCase() !== 'application/json') {
      respond(res, 415, 'Content-Type must be application/json', cors);
      return true;
    }
    if (this.host.closing) {
      respond(res, 503, 'server is shutting down', cors);
      return true;
    }
    const limit = this.host.limits.maxMessageSize * MAX_BATCH;
    readBody(req, limit).then(
      (body) => {
        if (body === null) return respond(res, 413, `body larger than ${limit} bytes`, { ...cors, Connection: 'close' });
        if (path === this.connectPath) this.connect(req, res, body, cors);
        else this.send(req, res, origin ?? '', body, cors);
      },
      () => res.destroy(),
    );
    return true;
  }

  /**
   * Resolves once every stream response has closed (ended streams finish as
   * their clients read the rest, the disconnect included), or after
   * closeTimeout (a connect still in `authenticate`, a client that stopped
   * reading), whichever comes first.
   */
  drain(): Promise<void> {
    if (this.streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.host.closeTimeout);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.drained = done;
    });
  }

  close(): void {
    for (const res of this.streams) res.destroy();
    this.sessions.clear();
  }

  private connect(req: IncomingMessage, res: ServerResponse, body: string, cors: Record<string, string>): void {
    const cmd = parseBody(body);
    if (cmd.length !== 1 || cmd[0] === undefined || 'code' in cmd[0] || cmd[0].type !== 'connect') {
      const first = cmd[0];
      const id = first !== undefined && 'id' in first && typeof first.id === 'number' ? first.id : null;
      res.writeHead(400, { 'Content-Type': 'application/json', ...cors }).end(errorFrame(id, ErrorCode.BadRequest, 'the body must be one connect command'));
      return;
    }
    const connect = cmd[0];
    const limits = { maxBufferedBytes: this.host.limits.maxBufferedBytes, closeTimeout: this.host.closeTimeout };
    const session = new SseSession<T>(requestOf(req, 'sse'), Date.now(), res, (s, o, b) => this.routed(s, o, b), cors, limits);
    this.host.sessionOpened(session);
    this.streams.add(res);
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) this.drained?.();
      this.sessions.delete(session.hash);
      this.host.broker.unsubscribeAll(session);
      this.host.closed(session);
    });
    req.socket.setTimeout(0);
    this.host.dispatch.connect(session, connect).then(
      (ok) => {
        if (!ok || session.closed) return;
        this.sessions.set(session.hash, session);
        this.host.broker.subscribe(sessionTopic(session.hash), session);
        session.start();
      },
      (err: unknown) => {
        this.host.reportError(err, 'fallback connect');
        res.destroy();
      },
    );
  }

  private send(req: IncomingMessage, res: ServerResponse, origin: string, body: string, cors: Record<string, string>): void {
    const secret = req.headers[SESSION_HEADER];
    // 32 random bytes in base64url: anything else cannot be a session, and is not worth a broker message.
    if (typeof secret !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return respond(res, 400, `missing or malformed ${SESSION_HEADER} header`, cors);
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return respond(res, 400, 'the body is not JSON', cors);
    }
    const hash = createHash('sha256').update(secret).digest('base64url');
    const local = this.sessions.get(hash);
    if (local !== undefined) {
      if (local.origin !== origin) return respond(res, 403, 'session belongs to another origin', cors);
      this.run(local, commandsOf(value, body, this.host.limits.maxMessageSize));
      res.writeHead(204, cors).end();
      return;
    }
    // Only a broker that spans processes can reach a session on another node.
    if (this.host.broker instanceof LocalBroker) return respond(res, 404, 'no such session', cors);
    this.host.broker.publish(sessionTopic(hash), encodeRouted(hash, origin, body), undefined, (err) => {
      if (res.headersSent) return;
      if (err === null) res.writeHead(202, cors).end();
      else respond(res, 503, 'cannot reach the session', cors);
    });
  }

  /** Commands POSTed on another node for a session here. */
  private routed(session: SseSession<T>, origin: string, body: string): void {
    if (session.closed) return;
    if (origin !== session.origin) {
      this.host.dispatch.fail(session, null, ErrorCode.Forbidden, 'command from another origin refused');
      return;
    }
    this.run(session, parseBody(body, this.host.limits.maxMessageSize));
  }

  private run(session: SseSession<T>, commands: (Command | CommandError)[]): void {
    session.seen = true;
    for (const cmd of commands) this.host.dispatch.handle(session, cmd);
  }

  private originAllowed(origin: string | undefined, req: IncomingMessage): boolean {
    const allowed = this.allowedOrigins;
    if (allowed === undefined) return true;
    if (typeof allowed === 'function') return allowed(origin, req);
    return origin !== undefined && allowed.includes(origin);
  }

  /** CORS response headers, only for an origin on an explicit allow-list. */
  private corsHeaders(origin: string | undefined): Record<string, string> {
    if (origin === undefined || this.allowedOrigins === undefined) return {};
    return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' };
  }
}

/** A POST body: one command object or an array of up to MAX_BATCH; each command at most `max` bytes of JSON. */
export function parseBody(body: string, max = Infinity): (Command | CommandError)[] {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return [{ id: null, code: ErrorCode.BadRequest, message: 'not JSON' }];
  }
  return commandsOf(value, body, max);
}

/** The commands of a POST body already parsed as JSON (`value`, from `body`). */
function commandsOf(value: unknown, body: string, max: number): (Command | CommandError)[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length > MAX_BATCH) return [{ id: null, code: ErrorCode.BadRequest, message: `at most ${MAX_BATCH} commands per request` }];
  return list.map((item: unknown) => {
    if (max !== Infinity && Buffer.byteLength(Array.isArray(value) ? (jsonText(item) ?? '') : body) > max) {
      const id = typeof item === 'object' && item !== null && typeof (item as { id?: unknown }).id === 'number' ? (item as { id: number }).id : null;
      return { id, code: ErrorCode.TooLarge, message: `command larger than ${max} bytes` };
    }
    return parseCommand(item);
  });
}

function respond(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers }).end(`${message}\n`);
}

/** The request body as text, or null once it exceeds `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      req.resume();
      return resolve(null);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}
