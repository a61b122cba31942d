/**
 * `fullduplex serve --redis` / `--redis-cluster` as users run them (the
 * built CLI): flag checks, topics at /topics/NAME within one process without
 * Redis, a clear failure when Redis cannot be reached, and a clean SIGTERM
 * that quits the Redis connections. Topics across serve processes are in
 * redis-nodes.test.ts, nginx.test.ts and redis-cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { closeAll, freePort, openClient, startServeNode, waitFor, type Client } from '../helpers/nodes.js';
import { startChild } from '../helpers/processes.js';
import { startRedis } from '../helpers/redis.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Runs the CLI to its exit; returns the exit code and output. */
async function run(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = startChild(process.execPath, [CLI, ...args]);
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 30_000);
  await child.exited;
  clearTimeout(timer);
  return { code: child.process.exitCode, output: child.output() };
}

const clients: Client[] = [];
after(() => closeAll(clients));

describe('fullduplex serve: topics and Redis flags', () => {
  it('documents the flags in --help', async () => {
    const { code, output } = await run(['serve', '--help']);
    assert.equal(code, 0);
    assert.match(output, /--redis URL/);
    assert.match(output, /--redis-cluster URLS/);
    assert.match(output, /\/topics\/NAME/);
  });

  it('rejects a URL that is not redis:// or rediss://, and both flags at once, with exit status 2', async () => {
    const bad = await run(['serve', '--port', '0', '--redis', 'http://127.0.0.1:6379']);
    assert.equal(bad.code, 2);
    assert.match(bad.output, /invalid Redis URL/);
    const both = await run(['serve', '--port', '0', '--redis', 'redis://a', '--redis-cluster', 'redis://b']);
    assert.equal(both.code, 2);
    assert.match(both.output, /exclude each other/);
  });

  it('without Redis, /topics/NAME is a topic within the process', async () => {
    const node = await startServeNode([]);
    try {
      const [a, b, other] = await Promise.all([openClient(node.url('/topics/r%2F1')), openClient(node.url('/topics/r%2F1')), openClient(node.url('/topics/x'))]);
      clients.push(a, b, other);
      a.ws.send('hello');
      await waitFor('the message at b', () => b.got.length === 1);
      assert.deepEqual(b.got, ['hello']);
      assert.deepEqual(a.got, [], 'not back to the sender');
      assert.deepEqual(other.got, [], 'not to another topic');
    } finally {
      await node.child.stop();
    }
  });

  it('exits 1 with a message when Redis cannot be reached (without printing the password)', async () => {
    const port = await freePort();
    const { code, output } = await run(['serve', '--port', '0', '--redis', `redis://user:s3cret@127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assert.match(output, /cannot reach Redis/);
    assert.doesNotMatch(output, /s3cret/);
  });

  it('SIGTERM closes the server and the Redis connections, exit status 0', async () => {
    const redis = await startRedis();
    try {
      const node = await startServeNode(['--redis', redis.url]);
      const clientsBefore = Number(/connected_clients:(\d+)/.exec(await redis.cli(['INFO', 'clients']))?.[1]);
      assert.ok(clientsBefore >= 3, 'the node holds a publishing and a subscribing connection');
      node.child.process.kill('SIGTERM');
      await node.child.exited;
      assert.equal(node.child.process.exitCode, 0);
      await waitFor('the node’s connections gone', async () => Number(/connected_clients:(\d+)/.exec(await redis.cli(['INFO', 'clients']))?.[1]) === 1);
    } finally {
      await redis.cleanup();
    }
  });
});
