/**
 * The command line piped into a reader that goes away, as in
 * `fullduplex connect URL | head -1` or `fullduplex serve | head -2`. The
 * README's CLI section: connect "prints what arrives after `< `" (its --help:
 * "received messages are printed after "< "", i.e. stdout is the message
 * stream, made to be piped), and exits 0 after a clean close or 1 "with the
 * reason"; serve stops on SIGTERM/SIGINT (test/node/cli.test.ts,
 * test/scale/cli-redis.test.ts: exit 0, clients get 1001). A closed stdout is
 * the reader's choice, not a crash: no stack trace, no hang, and serve still
 * shuts down gracefully.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import WebSocketClient from 'ws';
import { WebSocketServer } from '../../src/index.js';
import { cli, exitWithin } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/processes.js';

const EXIT_MS = 30_000;
const STACK = /^\s+at .+[(:]\d+|Unhandled 'error' event|node:events/m;

describe('fullduplex connect | a reader that exits', () => {
  // BUG: process.stdout's EPIPE 'error' is unhandled: connect dies with "Unhandled 'error' event" and a stack trace.
  it('stdout closed after the first message while messages keep coming: ends without a stack trace', async (t) => {
    const timers = new Set<NodeJS.Timeout>();
    const wss = new WebSocketServer({
      keepalive: false,
      handler: {
        open(ws) {
          let i = 0;
          const timer = setInterval(() => ws.send(`message ${i++}`), 5);
          timers.add(timer);
        },
        close() {
          for (const timer of timers) clearInterval(timer);
        },
      },
    });
    const { port } = await wss.listen(0);
    t.after(async () => {
      for (const timer of timers) clearInterval(timer);
      await wss.close(0);
    });
    const run = cli(t, ['connect', `ws://127.0.0.1:${port}/`]);
    await waitFor('the first message', () => run.stdout().length > 0, EXIT_MS);
    run.child.stdout?.destroy();
    await exitWithin(run, EXIT_MS, 'connect with its stdout closed');
    assert.doesNotMatch(run.stderr(), STACK);
  });
});

describe('fullduplex serve | a reader that exits', () => {
  // BUG: the "shutting down" line hits EPIPE; the unhandled 'error' kills serve (exit 1, stack trace) mid-shutdown.
  it('stdout closed, then SIGTERM with a client connected: the client gets 1001, exit 0, no stack trace', async (t) => {
    const run = cli(t, ['serve', '--port', '0', '--host', '127.0.0.1']);
    await waitFor('the URL', () => /ws:\/\/127\.0\.0\.1:\d+\/echo/.test(run.stdout()), EXIT_MS);
    const url = /ws:\/\/127\.0\.0\.1:\d+\/echo/.exec(run.stdout())?.[0] ?? '';
    const ws = new WebSocketClient(url);
    ws.on('error', () => {});
    t.after(() => ws.terminate());
    const closed = once(ws, 'close').then(([code]) => code as number);
    await once(ws, 'open');
    run.child.stdout?.destroy();
    run.child.kill('SIGTERM');
    const code = await exitWithin(run, EXIT_MS, 'serve with its stdout closed, after SIGTERM');
    assert.doesNotMatch(run.stderr(), STACK);
    assert.equal(code, 0, run.stderr());
    assert.equal(await closed, 1001);
  });
});
