/**
 * The HTTP/1.1 side of a server: routing `upgrade` events of an HTTP server
 * to the WebSocketServers attached to it, the standalone HTTP server of
 * `listen()`, and refusing a handshake with an HTTP status.
 */
import { type IncomingMessage, type RequestListener, type Server as HttpServer, ServerResponse, createServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handshakeRefused } from '../diagnostics.js';
import { buildRefusal, checkUpgradeRequest, isWebSocketRequest } from '../protocol/handshake.js';
import { contentError } from '../protocol/http1.js';

export type AnyHttpServer = HttpServer | HttpsServer;

/** What the router needs of a WebSocketServer. */
export interface UpgradeTarget {
  matches(req: IncomingMessage): boolean;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/**
 * One upgrade listener per HTTP server, routing by path to the
 * WebSocketServers attached to it. The registry and the listener are kept
 * once per process (under a global symbol), not once per copy of this
 * module: fullduplex/channels carries its own copy of the server, and a
 * ChannelServer and a WebSocketServer attached to one HTTP server must share
 * one router, or both would answer the same handshake.
 */
interface RouterRegistry {
  readonly routers: WeakMap<AnyHttpServer, Set<UpgradeTarget>>;
  readonly listener: (this: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

const kRegistry = Symbol.for('fullduplex.upgradeRouters.v1');
const registry: RouterRegistry = ((globalThis as { [kRegistry]?: RouterRegistry })[kRegistry] ??= {
  routers: new WeakMap(),
  listener: routeUpgrade,
});

export function attachRouter(server: AnyHttpServer, target: UpgradeTarget): void {
  let set = registry.routers.get(server);
  if (set === undefined) {
    set = new Set();
    registry.routers.set(server, set);
    server.on('upgrade', registry.listener);
  }
  set.add(target);
}

export function detachRouter(server: AnyHttpServer, target: UpgradeTarget): void {
  const set = registry.routers.get(server);
  if (set === undefined) return;
  set.delete(target);
  if (set.size === 0) {
    registry.routers.delete(server);
    server.off('upgrade', registry.listener);
  }
}

function routeUpgrade(this: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  // A handshake pipelined behind a plain request on a kept-alive connection:
  // Node emits 'upgrade' while that request's response may still be under
  // way. Responses go in request order (RFC 9112 §9.3.2), so the 101 waits
  // for the earlier response to finish; one that never finishes (its
  // connection closed) takes the handshake with it.
  const earlier = responseOn(socket);
  if (earlier !== null && !earlier.writableFinished) {
    socket.pause();
    earlier.once('finish', () => {
      if (!socket.destroyed) routeUpgrade.call(this, req, socket, head);
    });
    return;
  }
  if (!isWebSocketRequest(req.headers)) {
    // Another protocol's upgrade (h2c, as curl --http2 offers), which a
    // server may ignore (RFC 9110 §7.8): a plain request, unless the
    // application listens for upgrades itself.
    if (this.listenerCount('upgrade') <= 1) servePlain(this, req, socket);
    return;
  }
  const set = registry.routers.get(this);
  if (set !== undefined) {
    for (const wss of set) {
      if (wss.matches(req)) {
        wss.handleUpgrade(req, socket, head);
        return;
      }
    }
  }
  // No WebSocketServer here wants this path. If the application has its own
  // upgrade listeners, the request is theirs; otherwise answer it.
  if (this.listenerCount('upgrade') <= 1) refuse(socket, 404, 'no WebSocket endpoint at this path', undefined, req);
}

/**
 * Serves a request Node handed over as an upgrade to the server's request
 * listeners, as if it had none: one response, then the connection closes
 * (Node's HTTP machinery has let go of it). Node parsed the head only, so a
 * request that announces content is refused.
 */
function servePlain(server: HttpServer, req: IncomingMessage, socket: Duplex): void {
  socket.on('error', ignoreError);
  const content = contentError(req.headers);
  if (content !== null) return refuse(socket, content.status, content.reason, undefined, req);
  req.complete = true;
  req.push(null);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  server.emit('request', req, res);
}

export interface ListenLimits {
  maxHeaderSize: number;
  handshakeTimeout: number;
}

/**
 * The HTTP server of `listen()`: handshake limits applied by Node's parser
 * (431 for a head over maxHeaderSize, 408 for a slow one), plain requests to
 * `onRequest` or answered 426.
 */
export function createListenServer(limits: ListenLimits, onRequest: RequestListener | undefined): HttpServer {
  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderSize,
      // How often Node checks headersTimeout (its default is 30 s).
      connectionsCheckingInterval: Math.min(1000, limits.handshakeTimeout),
    },
    (req, res) => {
      // Node hands over as upgrades only requests with both Upgrade and
      // Connection: upgrade; one carrying WebSocket headers without them is a
      // broken handshake, answered with the check's status (RFC 6455 §4.2.1: 400).
      if (isWebSocketRequest(req.headers)) {
        const checked = checkUpgradeRequest({ method: req.method ?? '', httpVersion: req.httpVersion, headers: req.headers });
        if (!checked.ok) {
          if (handshakeRefused.hasSubscribers) {
            handshakeRefused.publish({ status: checked.status, reason: checked.message, url: req.url, remoteAddress: req.socket.remoteAddress });
          }
          res.writeHead(checked.status, { ...checked.headers, 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
          res.end(checked.message);
          return;
        }
      }
      if (onRequest !== undefined) {
        onRequest(req, res);
        return;
      }
      const body = 'This is a WebSocket endpoint: connect with a WebSocket client.\n';
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13' });
      res.end(body);
    },
  );
  // A client that sends its request head too slowly is dropped (408).
  server.headersTimeout = limits.handshakeTimeout;
  server.requestTimeout = Math.max(limits.handshakeTimeout, 1000);
  server.keepAliveTimeout = 5_000;
  server.on('clientError', onClientError);
  // Node drops a CONNECT nobody listens for without a word: answer it (RFC 9110 §9.1).
  server.on('connect', (req: IncomingMessage, socket: Duplex) => refuse(socket, 501, 'CONNECT is not served here', undefined, req));
  return server;
}

/** Answers a handshake with an HTTP error and closes the connection. */
export function refuse(socket: Duplex, status: number, body: string, headers?: Record<string, string>, req?: IncomingMessage): void {
  socket.on('error', ignoreError);
  if (handshakeRefused.hasSubscribers) {
    handshakeRefused.publish({ status, reason: body, url: req?.url, remoteAddress: (socket as Socket).remoteAddress });
  }
  if (socket.writable) {
    let response: string;
    try {
      response = buildRefusal(status, body, headers);
    } catch {
      response = buildRefusal(500, 'internal error');
    }
    socket.end(response);
  }
  // Whatever the peer still sends is read and dropped, so its end is seen
  // and the connection closes as soon as it does (RFC 9112 §9.6: closing
  // with unread data could reset the connection before the peer reads the
  // answer); a paused socket would wait for the timer below.
  socket.resume();
  // Don't wait for a peer that never reads.
  setTimeout(destroyDuplex, 1000, socket).unref();
}

function destroyDuplex(socket: Duplex): void {
  socket.destroy();
}

export function ignoreError(): void {}

/** Sockets whose refusal waits for the response under way. */
const refusalsDue = new WeakSet<Duplex>();

function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (refusalsDue.has(socket)) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const inFlight = responseOn(socket);
  if (inFlight !== null && !inFlight.writableFinished) {
    if (inFlight.req.complete) {
      // Responses go in the order of the requests (RFC 9112 §9.3.2): the
      // request before the bad one is answered first, then the refusal (or
      // just the close, when that response closes the connection).
      refusalsDue.add(socket);
      socket.pause();
      inFlight.once('finish', () => refuseClientError(err, socket));
      return;
    }
    // The error is in the request being answered (its body, or its time
    // ran out): a status can go instead of its response, unless that began.
    if (inFlight.headersSent) {
      socket.destroy();
      return;
    }
  }
  refuseClientError(err, socket);
}

function refuseClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const code = err.code;
  if (code === 'HPE_HEADER_OVERFLOW') refuse(socket, 431, 'request header fields too large');
  else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') refuse(socket, 408, 'request timeout');
  else refuse(socket, 400, 'bad request');
}

/** The response Node's HTTP server is writing on `socket`, if any (its `_httpMessage`, kept until the response finishes). */
function responseOn(socket: Duplex): ServerResponse | null {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}
