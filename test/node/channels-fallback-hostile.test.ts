/**
 * Hostile traffic against the HTTP fallback's requests (PROTOCOL.md §9):
 * command POSTs without a usable session, over the size limit, malformed,
 * of the wrong type, chunked, cut off, dribbled, racing; wrong methods and
 * paths; origins and CORS. Expectations come from PROTOCOL.md §9 and
 * RFC 9110/9112, over real loopback sockets (raw bytes where Node's HTTP
 * client would normalise the request). The event stream itself is in
 * channels-fallback-hostile-stream.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../helpers/channels.js';
import { tcpBaseline, dribble } from '../helpers/listener.js';
import { LOOPBACK, RawPeer, rawRequest, upgradeRequest } from '../helpers/raw-client.js';
import { type SseStream, command, mustOpen, openSse, post, serve } from '../helpers/sse.js';

const GOOD = 'http://good.example';
const EVIL = 'http://evil.example';

/** A raw request head for a fallback endpoint (CR LF line ends, RFC 9112 §2.1). */
function head(path: string, fields: Record<string, string>, method = 'POST', target = path): string {
  let s = `${method} ${target} HTTP/1.1\r\nHost: ${LOOPBACK}\r\n`;
  for (const [k, v] of Object.entries(fields)) s += `${k}: ${v}\r\n`;
  return s + '\r\n';
}

/** The pong for ping `id` arrived on the stream. */
async function ponged(s: SseStream, id: number): Promise<void> {
  assert.deepEqual(await s.reply(id), { id, type: 'pong' });
}

describe('§9 POST <path>/send without a usable session', () => {
  it('no header, a malformed one, an unknown one or an ended session: 400 or 404 with a body', async (t) => {
    const { port, server } = await serve(t);
    const s = await mustOpen(t, port);
    const ping = '{"id":2,"type":"ping"}';
    const cases: [string | undefined, number][] = [
      [undefined, 400],
      ['', 400],
      ['x'.repeat(42), 400],
      ['x'.repeat(44), 400],
      [`${s.session.slice(0, 42)}=`, 400],
      [`${s.session.slice(0, 42)}+`, 400],
      // The client id is public (presence, publication info): it must not open anything.
      [s.client, 400],
      ['A'.repeat(43), 404],
    ];
    for (const [session, status] of cases) {
      const r = await post(port, '/channels/send', { session, body: ping });
      assert.equal(r.status, status, `session header ${JSON.stringify(session)}`);
      assert.ok(r.body.length > 0, 'the refusal says why');
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.events.filter((e) => e.id === 2).length, 0, 'no refused command ran');
    s.close();
    await until(() => server.clientCount === 0, 'the session to end with its stream');
    const late = await post(port, '/channels/send', { session: s.session, body: ping });
    assert.equal(late.status, 404, 'an ended session is gone (single node)');
  });

  it('a session is bound to the Origin that opened it; its secret appears in no other client\'s frames', async (t) => {
    const { port } = await serve(t);
    const a = await mustOpen(t, port, { origin: GOOD });
    const b = await mustOpen(t, port, { origin: EVIL });
    assert.notEqual(a.session, b.session);
    assert.equal((await command(a, { id: 2, type: 'ping' }, { origin: EVIL })).status, 403);
    assert.equal((await command(a, { id: 3, type: 'ping' }, { origin: undefined })).status, 403, 'no Origin is not the opening origin');
    assert.equal((await command(a, { id: 4, type: 'ping' }, { session: b.session })).status, 403, "another client's session from this origin");
    assert.equal((await command(a, { id: 5, type: 'ping' })).status, 204);
    await ponged(a, 5);
    assert.equal(a.events.filter((e) => e.id === 2 || e.id === 3).length + b.events.filter((e) => e.id === 4).length, 0);

    // B sees A in presence and in publication info: never A's secret.
    for (const s of [a, b]) assert.equal((await command(s, { id: 10, type: 'subscribe', channel: 'chat:x' })).status, 204);
    await a.reply(10);
    await b.reply(10);
    assert.equal((await command(a, { id: 11, type: 'publish', channel: 'chat:x', data: 'hi' })).status, 204);
    assert.equal((await command(b, { id: 12, type: 'presence', channel: 'chat:x' })).status, 204);
    await b.next((e) => e.type === 'pub', 'the publication');
    const presence = await b.reply(12);
    assert.ok(JSON.stringify(presence).includes(a.client));
    assert.ok(!JSON.stringify(b.events).includes(a.session), "A's secret never reaches B");
  });
});

describe('§9 POST bodies: size, syntax, type, framing', () => {
  it('a declared body over maxMessageSize × 16 gets 413 before it is sent, on /send and /connect', async (t) => {
    const { port, server, sessionTopics } = await serve(t, { maxMessageSize: 1024 });
    const s = await mustOpen(t, port);
    for (const [path, session] of [['/channels/send', s.session], ['/channels/connect', undefined]] as const) {
      const peer = await RawPeer.connect(port);
      t.after(() => peer.destroy());
      const fields: Record<string, string> = { 'Content-Type': 'application/json', 'Content-Length': String(16 * 1024 + 1) };
      if (session !== undefined) fields['X-Fullduplex-Session'] = session;
      await peer.write(head(path, fields));
      const r = await peer.readResponse();
      assert.equal(r.status, 413, path);
      assert.ok(r.body.length > 0);
      await peer.waitEnd();
    }
    assert.equal(server.clientCount, 1);
    assert.equal(sessionTopics(), 1);
  });

  it('a chunked body that grows past the limit gets 413 while it is still being sent, and the connection is closed', async (t) => {
    const { port } = await serve(t, { maxMessageSize: 1024 });
    const s = await mustOpen(t, port);
    const limit = 16 * 1024;
    for (const path of ['/channels/send', '/channels/connect']) {
      const peer = await RawPeer.connect(port);
      t.after(() => peer.destroy());
      await peer.write(head(path, { 'Content-Type': 'application/json', 'X-Fullduplex-Session': s.session, 'Transfer-Encoding': 'chunked' }));
      const chunk = `400\r\n${'['.repeat(1024)}\r\n`;
      let sent = 0;
      // Never ends the body: the server must answer without waiting for it.
      while (peer.buffered === 0 && !peer.closed && peer.error === null && sent < 16 * limit) {
        await peer.write(chunk).catch(() => undefined);
        sent += 1024;
        await new Promise((r) => setTimeout(r, 2));
      }
      const r = await peer.readResponse();
      assert.equal(r.status, 413, path);
      assert.ok(sent < 8 * limit, `answered after ${sent} bytes of body (limit ${limit})`);
      await peer.waitClosed();
    }
  });

  it('the largest allowed body (16 commands, each under maxMessageSize) is taken', async (t) => {
    const { port } = await serve(t, { maxMessageSize: 1024, publishBurst: 100 });
    const s = await mustOpen(t, port);
    const batch = Array.from({ length: 16 }, (_, i) => ({ id: 100 + i, type: 'publish', channel: 'chat:big', data: 'x'.repeat(930) }));
    const body = JSON.stringify(batch);
    assert.ok(body.length > 15 * 1024 && body.length <= 16 * 1024);
    assert.equal((await command(s, body)).status, 204);
    for (let i = 0; i < 16; i++) assert.equal((await s.reply(100 + i)).type, 'published');
  });

  it('a body that is not JSON gets 400 (PROTOCOL.md §9 "400 (no header / bad JSON)")', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    for (const body of ['{"id":2,"type":"ping"', 'ping', '', '\u0000', '{"id":2,"type":"ping"}}']) {
      const r = await command(s, body);
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}`);
    }
    // The session is not charged to death by the refusals above.
    assert.equal((await command(s, { id: 9, type: 'ping' })).status, 204);
    await ponged(s, 9);
  });

  it('JSON that is not a valid command is answered on the stream, and the valid commands around it still run, in order', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    const body = '[{"id":2,"type":"ping"},{"id":3,"type":"nope"},{"id":"x","type":"ping"},7,{"id":4,"type":"subscribe","channel":""},{"id":5,"type":"connect"},{"id":6,"type":"ping"}]';
    assert.equal((await command(s, body)).status, 204);
    await ponged(s, 6);
    const after = s.events.slice(1);
    assert.deepEqual(after.map((e) => [e.id ?? null, e.type, e.code ?? null]), [
      [2, 'pong', null],
      [3, 'error', 404],
      [null, 'error', 400],
      [null, 'error', 400],
      [4, 'error', 400],
      [5, 'error', 409],
      [6, 'pong', null],
    ]);
    // More than 16 commands in one body: none of them runs.
    const many = JSON.stringify(Array.from({ length: 17 }, (_, i) => ({ id: 100 + i, type: 'ping' })));
    const r = await command(s, many);
    assert.ok(r.status === 400 || r.status === 413 || r.status === 204, `status ${r.status}`);
    assert.equal((await command(s, { id: 200, type: 'ping' })).status, 204);
    await ponged(s, 200);
    assert.equal(s.events.filter((e) => typeof e.id === 'number' && e.id >= 100 && e.id < 117 && e.type === 'pong').length, 0);
  });

  it('a Content-Type other than application/json gets 415; parameters and case do not matter', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    for (const type of [null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp', 'application/json-seq', 'json']) {
      const r = await command(s, { id: 2, type: 'ping' }, { contentType: type });
      assert.equal(r.status, 415, `Content-Type ${JSON.stringify(type)}`);
      assert.ok(r.body.length > 0);
    }
    for (const [i, type] of ['application/json; charset=utf-8', 'Application/JSON', 'application/json ; charset="UTF-8"'].entries()) {
      const r = await command(s, { id: 10 + i, type: 'ping' }, { contentType: type });
      assert.equal(r.status, 204, `Content-Type ${type}`);
      await ponged(s, 10 + i);
    }
    assert.equal(s.events.filter((e) => e.id === 2).length, 0);
  });

  it('a chunked body (RFC 9112 §7.1), split mid-token, with a chunk extension and a trailer, is read like any other', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    const peer = await RawPeer.connect(port);
    t.after(() => peer.destroy());
    const json = '[{"id":2,"type":"ping"},{"id":3,"type":"ping"}]';
    const parts = [json.slice(0, 7), json.slice(7, 30), json.slice(30)];
    await peer.write(head('/channels/send', { 'Content-Type': 'application/json', 'X-Fullduplex-Session': s.session, 'Transfer-Encoding': 'chunked' }));
    for (const [i, p] of parts.entries()) {
      await peer.write(`${p.length.toString(16)}${i === 1 ? ';note=1' : ''}\r\n${p}\r\n`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await peer.write('0\r\nX-Trailer: 1\r\n\r\n');
    const r = await peer.readResponse();
    assert.equal(r.status, 204);
    await ponged(s, 2);
    await ponged(s, 3);
  });
});

describe('§9 POSTs that stop, crawl or race', () => {
  it('bodies that stop halfway and clients that go away (also during authenticate) leave nothing behind', async (t) => {
    let release: () => void = () => undefined;
    let slow = false;
    const gate = new Promise<void>((r) => (release = r));
    const { port, server, sessionTopics } = await serve(t, {
      authenticate: async () => {
        if (slow) await gate;
        return { user: 'u' };
      },
    });
    const s = await mustOpen(t, port);
    const tcp = tcpBaseline();
    for (let i = 0; i < 10; i++) {
      for (const path of ['/channels/send', '/channels/connect']) {
        const peer = await RawPeer.connect(port);
        await peer.write(head(path, { 'Content-Type': 'application/json', 'X-Fullduplex-Session': s.session, 'Content-Length': '200' }));
        await peer.write('[{"id":2,"type":"ping"},');
        await new Promise((r) => setTimeout(r, 5));
        peer.destroy();
      }
    }
    // A whole connect whose client leaves while authenticate still runs.
    slow = true;
    const gone = await RawPeer.connect(port);
    const body = '{"id":1,"type":"connect"}';
    await gone.write(head('/channels/connect', { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }) + body);
    await until(() => server.clientCount === 2, 'the connect to be under way');
    gone.destroy();
    await new Promise((r) => setTimeout(r, 50));
    release();
    await until(() => server.clientCount === 1, 'the abandoned connect to be forgotten');
    await tcp();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.clientCount, 1);
    assert.equal(sessionTopics(), 1, 'no session topic for a client that left');
    assert.equal(s.events.filter((e) => e.id === 2).length, 0, 'no half body ran');
    assert.equal((await command(s, { id: 3, type: 'ping' })).status, 204);
    await ponged(s, 3);
  });

  it('a body dribbled a byte at a time is cut off by the request timeout (handshakeTimeout, 10 s: 408)', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    const peer = await RawPeer.connect(port);
    t.after(() => peer.destroy());
    const body = `{"id":2,"type":"ping","pad":"${' '.repeat(120)}"}`;
    await peer.write(head('/channels/send', { 'Content-Type': 'application/json', 'X-Fullduplex-Session': s.session, 'Content-Length': String(body.length) }));
    const started = Date.now();
    const sent = await dribble(peer, body, 200);
    const took = Date.now() - started;
    assert.ok(sent < body.length, 'the server ended the request before the body was complete');
    assert.ok(took < 20_000, `cut off after ${took} ms`);
    await peer.waitClosed();
    const answer = peer.release().toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.equal((await command(s, { id: 3, type: 'ping' })).status, 204, 'the session is unharmed');
    await ponged(s, 3);
  });

  it('many POSTs racing on one session: every command runs once, offsets are unique and pubs arrive in order', async (t) => {
    const { port } = await serve(t, { publishRate: 10_000, publishBurst: 10_000, maxPending: 10_000 });
    const s = await mustOpen(t, port);
    assert.equal((await command(s, { id: 2, type: 'subscribe', channel: 'chat:race' })).status, 204);
    assert.equal((await s.reply(2)).type, 'subscribed');
    const posts = 40;
    const per = 5;
    const answers = await Promise.all(
      Array.from({ length: posts }, (_, p) =>
        command(s, Array.from({ length: per }, (_, k) => ({ id: 100 + p * per + k, type: 'publish', channel: 'chat:race', data: p * per + k }))),
      ),
    );
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([204]));
    const n = posts * per;
    await until(() => s.events.filter((e) => e.type === 'published').length >= n && s.pubs('chat:race').length >= n, 'every ack and pub');
    await new Promise((r) => setTimeout(r, 100));
    const acks = s.events.filter((e) => e.type === 'published');
    assert.equal(acks.length, n, 'one ack per publish');
    assert.equal(new Set(acks.map((a) => a.id)).size, n);
    assert.deepEqual(acks.map((a) => Number(a.offset)).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i + 1));
    assert.deepEqual(s.pubs('chat:race'), Array.from({ length: n }, (_, i) => i + 1), 'each publication once, in offset order');
    assert.equal(s.events.filter((e) => e.type === 'error').length, 0);
  });

  it('a flood of bad commands exhausts the error budget: disconnect 4400 as the last event, then the session is gone', async (t) => {
    const { port, server } = await serve(t);
    const s = await mustOpen(t, port);
    for (let i = 0; i < 25 && !s.ended; i++) await command(s, { id: 10 + i, type: 'nope' });
    const bye = await s.disconnected();
    assert.deepEqual(bye, { type: 'disconnect', code: 4400, reason: 'too many protocol errors', reconnect: false });
    await until(() => server.clientCount === 0, 'the session to be gone');
    assert.equal((await command(s, { id: 99, type: 'ping' })).status, 404);
  });
});

describe('§9 methods, paths and origins', () => {
  it('other methods get 405 with Allow and a body (HEAD: no body), never a hang', async (t) => {
    const { port } = await serve(t);
    for (const path of ['/channels/connect', '/channels/send']) {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
        const r = await post(port, path, { method, body: method === 'GET' ? '' : '{"id":1,"type":"connect"}' });
        assert.equal(r.status, 405, `${method} ${path}`);
        assert.match(r.headers.allow ?? '', /\bPOST\b/);
        assert.ok(r.body.length > 0);
      }
      const h = await post(port, path, { method: 'HEAD' });
      assert.equal(h.status, 405);
      assert.equal(h.body, '');
      // A method Node's parser does not know: answered (4xx/5xx) and closed, not left hanging.
      const odd = await rawRequest(port, head(path, { 'Content-Length': '0' }, 'BREW'));
      assert.ok(odd.status >= 400 && odd.status < 600, `BREW ${path}: ${odd.status}`);
    }
  });

  it('near-miss paths get 404 with a body', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    for (const path of ['/channels/connect/', '/channels/Connect', '/channels/send/x', '/channels/sendx', '/channels//send', '/channels/%63onnect', '/channels', '/channels/', '/chan/connect', '/channels/../channels/send']) {
      const r = await rawRequest(port, head(path, { 'Content-Type': 'application/json', 'X-Fullduplex-Session': s.session, 'Content-Length': '2', Connection: 'close' }) + '{}');
      assert.equal(r.status, 404, path);
      assert.ok(r.body.length > 0, path);
    }
  });

  it('an absolute-form request target is served like its origin-form (RFC 9112 §3.2.2: a server MUST accept it)', async (t) => {
    const { port } = await serve(t);
    const s = await mustOpen(t, port);
    const body = '{"id":2,"type":"ping"}';
    const target = `http://${LOOPBACK}:${port}/channels/send`;
    const r = await rawRequest(port, head('/channels/send', { 'Content-Type': 'application/json', 'X-Fullduplex-Session': s.session, 'Content-Length': String(body.length) }, 'POST', target) + body);
    assert.equal(r.status, 204);
    await ponged(s, 2);
  });

  it('allowedOrigins applies to the stream, the POSTs, the preflight and the WebSocket alike; CORS only for allowed origins', async (t) => {
    const { port } = await serve(t, { allowedOrigins: [GOOD] });
    const s = await mustOpen(t, port, { origin: GOOD });
    assert.equal(s.res.headers['access-control-allow-origin'], GOOD);
    for (const origin of [EVIL, 'null', undefined, `${GOOD}, ${EVIL}`, `${GOOD}/`, 'HTTP://GOOD.EXAMPLE']) {
      const c = await openSse(t, port, { origin });
      assert.ok(!('events' in c) && c.status === 403, `connect from ${origin}`);
      const r = await command(s, { id: 2, type: 'ping' }, { origin });
      assert.equal(r.status, 403, `send from ${origin}`);
      assert.equal(r.headers['access-control-allow-origin'], undefined);
      const pre = await post(port, '/channels/send', { method: 'OPTIONS', origin, contentType: null, headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type, x-fullduplex-session' } });
      assert.equal(pre.status, 403, `preflight from ${origin}`);
      assert.equal(pre.headers['access-control-allow-origin'], undefined);
      const hs = await rawRequest(port, upgradeRequest({ path: '/channels', headers: { ...(origin === undefined ? {} : { Origin: origin }), 'Sec-WebSocket-Protocol': 'fullduplex.channels.v1' } }));
      assert.equal(hs.status, 403, `WebSocket from ${origin}`);
    }
    assert.equal(s.events.filter((e) => e.id === 2).length, 0);
    for (const path of ['/channels/connect', '/channels/send']) {
      const pre = await post(port, path, { method: 'OPTIONS', origin: GOOD, contentType: null, headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type, x-fullduplex-session' } });
      assert.equal(pre.status, 204, path);
      assert.equal(pre.headers['access-control-allow-origin'], GOOD);
      assert.equal(pre.headers['access-control-allow-credentials'], 'true');
      assert.match(pre.headers['access-control-allow-methods'] ?? '', /\bPOST\b/);
      assert.match(pre.headers['access-control-allow-headers'] ?? '', /content-type/i);
      assert.match(pre.headers['access-control-allow-headers'] ?? '', /x-fullduplex-session/i);
    }
    const ok = await command(s, { id: 3, type: 'ping' });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers['access-control-allow-origin'], GOOD);
    await ponged(s, 3);
  });

  it('without an allow-list no response carries CORS headers, so cross-origin pages fail the preflight', async (t) => {
    const { port } = await serve(t);
    const pre = await post(port, '/channels/send', { method: 'OPTIONS', origin: EVIL, contentType: null, headers: { 'Access-Control-Request-Method': 'POST' } });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    assert.ok(pre.status >= 400, `preflight status ${pre.status}`);
    const s = await mustOpen(t, port, { origin: EVIL });
    assert.equal(s.res.headers['access-control-allow-origin'], undefined);
    const r = await command(s, { id: 2, type: 'ping' });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });
});
