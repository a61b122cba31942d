/**
 * The demo chat under test: `fullduplex serve` as users run it (the built
 * CLI, dist/cli/main.js, as a child process) and the chat page in Chromium,
 * read through the page's own markup (ids, data-state, data-kind), never
 * through its script's internals.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';

/**
 * The little of the DOM the in-page functions below use. The project is
 * type-checked without the DOM library (it is a Node package); these
 * functions run in the page, where `globalThis.document` is real.
 */
interface PageElement {
  readonly textContent: string | null;
  readonly firstChild: PageElement | null;
  getAttribute(name: string): string | null;
}
interface PageGlobals {
  document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): Iterable<PageElement> & { length: number } };
}

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** Screenshots and other things a person may want to look at after a run (gitignored). */
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

/** Generous: the machine running the tests may be a loaded 2-core box. */
export const WAIT = 30_000;

export interface ServeProcess {
  port: number;
  child: ChildProcess;
  output(): string;
  /** SIGKILL, as a crash or an OOM kill would: no goodbye to any client. */
  kill(): Promise<void>;
  /** SIGINT, the orderly shutdown. */
  stop(): Promise<void>;
}

/** Starts `fullduplex serve --port 0` and waits for the port it printed. */
export async function startServe(args: string[] = []): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit');
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const deadline = Date.now() + WAIT;
  let match: RegExpExecArray | null;
  while ((match = /chat at http:\/\/127\.0\.0\.1:(\d+)\//.exec(out)) === null) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await end('SIGKILL');
      throw new Error(`fullduplex serve did not start (is dist/ built? scripts/test.sh builds it):\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port: Number(match[1]), child, output: () => out, kill: () => end('SIGKILL'), stop: () => end('SIGINT') };
}

const pageErrors = new WeakMap<Page, string[]>();

/** Fails if the page's script threw anything uncaught since it joined. */
export function assertNoPageErrors(page: Page): void {
  assert.deepEqual(pageErrors.get(page) ?? [], [], 'uncaught errors in the page');
}

/** Opens the chat at `origin` in `page`, joins `room` as `name` and waits until the room is joined. */
export async function joinRoom(page: Page, origin: string, name: string, room: string): Promise<void> {
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on('pageerror', (err) => errors.push(`${name}: ${err.message}`));
  await page.goto(`${origin}/`, { timeout: WAIT });
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join button[type=submit]');
  await waitForNotice(page, 'info', 1);
  await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
}

/** Sends `text` from `page` and waits for the server's acknowledgement (the bubble stops being pending). */
export async function send(page: Page, text: string): Promise<void> {
  await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
  await page.waitForFunction(() => (globalThis as unknown as PageGlobals).document.querySelector('#log .msg.pending, #log .msg.failed') === null, null, { timeout: WAIT });
}

/** The text of every message bubble, in page order. */
export function messages(page: Page): Promise<string[]> {
  return page.$$eval('#log .msg .text', (els) => els.map((el) => el.textContent ?? ''));
}

/** The text of every bubble marked as missed while away. */
export function missedMessages(page: Page): Promise<string[]> {
  return page.$$eval('#log .msg.missed .text', (els) => els.map((el) => el.textContent ?? ''));
}

/** Waits until `text` shows in the log at least once. */
export async function waitForMessage(page: Page, text: string): Promise<void> {
  await page.waitForFunction((t) => [...(globalThis as unknown as PageGlobals).document.querySelectorAll('#log .msg .text')].some((el) => el.textContent === t), text, { timeout: WAIT });
}

/** Waits until the log holds `count` notices of `kind` (info, recovered, unrecovered, error); returns their texts. */
export async function waitForNotice(page: Page, kind: string, count: number): Promise<string[]> {
  await page.waitForFunction(([k, n]) => (globalThis as unknown as PageGlobals).document.querySelectorAll(`#log .notice[data-kind="${k}"]`).length >= n, [kind, count] as const, { timeout: WAIT });
  return page.$$eval(`#log .notice[data-kind="${kind}"]`, (els) => els.map((el) => el.textContent ?? ''));
}

/** The connection state the page shows: `data-state` and `data-transport` of #status. */
export async function connection(page: Page): Promise<{ state: string; transport: string }> {
  return page.$eval('#status', (el) => ({ state: el.getAttribute('data-state') ?? '', transport: el.getAttribute('data-transport') ?? '' }));
}

export async function waitForState(page: Page, state: string, negate = false): Promise<void> {
  await page.waitForFunction(
    ([s, not]) => ((globalThis as unknown as PageGlobals).document.querySelector('#status')?.getAttribute('data-state') === s) !== not,
    [state, negate] as const,
    { timeout: WAIT },
  );
}

/** The names in the room's people list. */
export function people(page: Page): Promise<string[]> {
  return page.$$eval('#people li', (els) => els.map((el) => (el.firstChild?.textContent ?? '').trim()).sort());
}

export async function waitForPeople(page: Page, names: string[]): Promise<void> {
  const want = [...names].sort();
  await page.waitForFunction(
    (w) => JSON.stringify([...(globalThis as unknown as PageGlobals).document.querySelectorAll('#people li')].map((el) => (el.firstChild?.textContent ?? '').trim()).sort()) === JSON.stringify(w),
    want,
    { timeout: WAIT },
  );
}

/** Asserts every one of `texts` appears exactly once in the page's log. */
export async function assertEachOnce(page: Page, texts: string[]): Promise<void> {
  const shown = await messages(page);
  for (const text of texts) assert.equal(shown.filter((s) => s === text).length, 1, `"${text}" must appear exactly once; the log: ${JSON.stringify(shown)}`);
}

/** Saves a screenshot under test-artifacts/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = `${ARTIFACTS}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}
