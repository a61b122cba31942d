// fullduplex, from the built package (npm run build first).
// BENCH_DEFLATE=1: perMessageDeflate: { threshold: 0 } (the library's
// defaults otherwise); echo sends back the inflated message, which the
// library compresses again.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { port, host, mode, deflate, MAX_PAYLOAD, onTrigger, ready, fail } from './common.mjs';

// FULLDUPLEX_DIST=<dir>: another build (run.mjs --baseline), for A/B runs of two versions.
const dist = process.env.FULLDUPLEX_DIST ? pathToFileURL(path.join(path.resolve(process.env.FULLDUPLEX_DIST), 'index.js')).href : '../../dist/index.js';
let WebSocketServer;
try {
  ({ WebSocketServer } = await import(dist));
} catch (err) {
  fail(`cannot load ${dist} (run npm run build): ${err?.message ?? err}`);
}
if (typeof WebSocketServer !== 'function') fail('dist/index.js does not export WebSocketServer');

let server;
const handler =
  mode === 'broadcast'
    ? {
        open(ws) {
          ws.subscribe('bench');
        },
        message(ws, data, isBinary) {
          if (!isBinary) onTrigger(data.toString(), (payload) => server.publish('bench', payload, { binary: true }));
        },
      }
    : {
        message(ws, data, isBinary) {
          ws.send(data, { binary: isBinary });
        },
      };

try {
  server = new WebSocketServer({
    maxPayload: MAX_PAYLOAD,
    keepalive: false,
    handler,
    ...(deflate ? { perMessageDeflate: { threshold: 0 } } : {}),
  });
  const { port: actual } = await server.listen(port, host);
  ready(actual, () => server.close());
} catch (err) {
  fail(err);
}
