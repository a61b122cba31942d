// uWebSockets.js (native, C++), the reference ceiling. Optional: loaded from
// the npm package @trufflesuite/uws-js-unofficial, which ships prebuilt
// binaries inside the package. Exit code 3 with a note means "not available
// here"; the runner skips the row instead of failing.
import { createRequire } from 'node:module';
import { port, host, mode, deflate, MAX_PAYLOAD, onTrigger, ready, fail } from './common.mjs';

const require = createRequire(import.meta.url);
let uWS;
try {
  // The package falls back to a slow pure-JS shim (with a console.warn) when
  // its binary does not load; that would not be uWS, so refuse it.
  const warn = console.warn;
  let warned = false;
  console.warn = () => { warned = true; };
  uWS = require('@trufflesuite/uws-js-unofficial');
  console.warn = warn;
  if (warned || typeof uWS.us_socket_local_port !== 'function') throw new Error('native binary did not load for this Node');
} catch (err) {
  process.stderr.write(`uws: not available (npm install --no-save @trufflesuite/uws-js-unofficial): ${err.message.split('\n')[0]}\n`);
  process.exit(3);
}

const app = uWS.App();
const behavior = {
  // BENCH_DEFLATE=1: DEDICATED_COMPRESSOR is uWS's only compressor with a
  // 15-bit window and context takeover (windowBits 15, memLevel 8, zlib
  // Z_DEFAULT_COMPRESSION = level 6). The _3KB.._256KB names are the zlib
  // *memory* of the compressor, not its window: DEDICATED_COMPRESSOR_32KB is
  // windowBits 12, memLevel 5 (a 4 KiB window, announced as
  // server_max_window_bits=12), and SHARED_COMPRESSOR has no context takeover
  // (server_no_context_takeover). DEDICATED_DECOMPRESSOR (32 KiB window) lets
  // the client keep its context; without it uWS answers
  // client_no_context_takeover.
  compression: deflate ? uWS.DEDICATED_COMPRESSOR | uWS.DEDICATED_DECOMPRESSOR : uWS.DISABLED,
  maxPayloadLength: MAX_PAYLOAD,
  idleTimeout: 0, // no timeouts and no pings during benchmarks
  sendPingsAutomatically: false,
  // uWS drops sends past maxBackpressure; big echoes must never be dropped.
  maxBackpressure: 1024 * 1024 * 1024,
};
if (mode === 'broadcast') {
  behavior.open = (ws) => ws.subscribe('bench');
  behavior.message = (ws, message, isBinary) => {
    if (!isBinary) onTrigger(Buffer.from(message).toString(), (payload) => app.publish('bench', payload, true));
  };
} else {
  // send's third argument (compress) defaults to false in uWS: without it,
  // nothing would be compressed even on a connection that negotiated it.
  behavior.message = deflate
    ? (ws, message, isBinary) => {
        ws.send(message, isBinary, true);
      }
    : (ws, message, isBinary) => {
        ws.send(message, isBinary);
      };
}
app.ws('/*', behavior);
app.listen(host, port, (token) => {
  if (!token) fail(`uws: cannot listen on ${host}:${port}`);
  ready(uWS.us_socket_local_port(token), async () => {
    uWS.us_listen_socket_close(token);
  });
});
