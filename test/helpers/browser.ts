/**
 * Debian's Chromium (/usr/bin/chromium, installed by scripts/test.sh) driven
 * by playwright-core over the DevTools protocol. Never a browser download:
 * playwright-core ships no browser and is pointed at the system one.
 *
 * A missing Chromium fails the test that needs it (always in CI=true, and
 * also on a developer's machine: a browser test that skips proves nothing).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a quiet, reproducible headless run on a loaded CI machine: no
 * sandbox (root in a container), no GPU, no QUIC (every request goes over the
 * TCP the test proxies see), and none of the background traffic (component
 * updates, sync, first-run pages) a fresh profile would start.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One Chromium process with a fresh profile directory, removed by `close()`. */
export interface ChromiumSession {
  /** A new page in its own browser context: its own cookies and storage, as a second user would have. */
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/** Fails, never skips, when Debian's chromium is not installed. */
export function requireChromium(): void {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: scripts/test.sh installs Debian's "chromium" package (apt-get install chromium)` +
      (process.env.CI === 'true' ? ' (CI=true: browser tests fail without it)' : ''),
  );
}

/**
 * Launches Chromium with a fresh temporary user-data-dir (a persistent
 * context is how playwright takes a profile directory of our choosing).
 */
export async function launchChromium(): Promise<ChromiumSession> {
  requireChromium();
  const profile = await mkdtemp(join(tmpdir(), 'fullduplex-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      // The test controls lifetimes; Chromium must not outlive a failed test.
      handleSIGINT: false,
      handleSIGTERM: false,
      timeout: 60_000,
      viewport: { width: 1000, height: 720 },
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  const browser: Browser | null = context.browser();
  return {
    async newPage() {
      // Separate contexts where the browser allows it, so two pages are two users.
      if (browser !== null) return (await browser.newContext({ viewport: { width: 1000, height: 720 } })).newPage();
      return context.newPage();
    },
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
