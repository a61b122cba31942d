/**
 * The server process dies (SIGKILL: no goodbye) and a new one starts with
 * the in-process default store, so the history the pages knew is gone: both
 * pages reconnect on their own, say that history could not be recovered
 * (PROTOCOL.md §7, reason "epoch"), and chat on.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { launchChromium } from '../helpers/browser.js';
import {
  type ServeProcess,
  assertEachOnce,
  assertNoPageErrors,
  joinRoom,
  send,
  startServe,
  waitForMessage,
  waitForNotice,
  waitForPeople,
  waitForState,
} from '../helpers/chat.js';
import { CuttableProxy } from '../helpers/proxies.js';

describe('the chat page when the server restarts', () => {
  const servers: ServeProcess[] = [];
  after(async () => {
    for (const s of servers) await s.kill();
  });

  it('both pages reconnect to the new process and report that history could not be recovered', async (t) => {
    servers.push(await startServe());
    const first = servers[0];
    assert.ok(first);
    // The pages' origin is this proxy, so the restarted server may take any port.
    const proxy = await CuttableProxy.start(first.port);
    t.after(() => proxy.close());
    const browser = await launchChromium();
    t.after(() => browser.close());
    const origin = `http://127.0.0.1:${proxy.port}`;
    const ada = await browser.newPage();
    const grace = await browser.newPage();
    await joinRoom(ada, origin, 'Ada', 'restart');
    await joinRoom(grace, origin, 'Grace', 'restart');
    await send(ada, 'before the crash');
    await waitForMessage(grace, 'before the crash');

    await first.kill();
    await waitForState(ada, 'connected', true);
    await waitForState(grace, 'connected', true);
    const second = await startServe();
    servers.push(second);
    proxy.target = second.port;

    for (const page of [ada, grace]) {
      const [notice] = await waitForNotice(page, 'unrecovered', 1);
      assert.match(notice ?? '', /history could not be recovered/);
      assert.match(notice ?? '', /server restarted/);
      await waitForState(page, 'connected');
    }
    // The chat carries on in the new process, with everyone back in the room.
    await waitForPeople(ada, ['Ada', 'Grace']);
    await waitForPeople(grace, ['Ada', 'Grace']);
    await send(grace, 'after the restart');
    await waitForMessage(ada, 'after the restart');
    await send(ada, 'still here');
    await waitForMessage(grace, 'still here');
    for (const page of [ada, grace]) {
      await assertEachOnce(page, ['before the crash', 'after the restart', 'still here']);
      // Nothing was claimed as recovered.
      assert.equal(await page.$$eval('#log .notice[data-kind="recovered"], #log .msg.missed', (els) => els.length), 0);
      assertNoPageErrors(page);
    }
  });
});
