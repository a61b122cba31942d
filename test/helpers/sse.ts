/**
 * A client of the channels HTTP fallback (PROTOCOL.md §9) for hostile
 * tests: opens a `POST <path>/connect` stream on a fresh TCP connection and
 * parses it as the WHATWG HTML spec's Server-Sent Events parser does
 * (§9.2.6 "Interpreting an event stream": lines end in CR LF, LF or CR; a
 * blank line dispatches; `data:` lines accumulate; `:` starts a comment), and
 * sends single POSTs, each on its own connection. Every wait is bounded.
 */
import { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import { type Socket, connect } from 'node:net';
import type { TestContext } from 'node:test';
import { LocalBroker } from '../../src/pubsub/local.js';
import type { ChannelServerOptions } from '../../src/channels/options.js';
import { type Json, firstMatch, startChannels, until } from './channels.js';
import { LOOPBACK, withTimeout } from './raw-client.js';

export const JSON_TYPE = 'application/json';
export const CHAT = { match: 'chat:*', history: { size: 100, ttl: 60_000 }, presence: true, publish: true };

/** A channel server (CHAT rules) with a broker of the test's own, so its session topics (`fd:s:…`) can be counted. */
export async function serve(t: TestContext, options: ChannelServerOptions = {}) {
  const broker = new LocalBroker();
  t.after(() => broker.close());
  const started = await startChannels(t, { channels: [CHAT], broker, ...options });
  const sessionTopics = (): number => [...broker.topics()].filter((x) => x.startsWith('fd:s:')).length;
  return { ...started, broker, sessionTopics };
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface PostSpec {
  method?: string;
  origin?: string;
  /** The `X-Fullduplex-Session` header. */
  session?: string;
  /** The `Content-Type`; null sends none. */
  contentType?: string | null;
  headers?: Record<string, string>;
  body?: string;
}

function headersOf(spec: PostSpec): Record<string, string> {
  const h: Record<string, string> = { ...spec.headers };
  if (spec.origin !== undefined) h.Origin = spec.origin;
  if (spec.session !== undefined) h['X-Fullduplex-Session'] = spec.session;
  const type = spec.contentType === undefined ? JSON_TYPE : spec.contentType;
  if (type !== null) h['Content-Type'] = type;
  return h;
}

function send(port: number, path: string, spec: PostSpec): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const req = request({ host: LOOPBACK, port, path, method: spec.method ?? 'POST', headers: headersOf(spec), agent: false });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  req.end(spec.body ?? '');
  return { req, response };
}

/** One request on its own connection; resolves with the whole answer (bounded by `ms`). */
export function post(port: number, path: string, spec: PostSpec = {}, ms = 10_000): Promise<HttpAnswer> {
  const { req, response } = send(port, path, spec);
  const answer = response.then(
    (res) =>
      new Promise<HttpAnswer>((resolve, reject) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }));
        res.once('error', reject);
      }),
  );
  return withTimeout(answer, ms, `the answer to ${spec.method ?? 'POST'} ${path}`).finally(() => req.destroy());
}

/** A command POSTed to `<base>/send` for `stream`'s session, from its origin. */
export function command(stream: SseStream, body: unknown, spec: PostSpec = {}): Promise<HttpAnswer> {
  return post(stream.port, `${stream.base}/send`, { origin: stream.origin, session: stream.session, body: typeof body === 'string' ? body : JSON.stringify(body), ...spec });
}

/** An open fallback session: its event stream, parsed as it arrives. */
export class SseStream {
  readonly events: Json[] = [];
  /** Every `data` value that was not JSON (none should be). */
  readonly junk: string[] = [];
  /** Bytes of event-stream text received. */
  received = 0;
  ended = false;
  private buffer = '';
  private data: string[] = [];
  private seen = 0;
  session = '';
  client = '';

  constructor(
    readonly port: number,
    readonly base: string,
    readonly origin: string | undefined,
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (text: string) => this.push(text));
    res.once('end', () => (this.ended = true));
    res.once('close', () => (this.ended = true));
    res.on('error', () => (this.ended = true));
  }

  /** WHATWG HTML §9.2.6: split into lines (CR LF, LF or CR), dispatch on a blank line. */
  private push(text: string): void {
    this.received += Buffer.byteLength(text);
    this.buffer += text;
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.buffer);
      // A lone CR at the end may be the first half of a CR LF: wait for more.
      if (m === null || (m[0] === '\r' && m.index === this.buffer.length - 1)) return;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length === 0) return;
      const text = this.data.join('\n');
      this.data = [];
      try {
        this.events.push(JSON.parse(text) as Json);
      } catch {
        this.junk.push(text);
      }
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
  }

  /** The next event (after those already taken by `next`) that matches. */
  next(match: (e: Json) => boolean, what: string, ms?: number): Promise<Json> {
    return until(() => {
      const found = firstMatch(this.events, this.seen, match);
      if (found !== undefined) this.seen = found.index + 1;
      return found?.item;
    }, what, ms);
  }

  /** The reply to command `id`. */
  reply(id: number): Promise<Json> {
    return until(() => this.events.find((e) => e.id === id), `the reply to command ${id}`);
  }

  /** The `disconnect` push, once the stream has ended after it. */
  async disconnected(ms?: number): Promise<Json> {
    await until(() => this.ended, 'the end of the stream', ms);
    const last = this.events.at(-1);
    if (last?.type !== 'disconnect') throw new Error(`the stream ended without a disconnect push; last event: ${JSON.stringify(last).slice(0, 120)}`);
    return last;
  }

  pubs(channel: string): number[] {
    return this.events.filter((e) => e.type === 'pub' && e.channel === channel).map((e) => Number(e.offset));
  }

  close(): void {
    this.req.destroy();
    this.res.destroy();
  }
}

export interface OpenSpec extends PostSpec {
  /** The channel path (default `/channels`). */
  base?: string;
}

/**
 * POSTs a `connect` to `<base>/connect`. Resolves with the open stream once
 * `connected` arrived, or with the HTTP answer when the server refused it.
 */
export async function openSse(t: TestContext, port: number, spec: OpenSpec = {}): Promise<SseStream | HttpAnswer> {
  const base = spec.base ?? '/channels';
  const { req, response } = send(port, `${base}/connect`, { body: '{"id":1,"type":"connect"}', ...spec });
  t.after(() => req.destroy());
  const res = await withTimeout(response, 10_000, 'the answer to POST /connect');
  if (res.statusCode !== 200) {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    await withTimeout(new Promise((r) => res.once('end', r)), 10_000, 'the body of a refused connect');
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() };
  }
  const stream = new SseStream(port, base, spec.origin, req, res);
  const hello = await stream.next((e) => e.type === 'connected' || e.type === 'error', 'the connected event');
  stream.session = String(hello.session);
  stream.client = String(hello.client);
  return stream;
}

/** `openSse` that must succeed. */
export async function mustOpen(t: TestContext, port: number, spec: OpenSpec = {}): Promise<SseStream> {
  const s = await openSse(t, port, spec);
  if (!(s instanceof SseStream)) throw new Error(`connect refused: ${s.status} ${s.body}`);
  return s;
}

/**
 * A fallback session opened over a bare TCP socket, for clients Node's HTTP
 * client cannot play: one that stops reading (`pause`) while the server
 * keeps writing. Keeps every byte it read (the chunked framing included).
 */
export class RawSse {
  readonly chunks: Buffer[] = [];
  received = 0;
  closed = false;
  session = '';

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.received += c.length;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => (this.closed = true));
  }

  static async open(t: TestContext, port: number, base = '/channels'): Promise<RawSse> {
    const socket = connect({ port, host: LOOPBACK });
    t.after(() => socket.destroy());
    const raw = new RawSse(socket);
    const body = '{"id":1,"type":"connect"}';
    socket.write(`POST ${base}/connect HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const m = await until(() => /"session":"([A-Za-z0-9_-]{43})"/.exec(raw.text()), 'the connected event on a raw socket');
    raw.session = m[1] ?? '';
    return raw;
  }

  /** Opens a raw session subscribed to `channel` (the subscribe POSTed on its own connection). */
  static async subscribed(t: TestContext, port: number, channel: string): Promise<RawSse> {
    const raw = await RawSse.open(t, port);
    const r = await post(port, '/channels/send', { session: raw.session, body: JSON.stringify({ id: 2, type: 'subscribe', channel }) });
    if (r.status !== 204) throw new Error(`subscribe refused: ${r.status} ${r.body}`);
    await until(() => raw.saw('"id":2,"type":"subscribed"'), 'subscribed on a raw socket');
    return raw;
  }

  /** Everything read so far, as latin1 text. */
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  /** Whether `needle` was read (searched in the last `tail` bytes only, to stay cheap on big streams). */
  saw(needle: string, tail = 64 * 1024): boolean {
    let s = '';
    for (let i = this.chunks.length - 1; i >= 0 && s.length < tail; i--) s = (this.chunks[i]?.toString('latin1') ?? '') + s;
    return s.includes(needle);
  }
}
