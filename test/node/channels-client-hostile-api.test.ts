/**
 * The channels client's public API called in hostile orders against a
 * scripted server that answers late, never, or with refusals: subscribe
 * twice, unsubscribe while subscribing, publish before connect, a subscribe
 * that is refused, conflicts forever or is never answered, a server-side
 * `unsubscribed` push; and, in a child process, that disconnect() leaves no
 * timer or socket keeping the process alive.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SubscriptionEvents } from '../../src/client-lib/types.js';
import { ScriptedServer, hostileClient, push, settle, sleep, until, watchProcess } from '../helpers/channels-client-hostile.js';

describe('channels client: the API in hostile orders', () => {
  it('subscribe twice is one subscription and one subscribe command; publish before connect() is sent once connected', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t);
    const { c } = hostileClient(t, s.url);
    const a = c.subscribe('room');
    const published = c.publish('room', 'early');
    assert.equal(c.subscribe('room'), a);
    c.connect();
    assert.deepEqual(await published, { offset: 1, epoch: 'E' });
    await until(() => a.state === 'subscribed', 'subscribed');
    assert.equal(c.subscribe('room'), a);
    await sleep(100);
    assert.equal(s.sent('subscribe').length, 1);
    await settle(c, s, crashes, 300);
  });

  it('a command made while never connected rejects with 408 after commandTimeout', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t);
    const { c } = hostileClient(t, s.url, { commandTimeout: 300 });
    await assert.rejects(c.publish('room', 1), { code: 408 });
    await assert.rejects(c.history('room'), { code: 408 });
    assert.equal(s.attempts.length, 0);
    await settle(c, s, crashes, 300);
  });

  it('unsubscribe() while the subscribe is in flight: no `subscribed`, no publication, the server is told in order', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, {
      frame: (ws, f) => {
        if (f.type !== 'subscribe') return false;
        setTimeout(() => {
          push(ws, { id: f.id, type: 'subscribed', channel: f.channel, offset: 0, epoch: 'E' });
          push(ws, { type: 'pub', channel: f.channel, offset: 1, epoch: 'E', data: 'late' });
        }, 200);
        return true;
      },
    });
    const { c } = hostileClient(t, s.url);
    c.connect();
    await until(() => c.state === 'connected', 'connected');
    const sub = c.subscribe('room');
    const seen: string[] = [];
    sub.on('subscribed', () => seen.push('subscribed'));
    sub.on('publication', () => seen.push('publication'));
    c.on('publication', () => seen.push('client publication'));
    await until(() => s.sent('subscribe').length === 1, 'subscribe sent');
    sub.unsubscribe();
    await sleep(500);
    assert.deepEqual(seen, []);
    assert.equal(sub.state, 'unsubscribed');
    assert.deepEqual(s.got.filter((f) => f.type === 'subscribe' || f.type === 'unsubscribe').map((f) => f.type), ['subscribe', 'unsubscribe']);
    await settle(c, s, crashes, 300);
  });

  it('a refused subscribe (403) is reported once and not retried on reconnect', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, {
      frame: (ws, f) => f.type === 'subscribe' && (push(ws, { id: f.id, type: 'error', code: 403, message: 'no' }), true),
    });
    const { c } = hostileClient(t, s.url);
    const sub = c.subscribe('room');
    const errors: number[] = [];
    const ended: SubscriptionEvents['unsubscribed'][] = [];
    sub.on('error', (e) => errors.push(e.code));
    sub.on('unsubscribed', (e) => ended.push(e));
    c.connect();
    await until(() => ended.length === 1, 'refused');
    assert.deepEqual(errors, [403]);
    assert.deepEqual(ended[0], { channel: 'room', code: 403, reason: 'no' });
    s.last.terminate();
    await until(() => s.attempts.length === 2 && c.state === 'connected', 'reconnected');
    await sleep(200);
    assert.equal(s.sent('subscribe').length, 1);
    await settle(c, s, crashes, 300);
  });

  it('a server that answers every subscribe with 409: one unsubscribe-and-retry, then an error, no loop', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, {
      frame: (ws, f) => f.type === 'subscribe' && (push(ws, { id: f.id, type: 'error', code: 409, message: 'already' }), true),
    });
    const { c } = hostileClient(t, s.url);
    const sub = c.subscribe('room');
    const errors: number[] = [];
    sub.on('error', (e) => errors.push(e.code));
    c.connect();
    await until(() => errors.length === 1, 'error');
    await sleep(300);
    assert.deepEqual(errors, [409]);
    assert.equal(s.sent('subscribe').length, 2);
    assert.equal(s.sent('unsubscribe').length, 1);
    await settle(c, s, crashes, 300);
  });

  it('a subscribe the server never answers: after the 408 the application learns of it or the client retries, the channel is not dead silently', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t, { frame: (_ws, f) => f.type === 'subscribe' && s.sent('subscribe').length === 1 });
    const { c } = hostileClient(t, s.url, { commandTimeout: 300 });
    const sub = c.subscribe('room');
    const errors: number[] = [];
    sub.on('error', (e) => errors.push(e.code));
    c.connect();
    await until(() => s.sent('subscribe').length === 1, 'subscribe sent');
    await sleep(1000);
    // Still connected, the subscribe timed out: without a retry or an event the channel stays down until some
    // later reconnect, and c.subscribe('room') hands back the same stalled subscription without sending anything.
    c.subscribe('room');
    await sleep(200);
    assert.ok(errors.includes(408) || sub.state === 'subscribed', `state ${sub.state}, errors [${errors.join(',')}], subscribes sent ${s.sent('subscribe').length}`);
    await settle(c, s, crashes, 300);
  });

  it('an `unsubscribed` push ends the subscription with its code and it is not resubscribed on reconnect', async (t) => {
    const { crashes } = watchProcess(t);
    const s = await ScriptedServer.start(t);
    const { c } = hostileClient(t, s.url);
    const sub = c.subscribe('room');
    const ended: SubscriptionEvents['unsubscribed'][] = [];
    sub.on('unsubscribed', (e) => ended.push(e));
    c.connect();
    await until(() => sub.state === 'subscribed', 'subscribed');
    push(s.last, { type: 'unsubscribed', channel: 'room', code: 4403, reason: 'kicked' });
    await until(() => ended.length === 1, 'ended');
    assert.deepEqual(ended[0], { channel: 'room', code: 4403, reason: 'kicked' });
    assert.equal(c.getSubscription('room'), undefined);
    s.last.terminate();
    await until(() => s.attempts.length === 2 && c.state === 'connected', 'reconnected');
    await sleep(200);
    assert.equal(s.sent('subscribe').length, 1);
    await settle(c, s, crashes, 300);
  });
});

/** Runs `body` (after a client `c` on `url` is made) in a child process; resolves with ms from its "stopped" line to its exit. */
async function exitAfterDisconnect(url: string, body: string): Promise<{ ms: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'fd-client-exit-'));
  try {
    const src = (p: string): string => pathToFileURL(join(process.cwd(), p)).href;
    const file = join(dir, 'child.mts');
    writeFileSync(
      file,
      `import { Client } from '${src('src/client-lib/index.ts')}';
import { WebSocket } from '${src('src/index.ts')}';
const c = new Client('${url}', { WebSocket, transports: ['websocket'], minReconnectDelay: 20, maxReconnectDelay: 200 });
const until = async (f: () => boolean) => { while (!f()) await new Promise((r) => setTimeout(r, 5)); };
${body}
console.log('stopped', c.state);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stoppedAt = 0;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!stoppedAt && out.includes('stopped')) stoppedAt = Date.now();
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await new Promise((r) => child.on('exit', r));
    clearTimeout(killer);
    return { ms: stoppedAt ? Date.now() - stoppedAt : Infinity, out };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('channels client: nothing keeps the process alive after disconnect()', () => {
  it('after a session with subscriptions and answered commands', async (t) => {
    const s = await ScriptedServer.start(t);
    const { ms, out } = await exitAfterDisconnect(
      s.url,
      `c.subscribe('room'); c.connect(); await until(() => c.getSubscription('room')?.state === 'subscribed'); await c.publish('room', 1); c.disconnect();`,
    );
    assert.match(out, /stopped disconnected/);
    assert.ok(ms < 3000, `the process lived ${ms} ms after disconnect(): ${out}`);
  });

  it('after disconnect() during a connect the server never answers, with a command pending', async (t) => {
    const s = await ScriptedServer.start(t, { frame: () => true });
    const { ms, out } = await exitAfterDisconnect(
      s.url,
      `c.connect(); const p = c.publish('room', 1).catch((e) => console.log('publish', e.code)); await new Promise((r) => setTimeout(r, 300)); c.disconnect();`,
    );
    assert.match(out, /stopped disconnected/);
    // The defaults: timeout 5 s, commandTimeout 10 s; neither should hold a stopped client's process.
    assert.ok(ms < 3000, `the process lived ${ms} ms after disconnect(): ${out}`);
  });
});
