/**
 * `fullduplex serve`: an HTTP server with a WebSocket echo endpoint at /echo
 * that offers the subprotocols "chat" and "superchat".
 */
import type { RequestListener } from 'node:http';
import { WebSocketServer } from '../index.js';
import { UsageError, parse, parsePort } from './args.js';

const HELP = `Usage: fullduplex serve [--port 8080] [--host 127.0.0.1] [--no-deflate]

Runs an HTTP server with a WebSocket endpoint at /echo that echoes every
message with its type, offering the subprotocols "chat" and "superchat"
(the first one the client offers is chosen). WebSocket handshakes on any
other path are echoed the same way. Clients that offer permessage-deflate
get it (messages from 1 KiB on are sent compressed).

Options:
  --port N       port to listen on (default 8080; 0 picks a free one)
  --host ADDR    address to listen on (default 127.0.0.1)
  --no-deflate   decline permessage-deflate (RFC 7692)
  -h, --help     show this help
`;

export async function serveCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parse(
      args,
      { port: { type: 'string' }, host: { type: 'string' }, 'no-deflate': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
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
  try {
    port = parsePort(values.port, 8080);
  } catch (err) {
    process.stderr.write(`fullduplex serve: ${(err as Error).message}\n`);
    return 2;
  }
  const host = values.host ?? '127.0.0.1';

  const wss = new WebSocketServer({
    // /echo is the documented endpoint; other paths echo too, so a
    // conformance client pointed at the bare host:port also works.
    // The first subprotocol the client offered that the server knows.
    protocols: ['chat', 'superchat'],
    perMessageDeflate: values['no-deflate'] !== true,
    handler: {
      message(ws, data, isBinary) {
        ws.send(data, { binary: isBinary });
      },
    },
  });
  // Plain HTTP requests: a line about the endpoint at /, 404 elsewhere.
  const onRequest: RequestListener = (req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('fullduplex server. WebSocket echo endpoint: /echo (subprotocols: chat, superchat)\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
  };
  let actualPort: number;
  try {
    ({ port: actualPort } = await wss.listen(port, host, onRequest));
  } catch (err) {
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
      // Closes the WebSocket connections (1001) and the HTTP server listen() made.
      void wss.close(2000).then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
