/**
 * Headless Debian Chromium for browser tests (the web console, the client's browser entry),
 * driven by playwright-core. `make test` installs it (`make browser-deps`); outside CI a missing
 * binary skips the test, in CI it fails it.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";

export const chromiumPath = "/usr/bin/chromium";

/** Flags known to work for Debian's Chromium here, as root on a closed network. */
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Whether Chromium is here; if not, skips `t` (and fails it in CI, where it must be). */
export function haveChromiumOrSkip(t: TestContext): boolean {
  if (existsSync(chromiumPath)) return true;
  assert.ok(
    process.env["CI"] === undefined,
    `${chromiumPath} is missing in CI: make test installs it (make browser-deps)`,
  );
  t.skip(`${chromiumPath} not found: apt-get install chromium (or make browser-deps)`);
  return false;
}

/**
 * Launches Chromium and opens a page whose every wait is bounded by `waitMs`, so that a broken
 * page fails fast rather than at the test timeout; uncaught page errors are collected.
 */
export async function openChromiumPage(
  waitMs: number,
): Promise<{ browser: Browser; page: Page; pageErrors: string[] }> {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    timeout: waitMs,
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(waitMs);
  const pageErrors: string[] = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  return { browser, page, pageErrors };
}
