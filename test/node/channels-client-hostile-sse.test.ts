/**
 * The channels client's HTTP fallback (PROTOCOL.md §9: a `POST P/connect`
 * answered by a Server-Sent Events stream, commands POSTed to `P/send`)
 * against a hostile or broken HTTP server built on node:http: wrong content
 * type, events that are not JSON, a stream that ends at once or never says
 * `connected`, refusals, a `/send` that fails or hangs, a stream split at
 * every byte, and the other line endings of the SSE format.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientOptions, Publication } from '../../src/client-lib/types.js';
import { RawServer, connectedSse, events, hostileClient, openStream, settle, sleep, sse, until, watchProcess } from '../helpers/channels-client-hostile.js';

type OnConnect = (res: ServerResponse, body: string, n: number) => void;
type OnSend = (res: ServerResponse, body: string, req: IncomingMessage) => void;

/** A fallback "server": `onConnect` answers each `POST /channels/connect`, `onSend` each `POST /channels/send` (default 204). */
async function fallback(t: TestContext, onConnect: OnConnect, onSend: OnSend = (res) => res.writeHead(204).end(), options: ClientOptions = {}) {
  const { crashes } = watchProcess(t);
  const streams: ServerResponse[] = [];
  let n = 0;
  const s = await RawServer.start(
    t,
    (_req, socket) => socket.destroy(),
    (req, res, body) => {
      if (req.url === '/channels/connect') {
        streams.push(res);
        onConnect(res, body, n++);
      } else if (req.url === '/channels/send') onSend(res, body, req);
      else res.writeHead(404).end();
    },
  );
  const { c, log } = hostileClient(t, s.url, { transports: ['sse'], ...options });
  const got: Publication[] = [];
  c.on('publication', (p) => got.push(p));
  return { s, c, log, got, crashes, streams };
}

/** A well-behaved stream: `connected`, then whatever `more` writes. */
const good =
  (more: (res: ServerResponse) => void = () => undefined): OnConnect =>
  (res, body, n) => {
    openStream(res);
    sse(res, connectedSse(body, { client: `c${n}` }));
    more(res);
  };

describe('channels client fallback: broken event streams', () => {
  it('a 200 with an HTML page (wrong content type, no events) that ends: the attempt fails and the client retries with backoff', async (t) => {
    const { s, c, log, crashes } = await fallback(t, (res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html><body>Log in to the Wi-Fi</body></html>'));
    c.connect();
    await until(() => s.attempts.length >= 3, 'retries');
    assert.equal(events(log, 'connected').length, 0);
    assert.ok(events(log, 'disconnected').every((e) => e.reconnect && e.code === 1006));
    await settle(c, s, crashes);
  });

  it('a stream that ends at once, and one that never sends `connected`: both fail the attempt (timeout) and reconnect', async (t) => {
    const { s, c, log, crashes, streams } = await fallback(
      t,
      (res, _b, n) => {
        openStream(res);
        if (n % 2 === 0) res.end();
        else res.write(': keep-alive comment\n\n');
      },
      undefined,
      { timeout: 400 },
    );
    c.connect();
    await until(() => s.attempts.length >= 4, 'retries');
    assert.equal(events(log, 'connected').length, 0);
    assert.ok(events(log, 'disconnected').some((e) => e.reason === 'timeout'));
    assert.ok(events(log, 'disconnected').some((e) => e.reason === 'stream ended'));
    // The silent streams were given up: the client aborted them (their requests closed).
    await until(() => streams.filter((r, i) => i % 2 === 1 && i < streams.length - 1).every((r) => r.closed || r.destroyed), 'abandoned streams closed');
    await settle(c, s, crashes);
  });

  it('events that are not JSON or not objects are ignored; the `connected` after them counts', async (t) => {
    const { s, c, crashes } = await fallback(t, (res, body) => {
      openStream(res);
      for (const bad of ['not json', '{"type":', '[1,2]', '42', 'null', '[' .repeat(100_000)]) sse(res, bad);
      res.write('event: weird\nid: 7\nretry: 1\n\n');
      sse(res, connectedSse(body));
    });
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    assert.equal(c.transport, 'sse');
    await settle(c, s, crashes);
  });

  for (const [status, again] of [
    [401, false],
    [403, false],
    [400, false],
    [404, true],
    [429, true],
    [500, true],
    [502, true],
  ] as const) {
    it(`a connect answered ${status}: ${again ? 'retries with backoff' : 'stops (a refusal, no reconnect)'}`, async (t) => {
      const { s, c, log, crashes } = await fallback(t, (res) => res.writeHead(status, { 'Content-Type': 'text/plain' }).end('not a JSON error frame'));
      c.connect();
      if (again) await until(() => s.attempts.length >= 3, 'retries');
      else {
        await until(() => c.state === 'disconnected', 'stopped');
        await sleep(400);
        assert.equal(s.attempts.length, 1);
      }
      assert.ok(events(log, 'disconnected').every((e) => e.reconnect === again));
      assert.equal(events(log, 'disconnected')[0]?.reason, `fallback refused: HTTP ${status}`);
      await settle(c, s, crashes);
    });
  }

  it('a refusal whose body never ends: the timeout fails the attempt', async (t) => {
    const { s, c, log, crashes } = await fallback(
      t,
      (res) => {
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.write('{"type":"error",');
      },
      undefined,
      { timeout: 400 },
    );
    c.connect();
    await until(() => s.attempts.length >= 2, 'a retry');
    assert.equal(events(log, 'disconnected')[0]?.reason, 'timeout');
    await settle(c, s, crashes);
  });
});

describe('channels client fallback: hostile frames on the stream', () => {
  it('a pub with invalid base64 neither ends the session nor stops the publications after it', async (t) => {
    const { s, c, log, got, crashes } = await fallback(
      t,
      good((res) => {
        sse(res, { type: 'pub', channel: 'room', offset: 1, epoch: 'E', b64: '***' });
        sse(res, { type: 'pub', channel: 'room', offset: 2, epoch: 'E', data: 'after' });
      }),
    );
    c.subscribe('room');
    c.connect();
    await until(() => got.length > 0 || events(log, 'disconnected').length > 0, 'an outcome');
    await sleep(200);
    assert.deepEqual(events(log, 'disconnected'), [], 'one bad payload ended the whole session');
    assert.equal(got.at(-1)?.data, 'after');
    await settle(c, s, crashes);
  });
});

describe('channels client fallback: /send failures', () => {
  for (const [status, code] of [
    [500, 1006],
    [400, 1006],
    [404, 4504],
  ] as const) {
    it(`a /send answered ${status}: the session ends (${code}), the pending command rejects with 499, the client reconnects`, async (t) => {
      const { s, c, log, crashes } = await fallback(t, good(), (res) => res.writeHead(status).end());
      c.connect();
      await until(() => c.state === 'connected', 'connected');
      await assert.rejects(c.publish('room', 1), { code: 499 });
      await until(() => events(log, 'disconnected').length === 1, 'disconnected');
      assert.deepEqual(events(log, 'disconnected')[0], { code, reason: `send refused: HTTP ${status}`, reconnect: true });
      await until(() => s.attempts.length >= 2, 'reconnected');
      await settle(c, s, crashes);
    });
  }

  it('a /send that hangs: the command rejects with 408 within commandTimeout, and disconnect() aborts the hung POST', async (t) => {
    const hung: ServerResponse[] = [];
    const { s, c, crashes } = await fallback(t, good(), (res) => void hung.push(res), { commandTimeout: 400 });
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    const t0 = Date.now();
    await assert.rejects(c.publish('room', 1), { code: 408 });
    await assert.rejects(c.publish('room', 2), { code: 408 });
    assert.ok(Date.now() - t0 < 3000);
    c.disconnect();
    await until(() => hung.length > 0 && hung.every((r) => r.closed || r.destroyed || r.socket?.destroyed !== false), 'hung POST aborted');
    await settle(c, s, crashes);
  });

  it('answers `ping` events with a `pong` POST, and commands reach /send in the order they were made', async (t) => {
    const { s, c, crashes } = await fallback(t, good((res) => sse(res, { type: 'ping' })));
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    for (let i = 0; i < 40; i++) c.publish('room', i).catch(() => undefined);
    await until(() => s.sends().filter((f) => f.type === 'publish').length === 40, 'forty publishes');
    assert.ok(s.sends().some((f) => f.type === 'pong' && f.id === undefined));
    assert.deepEqual(s.sends().filter((f) => f.type === 'publish').map((f) => f.data), Array.from({ length: 40 }, (_, i) => i));
    assert.ok(s.requests.filter((r) => r.url.endsWith('/send')).every((r) => r.headers['x-fullduplex-session'] === 'S'.repeat(43)));
    await settle(c, s, crashes);
  });
});

describe('channels client fallback: how the stream is cut into lines', () => {
  /** A stream of `connected` and a subscribed channel's pubs, written through `write`. */
  async function streamed(t: TestContext, write: (res: ServerResponse, text: string) => void, eol: string) {
    const env = await fallback(t, (res, body) => {
      openStream(res);
      const ev = (f: object): string => `data: ${JSON.stringify(f)}${eol}${eol}`;
      write(res, ev(connectedSse(body)) + ev({ type: 'pub', channel: 'room', offset: 1, epoch: 'E', data: 'héllo ☃ 𝄞' }));
    });
    // The pub arrives right after `connected`, before any subscribe: a subscription must exist already.
    env.c.subscribe('room');
    env.c.connect();
    return env;
  }

  it('a stream split at every byte (multi-byte UTF-8 included) is read whole', async (t) => {
    const { s, c, got, crashes } = await streamed(
      t,
      (res, text) => {
        const bytes = Buffer.from(text);
        let i = 0;
        const next = (): void => {
          if (i < bytes.length && !res.destroyed) res.write(bytes.subarray(i, ++i), next);
        };
        next();
      },
      '\n',
    );
    await until(() => c.state === 'connected', 'connected');
    await until(() => got.length === 1, 'the publication');
    assert.equal(got[0]?.data, 'héllo ☃ 𝄞');
    await settle(c, s, crashes);
  });

  // The SSE format (HTML Living Standard §9.2.6, "Interpreting an event stream") ends lines with CR LF, LF or CR.
  for (const [name, eol] of [
    ['CR LF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    it(`events with ${name} line endings (valid Server-Sent Events) are read`, async (t) => {
      const { s, c, got, crashes } = await streamed(t, (res, text) => res.write(text), eol);
      await until(() => c.state === 'connected', 'connected', 3000).catch(() => undefined);
      assert.equal(c.state, 'connected', `no connected event read from a stream with ${name} line endings`);
      await until(() => got.length === 1, 'the publication');
      await settle(c, s, crashes);
    });
  }
});
