/**
 * Hostile and broken servers against the client's opening handshake. A raw
 * TCP server writes exactly the bytes each test chooses; every expectation
 * comes from RFC 6455 §4.1 (what the client MUST check before the
 * connection is established, else "_Fail the WebSocket Connection_") and the
 * WHATWG WebSockets standard (a failed connection: no `open`, `error` then
 * `close` with code 1006 and wasClean false; the TCP connection is closed:
 * RFC 6455 §7.1.7).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../../src/index.js';
import { acceptFor } from '../helpers/client-peer.js';
import { OP, answerRaw, assertNeverOpened, connectRaw, dialRaw, scope } from '../helpers/client-raw.js';
import { serverFrame } from '../helpers/frames.js';

/** A 101 head (without the final empty line) that would be correct for `key`, with `extra` header lines. */
function head101(key: string, extra: string[] = [], statusLine = 'HTTP/1.1 101 Switching Protocols'): string {
  return [statusLine, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, ...extra].join('\r\n') + '\r\n';
}

const keyOf = (req: { headers: Map<string, string> }): string => req.headers.get('sec-websocket-key') ?? '';

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('RFC 6455 §4.1: a status other than 101 fails the connection (no redirect, no auth retry)', () => {
  it('200 with a body: error, close 1006, and the client closes the TCP connection', async (t) => {
    const { log, peer } = await answerRaw(t, () => 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello');
    await assertNeverOpened(log, /200/);
    await peer.waitEnd();
  });

  it('302 to a server that would accept is not followed', async (t) => {
    const s = scope(t);
    const other = await s.rawServer();
    let dialedOther = false;
    other.server.on('connection', () => (dialedOther = true));
    const { log, peer } = await answerRaw(t, () => `HTTP/1.1 302 Found\r\nLocation: ${other.url('/chat')}\r\nContent-Length: 0\r\n\r\n`);
    await assertNeverOpened(log, /302/);
    await peer.waitEnd();
    await delay(100);
    assert.equal(dialedOther, false, 'the client followed the redirect');
  });

  it('401 with a challenge is not retried', async (t) => {
    const { log, peer, server } = await answerRaw(t, () => 'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n');
    await assertNeverOpened(log, /401/);
    await peer.waitEnd();
    await delay(100);
    assert.equal(server.peers.length, 1, 'the client dialled again');
  });

  it('200 with a chunked body that never ends: fails at once and closes TCP (the body is not awaited)', async (t) => {
    const { log, peer } = await answerRaw(t, () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    const drip = setInterval(() => peer.socket.writable && peer.write('1\r\nx\r\n'), 20);
    t.after(() => clearInterval(drip));
    await assertNeverOpened(log, /200/);
    await peer.waitEnd(3_000);
  });
});

describe('RFC 6455 §4.1: a 101 the client MUST reject', () => {
  const cases: { name: string; answer: (key: string) => string; pattern?: RegExp; protocols?: string[] }[] = [
    { name: 'no Sec-WebSocket-Accept', answer: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', pattern: /Accept/ },
    { name: 'the Sec-WebSocket-Accept of another key', answer: () => head101('dGhlIHNhbXBsZSBub25jZQ==') + '\r\n', pattern: /Accept/ },
    { name: 'the key itself as Sec-WebSocket-Accept', answer: (k) => head101(k).replace(acceptFor(k), k) + '\r\n', pattern: /Accept/ },
    { name: 'Sec-WebSocket-Accept given twice (one field value of two)', answer: (k) => head101(k, [`Sec-WebSocket-Accept: ${acceptFor(k)}`]) + '\r\n' },
    { name: 'no Upgrade', answer: (k) => head101(k).replace('Upgrade: websocket\r\n', '') + '\r\n' },
    { name: 'Upgrade: h2c', answer: (k) => head101(k).replace('Upgrade: websocket', 'Upgrade: h2c') + '\r\n' },
    // §4.1 item 2: the Upgrade value must be an ASCII case-insensitive match for "websocket" (not a list holding it).
    { name: 'Upgrade: websocket, h2c', answer: (k) => head101(k).replace('Upgrade: websocket', 'Upgrade: websocket, h2c') + '\r\n' },
    { name: 'no Connection', answer: (k) => head101(k).replace('Connection: Upgrade\r\n', '') + '\r\n' },
    { name: 'Connection: keep-alive', answer: (k) => head101(k).replace('Connection: Upgrade', 'Connection: keep-alive') + '\r\n' },
    { name: 'a subprotocol the client did not offer', answer: (k) => head101(k, ['Sec-WebSocket-Protocol: evil']) + '\r\n', protocols: ['chat'], pattern: /subprotocol/ },
    { name: 'a subprotocol when none was offered', answer: (k) => head101(k, ['Sec-WebSocket-Protocol: chat']) + '\r\n', pattern: /subprotocol/ },
    { name: 'two offered subprotocols at once', answer: (k) => head101(k, ['Sec-WebSocket-Protocol: chat, superchat']) + '\r\n', protocols: ['chat', 'superchat'] },
    { name: 'the subprotocol in two header lines', answer: (k) => head101(k, ['Sec-WebSocket-Protocol: chat', 'Sec-WebSocket-Protocol: chat']) + '\r\n', protocols: ['chat'] },
    { name: 'an extension the client did not offer', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: x-webkit-deflate-frame']) + '\r\n', pattern: /extension/ },
    { name: 'permessage-deflate; server_max_window_bits=7', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7']) + '\r\n' },
    { name: 'permessage-deflate; client_max_window_bits=16', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16']) + '\r\n' },
    { name: 'permessage-deflate with an unknown parameter', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate; x_bits=1']) + '\r\n' },
    { name: 'permessage-deflate; server_no_context_takeover=1', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1']) + '\r\n' },
    { name: 'permessage-deflate with a parameter twice', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover']) + '\r\n' },
    { name: 'permessage-deflate accepted twice', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate']) + '\r\n' },
    { name: 'an extensions header that does not parse', answer: (k) => head101(k, ['Sec-WebSocket-Extensions: permessage-deflate;;=']) + '\r\n' },
    // RFC 6455 §4.2.2 / §1.3: the handshake is an HTTP/1.1 Upgrade; HTTP/1.0 has neither 1xx nor Upgrade (RFC 9110 §15.2, §7.8).
    { name: 'HTTP/1.0 101', answer: (k) => head101(k, [], 'HTTP/1.0 101 Switching Protocols') + '\r\n' },
  ];
  for (const c of cases) {
    it(`${c.name}: error, close 1006, no open, TCP closed`, async (t) => {
      const { log, peer, ws } = await answerRaw(t, (req) => c.answer(keyOf(req)), {}, c.protocols);
      await assertNeverOpened(log, c.pattern);
      assert.equal(ws.protocol, '');
      assert.equal(ws.extensions, '');
      await peer.waitEnd();
    });
  }

  it('frames right behind a rejected 101 are never delivered', async (t) => {
    const { log } = await answerRaw(t, () => head101('dGhlIHNhbXBsZSBub25jZQ==') + '\r\n' + serverFrame({ opcode: OP.TEXT, payload: 'x' }).toString('latin1'));
    await assertNeverOpened(log);
  });
});

describe('RFC 6455 §4.1: response heads that are not HTTP, never end, are too large or are cut', () => {
  it('a head that never ends (one header line every 50 ms) fails at handshakeTimeout', async (t) => {
    const { log, peer } = await answerRaw(t, () => 'HTTP/1.1 101 Switching Protocols\r\n', { handshakeTimeout: 600 });
    let n = 0;
    const drip = setInterval(() => peer.socket.writable && peer.write(`X-Drip-${n++}: ${'a'.repeat(10)}\r\n`), 50);
    t.after(() => clearInterval(drip));
    await assertNeverOpened(log, /timed out/);
    await peer.waitEnd();
  });

  it('a status line that never ends fails at handshakeTimeout', async (t) => {
    const { log, peer } = await answerRaw(t, () => 'HTTP/1.1 101 Switching', { handshakeTimeout: 300 });
    await assertNeverOpened(log, /timed out/);
    await peer.waitEnd();
  });

  it('an endless head sent as fast as possible fails on its size, long before handshakeTimeout', async (t) => {
    const { log, peer } = await answerRaw(t, (r) => head101(keyOf(r)), { handshakeTimeout: 60_000 });
    const line = Buffer.from(`X-Pad: ${'p'.repeat(1000)}\r\n`);
    const pad = Buffer.concat(Array.from({ length: 64 }, () => line));
    let sent = 0;
    const pump = (): void => {
      while (peer.socket.writable && sent < 64 * 1024 * 1024) {
        sent += pad.length;
        if (!peer.socket.write(pad)) {
          peer.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
    await assertNeverOpened(log, undefined, 10_000);
    await peer.waitEnd();
    assert.ok(sent < 64 * 1024 * 1024, 'the client read 64 MiB of response head');
  });

  it('a complete 101 whose head is 1 MiB of header lines fails', async (t) => {
    const pad = Array.from({ length: 1024 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(1000)}`);
    const { log, peer } = await answerRaw(t, (req) => head101(keyOf(req), pad) + '\r\n');
    await assertNeverOpened(log);
    await peer.waitEnd();
  });

  for (const [name, bytes] of [
    ['in the status line', 'HTTP/1.1 10'],
    ['in a header line', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs'],
    ['before the empty line', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'],
  ] as const) {
    it(`a head cut ${name} (then FIN) fails`, async (t) => {
      const { log, peer } = await answerRaw(t, () => bytes);
      peer.end();
      await assertNeverOpened(log);
    });
  }

  for (const [name, bytes] of [
    ['an SSH banner', 'SSH-2.0-OpenSSH_9.6\r\n'],
    ['binary noise', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['a WebSocket frame instead of a response', serverFrame({ opcode: OP.TEXT, payload: 'hello' })],
    ['a status line with no version', '101 Switching Protocols\r\n\r\n'],
    ['a status of 1010', 'HTTP/1.1 1010 Switching Protocols\r\n\r\n'],
    ['a header without a colon', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n'],
  ] as const) {
    it(`${name} instead of HTTP fails at once (the server keeps the connection open)`, async (t) => {
      const { log, peer } = await answerRaw(t, () => bytes, { handshakeTimeout: 5_000 });
      await assertNeverOpened(log, undefined, 4_000);
      await peer.waitEnd();
    });
  }

  it('empty lines and then silence (RFC 9112 §2.2 lets a client skip them) fail at handshakeTimeout', async (t) => {
    const { log, peer } = await answerRaw(t, () => '\r\n\r\n\r\n', { handshakeTimeout: 300 });
    await assertNeverOpened(log, /timed out/);
    await peer.waitEnd();
  });

  it('the server closing TCP before answering fails', async (t) => {
    const { log, peer } = await dialRaw(t);
    await peer.readRequest();
    peer.end();
    await assertNeverOpened(log);
  });
});

describe('RFC 6455 §4.1: valid 101s a strict client must still accept', () => {
  it('header names and values in any case, Connection as a token list, the head in 1-byte TCP segments with a frame behind it', async (t) => {
    const { peer, log, ws } = await dialRaw(t, {}, ['chat']);
    const req = await peer.readRequest();
    const head =
      'HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n' +
      `sec-websocket-accept: ${acceptFor(keyOf(req))}\r\nSec-WebSocket-Protocol: chat\r\n\r\n`;
    const bytes = Buffer.concat([Buffer.from(head, 'latin1'), serverFrame({ opcode: OP.TEXT, payload: 'after the head' })]);
    peer.socket.setNoDelay(true);
    for (const b of bytes) {
      peer.write(Buffer.of(b));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await log.message(1), 'after the head');
    assert.deepEqual(log.types(), ['open', 'message']);
    assert.equal(ws.protocol, 'chat');
  });

  it('permessage-deflate with a quoted window size (RFC 7692 §7.1: quoted-string values are accepted)', async (t) => {
    const { log, ws } = await connectRaw(t, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits="10"' } });
    await log.first('open');
    assert.match(ws.extensions, /^permessage-deflate/);
  });

  it('a 100 Continue before the 101 is skipped', async (t) => {
    const { log } = await answerRaw(t, (req) => 'HTTP/1.1 100 Continue\r\n\r\n' + head101(keyOf(req)) + '\r\n');
    await log.first('open');
  });
});

describe('WHATWG: close() while the hostile server stalls the handshake', () => {
  it('close() during a head that never ends: error, close 1006, TCP closed, no later open', async (t) => {
    const { log, peer, ws } = await answerRaw(t, () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n');
    await new Promise((r) => setTimeout(r, 50));
    ws.close();
    assert.equal(ws.readyState, WebSocket.CLOSING);
    await assertNeverOpened(log);
    await peer.waitEnd();
  });
});
