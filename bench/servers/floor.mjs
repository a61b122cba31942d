// The idle-memory floor for any WebSocket server built on Node's sockets: an
// HTTP server whose upgrade handler writes the 101 and keeps nothing but the
// socket itself (one shared no-op 'data' and 'error' listener, no object,
// closure or buffer per connection). No WebSocket framing at all: it only
// shows how much of a server's memory per connection is Node's own.
import http from 'node:http';
import { createHash } from 'node:crypto';
import { port, host, ready, fail } from './common.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const ignore = () => {};
const server = http.createServer((req, res) => {
  res.writeHead(426).end();
});
server.on('upgrade', (req, socket) => {
  socket.on('error', ignore);
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string') return void socket.destroy();
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.on('data', ignore);
});
server.on('error', fail);
server.listen(port, host, 511, () => {
  ready(server.address().port, () => new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
});
