// Goal: the web console at /console works in a real browser: it lists the basin and stream, tails
// the stream live over Connect-web, and shows both a record appended through the page and one
// appended through REST. Method: the real server process in memory mode with a freshly built
// bundle, driven in Debian's headless Chromium through playwright-core (skipped only where
// /usr/bin/chromium is missing outside CI; in CI a missing browser fails the test).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { Browser, Page } from "playwright-core";
import { haveChromiumOrSkip, openChromiumPage } from "../support/chromium.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const root = new URL("../../../", import.meta.url).pathname;
/** Every wait on the page, so that a broken console fails fast rather than at the test timeout. */
const waitMs = 15_000;
const basin = "console-basin";
const stream = "events";

let server: ServerProcess;
let browser: Browser | undefined;

async function rest(method: string, path: string, body?: object): Promise<Response> {
  const response = await fetch(`${server.endpoint}${path}`, {
    method,
    headers: { "s2-basin": basin, "content-type": "application/json" },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(waitMs),
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
  return response;
}

/** The rows of the page's live tail as [seq, body]. */
async function tailRows(page: Page): Promise<[string, string][]> {
  const seqs = await page.locator("#records td:nth-child(1)").allTextContents();
  const bodies = await page.locator("#records td:nth-child(3)").allTextContents();
  return seqs.map((seq, i): [string, string] => [seq, bodies[i] ?? ""]);
}

/** Waits until the live tail shows `count` rows. */
async function waitForRows(page: Page, count: number): Promise<void> {
  await page
    .locator("#records tr")
    .nth(count - 1)
    .waitFor();
}

describe("web console", { timeout: 120_000 }, () => {
  before(async () => {
    // The bundle is generated (make build); build it here too so that this file runs on its own.
    await promisify(execFile)(process.execPath, ["scripts/build-console.mjs"], {
      cwd: root,
      timeout: 60_000,
    });
    server = await startServer({ mode: "memory" });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await server?.cleanup();
  });

  it("serves the page, its assets and the redirect from /", async () => {
    const home = await fetch(`${server.endpoint}/`, { redirect: "manual" });
    assert.equal(home.status, 302);
    assert.equal(home.headers.get("location"), "/console");
    for (const [path, type] of [
      ["/console", "text/html; charset=utf-8"],
      ["/console/console.css", "text/css; charset=utf-8"],
      ["/console/console.js", "text/javascript; charset=utf-8"],
    ] as const) {
      const response = await fetch(`${server.endpoint}${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-type"), type, path);
      assert.ok((await response.text()).length > 0, path);
    }
    const missing = await fetch(`${server.endpoint}/console/nope.js`);
    assert.equal(missing.status, 404);
  });

  it("tails a stream live and shows records appended by the page and by REST", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await rest("POST", "/v1/basins", { basin });
    await rest("POST", "/v1/streams", { stream });
    await rest("POST", `/v1/streams/${stream}/records`, { records: [{ body: "before the tail" }] });

    const opened = await openChromiumPage(waitMs);
    browser = opened.browser;
    const { page, pageErrors } = opened;
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(message.text());
    });

    await page.goto(`${server.endpoint}/`);
    assert.equal(new URL(page.url()).pathname, "/console");
    await page.waitForSelector(`#basin option[value="${basin}"]`, { state: "attached" });
    await page.selectOption("#basin", basin);
    await page.waitForSelector(`#stream option[value="${stream}"]`, { state: "attached" });
    await page.selectOption("#stream", stream);

    await page.click("#tail-start");
    await page
      .locator("#tail-state")
      .filter({ hasText: /^live on/ })
      .waitFor();
    // The backlog: the record appended before the tail started.
    await waitForRows(page, 1);

    await page.fill("#append-body", "hello from the page");
    await page.click("#append-button");
    await waitForRows(page, 2);
    assert.equal(await page.textContent("#append-result"), "appended at seq 1");

    await rest("POST", `/v1/streams/${stream}/records`, { records: [{ body: "hello from REST" }] });
    await waitForRows(page, 3);

    assert.deepEqual(await tailRows(page), [
      ["0", "before the tail"],
      ["1", "hello from the page"],
      ["2", "hello from REST"],
    ]);
    assert.match((await page.textContent("#tail-state")) ?? "", /^live on console-basin\/events/);
    const screenshot = process.env["CONSOLE_SCREENSHOT"];
    if (screenshot !== undefined) await page.screenshot({ path: screenshot, fullPage: true });

    await page.click("#tail-stop");
    assert.equal(await page.textContent("#tail-state"), "stopped");
    assert.deepEqual(pageErrors, []);
  });
});
