/**
 * Scaffolding for the tests of `listen()`'s own listener: a server started
 * with `listen(port, host, onRequest)` (and a connection fresh or kept alive
 * after one plain request), a bounded `close()`, plain requests and frames
 * to send, a byte-at-a-time writer for slow clients, and checks that a test
 * file leaves no TCP socket behind and that nothing keeps the process alive.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { after, before, type TestContext } from 'node:test';
import { WebSocketServer, type ServerHandler, type WebSocketServerOptions } from '../../src/index.js';
import { clientFrame } from './frames.js';
import { LOOPBACK, RawPeer, delay, until, withTimeout } from './raw-client.js';
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

const TCP = ['TCPSocketWrap', 'TCPServerWrap'];
/** What keeps the process alive: TCP handles and timers that are not unref'd (only those are listed). */
const KEEPS_ALIVE = [...TCP, 'Timeout'];

const count = (kinds: readonly string[]): number => process.getActiveResourcesInfo().filter((r) => kinds.includes(r)).length;

/**
 * Records how many resources of `kinds` are active now; the returned check
 * waits (bounded) until the count is back there.
 */
function baseline(kinds: readonly string[], what: string): () => Promise<void> {
  const before = count(kinds);
  return () => until(`${what} back to ${before} (now ${count(kinds)})`, () => count(kinds) <= before, 5_000);
}

/** The check that every server and socket opened since has been closed. */
export const tcpBaseline = (): (() => Promise<void>) => baseline(TCP, 'TCP handles');

/** Registers file-level hooks checking that the file's tests leave no TCP handle behind. */
export function leaveNoTcpBehind(): void {
  let restored: () => Promise<void> = () => Promise.resolve();
  before(() => (restored = tcpBaseline()));
  after(() => restored());
}

/** The check that nothing opened since keeps the process alive: no socket, no ref'd timer. */
export const aliveBaseline = (): (() => Promise<void>) => baseline(KEEPS_ALIVE, 'handles keeping the process alive');

/** Writes `bytes` one byte every `everyMs` until all are sent or the server ended the connection; the number of bytes sent. */
export async function dribble(peer: RawPeer, bytes: Buffer | string, everyMs: number): Promise<number> {
  const data = Buffer.from(bytes);
  let sent = 0;
  while (sent < data.length && !peer.ended && !peer.closed && peer.error === null) {
    peer.socket.write(data.subarray(sent, sent + 1));
    sent++;
    await delay(everyMs);
  }
  return sent;
}

/** Everything the server sent until it closed the connection (bounded by `ms`), as latin1. */
export async function allUntilClosed(peer: RawPeer, ms = 5_000): Promise<string> {
  await assertClosedByServer(peer, ms);
  return peer.release().toString('latin1');
}

/** onRequest: answers every request with its method, URL and body, read in full. */
export function echoRequest(req: IncomingMessage, res: ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (chunk: Buffer) => parts.push(chunk));
  req.on('end', () => {
    const body = `${req.method} ${req.url} ${Buffer.concat(parts).toString('utf8')}`;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
}

/** A plain GET head for `path`, with `extra` raw field lines (CR LF terminated). */
export const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: ${LOOPBACK}\r\n${extra}\r\n`;

/** A masked text frame, as a client sends it. */
export const text = (payload: string): Buffer => clientFrame({ opcode: 0x1, payload });

/** Reads `expected.length` text frames and asserts their payloads, in order. */
export async function assertEchoes(peer: RawPeer, expected: string[]): Promise<void> {
  const got: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const f = await peer.readFrame();
    assert.equal(f.opcode, 0x1);
    got.push(f.payload.toString('utf8'));
  }
  assert.deepEqual(got, expected);
}

/** Where on a connection a request head goes: the first head (read by listen()'s own parser) or a later one (node:http's). */
export type Phase = 'first head' | 'second head';

/**
 * A server whose onRequest (echoRequest unless given) records the URLs it
 * served, and a connection in `phase`: fresh, or kept alive after one plain
 * request was answered 200. `before` is what was served by then.
 */
export async function connectionIn<T = unknown>(t: TestContext, phase: Phase, options: WebSocketServerOptions<T> = {}, onRequest: RequestListener = echoRequest) {
  const served: string[] = [];
  const ctx = await listenOwned<T>(t, options, (req, res) => {
    served.push(req.url ?? '');
    onRequest(req, res);
  });
  const peer = await connectNoDelay(ctx.s, ctx.port);
  if (phase === 'second head') {
    await peer.write(get('/first'));
    assert.equal((await peer.readResponse()).status, 200);
  }
  return { ...ctx, peer, served, before: [...served] };
}
