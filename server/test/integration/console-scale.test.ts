// Goal: the web console stays usable at 10,000 streams in a basin: the basin page shows the first
// page of streams, the next and previous pages, and a prefix filter narrows the list, with no page
// error, console error or CSP violation; and what makes it scale holds: each page shown costs one
// ListStreams call asking for one page (`limit` 100), never the whole basin. Wall time is not
// asserted (a loaded CI machine took 5.4 s for the first page with Chromium starting); each wait
// is bounded by `waitMs` so a broken page fails rather than hangs. Method: the real server process
// in memory mode; the test process creates the streams over REST in parallel (the init file
// creates them one by one, ~50 s here), then drives the page in headless Chromium
// (support/console-page.ts), watching its RPC requests, and saves a screenshot.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { haveChromiumOrSkip } from "../support/chromium.js";
import { buildConsole, openConsole, saveScreenshot } from "../support/console-page.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const waitMs = 15_000;
const basin = "scale-basin";
const streamCount = 10_000;
/** Concurrent create requests (~8 s for 10,000 here). */
const createConcurrency = 64;
/** The page's size (paged-list.ts `pageSize`). */
const pageSize = 100;
/** The RPC the basin page lists streams with (Connect protocol, JSON). */
const listStreamsPath = "/tributary.v1.BasinService/ListStreams";

let server: ServerProcess;

function streamName(index: number): string {
  return `stream-${String(index).padStart(5, "0")}`;
}

async function createStreams(): Promise<void> {
  const created = await fetch(`${server.endpoint}/v1/basins`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ basin }),
  });
  assert.equal(created.status, 201, await created.text());
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < streamCount) {
      const name = streamName(next);
      next += 1;
      const response = await fetch(`${server.endpoint}/v1/streams`, {
        method: "POST",
        headers: { "content-type": "application/json", "s2-basin": basin },
        body: JSON.stringify({ stream: name }),
        signal: AbortSignal.timeout(waitMs),
      });
      assert.equal(response.status, 201, `${name}: ${await response.text()}`);
    }
  };
  await Promise.all(Array.from({ length: createConcurrency }, worker));
}

describe("web console at 10,000 streams", { timeout: 240_000 }, () => {
  before(async () => {
    await buildConsole();
    server = await startServer({ mode: "memory" });
  });

  after(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it("pages and filters the streams of a basin", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await createStreams();
    const { browser, page, problems } = await openConsole(
      `${server.endpoint}/console#/basins/${basin}`,
      waitMs,
    );
    /** The `limit` of each ListStreams call the page made, in order. */
    const listLimits: number[] = [];
    page.on("request", (request) => {
      if (!new URL(request.url()).pathname.endsWith(listStreamsPath)) return;
      const body = JSON.parse(request.postData() ?? "{}") as { limit?: number };
      listLimits.push(body.limit ?? 0);
    });
    try {
      const table = page.locator("#streams-table");
      const names = () =>
        page
          .locator("#streams-table tr[data-stream]")
          .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-stream") ?? ""));
      /**
       * Does `action`, then waits until the list's position reads `position`; the page got
       * there with exactly one ListStreams call of one page.
       */
      const shows = async (action: () => Promise<void>, position: string): Promise<void> => {
        const callsBefore = listLimits.length;
        await action();
        await page.locator("#streams-position", { hasText: position }).waitFor();
        assert.deepEqual(listLimits.slice(callsBefore), [pageSize], position);
      };

      // The first page (its call may have gone out before the listener was attached).
      await page.locator("#streams-position", { hasText: "page 1: 1–100 (more)" }).waitFor();
      assert.ok(
        listLimits.every((limit) => limit === pageSize),
        `${listLimits}`,
      );
      assert.deepEqual(
        await names(),
        Array.from({ length: pageSize }, (_, i) => streamName(i)),
      );
      await saveScreenshot(page, "6-streams-10000");

      await shows(() => page.click("#streams-next"), "page 2: 101–200 (more)");
      assert.equal((await names())[0], streamName(pageSize));
      assert.equal((await names()).at(-1), streamName(2 * pageSize - 1));
      await shows(() => page.click("#streams-next"), "page 3: 201–300 (more)");
      await shows(() => page.click("#streams-prev"), "page 2: 101–200 (more)");
      assert.equal((await names())[0], streamName(pageSize));
      await shows(() => page.click("#streams-next-below"), "page 3: 201–300 (more)");
      await shows(() => page.click("#streams-prev-below"), "page 2: 101–200 (more)");

      // A filter starts again from its first page.
      await shows(() => page.fill("#streams-filter", "stream-0999"), "page 1: 1–10");
      assert.deepEqual(
        await names(),
        Array.from({ length: 10 }, (_, i) => streamName(9990 + i)),
      );
      assert.equal(await page.isDisabled("#streams-next"), true);
      await shows(() => page.fill("#streams-filter", "stream-05"), "page 1: 1–100 (more)");
      assert.equal((await names())[0], streamName(5000));
      await shows(() => page.click("#streams-next"), "page 2: 101–200 (more)");
      assert.equal((await names())[0], streamName(5100));
      await shows(() => page.fill("#streams-filter", "nothing-like-it"), "none matching");
      assert.equal(await table.getAttribute("data-count"), "0");
      await page.fill("#streams-filter", "stream-099");
      await page.locator("#streams-position", { hasText: "page 1: 1–100" }).waitFor();
      await saveScreenshot(page, "7-streams-filtered");
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
