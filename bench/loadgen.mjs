#!/usr/bin/env node
// The load generator: raw `net` sockets, its own RFC 6455 client handshake and
// framing, and a check of every byte the server sends back. It is meant to be
// cheap enough per message that the server, not this process, is what a run
// measures (run.mjs reports this process's CPU next to the server's, so a
// reader can see when that stops being true).
//
// Modes (--mode):
//   echo       C connections × F messages in flight; each echo is compared
//              byte-for-byte with what was sent, and answered by a new send.
//              With C=1, F=1 it also records per-message latency.
//   handshake  K concurrent loops of: connect, upgrade, check 101 + accept,
//              send a close frame, wait for the server's close frame and for
//              the server to close TCP.
//   idle       open N connections (in --stages), hold them, report each stage
//              as a JSON line, go on when stdin says `next`, close on `close`.
//   broadcast  M subscriber connections; connection 0 sends
//              `publish:<n>:<size>` as a text frame, every subscriber counts
//              and checks the n messages, then the next burst is triggered.
//
// --compress (echo only): offers permessage-deflate (RFC 7692) the way a
// browser does, fails unless the server accepts it, sends JSON text messages
// compressed with context takeover (precompressed: lib/deflate.mjs explains
// why replaying them is valid), and inflates every echo with one inflater per
// connection before the byte-for-byte check.
//
// --raw targets a plain TCP echo server (servers/net.mjs): no handshake, and
// the frames sent are the *server-style unmasked* frames a WebSocket server
// would send back, so the echo returns bytes this parser checks exactly as in
// a real WebSocket run. The loadgen does the same work per message; the server
// does none. In handshake mode --raw sends the upgrade request and waits for
// the same bytes back (a TCP connect/echo/close floor).
//
// Output: one JSON object on stdout at the end (idle mode also prints one JSON
// line per stage). Any protocol violation or mismatch: a message on stderr and
// exit code 1. Only 127.0.0.1 is ever targeted.

import net from 'node:net';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { makePayload, makeJsonPayload, publishCommand, broadcastPayload } from './lib/payload.mjs';
import { Conn, configure, buildFrame, upgradeRequest, sourceAddress, CLOSE_FRAME, OP_TEXT, OP_BINARY } from './lib/wsconn.mjs';
import { compressClientMessages, compressFirstMessage, describeParams } from './lib/deflate.mjs';
import { processCpuUs, machineCpuUs, selfCpuUs, processMemory } from './lib/cpu.mjs';

const TARGET = '127.0.0.1'; // the only address ever targeted

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string', default: 'echo' },
    port: { type: 'string' },
    raw: { type: 'boolean', default: false },
    conns: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '1' },
    size: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '1' },
    duration: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    stages: { type: 'string', default: '1000' },
    burst: { type: 'string', default: '0' },
    'open-concurrency': { type: 'string', default: '128' },
    sources: { type: 'string', default: '1' },
    'server-pid': { type: 'string' },
    stall: { type: 'string', default: '10' },
    compress: { type: 'boolean', default: false },
  },
});

const PORT = Number(opt.port);
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) die('--port <n> is required');
const MODE = opt.mode;
const RAW = opt.raw;
const CONNS = Number(opt.conns);
const INFLIGHT = Number(opt.inflight);
const SIZE = Number(opt.size);
const WARMUP_MS = Number(opt.warmup) * 1000;
const DURATION_MS = Number(opt.duration) * 1000;
const OPEN_CONCURRENCY = Number(opt['open-concurrency']);
const SOURCES = Math.max(1, Math.min(250, Number(opt.sources)));
const SERVER_PID = opt['server-pid'] ? Number(opt['server-pid']) : 0;
const STALL_MS = Number(opt.stall) * 1000;
const DEFLATE = opt.compress;
const LATENCY = MODE === 'echo' && INFLIGHT === 1 && !DEFLATE;
if (DEFLATE && ((MODE !== 'echo' && MODE !== 'idle') || RAW)) die('--compress is for --mode echo or idle against a WebSocket server (not --raw)');

// ---------------------------------------------------------------- utilities

function die(msg) {
  process.stderr.write(`loadgen: FAIL: ${msg}\n`);
  process.exit(1);
}

const serverCpuUs = () => processCpuUs(SERVER_PID);

function snapshot(counters) {
  return { t: process.hrtime.bigint(), self: selfCpuUs(), server: serverCpuUs(), machine: machineCpuUs(), ...counters };
}

/**
 * The measurement window: a snapshot after the warm-up, another after the
 * duration. If nothing was done in the window (a stalled server, or a machine
 * so busy that the run paused), the window is extended until something is:
 * a healthy server shows up as slow, and a dead one is failed by the progress
 * watchdog, never reported as a number.
 */
function measureWindow(count, onStart, onEnd) {
  let a;
  setTimeout(() => {
    a = snapshot({ count: count() });
    onStart?.();
  }, WARMUP_MS);
  const end = () => {
    const c = count();
    if (c === a.count) {
      setTimeout(end, 20);
      return;
    }
    const b = snapshot({ count: c });
    onEnd(a, b, c - a.count);
  };
  setTimeout(end, WARMUP_MS + DURATION_MS);
}

/** Window stats between two snapshots; `n` is the unit count (messages, handshakes, deliveries). */
function windowStats(a, b, n) {
  const seconds = Number(b.t - a.t) / 1e9;
  const selfUs = b.self - a.self;
  const serverUs = b.server - a.server;
  return {
    seconds,
    count: n,
    perSec: n / seconds,
    loadgenCpuPct: (selfUs / (seconds * 1e6)) * 100,
    loadgenCpuUsPer: selfUs / n,
    serverCpuPct: (serverUs / (seconds * 1e6)) * 100,
    serverCpuUsPer: serverUs / n,
    otherCpuPct: ((b.machine - a.machine - selfUs - serverUs) / (seconds * 1e6)) * 100,
  };
}

// ---------------------------------------------------------------- connections

/**
 * The compressed echo's messages and frames, for the parameters the server
 * negotiated: K distinct JSON texts of SIZE bytes, and the masked text frames
 * (RSV1 set, FIN set: one frame per message) carrying them compressed, laid
 * out as [first 0..K-1][cycle 0..K-1][cycle 0..K-1]. Message s of a connection
 * is frame s for s < K, then K + (s − K) mod K, so any batch of up to K
 * consecutive sends is one slice of `ring` and one write.
 */
async function buildCompressedFrames(params) {
  // enough history that every cycle frame has a full window of real context
  const K = Math.max(16, Math.ceil(2 ** 15 / SIZE) + 1);
  const payloads = [];
  for (let j = 0; j < K; j++) payloads.push(makeJsonPayload(SIZE, j));
  const { first, cycle } = await compressClientMessages(payloads, params);
  const frames = [...first, ...cycle, ...cycle].map((z, i) => {
    const f = buildFrame(OP_TEXT, z, i % 251);
    f[0] |= 0x40; // RSV1: this message is compressed (RFC 7692 §6)
    return f;
  });
  const offsets = [0];
  for (const f of frames) offsets.push(offsets[offsets.length - 1] + f.length);
  const wire = cycle.reduce((a, z) => a + z.length, 0) / K;
  return { K, payloads, ring: Buffer.concat(frames), offsets, clientWireBytesPerMsg: wire };
}

configure({ port: PORT, raw: RAW, sources: SOURCES, fail: die, deflate: DEFLATE });
const REQUEST = upgradeRequest();

// ---------------------------------------------------------------- progress watchdog

let progress = 0;
let watchdogLast = -1;
let watchdogSince = Date.now();
let watchdogWhat = () => '';
setInterval(() => {
  if (progress !== watchdogLast) {
    watchdogLast = progress;
    watchdogSince = Date.now();
  } else if (Date.now() - watchdogSince > STALL_MS) {
    die(`no progress for ${STALL_MS / 1000} s: the server stalled or lost messages (${watchdogWhat()})`);
  }
}, 250).unref();

function output(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(0));
}

/** Opens `n` connections with at most OPEN_CONCURRENCY handshakes at once. */
function openMany(conns, from, to, hooks, onAllOpen) {
  let started = from;
  let opened = from;
  const baseOpen = hooks.open;
  const h = Object.create(hooks);
  h.open = (c) => {
    baseOpen(c);
    progress++;
    opened++;
    if (started < to) start();
    if (opened === to) onAllOpen();
  };
  const start = () => {
    const id = started++;
    conns[id] = new Conn(id, h);
  };
  while (started < to && started - from < OPEN_CONCURRENCY) start();
  if (from === to) onAllOpen();
}

// ---------------------------------------------------------------- echo

function runEcho() {
  if (DEFLATE) return runDeflateEcho();
  // P distinct payloads sent in rotation, so a server that returns a stale
  // or reordered buffer is caught; bigger messages use fewer distinct ones.
  const P = Math.max(2, Math.min(INFLIGHT, SIZE >= 65536 ? 4 : 16));
  const payloads = [];
  const frames = [];
  for (let j = 0; j < P; j++) {
    payloads.push(makePayload(SIZE, j));
    frames.push(buildFrame(OP_BINARY, payloads[j], j, RAW));
  }
  const F = frames[0].length;
  // The frames twice in a row: any run of up to P consecutive frames starting
  // at any index is one contiguous slice, so a batch of sends is one write.
  const ring = Buffer.concat([...frames, ...frames]);

  const conns = new Array(CONNS);
  let messages = 0;
  let latencies = LATENCY ? new Float64Array(1 << 20) : null;
  let nlat = 0;

  const send = (c, k) => {
    while (k > 0) {
      const s = c.sent % P;
      const m = Math.min(k, P);
      if (LATENCY) c.t0 = process.hrtime.bigint();
      c.sock.write(ring.subarray(s * F, (s + m) * F));
      c.sent += m;
      k -= m;
    }
  };

  const hooks = echoHooks(send, () => running, {
    opcode: OP_BINARY,
    expected: (c) => (c.received < c.sent ? payloads[c.received % P] : null),
    message(c) {
      messages++;
      if (LATENCY) {
        if (nlat === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2);
          bigger.set(latencies);
          latencies = bigger;
        }
        latencies[nlat++] = Number(process.hrtime.bigint() - c.t0);
      }
      c.owed++;
    },
  });

  let running = false;
  watchdogWhat = () => `${messages} messages echoed so far`;
  openMany(conns, 0, CONNS, hooks, () => {
    running = true;
    const tStart = process.hrtime.bigint();
    for (const c of conns) send(c, INFLIGHT);
    const progressTimer = setInterval(() => { progress = messages; }, 100);
    measureWindow(() => messages, () => { nlat = 0; }, (a, b, n) => {
      running = false;
      clearInterval(progressTimer);
      const w = windowStats(a, b, n);
      const result = echoResult(RAW ? 'echo-raw' : 'echo', n, w, Number(b.t - tStart) / 1e9);
      if (LATENCY) result.latencyUs = percentiles(latencies.subarray(0, nlat));
      output(result);
    });
  });
}

/**
 * Connection hooks for an echo run: `own` says what is sent and how an echo
 * is counted (each sets `c.owed`); every flush then sends as many messages as
 * came back while `running()`, and a close from the server ends the run.
 */
function echoHooks(send, running, own) {
  return {
    ...own,
    flush(c) {
      const k = c.owed;
      c.owed = 0;
      if (running()) send(c, k);
    },
    open() {},
    closeFrame(c, code) {
      die(`connection ${c.id}: server sent a close frame (code ${code}) during the echo run`);
    },
    socketClose(c) {
      if (running()) die(`connection ${c.id}: server closed the connection during the echo run`);
    },
  };
}

/**
 * The figures every echo mode reports for a measurement window `w` of `n`
 * messages, `totalSeconds` into the run. MB/s counts payload bytes
 * (uncompressed) echoed back per second, one direction, MB = 10^6 bytes.
 */
function echoResult(mode, n, w, totalSeconds) {
  return {
    mode,
    conns: CONNS,
    inflight: INFLIGHT,
    size: SIZE,
    messages: n,
    seconds: w.seconds,
    msgsPerSec: w.perSec,
    mbPerSec: (w.perSec * SIZE) / 1e6,
    serverCpuPct: w.serverCpuPct,
    otherCpuPct: w.otherCpuPct,
    serverCpuUsPerMsg: w.serverCpuUsPer,
    loadgenCpuPct: w.loadgenCpuPct,
    loadgenCpuUsPerMsg: w.loadgenCpuUsPer,
    ...serverMemory(),
    totalSeconds,
  };
}

/** The server's resident memory at the end of the window, and its peak over its whole life. */
function serverMemory() {
  const m = processMemory(SERVER_PID);
  return { serverRssBytes: m.rss, serverPeakRssBytes: m.peakRss };
}

/**
 * The compressed echo: like runEcho, but the connections are opened first
 * (the frames depend on what the server negotiated, and every connection
 * must have negotiated the same), then the frames are built, then the run
 * starts. Each echo is inflated and compared (lib/wsconn.mjs); a connection
 * sends a new message for each echo that passed.
 */
function runDeflateEcho() {
  const conns = new Array(CONNS);
  let messages = 0;
  let running = false;
  let K = 0;
  let payloads = null;
  let ring = null;
  let offsets = null;

  const send = (c, k) => {
    while (k > 0) {
      const s = c.sent;
      const idx = s < K ? s : K + ((s - K) % K);
      const m = Math.min(k, K); // idx < 2K, so idx + m <= 3K: one slice
      c.sock.write(ring.subarray(offsets[idx], offsets[idx + m]));
      c.sent += m;
      k -= m;
    }
  };

  const hooks = echoHooks(send, () => running, {
    opcode: OP_TEXT,
    expected: (c, i) => (i < c.sent ? payloads[i % K] : null),
    message(c) {
      messages++;
      c.owed++;
    },
  });

  watchdogWhat = () => (ring ? `${messages} messages echoed so far` : 'opening connections');
  openMany(conns, 0, CONNS, hooks, async () => {
    const params = conns[0].deflate;
    for (const c of conns) {
      if (c.deflate.text !== params.text) die(`connections negotiated different permessage-deflate parameters: "${params.text}" and "${c.deflate.text}"`);
    }
    let built;
    try {
      built = await buildCompressedFrames(params);
    } catch (err) {
      die(`cannot build the compressed messages: ${err.message}`);
    }
    ({ K, payloads, ring, offsets } = built);
    running = true;
    const tStart = process.hrtime.bigint();
    for (const c of conns) send(c, INFLIGHT);
    const progressTimer = setInterval(() => { progress = messages; }, 100);
    measureWindow(() => messages, null, (a, b, n) => {
      running = false;
      clearInterval(progressTimer);
      const w = windowStats(a, b, n);
      let wire = 0;
      let compressed = 0;
      let plain = 0;
      for (const c of conns) {
        wire += c.wireBytes;
        compressed += c.compressedMessages;
        plain += c.plainMessages;
      }
      output({
        ...echoResult('echo-deflate', n, w, Number(b.t - tStart) / 1e9),
        deflate: {
          negotiated: params.text,
          settings: describeParams(params),
          distinctMessages: K,
          // payload bytes on the wire per message (whole run), and the ratio to SIZE
          clientWireBytesPerMsg: built.clientWireBytesPerMsg,
          echoWireBytesPerMsg: wire / (compressed + plain),
          clientRatio: SIZE / built.clientWireBytesPerMsg,
          echoRatio: (SIZE * (compressed + plain)) / wire,
          compressedEchoPct: (compressed / (compressed + plain)) * 100,
        },
      });
    });
  });
}

function percentiles(ns) {
  const s = Float64Array.from(ns).sort();
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))] / 1000;
  return { samples: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: s[s.length - 1] / 1000 };
}

// ---------------------------------------------------------------- handshakes

function runHandshakes() {
  const K = Number(opt.concurrency);
  let done = 0;
  // Connect-to-closed time of each cycle (one hrtime per handshake is noise
  // next to a handshake's cost); a tail here means kernel-level waiting.
  let times = new Float64Array(1 << 18);
  let ntimes = 0;
  const record = (t0) => {
    if (ntimes === times.length) {
      const bigger = new Float64Array(times.length * 2);
      bigger.set(times);
      times = bigger;
    }
    times[ntimes++] = Number(process.hrtime.bigint() - t0);
  };
  let running = true;
  let id = 0;
  watchdogWhat = () => `${done} handshakes completed so far`;

  const hooks = {
    opcode: OP_BINARY,
    expected: () => null,
    message(c) { die(`connection ${c.id}: unexpected data message`); },
    flush() {},
    open(c) {
      c.sock.write(CLOSE_FRAME);
    },
    closeFrame(c, code) {
      if (code !== 1000) die(`connection ${c.id}: server closed with code ${code}, expected 1000 echoed`);
    },
    socketClose(c) {
      if (!c.gotClose) die(`connection ${c.id}: TCP closed before the server's close frame`);
      record(c.t0);
      done++;
      progress++;
      if (running) newConn();
    },
  };
  const newConn = () => {
    const t0 = process.hrtime.bigint();
    new Conn(id++, hooks).t0 = t0;
  };

  // --raw: the plain TCP floor: connect, send the request bytes, read the
  // same bytes back, close.
  const rawLoop = () => {
    const t0 = process.hrtime.bigint();
    const sock = net.connect({ port: PORT, host: TARGET, localAddress: sourceAddress() });
    sock.setNoDelay(true);
    let got = 0;
    sock.on('connect', () => sock.write(REQUEST));
    sock.on('data', (chunk) => {
      if (chunk.compare(REQUEST, got, got + chunk.length) !== 0) die('raw echo returned different bytes');
      got += chunk.length;
      if (got === REQUEST.length) sock.end();
    });
    sock.on('error', (err) => die(`raw handshake socket error: ${err.code ?? err.message}`));
    sock.on('close', () => {
      if (got !== REQUEST.length) die('raw echo closed early');
      record(t0);
      done++;
      progress++;
      if (running) rawLoop();
    });
  };

  const tStart = process.hrtime.bigint();
  for (let i = 0; i < K; i++) {
    if (RAW) rawLoop();
    else newConn();
  }
  measureWindow(() => done, () => { ntimes = 0; }, (a, b, n) => {
    running = false;
    const w = windowStats(a, b, n);
    output({
      mode: RAW ? 'handshake-raw' : 'handshake',
      concurrency: K,
      handshakes: n,
      seconds: w.seconds,
      handshakesPerSec: w.perSec,
      serverCpuPct: w.serverCpuPct,
      otherCpuPct: w.otherCpuPct,
      serverCpuUsPerHandshake: w.serverCpuUsPer,
      loadgenCpuPct: w.loadgenCpuPct,
      loadgenCpuUsPerHandshake: w.loadgenCpuUsPer,
      cycleUs: percentiles(times.subarray(0, ntimes)),
      totalSeconds: Number(b.t - tStart) / 1e9,
    });
  });
}

// ---------------------------------------------------------------- idle

/** Idle --compress: the 4 KiB JSON text each connection sends once, compressed. */
const IDLE_MESSAGE_SIZE = 4096;

/**
 * Idle --compress: every connection sends one compressed text message as soon
 * as it is open (its first, so the same bytes for every connection that
 * negotiated the same parameters) and must get it back, compressed or not;
 * the inflater is dropped after that, so this process stays small.
 */
function idleDeflateHooks(onEchoed) {
  const payload = makeJsonPayload(IDLE_MESSAGE_SIZE, 7);
  const frames = new Map(); // negotiated answer -> frame
  const frameFor = (params) => {
    let f = frames.get(params.text);
    if (f === undefined) {
      try {
        f = buildFrame(OP_TEXT, compressFirstMessage(payload, params), 9);
      } catch (err) {
        die(`cannot compress the idle message: ${err.message}`);
      }
      f[0] |= 0x40; // RSV1 (RFC 7692 §6)
      frames.set(params.text, f);
    }
    return f;
  };
  return {
    opcode: OP_TEXT,
    expected: (c, i) => (i === 0 ? payload : null),
    open(c) {
      c.sock.write(frameFor(c.deflate));
    },
    message(c) {
      setImmediate(() => {
        c.inflater?.close();
        c.inflater = null;
      });
      onEchoed();
    },
  };
}

function runIdle() {
  const stages = opt.stages.split(',').map(Number);
  const max = stages[stages.length - 1];
  const conns = new Array(max);
  let closing = false;
  let opened = 0;
  let echoed = 0; // --compress: connections whose message came back
  let waiting = null; // --compress: the stage's continuation, once all are open
  const own = DEFLATE
    ? idleDeflateHooks(() => {
        echoed++;
        progress++;
        if (waiting !== null && echoed === opened) waiting();
      })
    : {
        opcode: OP_BINARY,
        expected: () => null,
        message(c) { die(`connection ${c.id}: unexpected data message on an idle connection`); },
        open() {},
      };
  const hooks = {
    ...own,
    flush() {},
    open(c) {
      opened++;
      own.open(c);
    },
    closeFrame(c, code) {
      if (!closing) die(`connection ${c.id}: server sent a close frame (code ${code}) to an idle connection`);
    },
    socketClose(c) {
      if (!closing) die(`connection ${c.id}: server closed an idle connection`);
    },
  };
  watchdogWhat = () => `${opened} connections open${DEFLATE ? `, ${echoed} echoes back` : ""}`;
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const stageResults = [];
  const closeAll = () => {
    closing = true;
    hooks.ignoreErrors = true;
    for (const c of conns) c?.sock.destroy();
    output({ mode: RAW ? 'idle-raw' : 'idle', stages: stageResults });
  };

  let stage = 0;
  let from = 0;
  const next = () => {
    const to = stages[stage];
    const t0 = process.hrtime.bigint();
    const stageReached = async () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const r = { event: 'stage', open: to, openMs: ms, handshakesPerSec: ((to - from) / ms) * 1000 };
      stageResults.push(r);
      process.stdout.write(JSON.stringify(r) + '\n');
      from = to;
      stage++;
      // Holding connections is not a stall.
      watchdogLast = -2;
      const keep = setInterval(() => { progress++; }, 200);
      for (;;) {
        const { value, done } = await lines.next();
        if (done || value.trim() === 'close') {
          clearInterval(keep);
          return closeAll();
        }
        if (value.trim() === 'next' && stage < stages.length) {
          clearInterval(keep);
          return next();
        }
      }
    };
    openMany(conns, from, to, hooks, () => {
      if (!DEFLATE || echoed === opened) return stageReached();
      waiting = () => {
        waiting = null;
        stageReached();
      };
    });
  };
  next();
}

// ---------------------------------------------------------------- broadcast

function runBroadcast() {
  const M = CONNS;
  const burst = Number(opt.burst) || Math.max(1, Math.round(100000 / M));
  const payload = broadcastPayload(SIZE);
  const trigger = buildFrame(OP_TEXT, Buffer.from(publishCommand(burst, SIZE)), 5);
  const conns = new Array(M);
  let bursts = 0;
  let target = 0; // messages each subscriber must have by the end of this burst
  let delivered = 0; // in this burst
  let total = 0;
  let running = true;

  const hooks = {
    opcode: OP_BINARY,
    expected: (c) => (c.received < target ? payload : null),
    message() {
      total++;
      if (++delivered === M * burst) {
        bursts++;
        progress++;
        if (running) fire();
      }
    },
    flush() {},
    open() {},
    closeFrame(c, code) { die(`subscriber ${c.id}: server sent a close frame (code ${code})`); },
    socketClose(c) { if (running) die(`subscriber ${c.id}: server closed the connection`); },
  };
  const fire = () => {
    delivered = 0;
    target += burst;
    conns[0].sock.write(trigger);
  };
  watchdogWhat = () => `burst ${bursts + 1}: ${delivered} of ${M * burst} deliveries`;
  openMany(conns, 0, M, hooks, () => {
    const tStart = process.hrtime.bigint();
    fire();
    let burstsAtStart = 0;
    measureWindow(() => total, () => { burstsAtStart = bursts; }, (a, b, n) => {
      running = false;
      const w = windowStats(a, b, n);
      output({
        mode: 'broadcast',
        subscribers: M,
        burst,
        size: SIZE,
        deliveries: n,
        bursts: bursts - burstsAtStart,
        seconds: w.seconds,
        deliveriesPerSec: w.perSec,
        serverCpuPct: w.serverCpuPct,
        otherCpuPct: w.otherCpuPct,
        serverCpuUsPerDelivery: w.serverCpuUsPer,
        loadgenCpuPct: w.loadgenCpuPct,
        loadgenCpuUsPerDelivery: w.loadgenCpuUsPer,
        totalSeconds: Number(b.t - tStart) / 1e9,
      });
    });
  });
}

// ---------------------------------------------------------------- main

process.on('SIGTERM', () => process.exit(143));
process.on('SIGINT', () => process.exit(130));

switch (MODE) {
  case 'echo': runEcho(); break;
  case 'handshake': runHandshakes(); break;
  case 'idle': runIdle(); break;
  case 'broadcast':
    if (RAW) die('broadcast has no raw mode');
    runBroadcast();
    break;
  default: die(`unknown --mode ${MODE}`);
}
