// The handshake floor on Node: a bare net.Server that answers the upgrade
// request with a 101 (one regex for the key, no checks) and a close frame
// with the close echo, then ends the socket. No library, no HTTP parser, no
// WebSocket framing beyond that one frame: it shows how much of a
// handshake's cost is Node's sockets and the kernel, which no library
// running on Node can go below. Used by the handshakes scenario only.
import net from 'node:net';
import { createHash } from 'node:crypto';
import { port, host, ready } from './common.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /sec-websocket-key: *([^\r]+)/i;
const CLOSE_ECHO = Buffer.from([0x88, 2, 0x03, 0xe8]);
const ignore = () => {};

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', ignore);
  let upgraded = false;
  socket.on('data', (chunk) => {
    if (!upgraded) {
      const m = KEY.exec(chunk.toString('latin1'));
      if (m === null) return void socket.destroy();
      const accept = createHash('sha1').update(m[1] + GUID).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      upgraded = true;
      return;
    }
    // The loadgen's only frame after the handshake is its close frame.
    if ((chunk[0] & 0x0f) === 0x8) socket.end(CLOSE_ECHO);
  });
});
server.listen(port, host, 511, () => ready(server.address().port, () => new Promise((resolve) => server.close(() => resolve()))));
