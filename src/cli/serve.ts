/**
 * `fullduplex serve`: an HTTP server with a WebSocket echo endpoint at /echo
 * that offers the subprotocols "chat" and "superchat", and topics at
 * /topics/NAME (across processes with --redis or --redis-cluster).
 */
import type { RequestListener } from 'node:http';
import { type Broker, WebSocketServer } from '../index.js';
import { UsageError, parse, parsePort } from './args.js';
import { connectRedisBroker, parseRedisTarget, redacted } from './serve-redis.js';

/** The path prefix of topic endpoints: /topics/NAME (NAME percent-decoded). */
const TOPICS_PATH = '/topics/';

/** The topic a request path names, or null for the echo endpoint. */
function topicOf(url: string): string | null {
  const path = url.split('?', 1)[0] ?? '';
  if (!path.startsWith(TOPICS_PATH)) return null;
  try {
    return decodeURIComponent(path.slice(TOPICS_PATH.length));
  } catch {
    return null;
  }
}

const HELP = `Usage: fullduplex serve [--port 8080] [--host 127.0.0.1] [--no-deflate]
                        [--redis redis://HOST:PORT | --redis-cluster URL,URL,...]

Runs an HTTP server with a WebSocket endpoint at /echo that echoes every
message with its type, offering the subprotocols "chat" and "superchat"
(the first one the client offers is chosen). WebSocket handshakes on any
other path are echoed the same way. Clients that offer permessage-deflate
get it (messages from 1 KiB on are sent compressed).

A connection to /topics/NAME is subscribed to topic NAME; every message it
sends goes to every other subscriber of NAME. With --redis or
--redis-cluster, topics span every serve process using the same Redis.

Options:
  --port N               port to listen on (default 8080; 0 picks a free one)
  --host ADDR            address to listen on (default 127.0.0.1)
  --no-deflate           decline permessage-deflate (RFC 7692)
  --redis URL            share topics through Redis (redis:// or rediss://,
                         user:password@ for ACL users); needs @redis/client
  --redis-cluster URLS   share topics through a Redis Cluster, sharded
                         pub/sub (comma-separated root node URLs)
  -h, --help             show this help
`;

export async function serveCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parse(
      args,
      {
        port: { type: 'string' },
        host: { type: 'string' },
        'no-deflate': { type: 'boolean' },
        redis: { type: 'string' },
        'redis-cluster': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      false,
    ));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`fullduplex serve: ${err.message}\n\n${HELP}`);
      return 2;
    }
    throw err;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let port: number;
  let target;
  try {
    port = parsePort(values.port, 8080);
    target = parseRedisTarget(values.redis, values['redis-cluster']);
  } catch (err) {
    process.stderr.write(`fullduplex serve: ${(err as Error).message}\n`);
    return 2;
  }
  const host = values.host ?? '127.0.0.1';

  let broker: Broker | undefined;
  if (target !== null) {
    const where = target.kind === 'single' ? redacted(target.url) : target.urls.map(redacted).join(',');
    try {
      broker = await connectRedisBroker(target);
    } catch (err) {
      process.stderr.write(`fullduplex serve: Redis at ${where}: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(`fullduplex serve: topics through Redis at ${where}\n`);
  }

  const wss = new WebSocketServer<{ topic: string | null }>({
    // /echo is the documented endpoint; other paths echo too, so a
    // conformance client pointed at the bare host:port also works.
    // The first subprotocol the client offered that the server knows.
    protocols: ['chat', 'superchat'],
    perMessageDeflate: values['no-deflate'] !== true,
    ...(broker === undefined ? {} : { broker }),
    handler: {
      upgrade(_req, info) {
        return { accept: true, data: { topic: topicOf(info.url) } };
      },
      open(ws) {
        if (ws.data.topic !== null) ws.subscribe(ws.data.topic);
      },
      message(ws, data, isBinary) {
        if (ws.data.topic === null) ws.send(data, { binary: isBinary });
        else ws.publish(ws.data.topic, data, { binary: isBinary });
      },
    },
  });
  // Plain HTTP requests: a line about the endpoint at /, 404 elsewhere.
  const onRequest: RequestListener = (req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('fullduplex server. WebSocket echo endpoint: /echo (subprotocols: chat, superchat); topics: /topics/NAME\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
  };
  let actualPort: number;
  try {
    ({ port: actualPort } = await wss.listen(port, host, onRequest));
  } catch (err) {
    await broker?.close();
    throw new Error(`cannot listen on ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const shownHost = host.includes(':') ? `[${host}]` : host;
  process.stdout.write(`fullduplex serve: listening on ws://${shownHost}:${actualPort}/echo\n`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) {
        process.exit(130);
      }
      stopping = true;
      process.stdout.write('fullduplex serve: shutting down\n');
      // Closes the WebSocket connections (1001) and the HTTP server listen()
      // made; then the Redis connections (the server closes only a broker it made).
      void wss
        .close(2000)
        .then(() => broker?.close())
        .then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
