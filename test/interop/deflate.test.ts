/**
 * Interoperability of permessage-deflate (RFC 7692) with independent peers:
 * the `ws` package's client against our server and its server against our
 * client (negotiation of every parameter, byte-exact echoes of compressible
 * and incompressible messages, context takeover across messages, what
 * actually crosses the wire, the inflated-size limit), and Python
 * `websockets` both ways.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { before, describe, it, type TestContext } from 'node:test';
import { WebSocketServer as WsServer, type WebSocket as WsSocket, type ServerOptions as WsServerOptions, type ClientOptions as WsClientOptions } from 'ws';
import { WebSocket, type WebSocketOptions } from '../../src/index.js';
import type { WebSocketServerOptions } from '../../src/index.js';
import { ClientLog, LOOPBACK, Scope as ClientScope, WAIT_MS, withTimeout } from '../helpers/client-peer.js';
import { tapReads } from '../helpers/frame-tap.js';
import type { RawFrame } from '../helpers/raw-client.js';
import { clientClosed, echo, listening, wsOpened, type Scope } from '../helpers/server-harness.js';
import { PY_DIR, PYTHON, requirePythonWebsockets, runPython } from '../helpers/python.js';

// ---------------------------------------------------------------------------
// Messages

interface Msg {
  data: Buffer;
  binary: boolean;
}
interface Case extends Msg {
  name: string;
}

/** `n` bytes of JSON lines that repeat with small variations (ASCII): very compressible. */
function json(n: number): Buffer {
  let s = '';
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: i % 50, user: 'alice', tags: ['ws', 'deflate'], ok: true }) + '\n';
  return Buffer.from(s.slice(0, n));
}

/** `n` bytes of random code points of every UTF-8 width: valid text that hardly compresses. */
function randomText(n: number): Buffer {
  const ranges = [
    [0x20, 0x7f],
    [0x80, 0x800],
    [0x800, 0xd800],
    [0x10000, 0x110000],
  ] as const;
  let s = '';
  let bytes = 0;
  while (n - bytes >= 4) {
    const width = Math.floor(Math.random() * 4);
    const [lo, hi] = ranges[width]!;
    s += String.fromCodePoint(lo + Math.floor(Math.random() * (hi - lo)));
    bytes += width + 1;
  }
  return Buffer.from(s + 'x'.repeat(n - bytes));
}

/** A random 2000-byte block repeated: compresses only with a window over 2000 bytes (RFC 7692 §7.1.2). */
function blocks(n: number): Buffer {
  const block = randomBytes(2000);
  return Buffer.concat(Array.from({ length: Math.ceil(n / 2000) }, () => block)).subarray(0, n);
}

const SIZES = [0, 1, 100, 1023, 1024, 5000, 65536, 300_000];

/** Every size in every kind, then a run of similar messages that compress against the ones before them. */
const MATRIX: Case[] = [
  ...SIZES.flatMap((n) => [
    { name: `text json ${n}`, data: json(n), binary: false },
    { name: `text random ${n}`, data: randomText(n), binary: false },
    { name: `binary json ${n}`, data: json(n), binary: true },
    { name: `binary random ${n}`, data: randomBytes(n), binary: true },
    { name: `binary blocks ${n}`, data: blocks(n), binary: true },
  ]),
  ...Array.from({ length: 200 }, (_, i) => ({ name: `run #${i}`, data: json(1000 + 7 * i), binary: i % 2 === 1 })),
];

/** The messages an endpoint receives, in order; `take` waits for the next `n`. */
class Mailbox {
  private readonly messages: Msg[] = [];
  private taken = 0;
  private wake: (() => void) | null = null;

  push(m: Msg): void {
    this.messages.push(m);
    this.wake?.();
  }

  async take(n: number, ms = 60_000): Promise<Msg[]> {
    const want = this.taken + n;
    const wait = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.messages.length >= want) resolve();
        else this.wake = check;
      };
      check();
    });
    await withTimeout(wait, ms, `${n} messages (have ${this.messages.length - this.taken})`);
    this.wake = null;
    const got = this.messages.slice(this.taken, want);
    this.taken = want;
    return got;
  }
}

function mailboxOfWs(ws: WsSocket): Mailbox {
  const box = new Mailbox();
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], binary: boolean) => {
    box.push({ data: Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data), binary });
  });
  return box;
}

function mailboxOfOurs(ws: WebSocket): Mailbox {
  const box = new Mailbox();
  ws.binaryType = 'nodebuffer';
  ws.addEventListener('message', (e) => {
    const data: unknown = e.data;
    box.push({ data: Buffer.isBuffer(data) ? data : Buffer.from(String(data)), binary: typeof data !== 'string' });
  });
  return box;
}

const sendWs = (ws: WsSocket) => (c: Case) => ws.send(c.data, { binary: c.binary });
const sendOurs = (ws: WebSocket) => (c: Case) => ws.send(c.binary ? c.data : c.data.toString('utf8'));

/** Sends every case back to back (so compression contexts carry across them), then checks each echo, byte for byte, in order. */
async function assertEchoes(send: (c: Case) => void, box: Mailbox, cases: readonly Case[] = MATRIX): Promise<void> {
  for (const c of cases) send(c);
  const got = await box.take(cases.length);
  cases.forEach((c, i) => {
    const m = got[i]!;
    assert.equal(m.binary, c.binary, `${c.name}: echoed as ${m.binary ? 'binary' : 'text'}`);
    assert.ok(m.data.equals(c.data), `${c.name}: echo of ${c.data.length} bytes differs (${m.data.length} bytes came back)`);
  });
}

// ---------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1)

type Params = Record<string, string | true>;

/** The parameters of the one permessage-deflate in a Sec-WebSocket-Extensions value. */
function paramsOf(header: string): Params {
  assert.ok(!header.includes(','), `one extension in "${header}"`);
  const [name, ...params] = header.split(';').map((p) => p.trim());
  assert.equal(name, 'permessage-deflate', `extension in "${header}"`);
  return Object.fromEntries(
    params.map((p) => {
      const [k = '', v] = p.split('=').map((x) => x.trim());
      return [k, v === undefined ? true : v.replace(/^"(.*)"$/, '$1')];
    }),
  );
}

function windowBits(v: string | true | undefined, what: string): number {
  assert.ok(typeof v === 'string' && /^(?:[89]|1[0-5])$/.test(v), `${what}: window bits value ${String(v)} (RFC 7692 §7.1.2: 8 to 15)`);
  return Number(v);
}

/** What RFC 7692 §7.1 requires of a server's response to a client's offer. */
function assertValidResponse(offerHeader: string, responseHeader: string): void {
  const offer = paramsOf(offerHeader);
  const response = paramsOf(responseHeader);
  const where = `offer "${offerHeader}", response "${responseHeader}"`;
  const known = ['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits'];
  for (const [k, v] of Object.entries(response)) {
    assert.ok(known.includes(k), `${where}: unknown parameter ${k}`);
    if (k.endsWith('context_takeover')) assert.equal(v, true, `${where}: ${k} takes no value`);
  }
  // §7.1.1.1: an offered server_no_context_takeover MUST be in the response.
  if (offer.server_no_context_takeover) assert.equal(response.server_no_context_takeover, true, `${where}: §7.1.1.1`);
  // §7.1.2.1: an offered server_max_window_bits MUST come back, the same or smaller.
  if (offer.server_max_window_bits !== undefined) {
    assert.ok(windowBits(response.server_max_window_bits, where) <= windowBits(offer.server_max_window_bits, where), `${where}: §7.1.2.1`);
  } else if (response.server_max_window_bits !== undefined) windowBits(response.server_max_window_bits, where);
  // §7.1.2.2: client_max_window_bits only if offered, with a value, no larger than an offered value.
  if (response.client_max_window_bits !== undefined) {
    assert.notEqual(offer.client_max_window_bits, undefined, `${where}: §7.1.2.2 (not offered)`);
    const bits = windowBits(response.client_max_window_bits, where);
    if (offer.client_max_window_bits !== true) assert.ok(bits <= windowBits(offer.client_max_window_bits, where), `${where}: §7.1.2.2`);
  }
}

// ---------------------------------------------------------------------------
// Peers

const socketOf = (ws: WsSocket): net.Socket => (ws as unknown as { _socket: net.Socket })._socket;
/** RSV1 as `RawFrame.rsv` has it: the message is compressed (RFC 7692 §6). */
const RSV1 = 4;

/** Our server (echo) recording each client's offer; `extensionsOf(n)` is the n-th connection's `ws.extensions`. */
async function ourServer(t: TestContext, options: Parameters<typeof listening>[1]) {
  const offers: string[] = [];
  const upgrade = (req: IncomingMessage): void => void offers.push(req.headers['sec-websocket-extensions'] ?? '');
  const started = await listening(t, options, echo({ upgrade }));
  return {
    ...started,
    url: `ws://${LOOPBACK}:${started.port}/`,
    offers,
    extensionsOf: async (n = 1) => (await started.log.nth('open', n)).ws.extensions,
  };
}

/** A `ws` client, open, with the Sec-WebSocket-Extensions value of the response it accepted. */
async function wsClient(s: Scope, url: string, options: WsClientOptions): Promise<{ ws: WsSocket; response: string; box: Mailbox }> {
  const ws = s.rawClient(url, undefined, options);
  let response = '';
  ws.once('upgrade', (res: IncomingMessage) => (response = res.headers['sec-websocket-extensions'] ?? ''));
  const box = mailboxOfWs(ws);
  await wsOpened(ws, url);
  return { ws, response, box };
}

interface WsConnection {
  ws: WsSocket;
  /** The Sec-WebSocket-Extensions values of the request and of ws's response. */
  offer: string;
  response: string;
  /** Frames read off the server's TCP socket: what our client sent. */
  frames: RawFrame[];
  socket: net.Socket;
}

/** A `ws` WebSocketServer on loopback (echo unless told otherwise), torn down after the test. */
async function wsServer(t: TestContext, perMessageDeflate: WsServerOptions['perMessageDeflate'], options: { echo?: boolean } = {}) {
  const s = new ClientScope();
  t.after(() => s.dispose());
  const wss = new WsServer({ host: LOOPBACK, port: 0, perMessageDeflate });
  await once(wss, 'listening');
  s.add(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  const responses = new WeakMap<IncomingMessage, string>();
  wss.on('headers', (headers: string[], req: IncomingMessage) => {
    const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
    responses.set(req, line === undefined ? '' : line.slice(line.indexOf(':') + 1).trim());
  });
  const connections: WsConnection[] = [];
  let taken = 0;
  wss.on('connection', (ws, req) => {
    const socket = socketOf(ws);
    connections.push({ ws, offer: req.headers['sec-websocket-extensions'] ?? '', response: responses.get(req) ?? '', frames: tapReads(socket), socket });
    if (options.echo !== false) ws.on('message', (data, binary) => ws.send(data as Buffer, { binary }));
  });
  const address = wss.address();
  assert.ok(typeof address === 'object' && address !== null);
  const url = `ws://${LOOPBACK}:${address.port}/`;
  return {
    /** Our client, open, with a mailbox of what it receives, and the server side of its connection. */
    async open(o: WebSocketOptions) {
      const index = taken++;
      const ws = s.client(new WebSocket(url, undefined, { closeTimeout: 1_000, ...o }));
      const box = mailboxOfOurs(ws);
      const log = new ClientLog(ws);
      await log.first('open');
      // ws emits 'connection' before its response reaches the client, so this one is there by now.
      const connection = connections[index];
      assert.ok(connection !== undefined, 'the ws server saw the connection');
      return { ws, box, log, server: connection };
    },
  };
}

function serverClosed(ws: WsSocket, ms = WAIT_MS): Promise<{ code: number }> {
  return withTimeout(
    new Promise((resolve) => ws.once('close', (code: number) => resolve({ code }))),
    ms,
    'the ws server side to close',
  );
}

// ---------------------------------------------------------------------------

describe('ws client ⇄ our server with permessage-deflate', () => {
  const variants: {
    name: string;
    client: WsClientOptions['perMessageDeflate'];
    server?: WebSocketServerOptions['perMessageDeflate'];
    check?: (response: Params) => void;
  }[] = [
    { name: 'perMessageDeflate: true', client: true },
    { name: 'serverNoContextTakeover', client: { serverNoContextTakeover: true, threshold: 0 } },
    { name: 'clientNoContextTakeover', client: { clientNoContextTakeover: true, threshold: 0 } },
    { name: 'serverMaxWindowBits: 10', client: { serverMaxWindowBits: 10, threshold: 0 } },
    { name: 'clientMaxWindowBits: 9', client: { clientMaxWindowBits: 9, threshold: 0 } },
    {
      name: 'server asks for no context takeover and 10-bit windows both ways',
      client: { threshold: 0 },
      server: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
      // The server's wishes for the client only take effect if its response says so (§7.1.1.2, §7.1.2.2).
      check: (r) => assert.deepEqual([r.client_no_context_takeover, r.client_max_window_bits], [true, '10']),
    },
  ];

  for (const v of variants) {
    it(`${v.name}: both sides agree on the parameters; every size and kind echoes byte-exact`, { timeout: 90_000 }, async (t) => {
      const { s, url, offers, extensionsOf } = await ourServer(t, { perMessageDeflate: v.server ?? true });
      const { ws, response, box } = await wsClient(s, url, { perMessageDeflate: v.client });
      assert.equal(ws.extensions, 'permessage-deflate', 'ws accepted the extension');
      assert.equal(await extensionsOf(), response, "our server's ws.extensions is the response it sent");
      assert.equal(offers.length, 1);
      assertValidResponse(offers[0]!, response);
      v.check?.(paramsOf(response));
      await assertEchoes(sendWs(ws), box);
    });
  }

  it('a compressed message ws sends in fragments is inflated whole (RFC 7692 §6.1: RSV1 on the first frame only)', async (t) => {
    const { s, url, log } = await ourServer(t, { perMessageDeflate: true });
    const { ws, box } = await wsClient(s, url, { perMessageDeflate: { threshold: 0 } });
    const parts = [json(5000), randomText(3000), json(1)];
    parts.forEach((part, i) => ws.send(part, { binary: false, fin: i === parts.length - 1 }));
    const [m] = await box.take(1);
    assert.ok((await log.first('message')).data.equals(Buffer.concat(parts)));
    assert.ok(m!.data.equals(Buffer.concat(parts)) && !m!.binary);
  });

  it('a client that does not offer it: no extension, messages still echo', async (t) => {
    const { s, url, extensionsOf } = await ourServer(t, { perMessageDeflate: { threshold: 0 } });
    const { ws, response, box } = await wsClient(s, url, { perMessageDeflate: false });
    const frames = tapReads(socketOf(ws));
    assert.deepEqual([response, ws.extensions, await extensionsOf()], ['', '', '']);
    await assertEchoes(sendWs(ws), box, MATRIX.slice(0, 20));
    assert.deepEqual(frames.filter((f) => f.rsv !== 0), [], 'RSV1 is never set without the extension (RFC 6455 §5.2)');
  });

  it('our server without the option declines an offer; messages still echo', async (t) => {
    const { s, url, offers, extensionsOf } = await ourServer(t, {});
    const { ws, response, box } = await wsClient(s, url, { perMessageDeflate: { threshold: 0 } });
    assert.match(offers[0] ?? '', /^permessage-deflate/);
    assert.deepEqual([response, ws.extensions, await extensionsOf()], ['', '', '']);
    await assertEchoes(sendWs(ws), box, MATRIX.slice(0, 20));
  });
});

describe('our client ⇄ ws server with permessage-deflate', () => {
  const variants: { name: string; client: WebSocketOptions['perMessageDeflate']; server?: WsServerOptions['perMessageDeflate']; expect: Params }[] = [
    { name: 'perMessageDeflate: true', client: true, expect: {} },
    { name: 'serverNoContextTakeover', client: { serverNoContextTakeover: true, threshold: 0 }, expect: { server_no_context_takeover: true } },
    { name: 'clientNoContextTakeover', client: { clientNoContextTakeover: true, threshold: 0 }, expect: { client_no_context_takeover: true } },
    { name: 'serverMaxWindowBits: 10', client: { serverMaxWindowBits: 10, threshold: 0 }, expect: { server_max_window_bits: '10' } },
    { name: 'clientMaxWindowBits: 9', client: { clientMaxWindowBits: 9, threshold: 0 }, expect: { client_max_window_bits: '9' } },
    {
      name: 'server imposes no context takeover and 9-bit windows both ways',
      client: { threshold: 0 },
      server: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
      expect: { server_no_context_takeover: true, client_no_context_takeover: true, server_max_window_bits: '9', client_max_window_bits: '9' },
    },
  ];

  for (const v of variants) {
    it(`${v.name}: offer and response as RFC 7692 says; every size and kind echoes byte-exact`, { timeout: 90_000 }, async (t) => {
      const p = await wsServer(t, v.server ?? { threshold: 0 });
      const { ws, box, server } = await p.open({ perMessageDeflate: v.client });
      // The offer always carries client_max_window_bits (§7.1.2.2), plus what the options ask for.
      const offer = paramsOf(server.offer);
      assert.equal(offer.client_max_window_bits, v.name.startsWith('clientMaxWindowBits') ? '9' : true, `offer "${server.offer}"`);
      for (const [k, value] of Object.entries(v.server === undefined ? v.expect : {})) assert.equal(offer[k], value, `offer "${server.offer}" has ${k}`);
      assert.equal(server.ws.extensions, 'permessage-deflate');
      assert.equal(ws.extensions, server.response, "the client's extensions is the server's response");
      assert.deepEqual(paramsOf(ws.extensions), v.expect);
      await assertEchoes(sendOurs(ws), box);
    });
  }

  it('a compressed message the ws server sends in fragments arrives whole (RFC 7692 §6.1)', async (t) => {
    const p = await wsServer(t, { threshold: 0 }, { echo: false });
    const { box, server } = await p.open({ perMessageDeflate: true });
    const parts = [json(5000), randomBytes(3000), json(1)];
    parts.forEach((part, i) => server.ws.send(part, { binary: true, fin: i === parts.length - 1 }));
    const [m] = await box.take(1);
    assert.ok(m!.data.equals(Buffer.concat(parts)) && m!.binary);
  });

  it('against a ws server without permessage-deflate: extensions "" and messages still echo', async (t) => {
    const p = await wsServer(t, false);
    const { ws, box, server } = await p.open({ perMessageDeflate: true });
    assert.match(server.offer, /^permessage-deflate/);
    assert.deepEqual([server.response, ws.extensions], ['', '']);
    await assertEchoes(sendOurs(ws), box, MATRIX.slice(0, 20));
    assert.deepEqual(server.frames.filter((f) => f.rsv !== 0), [], 'RSV1 is never set without the extension (RFC 6455 §5.2)');
  });
});

describe('permessage-deflate on the wire', () => {
  it('100 KB of JSON text crosses the wire compressed both ways (ws client, threshold 0)', async (t) => {
    const { s, url, log } = await ourServer(t, { perMessageDeflate: true });
    const { ws, box } = await wsClient(s, url, { perMessageDeflate: { threshold: 0 } });
    const socket = socketOf(ws);
    const frames = tapReads(socket);
    const [written, read] = [socket.bytesWritten, socket.bytesRead];
    const text = json(100_000);
    ws.send(text, { binary: false });
    const [m] = await box.take(1);
    assert.ok(m!.data.equals(text) && !m!.binary);
    assert.ok((await log.first('message')).data.equals(text), 'the server inflated it to the original');
    const [up, down] = [socket.bytesWritten - written, socket.bytesRead - read];
    assert.ok(up < 5_000, `${up} bytes went to the server`);
    assert.ok(down < 5_000, `${down} bytes came back`);
    assert.deepEqual(frames.map((f) => [f.opcode, f.rsv]), [[0x1, RSV1]], 'one compressed text frame came back (RFC 7692 §6)');
  });

  it('our client compresses what it sends: 100 KB of JSON text is a small RSV1 frame', async (t) => {
    const p = await wsServer(t, { threshold: 0 });
    const { ws, box, server } = await p.open({ perMessageDeflate: true });
    const text = json(100_000);
    ws.send(text.toString());
    const [m] = await box.take(1);
    assert.ok(m!.data.equals(text));
    const [f] = server.frames;
    assert.deepEqual([server.frames.length, f!.opcode, f!.rsv], [1, 0x1, RSV1]);
    assert.ok(f!.payload.length < 5_000, `${f!.payload.length} bytes of payload`);
  });

  it('threshold: a message shorter than it goes uncompressed (RSV1 clear), one of its length compressed', async (t) => {
    // Our server's threshold, read off the ws client's socket.
    for (const [perMessageDeflate, threshold] of [[true, 1024], [{ threshold: 10 }, 10]] as const) {
      const { s, url } = await ourServer(t, { perMessageDeflate });
      const { ws, box } = await wsClient(s, url, { perMessageDeflate: true });
      const frames = tapReads(socketOf(ws));
      await assertEchoes(sendWs(ws), box, [
        { name: 'below', data: json(threshold - 1), binary: false },
        { name: 'at', data: json(threshold), binary: true },
      ]);
      assert.deepEqual(frames.map((f) => f.rsv), [0, RSV1], `server threshold ${threshold}`);
    }
    // Our client's, read off the ws server's socket.
    for (const [perMessageDeflate, threshold] of [[true, 1024], [{ threshold: 10 }, 10]] as const) {
      const p = await wsServer(t, { threshold: 0 });
      const { ws, box, server } = await p.open({ perMessageDeflate });
      await assertEchoes(sendOurs(ws), box, [
        { name: 'below', data: json(threshold - 1), binary: true },
        { name: 'at', data: json(threshold), binary: false },
      ]);
      assert.deepEqual(server.frames.map((f) => f.rsv), [0, RSV1], `client threshold ${threshold}`);
    }
  });

  it('context takeover (§7.1.1): a repeated message shrinks; with no_context_takeover it compresses alike every time', async (t) => {
    const message = json(3000);
    for (const noTakeover of [false, true]) {
      const { s, url } = await ourServer(t, { perMessageDeflate: { serverNoContextTakeover: noTakeover } });
      const { ws, box } = await wsClient(s, url, { perMessageDeflate: { threshold: 0 } });
      const frames = tapReads(socketOf(ws));
      await assertEchoes(sendWs(ws), box, [1, 2, 3].map((i) => ({ name: `copy ${i}`, data: message, binary: false })));
      const sizes = frames.map((f) => f.payload.length);
      const hex = frames.map((f) => f.payload.toString('hex'));
      if (noTakeover) assert.deepEqual(hex, [hex[0], hex[0], hex[0]], `server: sizes ${sizes}`);
      else assert.ok(sizes[1]! < sizes[0]! / 2 && sizes[2]! < sizes[0]! / 2, `server: sizes ${sizes}`);

      const p = await wsServer(t, { threshold: 0 });
      const client = await p.open({ perMessageDeflate: { clientNoContextTakeover: noTakeover } });
      await assertEchoes(sendOurs(client.ws), client.box, [1, 2, 3].map((i) => ({ name: `copy ${i}`, data: message, binary: true })));
      const sent = client.server.frames.map((f) => f.payload.toString('hex'));
      const sentSizes = client.server.frames.map((f) => f.payload.length);
      if (noTakeover) assert.deepEqual(sent, [sent[0], sent[0], sent[0]], `client: sizes ${sentSizes}`);
      else assert.ok(sentSizes[1]! < sentSizes[0]! / 2 && sentSizes[2]! < sentSizes[0]! / 2, `client: sizes ${sentSizes}`);
    }
  });
});

describe('inflated size beyond maxPayload → 1009 (RFC 6455 §7.4.1)', () => {
  it('our server (maxPayload 64 KiB): a 1 MB message that compresses to a few KB closes the connection with 1009', async (t) => {
    const { s, url, log } = await ourServer(t, { perMessageDeflate: true, maxPayload: 64 * 1024 });
    const { ws } = await wsClient(s, url, { perMessageDeflate: { threshold: 0 }, maxPayload: 64 * 1024 * 1024 });
    const socket = socketOf(ws);
    const written = socket.bytesWritten;
    const closed = clientClosed(ws, 10_000);
    ws.send(json(1 << 20), { binary: false });
    assert.equal((await closed).code, 1009);
    assert.ok(socket.bytesWritten - written < 64 * 1024, 'compressed, the message was under maxPayload');
    assert.equal(log.all('message').length, 0);
  });

  it('our client (maxPayload 64 KiB): the same from a ws server fails the connection with 1009', async (t) => {
    const p = await wsServer(t, { threshold: 0 }, { echo: false });
    const { log, server } = await p.open({ perMessageDeflate: true, maxPayload: 64 * 1024 });
    const seen = serverClosed(server.ws, 10_000);
    server.ws.send(json(1 << 20).toString());
    assert.equal((await seen).code, 1009);
    assert.ok(server.socket.bytesWritten < 64 * 1024, 'compressed, the message was under maxPayload');
    assert.equal((await log.closed()).code, 1006);
    assert.deepEqual(log.types(), ['open', 'error', 'close']);
  });
});

// ---------------------------------------------------------------------------



/** echo_server.py accepting permessage-deflate (`tight`: its strict settings), running until the test ends; resolves with its URL. */
async function pythonServer(t: TestContext, tight: boolean): Promise<string> {
  const server = spawn(PYTHON, [PY_DIR + 'echo_server.py', tight ? 'tight' : 'deflate'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(server, 'exit');
  t.after(async () => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    server.stdin.end();
    const timer = setTimeout(() => server.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  });
  let buffered = '';
  const port = await withTimeout(
    Promise.race([
      new Promise<string>((resolve) =>
        server.stdout.on('data', (d: Buffer) => {
          buffered += d.toString();
          const m = /PORT (\d+)/.exec(buffered);
          if (m) resolve(m[1]!);
        }),
      ),
      exited.then(() => Promise.reject(new Error('the python deflate echo server exited'))),
    ]),
    20_000,
    'the python deflate echo server to listen',
  );
  return `ws://${LOOPBACK}:${port}/`;
}

describe('interop: Python websockets with permessage-deflate', () => {
  before(async () => {
    await requirePythonWebsockets();
  });

  for (const tight of [false, true]) {
    const args = tight ? ['tight'] : [];
    const how = tight ? 'offering no context takeover and small windows' : 'with its default offer';

    it(`its client ${how} against our server: negotiated, every echo matches, close 1000`, { timeout: 90_000 }, async (t) => {
      const { url, offers, extensionsOf } = await ourServer(t, { perMessageDeflate: true });
      const result = await runPython([PY_DIR + 'deflate_client.py', url, ...args], 60_000);
      assert.equal(result.code, 0, `client failed:\n${result.stdout}\n${result.stderr}`);
      assert.doesNotMatch(result.stdout, /MISMATCH/);
      assert.match(result.stdout, /^closed 1000 /m);
      const response = /^extensions (.*)$/m.exec(result.stdout)?.[1] ?? '';
      assert.equal(await extensionsOf(), response, "our server's ws.extensions is what python received");
      assertValidResponse(offers[0] ?? '', response);
    });

    const imposing = tight ? 'imposing no context takeover and small windows' : 'with its defaults';
    it(`our client against its server ${imposing}: every size and kind echoes byte-exact`, { timeout: 90_000 }, async (t) => {
      const url = await pythonServer(t, tight);
      const s = new ClientScope();
      t.after(() => s.dispose());
      const ws = s.client(new WebSocket(url, undefined, { closeTimeout: 1_000, perMessageDeflate: true }));
      const box = mailboxOfOurs(ws);
      const log = new ClientLog(ws);
      await log.first('open');
      assert.deepEqual(
        paramsOf(ws.extensions),
        tight
          ? { server_no_context_takeover: true, client_no_context_takeover: true, server_max_window_bits: '10', client_max_window_bits: '9' }
          : { server_max_window_bits: '12', client_max_window_bits: '12' },
      );
      await assertEchoes(sendOurs(ws), box);
      ws.close(1000);
      const closed = await log.closed();
      assert.deepEqual([closed.code, closed.wasClean], [1000, true]);
    });
  }
});
