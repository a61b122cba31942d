/**
 * permessage-deflate streams released while a connection is idle, against
 * independent peers that keep their context (RFC 7692 §7.1.1): the `ws`
 * client and server, and Python `websockets` pausing long enough for the real
 * idle sweep. After a release, the peer's next messages still refer back
 * into messages from before it, and our next messages start a fresh context;
 * every echo must match byte for byte.
 */
import { once } from 'node:events';
import type net from 'node:net';
import assert from 'node:assert/strict';
import { before, describe, it, type TestContext } from 'node:test';
import { WebSocketServer as WsServer, type WebSocket as WsSocket } from 'ws';
import { WebSocket } from '../../src/index.js';
import { liveDeflateContexts, releaseIdleDeflateContexts } from '../../src/protocol/deflate.js';
import { LOOPBACK, Scope as ClientScope, WAIT_MS, withTimeout } from '../helpers/client-peer.js';
import { PY_DIR, requirePythonWebsockets, runPython } from '../helpers/python.js';
import { tapReads, tapWrites } from '../helpers/frame-tap.js';
import type { RawFrame } from '../helpers/raw-client.js';
import { echo, listening, wsOpened } from '../helpers/server-harness.js';

/** Compressible JSON lines, different for each seed. */
function records(n: number, seed: number): Buffer {
  let s = '';
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: (seed * 31 + i) % 97, room: 'lobby', text: `message ${seed}/${i}` }) + '\n';
  return Buffer.from(s.slice(0, n));
}

const MESSAGES = [200, 1100, 2000, 2900, 3800, 4700].map((n, k) => records(n, k));

/** Payload bytes of each round of `n` frames. */
const perRound = (frames: readonly RawFrame[], n: number): number[] =>
  [0, 1, 2].map((r) => frames.slice(r * n, (r + 1) * n).reduce((a, f) => a + f.payload.length, 0));

const socketOf = (ws: WsSocket): net.Socket => (ws as unknown as { _socket: net.Socket })._socket;

/** The next `n` messages a `ws` socket receives, as Buffers. */
function nextMessages(ws: WsSocket, n: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return withTimeout(
    new Promise((resolve) => {
      const on = (data: Buffer): void => {
        got.push(Buffer.from(data));
        if (got.length === n) {
          ws.off('message', on);
          resolve(got);
        }
      };
      ws.on('message', on);
    }),
    WAIT_MS,
    `${n} messages`,
  );
}

/** The sweep twice: every stream idle since the first call is released by the second. */
function sweepIdle(): void {
  releaseIdleDeflateContexts();
  releaseIdleDeflateContexts();
  assert.equal(liveDeflateContexts(), 0, 'every codec released its streams');
}

describe('ws client ⇄ our server: streams released between messages', () => {
  it('the client still refers back across the release, our fresh compressor is read by its window; all echoes match', async (t) => {
    const { s, port } = await listening(t, { perMessageDeflate: { threshold: 0 } }, echo());
    const url = `ws://${LOOPBACK}:${port}/`;
    const ws = s.rawClient(url, undefined, { perMessageDeflate: { threshold: 0 } });
    await wsOpened(ws, url);
    const fromServer = tapReads(socketOf(ws));
    const fromClient = tapWrites(socketOf(ws));
    for (const round of [0, 1, 2]) {
      const got = nextMessages(ws, MESSAGES.length);
      for (const m of MESSAGES) ws.send(m, { binary: true });
      const echoes = await got;
      MESSAGES.forEach((m, i) => assert.ok(echoes[i]!.equals(m), `round ${round}, message ${i}`));
      sweepIdle();
    }
    // ws kept its context: after the first round its messages refer back across our releases.
    const sent = perRound(fromClient, MESSAGES.length);
    assert.ok(sent[1]! < sent[0]! / 3 && sent[2]! < sent[0]! / 3, `client bytes per round ${sent.join(', ')}`);
    // Every echo after a release starts with a fresh context: the rounds compress alike.
    assert.deepEqual(fromServer.map((f) => f.rsv & 4), fromServer.map(() => 4), 'every echo is compressed');
    const echoed = perRound(fromServer, MESSAGES.length);
    assert.deepEqual([echoed[1], echoed[2]], [echoed[0], echoed[0]], `echo bytes per round ${echoed.join(', ')}`);
  });
});

describe('our client ⇄ ws server: streams released between messages', () => {
  it('its server refers back across our release; our fresh compressor is read by its window; all echoes match', async (t) => {
    const s = new ClientScope();
    t.after(() => s.dispose());
    const wss = new WsServer({ host: LOOPBACK, port: 0, perMessageDeflate: { threshold: 0 } });
    await once(wss, 'listening');
    s.add(() => new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => resolve());
    }));
    let toClient: RawFrame[] = [];
    wss.on('connection', (peer) => {
      toClient = tapWrites(socketOf(peer));
      peer.on('message', (data, binary) => peer.send(data as Buffer, { binary }));
    });
    const address = wss.address();
    assert.ok(typeof address === 'object' && address !== null);
    const ws = s.client(new WebSocket(`ws://${LOOPBACK}:${address.port}/`, undefined, { perMessageDeflate: { threshold: 0 } }));
    ws.binaryType = 'nodebuffer';
    await withTimeout(once(ws, 'open'), WAIT_MS, 'open');
    const received: Buffer[] = [];
    ws.addEventListener('message', (e) => received.push(e.data as Buffer));
    for (const round of [0, 1, 2]) {
      const before = received.length;
      for (const m of MESSAGES) ws.send(m);
      const deadline = Date.now() + WAIT_MS;
      while (received.length < before + MESSAGES.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      MESSAGES.forEach((m, i) => assert.ok(received[before + i]?.equals(m), `round ${round}, message ${i}`));
      sweepIdle();
    }
    // ws kept its context: its echoes after the first round refer back (much smaller than the first).
    const echoed = perRound(toClient, MESSAGES.length);
    assert.ok(echoed[1]! < echoed[0]! / 3 && echoed[2]! < echoed[0]! / 3, `echo bytes per round ${echoed.join(', ')}`);
    ws.close(1000);
  });
});

describe('interop: Python websockets pausing past the idle sweep', () => {
  before(async () => {
    await requirePythonWebsockets();
  });

  it('its client (context takeover both ways) is released during the pause and every echo after it matches', { timeout: 60_000 }, async (t) => {
    const { port } = await listening(t, { perMessageDeflate: true }, echo());
    const python = runPython([PY_DIR + 'deflate_pause_client.py', `ws://${LOOPBACK}:${port}/`, '6'], 45_000);
    // The real sweep (every 2 s) releases the connection's streams within 4 s of its last message.
    let sawLive = false;
    let released = false;
    const deadline = Date.now() + 30_000;
    while (!released && Date.now() < deadline) {
      const live = liveDeflateContexts();
      if (live > 0) sawLive = true;
      else if (sawLive) released = true;
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = await python;
    assert.equal(result.code, 0, `client failed:\n${result.stdout}\n${result.stderr}`);
    assert.doesNotMatch(result.stdout, /MISMATCH/);
    assert.match(result.stdout, /^extensions permessage-deflate/m);
    assert.equal(result.stdout.match(/^ok after /gm)?.length, MESSAGES.length);
    assert.ok(sawLive && released, 'the server released its zlib streams during the pause');
  });
});
