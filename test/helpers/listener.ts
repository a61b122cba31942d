/**
 * Scaffolding for the tests of `listen()`'s own listener: a server started
 * with `listen(port, host, onRequest)`, a bounded `close()`, and a check that
 * a test file leaves no TCP socket behind.
 */
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import type { TestContext } from 'node:test';
import { WebSocketServer, type ServerHandler, type WebSocketServerOptions } from '../../src/index.js';
import { LOOPBACK, RawPeer, until, withTimeout } from './raw-client.js';
import { EventLog, echo, scopeFor, type Scope } from './server-harness.js';

export interface Listening<T> {
  s: Scope;
  wss: WebSocketServer<T>;
  port: number;
  log: EventLog<T>;
}

/** A WebSocketServer listening on loopback with its own listener (echoing unless `inner` says otherwise), closed after the test. */
export async function listenOwned<T = unknown>(
  t: TestContext,
  options: WebSocketServerOptions<T> = {},
  onRequest?: RequestListener,
  inner: ServerHandler<T> = echo<T>(),
): Promise<Listening<T>> {
  const s = scopeFor(t);
  const log = new EventLog<T>(inner);
  const wss = s.server(new WebSocketServer<T>({ keepalive: false, ...options, handler: log.handler }));
  const { port } = await wss.listen(0, LOOPBACK, onRequest);
  return { s, wss, port, log };
}

/** Closes the server and asserts it finished within `ms`: the listening socket and every accepted connection are gone. */
export async function closedWithin(wss: WebSocketServer<unknown>, ms: number): Promise<void> {
  await withTimeout(wss.close(), ms, 'WebSocketServer.close() to resolve');
}

/** Connects a raw peer with Nagle off (so small writes leave as separate segments), owned by the scope. */
export async function connectNoDelay(s: Scope, port: number): Promise<RawPeer> {
  const peer = s.peer(await RawPeer.connect(port));
  peer.socket.setNoDelay(true);
  return peer;
}

/** Asserts the server closed the connection: its FIN (or reset) arrived and the socket is closed. */
export async function assertClosedByServer(peer: RawPeer, ms = 3_000): Promise<void> {
  await peer.waitClosed(ms);
  assert.ok(peer.ended || peer.error !== null, 'the connection closed without the server ending it');
}

const tcpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;

/**
 * Records the TCP handles open now; the returned check waits until the count
 * is back there (every server and socket a file opened has been closed).
 */
export function tcpBaseline(): () => Promise<void> {
  const before = tcpHandles();
  return () => until(`TCP handles back to ${before} (now ${tcpHandles()})`, () => tcpHandles() <= before, 5_000);
}
