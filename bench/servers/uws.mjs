// uWebSockets.js (native, C++), the reference ceiling. Optional: loaded from
// the npm package @trufflesuite/uws-js-unofficial, which ships prebuilt
// binaries inside the package. Exit code 3 with a note means "not available
// here"; the runner skips the row instead of failing.
import { createRequire } from 'node:module';
import { port, host, mode, MAX_PAYLOAD, onTrigger, ready, fail } from './common.mjs';

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
  compression: uWS.DISABLED,
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
  behavior.message = (ws, message, isBinary) => {
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
