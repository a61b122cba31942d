/**
 * Client: the channels client for browsers and Node (PROTOCOL.md). One
 * connection at a time over the WebSocket or the SSE + POST fallback; it
 * reconnects with jittered backoff, resubscribes and recovers, detects a
 * dead connection by the protocol's heartbeat, and matches replies to
 * commands by id.
 */
import { backoffDelay } from './backoff.js';
import { ChannelError, shouldReconnect } from './codes.js';
import { Emitter } from './emitter.js';
import { encodePayload } from './payload.js';
import { Subscription, type SubscriptionHost, isOffset, isUndecodable, publicationOf } from './subscription.js';
import { type Frame, type Transport, openSse, openWebSocket } from './transport.js';
import type {
  ChannelErrorInfo,
  ClientApi,
  ClientEvents,
  ClientOptions,
  ClientState,
  FetchLike,
  HistoryOptions,
  HistoryResult,
  PresenceEntry,
  PublishResult,
  SubscribeOptions,
  TransportName,
  WebSocketConstructor,
} from './types.js';

type Timer = ReturnType<typeof setTimeout>;

/** The success reply of each command (PROTOCOL.md §2); any other reply but `error` breaks the protocol. */
const REPLY: Record<string, string> = { subscribe: 'subscribed', unsubscribe: 'unsubscribed', publish: 'published', history: 'history', presence: 'presence', ping: 'pong' };
/** The longest delay a timer takes (2^31 − 1 ms); a longer one would fire at once. */
const MAX_DELAY = 2_147_483_647;

interface Call {
  frame: Record<string, unknown>;
  done(error: ChannelErrorInfo | null, reply?: Frame): void;
  timer: Timer;
  sent: boolean;
}

export class Client extends Emitter<ClientEvents> implements ClientApi, SubscriptionHost {
  state: ClientState = 'disconnected';
  transport: TransportName | null = null;
  clientId: string | null = null;
  user: string | null = null;

  private readonly o: ClientOptions;
  private readonly wsUrl: string;
  private readonly httpUrl: string;
  private t: Transport | null = null;
  /** Ends the connection attempt under way. */
  private abort: (() => void) | null = null;
  /** Bumped by every connection attempt and by disconnect(): callbacks of older ones are ignored. */
  private gen = 0;
  private attempt = 0;
  private nextId = 1;
  private readonly calls = new Map<number, Call>();
  private readonly subs = new Map<string, Subscription>();
  private want = false;
  private timer: Timer | undefined;
  private heartbeat: Timer | undefined;
  private lastRecv = 0;
  private ping = 25_000;
  private connectedAt = 0;
  /** The WebSocket failed where SSE worked: it is blocked on this path, go straight to SSE. */
  private sseFirst = false;
  private goodbye: Frame | null = null;

  constructor(url: string, options: ClientOptions = {}) {
    super();
    this.o = options;
    const loc = (globalThis as { location?: { href: string } }).location;
    const u = new URL(url, loc?.href);
    u.protocol = u.protocol.replace(/^http/, 'ws');
    this.wsUrl = u.href;
    this.httpUrl = (options.fallbackUrl ?? this.wsUrl).replace(/^ws/, 'http').replace(/\/$/, '');
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  connect(): void {
    if (this.want) return;
    this.want = true;
    this.attempt = 0;
    void this.open();
  }

  disconnect(): void {
    this.want = false;
    this.gen++;
    clearTimeout(this.timer);
    this.abort?.();
    const t = this.t;
    if (t) {
      t.close();
      this.down(t, 1000, 'client disconnect', false);
    } else {
      this.setState('disconnected', null);
    }
    // A stopped client answers nothing: commands still waiting (sent, or
    // queued for a connection) fail now, and keep no timer.
    this.drop(false, 'client disconnected');
  }

  subscribe(channel: string, options?: SubscribeOptions): Subscription {
    let sub = this.subs.get(channel);
    if (!sub) this.subs.set(channel, (sub = new Subscription(this, channel, options)));
    // New, or left down by a subscribe that got no valid answer: (re)start it.
    if (sub.state === 'unsubscribed') sub.start();
    return sub;
  }

  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  publish(channel: string, data: unknown): Promise<PublishResult> {
    return this.request({ type: 'publish', channel, ...encodePayload(data) }).then((f) => ({ offset: f.offset as number, epoch: f.epoch as string }));
  }

  history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    return this.request({ type: 'history', channel, ...options }).then((f) => {
      const epoch = f.epoch as string;
      const publications = [];
      for (const item of f.publications as Frame[]) {
        const p = publicationOf(channel, epoch, item);
        if (p === null || isUndecodable(p)) throw badReply(`a publication of "${channel}" without a valid offset and payload in a history reply`);
        publications.push(p);
      }
      return { offset: f.offset as number, epoch, publications };
    });
  }

  presence(channel: string): Promise<PresenceEntry[]> {
    return this.request({ type: 'presence', channel }).then((f) => f.clients as PresenceEntry[]);
  }

  /** Sends a command (now, or once connected) and settles with its reply, an error reply, or a timeout (408). */
  request(frame: Record<string, unknown>): Promise<Frame> {
    return new Promise((resolve, reject) => this.call(frame, (err, f) => (err ? reject(err) : resolve(f as Frame))));
  }

  /**
   * Like `request`, with a callback called synchronously as the reply is
   * read, so that a subscription handles its `subscribed` reply before any
   * push that follows it on the wire.
   */
  call(frame: Record<string, unknown>, done: (error: ChannelErrorInfo | null, reply?: Frame) => void): void {
    const id = this.nextId++;
    const call: Call = {
      frame: { id, ...frame },
      done,
      sent: false,
      timer: setTimeout(() => {
        this.calls.delete(id);
        done(new ChannelError(408, 'no reply in time'));
      }, this.o.commandTimeout ?? 10_000),
    };
    this.calls.set(id, call);
    if (this.t && this.connected) this.sendCall(this.t, call);
  }

  delivered(p: ClientEvents['publication']): void {
    this.emit('publication', p);
  }

  malformed(what: string): void {
    this.emit('error', badReply(what));
  }

  forget(sub: Subscription): void {
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
  }

  private sendCall(t: Transport, call: Call): void {
    call.sent = true;
    t.send(call.frame);
  }

  private setState(state: ClientState, transport: TransportName | null): void {
    if (state === this.state && transport === this.transport) return;
    this.state = state;
    this.transport = transport;
    this.emit('state', { state, transport });
  }

  /** One connection attempt: each transport in turn until one reaches `connected` (PROTOCOL.md §10). */
  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.setState('connecting', null);
    let token: string | undefined;
    try {
      token = typeof this.o.token === 'function' ? await this.o.token() : this.o.token;
    } catch (err) {
      if (gen === this.gen) this.failed(1006, `token: ${String(err)}`);
      return;
    }
    if (gen !== this.gen) return;
    let order = this.o.transports ?? ['websocket', 'sse'];
    if (this.sseFirst) order = [...order.filter((n) => n === 'sse'), ...order.filter((n) => n !== 'sse')];
    let code = 1006;
    let reason = 'no transport';
    let wsFailed = false;
    for (const name of order) {
      const r = await this.tryTransport(gen, name, token);
      if (gen !== this.gen) return;
      if (r === null) {
        if (name === 'sse' && wsFailed) this.sseFirst = true;
        return;
      }
      [code, reason] = r;
      // A protocol answer (401, abuse …) is the server speaking: no other transport will do better.
      if (code >= 4000 && code < 5000) break;
      if (name === 'websocket') wsFailed = true;
    }
    this.failed(code, reason);
  }

  /** Resolves null once connected, or with the close code and reason of a failed attempt. */
  private tryTransport(gen: number, name: TransportName, token: string | undefined): Promise<[number, string] | null> {
    return new Promise((resolve) => {
      this.emit('connecting', { attempt: this.attempt, transport: name });
      const hello: Record<string, unknown> = { id: this.nextId++, type: 'connect' };
      if (token !== undefined) hello.token = token;
      if (this.o.name !== undefined) hello.name = this.o.name;
      let settled = false;
      const fail = (code: number, reason: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        t.close();
        this.abort = null;
        resolve([code, reason]);
      };
      const timer = setTimeout(fail, this.o.timeout ?? 5000, 1006, 'timeout');
      const handlers = {
        frame: (f: Frame) => {
          this.lastRecv = Date.now();
          if (settled) return this.frame(t, f);
          if (gen !== this.gen) return;
          if (f.type === 'connected' && f.id === hello.id) {
            settled = true;
            clearTimeout(timer);
            this.abort = null;
            this.up(t, f);
            resolve(null);
          } else if (f.type === 'disconnect') this.goodbye = f;
        },
        closed: (code: number, reason: string) => {
          if (!settled) {
            const g = this.goodbye;
            return fail(g ? Number(g.code) : code, g ? String(g.reason) : reason);
          }
          this.down(t, code, reason);
        },
      };
      const t: Transport =
        name === 'websocket'
          ? openWebSocket(this.o.WebSocket ?? (globalThis as unknown as { WebSocket: WebSocketConstructor }).WebSocket, this.wsUrl, hello, handlers)
          : openSse(this.o.fetch ?? (globalThis.fetch as unknown as FetchLike), this.httpUrl, this.o.credentials, hello, handlers);
      this.abort = () => fail(1000, 'client disconnect');
    });
  }

  private up(t: Transport, f: Frame): void {
    this.t = t;
    this.goodbye = null;
    this.clientId = String(f.client);
    this.user = String(f.user);
    const ping = f.ping;
    this.ping = typeof ping === 'number' && ping > 0 ? Math.min(ping, MAX_DELAY) : 25_000;
    this.connectedAt = Date.now();
    this.setState('connected', t.name);
    this.emit('connected', { client: this.clientId, user: this.user, transport: t.name });
    this.watch(t);
    for (const call of this.calls.values()) if (!call.sent) this.sendCall(t, call);
    for (const sub of this.subs.values()) sub.start();
  }

  /** The heartbeat (PROTOCOL.md §6): silence beyond ping + grace means the connection is dead. */
  private watch(t: Transport): void {
    const limit = Math.min(this.ping + (this.o.pingGrace ?? 10_000), MAX_DELAY);
    const idle = Date.now() - this.lastRecv;
    if (idle >= limit) {
      t.close();
      return this.down(t, 4502, 'heartbeat timeout');
    }
    this.heartbeat = setTimeout(() => this.t === t && this.watch(t), limit - idle);
  }

  private frame(t: Transport, f: Frame): void {
    const call = typeof f.id === 'number' ? this.calls.get(f.id) : undefined;
    if (call) {
      this.calls.delete(f.id as number);
      clearTimeout(call.timer);
      if (f.type === 'error') call.done(new ChannelError(Number(f.code), String(f.message)));
      else call.done(replyError(call.frame.type as string, f), f);
      return;
    }
    const sub = typeof f.channel === 'string' ? this.subs.get(f.channel) : undefined;
    switch (f.type) {
      case 'ping':
        return t.send({ type: 'pong' });
      case 'pub':
        if (typeof f.epoch !== 'string') return this.malformed(`a publication without an epoch`);
        return sub?.take(f, f.epoch);
      case 'disconnect':
        this.goodbye = f;
        return;
      case 'error':
        if (f.id === undefined) this.emit('error', new ChannelError(Number(f.code), String(f.message)));
        return;
      default:
        sub?.push(f);
    }
  }

  /** The connection `t` ended (or was given up). */
  private down(t: Transport, code: number, reason: string, again?: boolean): void {
    if (t !== this.t) return;
    this.t = null;
    clearTimeout(this.heartbeat);
    const g = this.goodbye;
    this.goodbye = null;
    if (Date.now() - this.connectedAt >= (this.o.stableAfter ?? 10_000)) this.attempt = 0;
    this.drop(true, 'connection lost');
    for (const sub of this.subs.values()) sub.lost();
    // The code decides (§6: 4000–4499 never reconnect); a `disconnect` push may still say not to.
    const final = g ? Number(g.code) : code;
    this.failed(final, g ? String(g.reason) : reason, again ?? (shouldReconnect(final) && g?.reconnect !== false));
  }

  /** Fails the commands awaiting a reply (499): the sent ones only, or all. */
  private drop(sentOnly: boolean, why: string): void {
    for (const [id, call] of this.calls) {
      if (sentOnly && !call.sent) continue;
      this.calls.delete(id);
      clearTimeout(call.timer);
      call.done(new ChannelError(499, why));
    }
  }

  /** Reports a lost or failed connection, then schedules the next attempt or stops. */
  private failed(code: number, reason: string, again = shouldReconnect(code)): void {
    const reconnect = again && this.want && this.o.reconnect !== false;
    this.emit('disconnected', { code, reason, reconnect });
    if (!reconnect) {
      this.want = false;
      return this.setState('disconnected', null);
    }
    const delay = backoffDelay(this.attempt, this.o.minReconnectDelay ?? 500, this.o.maxReconnectDelay ?? 20_000);
    this.attempt++;
    this.setState('reconnecting', null);
    this.emit('reconnecting', { attempt: this.attempt, delay });
    this.timer = setTimeout(() => void this.open(), delay);
  }
}

function badReply(what: string): ChannelError {
  return new ChannelError(502, what);
}

/** Why a reply other than `error` does not answer a `command` (PROTOCOL.md §2), or null when it does. */
function replyError(command: string, f: Frame): ChannelError | null {
  const want = REPLY[command];
  if (want !== undefined && f.type !== want) return badReply(`a "${String(f.type)}" reply to "${command}" (expected "${want}")`);
  const position = typeof f.epoch === 'string' && isOffset(f.offset, command === 'publish' ? 1 : 0);
  if (command === 'publish' || command === 'history' || command === 'subscribe') {
    if (!position) return badReply(`a "${want}" reply without a valid offset and epoch`);
  }
  if (command === 'history' && !Array.isArray(f.publications)) return badReply('a "history" reply without publications');
  if (command === 'presence' && !Array.isArray(f.clients)) return badReply('a "presence" reply without clients');
  return null;
}
