/**
 * listen()'s own listener reading WebSocket handshakes (src/server/listener.ts
 * with the strict head parser of src/protocol/http1.ts), over real loopback
 * sockets: heads in any pieces, frames that arrive with the head, the strict
 * RFC 9112 refusals with their exact status, the request the upgrade hook
 * sees, and the handshake timeout. Every test checks the server ends the
 * connections it refuses; the file checks no TCP handle is left behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { SHARED_READ_BUFFER, readsIntoSharedBuffer } from '../../src/transport/reader.js';
import { assertClosedByServer, assertEchoes, closedWithin, connectNoDelay, listenOwned, tcpBaseline, text } from '../helpers/listener.js';
import { LOOPBACK, RFC_ACCEPT, RFC_KEY, delay, upgradeRequest } from '../helpers/raw-client.js';
import { echo } from '../helpers/server-harness.js';

let tcpRestored: () => Promise<void>;
before(() => (tcpRestored = tcpBaseline()));
after(() => tcpRestored());

/** A valid handshake head with `extra` raw field lines (already CR LF terminated) before the empty line. */
const headWith = (extra: string, requestLine = 'GET / HTTP/1.1'): string =>
  `${requestLine}\r\nHost: ${LOOPBACK}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

describe('listen(): a request head that arrives in pieces', () => {
  it('a handshake sent byte by byte, with pauses, is answered 101 and the connection echoes', async (t) => {
    const { s, port, log } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    const head = Buffer.from(upgradeRequest());
    for (let i = 0; i < head.length; i++) {
      await peer.write(head.subarray(i, i + 1));
      if (i % 8 === 0) await delay(2);
    }
    const res = await peer.readResponse();
    assert.equal(res.status, 101);
    assert.equal(res.headers.get('sec-websocket-accept'), RFC_ACCEPT);
    await log.first('open');
    await peer.write(text('after a slow head'));
    await assertEchoes(peer, ['after a slow head']);
  });

  it('a handshake split inside the CR LF of its empty line is read whole', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    const head = upgradeRequest();
    await peer.write(head.slice(0, -3));
    await delay(20);
    await peer.write(head.slice(-3, -1));
    await delay(20);
    await peer.write(Buffer.concat([Buffer.from(head.slice(-1)), text('x')]));
    assert.equal((await peer.readResponse()).status, 101);
    await assertEchoes(peer, ['x']);
  });
});

describe('listen(): frames that arrive with the head (RFC 6455 §4.1: the client may send once it sent its handshake)', () => {
  it('frames in the same write as the head are parsed as frames and echoed in order', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await peer.write(Buffer.concat([Buffer.from(upgradeRequest()), text('one'), text('two'), text('three')]));
    assert.equal((await peer.readResponse()).status, 101);
    await assertEchoes(peer, ['one', 'two', 'three']);
  });

  it('with an async upgrade hook, the bytes after the head and those sent while it is pending all arrive, in order', async (t) => {
    let hookCalled!: () => void;
    const called = new Promise<void>((resolve) => (hookCalled = resolve));
    const { s, port, log } = await listenOwned(t, {}, undefined, {
      ...echo(),
      async upgrade() {
        hookCalled();
        await delay(50);
        return { accept: true };
      },
    });
    const peer = await connectNoDelay(s, port);
    await peer.write(Buffer.concat([Buffer.from(upgradeRequest()), text('with the head')]));
    await called;
    assert.equal(log.all('open').length, 0, 'the hook is still pending');
    await peer.write(text('while pending 1'));
    await peer.write(Buffer.concat([text('while pending 2'), text('while pending 3').subarray(0, 4)]));
    await delay(5);
    await peer.write(text('while pending 3').subarray(4));
    assert.equal((await peer.readResponse()).status, 101);
    await assertEchoes(peer, ['with the head', 'while pending 1', 'while pending 2', 'while pending 3']);
    await peer.write(text('after open'));
    await assertEchoes(peer, ['after open']);
  });
});

describe('listen(): strict request heads (RFC 9112), refused with their exact status and then closed', () => {
  const crlf = headWith('');
  const cases: { name: string; raw: string; status: number; maxHeaderSize?: number }[] = [
    { name: 'bare LF line endings → 400 (§2.2)', raw: crlf.replaceAll('\r\n', '\n'), status: 400 },
    { name: 'one bare LF among CR LF lines → 400 (§2.2)', raw: headWith('X-A: 1\nX-B: 2\r\n'), status: 400 },
    { name: 'obs-fold → 400 (§5.2)', raw: headWith('X-Folded: a\r\n  b\r\n'), status: 400 },
    { name: 'whitespace before a colon → 400 (§5.1)', raw: headWith('X-Space : a\r\n'), status: 400 },
    { name: 'two Host lines → 400 (§3.2)', raw: headWith(`Host: ${LOOPBACK}\r\n`), status: 400 },
    { name: 'no Host on HTTP/1.1 → 400 (§3.2)', raw: upgradeRequest({ headers: { Host: undefined } }), status: 400 },
    { name: 'an HTTP/2.0 request line → 505 (RFC 9110 §15.6.6)', raw: headWith('', 'GET / HTTP/2.0'), status: 505 },
    { name: 'a head over maxHeaderSize → 431 (RFC 6585 §5)', raw: headWith(`X-Pad: ${'p'.repeat(3000)}\r\n`), status: 431, maxHeaderSize: 1024 },
    { name: 'a handshake announcing Content-Length: 5 → 400 (RFC 9112 §6.3)', raw: headWith('Content-Length: 5\r\n'), status: 400 },
    { name: 'a handshake announcing Transfer-Encoding: chunked → 400 (RFC 9112 §6.1)', raw: headWith('Transfer-Encoding: chunked\r\n'), status: 400 },
  ];
  for (const c of cases) {
    it(c.name, async (t) => {
      const opened: string[] = [];
      const { s, wss, port, log } = await listenOwned(t, { maxHeaderSize: c.maxHeaderSize ?? 16 * 1024 }, (_req, res) => {
        opened.push('onRequest');
        res.end();
      });
      const peer = await connectNoDelay(s, port);
      await peer.write(c.raw);
      const res = await peer.readResponse();
      assert.equal(res.status, c.status, `answered ${res.status} ${res.body}`);
      await assertClosedByServer(peer);
      assert.equal(log.all('open').length, 0);
      assert.deepEqual(opened, []);
      await closedWithin(wss, 3_000);
    });
  }

  it('a malformed plain request is refused by the same parser, never reaching onRequest', async (t) => {
    const opened: string[] = [];
    const { s, port } = await listenOwned(t, {}, (req, res) => {
      opened.push(req.url ?? '');
      res.end('served');
    });
    const peer = await connectNoDelay(s, port);
    await peer.write(`GET /plain HTTP/1.1\r\nHost: ${LOOPBACK}\r\nX-Folded: a\r\n b\r\n\r\n`);
    assert.equal((await peer.readResponse()).status, 400);
    await assertClosedByServer(peer);
    assert.deepEqual(opened, []);
  });

  it('a valid handshake with Content-Length: 0 is accepted (it announces no content)', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await peer.write(Buffer.concat([Buffer.from(headWith('Content-Length: 0\r\n')), text('zero')]));
    assert.equal((await peer.readResponse()).status, 101);
    await assertEchoes(peer, ['zero']);
  });
});

describe("listen(): the upgrade hook's request", () => {
  it('is an http.IncomingMessage with the method, target, version, headers and raw headers as sent', async (t) => {
    let seen: IncomingMessage | undefined;
    const { s, port, log } = await listenOwned(t, {}, undefined, {
      ...echo(),
      upgrade(req) {
        seen = req;
      },
    });
    const peer = await connectNoDelay(s, port);
    const lines: [string, string][] = [
      ['Host', `${LOOPBACK}:${port}`],
      ['upgrade', 'websocket'],
      ['CONNECTION', 'Upgrade'],
      ['Sec-WebSocket-Key', RFC_KEY],
      ['Sec-WebSocket-Version', '13'],
      ['X-Foo', 'first'],
      ['Cookie', 'a=1'],
      ['x-FOO', 'second'],
      ['Cookie', 'b=2'],
    ];
    const target = '/chat/room?user=ann&x=%20y';
    await peer.write(`GET ${target} HTTP/1.1\r\n${lines.map(([n, v]) => `${n}:  ${v} \r\n`).join('')}\r\n`);
    assert.equal((await peer.readResponse()).status, 101);
    await log.first('open');
    assert.ok(seen instanceof IncomingMessage, 'req is an http.IncomingMessage');
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, target);
    assert.equal(seen.httpVersion, '1.1');
    assert.equal(seen.headers.host, `${LOOPBACK}:${port}`);
    assert.equal(seen.headers.upgrade, 'websocket');
    assert.equal(seen.headers.connection, 'Upgrade');
    assert.equal(seen.headers['x-foo'], 'first, second');
    assert.equal(seen.headers.cookie, 'a=1; b=2');
    assert.deepEqual(seen.rawHeaders, lines.flat());
    assert.equal(seen.socket.remoteAddress, LOOPBACK);
  });
});

describe('listen(): how the head is read', () => {
  it('through the read buffer every socket shares, from the first byte (where this Node has it), and the open connection goes on that way', async (t) => {
    let duringHead: boolean | undefined;
    const { s, port, log } = await listenOwned(t, {}, undefined, {
      ...echo(),
      upgrade(req) {
        duringHead = readsIntoSharedBuffer(req.socket);
      },
    });
    const peer = await connectNoDelay(s, port);
    await peer.write(headWith('').slice(0, 20));
    await delay(20);
    await peer.write(headWith('').slice(20));
    assert.equal((await peer.readResponse()).status, 101);
    const { ws } = await log.first('open');
    assert.equal(duringHead, SHARED_READ_BUFFER);
    assert.equal(readsIntoSharedBuffer((ws as unknown as { stream: Socket }).stream), SHARED_READ_BUFFER);
    await peer.write(text('after'));
    await assertEchoes(peer, ['after']);
  });
});

describe('listen(): handshakeTimeout', () => {
  it('a client that sends half a head gets 408 and its connection is closed', async (t) => {
    const { s, wss, port, log } = await listenOwned(t, { handshakeTimeout: 300 });
    const peer = await connectNoDelay(s, port);
    await peer.write(upgradeRequest().slice(0, 40));
    const res = await peer.readResponse(3_000);
    assert.equal(res.status, 408);
    await assertClosedByServer(peer);
    assert.equal(log.all('open').length, 0);
    await closedWithin(wss, 3_000);
  });

  it('a client that sends nothing at all is closed too', async (t) => {
    const { s, port } = await listenOwned(t, { handshakeTimeout: 300 });
    const peer = await connectNoDelay(s, port);
    const res = await peer.readResponse(3_000);
    assert.equal(res.status, 408);
    await assertClosedByServer(peer);
  });

  it('a complete handshake before the timeout is not cut by it', async (t) => {
    const { s, port } = await listenOwned(t, { handshakeTimeout: 300 });
    const peer = await connectNoDelay(s, port);
    await peer.write(upgradeRequest());
    assert.equal((await peer.readResponse()).status, 101);
    await delay(700);
    await peer.write(text('still open'));
    await assertEchoes(peer, ['still open']);
  });
});
