/**
 * Real Redis for the tests: a `redis-server` on a free loopback port with
 * persistence off, or a three-master Redis Cluster made with
 * `redis-cli --cluster create`. Debian packages redis-server and redis-tools
 * (scripts/test.sh installs them); a missing binary fails the test.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TopicSubscriber } from '../../src/pubsub/broker.js';
import type { TopicMessage } from '../../src/pubsub/message.js';
import { type Child, freePort, requireBinary, startChild, tempDir, waitFor } from './processes.js';

const run = promisify(execFile);

/** How redis-cli reaches a server: credentials, and the CA file when it speaks TLS only. */
interface CliAuth {
  user?: string;
  password?: string;
  caFile?: string;
}

/** Runs redis-cli against `port` and returns its raw output (one reply element per line). */
export async function redisCli(port: number, args: string[], auth: CliAuth = {}): Promise<string> {
  const cred: string[] = [];
  if (auth.user !== undefined) cred.push('--user', auth.user);
  if (auth.password !== undefined) cred.push('--pass', auth.password, '--no-auth-warning');
  if (auth.caFile !== undefined) cred.push('--tls', '--cacert', auth.caFile);
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...cred, ...args], { timeout: 20_000 });
  return stdout;
}

/** The lines of a redis-cli reply (empty lines dropped). */
export function lines(output: string): string[] {
  return output.split('\n').filter((l) => l !== '');
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM; it keeps no data). */
  stop(): Promise<void>;
  /** kill -9. */
  kill(): Promise<void>;
  /** SIGSTOP: the process freezes, its sockets stay open (a hung Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Starts it again on the same port with the same settings (after stop/kill). */
  restart(): Promise<void>;
  /** Stops it and removes its temp dir. */
  cleanup(): Promise<void>;
  cli(args: string[]): Promise<string>;
}

export interface RedisServerOptions {
  /** --requirepass: the `default` user's password. */
  password?: string;
  /** Serve TLS only (the port speaks rediss://), with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** Extra redis-server arguments. */
  args?: string[];
}

async function waitForPing(port: number, child: Child, auth: CliAuth): Promise<void> {
  await waitFor(
    `redis-server on port ${port} to answer PING`,
    async () => {
      if (child.process.exitCode !== null) throw new Error(`redis-server exited early:\n${child.output()}`);
      try {
        return (await redisCli(port, ['PING'], auth)).trim() === 'PONG';
      } catch {
        return false;
      }
    },
    20_000,
    50,
  );
}

/** Starts a redis-server on a free loopback port, persistence off, in a temp dir. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = requireBinary('redis-server', 'redis-server');
  requireBinary('redis-cli', 'redis-tools');
  const dir = tempDir('redis');
  const port = await freePort();
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir.path, '--loglevel', 'warning'];
  const auth: CliAuth = {};
  if (options.password !== undefined) {
    args.push('--requirepass', options.password);
    auth.password = options.password;
  }
  if (options.tls === undefined) {
    args.push('--port', String(port));
  } else {
    const cert = join(dir.path, 'cert.pem');
    const key = join(dir.path, 'key.pem');
    writeFileSync(cert, options.tls.cert);
    writeFileSync(key, options.tls.key, { mode: 0o600 });
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert, '--tls-auth-clients', 'no');
    auth.caFile = cert;
  }
  args.push(...(options.args ?? []));
  let child: Child | null = null;
  const start = async (): Promise<void> => {
    const c = startChild(binary, args);
    child = c;
    await waitForPing(port, c, auth);
  };
  const stop = async (): Promise<void> => {
    await child?.stop();
  };
  await start();
  return {
    port,
    url: `${options.tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${port}`,
    stop,
    kill: async () => {
      await child?.kill();
    },
    pause: () => {
      child?.process.kill('SIGSTOP');
    },
    resume: () => {
      child?.process.kill('SIGCONT');
    },
    restart: start,
    cleanup: async () => {
      // A paused server would ignore SIGTERM until its grace ran out.
      child?.process.kill('SIGCONT');
      await stop();
      dir.remove();
    },
    cli: (cmd) => redisCli(port, cmd, auth),
  };
}

export interface RedisCluster {
  /** The masters' ports. */
  readonly ports: number[];
  /** Root node URLs (redis://127.0.0.1:port). */
  readonly urls: string[];
  cleanup(): Promise<void>;
  /** redis-cli against one node. */
  cli(port: number, args: string[]): Promise<string>;
}

/** Starts three redis-server nodes with cluster mode on and joins them into a three-master cluster. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const binary = requireBinary('redis-server', 'redis-server');
  requireBinary('redis-cli', 'redis-tools');
  const dir = tempDir('redis-cluster');
  const children: Child[] = [];
  const ports: number[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(children.map((c) => c.stop()));
    dir.remove();
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // The cluster bus gets its own free port (Redis 7 --cluster-port) rather than port+10000.
      const busPort = await freePort();
      const args = [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000',
        '--save', '', '--appendonly', 'no', '--dir', dir.path, '--loglevel', 'warning',
      ];
      const c = startChild(binary, args);
      children.push(c);
      ports.push(port);
      await waitForPing(port, c, {});
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 60_000 });
    for (const port of ports) {
      await waitFor(`cluster state ok on node ${port}`, async () => (await redisCli(port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok'), 30_000, 100);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { ports, urls: ports.map((p) => `redis://127.0.0.1:${p}`), cleanup, cli: (port, args) => redisCli(port, args) };
}

/** A TopicSubscriber test double: keeps every payload it is given, as text. */
export class Sink implements TopicSubscriber {
  topics: Set<string> | null = null;
  readonly got: string[] = [];
  readonly binary: boolean[] = [];
  deliver(message: TopicMessage): boolean {
    this.got.push(message.payload.toString());
    this.binary.push(message.binary);
    return true;
  }
}

/** Channels matching `pattern` that Redis has subscribers for (PUBSUB CHANNELS, or SHARDCHANNELS). */
export async function pubsubChannels(server: { cli(args: string[]): Promise<string> }, pattern: string, sharded = false): Promise<string[]> {
  return lines(await server.cli(['PUBSUB', sharded ? 'SHARDCHANNELS' : 'CHANNELS', pattern])).sort();
}
