/**
 * Read-side flow control (issue 10): a peer that keeps sending but never
 * reads what the server writes back must not grow the server's memory
 * without bound. The server stops reading from it while its buffered output
 * is over `maxBackpressure`, and resumes once that output drains; nothing is
 * lost or reordered on the way.
 */
import { describe, it, type TestContext } from 'node:test';
import { Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import assert from 'node:assert/strict';
import { WebSocketServer, type ServerWebSocket } from '../../src/index.js';
import { LOOPBACK, rawOpen, until, withTimeout } from '../helpers/raw-client.js';
import { scopeFor } from '../helpers/server-harness.js';
import { StreamPeer } from '../helpers/stream-peer.js';

const MIB = 1024 * 1024;
const MESSAGES = 200;
const MAX_BACKPRESSURE = 4 * MIB;
/** A 1 MiB binary frame from the server: FIN|binary, 127, an 8-byte length. */
const ECHO_FRAME = MIB + 10;
const MASK = [0x37, 0xfa, 0x21, 0x3d] as const;
/** Sequence numbers of the open handler's own messages, apart from the echoes'. */
const GREETING = 1_000_000;

/** Message `seq`: 1 MiB whose first four bytes are `seq` and the rest a fill that depends on it. */
function numbered(seq: number): Buffer {
  const b = Buffer.alloc(MIB, (seq * 7 + 1) & 0xff);
  b.writeUInt32BE(seq, 0);
  return b;
}

/**
 * Message `seq` as a client's masked binary frame (RFC 6455 §5.3), built
 * without a byte loop: the masked fill is a 4-byte repeating pattern.
 */
function maskedFrame(seq: number): Buffer {
  const fill = (seq * 7 + 1) & 0xff;
  const frame = Buffer.allocUnsafe(14 + MIB);
  frame[0] = 0x82;
  frame[1] = 0x80 | 127;
  frame.writeBigUInt64BE(BigInt(MIB), 2);
  frame.set(MASK, 10);
  frame.fill(Buffer.from(MASK.map((k) => k ^ fill)), 14);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(seq, 0);
  for (let i = 0; i < 4; i++) frame[14 + i] = (head[i] ?? 0) ^ (MASK[i] ?? 0);
  return frame;
}

interface Phase1 {
  /** Messages the server's handler received while the peer read nothing. */
  received: number;
  /** Frames the peer had handed to its stream. */
  written: number;
  /** Whether the peer's writes were blocked (the server stopped reading). */
  stalled: boolean;
  /** The most the server buffered for the peer. */
  maxBuffered: number;
  /** The peer reads from now on; resolves once every frame arrived as it should. */
  finish(): Promise<void>;
}

/**
 * An echo server and a peer that sends `messages` × 1 MiB and reads nothing
 * (after the open handler sent `greeting` × 1 MiB of its own), over TCP or
 * over an in-memory Duplex (acceptStream), run until the server stops
 * taking messages or a minute passes.
 */
async function echoToPeerThatDoesNotRead(t: TestContext, messages: number, greeting = 0, transport: 'tcp' | 'memory' = 'tcp'): Promise<Phase1> {
  const s = scopeFor(t);
  let server: ServerWebSocket | null = null;
  let received = 0;
  let outOfOrder = -1;
  const wss = s.server(
    new WebSocketServer({
      maxBackpressure: MAX_BACKPRESSURE,
      handler: {
        open: (ws) => {
          server = ws;
          for (let k = 0; k < greeting; k++) ws.send(numbered(GREETING + k));
        },
        message: (ws, data, isBinary) => {
          if (!isBinary || data.length !== MIB || data.readUInt32BE(0) !== received) outOfOrder = received;
          received++;
          ws.send(data);
        },
      },
    }),
  );
  // The peer's two directions: a TCP socket after an HTTP/1.1 handshake, or
  // two in-memory pipes behind a Duplex given to acceptStream.
  let output: Writable;
  let input: Readable;
  let reader: StreamPeer;
  if (transport === 'tcp') {
    const { port } = await wss.listen(0, LOOPBACK);
    const { peer } = await rawOpen(port);
    s.peer(peer);
    output = input = peer.socket;
    input.pause();
    // A StreamPeer reads the socket from here on, starting with what arrived behind the 101.
    reader = new StreamPeer(output, input, peer.release());
  } else {
    const toServer = new PassThrough();
    const toPeer = new PassThrough();
    output = toServer;
    input = toPeer;
    reader = new StreamPeer(output, input);
    input.pause();
    wss.acceptStream(Duplex.from({ readable: toServer, writable: toPeer }));
    t.after(() => {
      toServer.destroy();
      toPeer.destroy();
    });
  }
  await until('the server connection', () => server !== null);
  const ws = server as ServerWebSocket | null;
  assert.ok(ws !== null);

  // The writer honours its own stream's backpressure, so the test process
  // holds at most a frame or two of the peer's output.
  let written = 0;
  let stalled = false;
  const writer = (async () => {
    for (let i = 0; i < messages && !output.destroyed; i++) {
      if (!output.write(maskedFrame(i))) {
        stalled = true;
        await new Promise<void>((resolve) => {
          output.once('drain', resolve);
          output.once('close', resolve);
        });
        stalled = false;
      }
      written++;
    }
  })();

  // Phase 1: the peer reads nothing. Wait until the server has stopped
  // taking messages (no progress for a while, the writer blocked), or it took them all.
  let maxBuffered = 0;
  let last = -1;
  let quietSince = Date.now();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && received < messages) {
    maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
    if (received !== last) {
      last = received;
      quietSince = Date.now();
    } else if (stalled && Date.now() - quietSince > 750) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const phase1 = { received, written, stalled, maxBuffered };

  const finish = async (): Promise<void> => {
    // Phase 2: the peer reads. The greeting, then every echo arrives, in
    // order, intact, while the writer finishes sending.
    input.resume();
    for (let k = 0; k < greeting; k++) {
      const f = await reader.readFrame(60_000);
      assert.ok(f.payload.equals(numbered(GREETING + k)), `greeting ${k} differs`);
    }
    for (let i = 0; i < messages; i++) {
      const f = await reader.readFrame(60_000);
      assert.equal(f.opcode, 0x2, `echo ${i}: opcode`);
      assert.equal(f.masked, false);
      assert.equal(f.payload.length, MIB, `echo ${i}: length`);
      assert.equal(f.payload.readUInt32BE(0), i, `echo ${i} out of order`);
      assert.ok(f.payload.equals(numbered(i)), `echo ${i}: payload differs`);
    }
    await withTimeout(writer, 10_000, 'the writer to finish');
    assert.equal(written, messages);
    assert.equal(received, messages, 'the server received every message once the peer read');
    assert.equal(outOfOrder, -1, `message ${outOfOrder} reached the handler out of order or altered`);

    // The connection is still sound: a closing handshake completes.
    reader.sendClose(1000, 'done');
    const close = await reader.readFrame(10_000);
    assert.equal(close.opcode, 0x8);
    assert.equal(close.payload.readUInt16BE(0), 1000);
  };
  return { ...phase1, finish };
}

describe('read-side flow control: a peer that sends but never reads', () => {
  it(`echo of ${MESSAGES} × 1 MiB: the server stops reading while the peer does not, then everything arrives intact and in order`, { timeout: 180_000 }, async (t) => {
    const run = await echoToPeerThatDoesNotRead(t, MESSAGES);
    assert.ok(run.stalled, `the writer never blocked (wrote ${run.written}, server received ${run.received})`);
    assert.ok(run.received < MESSAGES, `the server read all ${MESSAGES} messages from a peer that reads nothing`);
    assert.ok(run.maxBuffered <= MAX_BACKPRESSURE + ECHO_FRAME, `the server buffered ${run.maxBuffered} bytes for the peer (limit ${MAX_BACKPRESSURE} + one message)`);
    await run.finish();
  });

  it('output the open handler queued counts too: reading stays stopped from the start', { timeout: 180_000 }, async (t) => {
    // The open handler queues more than maxBackpressure before the server
    // first reads: the server must not read from the peer until it drains.
    const greeting = 8;
    const messages = 64;
    const run = await echoToPeerThatDoesNotRead(t, messages, greeting);
    assert.ok(run.stalled, `the writer never blocked (wrote ${run.written}, server received ${run.received})`);
    assert.ok(run.received < messages, `the server read all ${messages} messages from a peer that reads nothing`);
    assert.ok(
      run.maxBuffered <= greeting * ECHO_FRAME + MAX_BACKPRESSURE + ECHO_FRAME,
      `the server buffered ${run.maxBuffered} bytes for the peer (the greeting, plus at most the limit and one message)`,
    );
    await run.finish();
  });

  it('over a stream that is not a socket (an in-memory Duplex given to acceptStream) too', { timeout: 180_000 }, async (t) => {
    const messages = 64;
    const run = await echoToPeerThatDoesNotRead(t, messages, 0, 'memory');
    assert.ok(run.stalled, `the writer never blocked (wrote ${run.written}, server received ${run.received})`);
    assert.ok(run.received < messages, `the server read all ${messages} messages from a peer that reads nothing`);
    assert.ok(run.maxBuffered <= MAX_BACKPRESSURE + ECHO_FRAME, `the server buffered ${run.maxBuffered} bytes for the peer (limit ${MAX_BACKPRESSURE} + one message)`);
    await run.finish();
  });
});
