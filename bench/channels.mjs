#!/usr/bin/env node
// The channel layer against Socket.IO, same machine, same run:
//
//   node bench/channels.mjs                 # 1,000 and 10,000 subscribers, 2 rounds (a few minutes)
//   node bench/channels.mjs --clients 1000 --rounds 1 --duration 1
//   node bench/channels.mjs --clients 10000 --servers socketio
//
// For each subscriber count, each round runs both servers once, alternating
// which goes first (A B, then B A), each in a fresh server process pinned to
// core 0 with its subscribers in a fresh load generator pinned to core 1
// (bench/channels/loadgen.mjs). Measured:
// - broadcast: the server publishes small messages to one room in batches;
//   the next batch goes once every subscriber got the last (no unbounded
//   queues). Deliveries/s = messages × subscribers / window; server CPU per
//   delivery = server CPU time in the window / deliveries.
// - memory per idle subscribed client: server RSS (after two gc()) with every
//   client subscribed and idle, minus the RSS before any connection, / N.
// - client size: the browser builds, minified, gzipped (level 9).
// Nothing here asserts speed; a subscriber that misses, repeats or reorders a
// message makes the row FAILED.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { processCpuUs, machineCpuUs } from './lib/cpu.mjs';
import { BENCH_DIR, pinningAvailable, spawnNode } from './lib/procs.mjs';
import { median } from './lib/report.mjs';

const { values: opt } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000,10000' },
    rounds: { type: 'string', default: '2' },
    duration: { type: 'string', default: '2' },
    size: { type: 'string', default: '16' },
    servers: { type: 'string', default: 'fullduplex,socketio' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
  process.exit(0);
}

const ROOT = path.dirname(BENCH_DIR);
const SIZES = opt.clients.split(',').map(Number);
const ROUNDS = Number(opt.rounds);
const DURATION_MS = Number(opt.duration) * 1000;
const MESSAGE_SIZE = Number(opt.size);
const PIN = pinningAvailable(os.cpus().length);
const SERVERS = { fullduplex: 'channels/server-fullduplex.mjs', socketio: 'channels/server-socketio.mjs' };
const LABEL = { fullduplex: 'fullduplex channels', socketio: 'Socket.IO' };
const KINDS = opt.servers.split(',').filter((k) => k in SERVERS);
const NOFILE = 20_000;
const STEP_TIMEOUT = 120_000;

/** Messages per batch: about 100,000 deliveries each, so a batch takes well under a second. */
const batchFor = (n) => Math.max(1, Math.round(100_000 / n));

function parseJsonLine(line, prefix) {
  return JSON.parse(line.slice(prefix.length + 1));
}

async function measure(kind, n) {
  const server = spawnNode(path.join(BENCH_DIR, SERVERS[kind]), ['0'], { core: 0, pin: PIN, nodeFlags: ['--expose-gc'], nofile: NOFILE });
  let loadgen = null;
  try {
    const port = Number((await server.waitLine(/^READY \d+/, 20_000, `${kind} server`)).split(' ')[1]);
    server.send('mem');
    const before = parseJsonLine(await server.waitLine(/^MEM /, 20_000, 'baseline memory'), 'MEM');
    loadgen = spawnNode(path.join(BENCH_DIR, 'channels/loadgen.mjs'), [kind, String(port), String(n)], { core: 1, pin: PIN, nofile: NOFILE });
    const setupMs = Number((await loadgen.waitLine(/^READY \d+/, STEP_TIMEOUT * 3, `${n} subscribers`)).split(' ')[1]);
    server.send('mem');
    const idle = parseJsonLine(await server.waitLine(/^MEM /, 20_000, 'idle memory'), 'MEM');

    const batch = batchFor(n);
    let sent = 0;
    const runBatch = async () => {
      sent += batch;
      server.send(`pub ${batch} ${MESSAGE_SIZE}`);
      loadgen.send(`wait ${sent}`);
      await loadgen.waitLine(new RegExp(`^REACHED ${sent}$`), STEP_TIMEOUT, `batch up to message ${sent}`);
    };
    // Warm-up: a few batches, so both servers run optimized code in the window.
    for (let i = 0; i < 3; i++) await runBatch();
    const sentBefore = sent;
    const cpu0 = processCpuUs(server.pid);
    const machine0 = machineCpuUs();
    const loadCpu0 = processCpuUs(loadgen.pid);
    const t0 = performance.now();
    while (performance.now() - t0 < DURATION_MS) await runBatch();
    const elapsedMs = performance.now() - t0;
    const serverCpu = processCpuUs(server.pid) - cpu0;
    const loadCpu = processCpuUs(loadgen.pid) - loadCpu0;
    const others = machineCpuUs() - machine0 - serverCpu - loadCpu;
    const deliveries = (sent - sentBefore) * n;

    loadgen.send('check');
    const check = parseJsonLine(await loadgen.waitLine(/^CHECK /, 20_000, 'the check'), 'CHECK');
    const expected = sent * n;
    const failed = check.errors > 0 || check.deliveries !== expected ? `${check.errors} errors, ${check.deliveries}/${expected} deliveries: ${check.firstError}` : null;
    return {
      kind,
      n,
      failed,
      setupMs,
      deliveriesPerSec: deliveries / (elapsedMs / 1000),
      serverCpuUsPerDelivery: serverCpu / deliveries,
      serverCpuShare: serverCpu / (elapsedMs * 1000),
      loadgenCpuShare: loadCpu / (elapsedMs * 1000),
      othersCpuShare: others / (elapsedMs * 1000),
      rssPerClient: (idle.rss - before.rss) / n,
      heapPerClient: (idle.heapUsed + idle.external - before.heapUsed - before.external) / n,
    };
  } catch (err) {
    // What the subscribers saw (disconnects, gaps) says more than a timeout.
    let seen = '';
    if (loadgen !== null && loadgen.child.exitCode === null) {
      loadgen.send('check');
      seen = await loadgen.waitLine(/^CHECK /, 10_000, 'the check').then((line) => ` (subscribers: ${line.slice(6)})`, () => '');
    }
    return { kind, n, failed: `${err.message}${seen}` };
  } finally {
    if (loadgen !== null) await loadgen.stop(5000);
    await server.stop(5000);
  }
}

function clientSizes() {
  const gz = (file) => {
    const bytes = readFileSync(file);
    return { file: path.relative(ROOT, file), min: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
  };
  const sio = path.join(ROOT, 'node_modules/socket.io-client/dist');
  return [
    { name: 'fullduplex/client (dist/client/fullduplex-client.min.js, ESM)', ...gz(path.join(ROOT, 'dist/client/fullduplex-client.min.js')) },
    { name: 'socket.io-client (socket.io.esm.min.js, ESM)', ...gz(path.join(sio, 'socket.io.esm.min.js')) },
    { name: 'socket.io-client (socket.io.min.js, UMD)', ...gz(path.join(sio, 'socket.io.min.js')) },
  ];
}

const f0 = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '–');
const kb = (v) => (Number.isFinite(v) ? (v / 1024).toFixed(1) : '–');
const pct = (v) => (Number.isFinite(v) ? `${Math.round(v * 100)} %` : '–');

async function main() {
  const load = os.loadavg()[0];
  const lines = [];
  const say = (line = '') => {
    lines.push(line);
    process.stdout.write(line + '\n');
  };
  say(`# Channels: fullduplex vs Socket.IO (${new Date().toISOString()})`);
  say('');
  say(`Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${load.toFixed(2)} at start; ${PIN ? 'server on core 0, subscribers on core 1' : 'not pinned'}.`);
  say('A shared machine: other agents run builds and tests on it at the same time, so treat every figure as rough (the "others" column is the CPU they took during the window).');
  say(`${ROUNDS} round(s) of ${DURATION_MS / 1000} s per row, ${MESSAGE_SIZE}-byte messages, medians; rounds alternate which server goes first.`);
  const results = [];
  for (const n of SIZES) {
    const rows = { fullduplex: [], socketio: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['fullduplex', 'socketio'] : ['socketio', 'fullduplex'];
      for (const kind of order.filter((k) => KINDS.includes(k))) {
        process.stderr.write(`  ${n} subscribers, round ${r + 1}/${ROUNDS}: ${kind}…\n`);
        const m = await measure(kind, n);
        if (m.failed) process.stderr.write(`  FAILED: ${m.failed}\n`);
        rows[kind].push(m);
        results.push(m);
      }
    }
    say('');
    say(`## Broadcast to ${n.toLocaleString('en-US')} subscribers of one room`);
    say('');
    say('| server | deliveries/s | server CPU µs/delivery | server CPU | subscriber process CPU | others | RSS/idle client | heap+external/idle client | connect+subscribe all |');
    say('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const kind of KINDS) {
      const ok = rows[kind].filter((m) => !m.failed);
      if (ok.length === 0) {
        say(`| ${LABEL[kind]} | FAILED: ${rows[kind][0]?.failed ?? ''} | | | | | | | |`);
        continue;
      }
      const med = (key) => median(ok.map((m) => m[key]));
      say(`| ${LABEL[kind]}${ok.length < rows[kind].length ? ` (${rows[kind].length - ok.length} round(s) FAILED)` : ''} | ${f0(med('deliveriesPerSec'))} | ${f2(med('serverCpuUsPerDelivery'))} | ${pct(med('serverCpuShare'))} | ${pct(med('loadgenCpuShare'))} | ${pct(med('othersCpuShare'))} | ${kb(med('rssPerClient'))} KiB | ${kb(med('heapPerClient'))} KiB | ${(med('setupMs') / 1000).toFixed(1)} s |`);
    }
  }
  say('');
  say('## Browser client size (minified, gzip -9)');
  say('');
  say('| client | minified | gzipped |');
  say('| --- | ---: | ---: |');
  for (const s of clientSizes()) say(`| ${s.name} | ${(s.min / 1024).toFixed(1)} KiB | ${(s.gzip / 1024).toFixed(1)} KiB |`);
  say('');
  say('Notes: deliveries/s is bounded by the subscribers\' process too (one Node process for all clients, on one core); where its CPU is near 100 %, server CPU per delivery is the figure to compare. Socket.IO clients start on long-polling and are measured after their upgrade to WebSocket; each uses forceNew (otherwise io() multiplexes every client onto one connection).');

  const out = path.join(BENCH_DIR, 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'channels.json'), JSON.stringify({ date: new Date().toISOString(), load, results }, null, 2));
  writeFileSync(path.join(out, 'channels.md'), lines.join('\n') + '\n');
  process.exitCode = results.some((m) => m.failed) ? 1 : 0;
}

await main();
