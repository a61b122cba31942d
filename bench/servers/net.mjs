// The Node floor: a plain TCP echo with no WebSocket work at all (no
// handshake, no framing). The load generator talks to it in --raw mode,
// sending frames a WebSocket server would send, which come back unchanged.
import net from 'node:net';
import { port, host, ready, fail } from './common.mjs';

const sockets = new Set();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  sockets.add(socket);
  socket.on('data', (chunk) => {
    if (!socket.write(chunk)) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => sockets.delete(socket));
});
server.on('error', fail);
server.listen(port, host, 511, () => {
  ready(server.address().port, () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
});
