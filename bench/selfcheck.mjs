#!/usr/bin/env node
// Checks the checker: runs the load generator against servers/broken.mjs in
// each of its modes and expects it to pass the legal ones (fragmented echoes
// in random pieces, pings, many frames per write) and to fail every broken
// one with the right message; then the compressed echo (--compress) against
// servers/broken-deflate.mjs the same way, and the compressed idle run
// (idle --compress: one message each way). Not a benchmark; takes ~40 s.
//   node bench/selfcheck.mjs
import path from 'node:path';
import { BENCH_DIR, spawnNode, lastLines } from './lib/procs.mjs';

const cases = [
  { how: 'fragmented', size: 16, expect: 'pass' },
  { how: 'fragmented', size: 70000, expect: 'pass' },
  { how: 'fragmented', size: 200, conns: 1, inflight: 1, expect: 'pass' },
  { how: 'unmasked-ok', size: 300, expect: 'pass' },
  { how: 'corrupt', size: 16, expect: /differs from what was sent/ },
  { how: 'corrupt', size: 70000, expect: /differs from what was sent/ },
  // a dropped echo shows as the next one not matching (payloads rotate)
  { how: 'drop', size: 16, expect: /differs from what was sent|no progress/ },
  { how: 'drop', size: 16, conns: 1, inflight: 1, expect: /no progress|no message was echoed/ },
  { how: 'reorder', size: 16, expect: /differs from what was sent/ },
  { how: 'accept', size: 16, expect: /Sec-WebSocket-Accept/ },
  { how: 'close', size: 16, expect: /closed the connection/ },
  // permessage-deflate (servers/broken-deflate.mjs, loadgen --compress)
  { deflate: true, how: 'fragmented', size: 16384, expect: 'pass' },
  { deflate: true, how: 'fragmented', size: 3000, conns: 1, inflight: 1, expect: 'pass' },
  { deflate: true, how: 'mixed', size: 16384, expect: 'pass' },
  { deflate: true, how: 'corrupt', size: 16384, expect: /differs from what was sent: .* \(after inflating\)/ },
  { deflate: true, how: 'garbage', size: 16384, expect: /does not inflate|differs from what was sent/ },
  { deflate: true, how: 'drop', size: 16384, expect: /differs from what was sent|no progress/ },
  { deflate: true, how: 'none', size: 16384, expect: /server did not accept permessage-deflate/ },
  // idle --compress: one 4 KiB compressed message each way, then idle
  { idle: true, deflate: true, how: 'fragmented', expect: 'pass' },
  { idle: true, deflate: true, how: 'corrupt', expect: /differs from what was sent: .* \(after inflating\)/ },
  { idle: true, deflate: true, how: 'drop', expect: /no progress/ },
  { idle: true, deflate: true, how: 'none', expect: /server did not accept permessage-deflate/ },
];

let passed = 0;
let failed = 0;
for (const c of cases) {
  // idle: the broken server misbehaves on each connection's first (only) message
  const env = { PORT: '0', BROKEN: c.how, ...(c.idle ? { BROKEN_AT: '1' } : {}) };
  const srv = spawnNode(path.join(BENCH_DIR, c.deflate ? 'servers/broken-deflate.mjs' : 'servers/broken.mjs'), [], { pin: false, env });
  const port = Number((await srv.waitLine(/^READY \d+$/, 10000, 'READY')).split(' ')[1]);
  const mode = c.idle ? ['--mode', 'idle', '--stages', 5] : ['--conns', c.conns ?? 3, '--inflight', c.inflight ?? 8, '--size', c.size, '--warmup', 0.2, '--duration', 1];
  const lg = spawnNode(path.join(BENCH_DIR, 'loadgen.mjs'), [...mode, '--port', port, '--stall', 2, ...(c.deflate ? ['--compress'] : [])].map(String), { pin: false });
  if (c.idle) {
    // a stage line means every connection got its echo back: hold no longer
    try {
      await lg.waitLine(/^\{"event":"stage"/, 10000, 'idle stage');
      lg.send('close');
    } catch {
      // it failed before the stage, as a broken server should make it
    }
  }
  const { code } = await lg.exited;
  await srv.stop();
  const err = lg.stderr();
  const ok = c.expect === 'pass' ? code === 0 : code === 1 && c.expect.test(err);
  if (ok) passed++;
  else failed++;
  const shape = c.idle ? '  4096 B idle 5' : `${String(c.size).padStart(6)} B ${c.conns ?? 3}×${c.inflight ?? 8}`;
  console.log(`${ok ? 'ok  ' : 'BAD '} ${(c.deflate ? `deflate ${c.how}` : c.how).padEnd(18)} ${shape}: exit ${code}${code ? `: ${lastLines(err, 1)}` : ''}`);
}
console.log(`selfcheck: ${passed} as expected, ${failed} not`);
process.exitCode = failed ? 1 : 0;
