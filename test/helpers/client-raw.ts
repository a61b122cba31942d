/**
 * A WebSocket client connected to a hand-driven raw TCP server (see
 * client-peer.ts), and the WHATWG outcome of a failed connection, shared by
 * the client's loopback tests (client.test.ts and the hostile-server probes).
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { WebSocket, type WebSocketOptions } from '../../src/index.js';
import type { DecodedFrame } from './frames.js';
import { ClientLog, RawPeer, RawServer, Scope, WAIT_MS, withTimeout, type AnswerOptions, type HandshakeRequest } from './client-peer.js';

/** Opcodes (RFC 6455 §5.2). */
export const OP = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** A Scope disposed after the test. */
export function scope(t: TestContext): Scope {
  const s = new Scope();
  t.after(() => s.dispose());
  return s;
}

export interface Dialed {
  s: Scope;
  server: RawServer;
  peer: RawPeer;
  ws: WebSocket;
  log: ClientLog;
}

export type Opened = Dialed;

/** A client whose raw server has accepted the TCP connection and nothing more. */
export async function dialRaw(t: TestContext, options: WebSocketOptions = {}, protocols?: string[], path = '/chat?room=1'): Promise<Dialed> {
  const s = scope(t);
  const server = await s.rawServer();
  const ws = s.client(new WebSocket(server.url(path), protocols, { closeTimeout: 1_000, ...options }));
  const log = new ClientLog(ws);
  const peer = await server.next();
  return { s, server, peer, ws, log };
}

/** A client whose request the raw server read and answered with `answer`; the open event (if any) not awaited. */
export async function connectRaw(t: TestContext, answer: AnswerOptions = {}, options: WebSocketOptions = {}, protocols?: string[]): Promise<Opened> {
  const o = await dialRaw(t, options, protocols);
  await o.peer.handshake(answer);
  return o;
}

/** A client whose request the raw server read and answered with exactly the bytes `answer` builds. */
export async function answerRaw(
  t: TestContext,
  answer: (req: HandshakeRequest) => Buffer | string,
  options: WebSocketOptions = {},
  protocols?: string[],
): Promise<Opened & { req: HandshakeRequest }> {
  const o = await dialRaw(t, options, protocols);
  const req = await o.peer.readRequest();
  o.peer.write(answer(req));
  return { ...o, req };
}

/** A client with a completed handshake (open event received). */
export async function openRaw(t: TestContext, options: WebSocketOptions = {}): Promise<Opened> {
  const o = await connectRaw(t, {}, options);
  await o.log.first('open');
  return o;
}

/**
 * WHATWG WebSockets § Feedback from the protocol, for a connection the user
 * agent was required to fail: the ready state is CLOSED, `error` fires, then
 * `close` with wasClean false and code 1006 (RFC 6455 §7.1.5: no close frame
 * was received, or, once failing, none was processed: §7.1.7).
 */
export async function assertFailed(log: ClientLog, messagePattern?: RegExp, ms?: number): Promise<void> {
  const closed = await log.closed(ms);
  const types = log.types();
  assert.deepEqual(types.slice(-2), ['error', 'close'], `events: ${types.join(', ')}`);
  assert.equal(types.filter((x) => x === 'error').length, 1, `one error event: ${types.join(', ')}`);
  assert.equal(closed.code, 1006);
  assert.equal(closed.wasClean, false);
  assert.equal(closed.readyState, WebSocket.CLOSED);
  const error = log.all('error')[0];
  assert.ok(error !== undefined);
  assert.equal(error.readyState, WebSocket.CLOSED, 'the ready state is CLOSED before error fires');
  if (messagePattern !== undefined) {
    assert.match(error.message, messagePattern);
    assert.ok(error.error instanceof Error);
  }
}

/** As assertFailed, for a connection that must never open: exactly error, then close (an open fails at once). */
export async function assertNeverOpened(log: ClientLog, messagePattern?: RegExp, ms = WAIT_MS): Promise<void> {
  const settled = new Promise<void>((resolve) => {
    const check = (): void => {
      if (log.events.some((e) => e.type === 'open' || e.type === 'close')) resolve();
    };
    log.ws.addEventListener('open', check);
    log.ws.addEventListener('close', check);
    check();
  });
  await withTimeout(settled, ms, `open or close (so far: ${log.types().join(', ') || 'none'})`);
  assert.ok(log.all('open').length === 0, `the client opened the connection (events: ${log.types().join(', ')})`);
  await assertFailed(log, messagePattern, ms);
  assert.deepEqual(log.types(), ['error', 'close']);
}

/**
 * RFC 6455 §7.1.7 once established: after `bytes` from the server the
 * client sends a masked close frame with one of `codes`, stops processing
 * what the server sends, and, once the server answers and closes TCP,
 * fires `error` then `close` (1006, not clean). Returns the frames the
 * client sent, its close frame last.
 */
export async function assertFailsWith(o: Opened, bytes: Buffer, codes: readonly number[]): Promise<DecodedFrame[]> {
  o.peer.write(bytes);
  const close = await o.peer.readUntil(OP.CLOSE);
  const frame = close[close.length - 1];
  assert.ok(frame !== undefined);
  assert.equal(frame.masked, true);
  const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined;
  assert.ok(code !== undefined && codes.includes(code), `close code ${String(code)}, expected one of ${codes.join(', ')}`);
  assert.notEqual(o.ws.readyState, WebSocket.OPEN);
  // The server answers and closes TCP, as RFC 6455 §7.1.1 asks; the client must not process that close frame.
  o.peer.write(Buffer.from([0x88, 0x02, 0x03, 0xe8]));
  o.peer.end();
  await assertFailed(o.log);
  return close;
}
