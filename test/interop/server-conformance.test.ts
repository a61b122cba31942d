/**
 * Server conformance, Autobahn-style: raw TCP clients on loopback play the
 * shapes of the Autobahn TestSuite fuzzingclient's cases 1.* to 10.* against
 * the echo endpoint of `fullduplex serve` (spawned once from the build: run
 * `npm run build` first; scripts/test.sh does), and a subset against a
 * `WebSocketServer` made in this process.
 *
 * Judgement is strict, as the fuzzingclient's is: every frame of the server
 * is checked (unmasked, no RSV bits, known opcodes, control frames whole and
 * short, valid close payloads, nothing after its close frame), the echoes
 * must come back exactly and in order, the close code must be the one RFC
 * 6455 calls for, and the server must close TCP first (§7.1.1): the client
 * sees the server's FIN without ever having sent its own. Invalid UTF-8 must
 * fail the connection fast (§8.1), before the rest of the message is sent.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from '../../src/index.js';
import { EMPTY, FrameJudge, OP, type Received, type Step, ascii, assertEvent, bin, chop, frameKit, msg, pongOf, show } from '../helpers/conformance.js';
import { closePayload, pattern } from '../helpers/frames.js';
import { LOOPBACK, acceptFor, delay, parseFrame, upgradeRequest, withTimeout } from '../helpers/raw-client.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** Bound on any single wait for the server. */
const WAIT_MS = 5_000;
/** How long "nothing more arrives" is watched for. */
const QUIET_MS = 100;

// ---------------------------------------------------------------------------
// Frames a client sends: always masked (RFC 6455 §5.1), with a fresh key.
// Builders and the judge: ../helpers/conformance.ts.

const { frame, text, binary, cont, ping, pong, close, fragments } = frameKit({ masked: true, maskKey: () => randomBytes(4) });

/** One TCP write of each byte, with a pause now and then so they arrive apart. */
function bytewise(buf: Buffer): Step[] {
  const steps: Step[] = [];
  for (let i = 0; i < buf.length; i++) {
    steps.push(buf.subarray(i, i + 1));
    if (i % 8 === 7) steps.push(1);
  }
  return steps;
}

// ---------------------------------------------------------------------------
// What the server sends, decoded and judged strictly

/** One client connection: handshake by hand, then frames judged as they arrive. */
class Peer {
  private readonly judge = new FrameJudge({ expectMasked: false, sender: 'server' });
  readonly violations = this.judge.violations;
  readonly events = this.judge.events;
  /** The server's FIN arrived. */
  serverFin = false;
  /** Our FIN was sent (we never send it before the server's, except to clean up). */
  clientFin = false;
  isClosed = false;
  socketError: Error | null = null;
  response: { status: number; headers: Map<string, string> } | null = null;

  private consumed = 0;
  private chunks: Buffer[] = [];
  private have = 0;
  /** Bytes needed before the next parse step can make progress. */
  private need = 1;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket, readonly key: string) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => {
      this.serverFin = true;
      this.wake();
    });
    socket.on('close', () => {
      this.isClosed = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
  }

  /** Connects and completes the opening handshake (RFC 6455 §4.1), checking the 101 (§4.2.2). */
  static async open(port: number, path = '/echo', headers: Record<string, string> = {}, first: Buffer = EMPTY): Promise<Peer> {
    const socket = net.connect({ port, host: LOOPBACK, allowHalfOpen: true });
    const key = randomBytes(16).toString('base64');
    const peer = new Peer(socket, key);
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', reject);
        }),
        WAIT_MS,
        'TCP connect',
      );
      // `first`: frames sent in the same TCP write as the request (they reach the server as the upgrade's head).
      const request = upgradeRequest({ path, headers: { Host: `${LOOPBACK}:${port}`, 'Sec-WebSocket-Key': key, ...headers } });
      await peer.write(Buffer.concat([Buffer.from(request, 'latin1'), first]));
      await peer.waitFor(() => peer.response !== null, 'the 101 response');
      const r = peer.response;
      assert.ok(r !== null);
      assert.equal(r.status, 101, 'handshake status');
      assert.equal(r.headers.get('upgrade')?.toLowerCase(), 'websocket', 'Upgrade header');
      assert.ok(/(^|,)\s*upgrade\s*(,|$)/i.test(r.headers.get('connection') ?? ''), 'Connection header');
      assert.equal(r.headers.get('sec-websocket-accept'), acceptFor(key), 'Sec-WebSocket-Accept');
      // No extension was offered, so none may be in use (RFC 6455 §9.1).
      assert.equal(r.headers.get('sec-websocket-extensions'), undefined, 'an extension the client did not offer');
      // Nor a subprotocol when none was offered (RFC 6455 §4.1: the client would fail the connection).
      if (headers['Sec-WebSocket-Protocol'] === undefined) assert.equal(r.headers.get('sec-websocket-protocol'), undefined, 'a subprotocol the client did not offer');
      return peer;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** One TCP write; resolves once the kernel took it (or the socket failed). */
  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) return resolve();
      this.socket.write(data, () => resolve());
    });
  }

  async play(steps: readonly Step[]): Promise<void> {
    for (const s of steps) {
      if (typeof s === 'number') await delay(s);
      else await this.write(s);
    }
  }

  /** The server's next event, waiting up to `ms`. */
  async next(what: string, ms = WAIT_MS): Promise<Received> {
    await this.waitFor(() => this.events.length > this.consumed, what, ms, true);
    const e = this.events[this.consumed++];
    assert.ok(e !== undefined);
    return e;
  }

  async expect(expected: readonly Received[], where = 'event'): Promise<void> {
    for (const [i, e] of expected.entries()) assertEvent(await this.next(show(e)), e, `${where} ${i + 1}`);
  }

  /** Asserts the server sends nothing more for `ms`. */
  async quiet(ms: number, why: string): Promise<void> {
    await delay(ms);
    assert.deepEqual(this.events.slice(this.consumed).map(show), [], `${why}: the server sent something`);
  }

  /** RFC 6455 §7.1.1: the server closes TCP first; the client has not sent its FIN. */
  async serverClosesFirst(): Promise<void> {
    await this.waitFor(() => this.serverFin || this.isClosed, 'the server to close TCP');
    assert.equal(this.clientFin, false, 'the client closed TCP first');
    assert.equal(this.serverFin, true, `the server dropped TCP without a FIN (${this.socketError?.message ?? 'reset'})`);
  }

  /** Ends our side and destroys the socket. */
  dispose(): void {
    if (!this.socket.destroyed) {
      this.clientFin = true;
      this.socket.destroy();
    }
  }

  async waitFor(cond: () => boolean, what: string, ms = WAIT_MS, failOnEnd = false): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (failOnEnd && (this.serverFin || this.isClosed)) {
        throw new Error(`the server closed TCP while the client waited for ${what} (got: ${this.log()})`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what} (got: ${this.log()})`);
      await withTimeout(new Promise<void>((resolve) => this.waiters.push(resolve)), left, what).catch(() => {});
    }
  }

  private log(): string {
    return this.events.map(show).join(', ') || 'nothing';
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** All unread bytes as one buffer (concatenated only once enough are there). */
  private flat(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? EMPTY;
  }

  private consume(n: number): void {
    const rest = this.flat().subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.have -= n;
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.have += chunk.length;
    while (this.have >= this.need) {
      const buf = this.flat();
      if (this.response === null) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) {
          this.need = this.have + 1;
          continue;
        }
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers = new Map<string, string>();
        for (const line of lines.slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
        }
        this.response = { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0), headers };
        this.consume(end + 4);
        this.need = 2;
        continue;
      }
      if (this.judge.closeSeen) {
        this.violations.push(`${this.have} bytes after the server's close frame`);
        this.consume(this.have);
        this.need = 1;
        break;
      }
      const b1 = buf[1] ?? 0;
      const len7 = b1 & 0x7f;
      const headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      if (buf.length < headerLength) {
        this.need = headerLength;
        continue;
      }
      const length = len7 === 126 ? buf.readUInt16BE(2) : len7 === 127 ? Number(buf.readBigUInt64BE(2)) : len7;
      if (buf.length < headerLength + length) {
        this.need = headerLength + length;
        continue;
      }
      const got = parseFrame(buf);
      assert.ok(got !== undefined);
      this.consume(got.size);
      this.need = 2;
      this.judge.frame(got.frame.fin, got.frame.rsv, got.frame.opcode, got.frame.masked, got.frame.payload);
    }
    this.wake();
  }
}

// ---------------------------------------------------------------------------
// How a case ends (RFC 6455 §7)

/**
 * The closing handshake started by the client: the server answers with a
 * close frame carrying `code` (null: none; 'empty-or-1000': either), sends
 * nothing after it, and closes TCP first.
 */
async function closedBy(peer: Peer, sent: Buffer, code: number | null | 'empty-or-1000'): Promise<void> {
  if (sent.length > 0) await peer.write(sent);
  const e = await peer.next('the close frame answering ours');
  assert.equal(e.type, 'close', `expected a close frame, got ${show(e)}`);
  if (e.type !== 'close') return;
  if (code === 'empty-or-1000') assert.ok(e.code === null || e.code === 1000, `expected an empty close or 1000, got ${show(e)}`);
  else assert.equal(e.code, code, `expected close(${code ?? 'no code'}), got ${show(e)}`);
  await peer.serverClosesFirst();
  await peer.quiet(10, 'after the close frame');
}

/**
 * The server fails the connection (§7.1.7) with `code`, after exactly the
 * events `before`; the client answers the close (as Autobahn's does) and the
 * server closes TCP first.
 */
async function serverFails(peer: Peer, code: number, before: readonly Received[] = []): Promise<void> {
  await peer.expect(before);
  const e = await peer.next(`close(${code})`);
  assert.ok(e.type === 'close' && e.code === code, `expected close(${code}), got ${show(e)}`);
  await peer.write(close(code));
  await peer.serverClosesFirst();
  await peer.quiet(10, 'after the close frame');
}

interface Case {
  id: string;
  title: string;
  run(peer: Peer): Promise<void>;
  /** Case time bound, beyond the default. */
  timeout?: number;
  /** Also run against the in-process WebSocketServer. */
  library?: boolean;
  path?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Frames sent in the same TCP write as the handshake request. */
  first?: Buffer;
}

/** The server echoes `expected` for `steps`, then closes normally. */
function echoes(id: string, title: string, steps: Step[], expected: Received[], extra: Partial<Case> = {}): Case {
  return {
    id,
    title,
    async run(peer) {
      await peer.play(steps);
      await peer.expect(expected);
      await closedBy(peer, close(1000), 1000);
    },
    ...extra,
  };
}

/** The server fails with `code` after echoing exactly `before`. */
function fails(id: string, title: string, steps: Step[], code: number, before: Received[] = [], extra: Partial<Case> = {}): Case {
  return {
    id,
    title,
    async run(peer) {
      await peer.play(steps);
      await serverFails(peer, code, before);
    },
    ...extra,
  };
}

/**
 * Fail fast (like Autobahn 6.4.1-6.4.4): `first` holds the invalid byte; the
 * close 1007 must arrive before `rest` is sent; then `rest` draws nothing.
 */
function failsFast(id: string, title: string, first: Step[], rest: Step[]): Case {
  return {
    id,
    title,
    async run(peer) {
      await peer.play(first);
      const e = await peer.next('close(1007) before the rest of the message is sent', 2_000);
      assert.ok(e.type === 'close' && e.code === 1007, `expected close(1007), got ${show(e)}`);
      await peer.play(rest);
      await peer.serverClosesFirst();
      await peer.quiet(QUIET_MS, 'after the rest of the message');
    },
  };
}

// ---------------------------------------------------------------------------
// The cases

const cases: Case[] = [];

// 1.x / 2.x / 9.1.6 / 10.1.1: framing, echo of every length encoding; ping/pong.
for (const n of [0, 125, 126, 127, 128, 65535, 65536]) {
  cases.push(echoes(`1.1 len ${n}`, `text message of ${n} bytes echoed`, [text(ascii(n))], [msg(ascii(n))], { library: n === 65536 }));
  cases.push(echoes(`1.2 len ${n}`, `binary message of ${n} bytes echoed`, [binary(pattern(n, n))], [bin(pattern(n, n))], { library: n === 126 }));
}
cases.push(echoes('1.1.8', 'a 65535-byte text message written in 997-byte pieces', chop(text(ascii(65535)), 997), [msg(ascii(65535))]));
cases.push(echoes('9.1.6', 'a 16 MiB text message echoed whole', [text(ascii(16 * 1024 * 1024))], [msg(ascii(16 * 1024 * 1024))], { timeout: 20_000, library: true }));
cases.push(echoes('10.1.1', 'a 65536-byte text message in one frame echoed whole', [text(ascii(65536))], [msg(ascii(65536))]));
cases.push(echoes('10.1.1 fragmented', 'a 65536-byte text message in 1300-byte fragments echoed whole', fragments(OP.text, ascii(65536), 1300), [msg(ascii(65536))]));

const pingBinary = pattern(125, 3);
cases.push(echoes('2.1', 'ping without payload → pong without payload', [ping()], [pongOf()]));
cases.push(echoes('2.2', 'ping with a small text payload → pong with it', [ping('Hello, world!')], [pongOf('Hello, world!')]));
cases.push(echoes('2.3', 'ping with a small binary payload → pong with it', [ping(Buffer.from([0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff]))], [pongOf(Buffer.from([0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff]))]));
cases.push(echoes('2.4', 'ping with a 125-byte binary payload → identical pong', [ping(pingBinary)], [pongOf(pingBinary)], { library: true }));
cases.push(fails('2.5', 'ping with a 126-byte payload → 1002', [ping(pattern(126, 4))], 1002, [], { library: true }));
cases.push(echoes('2.6', 'ping with 125 bytes, sent byte by byte → identical pong', bytewise(ping(pingBinary)), [pongOf(pingBinary)], { library: true }));
cases.push({
  id: '2.7',
  title: 'unsolicited pong without payload is ignored',
  async run(peer) {
    await peer.write(pong());
    await peer.quiet(QUIET_MS, 'an unsolicited pong');
    await closedBy(peer, close(1000), 1000);
  },
});
cases.push({
  id: '2.8',
  title: 'unsolicited pong with payload is ignored',
  async run(peer) {
    await peer.write(pong('unsolicited pong payload'));
    await peer.quiet(QUIET_MS, 'an unsolicited pong');
    await closedBy(peer, close(1000), 1000);
  },
});
cases.push(echoes('2.9', 'unsolicited pong, then ping → one pong for the ping only', [pong('unsolicited'), ping('solicited')], [pongOf('solicited')]));
const tenPings = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
cases.push(echoes('2.10', '10 pings in one write → 10 pongs in order', [Buffer.concat(tenPings.map((p) => ping(p)))], tenPings.map((p) => pongOf(p)), { library: true }));
cases.push(echoes('2.11', '10 pings written 5 ms apart → 10 pongs in order', tenPings.flatMap((p) => [ping(p), 5]), tenPings.map((p) => pongOf(p))));

// 3.x: reserved bits.
cases.push(fails('3.1', 'text with RSV1 → 1002', [text('Hello, world!', { rsv: 4 })], 1002, [], { library: true }));
cases.push(fails('3.2', 'text, then text with RSV2, then ping in one write → echo, 1002, no pong', [Buffer.concat([text('Hello, world!'), text('Hello, world!', { rsv: 2 }), ping()])], 1002, [msg('Hello, world!')], { library: true }));
cases.push(fails('3.3', 'text, then text with RSV3, then ping, written apart → echo, 1002, no pong', [text('Hello, world!'), 20, text('Hello, world!', { rsv: 1 }), 20, ping()], 1002, [msg('Hello, world!')]));
cases.push(fails('3.4', 'text, then text with RSV 6, then ping, byte by byte → echo, 1002', [...bytewise(text('Hello, world!')), ...bytewise(text('Hello, world!', { rsv: 6 })), ...bytewise(ping())], 1002, [msg('Hello, world!')]));
cases.push(fails('3.5', 'binary with RSV 5 → 1002', [binary(pattern(8), { rsv: 5 })], 1002));
cases.push(fails('3.6', 'ping with RSV 6 → 1002', [ping('Hello, world!', { rsv: 6 })], 1002));
cases.push(fails('3.7', 'close with RSV 7 → 1002', [frame(OP.close, closePayload(1000), { rsv: 7 })], 1002));

// 4.x: reserved opcodes.
for (const op of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
  const hex = `0x${op.toString(16)}`;
  cases.push(fails(`4 op ${hex}`, `frame with reserved opcode ${hex} → 1002`, [frame(op)], 1002, [], { library: op === 3 || op === 0xb }));
  cases.push(
    fails(
      `4 op ${hex} after text`,
      `text, reserved opcode ${hex} with payload, ping in one write → echo first, then 1002, no pong`,
      [Buffer.concat([text('Hello, world!'), frame(op, 'reserved payload'), ping('Hello, world!')])],
      1002,
      [msg('Hello, world!')],
      { library: op === 0xf },
    ),
  );
}

// 5.x: fragmentation.
cases.push(fails('5.1', 'ping in 2 fragments → 1002', [ping('fragment1', { fin: false }), cont('fragment2')], 1002, [], { library: true }));
cases.push(fails('5.2', 'pong in 2 fragments → 1002', [pong('fragment1', { fin: false }), cont('fragment2')], 1002));
cases.push(echoes('5.3', 'text in 2 fragments in one write → one message', [Buffer.concat([text('fragment1', { fin: false }), cont('fragment2')])], [msg('fragment1fragment2')], { library: true }));
cases.push(echoes('5.4', 'text in 2 fragments written apart → one message', [text('fragment1', { fin: false }), 50, cont('fragment2')], [msg('fragment1fragment2')]));
cases.push(echoes('5.5', 'text in 2 fragments, byte by byte → one message', bytewise(Buffer.concat([text('fragment1', { fin: false }), cont('fragment2')])), [msg('fragment1fragment2')]));
cases.push(echoes('5.6', 'text fragment, ping, fragment in one write → pong before the echo', [Buffer.concat([text('fragment1', { fin: false }), ping('pongme!'), cont('fragment2')])], [pongOf('pongme!'), msg('fragment1fragment2')], { library: true }));
cases.push(echoes('5.7', 'text fragment, ping, fragment written apart → pong before the echo', [text('fragment1', { fin: false }), 20, ping('pongme!'), 20, cont('fragment2')], [pongOf('pongme!'), msg('fragment1fragment2')]));
cases.push(echoes('5.8', 'text fragment, ping, fragment byte by byte → pong before the echo', bytewise(Buffer.concat([text('fragment1', { fin: false }), ping('pongme!'), cont('fragment2')])), [pongOf('pongme!'), msg('fragment1fragment2')]));
cases.push(fails('5.9', 'continuation (FIN) with no message started, then text → 1002, no echo', [Buffer.concat([cont('non-continuation payload'), text('Hello, world!')])], 1002, [], { library: true }));
cases.push(fails('5.10', 'continuation (FIN) with no message started, written apart → 1002', [cont('non-continuation payload'), 20, text('Hello, world!')], 1002));
cases.push(fails('5.11', 'continuation (FIN) with no message started, byte by byte → 1002', [...bytewise(cont('non-continuation payload')), ...bytewise(text('Hello, world!'))], 1002));
cases.push(fails('5.12', 'continuation (no FIN) with no message started → 1002', [Buffer.concat([cont('non-continuation payload', { fin: false }), text('Hello, world!')])], 1002));
cases.push(fails('5.15', 'a fragmented message, then a continuation after it ended → echo, 1002', [Buffer.concat([text('fragment1', { fin: false }), cont('fragment2'), cont('fragment3', { fin: false }), text('fragment4')])], 1002, [msg('fragment1fragment2')]));
cases.push(fails('5.16', 'continuation first, then a message, repeated → 1002, no echo', [Buffer.concat([cont('fragment1', { fin: false }), text('fragment2', { fin: false }), cont('fragment3')])], 1002));
cases.push(fails('5.18', 'text (no FIN), then text (FIN) while the message is in progress → 1002', [Buffer.concat([text('fragment1', { fin: false }), text('fragment2')])], 1002, [], { library: true }));
cases.push(fails('5.18 binary', 'binary (no FIN), then text while the message is in progress → 1002', [Buffer.concat([binary(pattern(4), { fin: false }), text('fragment2')])], 1002));
cases.push({
  id: '5.19',
  title: 'fragments written apart with pings between: each pong arrives before the next fragment is sent',
  library: true,
  async run(peer) {
    await peer.write(text('fragment1', { fin: false }));
    await peer.write(cont('fragment2', { fin: false }));
    await peer.write(ping('pongme 1!'));
    await peer.expect([pongOf('pongme 1!')], 'pong');
    await delay(50);
    await peer.write(cont('fragment3', { fin: false }));
    await peer.write(ping('pongme 2!'));
    await peer.expect([pongOf('pongme 2!')], 'pong');
    await peer.write(cont('fragment4', { fin: false }));
    await delay(50);
    await peer.write(cont('fragment5'));
    await peer.expect([msg('fragment1fragment2fragment3fragment4fragment5')], 'echo');
    await closedBy(peer, close(1000), 1000);
  },
});
{
  const parts = [pattern(100_000, 11), pattern(100_000, 12), pattern(100_000, 13)];
  const wire = Buffer.concat([binary(parts[0] ?? EMPTY, { fin: false }), ping('p1'), cont(parts[1] ?? EMPTY, { fin: false }), ping('p2'), cont(parts[2] ?? EMPTY)]);
  cases.push(echoes('5.19 big', '3 fragments of 100 KB with pings between, written in 1500-byte pieces → pongs, then the echo', chop(wire, 1500), [pongOf('p1'), pongOf('p2'), bin(Buffer.concat(parts))], { library: true }));
}
cases.push(echoes('5.20', 'binary in 5 fragments with empty ones → one message', [Buffer.concat([binary(EMPTY, { fin: false }), cont(pattern(100, 1), { fin: false }), cont(EMPTY, { fin: false }), cont(pattern(100, 2), { fin: false }), cont(EMPTY)])], [bin(Buffer.concat([pattern(100, 1), pattern(100, 2)]))]));
cases.push(echoes('5.21', 'text of 0 bytes in 3 empty fragments → one empty message', [Buffer.concat([text('', { fin: false }), cont('', { fin: false }), cont('')])], [msg('')]));

// 6.x: UTF-8.
const validTexts: [string, Buffer][] = [
  ['Hello-µ@ßöäüàá-UTF-8!!', Buffer.from('Hello-µ@ßöäüàá-UTF-8!!')],
  ['κόσμε', Buffer.from('κόσμε')],
  ['1-byte boundaries U+0000 U+007F', Buffer.from([0x00, 0x7f])],
  ['2-byte boundaries U+0080 U+07FF', Buffer.from([0xc2, 0x80, 0xdf, 0xbf])],
  ['3-byte boundaries U+0800 U+FFFF', Buffer.from([0xe0, 0xa0, 0x80, 0xef, 0xbf, 0xbf])],
  ['4-byte boundaries U+10000 U+10FFFF', Buffer.from([0xf0, 0x90, 0x80, 0x80, 0xf4, 0x8f, 0xbf, 0xbf])],
  ['around the surrogates U+D7FF U+E000 U+FFFD', Buffer.from([0xed, 0x9f, 0xbf, 0xee, 0x80, 0x80, 0xef, 0xbf, 0xbd])],
  ['noncharacters U+FFFE U+FFFF U+1FFFF', Buffer.from([0xef, 0xbf, 0xbe, 0xef, 0xbf, 0xbf, 0xf0, 0x9f, 0xbf, 0xbf])],
  ['emoji and CJK', Buffer.from('😀 漢字 𝄞 ✓')],
];
for (const [name, bytes] of validTexts) {
  cases.push(echoes(`6 valid ${name}`, `valid UTF-8 (${name}) in one frame echoed exactly`, [text(bytes)], [msg(bytes)], { library: name === 'κόσμε' }));
  cases.push(echoes(`6 valid ${name} per byte`, `valid UTF-8 (${name}), one byte per fragment, echoed exactly`, [Buffer.concat(fragments(OP.text, bytes, 1))], [msg(bytes)], { library: name === 'emoji and CJK' }));
  cases.push(echoes(`6 valid ${name} chopped`, `valid UTF-8 (${name}) in one frame written byte by byte`, bytewise(text(bytes)), [msg(bytes)]));
}
const invalidTexts: [string, Buffer][] = [
  ['κόσμε with a surrogate inside (6.3.1)', Buffer.concat([Buffer.from('κόσμε'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('edited')])],
  ['lone continuation 0x80', Buffer.from([0x80])],
  ['lone continuation 0xbf', Buffer.from([0x61, 0xbf])],
  ['overlong "/" in 2 bytes', Buffer.from([0xc0, 0xaf])],
  ['overlong U+007F in 2 bytes (0xc1)', Buffer.from([0xc1, 0xbf])],
  ['overlong "/" in 3 bytes', Buffer.from([0xe0, 0x80, 0xaf])],
  ['overlong "/" in 4 bytes', Buffer.from([0xf0, 0x80, 0x80, 0xaf])],
  ['surrogate U+D800', Buffer.from([0xed, 0xa0, 0x80])],
  ['surrogate U+DFFF', Buffer.from([0xed, 0xbf, 0xbf])],
  ['surrogate pair', Buffer.from([0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80])],
  ['above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
  ['lead byte 0xf5', Buffer.from([0xf5, 0x80, 0x80, 0x80])],
  ['5-byte form', Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])],
  ['6-byte form', Buffer.from([0xfc, 0x84, 0x80, 0x80, 0x80, 0x80])],
  ['0xfe', Buffer.from([0x61, 0xfe])],
  ['0xff', Buffer.from([0xff, 0x61])],
  ['2-byte sequence missing its last byte', Buffer.from([0x61, 0xc2])],
  ['3-byte sequence missing its last byte', Buffer.from([0x61, 0xe0, 0xa0])],
  ['4-byte sequence missing its last byte', Buffer.from([0x61, 0xf0, 0x90, 0x80])],
  ['lead byte followed by ASCII', Buffer.from([0xc2, 0x41])],
  ['3-byte lead interrupted', Buffer.from([0xe2, 0x82, 0x41])],
];
for (const [name, bytes] of invalidTexts) {
  cases.push(fails(`6 invalid ${name}`, `invalid UTF-8 (${name}) in one frame → 1007`, [text(bytes)], 1007, [], { library: name.startsWith('surrogate U+D800') }));
  cases.push(fails(`6 invalid ${name} chopped`, `invalid UTF-8 (${name}) in one frame written byte by byte → 1007`, bytewise(text(bytes)), 1007));
  cases.push(fails(`6 invalid ${name} per byte`, `invalid UTF-8 (${name}), one byte per fragment → 1007`, [Buffer.concat(fragments(OP.text, bytes, 1))], 1007, [], { library: name.startsWith('above') }));
}
cases.push(fails('6 invalid after valid', 'a valid text message, then an invalid one → echo, then 1007', [Buffer.concat([text('κόσμε'), text(Buffer.from([0xce, 0xba, 0xe1]))])], 1007, [msg('κόσμε')]));

// 6.4.x: fail fast, before the rest of the message is sent.
const kosme = Buffer.from('κόσμε');
const bad = Buffer.from([0xf4, 0x90, 0x80, 0x80]);
const edited = Buffer.from('edited');
cases.push(failsFast('6.4.1', 'invalid code point in the 2nd of 3 fragments: close before the 3rd is sent', [text(kosme, { fin: false }), cont(bad, { fin: false })], [cont(edited)]));
cases.push(
  failsFast(
    '6.4.2',
    'invalid code point across fragments 1 and 2 (F4 | 90): close before the 3rd is sent',
    [text(Buffer.concat([kosme, bad.subarray(0, 1)]), { fin: false }), cont(bad.subarray(1, 2), { fin: false })],
    [cont(Buffer.concat([bad.subarray(2), edited]))],
  ),
);
{
  const whole = text(Buffer.concat([kosme, bad, edited]));
  const header = whole.length - kosme.length - bad.length - edited.length;
  const at = (n: number): number => header + n;
  cases.push(
    failsFast(
      '6.4.3',
      'one frame sent in 3 chunks 100 ms apart, the 2nd holding the invalid code point',
      [whole.subarray(0, at(kosme.length)), 100, whole.subarray(at(kosme.length), at(kosme.length + bad.length))],
      [100, whole.subarray(at(kosme.length + bad.length))],
    ),
  );
  cases.push(
    failsFast(
      '6.4.4',
      'one frame sent in chunks, the invalid code point split (F4 | 90): close once 0x90 arrives',
      [whole.subarray(0, at(kosme.length + 1)), 100, whole.subarray(at(kosme.length + 1), at(kosme.length + 2))],
      [100, whole.subarray(at(kosme.length + 2))],
    ),
  );
  const big = Buffer.concat([ascii(64 * 1024), bad, ascii(1024 * 1024)]);
  const bigFrame = text(big);
  const cut = bigFrame.length - 1024 * 1024;
  cases.push(failsFast('6.4 big', 'a 1 MiB text frame, invalid after 64 KiB: close before the rest is sent', [bigFrame.subarray(0, cut)], [bigFrame.subarray(cut)]));
}

// 7.x: closing handshake.
cases.push(echoes('7.1.1', 'text echoed, then a normal close', [text('Hello World!')], [msg('Hello World!')], { library: true }));
cases.push({
  id: '7.1.2',
  title: 'close, then close again in one write → one close frame back',
  async run(peer) {
    await closedBy(peer, Buffer.concat([close(1000), close(1000)]), 1000);
  },
});
cases.push({
  id: '7.1.3',
  title: 'close, then ping → close back, no pong',
  library: true,
  async run(peer) {
    await closedBy(peer, Buffer.concat([close(1000), ping('Hello World!')]), 1000);
  },
});
cases.push({
  id: '7.1.4',
  title: 'close, then text → close back, no echo',
  async run(peer) {
    await closedBy(peer, Buffer.concat([close(1000), text('Hello World!')]), 1000);
  },
});
cases.push({
  id: '7.1.4 apart',
  title: 'close, then text and ping written after → close back, nothing else',
  async run(peer) {
    await peer.write(close(1000));
    await peer.write(text('Hello World!'));
    await peer.write(ping('Hello World!'));
    const e = await peer.next('the close frame');
    assert.ok(e.type === 'close' && e.code === 1000, `expected close(1000), got ${show(e)}`);
    await peer.serverClosesFirst();
    await peer.quiet(QUIET_MS, 'after the close');
  },
});
cases.push({
  id: '7.1.5',
  title: 'fragment 1, close, fragment 2 → close back, no echo',
  async run(peer) {
    await closedBy(peer, Buffer.concat([text('fragment1', { fin: false }), close(1000), cont('fragment2')]), 1000);
  },
});
cases.push({
  id: '7.1.6',
  title: 'a 256 KiB message, close and ping in one write → the echo, then the close, no pong',
  library: true,
  async run(peer) {
    const big = ascii(256 * 1024);
    await peer.write(Buffer.concat([text(big), close(1000), ping('Hello World!')]));
    await peer.expect([msg(big)], 'echo');
    const e = await peer.next('the close frame');
    assert.ok(e.type === 'close' && e.code === 1000, `expected close(1000), got ${show(e)}`);
    await peer.serverClosesFirst();
    await peer.quiet(QUIET_MS, 'after the close');
  },
});
cases.push({
  id: '7.3.1',
  title: 'empty close → empty close (or 1000) back',
  library: true,
  async run(peer) {
    await closedBy(peer, close(), 'empty-or-1000');
  },
});
cases.push(fails('7.3.2', 'close with a 1-byte payload → 1002', [frame(OP.close, Buffer.from([0x03]))], 1002, [], { library: true }));
cases.push({ id: '7.3.3', title: 'close 1000 without reason → 1000 back', run: (peer) => closedBy(peer, close(1000), 1000) });
cases.push({ id: '7.3.4', title: 'close 1000 with a reason → 1000 back', run: (peer) => closedBy(peer, close(1000, 'Hello World!'), 1000) });
cases.push({ id: '7.3.5', title: 'close 1000 with a 123-byte reason → 1000 back', run: (peer) => closedBy(peer, close(1000, ascii(123)), 1000) });
cases.push({
  id: '7.3.4 chopped',
  title: 'close 1000 with a multi-byte UTF-8 reason, written byte by byte → 1000 back',
  library: true,
  async run(peer) {
    await peer.play(bytewise(close(1000, 'κόσμε 😀 closing')));
    await closedBy(peer, EMPTY, 1000);
  },
});
cases.push(fails('7.5.1 chopped', 'close with an invalid UTF-8 reason, written byte by byte → 1007', bytewise(close(1000, Buffer.from([0x61, 0xed, 0xa0, 0x80]))), 1007));
cases.push(fails('7.3.6', 'close with a 124-byte reason (126-byte control frame) → 1002', [close(1000, ascii(124))], 1002));
cases.push(fails('7.5.1', 'close 1000 with an invalid UTF-8 reason → 1007', [close(1000, Buffer.concat([kosme, Buffer.from([0xed, 0xa0, 0x80]), edited]))], 1007, [], { library: true }));
for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
  cases.push({
    id: `7.7 ${code}`,
    title: `close with valid code ${code} → the same code back`,
    library: code === 1001 || code === 4999,
    run: (peer) => closedBy(peer, close(code, `code ${code}`), code),
  });
}
for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
  cases.push(fails(`7.9 ${code}`, `close with invalid code ${code} → 1002`, [close(code)], 1002, [], { library: code === 1005 || code === 5000 }));
}

// 9.x: limits and performance, lighter than Autobahn's.
{
  const four = ascii(4 * 1000 * 1000);
  for (const size of [64, 256, 4096]) {
    cases.push(
      echoes(`9.4 ${size}`, `a 4 MB text message in ${size}-byte fragments`, chop(Buffer.concat(fragments(OP.text, four, size)), 1 << 20), [msg(four)], {
        timeout: 20_000,
        library: size === 64,
      }),
    );
  }
  const mib = pattern(1024 * 1024, 9);
  cases.push(echoes('9.5', 'a 1 MiB binary frame written in 64-byte pieces', chop(binary(mib), 64), [bin(mib)], { timeout: 20_000 }));
  const small = Array.from({ length: 1000 }, (_, i) => Buffer.from(`message ${String(i).padStart(6, '0')}`.slice(0, 16)));
  cases.push(echoes('9.7', '1000 16-byte text messages pipelined → 1000 echoes in order', [Buffer.concat(small.map((s) => text(s)))], small.map((s) => msg(s)), { timeout: 10_000, library: true }));
  const blocks = Array.from({ length: 100 }, (_, i) => pattern(64 * 1024, 100 + i));
  cases.push(echoes('9.8', '100 64 KiB binary messages → 100 echoes in order', [Buffer.concat(blocks.map((b) => binary(b)))], blocks.map((b) => bin(b)), { timeout: 15_000 }));
}

// The opening handshake, as a conformance client performs it.
cases.push({
  id: 'handshake subprotocol',
  title: 'Sec-WebSocket-Protocol: superchat, chat → superchat',
  library: true,
  async run() {
    throw new Error('run by its own test');
  },
});
cases.push(echoes('handshake /', 'a client connecting to the bare "/" path gets an echo endpoint', [text('Hello, root!')], [msg('Hello, root!')], { path: '/', library: true }));
cases.push(
  echoes('handshake autobahn', 'the request headers a fuzzingclient sends ("Upgrade: WebSocket", Pragma, ...) on "/"', [text('Hello, fuzzer!')], [msg('Hello, fuzzer!')], {
    path: '/',
    library: true,
    headers: { Upgrade: 'WebSocket', 'User-Agent': 'AutobahnTestSuite/0.8.2-0.10.9', Pragma: 'no-cache', 'Cache-Control': 'no-cache' },
  }),
);
cases.push({
  id: 'handshake + frames',
  title: 'frames in the same TCP write as the handshake request are read after it',
  library: true,
  first: Buffer.concat([text('Hello, head!'), ping('in head'), binary(pattern(70_000, 5))]),
  async run(peer) {
    await peer.expect([msg('Hello, head!'), pongOf('in head'), bin(pattern(70_000, 5))]);
    await closedBy(peer, close(1000), 1000);
  },
});
cases.push({
  id: 'handshake + close',
  title: 'a close frame in the same TCP write as the handshake request → close back, server closes TCP',
  library: true,
  first: close(1001),
  run: (peer) => closedBy(peer, EMPTY, 1001),
});
cases.push(echoes('handshake query', 'a path with a query ("/echo?agent=x&case=1") gets the echo endpoint', [text('Hello, query!')], [msg('Hello, query!')], { path: '/echo?agent=x&case=1' }));

// ---------------------------------------------------------------------------
// Running

async function runCase(c: Case, port: number): Promise<void> {
  const peer = await Peer.open(port, c.path ?? '/echo', c.headers, c.first);
  try {
    await c.run(peer);
    assert.deepEqual(peer.violations, [], 'frames of the server that break RFC 6455');
  } finally {
    peer.dispose();
  }
}

async function subprotocolCase(port: number): Promise<void> {
  const peer = await Peer.open(port, '/echo', { 'Sec-WebSocket-Protocol': 'superchat, chat' });
  try {
    // RFC 6455 §4.2.2: one of the offered values, here the first one both know.
    assert.equal(peer.response?.headers.get('sec-websocket-protocol'), 'superchat');
    await peer.write(text('Hello, superchat!'));
    await peer.expect([msg('Hello, superchat!')]);
    await closedBy(peer, close(1000), 1000);
    assert.deepEqual(peer.violations, []);
  } finally {
    peer.dispose();
  }
}

function run(c: Case, port: () => number): Promise<void> {
  return c.id === 'handshake subprotocol' ? subprotocolCase(port()) : runCase(c, port());
}

let cli: ChildProcess | null = null;
let cliPort = 0;
let cliOutput = '';
let library: WebSocketServer | null = null;
let libraryPort = 0;

before(async () => {
  assert.ok(existsSync(CLI), `${CLI} is missing: run "npm run build" first`);
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  cli = child;
  child.stderr?.on('data', (d: Buffer) => (cliOutput += d.toString()));
  cliPort = await withTimeout(
    new Promise<number>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        cliOutput += d.toString();
        const m = /listening on (ws:\/\/\S+)/.exec(cliOutput);
        if (m?.[1] !== undefined) resolve(Number(new URL(m[1]).port));
      });
      child.once('exit', (code) => reject(new Error(`fullduplex serve exited with ${code}: ${cliOutput}`)));
    }),
    WAIT_MS,
    'fullduplex serve to print its URL',
  );
  library = new WebSocketServer({
    protocols: ['chat', 'superchat'],
    handler: {
      message(ws, data, isBinary) {
        ws.send(data, { binary: isBinary });
      },
    },
  });
  libraryPort = (await library.listen(0)).port;
});

after(async () => {
  const child = cli;
  if (child !== null && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await withTimeout(exited, WAIT_MS, 'fullduplex serve to exit').catch(() => {
      child.kill('SIGKILL');
    });
  }
  child?.stdout?.destroy();
  child?.stderr?.destroy();
  await library?.close(1000);
});

describe('server conformance (Autobahn-style fuzzing client)', () => {
  describe('fullduplex serve (the built CLI), ws://127.0.0.1:N/echo', { concurrency: 8 }, () => {
    for (const c of cases) it(`${c.id}: ${c.title}`, { timeout: c.timeout ?? 10_000 }, () => run(c, () => cliPort));
  });

  describe('WebSocketServer in this process (listen(0))', { concurrency: 8 }, () => {
    for (const c of cases.filter((x) => x.library === true)) {
      it(`${c.id}: ${c.title}`, { timeout: c.timeout ?? 10_000 }, () => run(c, () => libraryPort));
    }
  });
});
