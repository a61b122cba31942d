// The subscribers of the channel benchmark: N clients in one process, each
// with the server's own default Node client (fullduplex's channels Client on
// fullduplex's WebSocket; socket.io-client), all subscribed to one room.
// Every client checks that it gets each broadcast message once and in order.
//
//   node loadgen.mjs <fullduplex|socketio> <port> <clients>
// stdout: `READY <ms to connect and subscribe everyone>`; then, on stdin:
//   wait <k>  -> `REACHED <k>` once every client has received k messages
//   check     -> `CHECK {"deliveries":…,"errors":…,"firstError":…}`
//   stdin closed -> every client disconnects, exit
import { createInterface } from 'node:readline';
import { ROOM, sequenceOf } from './payload.mjs';

const [kind, portText, clientsText] = process.argv.slice(2);
const port = Number(portText);
const N = Number(clientsText);
/** Connections being set up at once. */
const WAVE = 100;

let deliveries = 0;
let errors = 0;
let firstError = '';
/** Per client: messages received; clients at or past the target the runner waits for. */
const counts = new Int32Array(N);
let target = Infinity;
let atTarget = 0;
let waiting = null;

function error(text) {
  errors++;
  if (firstError === '') firstError = text;
}

function received(i, data) {
  const seq = sequenceOf(data);
  const expected = counts[i] + 1;
  // Sequence numbers start at 1 on a fresh server; each client must see them all, in order.
  if (seq !== expected) error(`client ${i}: got ${String(data).slice(0, 20)} expecting seq ${expected}`);
  counts[i] = expected;
  deliveries++;
  if (expected === target) {
    atTarget++;
    if (atTarget === N && waiting !== null) {
      const done = waiting;
      waiting = null;
      done();
    }
  }
}

async function connectAll(open) {
  const closers = [];
  for (let start = 0; start < N; start += WAVE) {
    const wave = [];
    for (let i = start; i < Math.min(N, start + WAVE); i++) wave.push(open(i).then((close) => (closers[i] = close)));
    await Promise.all(wave);
  }
  return closers;
}

async function fullduplexClient(i) {
  const { Client } = await import('../../dist/client/index.js');
  const { WebSocket } = await import('../../dist/index.js');
  const client = new Client(`ws://127.0.0.1:${port}/channels`, { WebSocket, reconnect: false, timeout: 60_000, commandTimeout: 60_000 });
  const sub = client.subscribe(ROOM);
  sub.on('publication', (p) => received(i, p.data));
  client.on('disconnected', ({ code, reason }) => {
    if (!stopping) error(`client ${i} disconnected: ${code} ${reason}`);
  });
  await new Promise((resolve, reject) => {
    sub.on('subscribed', resolve);
    sub.on('error', (e) => reject(new Error(`subscribe: ${e.code} ${e.message}`)));
    client.connect();
  });
  return () => client.disconnect();
}

async function socketioClient(i) {
  const { io } = await import('socket.io-client');
  // forceNew: without it every io() to the same URL shares one connection (multiplexing).
  const socket = io(`http://127.0.0.1:${port}`, { forceNew: true, reconnection: false });
  socket.on('m', (data) => received(i, data));
  socket.on('disconnect', (reason) => {
    if (!stopping) error(`client ${i} disconnected: ${reason}`);
  });
  await new Promise((resolve, reject) => {
    socket.on('connect_error', reject);
    socket.on('connect', resolve);
  });
  await socket.emitWithAck('join', ROOM);
  // The default client starts on HTTP long-polling and upgrades: measure it on its WebSocket.
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') await new Promise((resolve) => engine.once('upgrade', resolve));
  return () => socket.disconnect();
}

let stopping = false;
const started = Date.now();
const open = kind === 'fullduplex' ? fullduplexClient : kind === 'socketio' ? socketioClient : null;
if (open === null) {
  process.stderr.write(`FAIL unknown kind ${kind}\n`);
  process.exit(2);
}
let closers;
try {
  closers = await connectAll(open);
} catch (err) {
  process.stderr.write(`FAIL connecting: ${err?.stack ?? err}\n`);
  process.exit(1);
}
process.stdout.write(`READY ${Date.now() - started}\n`);

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(' ');
  if (cmd === 'wait') {
    const k = Number(arg);
    target = k;
    atTarget = 0;
    for (let i = 0; i < N; i++) if (counts[i] >= k) atTarget++;
    const reply = () => process.stdout.write(`REACHED ${k}\n`);
    if (atTarget === N) reply();
    else waiting = reply;
  } else if (cmd === 'check') {
    process.stdout.write(`CHECK ${JSON.stringify({ deliveries, errors, firstError })}\n`);
  }
});
rl.on('close', () => {
  stopping = true;
  for (const close of closers) close();
  setTimeout(() => process.exit(0), 200).unref();
});
