/**
 * The entry points' declarations work together in a user's strict
 * TypeScript project: a RedisBroker is the Broker a WebSocketServer and a
 * ChannelServer take (the same TopicMessage and TopicSubscriber types, not
 * copies with separate private fields). Compiled with the package's own
 * name (a self-reference through package.json "exports"), against dist/.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

const USER_CODE = `
import { WebSocketServer, LocalBroker, type Broker, type TopicSubscriber, TopicMessage } from 'fullduplex';
import { RedisBroker } from 'fullduplex/redis';
import { ChannelServer } from 'fullduplex/channels';
import { Client } from 'fullduplex/client';

const redis = new RedisBroker({ url: 'redis://127.0.0.1:6379', prefix: 'app' });
const asBroker: Broker = redis;
const local: Broker = new LocalBroker();
const wss = new WebSocketServer<{ user: string }>({ broker: redis, handler: { open: (ws) => void ws.subscribe('room') } });
const channels = new ChannelServer({ broker: redis });
const subscriber: TopicSubscriber = { topics: null, deliver: (m: TopicMessage) => m.payload.length > 0 };
redis.subscribe('room', subscriber);
wss.publish('room', 'hello');
const client = new Client('ws://127.0.0.1:1/channels');
void [asBroker, local, channels, client];
`;

describe('package: the entry points type-check together', () => {
  it('a RedisBroker fits WebSocketServer and ChannelServer in a strict nodenext project', async (t) => {
    const dir = mkdtempSync(join(root, '.types-check-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'use.mts'), USER_CODE);
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const args = [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', join(dir, 'use.mts')];
    const result = await exec(process.execPath, args, { cwd: root, timeout: 120_000 }).then(
      () => '',
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
    assert.equal(result, '', 'the user code compiles against dist/');
  });
});
