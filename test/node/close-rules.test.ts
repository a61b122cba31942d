/**
 * One rule for close() on both sides (issue 8), checked end to end between
 * our server, our WHATWG client, `ws` and a raw peer:
 * - close() without arguments sends a close frame without a body (RFC 6455
 *   §5.5.1), so the peer sees 1005 (RFC 6455 §7.1.5), as a browser's
 *   close() does;
 * - a reason needs a code: the server throws RangeError; the WHATWG client
 *   sends 1000 with it (WHATWG WebSockets § close the WebSocket: "if reason
 *   is non-empty but code is null, set code to 1000");
 * - an endpoint answering a close echoes its code and its reason (browsers
 *   show the reason to the page).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../../src/index.js';
import type { ServerWebSocket } from '../../src/index.js';
import { ClientLog } from '../helpers/client-peer.js';
import { rawOpen } from '../helpers/raw-client.js';
import { clientClosed, listening } from '../helpers/server-harness.js';

/** Our client connected to a fresh server; both sides' logs and the server-side connection. */
async function pair(t: TestContext): Promise<{ client: WebSocket; clientLog: ClientLog; server: ServerWebSocket; serverLog: Awaited<ReturnType<typeof listening>>['log'] }> {
  const { port, log } = await listening(t, {}, {});
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  t.after(() => {
    if (client.readyState === WebSocket.CONNECTING || client.readyState === WebSocket.OPEN) client.close();
  });
  const clientLog = new ClientLog(client);
  await clientLog.first('open');
  const server = (await log.first('open')).ws;
  return { client, clientLog, server, serverLog: log };
}

describe('close() without arguments: no status code on either side (RFC 6455 §7.1.5: the peer sees 1005)', () => {
  it('server ws.close(): our client sees 1005 and no reason, cleanly; the server sees the echoed 1005', async (t) => {
    const { clientLog, server, serverLog } = await pair(t);
    server.close();
    const closed = await clientLog.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [1005, '', true]);
    const ev = await serverLog.first('close');
    assert.deepEqual([ev.code, ev.reason], [1005, '']);
  });

  it('server ws.close(): a `ws` client sees 1005 too', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const client = await s.client(`ws://127.0.0.1:${port}/`);
    const closed = clientClosed(client);
    (await log.first('open')).ws.close();
    assert.deepEqual(await closed, { code: 1005, reason: '' });
  });

  it('server ws.close(): the bytes are a close frame with an empty payload', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    (await log.first('open')).ws.close();
    const f = await peer.readFrame();
    assert.deepEqual([f.fin, f.opcode, f.payload.length], [true, 0x8, 0]);
  });

  it('client close(): the server handler sees 1005 and no reason; the client sees 1005 back', async (t) => {
    const { client, clientLog, serverLog } = await pair(t);
    client.close();
    const ev = await serverLog.first('close');
    assert.deepEqual([ev.code, ev.reason], [1005, '']);
    const closed = await clientLog.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [1005, '', true]);
  });

  it('client close(undefined, ""): an empty reason is no reason, so no body (the server sees 1005)', async (t) => {
    const { client, serverLog } = await pair(t);
    client.close(undefined, '');
    const ev = await serverLog.first('close');
    assert.deepEqual([ev.code, ev.reason], [1005, '']);
  });
});

describe('a reason without a code', () => {
  it('server ws.close(undefined, "x") throws RangeError and sends nothing', async (t) => {
    const { clientLog, server, serverLog } = await pair(t);
    assert.throws(() => server.close(undefined, 'x'), RangeError);
    assert.equal(server.readyState, 1, 'still open');
    // The next close is the first the client sees.
    server.close(1000, 'real');
    const closed = await clientLog.closed();
    assert.deepEqual([closed.code, closed.reason], [1000, 'real']);
    assert.deepEqual([(await serverLog.first('close')).code], [1000]);
  });

  it('client close(undefined, "x") sends 1000 with the reason (WHATWG WebSockets § close the WebSocket)', async (t) => {
    const { client, clientLog, serverLog } = await pair(t);
    client.close(undefined, 'x');
    const ev = await serverLog.first('close');
    assert.deepEqual([ev.code, ev.reason], [1000, 'x']);
    const closed = await clientLog.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [1000, 'x', true], 'the server echoed both');
  });
});

describe('answering a close echoes its code and reason (browser-visible)', () => {
  it('a `ws` client close(4000, "bye") gets 4000 and "bye" back from our server', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const client = await s.client(`ws://127.0.0.1:${port}/`);
    const closed = clientClosed(client);
    client.close(4000, 'bye');
    assert.deepEqual(await closed, { code: 4000, reason: 'bye' });
    const ev = await log.first('close');
    assert.deepEqual([ev.code, ev.reason], [4000, 'bye']);
  });

  it('our client close(4001, "see you") gets 4001 and "see you" back', async (t) => {
    const { client, clientLog, serverLog } = await pair(t);
    client.close(4001, 'see you');
    const closed = await clientLog.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4001, 'see you', true]);
    const ev = await serverLog.first('close');
    assert.deepEqual([ev.code, ev.reason], [4001, 'see you']);
  });

  it('the server\'s answer is exactly the peer\'s close payload: code and UTF-8 reason', async (t) => {
    const { s, port } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    await peer.sendClose(4002, 'ciao ✓');
    const f = await peer.readFrame();
    assert.deepEqual([f.fin, f.opcode, f.masked], [true, 0x8, false]);
    assert.deepEqual(f.payload, Buffer.concat([Buffer.from([0x0f, 0xa2]), Buffer.from('ciao ✓', 'utf8')]));
  });

  it('the server answers an empty close with an empty close', async (t) => {
    const { s, port, log } = await listening(t, {}, {});
    const { peer } = await rawOpen(port);
    s.peer(peer);
    await peer.send({ opcode: 0x8 });
    const f = await peer.readFrame();
    assert.deepEqual([f.opcode, f.payload.length], [0x8, 0]);
    const ev = await log.first('close');
    assert.deepEqual([ev.code, ev.reason], [1005, '']);
  });

  it('our client echoes a server close with its code and reason, so the server handler sees them', async (t) => {
    const { clientLog, server, serverLog } = await pair(t);
    server.close(4003, 'server says');
    const closed = await clientLog.closed();
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4003, 'server says', true]);
    const ev = await serverLog.first('close');
    assert.deepEqual([ev.code, ev.reason], [4003, 'server says'], 'the client\'s answer carried both');
  });
});
