/**
 * The demo chat in a real browser (Debian's Chromium): two pages chat in one
 * room, see each other in the people list, and a page whose connection is cut
 * while the other keeps talking reconnects and shows what it missed, each
 * message exactly once (PROTOCOL.md §7). A screenshot of the page is saved
 * under test-artifacts/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type ChromiumSession, launchChromium } from '../helpers/browser.js';
import {
  type ServeProcess,
  assertEachOnce,
  assertNoPageErrors,
  connection,
  joinRoom,
  messages,
  missedMessages,
  people,
  screenshot,
  send,
  startServe,
  waitForMessage,
  waitForNotice,
  waitForPeople,
  waitForState,
} from '../helpers/chat.js';
import { CuttableProxy } from '../helpers/proxies.js';

describe('the chat page in Chromium', () => {
  let serve: ServeProcess;
  let browser: ChromiumSession;
  let proxy: CuttableProxy;
  let ada: Page;
  let grace: Page;

  before(async () => {
    serve = await startServe();
    browser = await launchChromium();
    // Grace's page reaches the server through a proxy the test can cut.
    proxy = await CuttableProxy.start(serve.port);
    ada = await browser.newPage();
    grace = await browser.newPage();
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await serve?.stop();
  });

  it('two pages join one room, see each other and chat live over WebSocket', async (t) => {
    await joinRoom(ada, `http://127.0.0.1:${serve.port}`, 'Ada', 'engine');
    await joinRoom(grace, `http://127.0.0.1:${proxy.port}`, 'Grace', 'engine');
    await waitForPeople(ada, ['Ada', 'Grace']);
    await waitForPeople(grace, ['Ada', 'Grace']);
    assert.deepEqual(await connection(ada), { state: 'connected', transport: 'websocket' });
    assert.deepEqual(await connection(grace), { state: 'connected', transport: 'websocket' });

    await send(ada, 'Hello <b>Grace</b>, <img src=x onerror=alert(1)>');
    await waitForMessage(grace, 'Hello <b>Grace</b>, <img src=x onerror=alert(1)>');
    await send(grace, 'Hi Ada: how is the engine?');
    await waitForMessage(ada, 'Hi Ada: how is the engine?');
    // Markup typed by a user is shown as text, never parsed.
    assert.equal(await grace.$$eval('#log .msg .text b, #log .msg .text img', (els) => els.length), 0);
    await assertEachOnce(ada, ['Hello <b>Grace</b>, <img src=x onerror=alert(1)>', 'Hi Ada: how is the engine?']);
    await assertEachOnce(grace, ['Hello <b>Grace</b>, <img src=x onerror=alert(1)>', 'Hi Ada: how is the engine?']);

    const path = await screenshot(ada, 'chat');
    t.diagnostic(`screenshot of the chat page: ${path}`);
  });

  it('a page whose connection is cut reconnects and shows the messages it missed, each once', async (t) => {
    const before = await messages(grace);
    proxy.down();
    await waitForState(grace, 'connected', true);
    const missed = ['While you were away: one', 'While you were away: two', 'While you were away: three'];
    for (const text of missed) await send(ada, text);
    // Still away: nothing arrived.
    assert.deepEqual(await messages(grace), before);

    proxy.up();
    const [recovered] = await waitForNotice(grace, 'recovered', 1);
    assert.match(recovered ?? '', /3 missed messages/);
    for (const text of missed) await waitForMessage(grace, text);
    await waitForState(grace, 'connected');
    await assertEachOnce(grace, [...before, ...missed]);
    assert.deepEqual(await missedMessages(grace), missed);
    // In the order they were sent, after what was there before.
    assert.deepEqual(await messages(grace), [...before, ...missed]);

    // Live again, both ways.
    await send(ada, 'Welcome back');
    await waitForMessage(grace, 'Welcome back');
    await send(grace, 'Thanks, I saw all three');
    await waitForMessage(ada, 'Thanks, I saw all three');
    await assertEachOnce(grace, ['Welcome back', 'Thanks, I saw all three']);
    t.diagnostic(`screenshot after the recovery: ${await screenshot(grace, 'chat-recovered')}`);
    await waitForPeople(ada, ['Ada', 'Grace']);
    assert.deepEqual(await people(grace), ['Ada', 'Grace']);
    assert.equal((await waitForNotice(grace, 'unrecovered', 0)).length, 0);
    assertNoPageErrors(ada);
    assertNoPageErrors(grace);
  });
});
