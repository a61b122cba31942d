/**
 * Dialing: the client's opening handshake request over `node:http` or
 * `node:https` (RFC 6455 §4.1; WHATWG WebSockets § 2.2 "establish a
 * WebSocket connection"), its timeout, and handing over the upgraded socket.
 * The request's headers and the check of the response come from the core
 * (protocol/negotiate.ts).
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { clientRequestHeaders } from '../protocol/negotiate.js';
import { MAX_TIMER_DELAY } from '../transport/link.js';
import type { ResolvedOptions } from './options.js';

/** Who learns how the dial ended: exactly one of these is called, once. */
export interface DialTarget {
  /** The server answered 101 and Node handed over the socket (the response is not checked yet). */
  dialUpgraded(res: IncomingMessage, socket: Socket, head: Buffer): void;
  /** The server answered without upgrading. */
  dialResponded(res: IncomingMessage): void;
  /** DNS, TCP (ECONNREFUSED), TLS, a reset before the response, or the timeout. */
  dialFailed(error: Error): void;
}

const kTarget = Symbol('fullduplex.dial');
type TaggedRequest = ClientRequest & { [kTarget]?: Dial };

/** One handshake request in flight. */
export class Dial {
  private readonly target: DialTarget;
  private req: TaggedRequest | null;
  private timer: NodeJS.Timeout | null = null;

  constructor(url: URL, key: string, protocols: readonly string[], options: ResolvedOptions, target: DialTarget) {
    this.target = target;
    const secure = url.protocol === 'wss:';
    const requestOptions: https.RequestOptions = {
      ...(secure ? options.tls : undefined),
      protocol: secure ? 'https:' : 'http:',
      // URL keeps IPv6 literals bracketed; the socket layer wants them bare.
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      // RFC 6455 §3: the resource name is the path and the query.
      path: url.pathname + url.search,
      method: 'GET',
      headers: clientRequestHeaders({ key, protocols, deflate: options.perMessageDeflate, headers: options.headers, origin: options.origin }),
      // A dedicated connection: an upgraded socket never returns to a pool.
      agent: options.agent ?? false,
    };
    const req: TaggedRequest = secure ? https.request(requestOptions) : http.request(requestOptions);
    req[kTarget] = this;
    req.on('upgrade', onRequestUpgrade);
    req.on('response', onRequestResponse);
    req.on('error', onRequestError);
    this.req = req;
    if (options.handshakeTimeout <= MAX_TIMER_DELAY) {
      // Unreferenced: the pending request itself keeps the process alive.
      this.timer = setTimeout(onTimeout, options.handshakeTimeout, this, options.handshakeTimeout);
      this.timer.unref();
    }
    req.end();
  }

  /** Stops the dial: nothing more is reported; `destroy` also drops the request. */
  settle(destroy: boolean): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const req = this.req;
    if (req === null) return;
    // The request keeps its error listener: events after this are ignored, not thrown.
    req[kTarget] = undefined;
    this.req = null;
    if (destroy) req.destroy();
  }

  /** @internal */
  upgraded(res: IncomingMessage, socket: Socket, head: Buffer): void {
    this.settle(false);
    this.target.dialUpgraded(res, socket, head);
  }

  /** @internal */
  responded(res: IncomingMessage): void {
    this.settle(false);
    this.target.dialResponded(res);
  }

  /** @internal */
  failed(error: Error): void {
    this.settle(true);
    this.target.dialFailed(error);
  }
}

// Shared listeners: `this` is the request, which carries its Dial.

function onRequestUpgrade(this: TaggedRequest, res: IncomingMessage, socket: Socket, head: Buffer): void {
  const d = this[kTarget];
  if (d === undefined) socket.destroy();
  else d.upgraded(res, socket, head);
}

function onRequestResponse(this: TaggedRequest, res: IncomingMessage): void {
  const d = this[kTarget];
  if (d === undefined) res.resume();
  else d.responded(res);
}

function onRequestError(this: TaggedRequest, error: Error): void {
  this[kTarget]?.failed(error);
}

function onTimeout(d: Dial, ms: number): void {
  d.failed(new Error(`opening handshake timed out after ${ms} ms`));
}
