// fullduplex, from the built package (npm run build first).
// BENCH_DEFLATE=1: perMessageDeflate: { threshold: 0 } (the library's
// defaults otherwise); echo sends back the inflated message, which the
// library compresses again.
import { port, host, mode, deflate, MAX_PAYLOAD, onTrigger, ready, fail } from './common.mjs';

let WebSocketServer;
try {
  ({ WebSocketServer } = await import('../../dist/index.js'));
} catch (err) {
  fail(`cannot load ../../dist/index.js (run npm run build): ${err?.message ?? err}`);
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
