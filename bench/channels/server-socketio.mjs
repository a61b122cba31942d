// Socket.IO with its defaults (socket.io 4, default in-memory adapter, no
// perMessageDeflate): a client joins the room with a `join` event (acked);
// `pub` broadcasts with io.to(room).emit.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { Server } from 'socket.io';
import { fail, host, port, ready } from '../servers/common.mjs';
import { ROOM, message, parsePub } from './payload.mjs';

let seq = 0;
const http = createServer();
const io = new Server(http);
io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    if (room !== ROOM) return;
    socket.join(room);
    if (typeof ack === 'function') ack('ok');
  });
});
http.on('error', fail);
http.listen(port, host, () => {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const cmd = parsePub(line);
    if (cmd === null) return;
    for (let i = 0; i < cmd.count; i++) io.to(ROOM).emit('m', message(++seq, cmd.size));
  });
  ready(http.address().port, () => new Promise((resolve) => io.close(() => resolve())));
});
