#!/usr/bin/env node
// The benchmark runner: fullduplex against ws (and uWebSockets.js when its
// native build loads, and a plain TCP echo as the Node floor).
//
//   npm run bench                      # build, then every scenario, 5 rounds (~15 min)
//   node bench/run.mjs --quick         # one short round of everything (< 1 min)
//   node bench/run.mjs --scenario echo-16b-throughput,handshakes --rounds 3
//   node bench/run.mjs --servers fullduplex,ws
//   node bench/run.mjs --cpu-prof      # servers write .cpuprofile files to bench/results/profiles/
//   node bench/run.mjs --baseline /tmp/old/dist   # adds a row: fullduplex from another build (A/B of two versions)
//   node bench/run.mjs --list
//
// For each scenario, each round runs every server once, in the same order
// (A B A B ...), each time in a fresh server process pinned to core 0, with
// the load generator (bench/loadgen.mjs) pinned to core 1. It prints medians
// with ratios against ws, and writes bench/results/latest.{json,md}.
// It builds nothing: `npm run bench` builds first.

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, spawnNode, pinningAvailable, openFileLimits, lastLines } from './lib/procs.mjs';
import { machine, summarize, textTable, markdownTable, median, FOOTNOTES } from './lib/report.mjs';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    scenario: { type: 'string' },
    servers: { type: 'string' },
    warmup: { type: 'string' },
    duration: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    baseline: { type: 'string' },
    list: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const QUICK = opt.quick;
const ROUNDS = Number(opt.rounds ?? (QUICK ? 1 : 5));
const WARMUP = Number(opt.warmup ?? (QUICK ? 0.25 : 1));
const DURATION = Number(opt.duration ?? (QUICK ? 0.5 : 1.5));
const CORES = os.cpus().length;
const PIN = pinningAvailable(CORES);
const RESULTS_DIR = path.join(BENCH_DIR, 'results');

// ---------------------------------------------------------------- servers

const SERVERS = {
  fullduplex: { script: 'servers/fullduplex.mjs', label: 'fullduplex' },
  ws: { script: 'servers/ws.mjs', label: 'ws' },
  uws: { script: 'servers/uws.mjs', label: 'uWebSockets.js' },
  net: { script: 'servers/net.mjs', label: 'net (plain TCP echo)', raw: true },
  netws: { script: 'servers/netws.mjs', label: 'bare net.Server floor (no library)' },
  floor: { script: 'servers/floor.mjs', label: 'Node socket floor (101, nothing kept)' },
  // --baseline <dist dir>: the same server on another build, run right after fullduplex in every round
  baseline: { script: 'servers/fullduplex.mjs', label: 'fullduplex (baseline build)', env: { FULLDUPLEX_DIST: opt.baseline ?? '' } },
};

// ---------------------------------------------------------------- scenarios

const COL = {
  msgs: { key: 'msgsPerSec', label: 'msg/s', fmt: 'k' },
  mb: { key: 'mbPerSec', label: 'MB/s', fmt: 'mb' },
  srvCpu: { key: 'serverCpuUsPerMsg', label: 'server CPU µs/msg', fmt: 'us' },
  srvPct: { key: 'serverCpuPct', label: 'server CPU', fmt: 'pct' },
  lgPct: { key: 'loadgenCpuPct', label: 'loadgen CPU', fmt: 'pct' },
  peakRss: { key: 'serverPeakRssBytes', label: 'server peak RSS', fmt: 'mib', vsWs: true },
};

const idleStages = QUICK ? [1000, 2000] : [10000, 19000];
const bcastSizes = QUICK ? [100, 1000] : [1000, 10000];

const deflateIdleStages = QUICK ? [200, 600] : [1000, 3000];
const slowSubs = QUICK ? 200 : 1000;
const slowTotal = QUICK ? 320 : 400;

/**
 * Broadcast 16 B to `subs` subscribers. Batched: bursts of ~100,000
 * deliveries per trigger, so publishes follow each other in one event-loop
 * turn. One in flight: one publish per trigger, and the next trigger only
 * once every subscriber has it, so each publish is an event-loop turn of its
 * own (a chat server or a ticker, where messages come one at a time).
 */
const broadcast = (subs, single) => ({
  name: `broadcast-${subs >= 1000 ? `${subs / 1000}k` : subs}${single ? '-1' : ''}`,
  title: `Broadcast 16 B to ${subs.toLocaleString('en-US')} subscribers, ${single ? 'one broadcast in flight' : 'batched (bursts of ~100,000 deliveries)'}`,
  kind: 'loadgen',
  serverMode: 'broadcast',
  servers: ['fullduplex', 'ws', 'uws', ...(single ? ['netws'] : [])],
  args: ['--mode', 'broadcast', '--conns', subs, '--size', 16, ...(single ? ['--burst', 1] : [])],
  primary: { key: 'deliveriesPerSec', label: 'deliveries/s', better: 'higher' },
  columns: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', fmt: 'k' },
    { key: 'serverCpuUsPerDelivery', label: 'server CPU µs/delivery', fmt: 'us' },
    COL.srvPct,
    COL.lgPct,
  ],
  note: `A subscriber sends \`publish:<n>:16\`; the server publishes n messages to every subscriber (fullduplex: server.publish; ws: a loop over wss.clients calling send; uWS: app.publish${single ? '; the bare net.Server floor: one socket.write of a prebuilt frame per subscriber, the least any server on Node\'s public API does' : ''}). The next trigger goes out when every subscriber has checked all n. ${single ? 'Here n = 1: one publish per trigger, each in an event-loop turn of its own.' : 'Here n = 100,000 / subscribers.'}`,
});

const echo = (name, title, { conns, inflight, size, primary, columns }) => ({
  name,
  title,
  kind: 'loadgen',
  servers: ['fullduplex', 'ws', 'uws', 'net'],
  args: ['--mode', 'echo', '--conns', conns, '--inflight', inflight, '--size', size],
  primary,
  columns,
});

const SCENARIOS = [
  echo('echo-16b-latency', 'Echo 16 B, 1 connection × 1 in flight (latency)', {
    conns: 1,
    inflight: 1,
    size: 16,
    primary: { key: 'latencyUs.p50', label: 'p50', better: 'lower' },
    columns: [
      { key: 'latencyUs.p50', label: 'p50 µs', fmt: 'us' },
      { key: 'latencyUs.p99', label: 'p99 µs', fmt: 'us' },
      COL.msgs,
      COL.srvCpu,
      COL.lgPct,
    ],
  }),
  echo('echo-16b-throughput', 'Echo 16 B, 100 connections × 32 in flight', {
    conns: 100,
    inflight: 32,
    size: 16,
    primary: { key: 'msgsPerSec', label: 'msg/s', better: 'higher' },
    columns: [COL.msgs, COL.srvCpu, COL.srvPct, COL.lgPct],
  }),
  echo('echo-64k', 'Echo 64 KiB, 1 connection × 4 in flight', {
    conns: 1,
    inflight: 4,
    size: 65536,
    primary: { key: 'mbPerSec', label: 'MB/s', better: 'higher' },
    columns: [COL.mb, COL.msgs, COL.srvCpu, COL.srvPct, COL.lgPct],
  }),
  echo('echo-1m', 'Echo 1 MiB, 1 connection × 4 in flight', {
    conns: 1,
    inflight: 4,
    size: 1048576,
    primary: { key: 'mbPerSec', label: 'MB/s', better: 'higher' },
    columns: [COL.mb, COL.msgs, COL.srvCpu, COL.srvPct, COL.lgPct],
  }),
  // One large message at a time (a file or a document snapshot sent message
  // by message): every message is a round trip of its own, so what a server
  // does per read and per write of a big payload shows undiluted.
  ...[
    ['echo-64k-1', '64 KiB', 65536],
    ['echo-1m-1', '1 MiB', 1048576],
  ].map(([name, label, size]) =>
    echo(name, `Echo ${label}, 1 connection × 1 in flight`, {
      conns: 1,
      inflight: 1,
      size,
      primary: { key: 'msgsPerSec', label: 'msg/s', better: 'higher' },
      columns: [COL.msgs, COL.mb, { key: 'latencyUs.p50', label: 'p50 µs', fmt: 'us' }, COL.srvCpu, COL.srvPct, COL.lgPct],
    }),
  ),
  {
    name: 'handshakes',
    title: 'Handshakes: connect, upgrade, full closing handshake; 50 concurrent loops',
    kind: 'loadgen',
    servers: ['fullduplex', 'ws', 'uws', 'net', 'netws'],
    // 8 source addresses (127.0.0.1-8): the server closes first, so its
    // TIME_WAIT sockets hold 4-tuples; spreading sources makes a new SYN
    // landing on one of them (and waiting for a retransmit) rarer.
    args: ['--mode', 'handshake', '--concurrency', 50, '--sources', 8],
    primary: { key: 'handshakesPerSec', label: 'handshakes/s', better: 'higher' },
    columns: [
      { key: 'handshakesPerSec', label: 'handshakes/s', fmt: 'k' },
      { key: 'serverCpuUsPerHandshake', label: 'server CPU µs/handshake', fmt: 'us' },
      { key: 'cycleUs.p50', label: 'cycle p50 µs', fmt: 'us' },
      COL.srvPct,
      COL.lgPct,
    ],
    note: 'Each loop: connect, upgrade (101 and accept checked), send a close frame (1000), wait for the server\'s close frame and for the server to close TCP, then start again. net row: TCP connect, the same request bytes echoed, close (no HTTP, no WebSocket).',
  },
  {
    name: 'idle-memory',
    title: `Memory per idle connection (server RSS after gc, ${idleStages.map((n) => n.toLocaleString('en-US')).join(' and ')} connections)`,
    kind: 'idle',
    rounds: Math.min(ROUNDS, 3),
    servers: ['fullduplex', 'ws', 'uws', 'net', 'floor'],
    stages: idleStages,
    primary: { key: 'slopeBytesPerConn', label: 'RSS slope', better: 'lower' },
    columns: [
      { key: 'slopeBytesPerConn', label: `RSS slope ${idleStages[0] / 1000}k→${idleStages[1] / 1000}k per conn`, fmt: 'bytes' },
      { key: 'perConn.0', label: `RSS Δ/conn @${idleStages[0] / 1000}k`, fmt: 'bytes' },
      { key: 'perConn.1', label: `RSS Δ/conn @${idleStages[1] / 1000}k`, fmt: 'bytes' },
      { key: 'heapSlopeBytesPerConn', label: 'JS heap slope per conn', fmt: 'bytes' },
      { key: 'openPerSec', label: 'opened/s', fmt: 'k' },
    ],
    note: 'Δ/conn: (RSS at N − RSS before any connection) / N; slope: (RSS at the larger N − RSS at the smaller) / difference, which leaves out fixed costs. Servers run with --expose-gc and collect twice before each reading. The floor row is an HTTP server that answers 101 and keeps only the upgraded net.Socket: what any server built on Node sockets pays before adding anything.',
  },
  {
    name: 'idle-memory-deflate',
    title: `Memory per idle compressed connection (permessage-deflate, one 4 KiB message each way; server RSS after gc, ${deflateIdleStages.map((n) => n.toLocaleString('en-US')).join(' and ')} connections)`,
    kind: 'idle',
    deflate: true,
    rounds: Math.min(ROUNDS, 3),
    servers: ['fullduplex', 'ws', 'uws'],
    stages: deflateIdleStages,
    // idle for 5 s: longer than fullduplex's idle release (2-4 s) takes
    settleMs: 5000,
    primary: { key: 'perConn.1', label: `RSS Δ/conn @${deflateIdleStages[1].toLocaleString('en-US')}`, better: 'lower' },
    columns: [
      { key: 'perConn.0', label: `RSS Δ/conn @${deflateIdleStages[0].toLocaleString('en-US')}`, fmt: 'bytes' },
      { key: 'perConn.1', label: `RSS Δ/conn @${deflateIdleStages[1].toLocaleString('en-US')}`, fmt: 'bytes' },
      { key: 'slopeBytesPerConn', label: 'RSS slope per conn', fmt: 'bytes' },
      { key: 'heapSlopeBytesPerConn', label: 'JS heap slope per conn', fmt: 'bytes' },
    ],
    note: 'Each connection offers `permessage-deflate; client_max_window_bits` (as browsers do; the run fails unless the server accepts), sends one 4,096 B JSON text compressed (RFC 7692), waits for the compressed echo, inflates and checks it, then stays idle. Servers as in the compressed echo (threshold 0, each library\'s default window and context takeover). Memory is read 5 s after the last echo (fullduplex releases the zlib streams of a connection idle for 2 to 4 s), after two collections. Δ/conn: (RSS at N − RSS before any connection) / N.',
  },
  ...bcastSizes.flatMap((subs) => [broadcast(subs, false), broadcast(subs, true)]),
  {
    name: 'client',
    title: 'Client: echo 16 B, 100 connections × 32 in flight, against the fullduplex server',
    kind: 'client',
    fixedServer: 'fullduplex',
    servers: ['fullduplex', 'ws'],
    labels: { fullduplex: 'fullduplex WebSocket (WHATWG)', ws: 'ws WebSocket' },
    args: ['--conns', 100, '--inflight', 32, '--size', 16],
    primary: { key: 'clientCpuUsPerMsg', label: 'client CPU µs/msg', better: 'lower' },
    columns: [
      COL.msgs,
      { key: 'clientCpuUsPerMsg', label: 'client CPU µs/msg', fmt: 'us' },
      { key: 'clientCpuPct', label: 'client CPU', fmt: 'pct' },
      COL.srvCpu,
      COL.srvPct,
    ],
    note: 'The client process (bench/client.mjs) is pinned to core 1, the fullduplex server (the fastest server always present) to core 0, so the client is the bottleneck; client CPU per message is the cost of a client.',
  },
  {
    name: 'slow-consumers',
    title: `Slow consumers: ${slowSubs.toLocaleString('en-US')} subscribers that never read, ${slowTotal} publishes of 16 KiB`,
    kind: 'loadgen',
    serverMode: 'broadcast',
    rounds: Math.min(ROUNDS, 3),
    servers: ['fullduplex', 'ws', 'uws'],
    args: ['--mode', 'slow', '--conns', slowSubs, '--size', 16384, '--total', slowTotal, '--burst', 16],
    primary: { key: 'serverPeakRssBytes', label: 'server peak RSS', better: 'lower' },
    columns: [
      { key: 'serverPeakRssBytes', label: 'server peak RSS', fmt: 'mib' },
      { key: 'publishesPerSec', label: 'publishes/s', fmt: 'k' },
      { key: 'seconds', label: 's', fmt: 'us' },
    ],
    note:
      `One subscriber reads and triggers bursts of 16 publishes; the other ${(slowSubs - 1).toLocaleString('en-US')} pause their sockets after the handshake and never read. ` +
      `Each gets ${((slowTotal * 16) / 1024).toFixed(2)} MiB published to it, more than loopback's kernel buffers take (about 3.7 MB per connection here), so what is left is held by the server: fullduplex drops topic messages to a connection over maxBackpressure (default 1 MiB); ws buffers every send; uWS skips sockets over its maxBackpressure. ` +
      'Server peak RSS is VmHWM of a fresh server process at the end of the run.',
  },
  {
    name: 'echo-deflate',
    title: 'Echo 16 KiB JSON with permessage-deflate, 50 connections × 4 in flight',
    kind: 'loadgen',
    deflate: true,
    servers: ['fullduplex', 'ws', 'uws'],
    args: ['--mode', 'echo', '--conns', 50, '--inflight', 4, '--size', 16384, '--compress'],
    primary: { key: 'msgsPerSec', label: 'msg/s', better: 'higher' },
    columns: [
      COL.msgs,
      { ...COL.mb, label: 'MB/s (uncompressed)' },
      COL.srvCpu,
      COL.peakRss,
      { key: 'deflate.echoWireBytesPerMsg', label: 'echo B on wire', fmt: 'int' },
      COL.srvPct,
      COL.lgPct,
    ],
    note:
      'Text messages of 16,384 B of JSON, compressed in both directions (permessage-deflate, context takeover both ways, 15-bit windows; the load generator offers `permessage-deflate; client_max_window_bits` like a browser and fails unless the server accepts). ' +
      'Servers: threshold 0; fullduplex `perMessageDeflate: { threshold: 0 }` (its defaults: zlib level 3, memLevel 7); ws `perMessageDeflate: { threshold: 0, zlibDeflateOptions: { level: 3, memLevel: 7 } }` (the same settings, as ws\'s README suggests for production); uWS `DEDICATED_COMPRESSOR | DEDICATED_DECOMPRESSOR` (zlib level 6, `send(msg, isBinary, true)`; this build compresses with windowBits 9 / memLevel 1 whatever it announces: bench/README.md). ' +
      'The client side is precompressed once (level 6, context takeover, 5.5× smaller), so the load generator only inflates and checks every echo. ' +
      'Server peak RSS is VmHWM of the server process at the end of the run (fresh process per run, so it covers startup, 50 handshakes, warm-up and the window); the ratio in brackets is against ws (lower is better). ' +
      '"echo B on wire": compressed payload bytes per echoed message (16,384 uncompressed).',
  },
];

if (opt.help || opt.list) {
  for (const s of SCENARIOS) console.log(`${s.name.padEnd(22)} ${s.title}${s.disabled ? `  [${s.disabled}]` : ''}`);
  process.exit(0);
}

const wantScenarios = opt.scenario?.split(',').map((s) => s.trim());
const wantServers = opt.servers?.split(',').map((s) => s.trim());
for (const s of wantScenarios ?? []) {
  if (!SCENARIOS.some((x) => x.name === s)) {
    console.error(`unknown scenario "${s}"; --list shows them`);
    process.exit(2);
  }
}
const scenarios = SCENARIOS.filter((s) => !wantScenarios || wantScenarios.includes(s.name));
if (opt.baseline) {
  for (const s of scenarios) {
    const i = s.servers.indexOf('fullduplex');
    if (i >= 0 && s.kind !== 'client') s.servers = [...s.servers.slice(0, i + 1), 'baseline', ...s.servers.slice(i + 1)];
  }
}

// ---------------------------------------------------------------- measuring

class Skip extends Error {}

/** CPU used by other processes during a window, in % of one core, above which a round is marked disturbed. */
const DISTURBED_PCT = 15;

/** Servers that could not start once are not tried again in this run. */
const unavailable = new Map(); // name -> { status, note }

async function startServer(name, { mode = 'echo', deflate = false, exposeGc = false, nofile = 0, profileName } = {}) {
  const def = SERVERS[name];
  const nodeFlags = [];
  if (exposeGc) nodeFlags.push('--expose-gc');
  if (opt['cpu-prof'] && profileName) {
    mkdirSync(path.join(RESULTS_DIR, 'profiles'), { recursive: true });
    nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${path.join(RESULTS_DIR, 'profiles')}`, `--cpu-prof-name=${profileName}.cpuprofile`);
  }
  const srv = spawnNode(path.join(BENCH_DIR, def.script), [], {
    core: 0,
    pin: PIN,
    nodeFlags,
    env: { PORT: '0', BENCH_MODE: mode, BENCH_DEFLATE: deflate ? '1' : '0', ...def.env },
    nofile,
  });
  try {
    const line = await srv.waitLine(/^READY \d+$/, 15000, `"READY <port>" from ${name}`);
    srv.port = Number(line.split(' ')[1]);
    return srv;
  } catch (err) {
    const { code } = await srv.stop(500);
    const why = lastLines(srv.stderr(), 3);
    if (code === 3) throw new Skip(why);
    throw new Error(`server ${name} failed to start (exit ${code}): ${why}`, { cause: err });
  }
}

async function runLoadgen(args, timeoutMs, onLine) {
  const lg = spawnNode(path.join(BENCH_DIR, 'loadgen.mjs'), args.map(String), { core: 1, pin: PIN });
  if (onLine) await onLine(lg);
  const timer = setTimeout(() => {
    try { process.kill(lg.pid, 'SIGKILL'); } catch { /* gone */ }
  }, timeoutMs);
  const { code, signal } = await lg.exited;
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`loadgen ${signal ? `killed (${signal}) after ${timeoutMs / 1000} s` : `exit ${code}`}: ${lastLines(lg.stderr(), 3)}`);
  }
  const last = lg.lines.filter((l) => l.startsWith('{')).pop();
  if (!last) throw new Error('loadgen printed no result');
  return JSON.parse(last);
}

function timeArgs() {
  return ['--warmup', WARMUP, '--duration', DURATION];
}

async function measureLoadgen(scn, name, round) {
  const srv = await startServer(name, { mode: scn.serverMode ?? 'echo', deflate: scn.deflate === true, profileName: `${scn.name}-${name}-r${round}` });
  try {
    const args = [...scn.args, ...timeArgs(), '--port', srv.port, '--server-pid', srv.pid];
    if (SERVERS[name].raw) args.push('--raw');
    return await runLoadgen(args, (WARMUP + DURATION) * 1000 + 60000);
  } finally {
    await srv.stop();
  }
}

async function serverMemory(srv) {
  srv.send('mem');
  const line = await srv.waitLine(/^MEM /, 30000, 'MEM reply');
  return JSON.parse(line.slice(4));
}

async function measureIdle(scn, name, round) {
  let stages = scn.stages;
  const need = stages[stages.length - 1] + 256;
  const { soft, hard } = openFileLimits();
  let nofile = 0;
  let note;
  if (!(soft >= need)) {
    if (hard >= need) nofile = need;
    else {
      const cap = Math.max(100, hard - 256);
      stages = stages.map((n) => Math.min(n, cap));
      note = `open-file limit ${hard} (hard) caps connections at ${cap}`;
    }
  }
  const srv = await startServer(name, { deflate: scn.deflate === true, exposeGc: true, nofile, profileName: `${scn.name}-${name}-r${round}` });
  try {
    const base = await serverMemory(srv);
    if (!base.gc) throw new Error('server has no gc() (needs --expose-gc)');
    const mems = [];
    const args = ['--mode', 'idle', '--stages', stages.join(','), '--port', srv.port, '--server-pid', srv.pid];
    if (SERVERS[name].raw) args.push('--raw');
    if (scn.deflate) args.push('--compress');
    const lgArgs = args.map(String);
    const lg = spawnNode(path.join(BENCH_DIR, 'loadgen.mjs'), lgArgs, { core: 1, pin: PIN, nofile });
    const stageInfo = [];
    try {
      for (let i = 0; i < stages.length; i++) {
        const line = await lg.waitLine(/^\{"event":"stage"/, 120000, `idle stage ${stages[i]}`);
        stageInfo.push(JSON.parse(line));
        // A moment for the server to finish processing the last upgrades
        // (compressed: and to be idle for a while, as a quiet connection would).
        await new Promise((r) => setTimeout(r, scn.settleMs ?? 200));
        mems.push(await serverMemory(srv));
        lg.send(i < stages.length - 1 ? 'next' : 'close');
      }
      const { code } = await lg.exited;
      if (code !== 0) throw new Error(`loadgen exit ${code}: ${lastLines(lg.stderr(), 3)}`);
    } catch (err) {
      try { process.kill(lg.pid, 'SIGKILL'); } catch { /* gone */ }
      if (lg.child.exitCode !== null && lg.child.exitCode !== 0) throw new Error(`loadgen exit ${lg.child.exitCode}: ${lastLines(lg.stderr(), 3)}`);
      throw err;
    }
    const perConn = stages.map((n, i) => (mems[i].rss - base.rss) / n);
    const last = stages.length - 1;
    const dn = stages[last] - stages[0];
    return {
      mode: 'idle',
      stages,
      baseline: { rss: base.rss, heapUsed: base.heapUsed },
      at: mems.map((m, i) => ({ conns: stages[i], rss: m.rss, heapUsed: m.heapUsed, external: m.external })),
      perConn,
      slopeBytesPerConn: dn > 0 ? (mems[last].rss - mems[0].rss) / dn : NaN,
      heapSlopeBytesPerConn: dn > 0 ? (mems[last].heapUsed - mems[0].heapUsed) / dn : NaN,
      openPerSec: median(stageInfo.map((s) => s.handshakesPerSec)),
      note,
    };
  } finally {
    await srv.stop();
  }
}

async function measureClient(scn, name, round) {
  const srv = await startServer(scn.fixedServer, { profileName: `${scn.name}-${name}-r${round}` });
  try {
    const args = ['--lib', name, ...scn.args, ...timeArgs(), '--port', srv.port, '--server-pid', srv.pid].map(String);
    const cl = spawnNode(path.join(BENCH_DIR, 'client.mjs'), args, { core: 1, pin: PIN });
    const timer = setTimeout(() => {
      try { process.kill(cl.pid, 'SIGKILL'); } catch { /* gone */ }
    }, (WARMUP + DURATION) * 1000 + 60000);
    const { code } = await cl.exited;
    clearTimeout(timer);
    if (code === 3) throw new Skip(lastLines(cl.stderr(), 2));
    if (code !== 0) throw new Error(`client ${name} exit ${code}: ${lastLines(cl.stderr(), 3)}`);
    const last = cl.lines.filter((l) => l.startsWith('{')).pop();
    if (!last) throw new Error('client printed no result');
    return JSON.parse(last);
  } finally {
    await srv.stop();
  }
}

function describe(scn, r) {
  const p = scn.primary;
  const v = p.key.split('.').reduce((o, k) => o?.[k], r);
  const extra = [];
  if (Number.isFinite(r.serverCpuPct)) extra.push(`server ${r.serverCpuPct.toFixed(0)}%`);
  if (Number.isFinite(r.loadgenCpuPct)) extra.push(`loadgen ${r.loadgenCpuPct.toFixed(0)}%`);
  if (Number.isFinite(r.clientCpuPct)) extra.push(`client ${r.clientCpuPct.toFixed(0)}%`);
  if (r.otherCpuPct > DISTURBED_PCT / 3) extra.push(`other processes ${r.otherCpuPct.toFixed(0)}%${r.otherCpuPct > DISTURBED_PCT ? ' DISTURBED' : ''}`);
  return `${p.label} ${typeof v === 'number' ? (v >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2)) : v}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

// ---------------------------------------------------------------- main

async function main() {
  const started = Date.now();
  const mach = machine({ pinned: PIN });
  console.log(`fullduplex benchmarks: ${mach.cpu}, ${mach.cores} cores, Node ${mach.node}; ${ROUNDS} round(s), warmup ${WARMUP} s + ${DURATION} s per measurement${QUICK ? ' (quick)' : ''}`);
  if (!PIN) console.log('note: no CPU pinning (taskset missing or fewer than 2 cores); numbers are noisier');
  const load1 = os.loadavg()[0];
  if (load1 > 0.7) console.log(`warning: load average ${load1.toFixed(2)}: other work is running; rounds where it took CPU are marked ‡`);
  const limits = openFileLimits();
  console.log(`open-file limit: ${limits.soft} (hard ${limits.hard})`);

  const out = { machine: mach, config: { rounds: ROUNDS, warmupS: WARMUP, durationS: DURATION, quick: QUICK, pinned: PIN }, date: new Date().toISOString(), scenarios: [] };
  const text = [];
  const md = [];
  let failures = 0;

  for (const scn of scenarios) {
    if (scn.disabled) {
      console.log(`\n[${scn.name}] not run: ${scn.disabled}`);
      out.scenarios.push({ name: scn.name, title: scn.title, disabled: scn.disabled });
      md.push(`#### ${scn.title}\n\nNot run: ${scn.disabled}.`);
      continue;
    }
    const names = scn.servers.filter((s) => !wantServers || wantServers.includes(s));
    if (names.length === 0) continue;
    const rounds = scn.rounds ?? ROUNDS;
    const perServer = {};
    for (const n of names) perServer[n] = { label: scn.labels?.[n] ?? SERVERS[n].label, results: [], status: 'ok', errors: [] };
    const scnStarted = Date.now();
    console.log(`\n[${scn.name}] ${scn.title}`);
    for (let round = 1; round <= rounds; round++) {
      for (const n of names) {
        const entry = perServer[n];
        const serverKey = scn.kind === 'client' ? scn.fixedServer : n;
        if (unavailable.has(serverKey)) {
          Object.assign(entry, unavailable.get(serverKey));
          continue;
        }
        if (entry.status !== 'ok') continue;
        try {
          const measure = () =>
            scn.kind === 'idle' ? measureIdle(scn, n, round)
            : scn.kind === 'client' ? measureClient(scn, n, round)
            : measureLoadgen(scn, n, round);
          let r = await measure();
          if (r.otherCpuPct > DISTURBED_PCT) {
            // Something else ran during the window: once more, keeping the second.
            console.log(`  round ${round}/${rounds}  ${entry.label.padEnd(30)} ${describe(scn, r)}; measuring again`);
            r = { ...(await measure()), retried: true };
          }
          entry.results.push(r);
          console.log(`  round ${round}/${rounds}  ${entry.label.padEnd(30)} ${describe(scn, r)}`);
        } catch (err) {
          if (err instanceof Skip) {
            entry.status = 'skipped';
            entry.note = err.message;
            if (scn.kind !== 'client') unavailable.set(n, { status: 'skipped', note: err.message });
            console.log(`  round ${round}/${rounds}  ${entry.label.padEnd(30)} skipped: ${err.message}`);
          } else {
            entry.status = 'failed';
            entry.note = err.message;
            failures++;
            if (/failed to start/.test(err.message) && scn.kind !== 'client') unavailable.set(n, { status: 'failed', note: err.message });
            console.error(`  round ${round}/${rounds}  ${entry.label.padEnd(30)} FAILED: ${err.message}`);
          }
        }
      }
    }
    const rows = summarize(scn, perServer, DISTURBED_PCT);
    const t = textTable(scn, rows);
    console.log(`\n${t}\n(${((Date.now() - scnStarted) / 1000).toFixed(0)} s)`);
    text.push(t);
    md.push(markdownTable(scn, rows));
    out.scenarios.push({ name: scn.name, title: scn.title, primary: scn.primary, rows, raw: perServer });
  }

  const elapsed = (Date.now() - started) / 1000;
  out.elapsedS = elapsed;
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, 'latest.json'), JSON.stringify(out, null, 2) + '\n');
  const header = [
    '### Benchmarks',
    '',
    `Machine: ${mach.cpu}, ${mach.cores} cores, ${mach.memoryGiB} GiB, Node ${mach.node}, ${mach.kernel}; ${mach.pinning}.`,
    `${ROUNDS} round(s) (memory: ${Math.min(ROUNDS, 3)}), ${WARMUP} s warm-up + ${DURATION} s measured per run; ${out.date.slice(0, 10)}. Run with \`npm run bench\`.`,
    '',
  ];
  writeFileSync(path.join(RESULTS_DIR, 'latest.md'), [...header, md.join('\n\n'), '', ...FOOTNOTES.map((f) => `${f}  `), ''].join('\n'));
  console.log(`\n${FOOTNOTES.join('\n')}`);
  console.log(`\nwrote bench/results/latest.json and latest.md in ${elapsed.toFixed(0)} s`);
  if (failures > 0) {
    console.error(`\n${failures} measurement(s) FAILED; see the messages above`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`bench: ${err.stack ?? err}`);
  process.exit(1);
});
