#!/usr/bin/env node
// One connection, one message in flight, driven by a load generator in C
// (bench/native/echo1.c, compiled here with cc): a cross-check of the
// echo-*-1 and 1 x 1 rows of run.mjs whose load generator is not Node.
//
//   node bench/native.mjs                          # 16 B, 64 KiB, 1 MiB; 5 rounds
//   node bench/native.mjs --sizes 65536 --rounds 3 --servers fullduplex,ws,fullduplex-events
//
// Servers as in run.mjs, pinned to core 0, the generator to core 1, rounds
// alternating A B A B, medians and the range of per-round ratios to ws.
// `fullduplex-events` is fullduplex reading through 'data' events instead of
// the shared read buffer (FULLDUPLEX_READ_EVENTS=1), to compare the two.
// Needs a C compiler (cc); prints why and exits 1 without one.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, spawnNode, pinningAvailable } from './lib/procs.mjs';
import { median } from './lib/report.mjs';

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '16,65536,1048576' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '2' },
    servers: { type: 'string', default: 'fullduplex,ws,fullduplex-events' },
  },
});

const SERVERS = {
  fullduplex: { script: 'servers/fullduplex.mjs', env: {} },
  'fullduplex-events': { script: 'servers/fullduplex.mjs', env: { FULLDUPLEX_READ_EVENTS: '1' } },
  ws: { script: 'servers/ws.mjs', env: {} },
};
const sizes = opt.sizes.split(',').map(Number);
const servers = opt.servers.split(',');
for (const s of servers) if (!(s in SERVERS)) throw new Error(`unknown server ${s} (${Object.keys(SERVERS).join(', ')})`);
const rounds = Number(opt.rounds);
const PIN = pinningAvailable(os.cpus().length);

const outDir = path.join(BENCH_DIR, 'results', 'native');
mkdirSync(outDir, { recursive: true });
const binary = path.join(outDir, 'echo1');
try {
  execFileSync('cc', ['-O2', '-o', binary, path.join(BENCH_DIR, 'native', 'echo1.c')], { stdio: 'pipe' });
} catch (err) {
  console.error(`cannot compile bench/native/echo1.c with cc: ${err.message}`);
  process.exit(1);
}

function runGenerator(port, size) {
  const argv = [String(port), String(size), opt.duration];
  const [cmd, args] = PIN ? ['taskset', ['-c', '1', binary, ...argv]] : [binary, argv];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`echo1 exited ${code}: ${err.trim()}`))));
  });
}

const label = (size) => (size >= 1 << 20 ? `${size / (1 << 20)} MiB` : size >= 1024 ? `${size / 1024} KiB` : `${size} B`);
for (const size of sizes) {
  const results = Object.fromEntries(servers.map((s) => [s, []]));
  for (let r = 0; r < rounds; r++) {
    for (const name of servers) {
      const { script, env } = SERVERS[name];
      const srv = spawnNode(path.join(BENCH_DIR, script), ['0'], { core: 0, pin: PIN, env });
      const port = Number((await srv.waitLine(/^READY \d+$/, 15000, `READY from ${name}`)).split(' ')[1]);
      try {
        results[name].push(await runGenerator(port, size));
      } finally {
        await srv.stop();
      }
    }
  }
  console.log(`\nEcho ${label(size)}, 1 connection x 1 in flight, C load generator, ${rounds} rounds (medians)`);
  console.log('server              msg/s     p50 µs   p99 µs   vs ws msg/s (rounds min-max)');
  const ws = results.ws;
  for (const name of servers) {
    const rs = results[name];
    const m = median(rs.map((x) => x.msgsPerSec));
    let ratio = '';
    if (ws !== undefined && name !== 'ws') {
      const per = rs.map((x, i) => x.msgsPerSec / ws[i].msgsPerSec);
      ratio = `${(m / median(ws.map((x) => x.msgsPerSec))).toFixed(2)}x (${Math.min(...per).toFixed(2)}-${Math.max(...per).toFixed(2)})`;
    }
    console.log(`${name.padEnd(18)} ${m.toFixed(0).padStart(7)}  ${median(rs.map((x) => x.p50)).toFixed(1).padStart(8)} ${median(rs.map((x) => x.p99)).toFixed(1).padStart(8)}   ${ratio}`);
  }
}
