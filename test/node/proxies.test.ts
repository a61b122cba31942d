/**
 * The test proxies the browser tests put between Chromium and the server
 * (test/helpers/proxies.ts), checked on their own so that a browser test that
 * fails points at the product, not at its scaffolding.
 */
import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WebSocketServer, WebSocket } from '../../src/index.js';
import { CuttableProxy, NoUpgradeProxy } from '../helpers/proxies.js';

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An echo WebSocket server whose plain HTTP side streams SSE on /events and echoes POST bodies. */
async function upstream(): Promise<{ wss: WebSocketServer; port: number }> {
  const wss = new WebSocketServer({ keepalive: false, handler: { message: (ws, data, isBinary) => ws.send(data, { binary: isBinary }) } });
  const { port } = await wss.listen(0, '127.0.0.1', (req, res) => {
    if (req.url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('data: one\n\n');
      const timer = setTimeout(() => res.write('data: two\n\n'), 50);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      res.writeHead(req.headers.upgrade === undefined ? 200 : 400, { 'content-type': 'text/plain' });
      res.end(`${req.method} ${req.url} upgrade=${req.headers.upgrade ?? '-'} body=${Buffer.concat(chunks).toString()}`);
    });
  });
  return { wss, port };
}

function get(port: number, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: init.headers, agent: false }, resolve);
    req.on('error', reject);
    req.end(init.body);
  });
}

async function text(res: IncomingMessage): Promise<string> {
  let out = '';
  for await (const chunk of res) out += String(chunk);
  return out;
}

function openSocket(port: number): Promise<{ ws: WebSocket; opened: boolean; closeCode: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      resolve({ ws, opened, closeCode: 0 });
    };
    ws.onclose = (ev) => resolve({ ws, opened, closeCode: ev.code });
  });
}

describe('CuttableProxy', async () => {
  const { wss, port } = await upstream();
  after(() => wss.close(1000));

  it('relays a WebSocket, drops it on cut(), refuses while down and relays again after up()', async (t) => {
    const proxy = await CuttableProxy.start(port);
    t.after(() => proxy.close());
    const first = await openSocket(proxy.port);
    assert.equal(first.opened, true);
    first.ws.send('hello');
    const [echo] = await Promise.all([new Promise<string>((resolve) => (first.ws.onmessage = (ev) => resolve(String(ev.data))))]);
    assert.equal(echo, 'hello');
    assert.equal(proxy.open, 1);

    const closed = new Promise<number>((resolve) => (first.ws.onclose = (ev) => resolve(ev.code)));
    proxy.down();
    // No closing handshake went through: the client sees an abnormal closure (RFC 6455 §7.1.5).
    assert.equal(await closed, 1006);
    assert.equal(proxy.open, 0);
    const refused = await openSocket(proxy.port);
    assert.equal(refused.opened, false);

    proxy.up();
    const again = await openSocket(proxy.port);
    assert.equal(again.opened, true);
    assert.equal(proxy.accepted, 2);
    again.ws.close();
    await waitFor(() => proxy.open === 0, 'the relay to close');
  });

  it('follows a new target port for new connections', async (t) => {
    const other = await upstream();
    t.after(() => other.wss.close(1000));
    const proxy = await CuttableProxy.start(port);
    t.after(() => proxy.close());
    proxy.target = other.port;
    const res = await get(proxy.port, '/where');
    assert.match(await text(res), /^GET \/where upgrade=- body=$/);
  });
});

describe('NoUpgradeProxy', async () => {
  const { wss, port } = await upstream();
  after(() => wss.close(1000));

  it('strip: the server sees a plain GET without Upgrade and the WebSocket handshake fails', async (t) => {
    const proxy = await NoUpgradeProxy.start(port, 'strip');
    t.after(() => proxy.close());
    const attempt = await openSocket(proxy.port);
    assert.equal(attempt.opened, false);
    assert.equal(attempt.closeCode, 1006);
    assert.equal(proxy.upgradeAttempts, 1);
    // What the server answered to the stripped request reaches the client as is.
    const res = await get(proxy.port, '/echo', { headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    assert.equal(res.statusCode, 200);
    assert.equal(await text(res), 'GET /echo upgrade=- body=');
  });

  it('refuse: upgrade requests get 403 from the proxy itself', async (t) => {
    const proxy = await NoUpgradeProxy.start(port, 'refuse');
    t.after(() => proxy.close());
    const res = await get(proxy.port, '/echo', { headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    assert.equal(res.statusCode, 403);
    await text(res);
    assert.equal((await openSocket(proxy.port)).opened, false);
  });

  it('passes POST bodies and streams Server-Sent Events event by event', async (t) => {
    const proxy = await NoUpgradeProxy.start(port, 'strip');
    t.after(() => proxy.close());
    const posted = await get(proxy.port, '/cmd', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'payload' });
    assert.equal(await text(posted), 'POST /cmd upgrade=- body=payload');

    const events = await get(proxy.port, '/events');
    assert.equal(events.headers['content-type'], 'text/event-stream');
    let seen = '';
    events.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    // The first event arrives while the response is still open: nothing buffered it.
    await waitFor(() => seen.includes('data: two'), 'both events');
    assert.equal(events.complete, false);
    events.destroy();
    await once(events, 'close');
  });

  it('answers 502 when the target is gone', async (t) => {
    const gone = await upstream();
    await gone.wss.close(1000);
    const proxy = await NoUpgradeProxy.start(gone.port, 'strip');
    t.after(() => proxy.close());
    const res = await get(proxy.port, '/');
    assert.equal(res.statusCode, 502);
    await text(res);
  });
});
