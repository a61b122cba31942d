// `ws` (with bufferutil, which ws loads by itself when installed), no
// compression. Echo: send back what arrived; broadcast: a loop over
// wss.clients calling send, the way ws's own docs do it.
// BENCH_DEFLATE=1: perMessageDeflate with threshold 0 and the same zlib
// settings as fullduplex's defaults (level 3, memLevel 7: the tuning ws's own
// README suggests), ws's defaults otherwise (context takeover both ways,
// 15-bit windows, at most 10 concurrent zlib jobs).
import { WebSocketServer, WebSocket } from 'ws';
import { port, host, mode, deflate, MAX_PAYLOAD, onTrigger, readyWhenListening } from './common.mjs';

const perMessageDeflate = deflate ? { threshold: 0, zlibDeflateOptions: { level: 3, memLevel: 7 } } : false;
const wss = new WebSocketServer({ host, port, perMessageDeflate, maxPayload: MAX_PAYLOAD });

if (mode === 'broadcast') {
  const publish = (payload) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(payload, { binary: true });
    }
  };
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) onTrigger(data.toString(), publish);
    });
  });
} else {
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      ws.send(data, { binary: isBinary });
    });
  });
}

readyWhenListening(wss);
