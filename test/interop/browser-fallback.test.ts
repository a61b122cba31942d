/**
 * WebSocket blocked on the way: a proxy that strips `Upgrade` (or refuses
 * upgrade requests) sits between Chromium and the server. The page falls
 * back to Server-Sent Events + POST (PROTOCOL.md §9, §10), says so in its
 * connection state, and chats with a page that is on a WebSocket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ChromiumSession, launchChromium } from '../helpers/browser.js';
import {
  type ServeProcess,
  assertEachOnce,
  assertNoPageErrors,
  connection,
  joinRoom,
  send,
  startServe,
  waitForMessage,
  waitForPeople,
} from '../helpers/chat.js';
import { NoUpgradeProxy, type UpgradePolicy } from '../helpers/proxies.js';

describe('the chat page behind a proxy that blocks WebSocket', () => {
  let serve: ServeProcess;
  let browser: ChromiumSession;
  before(async () => {
    serve = await startServe();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await serve?.stop();
  });

  for (const policy of ['strip', 'refuse'] satisfies UpgradePolicy[]) {
    it(`upgrade ${policy === 'strip' ? 'stripped' : 'refused'}: the page runs on SSE + POST and still chats`, async (t) => {
      const proxy = await NoUpgradeProxy.start(serve.port, policy);
      t.after(() => proxy.close());
      const room = `fallback-${policy}`;
      const direct = await browser.newPage();
      const behind = await browser.newPage();
      t.after(async () => {
        await direct.close();
        await behind.close();
      });
      await joinRoom(direct, `http://127.0.0.1:${serve.port}`, 'Ada', room);
      await joinRoom(behind, `http://127.0.0.1:${proxy.port}`, 'Grace', room);

      assert.deepEqual(await connection(behind), { state: 'connected', transport: 'sse' });
      assert.deepEqual(await connection(direct), { state: 'connected', transport: 'websocket' });
      // It did try the WebSocket first, and the proxy kept it from the server.
      assert.ok(proxy.upgradeAttempts >= 1, 'the page never attempted a WebSocket');
      assert.match(await behind.textContent('#status-text') ?? '', /Server-Sent Events/);

      await waitForPeople(direct, ['Ada', 'Grace']);
      await waitForPeople(behind, ['Ada', 'Grace']);
      await send(behind, 'sent over POST');
      await waitForMessage(direct, 'sent over POST');
      await send(direct, 'received over SSE');
      await waitForMessage(behind, 'received over SSE');
      for (const page of [direct, behind]) {
        await assertEachOnce(page, ['sent over POST', 'received over SSE']);
        assertNoPageErrors(page);
      }
    });
  }
});
