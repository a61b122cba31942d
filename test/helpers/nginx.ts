/**
 * Debian's nginx as a WebSocket load balancer in front of several server
 * nodes on loopback: a generated config in a temp prefix dir (pid, logs and
 * temp paths there), `daemon off` and `master_process off` so the one process
 * is our child and goes away with it, HTTP/1.1 to the upstreams with the
 * Upgrade and Connection headers passed on (nginx docs, "WebSocket proxying"),
 * round-robin over the nodes. A missing nginx fails the test.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type Child, freePort, requireBinary, startChild, tempDir, waitFor } from './processes.js';

export interface Nginx {
  readonly port: number;
  readonly url: string;
  cleanup(): Promise<void>;
  /** nginx's error log so far (for failure messages). */
  output(): string;
}

function nginxBinary(): string {
  // /usr/sbin is not on every user's PATH.
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : requireBinary('nginx', 'nginx');
}

function config(dir: string, port: number, upstreams: number[]): string {
  const servers = upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n');
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  upstream nodes {
${servers}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://nodes;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_connect_timeout 2s;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts nginx on a free loopback port, proxying WebSocket upgrades round-robin to `upstreams`. */
export async function startNginx(upstreams: number[]): Promise<Nginx> {
  const binary = nginxBinary();
  const dir = tempDir('nginx');
  const port = await freePort();
  const conf = join(dir.path, 'nginx.conf');
  writeFileSync(conf, config(dir.path, port, upstreams));
  // -e: the early error log, before the config is read (its default is under /var/log).
  const child: Child = startChild(binary, ['-p', dir.path, '-c', conf, '-e', join(dir.path, 'error.log')]);
  const cleanup = async (): Promise<void> => {
    await child.stop();
    dir.remove();
  };
  try {
    await waitFor('nginx to accept connections', async () => {
      if (child.process.exitCode !== null) throw new Error(`nginx exited: ${child.output()}`);
      return accepts(port);
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { port, url: `ws://127.0.0.1:${port}`, cleanup, output: child.output };
}
