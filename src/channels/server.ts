/**
 * ChannelServer: the channel protocol (PROTOCOL.md) on fullduplex's public
 * WebSocketServer API, plus the HTTP fallback on the same port and path.
 *
 * One Hub per channel with local subscribers takes publications from the
 * Broker (the in-process LocalBroker by default, a RedisBroker across
 * processes) and hands them to the node's sessions in offset order; the
 * ChannelStore (MemoryStore by default) keeps streams, history and presence.
 * One timer sweeps every session: heartbeat pings, dead and slow
 * connections, connect timeouts, presence refreshes.
 */
import type { IncomingMessage, RequestListener, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import diagnostics_channel from 'node:diagnostics_channel';
import type { AddressInfo } from 'node:net';
import { DiagnosticsChannel, type ServerWebSocket, WebSocketServer } from '../index.js';
import { LocalBroker } from '../pubsub/local.js';
import type { Broker } from '../pubsub/broker.js';
import { CloseCode, ErrorCode } from '../client-lib/codes.js';
import { PROTOCOL } from '../client-lib/types.js';
import { parseFrame } from './commands.js';
import { type DispatchHost, Dispatcher, publishPayload } from './dispatch.js';
import { Fallback } from './fallback.js';
import { pingFrame, unsubscribedFrame } from './frames.js';
import { Hub, type HubHost } from './hub.js';
import { MemoryStore } from './memory-store.js';
import { CHANNEL_DEFAULTS, type ChannelLimits, type ChannelOptions, type ChannelServerOptions } from './options.js';
import { Presence } from './presence.js';
import { ChannelRules } from './rules.js';
import { type Session, SessionState, requestOf } from './session.js';
import type { ChannelStore, StreamPosition } from './store.js';
import { PING_TOPIC, WsSession } from './ws-session.js';

/**
 * How often each hub compares its position with the store's, to deliver a
 * broadcast the broker lost (PROTOCOL.md §7): the bound on how late such a
 * publication can be, when no later one reveals the gap sooner.
 */
const CATCH_UP_INTERVAL = 5000;

export class ChannelServer<T = unknown> implements DispatchHost<T>, HubHost {
  readonly limits: ChannelLimits;
  readonly rules: ChannelRules;
  readonly broker: Broker;
  readonly store: ChannelStore;
  readonly presenceKeeper: Presence;
  readonly hooks: Pick<ChannelServerOptions<T>, 'authenticate' | 'authorize'>;
  /** The WebSocketServer carrying the WebSocket transport (attach it, or use `listen`). */
  readonly wss: WebSocketServer<WsSession<T>>;
  readonly path: string;
  /** @internal Milliseconds an out-of-order publication waits for the ones before it (hub.ts). */
  readonly gapWait = 100;
  private shuttingDown = false;

  private readonly dispatcher: Dispatcher<T>;
  private readonly fallback: Fallback<T>;
  private readonly hubs = new Map<string, Hub>();
  /** Every open session (connected or not), by client id. */
  private readonly sessions = new Map<string, Session<T>>();
  private readonly ownsBroker: boolean;
  private readonly ownsStore: boolean;
  private readonly onError: (error: unknown, context: string) => void;
  private readonly sweepTimer: NodeJS.Timeout;
  private nextPing: number;
  private nextPresence: number;
  private nextCatchUp: number;

  constructor(options: ChannelServerOptions<T> = {}) {
    this.limits = { ...CHANNEL_DEFAULTS };
    for (const key of Object.keys(CHANNEL_DEFAULTS) as (keyof ChannelLimits)[]) {
      const v = options[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !(v > 0)) throw new RangeError(`${key} must be a positive number`);
      this.limits[key] = v;
    }
    this.path = options.path ?? '/channels';
    this.rules = new ChannelRules(options.channels);
    this.ownsBroker = options.broker === undefined;
    this.broker = options.broker ?? new LocalBroker();
    this.ownsStore = options.store === undefined;
    this.store = options.store ?? new MemoryStore();
    this.hooks = { authenticate: options.authenticate, authorize: options.authorize };
    this.onError = options.onError ?? reportOnDiagnostics;
    this.presenceKeeper = new Presence({ store: this.store, broker: this.broker, presenceTtl: this.limits.presenceTtl, reportError: this.onError });
    this.dispatcher = new Dispatcher(this);
    this.fallback = new Fallback<T>(this, options.allowedOrigins);
    this.wss = new WebSocketServer<WsSession<T>>({
      path: this.path,
      protocols: [PROTOCOL],
      allowedOrigins: options.allowedOrigins,
      // Frames up to 4× the limit are read and answered with 413; beyond, 1009 (PROTOCOL.md §5).
      maxPayload: this.limits.maxMessageSize * 4,
      // The channel heartbeat (ping/pong frames browsers can see) replaces WebSocket pings.
      keepalive: false,
      // A subscriber that cannot keep up is closed, never silently skipped:
      // it reconnects and recovers what it missed (PROTOCOL.md §6, 4503).
      maxBackpressure: this.limits.maxBufferedBytes,
      handler: {
        upgrade: (req) => ({ accept: true, data: new WsSession<T>(requestOf(req, 'websocket'), Date.now()) }),
        open: (ws) => this.opened(ws),
        message: (ws, data, isBinary) => this.frame(ws.data, data, isBinary),
        close: (ws) => this.closed(ws.data),
        dropped: (ws) => ws.data.disconnect(CloseCode.SlowConsumer, 'slow consumer', true),
      },
    });
    const now = Date.now();
    this.nextPing = now + this.limits.ping;
    this.nextPresence = now + this.limits.presenceTtl / 3;
    this.nextCatchUp = now + CATCH_UP_INTERVAL;
    const l = this.limits;
    const every = Math.max(10, Math.min(1000, l.ping / 4, l.pingGrace / 2, l.connectTimeout / 4, l.presenceTtl / 6));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  /**
   * Starts an HTTP server of its own for both transports; other plain HTTP
   * requests go to `onRequest` (404 without one).
   */
  listen(port = 0, host = '127.0.0.1', onRequest?: RequestListener): Promise<AddressInfo> {
    return this.wss.listen(port, host, (req, res) => {
      if (this.handleRequest(req, res)) return;
      if (onRequest !== undefined) return onRequest(req, res);
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
    });
  }

  /**
   * Takes WebSocket handshakes on `server`. Its request listener must give
   * plain HTTP requests to `handleRequest` first, for the fallback.
   */
  attach(server: HttpServer | HttpsServer): void {
    this.wss.attach(server);
  }

  /** Serves the HTTP fallback (`<path>/connect`, `<path>/send`); false if the request is not for it. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    return this.fallback.handle(req, res);
  }

  /** Publishes from application code (no publisher info); resolves with the publication's position. */
  publish(channel: string, data: unknown): Promise<StreamPosition> {
    const payload =
      data instanceof Uint8Array || data instanceof ArrayBuffer
        ? `{"b64":"${Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString('base64')}"}`
        : `{"data":${JSON.stringify(data) ?? 'null'}}`;
    return publishPayload(this, channel, payload, this.rules.get(channel));
  }

  /** Who is in `channel`'s presence, on every node (as the store has it). */
  async presence(channel: string): Promise<{ client: string; user: string; info?: unknown }[]> {
    const entries = await this.store.presenceList(channel);
    return [...entries.values()].map((e) => JSON.parse(e) as { client: string; user: string; info?: unknown });
  }

  /**
   * The newest `limit` publications of `channel`, oldest first, each with its
   * offset and wire fields (`data` or `b64`, `info`), and the stream's position.
   */
  async history(channel: string, limit = this.limits.maxHistoryRead): Promise<StreamPosition & { publications: Record<string, unknown>[] }> {
    const r = await this.store.read(channel, null, limit, this.rules.get(channel).history);
    const publications = r.ok ? r.publications.map((p) => ({ offset: p.offset, ...(JSON.parse(p.payload) as Record<string, unknown>) })) : [];
    return { offset: r.top.offset, epoch: r.top.epoch, publications };
  }

  /** Disconnects a client by id (PROTOCOL.md §6: 4000–4499 tell it not to reconnect); false if unknown here. */
  disconnect(clientId: string, code = 4000, reason = '', reconnect = code >= 4500): boolean {
    const s = this.sessions.get(clientId);
    if (s === undefined) return false;
    s.disconnect(code, reason, reconnect);
    return true;
  }

  /**
   * Ends a client's subscription from application code (a kick from a room):
   * the client gets an `unsubscribed` push with `code` and `reason` and does
   * not resubscribe by itself. False if the client is not here or not in it.
   */
  unsubscribe(clientId: string, channel: string, code = 4403, reason = 'unsubscribed by the server'): boolean {
    const s = this.sessions.get(clientId);
    if (s === undefined || !s.channels.has(channel)) return false;
    this.dispatcher.unsubscribe(s, channel);
    s.send(unsubscribedFrame(channel, code, reason));
    return true;
  }

  /** Sessions open on this node. */
  get clientCount(): number {
    return this.sessions.size;
  }

  /**
   * Shuts down: every session gets `disconnect` 1001 (reconnect: true, so
   * clients come back to another node), the WebSocketServer closes, and the
   * default broker and store are released.
   */
  async close(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    clearInterval(this.sweepTimer);
    for (const s of this.sessions.values()) s.disconnect(1001, 'server shutting down', true);
    // Event streams end like WebSocket connections do: their clients get the
    // rest (the disconnect last) before the server closes its connections.
    await this.fallback.drain();
    await this.wss.close();
    this.fallback.close();
    if (this.ownsBroker) await this.broker.close();
    if (this.ownsStore) await this.store.close();
  }

  // DispatchHost and HubHost (internal).

  /** How long an ending stream may take (the WebSocketServer's closeTimeout). */
  get closeTimeout(): number {
    return this.wss.closeTimeout;
  }

  /** True once `close()` started. */
  get closing(): boolean {
    return this.shuttingDown;
  }

  hub(channel: string, options: ChannelOptions): Hub {
    let hub = this.hubs.get(channel);
    if (hub === undefined) this.hubs.set(channel, (hub = new Hub(this, channel, options)));
    return hub;
  }

  existingHub(channel: string): Hub | undefined {
    return this.hubs.get(channel);
  }

  hubEmpty(hub: Hub): void {
    if (this.hubs.get(hub.channel) === hub) this.hubs.delete(hub.channel);
  }

  fanout(channel: string, frame: Buffer): void {
    try {
      this.wss.publish(channel, frame, { binary: false });
    } catch (err) {
      this.reportError(err, `fan-out on "${channel}"`);
    }
  }

  connected(session: Session<T>): void {
    if (this.closing) session.disconnect(1001, 'server shutting down', true);
  }

  reportError(error: unknown, context: string): void {
    try {
      this.onError(error, context);
    } catch {
      // The application's error reporter must not take the server down.
    }
  }

  // Sessions, from either transport.

  /** @internal A session whose transport opened (WebSocket open, fallback stream started). */
  sessionOpened(session: Session<T>): void {
    this.sessions.set(session.id, session);
  }

  /** @internal Parses and runs one frame of `session`. */
  command(session: Session<T>, text: string, size: number): void {
    session.seen = true;
    if (size > this.limits.maxMessageSize) return this.dispatcher.fail(session, null, ErrorCode.TooLarge, `frame larger than ${this.limits.maxMessageSize} bytes`);
    this.dispatcher.handle(session, parseFrame(text));
  }

  /** @internal Runs an already parsed command (fallback batches). */
  get dispatch(): Dispatcher<T> {
    return this.dispatcher;
  }

  /** @internal The transport of `session` is gone: leave every channel. */
  closed(session: Session<T>): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    session.state = SessionState.Closed;
    for (const channel of [...session.channels.keys()]) this.dispatcher.unsubscribe(session, channel);
    if (session.presence !== null) for (const channel of [...session.presence]) this.presenceKeeper.leave(session, channel);
  }

  private opened(ws: ServerWebSocket<WsSession<T>>): void {
    const session = ws.data;
    session.ws = ws;
    this.sessionOpened(session);
    if (ws.protocol !== PROTOCOL) return session.disconnect(CloseCode.NotNegotiated, `subprotocol ${PROTOCOL} required`, false);
    ws.subscribe(PING_TOPIC);
  }

  private frame(session: WsSession<T>, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      session.seen = true;
      return this.dispatcher.fail(session, null, ErrorCode.BadRequest, 'binary frames are not part of the protocol');
    }
    this.command(session, data.length > this.limits.maxMessageSize ? '' : data.toString(), data.length);
  }

  /** The one periodic pass over every session (PROTOCOL.md §6, §8). */
  private sweep(): void {
    const now = Date.now();
    const l = this.limits;
    const ping = now >= this.nextPing;
    if (ping) {
      this.nextPing = now + l.ping;
      this.wss.publish(PING_TOPIC, pingFrame());
    }
    for (const s of this.sessions.values()) {
      if (s.seen) {
        s.seen = false;
        s.lastSeen = now;
      }
      if (s.state !== SessionState.Connected) {
        if (s.state !== SessionState.Closed && now - s.createdAt > l.connectTimeout) s.disconnect(CloseCode.ConnectTimeout, 'no connect in time', true);
        continue;
      }
      if (now - s.lastSeen > l.ping + l.pingGrace) s.disconnect(CloseCode.HeartbeatTimeout, 'heartbeat timeout', true);
      else if (s.bufferedAmount > l.maxBufferedBytes) s.disconnect(CloseCode.SlowConsumer, 'slow consumer', true);
      else if (ping && s.transport === 'sse') s.send(pingFrame());
    }
    if (now >= this.nextCatchUp) {
      this.nextCatchUp = now + CATCH_UP_INTERVAL;
      for (const hub of this.hubs.values()) hub.catchUp().catch((err: unknown) => this.reportError(err, `catching up on "${hub.channel}"`));
    }
    if (now >= this.nextPresence) {
      this.nextPresence = now + l.presenceTtl / 3;
      this.presenceKeeper.refresh(this.sessions.values());
      this.presenceKeeper.heal(this.hubs.values());
    }
  }
}

const handlerErrors = diagnostics_channel.channel(DiagnosticsChannel.HandlerError);

/** Without an onError option, failures go where the core's do: the fullduplex:handler:error channel (the library never prints). */
function reportOnDiagnostics(error: unknown, context: string): void {
  if (handlerErrors.hasSubscribers) handlerErrors.publish({ connection: null, error, where: `channels: ${context}` });
}
