/**
 * `fullduplex serve` as the demo chat's server, over loopback HTTP and the
 * Node channels client: the page's files with their security headers, the
 * chat's channel rules (rooms only, display names as tokens), and the
 * same-origin rule on both transports. /echo is covered by cli.test.ts.
 */
import { request } from 'node:http';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '../../src/client-lib/index.js';
import type { ClientOptions } from '../../src/client-lib/index.js';
import { WebSocket } from '../../src/index.js';
import { type ServeProcess, startServe } from '../helpers/chat.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const QUICK: ClientOptions = { WebSocket, reconnect: false, timeout: 10_000, transports: ['websocket'] };

/** Connects a Node client and resolves with its first `connected` or `disconnected` event. */
function connectClient(url: string, options: ClientOptions): Promise<{ client: Client; outcome: { connected: true } | { connected: false; code: number } }> {
  const client = new Client(url, { ...QUICK, ...options });
  return new Promise((resolve) => {
    const offs = [
      client.on('connected', () => done({ connected: true })),
      client.on('disconnected', ({ code }) => done({ connected: false, code })),
    ];
    function done(outcome: { connected: true } | { connected: false; code: number }): void {
      for (const off of offs) off();
      resolve({ client, outcome });
    }
    client.connect();
  });
}

describe('fullduplex serve: the chat', () => {
  let serve: ServeProcess;
  let base: string;
  before(async () => {
    serve = await startServe();
    base = `127.0.0.1:${serve.port}`;
  });
  after(() => serve?.stop());

  describe('the page', () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/chat.js', 'text/javascript'],
      ['/chat.css', 'text/css'],
      ['/fullduplex-client.js', 'text/javascript'],
    ] as const) {
      it(`GET ${path}: ${type}, same-origin only, not sniffed`, async () => {
        const res = await http(serve.port, 'GET', path);
        assert.equal(res.status, 200);
        assert.match(String(res.headers['content-type']), new RegExp(`^${type}`));
        assert.match(String(res.headers['content-security-policy']), /default-src 'self'/);
        assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/);
        assert.equal(res.headers['x-content-type-options'], 'nosniff');
        assert.ok(res.body.length > 0);
      });
    }

    it('the page imports the client the server serves, and the client module exports Client', async () => {
      const page = await http(serve.port, 'GET', '/chat.js');
      assert.match(page.body, /from '\.\/fullduplex-client\.js'/);
      const lib = await http(serve.port, 'GET', '/fullduplex-client.js');
      assert.match(lib.body, /export\s*\{[^}]*\bas Client\b|export\s*\{[^}]*\bClient\b/);
    });

    it('HEAD gets the headers without a body; other methods 405; unknown paths 404', async () => {
      const head = await http(serve.port, 'HEAD', '/');
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      assert.equal((await http(serve.port, 'POST', '/', {}, 'x')).status, 405);
      assert.equal((await http(serve.port, 'GET', '/../package.json')).status, 404);
      assert.equal((await http(serve.port, 'GET', '/web/chat.js')).status, 404);
    });
  });

  describe('the channel endpoint', () => {
    it('a named client joins a room, publishes and gets its message back with its name', async (t) => {
      const { client, outcome } = await connectClient(`ws://${base}/channels`, { token: 'Ada' });
      t.after(() => client.disconnect());
      assert.deepEqual(outcome, { connected: true });
      assert.equal(client.user, 'Ada');
      const sub = client.subscribe('chat:node-test');
      const got = new Promise<unknown>((resolve) => sub.on('publication', (p) => resolve([p.data, p.info?.user])));
      await new Promise<void>((resolve) => sub.on('subscribed', () => resolve()));
      await sub.publish({ text: 'hello' });
      assert.deepEqual(await got, [{ text: 'hello' }, 'Ada']);
      const people = await sub.presence();
      assert.deepEqual(people.map((p) => p.user), ['Ada']);
    });

    for (const [what, token] of [
      ['no name', undefined],
      ['an empty name', '   '],
      ['a name over 32 characters', 'x'.repeat(33)],
      ['a control character', 'Ada\u0007'],
      ['a bidi override', 'Ada\u202e'],
    ] as const) {
      it(`a client with ${what} is refused (4401, no reconnect)`, async () => {
        const { outcome } = await connectClient(`ws://${base}/channels`, token === undefined ? {} : { token });
        assert.deepEqual(outcome, { connected: false, code: 4401 });
      });
    }

    it('channels other than chat:<room> are refused for every action (403)', async (t) => {
      const { client } = await connectClient(`ws://${base}/channels`, { token: 'Ada' });
      t.after(() => client.disconnect());
      for (const channel of ['news', 'chat:', 'chat:a b', 'chat:../x']) {
        await assert.rejects(client.publish(channel, { text: 'x' }), (err: { code: number }) => err.code === 403, channel);
        await assert.rejects(client.history(channel), (err: { code: number }) => err.code === 403, channel);
      }
    });

    it('a WebSocket handshake from another origin is refused with 403', async () => {
      const res = await http(serve.port, 'GET', '/channels', {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-protocol': 'fullduplex.channels.v1',
        origin: 'http://evil.example',
      });
      assert.equal(res.status, 403);
    });

    it('the fallback opens no session for another origin (403); from its own origin the name is checked (401)', async () => {
      const connect = JSON.stringify({ id: 1, type: 'connect', token: 'Ada' });
      const json = { 'content-type': 'application/json' };
      const evil = await http(serve.port, 'POST', '/channels/connect', { ...json, origin: 'http://evil.example' }, connect);
      assert.equal(evil.status, 403);
      const sameHostOtherPort = await http(serve.port, 'POST', '/channels/connect', { ...json, origin: `http://127.0.0.1:${serve.port + 1}` }, connect);
      assert.equal(sameHostOtherPort.status, 403);
      const badName = await http(serve.port, 'POST', '/channels/connect', { ...json, origin: `http://${base}` }, JSON.stringify({ id: 1, type: 'connect' }));
      assert.equal(badName.status, 401);
    });
  });

  it('/topics refuses the channel layer\'s broker topics (fd:…), which would let a client forge chat messages', async () => {
    const upgrade = {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    };
    for (const path of ['/topics/fd%3Ac%3Achat%3Alobby', '/topics/fd:s:x']) {
      assert.equal((await http(serve.port, 'GET', path, upgrade)).status, 403, path);
    }
  });
});
