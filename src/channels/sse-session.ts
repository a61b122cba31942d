/**
 * A session carried by the HTTP fallback (PROTOCOL.md §9): frames go down a
 * Server-Sent Events response, one event each; commands come up in POSTs
 * (on this node, or on another node and routed here through the broker).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { TopicSubscriber } from '../pubsub/broker.js';
import type { TopicMessage } from '../pubsub/message.js';
import type { ConnectRequest } from './options.js';
import { CloseCode } from '../client-lib/codes.js';
import { Session, SessionState } from './session.js';
import { decode } from './wire.js';

export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-store',
  // nginx buffers proxied responses unless told not to.
  'X-Accel-Buffering': 'no',
} as const;

/** HTTP status for a fallback connect that ends before its stream started. */
function statusOf(code: number): number {
  if (code === 4401) return 401;
  // Going away (the server shuts down): try again, elsewhere (RFC 9110 §15.6.4).
  if (code === 1001) return 503;
  if (code >= 4500 && code < 5000) return 503;
  return 400;
}

export class SseSession<T = unknown> extends Session<T> implements TopicSubscriber {
  readonly transport = 'sse' as const;
  override readonly secret = randomBytes(32).toString('base64url');
  /** sha256 of the secret: names the session's broker topic without revealing the secret. */
  readonly hash = createHash('sha256').update(this.secret).digest('base64url');
  topics: Set<string> | null = null;
  /** The Origin of the request that opened the session ("" if none): later POSTs must come from it. */
  readonly origin: string;
  /** Frames sent before the stream started (the `connected` reply, or the refusal). */
  private early: string[] | null = [];
  /** Set once the output passed `limits.maxBufferedBytes` (the disconnect is on its way). */
  private slow = false;

  constructor(
    request: ConnectRequest,
    now: number,
    readonly res: ServerResponse,
    private readonly onRouted: (session: SseSession<T>, origin: string, body: string) => void,
    readonly extraHeaders: Record<string, string>,
    private readonly limits: { readonly maxBufferedBytes: number; readonly closeTimeout: number },
  ) {
    super(request, now);
    this.origin = request.origin ?? '';
  }

  send(text: string): void {
    if (this.early !== null) {
      this.early.push(text);
      return;
    }
    const res = this.res;
    if (res.writableEnded) return;
    res.write(`data: ${text}\n\n`);
    // A consumer that does not keep up is closed as soon as its output
    // passes the limit (PROTOCOL.md §8: 4503), not at the next sweep: a
    // burst between sweeps would otherwise be buffered without bound.
    if (!this.slow && res.writableLength > this.limits.maxBufferedBytes) {
      this.slow = true;
      this.disconnect(CloseCode.SlowConsumer, 'slow consumer', true);
    }
  }

  /** Starts the event stream and flushes what was sent before. */
  start(): void {
    const early = this.early;
    if (early === null) return;
    this.early = null;
    this.res.writeHead(200, { ...SSE_HEADERS, ...this.extraHeaders });
    this.res.socket?.setNoDelay(true);
    for (const text of early) this.send(text);
  }

  get bufferedAmount(): number {
    return this.res.writableLength;
  }

  attachFanout(): boolean {
    return false;
  }

  detachFanout(): void {}

  protected end(code: number): void {
    this.state = SessionState.Closed;
    const early = this.early;
    if (early !== null) {
      // Refused before the stream started: an HTTP error with the error frame as its body.
      this.early = null;
      const body = early.find((f) => f.includes('"type":"error"')) ?? early[0] ?? '{}';
      this.res.writeHead(statusOf(code), { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...this.extraHeaders }).end(body);
      return;
    }
    const res = this.res;
    res.end();
    // A client that stops reading would hold the ended response (and its
    // connection) forever: it is cut after closeTimeout, as a WebSocket peer
    // that does not finish its closing handshake is.
    if (!res.writableFinished) {
      const timer = setTimeout(destroyResponse, this.limits.closeTimeout, res).unref();
      res.once('close', () => clearTimeout(timer));
    }
  }

  /** Commands POSTed to another node, routed here through the broker (TopicSubscriber). */
  deliver(message: TopicMessage): boolean {
    const d = decode(message);
    if (d === null || d.kind !== 'routed') return false;
    this.onRouted(this, d.origin, d.body);
    return true;
  }
}

function destroyResponse(res: ServerResponse): void {
  res.destroy();
}
