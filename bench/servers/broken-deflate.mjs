// Odd-but-legal and broken permessage-deflate echoes, for bench/selfcheck.mjs:
// the compressed echo (loadgen --compress) must pass the legal ones and fail
// every broken one, so a server that compresses wrongly cannot look fast.
// Built on `ws` (perMessageDeflate, threshold 0). BROKEN=<how> (env):
//   fragmented  legal: each echo as 3 compressed fragments (RSV1 on the first only)
//   mixed       legal: every third echo sent uncompressed (RSV1 clear)
//   corrupt     flips one byte of message #100 before compressing it
//   garbage     message #100 replaced by a frame with RSV1 and bytes that do not inflate
//   drop        never echoes message #100
//   none        does not accept permessage-deflate (the loadgen must refuse to run)
// BROKEN_AT=<n> (env) moves the broken message from #100 to #n (1 for the
// idle run, where each connection sends one message).
// Speed is irrelevant here.
import { WebSocketServer } from 'ws';
import { port, host, MAX_PAYLOAD, readyWhenListening } from './common.mjs';

const how = process.env.BROKEN ?? 'fragmented';
const at = Number(process.env.BROKEN_AT ?? 100);

const wss = new WebSocketServer({ host, port, maxPayload: MAX_PAYLOAD, perMessageDeflate: how === 'none' ? false : { threshold: 0 } });
wss.on('connection', (ws) => {
  let count = 0;
  ws.on('message', (data, isBinary) => {
    count++;
    if (how === 'fragmented') {
      const a = Math.floor(data.length / 3);
      const b = Math.floor((2 * data.length) / 3);
      ws.send(data.subarray(0, a), { binary: isBinary, fin: false });
      ws.send(data.subarray(a, b), { binary: isBinary, fin: false });
      ws.send(data.subarray(b), { binary: isBinary, fin: true });
      return;
    }
    if (how === 'mixed') {
      ws.send(data, { binary: isBinary, compress: count % 3 !== 0 });
      return;
    }
    if (count === at) {
      if (how === 'drop') return;
      if (how === 'corrupt') {
        const copy = Buffer.from(data);
        copy[copy.length >> 1] ^= 0x20;
        data = copy;
      }
      if (how === 'garbage') {
        // Written behind ws's back, possibly ahead of earlier echoes still
        // being compressed: either way the stream is wrong from here on.
        const junk = Buffer.alloc(100, 0xff);
        ws._socket.write(Buffer.concat([Buffer.from([0x80 | 0x40 | (isBinary ? 2 : 1), junk.length]), junk]));
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
});
readyWhenListening(wss);
