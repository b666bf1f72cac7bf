import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Test } from 'tap';
import type { BrowserContext, Page } from 'playwright-core';
import { repoRoot } from '../../src/util/paths';
import { tempDir } from './client';

/**
 * Headless Chromium for the dashboard tests (the Debian package's /usr/bin/chromium, driven by
 * playwright-core). Tests that need it are skipped, with this reason, where it is missing.
 */
export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const chromiumMissing: string | false = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium)`;

/** Where the dashboard tests leave their screenshots (gitignored). */
export const ARTEFACTS = path.join(repoRoot, 'artefacts');

/** A fresh browser profile, closed at the test's end. */
export async function openBrowser(t: Test, viewport = { width: 1400, height: 1000 }): Promise<BrowserContext> {
  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(tempDir('cigl-chromium-'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport });
  t.teardown(() => context.close());
  return context;
}

/** Script errors and failed requests to the daemon (live streams excepted: they end by design). */
export function watchFailures(page: Page, daemonUrl: string): string[] {
  const failures: string[] = [];
  page.on('pageerror', (err) => failures.push(err.message));
  page.on('requestfailed', (r) => (r.url().startsWith(daemonUrl) && !r.url().endsWith('/events') ? failures.push(`${r.url()}: ${r.failure()?.errorText}`) : undefined));
  return failures;
}

export async function screenshot(t: Test, page: Page, name: string): Promise<void> {
  const file = path.join(ARTEFACTS, name);
  fs.mkdirSync(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
  t.comment(`screenshot: ${file}`);
}

/**
 * Polls `expression` (page code as a string: this project compiles without the DOM library) until it is
 * truthy. Evaluated through the DevTools protocol, which the page's CSP (no 'unsafe-eval') allows, unlike
 * page.waitForFunction's string predicates.
 */
export async function waitUntil(page: Page, expression: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate<boolean>(expression))) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${expression.slice(0, 300)}`);
    await page.waitForTimeout(100);
  }
}
