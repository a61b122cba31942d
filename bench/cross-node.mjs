#!/usr/bin/env node
// Cross-node publishing through one Redis: three node processes, each a
// RedisBroker (fullduplex/redis, from dist/) with in-process subscribers of
// one topic; node 0 publishes, every node receives (node 0 locally, nodes 1
// and 2 through Redis). Measures the Redis path alone: the WebSocket fan-out
// to many connections is the broadcast scenario's business.
//
//   npm run build && node bench/cross-node.mjs [--duration 3] [--warmup 1] [--subs 10] [--size 64]
//
// 1. Throughput: node 0 publishes as fast as Redis takes it (at most
//    --window publishes awaiting a reply); a publish counts as delivered when
//    it reached the slowest remote node: delivered/s = min over nodes 1 and 2
//    of messages received per second in the window.
// 2. Latency: node 0 publishes at half that rate, paced every millisecond;
//    nodes 1 and 2 time each message from its send time (performance.timeOrigin
//    + now(): one clock for every process on the machine): p50, p99, max.
//
// Needs redis-server (Debian package redis-server). Nothing is pinned: three
// nodes and Redis share the machine's cores.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, spawnNode } from './lib/procs.mjs';

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    subs: { type: 'string', default: '10' },
    size: { type: 'string', default: '64' },
    window: { type: 'string', default: '20000' },
    // Latency at these rates (publishes/s) too, besides half the delivered rate.
    rates: { type: 'string', default: '1000,10000' },
  },
});
const DURATION = Number(opt.duration);
const WARMUP = Number(opt.warmup);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

const cli = (port, ...args) => spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();

async function until(what, cond, ms = 15_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'fullduplex-bench-redis-'));
const port = await freePort();
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], { stdio: 'ignore' });
const stopRedis = () => {
  if (redis.exitCode === null) redis.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stopRedis);
redis.on('error', (e) => {
  process.stderr.write(`cross-node: cannot start redis-server: ${e.message}\n`);
  process.exit(1);
});
await until('redis-server', () => cli(port, 'PING') === 'PONG');

const url = `redis://127.0.0.1:${port}`;
const nodes = [0, 1, 2].map(() =>
  spawnNode(path.join(BENCH_DIR, 'servers/redis-node.mjs'), ['--url', url, '--subs', opt.subs, '--size', opt.size], { core: 0, pin: false }),
);
await Promise.all(nodes.map((n) => n.waitLine(/"ready"/, 15_000, 'node ready')));
await until('three nodes subscribed', () => cli(port, 'PUBSUB', 'NUMSUB', 'bench:bench').split('\n')[1] === '3');

const send = (n, o) => n.send(JSON.stringify(o));
const answer = async (n, re) => JSON.parse(await n.waitLine(re, (WARMUP + DURATION + 30) * 1000, 'a result'));

// 1. Throughput.
for (const n of nodes) send(n, { cmd: 'receive', warmup: WARMUP, duration: DURATION, keep: false });
send(nodes[0], { cmd: 'flood', warmup: WARMUP, duration: DURATION, window: Number(opt.window) });
const [pub, ...recv] = await Promise.all([answer(nodes[0], /"published"/), ...nodes.map((n) => answer(n, /"received"/))]);
const rate = (r) => r.received / r.seconds;
const delivered = Math.min(rate(recv[1]), rate(recv[2]));
// Let the backlog drain before the latency run.
await new Promise((r) => setTimeout(r, 1500));

// 2. Latency at half the delivered rate, and at the --rates asked for.
async function latencyAt(rate) {
  for (const n of nodes.slice(1)) send(n, { cmd: 'receive', warmup: WARMUP, duration: DURATION, keep: true });
  send(nodes[0], { cmd: 'pace', rate, warmup: WARMUP, duration: DURATION });
  const [paced, ...lat] = await Promise.all([answer(nodes[0], /"published"/), ...nodes.slice(1).map((n) => answer(n, /"received"/))]);
  await new Promise((r) => setTimeout(r, 500));
  return { rate, paced, lat };
}
const half = Math.floor(delivered / 2);
const latencies = [];
for (const r of [...opt.rates.split(',').filter(Boolean).map(Number), half]) latencies.push(await latencyAt(r));

for (const n of nodes) send(n, { cmd: 'quit' });
await Promise.all(nodes.map((n) => n.stop()));
stopRedis();

const k = (x) => `${(x / 1000).toFixed(1)}k`;
const ms = (x) => `${x.toFixed(2)} ms`;
const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`cross-node through one Redis (${os.cpus().length} cores, load ${load}; nothing pinned; ${opt.subs} subscribers per node, ${opt.size} B payloads)`);
console.log('');
console.log('| measure | value |');
console.log('| --- | --- |');
console.log(`| publishes/s sent by node 0 | ${k(pub.published / pub.seconds)} |`);
console.log(`| publishes/s received, node 0 (local) / 1 / 2 | ${recv.map((r) => k(rate(r))).join(' / ')} |`);
console.log(`| **publishes/s delivered to every node** | **${k(delivered)}** (× ${opt.subs} subscribers per node) |`);
for (const { rate: r, lat } of latencies) {
  for (const [i, l] of lat.entries()) {
    console.log(`| latency at ${k(r)}/s${r === half ? ' (half)' : ''}, node ${i + 1}: p50 / p99 / max | ${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)} (${l.samples} samples) |`);
  }
}
console.log(`| publishes failed (all runs) | ${latencies.at(-1).paced.failed} |`);
