/**
 * fullduplex/channels carries its own copy of the server code; a
 * ChannelServer and a WebSocketServer from fullduplex attached to one HTTP
 * server must still share one upgrade router: each handshake is answered by
 * the server whose path it names, once, and an unknown path gets 404.
 * Run against the built package (dist/), as users load it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket as WsClient } from 'ws';

type Dist = typeof import('../../src/index.js');
type ChannelsDist = typeof import('../../src/channels/index.js');

/** `promise`, or a rejection after `ms` saying what was awaited. */
function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function opened(url: string, protocol?: string): Promise<{ ws: WsClient; protocol: string } | { status: number }> {
  return within(new Promise((resolve, reject) => {
    const ws = new WsClient(url, protocol === undefined ? [] : [protocol]);
    ws.once('open', () => resolve({ ws, protocol: ws.protocol }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
    });
    ws.once('error', reject);
  }), `the handshake with ${url}`);
}

describe('package: one upgrade router per HTTP server across bundled copies', () => {
  it('a ChannelServer and a catch-all WebSocketServer on one HTTP server each answer their own handshakes', async (t) => {
    const core = (await import(new URL('../../dist/index.js', import.meta.url).href)) as Dist;
    const channels = (await import(new URL('../../dist/channels/index.js', import.meta.url).href)) as ChannelsDist;
    const http = createServer((req, res) => {
      if (!chat.handleRequest(req, res)) res.writeHead(404).end();
    });
    const chat = new channels.ChannelServer({ path: '/channels' });
    chat.attach(http);
    const echo = new core.WebSocketServer({ path: '/echo', handler: { message: (ws, data, isBinary) => ws.send(data, { binary: isBinary }) } });
    echo.attach(http);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      await Promise.all([chat.close(), echo.close(100)]);
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    });
    const { port } = http.address() as AddressInfo;

    const c = await opened(`ws://127.0.0.1:${port}/channels`, channels.PROTOCOL);
    assert.ok('ws' in c, 'the channel endpoint opens');
    c.ws.on('error', () => {}); // a frame no channel server sent (two servers answering) closes it: the assertion below says so
    const reply = within(new Promise<string>((resolve) => c.ws.once('message', (d) => resolve(String(d)))), 'the connect reply');
    c.ws.send(JSON.stringify({ id: 1, type: 'connect' }));
    assert.equal((JSON.parse(await reply) as { type: string }).type, 'connected', 'answered by the ChannelServer alone');
    c.ws.close();

    const e = await opened(`ws://127.0.0.1:${port}/echo`);
    assert.ok('ws' in e, 'the echo endpoint opens');
    const echoed = within(new Promise<string>((resolve) => e.ws.once('message', (d) => resolve(String(d)))), 'the echo');
    e.ws.send('hello');
    assert.equal(await echoed, 'hello');
    e.ws.close();

    const unknown = await opened(`ws://127.0.0.1:${port}/nowhere`);
    assert.deepEqual(unknown, { status: 404 });
  });
});
