// Goal: the browser entry works against the real server with only `fetch`: unary calls, read
// sessions, and append sessions that fall back to sequential unary appends while keeping
// back-pressure, ordered acks, `flush()` and fail-on-first-error. Method: the real server process
// in memory mode, the entry run in Node over its global `fetch` (HTTP/1.1, no bidi streams), then
// bundled with esbuild and run in Debian's headless Chromium through playwright-core (skipped
// where /usr/bin/chromium is missing outside CI, as the console's browser test does).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { build } from "esbuild";
import type { Browser } from "playwright-core";
import { haveChromiumOrSkip, openChromiumPage } from "../../server/test/support/chromium.js";
import { type ServerProcess, startServer } from "../../server/test/support/server-process.js";
import type { SubmitAck } from "./append-session.js";
import { createTributaryClient, type TributaryClient } from "./browser.js";

const basin = "browser-entry-basin";
const decoder = new TextDecoder();
/** Every wait in the browser, so that a broken page fails fast rather than at the test timeout. */
const waitMs = 20_000;

describe("browser entry", { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let client: TributaryClient;
  let browser: Browser | undefined;

  before(async () => {
    server = await startServer({ mode: "memory" });
    client = createTributaryClient({ baseUrl: server.endpoint });
    await client.account.createBasin({ basin, config: { createStreamOnAppend: true } });
  });
  after(async () => {
    await browser?.close();
    await server.cleanup();
  });

  it("appends with back-pressure over unary appends and reads it back", async () => {
    const stream = client.basin(basin).stream("fetched");
    const maxUnackedBytes = 2048;
    const session = stream.appendSession({ lingerMs: 2, maxUnackedBytes });
    const acks: Promise<SubmitAck>[] = [];
    const bodies: string[] = [];
    for (let i = 0; i < 150; i += 1) {
      const body = `record-${i}-`.padEnd(100, "x");
      bodies.push(body);
      const ticket = await session.submit([{ body }]);
      assert.ok(session.unacknowledgedBytes <= maxUnackedBytes, "bound exceeded");
      acks.push(ticket.ack());
    }
    await session.flush();
    const resolved = await Promise.all(acks);
    assert.deepEqual(
      resolved.map((ack) => ack.startSeqNum),
      bodies.map((_, i) => BigInt(i)),
    );
    assert.ok(new Set(resolved.map((ack) => ack.batchAck)).size < bodies.length, "batched");
    await session.close();
    assert.equal((await stream.checkTail()).seqNum, BigInt(bodies.length));

    const read: string[] = [];
    for await (const record of stream.readSession({ startSeqNum: 0n, count: 150n })) {
      read.push(decoder.decode(record.body));
    }
    assert.deepEqual(read, bodies);
  });

  it("fails the append session at its first failed append", async () => {
    const session = client.basin(basin).stream("conditional").appendSession({ lingerMs: 0 });
    await session.append([{ body: "first" }]);
    const mismatch = await session.append([{ body: "late" }], { matchSeqNum: 0n }).then(
      () => assert.fail("expected the condition to fail"),
      (error: unknown) => ConnectError.from(error),
    );
    assert.equal(mismatch.code, Code.FailedPrecondition);
    assert.equal(mismatch.metadata.get("s2-seq-num-mismatch"), "1");
    await assert.rejects(session.submit([{ body: "after" }]));
    assert.equal((await client.basin(basin).stream("conditional").checkTail()).seqNum, 1n);
  });

  it("runs in Chromium", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    // The entry as a web app would ship it: one script that defines `tributary`.
    const bundle = await build({
      absWorkingDir: new URL("../../", import.meta.url).pathname,
      entryPoints: ["client/src/browser.ts"],
      bundle: true,
      platform: "browser",
      format: "iife",
      globalName: "tributary",
      target: "es2022",
      write: false,
      logLevel: "silent",
    });
    const script = bundle.outputFiles[0]?.text;
    assert.ok(script !== undefined);

    const opened = await openChromiumPage(waitMs);
    browser = opened.browser;
    const { page, pageErrors } = opened;
    // A blank page on the server's origin (served by the browser itself, so without the
    // console's CSP): the client's calls are same-origin, as in a web app served with the API.
    const pageUrl = `${server.endpoint}/client-test.html`;
    await page.route(pageUrl, (route) =>
      route.fulfill({ contentType: "text/html", body: "<!doctype html><title>client</title>" }),
    );
    await page.goto(pageUrl);
    await page.addScriptTag({ content: script });
    const result = await page.evaluate(
      async ({ basinName, origin }) => {
        const api = (globalThis as unknown as { tributary: typeof import("./browser.js") })
          .tributary;
        const inPage = api.createTributaryClient({ baseUrl: origin });
        const stream = inPage.basin(basinName).stream("from-chromium");
        const session = stream.appendSession({ lingerMs: 1, maxUnackedBytes: 256 });
        const acks = [];
        for (let i = 0; i < 20; i += 1)
          acks.push((await session.submit([{ body: `c${i}` }])).ack());
        await session.close();
        const starts = (await Promise.all(acks)).map((ack) => String(ack.startSeqNum));
        const bodies: string[] = [];
        for await (const record of stream.readSession({ startSeqNum: 0n, count: 20n })) {
          bodies.push(new TextDecoder().decode(record.body));
        }
        return { starts, bodies, tail: String((await stream.checkTail()).seqNum) };
      },
      { basinName: basin, origin: server.endpoint },
    );
    const expected = Array.from({ length: 20 }, (_, i) => i);
    assert.deepEqual(result.starts, expected.map(String));
    assert.deepEqual(
      result.bodies,
      expected.map((i) => `c${i}`),
    );
    assert.equal(result.tail, "20");
    assert.deepEqual(pageErrors, []);
  });
});
