/**
 * The `fullduplex` command line, run as users run it: `node dist/cli/main.js`
 * (built by scripts/test.sh), against loopback servers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocketClient from 'ws';
import { WebSocketServer } from '../../src/index.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function cli(args: string[], timeoutMs = 15_000): Run {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return code as number | null;
  });
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function echoServer(extra: ConstructorParameters<typeof WebSocketServer>[0] = {}): WebSocketServer {
  return new WebSocketServer({ keepalive: false, ...extra });
}

describe('fullduplex serve', () => {
  it('prints its URL, echoes text and binary on /echo, picks the first offered subprotocol, stops on SIGINT', async () => {
    const run = cli(['serve', '--port', '0']);
    try {
      await waitFor(() => /ws:\/\/127\.0\.0\.1:\d+\/echo/.test(run.stdout()), 'the URL');
      const url = /ws:\/\/127\.0\.0\.1:\d+\/echo/.exec(run.stdout())![0];
      const ws = new WebSocketClient(url, ['superchat', 'chat']);
      await once(ws, 'open');
      assert.equal(ws.protocol, 'superchat');
      ws.send('hello');
      const [text, textIsBinary] = (await once(ws, 'message')) as [Buffer, boolean];
      assert.equal(text.toString(), 'hello');
      assert.equal(textIsBinary, false);
      ws.send(Buffer.from([0, 1, 2, 255]));
      const [bin, binIsBinary] = (await once(ws, 'message')) as [Buffer, boolean];
      assert.deepEqual([...bin], [0, 1, 2, 255]);
      assert.equal(binIsBinary, true);
      ws.close(1000);
      await once(ws, 'close');
    } finally {
      run.child.kill('SIGINT');
    }
    assert.equal(await run.exit, 0);
  });

  it('accepts permessage-deflate and echoes compressed messages intact; --no-deflate declines it', async () => {
    for (const [flags, expected] of [[[], 'permessage-deflate'], [['--no-deflate'], '']] as const) {
      const run = cli(['serve', '--port', '0', ...flags]);
      try {
        await waitFor(() => /ws:\/\/127\.0\.0\.1:\d+\/echo/.test(run.stdout()), 'the URL');
        const url = /ws:\/\/127\.0\.0\.1:\d+\/echo/.exec(run.stdout())![0];
        const ws = new WebSocketClient(url, { perMessageDeflate: { threshold: 0 } });
        await once(ws, 'open');
        assert.equal(ws.extensions, expected);
        const big = JSON.stringify(Array.from({ length: 500 }, (_, i) => ({ i, name: `n${i}` })));
        for (const m of ['hi', big, big]) {
          ws.send(m);
          const [data] = (await once(ws, 'message')) as [Buffer];
          assert.equal(data.toString(), m);
        }
        ws.close(1000);
        await once(ws, 'close');
      } finally {
        run.child.kill('SIGINT');
      }
      assert.equal(await run.exit, 0);
    }
  });

  it('rejects a bad port with exit status 2', async () => {
    const run = cli(['serve', '--port', 'nope']);
    assert.equal(await run.exit, 2);
    assert.match(run.stderr(), /invalid port/);
  });
});

describe('fullduplex connect', () => {
  it('sends typed lines as text, prints received messages, closes with 1000 at end of input', async () => {
    const got: string[] = [];
    let closeCode = 0;
    let headerSeen: string | undefined;
    const wss = echoServer({
      handler: {
        upgrade(req) {
          headerSeen = req.headers['x-token'] as string | undefined;
        },
        message(ws, data) {
          got.push(data.toString());
          ws.send(`echo: ${data.toString()}`);
        },
        close(_ws, code) {
          closeCode = code;
        },
      },
    });
    const { port } = await wss.listen(0);
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`, '--header', 'X-Token: abc']);
      run.child.stdin!.end('first line\nsecond 🌍\n');
      assert.equal(await run.exit, 0, run.stderr());
      assert.deepEqual(got, ['first line', 'second 🌍']);
      assert.match(run.stdout(), /^< echo: first line$/m);
      assert.match(run.stdout(), /^< echo: second 🌍$/m);
      assert.equal(headerSeen, 'abc');
      await waitFor(() => closeCode !== 0, 'the server-side close');
      assert.equal(closeCode, 1000);
    } finally {
      await wss.close();
    }
  });

  it('offers permessage-deflate and reports it (--no-deflate does not offer it)', async () => {
    const wss = echoServer({ perMessageDeflate: { threshold: 0 }, handler: { message: (ws, data) => ws.send(data.toString()) } });
    const { port } = await wss.listen(0);
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`]);
      run.child.stdin!.end(`${'abc'.repeat(1000)}\n`);
      assert.equal(await run.exit, 0, run.stderr());
      assert.match(run.stderr() + run.stdout(), /extensions: permessage-deflate/);
      assert.match(run.stdout(), new RegExp(`^< ${'abc'.repeat(1000)}$`, 'm'));
      const plain = cli(['connect', `ws://127.0.0.1:${port}/`, '--no-deflate']);
      plain.child.stdin!.end('hi\n');
      assert.equal(await plain.exit, 0, plain.stderr());
      assert.doesNotMatch(plain.stderr() + plain.stdout(), /extensions:/);
      assert.match(plain.stdout(), /^< hi$/m);
    } finally {
      await wss.close(100);
    }
  });

  it('--echo sends every message back with its type and exits 0 on the server close', async () => {
    const echoes: Array<[string, boolean]> = [];
    const wss = echoServer({
      handler: {
        open(ws) {
          ws.send('text message');
          ws.send(Buffer.from([1, 2, 3]));
        },
        message(ws, data, isBinary) {
          echoes.push([isBinary ? data.toString('hex') : data.toString(), isBinary]);
          if (echoes.length === 2) ws.close(1000, 'done');
        },
      },
    });
    const { port } = await wss.listen(0);
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`, '--echo']);
      assert.equal(await run.exit, 0, run.stderr());
      assert.deepEqual(echoes, [
        ['text message', false],
        ['010203', true],
      ]);
    } finally {
      await wss.close();
    }
  });

  it('exits 1 with the status when the handshake is refused', async () => {
    const wss = echoServer({ handler: { upgrade: () => ({ accept: false, status: 401, body: 'no' }) } });
    const { port } = await wss.listen(0);
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`]);
      run.child.stdin!.end();
      assert.equal(await run.exit, 1);
      assert.match(run.stderr(), /401/);
    } finally {
      await wss.close();
    }
  });

  it('exits 1 when the server never answers the handshake (--timeout)', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`, '--timeout', '300']);
      run.child.stdin!.end();
      assert.equal(await run.exit, 1);
      assert.match(run.stderr(), /time/i);
    } finally {
      silent.close();
      await new Promise((r) => setImmediate(r));
    }
  });

  it('exits 1 when the server breaks the protocol (masked frame from a server)', async () => {
    const { createHash } = await import('node:crypto');
    const bad: Server = createServer((socket) => {
      socket.once('data', (req: Buffer) => {
        const key = /sec-websocket-key: *(\S+)/i.exec(req.toString())![1]!;
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        // A masked text frame: servers must not mask (RFC 6455 §5.1).
        socket.write(Buffer.from([0x81, 0x81, 1, 2, 3, 4, 0x68 ^ 1]));
        socket.on('data', () => {});
        socket.on('end', () => socket.end());
        socket.on('error', () => {});
      });
    });
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    const port = (bad.address() as { port: number }).port;
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`, '--echo']);
      assert.equal(await run.exit, 1);
      assert.notEqual(run.stderr(), '');
    } finally {
      bad.close();
    }
  });

  it('exits 2 on bad usage', async () => {
    const run = cli(['connect']);
    assert.equal(await run.exit, 2);
    assert.match(run.stderr(), /URL/);
    const unknown = cli(['frobnicate']);
    assert.equal(await unknown.exit, 2);
  });
});

describe('fullduplex connect, interrupted', () => {
  it('Ctrl-C (SIGINT) closes the connection with 1000 and exits 0', async () => {
    let closeCode = 0;
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const wss = echoServer({
      handler: {
        open() {
          opened();
        },
        close(_ws, code) {
          closeCode = code;
        },
      },
    });
    const { port } = await wss.listen(0);
    try {
      const run = cli(['connect', `ws://127.0.0.1:${port}/`]);
      await open;
      await waitFor(() => /connected/.test(run.stderr()), 'the connected line');
      run.child.kill('SIGINT');
      assert.equal(await run.exit, 0, run.stderr());
      await waitFor(() => closeCode !== 0, 'the server-side close');
      assert.equal(closeCode, 1000);
    } finally {
      await wss.close();
    }
  });
});
