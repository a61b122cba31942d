/**
 * Client conformance, Autobahn-style: a raw TCP "fuzzing server" on loopback
 * answers the opening handshake by hand, then plays scripted cases (the
 * shapes of Autobahn TestSuite cases 1.* to 10.*) against an echoing client
 * and judges strictly what comes back: every frame of the client is checked
 * (masked, no RSV bits, known opcodes, control frames whole and short, valid
 * close payloads), the events must match exactly and in order, the close
 * code must be the one RFC 6455 calls for, and in a normal closing handshake
 * the client must leave the TCP close to the server (§7.1.1).
 *
 * Each case runs twice: against our `WebSocket` class in this process (an
 * echo script as a conformance run would write it), and against the built
 * CLI, `node dist/cli/main.js connect URL --echo`, spawned per case (run
 * `npm run build` first; scripts/test.sh does).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from '../../src/index.js';
import { EMPTY, FrameJudge, OP, type Received, type Step, ascii, assertEvent, bin, chop, frameKit, msg, pongOf, show } from '../helpers/conformance.js';

const LOOPBACK = '127.0.0.1';
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** Bound on any single wait for the client: generous, since a CLI client is a new process on a possibly loaded 2-core machine. */
const WAIT_MS = 20_000;
/** How long the server holds the TCP close after the closing handshake, watching for a client FIN. */
const HOLD_MS = 200;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// Frames the server sends (RFC 6455 §5.2; a server never masks, §5.1, unless a
// case asks: then with a fixed key). Builders and the judge: ../helpers/conformance.ts.

const { frame, text, binary, cont, ping, pong, close, fragments } = frameKit({ masked: false, maskKey: () => [0x11, 0x22, 0x33, 0x44] });

/** Deterministic bytes of any length (every value occurs). */
function pattern(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

// ---------------------------------------------------------------------------
// What the client sends, decoded and judged strictly

function expectClose(e: Received, code: number | null): void {
  assert.ok(e.type === 'close' && e.code === code, `expected close(${code ?? 'no code'}), got ${show(e)}`);
}

/** Bytes received, consumed without copying unless a frame spans socket chunks. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  peek(n: number): Buffer {
    const out = Buffer.alloc(Math.min(n, this.length));
    let at = 0;
    for (const c of this.chunks) {
      if (at === out.length) break;
      at += c.copy(out, at, 0, Math.min(c.length, out.length - at));
    }
    return out;
  }

  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      this.chunks[0] = first.subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.length -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}

/** The server side of one connection: reads and judges the client's frames, writes ours. */
class Peer {
  private readonly judge = new FrameJudge({ expectMasked: true, sender: 'client' });
  readonly violations = this.judge.violations;
  readonly events = this.judge.events;
  /** The client sent its FIN (half-closed its side of TCP). */
  clientFin = false;
  readonly closed: Promise<void>;
  private isClosed = false;
  private consumed = 0;
  private readonly queue = new ByteQueue();
  private waiters: (() => void)[] = [];

  /** The 101 response, held back to go out in one TCP write with the first frames. */
  private held: Buffer | null;

  constructor(readonly socket: net.Socket, head: Buffer, held: Buffer | null) {
    this.held = held;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('close', () => {
      this.isClosed = true;
      this.wake();
    });
    socket.on('end', () => {
      this.clientFin = true;
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    if (head.length > 0) this.receive(head);
  }

  /** One TCP write (with the held 101 response, the first time). */
  write(...bufs: Buffer[]): void {
    if (this.held !== null) {
      bufs.unshift(this.held);
      this.held = null;
    }
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
  }

  /** Sends the 101 response if it is still held. */
  private release(): void {
    if (this.held !== null) this.write();
  }

  /** Plays a script: each Buffer is one TCP write, each number a pause in milliseconds. */
  async play(steps: readonly Step[]): Promise<void> {
    for (const s of steps) {
      if (typeof s === 'number') await delay(s);
      else this.write(s);
    }
  }

  /** The client's next event, waiting up to `ms`. */
  next(what: string, ms = WAIT_MS): Promise<Received> {
    this.release();
    return withTimeout(
      new Promise<Received>((resolve, reject) => {
        const check = (): void => {
          const e = this.events[this.consumed];
          if (e !== undefined) {
            this.consumed++;
            resolve(e);
          } else if (this.isClosed || this.clientFin) {
            reject(new Error(`the client closed TCP while the server waited for ${what} (got: ${this.events.map(show).join(', ') || 'nothing'})`));
          } else {
            this.waiters.push(check);
          }
        };
        check();
      }),
      ms,
      `${what} (got so far: ${this.events.map(show).join(', ') || 'nothing'})`,
    );
  }

  /** Asserts the client sends nothing more for `ms`. */
  async quiet(ms: number, why: string): Promise<void> {
    this.release();
    await delay(ms);
    const extra = this.events.slice(this.consumed);
    assert.deepEqual(extra.map(show), [], `${why}: the client sent something`);
  }

  /** Resolves once TCP is closed, or fails after `ms`. */
  waitClosed(what: string, ms = WAIT_MS): Promise<void> {
    return withTimeout(this.closed, ms, what);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private receive(chunk: Buffer): void {
    this.queue.push(chunk);
    for (;;) {
      const q = this.queue;
      if (q.length < 2) break;
      const h = q.peek(14);
      const b0 = h[0]!;
      const b1 = h[1]!;
      const masked = (b1 & 0x80) !== 0;
      const len7 = b1 & 0x7f;
      const headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      if (h.length < headerLength) break;
      let length = len7;
      let p = 2;
      if (len7 === 126) {
        length = h.readUInt16BE(2);
        p = 4;
      } else if (len7 === 127) {
        const big = h.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
          this.violations.push('frame length over 2^53');
          this.socket.destroy();
          return;
        }
        length = Number(big);
        p = 10;
      }
      if (q.length < headerLength + length) break;
      const key = masked ? h.subarray(p, p + 4) : null;
      q.take(headerLength);
      const payload = length === 0 ? EMPTY : q.take(length);
      if (key !== null) {
        for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
      }
      this.judge.frame((b0 & 0x80) !== 0, (b0 >> 4) & 7, b0 & 0x0f, masked, payload);
    }
    this.wake();
  }
}

// ---------------------------------------------------------------------------
// The server: a handshake by hand, then the case that the URL names


/** What the client's side must see at the end (WHATWG close event; the CLI's exit status). */
type Outcome =
  /** The closing handshake completed: wasClean, with the server's code (1005 when it sent none). */
  | { kind: 'clean'; code: number; reason?: string }
  /** The client failed the connection (RFC 6455 §7.1.7): error, then close with wasClean false and 1006. */
  | { kind: 'failed' }
  /** TCP dropped without a closing handshake: wasClean false, 1006. */
  | { kind: 'abnormal' };

interface Case {
  id: string;
  title: string;
  run(peer: Peer): Promise<void>;
  outcome: Outcome;
  /** Run time bound, beyond the default. */
  timeout?: number;
}

interface Pending {
  resolve(peer: Peer): void;
  /** Write the 101 and the case's first frames in one TCP write (they arrive as the upgrade's `head`). */
  coalesce: boolean;
}

class FuzzingServer {
  private readonly server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  private readonly pending = new Map<string, Pending>();
  private readonly sockets = new Set<net.Socket>();
  readonly handshakeViolations: string[] = [];
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, LOOPBACK, () => resolve()));
    const a = this.server.address();
    assert.ok(a !== null && typeof a === 'object');
    this.port = a.port;
  }

  /** The Peer of the connection that asks for `/runCase?case=<n>`. */
  expect(n: string, coalesce: boolean): Promise<Peer> {
    return withTimeout(
      new Promise<Peer>((resolve) => this.pending.set(n, { resolve, coalesce })),
      WAIT_MS,
      `the client to connect for case ${n}`,
    ).finally(() => this.pending.delete(n));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let buf = EMPTY;
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16384) socket.destroy();
        return;
      }
      socket.off('data', onData);
      this.handshake(socket, buf.subarray(0, end).toString('latin1'), buf.subarray(end + 4));
    };
    socket.on('data', onData);
  }

  /** RFC 6455 §4.1 (what a client MUST send) and §4.2.2 (the server's 101). */
  private handshake(socket: net.Socket, head: string, rest: Buffer): void {
    const [requestLine = '', ...lines] = head.split('\r\n');
    const headers = new Map<string, string>();
    for (const line of lines) {
      const i = line.indexOf(':');
      if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    const m = /^GET (\S+) HTTP\/1\.1$/.exec(requestLine);
    const v = this.handshakeViolations;
    const key = headers.get('sec-websocket-key') ?? '';
    if (m === null) v.push(`request line: ${requestLine}`);
    if (!headers.has('host')) v.push('no Host');
    if (headers.get('upgrade')?.toLowerCase() !== 'websocket') v.push(`Upgrade: ${headers.get('upgrade')}`);
    if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get('connection') ?? '')) v.push(`Connection: ${headers.get('connection')}`);
    if (headers.get('sec-websocket-version') !== '13') v.push(`Sec-WebSocket-Version: ${headers.get('sec-websocket-version')}`);
    if (Buffer.from(key, 'base64').length !== 16 || Buffer.from(key, 'base64').toString('base64') !== key) v.push(`Sec-WebSocket-Key: ${key}`);
    // Autobahn's extension offers are irrelevant here: we accept none.
    const url = new URL(m?.[1] ?? '/', `http://${LOOPBACK}`);
    const n = url.pathname === '/runCase' ? url.searchParams.get('case') : null;
    const pending = n === null ? undefined : this.pending.get(n);
    if (pending === undefined || url.searchParams.get('agent') !== 'fullduplex') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    const response = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    if (!pending.coalesce) socket.write(response);
    pending.resolve(new Peer(socket, rest, pending.coalesce ? response : null));
  }
}

// ---------------------------------------------------------------------------
// How a case ends (RFC 6455 §7)

/**
 * The server starts the closing handshake; the client must answer with a close
 * frame carrying the same code (§5.5.1, and Autobahn's strict judgement), then
 * leave the TCP close to the server (§7.1.1).
 */
async function serverCloses(peer: Peer, code?: number, reason: Buffer | string = EMPTY): Promise<void> {
  peer.write(close(code, reason));
  const answer = await peer.next(`the close frame answering close(${code ?? 'no code'})`);
  assert.equal(answer.type, 'close', `expected the client's close frame, got ${show(answer)}`);
  if (code === undefined) {
    // §5.5.1: "typically echos the status code it received": with none, none (1000 is tolerated).
    assert.ok(answer.code === null || answer.code === 1000, `close without a code answered with ${show(answer)}`);
  } else {
    assert.equal(answer.code, code, `close(${code}) answered with ${show(answer)}`);
  }
  await serverClosesTcp(peer);
}

/** §7.1.1: after the closing handshake the server closes TCP first; the client waits for it. */
async function serverClosesTcp(peer: Peer): Promise<void> {
  await delay(HOLD_MS);
  assert.equal(peer.clientFin, false, 'the client closed TCP before the server did (RFC 6455 §7.1.1)');
  assert.equal(peer.socket.destroyed, false, 'the client reset TCP before the server closed it');
  peer.socket.end();
  await peer.waitClosed('the client to close TCP after the server');
}

/** The client must fail the connection with `code` (§7.1.7), after exactly `before`. */
async function clientFails(peer: Peer, code: number, before: readonly Received[] = []): Promise<void> {
  for (const [i, e] of before.entries()) assertEvent(await peer.next(show(e)), e, `event ${i + 1}`);
  const c = await peer.next(`the client's close(${code})`);
  expectClose(c, code);
  // The server completes the closing handshake and closes TCP; nothing more may come.
  peer.write(close(code));
  await delay(50);
  peer.socket.end();
  await peer.waitClosed('the client to close TCP');
}

async function expectEvents(peer: Peer, expected: readonly Received[]): Promise<void> {
  for (const [i, e] of expected.entries()) assertEvent(await peer.next(`${show(e)} (event ${i + 1})`, 15_000), e, `event ${i + 1}`);
}

/** Autobahn's usual shape: play, expect exactly these events, then a normal close. */
function echo(id: string, title: string, steps: Step[], expected: Received[], timeout?: number): Case {
  return {
    id,
    title,
    outcome: { kind: 'clean', code: 1000 },
    ...(timeout !== undefined ? { timeout } : {}),
    async run(peer) {
      await peer.play(steps);
      await expectEvents(peer, expected);
      await serverCloses(peer, 1000);
    },
  };
}

/** The client must fail with `code` after echoing exactly `before`. */
function fails(id: string, title: string, steps: Step[], code: number, before: Received[] = []): Case {
  return {
    id,
    title,
    outcome: { kind: 'failed' },
    async run(peer) {
      await peer.play(steps);
      await clientFails(peer, code, before);
    },
  };
}

// ---------------------------------------------------------------------------
// The cases

const cases: Case[] = [];
const add = (...cs: Case[]): void => void cases.push(...cs);

// 1.x: framing, text and binary, every length encoding (RFC 6455 §5.2).
const LENGTHS = [0, 125, 126, 127, 128, 65535, 65536];
for (const n of LENGTHS) add(echo(`1.1 text ${n}`, `text message of ${n} bytes is echoed`, [text(ascii(n))], [msg(ascii(n))]));
add(echo('1.1 text 65536 chopped', 'text of 65536 bytes written in 997-byte pieces', chop(text(ascii(65536)), 997), [msg(ascii(65536))]));
for (const n of LENGTHS) add(echo(`1.2 binary ${n}`, `binary message of ${n} bytes is echoed`, [binary(pattern(n))], [bin(pattern(n))]));
add(echo('1.2 binary 65536 chopped', 'binary of 65536 bytes written in 997-byte pieces', chop(binary(pattern(65536)), 997), [bin(pattern(65536))]));
add(echo('9.2.6 binary 16 MiB', 'binary message of 16 MiB is echoed', [binary(pattern(16 << 20))], [bin(pattern(16 << 20))], 30_000));

// 2.x: pings and pongs (§5.5.2, §5.5.3).
add(
  echo('2.1', 'ping without payload → pong without payload', [ping()], [pongOf()]),
  echo('2.2', 'ping with a text payload → the same payload', [ping('Hello, world!')], [pongOf('Hello, world!')]),
  echo('2.3', 'ping with a binary payload → the same payload', [ping(Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]))], [
    pongOf(Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff])),
  ]),
  echo('2.4', 'ping with 125 bytes → pong with the same 125 bytes', [ping(pattern(125))], [pongOf(pattern(125))]),
  fails('2.5', 'ping with 126 bytes → 1002', [ping(pattern(126))], 1002),
  echo('2.6', 'ping of 125 bytes written byte by byte', [...chop(ping(pattern(125, 3)), 1).flatMap((b) => [b, 1])], [pongOf(pattern(125, 3))]),
  echo('2.7', 'unsolicited pong without payload is ignored', [pong(), 100], []),
  echo('2.8', 'unsolicited pong with payload is ignored', [pong('unsolicited pong payload'), 100], []),
  echo('2.9', 'unsolicited pong, then ping → one pong, for the ping', [Buffer.concat([pong('unsolicited'), ping('solicited')])], [pongOf('solicited')]),
  echo(
    '2.10',
    '10 pings in one write → 10 pongs in order',
    [Buffer.concat(Array.from({ length: 10 }, (_, i) => ping(`payload-${i}`)))],
    Array.from({ length: 10 }, (_, i) => pongOf(`payload-${i}`)),
  ),
  echo(
    '2.11',
    '10 pings, 1 ms apart → 10 pongs in order',
    Array.from({ length: 10 }, (_, i) => [ping(`payload-${i}`), 1]).flat(),
    Array.from({ length: 10 }, (_, i) => pongOf(`payload-${i}`)),
  ),
);

// 3.x: reserved bits (§5.2: MUST fail without a negotiated extension).
add(
  fails('3.1', 'text with RSV1 → 1002', [text('Hello, world!', { rsv: 4 })], 1002),
  fails('3.2', 'valid text, then text with RSV2, then ping, in one write → echo, 1002, no pong', [
    Buffer.concat([text('Hello, world!'), text('Hello, world!', { rsv: 2 }), ping()]),
  ], 1002, [msg('Hello, world!')]),
  fails('3.3', 'valid text, then RSV3 text, then ping, written apart → echo, 1002, no pong', [
    text('Hello, world!'), 20, text('Hello, world!', { rsv: 1 }), 20, ping(),
  ], 1002, [msg('Hello, world!')]),
  fails('3.4', 'RSV 4 on text, written byte by byte after a valid text', [
    text('Hello, world!'), ...chop(Buffer.concat([text('Hello, world!', { rsv: 4 }), ping()]), 1).flatMap((b) => [b, 1]),
  ], 1002, [msg('Hello, world!')]),
  fails('3.5', 'binary with RSV 5 → 1002', [binary(pattern(8), { rsv: 5 })], 1002),
  fails('3.6', 'ping with RSV 6 → 1002, no pong', [ping('Hello, world!', { rsv: 6 })], 1002),
  fails('3.7', 'close with RSV 7 → 1002', [frame(OP.close, Buffer.from([0x03, 0xe8]), { rsv: 7 })], 1002),
);

// 4.x: reserved opcodes (§5.2: MUST fail).
for (const op of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
  const hex = op.toString(16);
  add(fails(`4 opcode ${hex}`, `frame with reserved opcode 0x${hex} → 1002`, [frame(op, op === 4 ? 'reserved payload' : EMPTY)], 1002));
}
add(
  fails('4.1.3', 'text, reserved opcode 5, ping in one write → echo, 1002, no pong', [
    Buffer.concat([text('Hello, world!'), frame(5), ping()]),
  ], 1002, [msg('Hello, world!')]),
  fails('4.2.3', 'text, reserved opcode 0xb, ping in one write → echo, 1002, no pong', [
    Buffer.concat([text('Hello, world!'), frame(0xb), ping()]),
  ], 1002, [msg('Hello, world!')]),
  fails('4 binary first', 'binary, then reserved opcode 0x3, in one write → echo, 1002', [
    Buffer.concat([binary(pattern(100)), frame(3)]),
  ], 1002, [bin(pattern(100))]),
  fails('4.2.4', 'text, reserved opcode 0xc written byte by byte, ping → echo, 1002', [
    text('Hello, world!'), ...chop(Buffer.concat([frame(0xc), ping()]), 1).flatMap((b) => [b, 1]),
  ], 1002, [msg('Hello, world!')]),
);

// Framing rules beyond Autobahn's list (§5.1, §5.2).
add(
  fails('5.1 masked', 'a masked frame from the server → 1002', [text('masked', { mask: true })], 1002),
  fails('5.2 length msb', 'a 64-bit length with its most significant bit set → 1002', [
    Buffer.from([0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1, 0xaa]),
  ], 1002),
);

// 5.x: fragmentation (§5.4).
const frag1 = 'fragment1';
const frag2 = 'fragment2';
add(
  fails('5.1', 'fragmented ping → 1002', [ping(frag1, { fin: false }), cont(frag2)], 1002),
  fails('5.2', 'fragmented pong → 1002', [pong(frag1, { fin: false }), cont(frag2)], 1002),
  echo('5.3', 'text in 2 fragments → one message', [Buffer.concat([text(frag1, { fin: false }), cont(frag2)])], [msg(frag1 + frag2)]),
  echo('5.4', 'text in 2 fragments written 50 ms apart', [text(frag1, { fin: false }), 50, cont(frag2)], [msg(frag1 + frag2)]),
  echo('5.5', 'text in 2 fragments written byte by byte', chop(Buffer.concat([text(frag1, { fin: false }), cont(frag2)]), 1).flatMap((b) => [b, 1]), [
    msg(frag1 + frag2),
  ]),
  echo('5.6', 'ping between 2 fragments (one write) → pong first, then the message', [
    Buffer.concat([text(frag1, { fin: false }), ping('pongme!'), cont(frag2)]),
  ], [pongOf('pongme!'), msg(frag1 + frag2)]),
  echo('5.8', 'ping between 2 fragments, written byte by byte', chop(Buffer.concat([text(frag1, { fin: false }), ping('pongme!'), cont(frag2)]), 1).flatMap((b) => [b, 1]), [
    pongOf('pongme!'),
    msg(frag1 + frag2),
  ]),
  fails('5.9', 'continuation (FIN) with nothing to continue → 1002', [cont('non-continuation payload'), text('Hello, world!')], 1002),
  fails('5.10', 'continuation (FIN) with nothing to continue, byte by byte', chop(Buffer.concat([cont('non-continuation payload'), text('Hello, world!')]), 1).flatMap((b) => [b, 1]), 1002),
  fails('5.12', 'continuation (no FIN) with nothing to continue → 1002', [cont('non-continuation payload', { fin: false }), text('Hello, world!')], 1002),
  fails('5.15', 'a whole fragmented message, then a stray continuation → echo, 1002', [
    Buffer.concat([text(frag1, { fin: false }), cont(frag2), cont('fragment3', { fin: false }), text('fragment4')]),
  ], 1002, [msg(frag1 + frag2)]),
  fails('5.17', 'a continuation before a message starts, then a message → 1002', [
    Buffer.concat([cont(frag1), text(frag2, { fin: false }), cont('fragment3')]),
  ], 1002),
  fails('5.18', 'text while a fragmented text is in progress → 1002', [Buffer.concat([text(frag1, { fin: false }), text(frag2)])], 1002),
  fails('5.18 binary', 'binary while a fragmented binary is in progress → 1002', [Buffer.concat([binary(pattern(4), { fin: false }), binary(pattern(4))])], 1002),
  echo('5 binary', 'binary in 3 fragments → one message', [Buffer.concat(fragments(OP.binary, pattern(300), 100))], [bin(pattern(300))]),
  echo('5 one-byte', 'text in fragments of 1 byte, with empty first and last fragments', [
    Buffer.concat([text('', { fin: false }), ...'Hello'.split('').map((c) => cont(c, { fin: false })), cont('')]),
  ], [msg('Hello')]),
  echo('5 empty', 'an empty message in 3 empty fragments', [Buffer.concat([binary(EMPTY, { fin: false }), cont('', { fin: false }), cont('')])], [bin(EMPTY)]),
  {
    id: '5.7/5.19',
    title: 'fragments written apart with pings between: each pong before the rest of the message is sent',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      const parts = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'];
      for (const [i, p] of parts.entries()) {
        const last = i === parts.length - 1;
        peer.write(i === 0 ? text(p, { fin: false }) : cont(p, { fin: last }));
        if (last) break;
        await delay(10);
        peer.write(ping(`pongme ${i}`));
        // Answered at once, although the message is unfinished (§5.4: control frames may be interleaved).
        assertEvent(await peer.next(`pong ${i}`), pongOf(`pongme ${i}`), `pong ${i}`);
      }
      assertEvent(await peer.next('the message'), msg(parts.join('')), 'the message');
      await serverCloses(peer, 1000);
    },
  },
);

// 6.x: UTF-8 (§8.1: valid text is delivered, invalid fails with 1007).
const VALID_UTF8: [string, Buffer][] = [
  ['mixed', Buffer.from('Hello-µ@ßöäüàá-UTF-8!!', 'utf8')],
  ['kosme', Buffer.from('κόσμε', 'utf8')],
  ['1-byte bounds', Buffer.from([0x00, 0x7f])],
  ['2-byte bounds', Buffer.from([0xc2, 0x80, 0xdf, 0xbf])],
  ['3-byte bounds', Buffer.from([0xe0, 0xa0, 0x80, 0xef, 0xbf, 0xbf])],
  ['4-byte bounds', Buffer.from([0xf0, 0x90, 0x80, 0x80, 0xf4, 0x8f, 0xbf, 0xbf])],
  ['around surrogates', Buffer.from([0xed, 0x9f, 0xbf, 0xee, 0x80, 0x80])],
  ['noncharacters', Buffer.from([0xef, 0xbf, 0xbe, 0xef, 0xbf, 0xbf, 0xf4, 0x8f, 0xbf, 0xbe])],
  ['replacement character', Buffer.from([0xef, 0xbf, 0xbd])],
  ['emoji', Buffer.from('👍🏽 𝄞 中文', 'utf8')],
];
for (const [name, bytes] of VALID_UTF8) {
  add(echo(`6 valid ${name}`, `valid UTF-8 (${name}) is echoed exactly`, [text(bytes)], [msg(bytes)]));
}
const ALL_VALID = Buffer.concat(VALID_UTF8.map(([, b]) => b));
add(
  echo('6.2.4 valid 1-byte fragments', 'valid UTF-8 in fragments of 1 byte (frames end inside code points)', [
    Buffer.concat(fragments(OP.text, ALL_VALID, 1)),
  ], [msg(ALL_VALID)]),
  echo('6.2.3 valid chopped', 'a valid UTF-8 frame written 1 byte per write', chop(text(Buffer.from('κόσμε 👍🏽', 'utf8')), 1).flatMap((b) => [b, 1]), [
    msg(Buffer.from('κόσμε 👍🏽', 'utf8')),
  ]),
);
const INVALID_UTF8: [string, Buffer][] = [
  ['lone continuation 80', Buffer.from([0x80])],
  ['lone continuation bf', Buffer.from([0x41, 0xbf, 0x41])],
  ['overlong 2-byte', Buffer.from([0xc0, 0xaf])],
  ['overlong c1', Buffer.from([0xc1, 0xbf])],
  ['overlong 3-byte', Buffer.from([0xe0, 0x80, 0xaf])],
  ['overlong 4-byte', Buffer.from([0xf0, 0x80, 0x80, 0xaf])],
  ['surrogate', Buffer.from([0xed, 0xa0, 0x80])],
  ['surrogate pair', Buffer.from([0xed, 0xa1, 0x8c, 0xed, 0xbe, 0xb4])],
  ['above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
  ['f5', Buffer.from([0xf5, 0x80, 0x80, 0x80])],
  ['5-byte', Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])],
  ['fe', Buffer.from([0xfe])],
  ['ff', Buffer.from([0xff])],
  ['truncated at the end', Buffer.concat([Buffer.from('κόσμε', 'utf8'), Buffer.from([0xce])])],
  ['truncated 4-byte at the end', Buffer.from([0x41, 0xf0, 0x9f, 0x98])],
  ['truncated sequence in the middle', Buffer.from([0x41, 0xe2, 0x82, 0x41])],
];
for (const [name, bytes] of INVALID_UTF8) {
  add(fails(`6 invalid ${name}`, `invalid UTF-8 (${name}) → 1007`, [text(bytes)], 1007));
}
add(
  fails('6.3.2 invalid 1-byte fragments', 'invalid UTF-8 in fragments of 1 byte → 1007', [
    Buffer.concat(fragments(OP.text, Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64]), 1)),
  ], 1007),
  fails('6 truncated across fragments', 'a message whose last fragment ends inside a code point → 1007', [
    Buffer.concat([text(Buffer.from([0x41, 0xe2]), { fin: false }), cont(Buffer.from([0x82]))]),
  ], 1007),
  fails('6 valid then invalid', 'a valid text, then an invalid one → echo, 1007', [
    Buffer.concat([text('κόσμε'), text(Buffer.from([0xff]))]),
  ], 1007, [msg('κόσμε')]),
);

/**
 * Fail fast (Autobahn 6.4.x): the client's close must come while the server
 * still holds the rest of the message; then the rest is sent and must change
 * nothing. `pieces` are written in order; the close is awaited after
 * `failAfter` of them, and before that none may come.
 */
function failFast(id: string, title: string, pieces: Buffer[], failAfter: number): Case {
  return {
    id,
    title,
    outcome: { kind: 'failed' },
    async run(peer) {
      for (let i = 0; i < failAfter; i++) {
        peer.write(pieces[i]!);
        // A valid prefix must not fail the connection (and must not be answered).
        if (i < failAfter - 1) await peer.quiet(60, `after piece ${i + 1} (still valid UTF-8)`);
      }
      const c = await peer.next(`close(1007) while the server holds ${pieces.length - failAfter} more piece(s)`, 2_000);
      expectClose(c, 1007);
      for (const p of pieces.slice(failAfter)) {
        await delay(20);
        peer.write(p);
      }
      await peer.quiet(60, 'after the rest of the message');
      peer.write(close(1007));
      peer.socket.end();
      await peer.waitClosed('the client to close TCP');
    },
  };
}

const KOSME = Buffer.from('κόσμε', 'utf8');
const EDITED = Buffer.from('edited', 'utf8');
const BAD = Buffer.from([0xf4, 0x90, 0x80, 0x80]);
{
  // One frame of the whole payload, written in pieces.
  const payload = Buffer.concat([KOSME, BAD, EDITED]);
  const f = text(payload);
  const h = f.length - payload.length;
  add(
    failFast('6.4.1', 'invalid code point in the 2nd of 3 fragments: close before the 3rd is sent', [
      text(KOSME, { fin: false }),
      cont(BAD, { fin: false }),
      cont(EDITED),
    ], 2),
    failFast('6.4.2', 'the 2nd fragment ends on the byte that makes the text invalid', [
      text(Buffer.concat([KOSME, BAD.subarray(0, 1)]), { fin: false }),
      cont(BAD.subarray(1, 2), { fin: false }),
      cont(Buffer.concat([BAD.subarray(2), EDITED])),
    ], 2),
    failFast('6.4.3', 'one frame in 3 writes: the invalid sequence in the 2nd write', [
      f.subarray(0, h + KOSME.length),
      f.subarray(h + KOSME.length, h + KOSME.length + BAD.length),
      f.subarray(h + KOSME.length + BAD.length),
    ], 2),
    failFast('6.4.4', 'one frame in 3 writes: the 2nd ends on the byte that makes it invalid', [
      f.subarray(0, h + KOSME.length + 1),
      f.subarray(h + KOSME.length + 1, h + KOSME.length + 2),
      f.subarray(h + KOSME.length + 2),
    ], 2),
    failFast('6 fail fast 1st fragment', 'invalid bytes in the middle of the 1st of 3 fragments', [
      text(Buffer.concat([Buffer.from('Hello'), Buffer.from([0xff]), Buffer.from('world')]), { fin: false }),
      cont('more', { fin: false }),
      cont('end'),
    ], 1),
    failFast('6 fail fast big frame', 'a 1 MiB text frame, invalid after 64 KiB: close before the rest is sent', (() => {
      const big = ascii(1 << 20);
      big[65536 + 10] = 0xc0;
      const bf = text(big);
      return [bf.subarray(0, 65536 + 100), bf.subarray(65536 + 100)];
    })(), 1),
  );
}

// 7.x: the closing handshake (§5.5.1, §7).
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
for (const code of VALID_CODES) {
  add({
    id: `7.7 close ${code}`,
    title: `server closes with ${code} → the client answers ${code} and waits for the server's TCP close`,
    outcome: { kind: 'clean', code },
    run: (peer) => serverCloses(peer, code),
  });
}
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
for (const code of INVALID_CODES) add(fails(`7.9 close ${code}`, `close with invalid code ${code} → 1002`, [close(code)], 1002));
add(
  {
    id: '7.1.1',
    title: 'echo a message, then the server closes normally',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      peer.write(text('Hello World!'));
      assertEvent(await peer.next('the echo'), msg('Hello World!'), 'echo');
      await serverCloses(peer, 1000);
    },
  },
  {
    id: '7.1.1 binary',
    title: 'binary message and close in one write → the echo (it came first), then the close',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      peer.write(binary(pattern(1000)), close(1000));
      assertEvent(await peer.next('the echo'), bin(pattern(1000)), 'echo');
      expectClose(await peer.next('the close answer'), 1000);
      await serverClosesTcp(peer);
    },
  },
  {
    id: '7.1.2',
    title: 'two close frames in one write → exactly one close back',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      peer.write(close(1000), close(1000));
      const c = await peer.next('the close answer');
      expectClose(c, 1000);
      await peer.quiet(50, 'after the close');
      await serverClosesTcp(peer);
    },
  },
  {
    id: '7.1.3 / 7.1.4',
    title: 'data and ping after the close frame (same write, then later) are ignored: no echo, no pong',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      peer.write(close(1000), ping('after close'), text('after close'));
      const c = await peer.next('the close answer');
      expectClose(c, 1000);
      peer.write(text('later'), ping('later'));
      await peer.quiet(50, 'after the close');
      await serverClosesTcp(peer);
    },
  },
  {
    id: '7.1.5',
    title: 'first fragment, close, then the last fragment → no echo',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      peer.write(text(frag1, { fin: false }), close(1000), cont(frag2));
      const c = await peer.next('the close answer');
      expectClose(c, 1000);
      await peer.quiet(50, 'after the close');
      await serverClosesTcp(peer);
    },
  },
  {
    id: '7.1.6',
    title: '256 KiB text, close, ping in one write → the echo (it came first), the close, no pong',
    outcome: { kind: 'clean', code: 1000 },
    async run(peer) {
      peer.write(text(ascii(256 << 10)), close(1000), ping('ping after close'));
      const first = await peer.next('the echo or the close');
      if (first.type === 'message') {
        assertEvent(first, msg(ascii(256 << 10)), 'echo');
        const c = await peer.next('the close answer');
        expectClose(c, 1000);
      } else {
        expectClose(first, 1000);
      }
      await peer.quiet(50, 'after the close');
      await serverClosesTcp(peer);
    },
  },
  {
    id: '7.3.1',
    title: 'close without a body → a close without a code back (§5.5.1); the client reports 1005',
    outcome: { kind: 'clean', code: 1005 },
    run: (peer) => serverCloses(peer),
  },
  fails('7.3.2', 'close with a 1-byte body → 1002', [frame(OP.close, Buffer.from([0x03]))], 1002),
  {
    id: '7.3.3',
    title: 'close with a code and no reason',
    outcome: { kind: 'clean', code: 1000 },
    run: (peer) => serverCloses(peer, 1000),
  },
  {
    id: '7.3.4',
    title: 'close with a code and a UTF-8 reason: the client reports it',
    outcome: { kind: 'clean', code: 1000, reason: 'Hello World! κόσμε' },
    run: (peer) => serverCloses(peer, 1000, 'Hello World! κόσμε'),
  },
  {
    id: '7.3.5',
    title: 'close with a 123-byte reason (125-byte payload)',
    outcome: { kind: 'clean', code: 1000, reason: '*'.repeat(123) },
    run: (peer) => serverCloses(peer, 1000, '*'.repeat(123)),
  },
  fails('7.3.6', 'close with a 124-byte reason (126-byte payload) → 1002', [close(1000, '*'.repeat(124))], 1002),
  fails('7.5.1', 'close reason with invalid UTF-8 → 1007', [close(1000, Buffer.concat([KOSME, BAD, EDITED]))], 1007),
  fails('7.5 truncated reason', 'close reason ending inside a code point → 1007', [close(1000, Buffer.from([0x41, 0xce]))], 1007),
);

// 9.x (light): bursts and a large fragmented message.
{
  const small = Array.from({ length: 1000 }, (_, i) => Buffer.from(`msg ${String(i).padStart(12, '0')}`));
  const big = Array.from({ length: 100 }, (_, i) => pattern(64 << 10, i + 1));
  const four = ascii(4_000_000);
  add(
    echo('9.x 1000 × 16 B', '1000 text messages of 16 bytes in one write, echoed in order', [Buffer.concat(small.map((m) => text(m)))], small.map((m) => msg(m)), 20_000),
    echo('9.x 100 × 64 KiB', '100 binary messages of 64 KiB in a burst, echoed in order', chop(Buffer.concat(big.map((m) => binary(m))), 1 << 20), big.map((m) => bin(m)), 20_000),
    echo('9.x 4 MB fragmented', 'a 4 MB text message in 64 KiB fragments', [Buffer.concat(fragments(OP.text, four, 64 << 10))], [msg(four)], 20_000),
    echo('9.3.1', 'a 4 MB text message in 64-byte fragments (65,536 frames)', [Buffer.concat(fragments(OP.text, four, 64))], [msg(four)], 20_000),
    echo('9.5.1', 'a 1 MiB text frame written in 64-byte pieces', chop(text(ascii(1 << 20)), 64), [msg(ascii(1 << 20))], 20_000),
  );
}

// 10.x-ish and transport: a connection dropped without a closing handshake.
add({
  id: 'drop mid-frame',
  title: 'the server drops TCP in the middle of a frame → closed abnormally (1006), the process exits',
  outcome: { kind: 'abnormal' },
  async run(peer) {
    peer.write(text(ascii(1000)).subarray(0, 500));
    await delay(50);
    peer.socket.destroy();
  },
});

// ---------------------------------------------------------------------------
// The clients

interface ClientResult {
  /** WHATWG close event, for the class. */
  close?: { wasClean: boolean; code: number; reason: string; errored: boolean };
  /** Exit status, for the CLI. */
  exit?: { code: number | null; signal: NodeJS.Signals | null; stderr: string };
}

interface RunningClient {
  done: Promise<ClientResult>;
  dispose(): Promise<void>;
}

/** A conformance script over our WebSocket class: echo everything back with its type. */
function classClient(url: string, binaryType: 'arraybuffer' | 'blob'): RunningClient {
  const ws = new WebSocket(url);
  ws.binaryType = binaryType;
  let errored = false;
  ws.onmessage = (e) => ws.send(e.data as string | ArrayBuffer | Blob);
  ws.onerror = () => {
    errored = true;
  };
  const done = new Promise<ClientResult>((resolve) => {
    ws.onclose = (e) => resolve({ close: { wasClean: e.wasClean, code: e.code, reason: e.reason, errored } });
  });
  return {
    done,
    async dispose() {
      if (ws.readyState !== WebSocket.CLOSED) {
        ws.close();
        await withTimeout(done, WAIT_MS, 'the WebSocket to close').catch(() => {});
      }
    },
  };
}

const children = new Set<ChildProcess>();

/** `fullduplex connect URL --echo`, as a conformance run drives it. */
function cliClient(url: string, stdin: 'pipe' | 'ignore' = 'pipe'): RunningClient {
  // A conformance runner may leave stdin open (a pipe nobody writes) or give none (/dev/null).
  const child = spawn(process.execPath, [CLI, 'connect', url, '--echo'], { stdio: [stdin, 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stdout!.resume();
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const done = new Promise<ClientResult>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ exit: { code, signal, stderr } });
    });
  });
  return {
    done,
    async dispose() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await withTimeout(done, WAIT_MS, 'the CLI to die').catch(() => {});
      }
    },
  };
}

function checkOutcome(c: Case, kind: 'class' | 'cli', r: ClientResult): void {
  const o = c.outcome;
  if (kind === 'class') {
    const e = r.close;
    assert.ok(e !== undefined);
    if (o.kind === 'clean') {
      // WHATWG § the WebSocket connection is closed: code and reason of the server's close frame.
      assert.deepEqual(
        { wasClean: e.wasClean, code: e.code, errored: e.errored },
        { wasClean: true, code: o.code, errored: false },
        'the close event',
      );
      if (o.reason !== undefined) assert.equal(e.reason, o.reason);
    } else {
      // RFC 6455 §7.1.5: no close frame read → 1006; §7.1.7: a failed connection fires error first.
      assert.equal(e.wasClean, false, 'wasClean');
      assert.equal(e.code, 1006, 'close code');
      if (o.kind === 'failed') assert.equal(e.errored, true, 'an error event before close');
    }
    return;
  }
  const x = r.exit;
  assert.ok(x !== undefined);
  assert.equal(x.signal, null, `the CLI was killed (${x.signal}); stderr: ${x.stderr}`);
  if (o.kind === 'clean' && (o.code === 1000 || o.code === 1005)) {
    assert.equal(x.code, 0, `exit status after a normal close; stderr: ${x.stderr}`);
  } else if (o.kind !== 'clean') {
    assert.notEqual(x.code, 0, `exit status after a ${o.kind} connection; stderr: ${x.stderr}`);
  }
}

let server: FuzzingServer;
let seq = 0;

type ClientKind = 'class' | 'class-blob' | 'cli';

async function runCase(c: Case, kind: ClientKind): Promise<void> {
  const n = String(++seq);
  const url = `ws://${LOOPBACK}:${server.port}/runCase?case=${n}&agent=fullduplex`;
  // The class runs get the 101 and the first frames in one write; the CLI runs, separately.
  const peerPromise = server.expect(n, kind !== 'cli');
  const client = kind === 'cli' ? cliClient(url, Number(n) % 2 === 0 ? 'pipe' : 'ignore') : classClient(url, kind === 'class' ? 'arraybuffer' : 'blob');
  let peer: Peer | undefined;
  try {
    peer = await peerPromise;
    await withTimeout(c.run(peer), c.timeout ?? 10_000, `case ${c.id}`);
    assert.deepEqual(peer.violations, [], 'frames the client must not send');
    const result = await withTimeout(client.done, WAIT_MS, 'the client to finish');
    checkOutcome(c, kind === 'cli' ? 'cli' : 'class', result);
  } finally {
    peer?.socket.destroy();
    await client.dispose();
  }
}

before(async () => {
  assert.ok(existsSync(CLI), `${CLI} is missing: run "npm run build" first`);
  server = new FuzzingServer();
  await server.listen();
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await server?.close();
});

describe('client conformance (Autobahn-style fuzzing server)', () => {
  describe('our WebSocket class, echoing', { concurrency: 8 }, () => {
    for (const c of cases) it(`${c.id}: ${c.title}`, () => runCase(c, 'class'));
  });

  describe('our WebSocket class, echoing Blobs (the default binaryType)', { concurrency: 8 }, () => {
    for (const c of cases) it(`${c.id}: ${c.title}`, () => runCase(c, 'class-blob'));
  });

  describe('the CLI: fullduplex connect URL --echo', { concurrency: 8 }, () => {
    for (const c of cases) it(`${c.id}: ${c.title}`, () => runCase(c, 'cli'));
  });

  it('the CLI exits non-zero, promptly, when the handshake is refused (404)', async () => {
    const client = cliClient(`ws://${LOOPBACK}:${server.port}/runCase?case=none&agent=fullduplex`);
    try {
      const r = await withTimeout(client.done, WAIT_MS, 'the CLI to exit');
      assert.equal(r.exit?.signal, null);
      assert.notEqual(r.exit?.code, 0, 'exit status after a refused handshake');
    } finally {
      await client.dispose();
    }
  });

  it('the opening handshake requests were valid (RFC 6455 §4.1)', () => {
    assert.deepEqual(server.handshakeViolations, []);
  });
});
