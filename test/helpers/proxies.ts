/**
 * Loopback proxies that put a test's network between a browser and a server:
 *
 * - `CuttableProxy`: a TCP relay that can drop every connection it carries
 *   and refuse new ones for a while, as a network blip or a dead node would.
 * - `NoUpgradeProxy`: an HTTP reverse proxy that knows nothing of WebSocket,
 *   as many corporate proxies: it strips `Upgrade` (the server sees a plain
 *   GET and no handshake happens) or refuses upgrade requests outright. Plain
 *   requests, long-lived streams (Server-Sent Events) and POSTs pass through.
 *
 * Both take the port they forward to as a mutable `target`, so a test can
 * restart the server on a new port behind an unchanged page origin.
 */
import { Agent, createServer as createHttpServer, request as httpRequest, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server as HttpServer } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const HOST = '127.0.0.1';

function listen(server: TcpServer | HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: TcpServer | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** How a cut ends the connections: a FIN each way, or a TCP reset. */
export type CutMode = 'close' | 'reset';

export class CuttableProxy {
  /** The port new connections are relayed to. */
  target: number;
  port = 0;
  readonly #server: TcpServer;
  readonly #pairs = new Set<[Socket, Socket]>();
  #down = false;
  #accepted = 0;

  private constructor(target: number) {
    this.target = target;
    this.#server = createTcpServer((client) => this.#relay(client));
  }

  /** Starts a relay on a free loopback port that forwards to `target`. */
  static async start(target: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(target);
    proxy.port = await listen(proxy.#server);
    return proxy;
  }

  /** Connections currently relayed. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Connections accepted so far (refused ones excluded). */
  get accepted(): number {
    return this.#accepted;
  }

  /** Drops every relayed connection now. */
  cut(mode: CutMode = 'reset'): void {
    for (const pair of this.#pairs) this.#end(pair, mode);
  }

  /** Drops every connection and refuses new ones (reset at accept) until `up()`. */
  down(mode: CutMode = 'reset'): void {
    this.#down = true;
    this.cut(mode);
  }

  /** Accepts and relays connections again. */
  up(): void {
    this.#down = false;
  }

  async close(): Promise<void> {
    this.cut('reset');
    await closeServer(this.#server);
  }

  #relay(client: Socket): void {
    if (this.#down) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    this.#accepted++;
    const upstream = connect(this.target, HOST);
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const finish = (): void => this.#end(pair, 'close');
    for (const socket of pair) {
      socket.setNoDelay(true);
      socket.on('error', finish);
      socket.on('close', finish);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  #end(pair: [Socket, Socket], mode: CutMode): void {
    if (!this.#pairs.delete(pair)) return;
    for (const socket of pair) {
      if (socket.destroyed) continue;
      // A reset needs a fully open socket: on a half-closed one Node 20 leaves
      // the handle open forever (and the test process with it).
      if (mode === 'reset' && socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}

/** What the proxy does with a request carrying `Upgrade`. */
export type UpgradePolicy =
  /** Forwards it as a plain request without Upgrade/Connection: the server answers it as HTTP. */
  | 'strip'
  /** Answers 403 itself, as a filtering proxy would. */
  | 'refuse';

// RFC 9110 §7.6.1: hop-by-hop fields a proxy must not forward (and Upgrade
// with them, which is the point of this proxy).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set((headers.connection ?? '').split(',').map((token) => token.trim().toLowerCase()));
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export class NoUpgradeProxy {
  target: number;
  port = 0;
  /** Requests that arrived with `Upgrade` (so a test can check the page tried WebSocket first). */
  upgradeAttempts = 0;
  readonly #server: HttpServer;
  readonly #agent = new Agent({ keepAlive: true });
  readonly #sockets = new Set<Duplex>();

  private constructor(target: number, policy: UpgradePolicy) {
    this.target = target;
    this.#server = createHttpServer((req, res) => {
      const upstream = this.#forward(req, (answer) => {
        res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
        // Streams (SSE) go through chunk by chunk: nothing here buffers.
        answer.pipe(res);
      });
      upstream.on('error', () => {
        if (res.headersSent) res.destroy();
        else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
      });
      req.pipe(upstream);
      res.on('close', () => upstream.destroy());
    });
    this.#server.on('connection', (socket: Socket) => this.#track(socket));
    // Node hands requests with Upgrade to this event, on the raw socket.
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      this.upgradeAttempts++;
      socket.on('error', () => undefined);
      if (policy === 'refuse') {
        socket.end(rawResponse(403, { 'content-type': 'text/plain' }, 'upgrades are not allowed through this proxy\n'));
        return;
      }
      const upstream = this.#forward(req, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          const headers = endToEnd(answer.headers);
          delete headers['content-length'];
          socket.end(rawResponse(answer.statusCode ?? 502, headers, Buffer.concat(chunks)));
        });
      });
      upstream.on('error', () => socket.end(rawResponse(502, { 'content-type': 'text/plain' }, 'bad gateway\n')));
      // An upgrade request has no body of its own: what follows it on the socket is not HTTP.
      upstream.end();
      socket.on('close', () => upstream.destroy());
    });
  }

  static async start(target: number, policy: UpgradePolicy = 'strip'): Promise<NoUpgradeProxy> {
    const proxy = new NoUpgradeProxy(target, policy);
    proxy.port = await listen(proxy.#server);
    return proxy;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#agent.destroy();
    await closeServer(this.#server);
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
  }

  /** A request to the target with `req`'s method, path and end-to-end fields; the caller sends the body. */
  #forward(req: IncomingMessage, onAnswer: (answer: IncomingMessage) => void): ReturnType<typeof httpRequest> {
    return httpRequest({ host: HOST, port: this.target, method: req.method, path: req.url, headers: endToEnd(req.headers), agent: this.#agent }, onAnswer);
  }
}

function rawResponse(status: number, headers: OutgoingHttpHeaders, body: string | Buffer): Buffer {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of Object.entries({ ...headers, 'content-length': payload.length, connection: 'close' })) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) head += `${name}: ${item}\r\n`;
  }
  return Buffer.concat([Buffer.from(`${head}\r\n`), payload]);
}
