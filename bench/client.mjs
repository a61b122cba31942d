#!/usr/bin/env node
// The client benchmark: C connections × F messages in flight through a real
// client library (--lib fullduplex: our WHATWG WebSocket from dist/ with
// binaryType 'nodebuffer'; --lib ws: the ws client), against one fixed echo
// server. Every echo is compared byte-for-byte with what was sent; a mismatch
// exits 1. Prints one JSON object: messages/s and this process's CPU per
// message (the number that says how much a client costs), plus the server's.
// Exit code 3: the library is not available (not built yet).
import { parseArgs } from 'node:util';
import { makePayload } from './lib/payload.mjs';
import { processCpuUs, machineCpuUs, selfCpuUs } from './lib/cpu.mjs';

const { values: opt } = parseArgs({
  options: {
    lib: { type: 'string', default: 'ws' },
    port: { type: 'string' },
    conns: { type: 'string', default: '100' },
    inflight: { type: 'string', default: '32' },
    size: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '1' },
    duration: { type: 'string', default: '3' },
    'server-pid': { type: 'string' },
  },
});
const PORT = Number(opt.port);
const CONNS = Number(opt.conns);
const INFLIGHT = Number(opt.inflight);
const SIZE = Number(opt.size);
const SERVER_PID = Number(opt['server-pid'] ?? 0);
const URL_ = `ws://127.0.0.1:${PORT}/`;

function die(msg) {
  process.stderr.write(`client: FAIL: ${msg}\n`);
  process.exit(1);
}
if (!Number.isInteger(PORT) || PORT <= 0) die('--port <n> is required');

function snap() {
  return { t: process.hrtime.bigint(), self: selfCpuUs(), server: processCpuUs(SERVER_PID), machine: machineCpuUs(), messages };
}

const P = Math.max(2, Math.min(INFLIGHT, 16));
const payloads = Array.from({ length: P }, (_, j) => makePayload(SIZE, j));

let messages = 0;
let running = false;

/** Per-connection state kept outside the socket object, the same for both libraries. */
function makeState(id) {
  return { id, sent: 0, received: 0 };
}
function check(st, data) {
  const exp = payloads[st.received % P];
  if (!Buffer.isBuffer(data)) die(`connection ${st.id}: message is not a Buffer (${Object.prototype.toString.call(data)})`);
  if (!data.equals(exp)) die(`connection ${st.id}: echoed message #${st.received} differs from what was sent`);
  st.received++;
  messages++;
}

// Each adapter: open(id, onOpen) returning { state }, with echo handling wired.
const adapters = {
  async ws() {
    const { WebSocket } = await import('ws');
    return (id, onOpen) => {
      const st = makeState(id);
      const sock = new WebSocket(URL_, { perMessageDeflate: false });
      const send = () => sock.send(payloads[st.sent++ % P], { binary: true });
      sock.on('open', () => {
        st.start = () => { for (let i = 0; i < INFLIGHT; i++) send(); };
        onOpen();
      });
      sock.on('message', (data, isBinary) => {
        if (!isBinary) die(`connection ${id}: text message`);
        check(st, data);
        if (running) send();
      });
      sock.on('error', (err) => die(`connection ${id}: ${err.message}`));
      sock.on('close', () => { if (running) die(`connection ${id}: closed during the run`); });
      return st;
    };
  },
  async fullduplex() {
    let WebSocket;
    try {
      ({ WebSocket } = await import('../dist/index.js'));
    } catch (err) {
      process.stderr.write(`fullduplex client not available (run npm run build): ${err.message}\n`);
      process.exit(3);
    }
    if (typeof WebSocket !== 'function') {
      process.stderr.write('dist/index.js does not export WebSocket\n');
      process.exit(3);
    }
    return (id, onOpen) => {
      const st = makeState(id);
      const sock = new WebSocket(URL_);
      sock.binaryType = 'nodebuffer';
      const send = () => sock.send(payloads[st.sent++ % P]);
      sock.onopen = () => {
        st.start = () => { for (let i = 0; i < INFLIGHT; i++) send(); };
        onOpen();
      };
      sock.onmessage = (ev) => {
        check(st, ev.data);
        if (running) send();
      };
      sock.onerror = (ev) => die(`connection ${id}: error event: ${ev.message ?? ev.error?.message ?? ''}`);
      sock.onclose = (ev) => { if (running) die(`connection ${id}: closed during the run (${ev.code})`); };
      return st;
    };
  },
};

const factory = adapters[opt.lib];
if (!factory) die(`unknown --lib ${opt.lib}`);
const open = await factory();

const states = [];
let opened = 0;
let next = 0;
const startOne = () => {
  const id = next++;
  states.push(open(id, () => {
    opened++;
    if (next < CONNS) startOne();
    if (opened === CONNS) go();
  }));
};
for (let i = 0; i < Math.min(CONNS, 64); i++) startOne();

let lastProgress = -1;
let stalledSince = Date.now();
setInterval(() => {
  if (messages !== lastProgress) { lastProgress = messages; stalledSince = Date.now(); }
  else if (Date.now() - stalledSince > 10000) die(`no progress for 10 s (${opened}/${CONNS} open, ${messages} echoed)`);
}, 250).unref();

function go() {
  running = true;
  for (const st of states) st.start();
  let a;
  setTimeout(() => { a = snap(); }, Number(opt.warmup) * 1000);
  const end = () => {
    // Nothing in the window (a stall, or a machine too busy): extend it; a
    // real stall is failed by the watchdog above.
    if (messages === a.messages) return void setTimeout(end, 20);
    const b = snap();
    running = false;
    const n = b.messages - a.messages;
    const seconds = Number(b.t - a.t) / 1e9;
    process.stdout.write(
      JSON.stringify({
        mode: 'client',
        lib: opt.lib,
        conns: CONNS,
        inflight: INFLIGHT,
        size: SIZE,
        messages: n,
        seconds,
        msgsPerSec: n / seconds,
        clientCpuPct: ((b.self - a.self) / (seconds * 1e6)) * 100,
        clientCpuUsPerMsg: (b.self - a.self) / n,
        serverCpuPct: ((b.server - a.server) / (seconds * 1e6)) * 100,
        serverCpuUsPerMsg: (b.server - a.server) / n,
        otherCpuPct: ((b.machine - a.machine - (b.self - a.self) - (b.server - a.server)) / (seconds * 1e6)) * 100,
      }) + '\n',
      () => process.exit(0),
    );
  };
  setTimeout(end, (Number(opt.warmup) + Number(opt.duration)) * 1000);
}
