/**
 * Dispatcher: runs one session's commands (PROTOCOL.md §2): limits first,
 * then the application's hooks, then the store and broker; every failure is
 * an `error` reply with a code, charged to the session's error budget, and a
 * session that exhausts it is closed (PROTOCOL.md §5). Nothing a client sends
 * can throw out of here.
 */
import { CloseCode, ErrorCode } from '../client-lib/codes.js';
import type { Broker } from '../pubsub/broker.js';
import { type Command, type CommandError, isCommandError } from './commands.js';
import { type Recovery, connectedFrame, errorFrame, historyFrame, presenceFrame, pubFrame, reply, storedPayload, subscribedFrame } from './frames.js';
import type { Hub } from './hub.js';
import type { ChannelAction, ChannelLimits, ChannelOptions, ChannelServerOptions } from './options.js';
import type { Presence } from './presence.js';
import type { ChannelRules } from './rules.js';
import { type Session, SessionState, Sub } from './session.js';
import type { ChannelStore, ReadResult } from './store.js';
import { channelTopic, encodePublication } from './wire.js';

export interface DispatchHost<T> {
  readonly limits: ChannelLimits;
  readonly rules: ChannelRules;
  readonly store: ChannelStore;
  readonly broker: Broker;
  readonly presenceKeeper: Presence;
  readonly hooks: Pick<ChannelServerOptions<T>, 'authenticate' | 'authorize'>;
  readonly closing: boolean;
  /** The hub of `channel`, made (and started) if there is none. */
  hub(channel: string, options: ChannelOptions): Hub;
  existingHub(channel: string): Hub | undefined;
  connected(session: Session<T>): void;
  reportError(error: unknown, context: string): void;
}

/** Thrown inside a command to answer it with an error code. */
class Refusal {
  constructor(
    readonly code: number,
    readonly message: string,
  ) {}
}

export class Dispatcher<T> {
  constructor(private readonly host: DispatchHost<T>) {}

  /** Runs a parsed command (or answers a parse failure). */
  handle(session: Session<T>, cmd: Command | CommandError): void {
    if (session.closed) return;
    if (isCommandError(cmd)) return this.fail(session, cmd.id, cmd.code, cmd.message);
    if (cmd.type === 'pong') return;
    if (cmd.type === 'connect') {
      void this.connect(session, cmd);
      return;
    }
    if (session.state !== SessionState.Connected) return this.fail(session, cmd.id, ErrorCode.Unauthorized, 'send connect first');
    if (cmd.type === 'ping') return session.send(reply(cmd.id, 'pong'));
    if (this.host.closing) return this.fail(session, cmd.id, ErrorCode.Unavailable, 'server is shutting down');
    if (session.pending.has(cmd.id)) return this.fail(session, cmd.id, ErrorCode.Conflict, 'a command with this id is in progress');
    // The publish rate is checked first (PROTOCOL.md §8: 429, and 4429 for a
    // flood): a publish over it must not count as in progress.
    if (cmd.type === 'publish') {
      const l = this.host.limits;
      if (!session.takePublish(l.publishBurst, l.publishRate, Date.now())) return this.fail(session, cmd.id, ErrorCode.RateLimited, 'publish rate exceeded');
    }
    if (session.pending.size >= this.host.limits.maxPending) return this.fail(session, cmd.id, ErrorCode.TooManyPending, 'too many commands in progress');
    session.pending.add(cmd.id);
    this.run(session, cmd).then(
      () => session.pending.delete(cmd.id),
      (err: unknown) => {
        session.pending.delete(cmd.id);
        if (err instanceof Refusal) return this.fail(session, cmd.id, err.code, err.message);
        this.host.reportError(err, `${cmd.type} from client ${session.id}`);
        this.fail(session, cmd.id, ErrorCode.Internal, 'internal error');
      },
    );
  }

  /** Answers a command with an error and charges the error budget (PROTOCOL.md §5). */
  fail(session: Session<T>, id: number | null, code: number, message: string): void {
    if (session.closed) return;
    session.send(errorFrame(id, code, message));
    if (!session.takeError(this.host.limits.maxErrors, Date.now())) {
      if (code === ErrorCode.RateLimited) session.disconnect(CloseCode.Flooding, 'too many rate-limited commands', false);
      else session.disconnect(CloseCode.TooManyErrors, 'too many protocol errors', false);
    }
  }

  private run(session: Session<T>, cmd: Exclude<Command, { type: 'connect' | 'ping' | 'pong' }>): Promise<void> {
    switch (cmd.type) {
      case 'subscribe':
        return this.subscribe(session, cmd.id, cmd.channel, cmd.recover);
      case 'unsubscribe':
        this.unsubscribe(session, cmd.channel);
        session.send(reply(cmd.id, 'unsubscribed', { channel: cmd.channel }));
        return Promise.resolve();
      case 'publish':
        return this.publish(session, cmd.id, cmd.channel, cmd.payload);
      case 'history':
        return this.history(session, cmd.id, cmd.channel, cmd.limit, cmd.since);
      case 'presence':
        return this.presenceList(session, cmd.id, cmd.channel);
    }
  }

  async connect(session: Session<T>, cmd: Extract<Command, { type: 'connect' }>): Promise<boolean> {
    if (session.state !== SessionState.New) {
      this.fail(session, cmd.id, ErrorCode.Conflict, 'already connected');
      return false;
    }
    session.state = SessionState.Authenticating;
    const request = session.request;
    session.request = null;
    const authenticate = this.host.hooks.authenticate;
    let identity;
    try {
      identity = authenticate === undefined || request === null ? { user: '' } : await authenticate(request, cmd.token);
    } catch (err) {
      this.host.reportError(err, 'authenticate');
      if (session.closed) return false;
      session.send(errorFrame(cmd.id, ErrorCode.Internal, 'internal error'));
      session.disconnect(CloseCode.Internal, 'internal error', true);
      return false;
    }
    if (session.closed) return false;
    if (identity === null || identity === false || typeof identity !== 'object' || typeof identity.user !== 'string') {
      session.send(errorFrame(cmd.id, ErrorCode.Unauthorized, 'authentication failed'));
      session.disconnect(CloseCode.Unauthorized, 'authentication failed', false);
      return false;
    }
    session.user = identity.user;
    session.info = identity.info;
    session.data = identity.data;
    session.state = SessionState.Connected;
    this.host.connected(session);
    session.send(connectedFrame(cmd.id, session.id, session.user, this.host.limits.ping, session.secret));
    return true;
  }

  private async can(session: Session<T>, action: ChannelAction, channel: string): Promise<boolean> {
    const authorize = this.host.hooks.authorize;
    if (authorize === undefined) return true;
    // Reads of a channel (history, presence) need the right to subscribe to it as well.
    if ((action === 'history' || action === 'presence') && !(await authorize(session, 'subscribe', channel))) return false;
    return (await authorize(session, action, channel)) === true;
  }

  private async subscribe(session: Session<T>, id: number, channel: string, recover: { offset: number; epoch: string } | null): Promise<void> {
    // A subscribe to this channel that was unsubscribed while in progress
    // (its hooks or store read still running) winds down first, answered
    // on its own; this one then starts afresh.
    const winding = session.channels.get(channel) === Sub.Cancelled ? session.subscribing?.get(channel) : undefined;
    if (winding !== undefined) {
      await winding.catch(() => undefined);
      if (session.closed) return;
    }
    if (session.channels.has(channel)) throw new Refusal(ErrorCode.Conflict, 'already subscribed');
    if (session.channels.size >= this.host.limits.maxChannels) throw new Refusal(ErrorCode.TooManyChannels, 'too many channels');
    session.channels.set(channel, Sub.Pending);
    const attempt = this.subscribeSteps(session, id, channel, recover);
    const attempts = (session.subscribing ??= new Map());
    attempts.set(channel, attempt);
    try {
      await attempt;
    } finally {
      if (attempts.get(channel) === attempt) attempts.delete(channel);
    }
  }

  /** The steps of a subscribe, once its channel is marked Pending. */
  private async subscribeSteps(session: Session<T>, id: number, channel: string, recover: { offset: number; epoch: string } | null): Promise<void> {
    let allowed: boolean;
    try {
      allowed = await this.can(session, 'subscribe', channel);
    } catch (err) {
      session.channels.delete(channel);
      throw err;
    }
    if (this.cancelled(session, id, channel)) return;
    if (!allowed) {
      session.channels.delete(channel);
      throw new Refusal(ErrorCode.Forbidden, 'not allowed to subscribe to this channel');
    }
    const options = this.host.rules.get(channel);
    const hub = this.host.hub(channel, options);
    hub.acquire();
    try {
      await hub.ready;
      if (this.cancelled(session, id, channel, hub)) return;
      // Nothing missed: the position is the hub's own. A position beyond it
      // (a hub that lags the store, or a forged one) is the store's to judge.
      if (recover === null || (recover.epoch === hub.epoch && recover.offset === hub.offset)) {
        const position = recover === null ? hub : { offset: recover.offset, epoch: hub.epoch };
        session.send(subscribedFrame(id, channel, position, recover === null ? null : { recovered: true, publications: [] }));
      } else if (options.history.size === 0) {
        session.send(subscribedFrame(id, channel, hub, { recovered: false, reason: 'no_history', publications: [] }));
      } else {
        hub.startBuffering(session);
        const r = await this.host.store.read(channel, recover, options.history.size, options.history);
        if (this.cancelled(session, id, channel, hub)) return;
        this.recovered(session, id, hub, recover, r);
      }
    } catch (err) {
      session.channels.delete(channel);
      hub.release(session);
      throw err;
    }
    hub.goLive(session);
    session.channels.set(channel, Sub.Live);
    if (options.presence) this.host.presenceKeeper.join(session, channel);
  }

  /**
   * Answers a recovering subscribe: the publications after `recover` up to
   * what the hub has delivered live (`hub.offset`) go into the reply or right
   * after it, from the store read and from what the hub held for this session
   * meanwhile; later ones reach it live (PROTOCOL.md §7).
   */
  private recovered(session: Session<T>, id: number, hub: Hub, recover: { offset: number; epoch: string }, r: ReadResult): void {
    const held = hub.takeBuffered(session);
    let recovery: Recovery;
    let last: number;
    if (!r.ok || r.top.epoch !== hub.epoch) {
      recovery = { recovered: false, reason: r.ok ? 'epoch' : r.reason, publications: [] };
      last = hub.offset;
    } else {
      const publications = r.publications.filter((p) => p.offset > recover.offset && p.offset <= hub.offset);
      recovery = { recovered: true, publications };
      last = Math.max(recover.offset, publications.at(-1)?.offset ?? 0);
    }
    session.send(subscribedFrame(id, hub.channel, { offset: last, epoch: hub.epoch }, recovery));
    for (const b of held) {
      if (b.offset === 0 || (recovery.recovered && b.offset > last && b.offset <= hub.offset)) session.send(b.frame);
    }
  }

  /**
   * Whether a subscribe in progress was cancelled (by unsubscribe, or the
   * session closed); if so, cleans up and answers it.
   */
  private cancelled(session: Session<T>, id: number, channel: string, hub?: Hub): boolean {
    if (!session.closed && session.channels.get(channel) === Sub.Pending) return false;
    if (session.channels.get(channel) === Sub.Cancelled) session.channels.delete(channel);
    hub?.release(session);
    this.fail(session, id, ErrorCode.Conflict, 'unsubscribed before the subscription completed');
    return true;
  }

  /** Ends a subscription (a command, or the session closing). */
  unsubscribe(session: Session<T>, channel: string): void {
    const state = session.channels.get(channel);
    if (state === Sub.Pending) {
      session.channels.set(channel, Sub.Cancelled);
      return;
    }
    if (state !== Sub.Live) return;
    session.channels.delete(channel);
    this.host.existingHub(channel)?.release(session);
    if (session.presence?.has(channel)) this.host.presenceKeeper.leave(session, channel);
  }

  private async publish(session: Session<T>, id: number, channel: string, payload: string): Promise<void> {
    const options = this.host.rules.get(channel);
    if (!options.publish) throw new Refusal(ErrorCode.Forbidden, 'clients may not publish to this channel');
    if (!(await this.can(session, 'publish', channel))) throw new Refusal(ErrorCode.Forbidden, 'not allowed to publish to this channel');
    const info = JSON.stringify({ client: session.id, user: session.user });
    const pos = await publishPayload(this.host, channel, storedPayload(payload, info), options).catch((err: unknown) => {
      if (!(err instanceof BroadcastError)) throw err;
      this.host.reportError(err.cause, `broadcast on "${channel}"`);
      throw new Refusal(ErrorCode.Unavailable, 'stored, but the broker could not carry it to other nodes now');
    });
    session.send(reply(id, 'published', { offset: pos.offset, epoch: pos.epoch }));
  }

  private async history(session: Session<T>, id: number, channel: string, limit: number | null, since: { offset: number; epoch: string } | null): Promise<void> {
    if (!(await this.can(session, 'history', channel))) throw new Refusal(ErrorCode.Forbidden, 'not allowed to read this channel');
    const options = this.host.rules.get(channel);
    if (options.history.size === 0) throw new Refusal(ErrorCode.NotAvailable, 'this channel keeps no history');
    const max = this.host.limits.maxHistoryRead;
    const r = await this.host.store.read(channel, since, Math.min(limit ?? max, max), options.history);
    if (!r.ok) throw new Refusal(ErrorCode.Unrecoverable, `position unrecoverable: ${r.reason}`);
    session.send(historyFrame(id, channel, r.top, r.publications));
  }

  private async presenceList(session: Session<T>, id: number, channel: string): Promise<void> {
    if (!(await this.can(session, 'presence', channel))) throw new Refusal(ErrorCode.Forbidden, 'not allowed to read this channel');
    if (!this.host.rules.get(channel).presence) throw new Refusal(ErrorCode.NotAvailable, 'this channel keeps no presence');
    const entries = await this.host.store.presenceList(channel);
    session.send(presenceFrame(id, channel, entries.values()));
  }
}

/** Stores a publication and hands it to the broker (every node's hub of the channel); resolves with its position. */
export async function publishPayload(
  host: Pick<DispatchHost<unknown>, 'store' | 'broker'>,
  channel: string,
  payload: string,
  options: ChannelOptions,
): Promise<{ offset: number; epoch: string }> {
  const pos = await host.store.append(channel, payload, options.history);
  const message = encodePublication(channel, pos.offset, pos.epoch, pubFrame(channel, pos.offset, pos.epoch, payload));
  await new Promise<void>((resolve, reject) => {
    host.broker.publish(channelTopic(channel), message, undefined, (err) => (err === null ? resolve() : reject(new BroadcastError(err))));
  });
  return pos;
}

/**
 * The broker failed to carry a stored publication to other nodes (Redis
 * down): this node's subscribers have it, the others will find it in the
 * store when they recover or fill the gap.
 */
export class BroadcastError extends Error {
  constructor(override readonly cause: Error) {
    super(`broadcast failed: ${cause.message}`);
  }
}
