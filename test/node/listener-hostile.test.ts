/**
 * Hostile request heads against a server that owns its port (`listen()`):
 * request-smuggling shapes, oversized heads, and the versions, methods and
 * target forms RFC 9112 names. Each shape goes on the FIRST head of a
 * connection (read by src/protocol/http1.ts) and on a LATER head of a
 * kept-alive plain HTTP connection (read by node:http after the handoff).
 * Expectations come from RFC 9112 / RFC 9110 / RFC 6455 §4 and the README's
 * listen() section: a refusal is a 4xx and a closed connection, never a 101,
 * never a hang, and a smuggled request or frame behind it is never served.
 * The file checks no TCP handle is left behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  allUntilClosed,
  assertClosedByServer,
  assertEchoes,
  connectionIn,
  connectNoDelay,
  get,
  leaveNoTcpBehind,
  listenOwned,
  text,
  type Phase,
} from '../helpers/listener.js';
import { LOOPBACK, upgradeRequest, type RawPeer } from '../helpers/raw-client.js';

leaveNoTcpBehind();

/** A valid handshake head (RFC 6455 §4.1) with `extra` raw field lines (CR LF terminated) before the empty line. */
const handshakeWith = (extra: string, path = '/'): string => upgradeRequest({ path }).slice(0, -2) + extra + '\r\n';

/** A frame the echo handler would answer: if it is echoed, bytes announced as a body were read as frames. */
const smuggledFrame = text('smuggled');

/**
 * Reads everything until the server closes and asserts a refusal: no 101
 * anywhere, and a first response with a 4xx status. Returns that status.
 */
async function assertRefused(peer: RawPeer): Promise<number> {
  const closed = await peer.waitClosed(5_000).then(
    () => true,
    () => false,
  );
  const all = peer.release().toString('latin1');
  const shown = JSON.stringify(all.slice(0, 240));
  assert.doesNotMatch(all, /HTTP\/1\.1 101 /, `a 101 was sent: ${shown}`);
  assert.ok(closed, `the connection is still open 5 s later; received: ${shown}`);
  assert.ok(peer.ended || peer.error !== null, 'the connection closed without the server ending it');
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(all);
  assert.ok(m, `the connection closed with no HTTP response: ${shown}`);
  const status = Number(m[1]);
  assert.ok(status >= 400 && status < 500, `answered ${status}, not a 4xx: ${shown}`);
  return status;
}

const phases: Phase[] = ['first head', 'second head'];

describe('listen(): request smuggling shapes get a 4xx and a closed connection, never a 101 (RFC 9112 §6, §5, §2.2)', () => {
  const shapes: { name: string; raw: Buffer }[] = [
    {
      name: 'Content-Length with Transfer-Encoding on a POST (RFC 9112 §6.1)',
      raw: Buffer.from(`POST /s HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${get('/smuggled')}`),
    },
    {
      name: 'Content-Length with Transfer-Encoding on a handshake (RFC 9112 §6.1)',
      raw: Buffer.concat([Buffer.from(handshakeWith(`Content-Length: ${smuggledFrame.length}\r\nTransfer-Encoding: chunked\r\n`)), smuggledFrame]),
    },
    {
      name: 'two different Content-Lengths (RFC 9112 §6.3)',
      raw: Buffer.from(`POST /s HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc${get('/smuggled')}`),
    },
    {
      name: 'Transfer-Encoding: chunked on a handshake (RFC 6455 §4.1: a GET; README: 400)',
      raw: Buffer.concat([Buffer.from(handshakeWith('Transfer-Encoding: chunked\r\n')), Buffer.from(`${smuggledFrame.length.toString(16)}\r\n`), smuggledFrame, Buffer.from('\r\n0\r\n\r\n')]),
    },
    {
      name: 'a handshake GET with a body (README: 400 for a handshake that announces a body)',
      raw: Buffer.concat([Buffer.from(handshakeWith(`Content-Length: ${smuggledFrame.length}\r\n`)), smuggledFrame]),
    },
    { name: 'obs-fold in a handshake (RFC 9112 §5.2)', raw: Buffer.from(handshakeWith('X-Folded: a\r\n Transfer-Encoding: chunked\r\n')) },
    { name: 'whitespace before a colon (RFC 9112 §5.1)', raw: Buffer.from(handshakeWith('Transfer-Encoding : chunked\r\n')) },
    { name: 'NUL in a field value (RFC 9110 §5.5)', raw: Buffer.from(handshakeWith('X-Nul: a\0b\r\n')) },
    { name: 'bare CR inside a field line (RFC 9112 §2.2)', raw: Buffer.from(handshakeWith('X-A: a\rTransfer-Encoding: chunked\r\n')) },
    { name: 'bare LF ending a field line (RFC 9112 §2.2, README: CR LF only)', raw: Buffer.from(handshakeWith('X-A: a\nTransfer-Encoding: chunked\r\n')) },
  ];
  for (const phase of phases) {
    for (const shape of shapes) {
      it(`${phase}: ${shape.name}`, async (t) => {
        const { peer, served, before, log } = await connectionIn(t, phase);
        await peer.write(shape.raw);
        await assertRefused(peer);
        assert.equal(log.all('open').length, 0, 'no WebSocket was opened');
        assert.equal(log.all('message').length, 0, 'no smuggled frame was read');
        assert.deepEqual(served, before, 'no smuggled request was served');
      });
    }
  }
});

describe('listen(): oversized heads are refused by status, then closed', () => {
  const shapes: { name: string; raw: string; statuses: number[]; maxHeaderSize?: number }[] = [
    { name: 'a head over maxHeaderSize (16 KiB default) → 431 (RFC 6585 §5)', raw: get('/', `X-Pad: ${'p'.repeat(20 * 1024)}\r\n`), statuses: [431] },
    // RFC 9112 §3: a target longer than the server parses is 414; one that is
    // also longer than the whole head limit may be counted against that (431).
    { name: 'a request-target over its limit (and over maxHeaderSize) → 414 or 431 (RFC 9112 §3)', raw: get(`/${'t'.repeat(17 * 1024)}`), statuses: [414, 431] },
    { name: '10,000 tiny header lines → 431 (RFC 6585 §5)', raw: get('/', 'a:b\r\n'.repeat(10_000)), statuses: [431] },
  ];
  for (const phase of phases) {
    for (const shape of shapes) {
      it(`${phase}: ${shape.name}`, async (t) => {
        const { peer, served, before } = await connectionIn(t, phase);
        await peer.write(shape.raw);
        const status = await assertRefused(peer);
        assert.ok(shape.statuses.includes(status), `answered ${status}, expected ${shape.statuses.join(' or ')}`);
        assert.deepEqual(served, before);
      });
    }
  }

  it('first head: a request-target of 9 KiB, within maxHeaderSize but over the target limit → 414 (RFC 9112 §3)', async (t) => {
    const { peer } = await connectionIn(t, 'first head');
    await peer.write(get(`/${'t'.repeat(9 * 1024)}`));
    assert.equal(await assertRefused(peer), 414);
  });

  for (const phase of phases) {
    it(`${phase}: a head that never ends gets 431 once past maxHeaderSize, and the connection is closed while the client still writes`, async (t) => {
      const { peer } = await connectionIn(t, phase, { maxHeaderSize: 4096 });
      await peer.write(`GET /endless HTTP/1.1\r\nHost: ${LOOPBACK}\r\n`);
      const line = Buffer.from(`X-More: ${'m'.repeat(1015)}\r\n`);
      // At most 16 MiB offered; a write the kernel does not take at once is not awaited.
      let written = 0;
      while (!peer.ended && !peer.closed && peer.error === null && peer.buffered === 0 && written < 16 * 1024 * 1024) {
        const taken = peer.write(line).catch(() => undefined);
        written += line.length;
        await Promise.race([taken, new Promise((resolve) => setTimeout(resolve, 20))]);
      }
      assert.ok(written < 16 * 1024 * 1024, `the server answered nothing while ${written} bytes of head were offered`);
      assert.equal(await assertRefused(peer), 431);
    });
  }
});

describe('listen(): HTTP versions, methods and request-target forms', () => {
  it('an HTTP/1.0 plain GET without Host is served, then closed (RFC 9112 §3.2, §9.3: 1.0 is not persistent)', async (t) => {
    const { peer, served } = await connectionIn(t, 'first head');
    await peer.write('GET /old HTTP/1.0\r\n\r\n');
    const res = await peer.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body, 'GET /old ');
    await assertClosedByServer(peer);
    assert.deepEqual(served, ['/old']);
  });

  for (const phase of phases) {
    it(`${phase}: an HTTP/1.0 handshake is refused with 400 (RFC 6455 §4.1 needs HTTP/1.1; §4.2.1: 400)`, async (t) => {
      const { peer, log } = await connectionIn(t, phase);
      await peer.write(upgradeRequest({ version: '1.0' }));
      assert.equal(await assertRefused(peer), 400);
      assert.equal(log.all('open').length, 0);
    });
  }

  it('a plain GET with Connection: close is answered with close, then the server closes (RFC 9112 §9.6)', async (t) => {
    const { peer } = await connectionIn(t, 'first head');
    await peer.write(get('/bye', 'Connection: close\r\n'));
    const res = await peer.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('connection')?.toLowerCase(), 'close');
    await assertClosedByServer(peer);
  });

  it('a POST with Expect: 100-continue gets 100, then its body is read and answered (RFC 9110 §10.1.1)', async (t) => {
    const { peer, served } = await connectionIn(t, 'first head');
    await peer.write(`POST /expect HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n`);
    assert.equal((await peer.readResponse()).status, 100);
    await peer.write('body');
    const res = await peer.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body, 'POST /expect body');
    assert.deepEqual(served, ['/expect']);
  });

  it('CONNECT in authority-form is answered with a status, not dropped without one (RFC 9110 §9.1: 501 for a method not implemented)', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    await peer.write(`CONNECT ${LOOPBACK}:443 HTTP/1.1\r\nHost: ${LOOPBACK}:443\r\n\r\n`);
    const all = await allUntilClosed(peer);
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(all);
    assert.ok(m, `the connection closed with no HTTP response: ${JSON.stringify(all)}`);
    assert.ok(Number(m[1]) >= 400, `answered ${m[1]}`);
  });

  for (const phase of phases) {
    it(`${phase}: a GET offering Upgrade: h2c (as curl --http2 sends) is served as HTTP/1.1 by onRequest (RFC 9110 §7.8: a server may ignore Upgrade)`, async (t) => {
      const { peer, served, before } = await connectionIn(t, phase);
      await peer.write(get('/page', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n'));
      const res = await peer.readResponse();
      assert.equal(res.status, 200, `answered ${res.status} ${res.body}`);
      assert.deepEqual(served, [...before, '/page']);
    });
  }

  it('OPTIONS * (asterisk-form) reaches onRequest as "*" (RFC 9112 §3.2.4)', async (t) => {
    const { peer, served } = await connectionIn(t, 'first head');
    await peer.write(`OPTIONS * HTTP/1.1\r\nHost: ${LOOPBACK}\r\n\r\n`);
    assert.equal((await peer.readResponse()).body, 'OPTIONS * ');
    assert.deepEqual(served, ['*']);
  });

  it('an absolute-form plain GET reaches onRequest (RFC 9112 §3.2.2: a server MUST accept absolute-form)', async (t) => {
    const { peer, served, port } = await connectionIn(t, 'first head');
    const target = `http://${LOOPBACK}:${port}/abs?q=1`;
    await peer.write(`GET ${target} HTTP/1.1\r\nHost: ${LOOPBACK}\r\n\r\n`);
    assert.equal((await peer.readResponse()).status, 200);
    assert.deepEqual(served, [target]);
  });

  it('an absolute-form handshake for the server\'s path is accepted: 101 and frames (RFC 9112 §3.2.2)', async (t) => {
    const { peer, port } = await connectionIn(t, 'first head', { path: '/chat' });
    await peer.write(upgradeRequest({ path: `http://${LOOPBACK}:${port}/chat` }));
    const res = await peer.readResponse();
    assert.equal(res.status, 101, `answered ${res.status} ${res.body}`);
    await peer.write(text('absolute'));
    await assertEchoes(peer, ['absolute']);
  });
});
