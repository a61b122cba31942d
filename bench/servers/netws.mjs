// The floor on Node: a bare net.Server with no library. It answers the
// upgrade request with a 101 (one regex for the key, no checks) and a close
// frame with the close echo, then ends the socket. No HTTP parser, no
// WebSocket machinery beyond what the load generator sends: it shows how much
// of a cost is Node's sockets and the kernel, which no library running on
// Node's public API can go below.
//
// Echo mode (the handshakes scenario): the only frame after the handshake is
// the load generator's close frame.
// Broadcast mode (BENCH_MODE=broadcast, the broadcast scenarios): frames are
// read (masked, unfragmented, each within one read, as the load generator
// sends its short triggers); a text `publish:<n>:<size>` writes one prebuilt
// binary frame n times to every open socket, one socket.write each, as any
// Node server must at least do.
import net from 'node:net';
import { createHash } from 'node:crypto';
import { port, host, mode, ready, onTrigger } from './common.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /sec-websocket-key: *([^\r]+)/i;
const CLOSE_ECHO = Buffer.from([0x88, 2, 0x03, 0xe8]);
const ignore = () => {};
const open = new Set();

/** A server frame (unmasked, FIN, binary) for a payload under 64 KiB. */
function binaryFrame(payload) {
  const n = payload.length;
  const header = n < 126 ? Buffer.from([0x82, n]) : Buffer.from([0x82, 126, n >> 8, n & 0xff]);
  return Buffer.concat([header, payload]);
}

const frames = new Map();
function publish(payload) {
  let frame = frames.get(payload);
  if (frame === undefined) frames.set(payload, (frame = binaryFrame(payload)));
  for (const socket of open) socket.write(frame);
}

/** Reads the client frames in `chunk`: a text frame is a trigger, a close frame ends the connection. */
function clientFrames(socket, chunk) {
  let i = 0;
  while (i + 6 <= chunk.length) {
    const opcode = chunk[i] & 0x0f;
    let len = chunk[i + 1] & 0x7f;
    let at = i + 2;
    if (len === 126) {
      len = chunk.readUInt16BE(at);
      at += 2;
    } else if (len === 127) return void socket.destroy();
    const mask = chunk.subarray(at, at + 4);
    at += 4;
    if (at + len > chunk.length) return void socket.destroy();
    if (opcode === 0x8) return void socket.end(CLOSE_ECHO);
    if (opcode === 0x1 && mode === 'broadcast') {
      const text = Buffer.allocUnsafe(len);
      for (let k = 0; k < len; k++) text[k] = chunk[at + k] ^ mask[k & 3];
      onTrigger(text.toString('latin1'), publish);
    }
    i = at + len;
  }
}

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', ignore);
  socket.on('close', () => open.delete(socket));
  let upgraded = false;
  socket.on('data', (chunk) => {
    if (upgraded) return clientFrames(socket, chunk);
    const m = KEY.exec(chunk.toString('latin1'));
    if (m === null) return void socket.destroy();
    const accept = createHash('sha1').update(m[1] + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    upgraded = true;
    open.add(socket);
  });
});
server.listen(port, host, 511, () => ready(server.address().port, () => new Promise((resolve) => server.close(() => resolve()))));
