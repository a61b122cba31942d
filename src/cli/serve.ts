/**
 * `fullduplex serve`: the demo chat page at /, its channel server at
 * /channels (WebSocket, with the SSE + POST fallback under it), a WebSocket
 * echo endpoint at /echo offering the subprotocols "chat" and "superchat",
 * and topics at /topics/NAME. With --redis or --redis-cluster, topics and
 * the chat span every serve process on the same Redis.
 */
import { createServer, type RequestListener } from 'node:http';
import { WebSocketServer } from '../index.js';
import { UsageError, parse, parsePort, tolerateClosedStdout } from './args.js';
import { isChannelLayerTopic } from '../channels/index.js';
import { CHAT_PATH, createChatServer } from './chat.js';
import { type RedisShared, connectRedis, parseRedisTarget, redacted } from './serve-redis.js';
import { serveWebFile } from './web.js';

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

Runs an HTTP server with:
  /          a chat page: pick a name and a room, chat live, see who is there
  /channels  the chat's channel endpoint (PROTOCOL.md; WebSocket, or Server-
             Sent Events + POST when the upgrade is blocked). History and
             presence are kept in this process (after a restart, pages say
             history was lost), or in Redis with --redis / --redis-cluster.
  /echo      a WebSocket endpoint that echoes every message with its type,
             offering the subprotocols "chat" and "superchat" (the first one
             the client offers is chosen). WebSocket handshakes on any other
             path are echoed the same way. Clients that offer
             permessage-deflate get it (messages from 1 KiB on are compressed).

A connection to /topics/NAME is subscribed to topic NAME; every message it
sends goes to every other subscriber of NAME. With --redis or
--redis-cluster, topics and the chat (messages, history, presence) span
every serve process using the same Redis.

Options:
  --port N               port to listen on (default 8080; 0 picks a free one)
  --host ADDR            address to listen on (default 127.0.0.1)
  --no-deflate           decline permessage-deflate (RFC 7692)
  --redis URL            share topics and the chat through Redis (redis://
                         or rediss://, user:password@ for ACL users); needs
                         @redis/client
  --redis-cluster URLS   the same through a Redis Cluster, sharded pub/sub
                         (comma-separated root node URLs)
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
  if (host.trim() === '') {
    // listen(port, '') would bind every address.
    process.stderr.write('fullduplex serve: invalid host "" (give an address, e.g. 127.0.0.1 or 0.0.0.0)\n');
    return 2;
  }
  // Output piped into a reader that quit must not stop the server.
  tolerateClosedStdout();

  let redis: RedisShared | undefined;
  if (target !== null) {
    const where = target.kind === 'single' ? redacted(target.url) : target.urls.map(redacted).join(',');
    try {
      redis = await connectRedis(target);
    } catch (err) {
      process.stderr.write(`fullduplex serve: Redis at ${where}: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(`fullduplex serve: topics, chat history and presence through Redis at ${where}\n`);
  }

  const wss = new WebSocketServer<{ topic: string | null }>({
    // /echo is the documented endpoint; other paths echo too, so a
    // conformance client pointed at the bare host:port also works.
    // The first subprotocol the client offered that the server knows.
    protocols: ['chat', 'superchat'],
    perMessageDeflate: values['no-deflate'] !== true,
    ...(redis === undefined ? {} : { broker: redis.broker }),
    handler: {
      upgrade(_req, info) {
        const topic = topicOf(info.url);
        // The chat's channel server talks between nodes on broker topics
        // starting with "fd:" (PROTOCOL.md §9): with --redis the broker is
        // shared, and a /topics client publishing there could forge chat messages.
        if (topic !== null && isChannelLayerTopic(topic)) return { accept: false, status: 403, body: 'this topic name is reserved' };
        return { accept: true, data: { topic } };
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
  const chat = createChatServer(redis === undefined ? {} : { broker: redis.broker, store: redis.store });
  // Plain HTTP: the chat's fallback, the page's files, a line about /echo, 404 elsewhere.
  const onRequest: RequestListener = (req, res) => {
    if (chat.handleRequest(req, res) || serveWebFile(req, res)) return;
    if (req.url === '/echo' || req.url?.startsWith(TOPICS_PATH) === true) {
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13' });
      res.end('fullduplex WebSocket endpoint (/echo: subprotocols chat, superchat; /topics/NAME): connect with a WebSocket client\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
  };
  const server = createServer({ maxHeaderSize: 16 * 1024 }, onRequest);
  // A client that sends its request head too slowly is dropped; a malformed one gets 400.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  // Routed by path in attach order: /channels first, then the echo for every other path.
  chat.attach(server);
  wss.attach(server);
  let actualPort: number;
  try {
    actualPort = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  } catch (err) {
    await Promise.all([chat.close(), wss.close(0)]);
    await redis?.close();
    throw new Error(`cannot listen on ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const shownHost = host.includes(':') ? `[${host}]` : host;
  process.stdout.write(`fullduplex serve: listening on ws://${shownHost}:${actualPort}/echo\n`);
  process.stdout.write(`fullduplex serve: chat at http://${shownHost}:${actualPort}/ (channels: ws://${shownHost}:${actualPort}${CHAT_PATH})\n`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) {
        process.exit(130);
      }
      stopping = true;
      process.stdout.write('fullduplex serve: shutting down\n');
      // Chat sessions get a disconnect (1001, reconnect), echo connections a
      // 1001 close; then the HTTP server stops, then the Redis connections
      // (the servers close only a broker and store they made).
      void Promise.all([chat.close(), wss.close(2000)])
        .then(() => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }))
        .then(() => redis?.close())
        .then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
