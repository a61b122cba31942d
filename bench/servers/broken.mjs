// A deliberately odd or broken echo server, for bench/selfcheck.mjs: it shows
// that the load generator accepts every legal way of framing an echo and
// refuses every wrong one, so a broken server can never look fast.
// BROKEN=<how> (env):
//   fragmented  legal: each echo as 3 fragments, written in random small
//               pieces, with a ping now and then (the loadgen must pong)
//   corrupt     flips one payload byte of message #100
//   drop        never echoes message #100
//   reorder     swaps messages #100 and #101
//   accept      a wrong Sec-WebSocket-Accept
//   close       closes the connection after 100 messages
//   unmasked-ok the same as fragmented but coalesces everything (many frames per write)
// Speed is irrelevant here: buffers are concatenated freely.
import net from 'node:net';
import { acceptFor } from '../lib/payload.mjs';
import { port, host, ready, fail } from './common.mjs';

const how = process.env.BROKEN ?? 'fragmented';

function header(fin, opcode, len) {
  if (len < 126) return Buffer.from([(fin ? 0x80 : 0) | opcode, len]);
  if (len < 65536) {
    const h = Buffer.from([(fin ? 0x80 : 0) | opcode, 126, 0, 0]);
    h.writeUInt16BE(len, 2);
    return h;
  }
  const h = Buffer.alloc(10);
  h[0] = (fin ? 0x80 : 0) | opcode;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(len), 2);
  return h;
}

function encodeEcho(payload, opcode) {
  if (how === 'fragmented' || how === 'unmasked-ok') {
    const a = Math.floor(payload.length / 3);
    const b = Math.floor((2 * payload.length) / 3);
    return Buffer.concat([
      header(false, opcode, a), payload.subarray(0, a),
      header(false, 0, b - a), payload.subarray(a, b),
      header(true, 0, payload.length - b), payload.subarray(b),
    ]);
  }
  return Buffer.concat([header(true, opcode, payload.length), payload]);
}

/** Writes in random pieces of 1..40 bytes, some after a tick, keeping order across calls. */
function pieceWriter(socket) {
  let queue = Buffer.alloc(0);
  let scheduled = false;
  const step = () => {
    scheduled = false;
    while (queue.length > 0) {
      const n = Math.min(queue.length, 1 + Math.floor(Math.random() * 40));
      socket.write(queue.subarray(0, n));
      queue = queue.subarray(n);
      if (Math.random() < 0.2) {
        scheduled = true;
        setImmediate(step);
        return;
      }
    }
  };
  return (buf) => {
    queue = Buffer.concat([queue, buf]);
    if (!scheduled) step();
  };
}

const server = net.createServer((socket) => {
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let count = 0;
  let held = null;
  const out = [];
  const writePieces = pieceWriter(socket);
  socket.on('error', () => {});
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const key = /sec-websocket-key:\s*(\S+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? '';
      const accept = how === 'accept' ? acceptFor(key + 'x') : acceptFor(key);
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      upgraded = true;
      buf = buf.subarray(end + 4);
    }
    for (;;) {
      if (buf.length < 2) break;
      const opcode = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let p = 2;
      if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); p = 4; }
      else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); p = 10; }
      if (buf.length < p + 4 + len) break;
      const mask = buf.subarray(p, p + 4);
      const payload = Buffer.from(buf.subarray(p + 4, p + 4 + len));
      for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(p + 4 + len);
      if (opcode === 0x8) { socket.end(Buffer.from([0x88, 2, 0x03, 0xe8])); return; }
      if (opcode === 0xa) continue; // pong
      count++;
      if (how === 'corrupt' && count === 100) payload[payload.length >> 1] ^= 0x20;
      if (how === 'drop' && count === 100) continue;
      if (how === 'close' && count === 100) { socket.destroy(); return; }
      let frame = encodeEcho(payload, opcode);
      if (how === 'reorder' && count === 100) { held = frame; continue; }
      if (held) { frame = Buffer.concat([frame, held]); held = null; }
      if (how === 'fragmented' && count % 50 === 0) frame = Buffer.concat([Buffer.from([0x89, 3, 1, 2, 3]), frame]);
      out.push(frame);
    }
    if (out.length) {
      const all = Buffer.concat(out.splice(0));
      if (how === 'fragmented') writePieces(all);
      else socket.write(all);
    }
  });
});
server.on('error', fail);
server.listen(port, host, () => ready(server.address().port, () => new Promise((r) => server.close(() => r()))));
