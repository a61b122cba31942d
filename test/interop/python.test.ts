/**
 * Interop with Python `websockets` (Debian's python3-websockets), an
 * independent RFC 6455 implementation: its client against our server, and
 * our client against its server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { PY_DIR, PYTHON, requirePythonWebsockets, runPython } from '../helpers/python.js';



describe('interop: Python websockets', () => {
  before(async () => {
    await requirePythonWebsockets();
  });

  it('its client against our server: every size, both types, fragments, ping, close 1000', async () => {
    const closes: Array<[number, string]> = [];
    const wss = new WebSocketServer({
      protocols: ['chat'],
      handler: {
        message(ws, data, isBinary) {
          ws.send(data, { binary: isBinary });
        },
        close(_ws, code, reason) {
          closes.push([code, reason]);
        },
      },
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const result = await runPython([PY_DIR + 'client.py', `ws://127.0.0.1:${port}/echo`], 60_000);
      assert.equal(result.code, 0, `client failed:\n${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /^subprotocol chat$/m);
      assert.doesNotMatch(result.stdout, /MISMATCH/);
      // Python reports the code and reason of the close frame our server answered with.
      assert.match(result.stdout, /^closed 1000 /m);
      for (let i = 0; i < 50 && closes.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(closes, [[1000, 'done']]);
    } finally {
      await wss.close();
    }
  });

  describe('our client against its server', () => {
    let server: ChildProcess;
    let port = 0;

    before(async () => {
      server = spawn(PYTHON, [PY_DIR + 'echo_server.py'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const stdout = server.stdout!;
      let buffered = '';
      await Promise.race([
        new Promise<void>((resolve) => {
          stdout.on('data', (d: Buffer) => {
            buffered += d.toString();
            const m = /PORT (\d+)/.exec(buffered);
            if (m) {
              port = Number(m[1]);
              resolve();
            }
          });
        }),
        once(server, 'exit').then(() => {
          throw new Error('python echo server exited');
        }),
        new Promise((_, reject) => setTimeout(() => reject(new Error('python echo server did not start')), 20_000).unref()),
      ]);
    });

    after(async () => {
      if (server.exitCode === null) {
        server.stdin!.end();
        const exited = once(server, 'exit');
        const t = setTimeout(() => server.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
    });

    function open(): Promise<WebSocket> {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['chat']);
      ws.binaryType = 'nodebuffer';
      return new Promise((resolve, reject) => {
        ws.onopen = () => resolve(ws);
        ws.onerror = () => reject(new Error('connection to python server failed'));
      });
    }

    function next(ws: WebSocket): Promise<unknown> {
      return new Promise((resolve, reject) => {
        ws.onmessage = (e: { data: unknown }) => resolve(e.data);
        ws.onclose = () => reject(new Error('closed before the echo'));
      });
    }

    it('negotiates the subprotocol and echoes text and binary of every size', async () => {
      const ws = await open();
      assert.equal(ws.protocol, 'chat');
      for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
        const bin = Buffer.alloc(size, 0xa5);
        const gotBin = next(ws);
        ws.send(bin);
        assert.deepEqual(await gotBin, bin);
        const text = 'ü'.repeat(size >> 1);
        const gotText = next(ws);
        ws.send(text);
        assert.equal(await gotText, text);
      }
      const closed = new Promise<{ code: number; reason: string; wasClean: boolean }>((resolve) => {
        ws.onclose = (e: { code: number; reason: string; wasClean: boolean }) => resolve(e);
      });
      ws.close(4000, 'bye');
      const e = await closed;
      assert.equal(e.wasClean, true);
      assert.equal(e.code, 4000);
    });
  });
});
