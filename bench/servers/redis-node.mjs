// One node of the cross-node benchmark (bench/cross-node.mjs): a RedisBroker
// (dist/redis/index.js) with --subs in-process subscribers of topic "bench",
// driven by commands on stdin, one JSON object per line, answering on stdout:
//
//   {"cmd":"flood","warmup":s,"duration":s,"window":n}  publish as fast as Redis
//       takes it (at most `window` publishes awaiting Redis's reply)
//   {"cmd":"pace","rate":r,"warmup":s,"duration":s}    publish r messages/s
//   {"cmd":"receive","warmup":s,"duration":s}          count (and time) what arrives
//   {"cmd":"quit"}
//
// Payload: 8 bytes of send time (performance.timeOrigin + now(), ms as a
// float64: the same clock in every process on one machine) + padding.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { TopicMessage } from '../../dist/index.js';
import { RedisBroker } from '../../dist/redis/index.js';

const { values: opt } = parseArgs({ options: { url: { type: 'string' }, subs: { type: 'string', default: '1' }, size: { type: 'string', default: '64' } } });
const SIZE = Math.max(8, Number(opt.size));
const TOPIC = 'bench';
const now = () => performance.timeOrigin + performance.now();

const broker = new RedisBroker({ url: opt.url, prefix: 'bench', onError: (e) => process.stderr.write(`redis-node: ${e.message}\n`) });
await broker.ready();

// Receiving: the first subscriber counts and, while asked, keeps latencies.
let received = 0;
let latencies = null;
const first = {
  topics: null,
  deliver(m) {
    received++;
    if (latencies !== null && latencies.n < latencies.a.length) latencies.a[latencies.n++] = now() - m.payload.readDoubleLE(0);
    return true;
  },
};
broker.subscribe(TOPIC, first);
for (let i = 1; i < Number(opt.subs); i++) broker.subscribe(TOPIC, { topics: null, deliver: () => true });

let published = 0;
let failed = 0;
let inflight = 0;
const onSent = (err) => {
  inflight--;
  if (err === null) published++;
  else failed++;
};
function publishOne() {
  const payload = Buffer.alloc(SIZE);
  payload.writeDoubleLE(now(), 0);
  inflight++;
  broker.publish(TOPIC, TopicMessage.from(TOPIC, payload), undefined, onSent);
}

const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** Counts `counter()` over a window that starts after `warmup` seconds. */
async function windowed(warmup, duration, counter) {
  await sleep(warmup);
  const a = counter();
  const t0 = performance.now();
  await sleep(duration);
  return { count: counter() - a, seconds: (performance.now() - t0) / 1000 };
}

async function flood({ warmup, duration, window }) {
  let running = true;
  const pump = () => {
    if (!running) return;
    for (let i = 0; i < 256 && inflight < window; i++) publishOne();
    setImmediate(pump);
  };
  pump();
  const r = await windowed(warmup, duration, () => published);
  running = false;
  out({ published: r.count, seconds: r.seconds, failed });
}

async function pace({ rate, warmup, duration }) {
  // Every millisecond, publish what the rate owes so far.
  const start = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const owed = Math.floor(((performance.now() - start) / 1000) * rate) - sent;
    for (let i = 0; i < owed; i++) publishOne();
    sent += Math.max(0, owed);
  }, 1);
  const r = await windowed(warmup, duration, () => published);
  clearInterval(timer);
  out({ published: r.count, seconds: r.seconds, failed });
}

async function receive({ warmup, duration, keep }) {
  await sleep(warmup);
  latencies = keep ? { a: new Float64Array(2_000_000), n: 0 } : null;
  const a = received;
  const t0 = performance.now();
  await sleep(duration);
  const r = { received: received - a, seconds: (performance.now() - t0) / 1000 };
  if (latencies !== null) {
    const sorted = latencies.a.subarray(0, latencies.n).sort();
    const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
    Object.assign(r, { samples: sorted.length, p50: q(0.5), p99: q(0.99), max: sorted[sorted.length - 1] ?? NaN });
  }
  latencies = null;
  out(r);
}

// Commands run side by side: a node may publish and receive in the same window.
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const c = JSON.parse(line);
  if (c.cmd === 'flood') void flood(c);
  else if (c.cmd === 'pace') void pace(c);
  else if (c.cmd === 'receive') void receive(c);
  else if (c.cmd === 'quit') rl.close();
});
rl.on('close', () => {
  void broker.close().then(() => process.exit(0));
});
out({ ready: true });
