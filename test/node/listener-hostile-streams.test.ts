/**
 * Hostile byte streams against a server that owns its port (`listen()`):
 * pipelined requests and handshakes in one write, frames and garbage right
 * behind a handshake, and clients that reset or half-close at every point of
 * a connection's start. Expectations: RFC 9112 §9.3.2 (responses in request
 * order), §9.6 (Connection: close), RFC 6455 §4.1 (a client may send frames
 * once its handshake is sent) and §7.4.1 (1002 for a protocol error); a
 * client that goes away leaves nothing behind (no WebSocket in
 * `server.clients`, no socket or timer keeping the process alive).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clientFrame } from '../helpers/frames.js';
import {
  aliveBaseline,
  allUntilClosed,
  assertClosedByServer,
  assertEchoes,
  connectNoDelay,
  echoRequest,
  get,
  leaveNoTcpBehind,
  listenOwned,
  text,
} from '../helpers/listener.js';
import { LOOPBACK, delay, rawOpen, until, upgradeRequest, type RawPeer } from '../helpers/raw-client.js';

leaveNoTcpBehind();

/** The server still works: a fresh connection gets 101 and an echo. */
async function stillServes(port: number): Promise<void> {
  const { peer } = await rawOpen(port);
  try {
    await peer.write(text('still serving'));
    await assertEchoes(peer, ['still serving']);
  } finally {
    peer.destroy();
  }
}

describe('listen(): pipelining (RFC 9112 §9.3.2: responses in the order of the requests)', () => {
  it('a POST with its body and a GET in one write are both served, in order', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(`POST /p HTTP/1.1\r\nHost: ${LOOPBACK}\r\nContent-Length: 4\r\n\r\nbody${get('/g')}`);
    assert.equal((await peer.readResponse()).body, 'POST /p body');
    assert.equal((await peer.readResponse()).body, 'GET /g ');
  });

  it('a GET, a handshake and frames in one write: 200, then 101, then the echoes; later frames work too', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(Buffer.concat([Buffer.from(get('/first') + upgradeRequest()), text('piped 1'), text('piped 2')]));
    const first = await peer.readResponse();
    assert.equal(first.status, 200, `the first response is a ${first.status}`);
    assert.equal(first.body, 'GET /first ');
    assert.equal((await peer.readResponse()).status, 101);
    await assertEchoes(peer, ['piped 1', 'piped 2']);
    await peer.write(text('later'));
    await assertEchoes(peer, ['later']);
  });

  it('a handshake followed by 50 frames and a ping in the same write: every frame is delivered, in order', async (t) => {
    const { s, port } = await listenOwned(t);
    const peer = await connectNoDelay(s, port);
    const payloads = Array.from({ length: 50 }, (_, i) => `frame ${i} ${'x'.repeat(i * 7)}`);
    const ping = clientFrame({ opcode: 0x9, payload: 'are you there' });
    await peer.write(Buffer.concat([Buffer.from(upgradeRequest()), ...payloads.map(text), ping]));
    assert.equal((await peer.readResponse()).status, 101);
    await assertEchoes(peer, payloads);
    const pong = await peer.readFrame();
    assert.equal(pong.opcode, 0xa);
    assert.equal(pong.payload.toString('utf8'), 'are you there');
  });

  const garbage: [string, Buffer][] = [
    ['an HTTP request where a frame belongs', Buffer.from(get('/not-a-frame'))],
    ['bytes with the reserved bits and opcode set', Buffer.alloc(16, 0xff)],
  ];
  for (const [name, bytes] of garbage) {
    it(`a handshake followed by ${name}: 101, then close 1002 and the connection ends; the server keeps serving (RFC 6455 §5.2, §7.4.1)`, async (t) => {
      const { s, wss, port, log } = await listenOwned(t);
      const peer = await connectNoDelay(s, port);
      await peer.write(Buffer.concat([Buffer.from(upgradeRequest()), bytes]));
      assert.equal((await peer.readResponse()).status, 101);
      assert.equal((await peer.readClose()).code, 1002);
      await assertClosedByServer(peer, 8_000);
      // RFC 6455 §7.1.5: no close frame came back, so the server's own close code is 1006.
      assert.equal((await log.first('close')).code, 1006);
      await until('server.clients to empty', () => wss.clients.size === 0);
      await stillServes(port);
    });
  }

  it('a malformed head pipelined behind a valid GET: the GET is answered first, never a 4xx in its place', async (t) => {
    const { s, port } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/first') + get('/second', 'X-Bad : space before colon\r\n'));
    const all = await allUntilClosed(peer);
    assert.match(all, /^HTTP\/1\.1 200 [^]*GET \/first /, `the first response on the wire is not the GET's 200: ${JSON.stringify(all.slice(0, 200))}`);
  });

  it('a GET with Connection: close and a handshake behind it in one write: 200, then the connection closes; no 101 (RFC 9112 §9.6)', async (t) => {
    const { s, port, log } = await listenOwned(t, {}, echoRequest);
    const peer = await connectNoDelay(s, port);
    await peer.write(get('/last', 'Connection: close\r\n') + upgradeRequest());
    const all = await allUntilClosed(peer);
    assert.doesNotMatch(all, /HTTP\/1\.1 101 /, 'the server processed a request after Connection: close');
    assert.match(all, /^HTTP\/1\.1 200 [^]*GET \/last /, `the response to the close request is missing: ${JSON.stringify(all.slice(0, 200))}`);
    assert.equal(log.all('open').length, 0);
  });
});

type Ending = 'RST' | 'half-close';
const endings: Ending[] = ['RST', 'half-close'];

/** Ends the client's side of `peer`: a TCP reset, or a FIN (end()) with the socket still reading. */
function endClient(peer: RawPeer, how: Ending): void {
  if (how === 'RST') peer.socket.resetAndDestroy();
  else peer.socket.end();
}

describe('listen(): a client that goes away at any point leaves nothing behind', () => {
  const points: { name: string; send: string; await101?: true; onRequest?: true }[] = [
    { name: 'in the middle of a handshake head', send: upgradeRequest().slice(0, 50) },
    { name: 'right after a handshake head', send: upgradeRequest() },
    { name: 'right after the 101', send: upgradeRequest(), await101: true },
    { name: 'right after a plain request head', send: get('/gone'), onRequest: true },
  ];
  for (const point of points) {
    for (const how of endings) {
      it(`${how} ${point.name}`, async (t) => {
        const { s, wss, port } = await listenOwned(t, {}, point.onRequest ? echoRequest : undefined);
        const alive = aliveBaseline();
        const peer = await connectNoDelay(s, port);
        await peer.write(point.send);
        if (point.await101) assert.equal((await peer.readResponse()).status, 101);
        endClient(peer, how);
        // A half-closed client still reads: the server must end its side too.
        if (how === 'half-close') await assertClosedByServer(peer, 8_000);
        await until(`server.clients to empty (size ${wss.clients.size})`, () => wss.clients.size === 0, 8_000);
        await alive();
        await stillServes(port);
      });
    }
  }

  it('200 clients that each reset halfway through a head: none is left behind and the server keeps serving', async (t) => {
    const { s, wss, port } = await listenOwned(t);
    const alive = aliveBaseline();
    const head = upgradeRequest();
    const peers = await Promise.all(Array.from({ length: 200 }, () => s.connect(port)));
    await Promise.all(peers.map((p, i) => p.write(head.slice(0, 1 + (i % (head.length - 1))))));
    await delay(20);
    for (const [i, p] of peers.entries()) endClient(p, i % 2 === 0 ? 'RST' : 'half-close');
    await until('every client socket to close', () => peers.every((p) => p.closed), 10_000);
    await alive();
    assert.equal(wss.clients.size, 0);
    await stillServes(port);
  });
});
