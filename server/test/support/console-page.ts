/**
 * The web console under test: builds its bundle (`scripts/build-console.mjs`, so that a console
 * test file runs on its own), opens it in headless Chromium with every page error, console error
 * and CSP violation collected, and saves screenshots to `TRIBUTARY_SCREENSHOT_DIR` (default
 * `tmp/console-screenshots/` at the repository root, gitignored).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Browser, Page } from "playwright-core";
import { openChromiumPage } from "./chromium.js";

const root = new URL("../../../", import.meta.url).pathname;
/** A screenshot smaller than this is taken for a blank page. */
const screenshotBytesMin = 10_000;

/** The directory screenshots go to. */
export const screenshotDir =
  process.env["TRIBUTARY_SCREENSHOT_DIR"] ?? join(root, "tmp", "console-screenshots");

/** Builds the console bundle into server/console/dist/. */
export async function buildConsole(): Promise<void> {
  await promisify(execFile)(process.execPath, ["scripts/build-console.mjs"], {
    cwd: root,
    timeout: 60_000,
  });
}

export interface ConsolePage {
  readonly browser: Browser;
  readonly page: Page;
  /** Page errors, console errors and CSP violations, in order. */
  readonly problems: string[];
}

/**
 * Opens Chromium on `url` and waits for the console to be ready. Confirmation dialogs (deletes,
 * revokes) are accepted.
 */
export async function openConsole(url: string, waitMs: number): Promise<ConsolePage> {
  const { browser, page, pageErrors } = await openChromiumPage(waitMs);
  page.on("console", (message) => {
    if (message.type() === "error") pageErrors.push(`console: ${message.text()}`);
  });
  page.on("dialog", (dialog) => void dialog.accept());
  // Chromium also logs violations as console errors; this names the directive besides.
  await page.addInitScript({
    content: `document.addEventListener("securitypolicyviolation", (event) => {
      console.error("csp violation: " + event.violatedDirective + " " + event.blockedURI);
    });`,
  });
  await page.goto(url);
  await page.locator("#console-ready").waitFor({ state: "attached" });
  return { browser, page, problems: pageErrors };
}

/** Saves a full-page screenshot as `name`.png and checks that it is not blank. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  await mkdir(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  const { size } = await stat(path);
  assert.ok(size >= screenshotBytesMin, `${path}: ${size} bytes, a blank page?`);
  return path;
}
