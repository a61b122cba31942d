/**
 * WebSocket over HTTP/2 (RFC 8441) for tests: an HTTP/2 server on loopback
 * that advertises extended CONNECT and hands each stream to `onStream`, and
 * a node:http2 client stream opened with `CONNECT :protocol websocket`.
 * The session and the server are closed after the test.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { LOOPBACK, WAIT_MS, withTimeout } from './raw-client.js';

export interface H2WebSocket {
  /** The client's side of the stream (a Duplex: write frames to it, read frames from it). */
  req: http2.ClientHttp2Stream;
  /** The server's response headers (`:status` 200 accepts, RFC 8441 §5). */
  response: http2.IncomingHttpHeaders;
  /** The server's SETTINGS, as the client received them. */
  settings: http2.Settings;
}

export async function h2WebSocket(
  t: TestContext,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<H2WebSocket> {
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  server.on('stream', onStream);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => resolve((server.address() as AddressInfo).port));
  });
  const session = http2.connect(`http://${LOOPBACK}:${port}`);
  session.on('error', () => undefined); // a test's own teardown may reset it
  t.after(async () => {
    session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  // RFC 8441 §3: a client may send :protocol only after SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
  const settings = await withTimeout(new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve)), WAIT_MS, 'the server SETTINGS');
  const req = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'http',
    ':path': '/',
    ':authority': `${LOOPBACK}:${port}`,
    'sec-websocket-version': '13',
    ...headers,
  });
  req.on('error', () => undefined);
  const response = await withTimeout(new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve)), WAIT_MS, 'the CONNECT response');
  return { req, response, settings };
}
