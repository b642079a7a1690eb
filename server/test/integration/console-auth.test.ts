// Goal: the web console works on a server with auth on: without a token its lists say they are
// unauthenticated, with the root token typed in the header it manages everything, and a token it
// issues with a basin prefix, once put to use, shows only the basins in its scope. Method: the
// real server process in memory mode with a root token, driven in headless Chromium
// (support/console-page.ts); the only console errors allowed are Chromium's own lines for the
// 401 answers before a token is given.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { haveChromiumOrSkip } from "../support/chromium.js";
import { buildConsole, openConsole, saveScreenshot } from "../support/console-page.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const waitMs = 15_000;
const rootToken = "console-auth-root-token-0123456789";
const basins = ["team-a-orders", "team-a-events", "team-b-orders"];

let server: ServerProcess;

describe("web console with auth", { timeout: 120_000 }, () => {
  before(async () => {
    await buildConsole();
    server = await startServer({ mode: "memory", rootToken });
    for (const basin of basins) {
      const response = await fetch(`${server.endpoint}/v1/basins`, {
        method: "POST",
        headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" },
        body: JSON.stringify({ basin }),
      });
      assert.equal(response.status, 201, await response.text());
    }
  });

  after(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it("asks for a token, then works with the root token and with a scoped one", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    const { browser, page, problems } = await openConsole(`${server.endpoint}/console`, waitMs);
    try {
      await page.locator("#basins-status", { hasText: "Unauthenticated" }).waitFor();
      const unauthenticatedLines = problems.length;
      assert.ok(
        problems.every((line) => /status of 401/.test(line)),
        `only 401 lines: ${problems.join("\n")}`,
      );

      await page.fill("#token", rootToken);
      await page.click("#token-save");
      for (const basin of basins) {
        await page.locator(`#basins-table tr[data-basin="${basin}"]`).waitFor();
      }

      await page.click('nav a[data-section="tokens"]');
      await page.locator("#tokens-table").waitFor();
      await page.fill("#token-id", "team-a-reader");
      await page.fill('#token-issue-form input[name="basins"]', "team-a-");
      await page.check('#token-issue-form input[name="account_read"]');
      await page.click("#token-issue");
      await page.locator('#tokens-table tr[data-token="team-a-reader"]').waitFor();
      await page.click("#token-use");
      assert.equal(await page.inputValue("#token"), await page.textContent("#token-secret"));

      await page.click('nav a[data-section="basins"]');
      await page.locator('#basins-table tr[data-basin="team-a-orders"]').waitFor();
      const listed = await page
        .locator("#basins-table tr[data-basin]")
        .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-basin")));
      assert.deepEqual(listed, ["team-a-events", "team-a-orders"]);
      await saveScreenshot(page, "8-scoped-token");
      assert.deepEqual(problems.slice(unauthenticatedLines), []);
    } finally {
      await browser.close();
    }
  });
});
