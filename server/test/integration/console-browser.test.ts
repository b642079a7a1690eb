// Goal: the web console at /console works in a real browser from start to end: create a basin and
// a stream, reconfigure both, append records with headers (text, JSON and binary bodies) and see
// them in the live tail next to one appended through REST, chart the metrics the API reports,
// issue, list and revoke an access token, and delete the stream and the basin, with no page error,
// console error or CSP violation. Method: the real server process in memory mode with a freshly
// built bundle, driven in Debian's headless Chromium through playwright-core (skipped only where
// /usr/bin/chromium is missing outside CI); a screenshot of each page is saved
// (support/console-page.ts says where).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { haveChromiumOrSkip } from "../support/chromium.js";
import {
  buildConsole,
  type ConsolePage,
  openConsole,
  saveScreenshot,
} from "../support/console-page.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

/** Every wait on the page, so that a broken console fails fast rather than at the test timeout. */
const waitMs = 15_000;
const basin = "console-basin";
const stream = "events";
const tokenId = "console-token";

let server: ServerProcess;
let opened: ConsolePage | undefined;

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

/** The open page; each step after the first needs the one before it to have opened it. */
function page(): Page {
  assert.ok(opened !== undefined, "the console page was not opened");
  return opened.page;
}

/** Goes to `hash` and waits for `selector` there. */
async function visit(hash: string, selector: string): Promise<void> {
  await page().evaluate(`window.location.hash = ${JSON.stringify(hash)}`);
  await page().locator(selector).first().waitFor();
}

/** The live tail's rows as [seq, headers, body kind, body text]. */
async function tailRows(): Promise<string[][]> {
  return page()
    .locator("#records tr")
    .evaluateAll((rows) =>
      rows.map((row) => {
        const cells = row.querySelectorAll("td");
        const body = cells[3]?.querySelector("pre");
        return [
          cells[0]?.textContent ?? "",
          [...(cells[2]?.querySelectorAll("li") ?? [])].map((li) => li.textContent).join("; "),
          body?.dataset["kind"] ?? "",
          body?.textContent ?? "",
        ];
      }),
    );
}

describe("web console", { timeout: 180_000 }, () => {
  before(async () => {
    await buildConsole();
    server = await startServer({ mode: "memory" });
  });

  after(async () => {
    await opened?.browser.close();
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
      ["/console/uplot.css", "text/css; charset=utf-8"],
      ["/console/console.js", "text/javascript; charset=utf-8"],
    ] as const) {
      const response = await fetch(`${server.endpoint}${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-type"), type, path);
      assert.match(response.headers.get("content-security-policy") ?? "", /style-src 'self';/);
      assert.ok((await response.text()).length > 0, path);
    }
    const missing = await fetch(`${server.endpoint}/console/nope.js`);
    assert.equal(missing.status, 404);
  });

  it("creates a basin on the basins page", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    opened = await openConsole(`${server.endpoint}/`, waitMs);
    assert.equal(new URL(page().url()).pathname, "/console");
    await page().locator("#basins-table").waitFor();
    await page().fill("#basin-create-name", basin);
    await page().click("#basin-create-button");
    await page().locator(`#basins-table tr[data-basin="${basin}"]`).waitFor();
    assert.equal(await page().textContent("#basin-result"), `created basin ${basin}`);
    await saveScreenshot(page(), "1-basins");
  });

  it("creates a stream and reconfigures the basin on its page", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await page().click(`#basins-table a:text-is("${basin}")`);
    await page().locator("#basin-config-summary").waitFor();
    await page().fill("#stream-create-name", stream);
    await page().click("#stream-create-button");
    await page().locator(`#streams-table tr[data-stream="${stream}"]`).waitFor();

    await page().click("#basin-config details summary");
    await page().check('#basin-config-form input[name="create_stream_on_append"]');
    await page().selectOption('#basin-config-form select[name="storage_class"]', {
      label: "standard",
    });
    await page().click("#basin-config-save");
    await page().locator("#basin-config-result", { hasText: "reconfigured" }).waitFor();
    const summary = await page().textContent("#basin-config-summary");
    assert.match(summary ?? "", /create streams on appendtrue/);
    assert.match(summary ?? "", /default storage classstandard/);
    const config = (await (await rest("GET", `/v1/basins/${basin}`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(config["create_stream_on_append"], true);
    await saveScreenshot(page(), "2-basin");
  });

  it("appends records with headers and shows them in the live tail, rendered by kind", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await page().click(`#streams-table a:text-is("${stream}")`);
    await page().locator("#stream-tail", { hasText: "next seq num 0" }).waitFor();
    await page().click("#tail-start");
    await page()
      .locator("#tail-state")
      .filter({ hasText: /^live on/ })
      .waitFor();

    const append = async (body: string, headers: string, format: "text" | "hex", seq: number) => {
      await page().fill("#append-body", body);
      await page().fill("#append-headers", headers);
      await page().selectOption("#append-format", format);
      await page().click("#append-button");
      await page()
        .locator("#append-result", { hasText: `appended at seq ${seq}` })
        .waitFor();
    };
    await append("hello from the page", "content-type: text/plain\nx-trace: 42", "text", 0);
    await append('{"user":"ada","tags":["a","b"]}', "content-type: application/json", "text", 1);
    await append("ff fe 00 01 7f", "", "hex", 2);
    await rest("POST", `/v1/streams/${stream}/records`, { records: [{ body: "hello from REST" }] });
    await page().locator("#records tr").nth(3).waitFor();

    assert.deepEqual(await tailRows(), [
      ["0", "content-type: text/plain; x-trace: 42", "text", "hello from the page"],
      [
        "1",
        "content-type: application/json",
        "json",
        JSON.stringify({ user: "ada", tags: ["a", "b"] }, null, 2),
      ],
      ["2", "", "hex", "ff fe 00 01 7f"],
      ["3", "", "text", "hello from REST"],
    ]);
    const timestamp = await page().locator("#records tr td:nth-child(2)").first().textContent();
    assert.match(timestamp ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    await page().click("#tail-refresh");
    await page().locator("#stream-tail", { hasText: "next seq num 4" }).waitFor();
  });

  it("reconfigures the stream on its page", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await page().click("#stream-config details summary");
    await page().selectOption('#stream-config-form select[name="retention"]', "age");
    await page().fill('#stream-config-form input[name="retention_age_secs"]', "3600");
    await page().click("#stream-config-save");
    await page().locator("#stream-config-result", { hasText: "reconfigured" }).waitFor();
    assert.match((await page().textContent("#stream-config-summary")) ?? "", /retention3600 s/);
    const config = (await (await rest("GET", `/v1/streams/${stream}`)).json()) as {
      retention_policy?: { age?: number };
    };
    assert.equal(config.retention_policy?.age, 3600);
    // The storage chart was drawn before the appends; redrawn, it shows the stored bytes.
    await page().click("#storage-refresh");
    await page().locator('#chart-stream-storage:not([data-total="0"]) canvas').first().waitFor();
    await saveScreenshot(page(), "3-stream");
    await page().click("#tail-stop");
    assert.equal(await page().textContent("#tail-state"), "stopped");
  });

  it("charts the metrics of the account, the basin and the stream", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await visit(
      `#/metrics?basin=${basin}&stream=${stream}&range=1h`,
      "#chart-append-throughput canvas",
    );
    for (const id of ["append-throughput", "read-throughput", "append-ops", "stream-storage"]) {
      await page().locator(`#chart-${id} canvas`).first().waitFor();
    }
    await page().locator("#chart-account-ops canvas").first().waitFor();
    // The chart holds what the metrics API answers for the same set (nothing is appended now).
    const end = Math.floor(Date.now() / 1000);
    const response = await rest(
      "GET",
      `/v1/metrics/${basin}?set=append-throughput&start=${end - 3600}&end=${end}&interval=minute`,
    );
    const { values } = (await response.json()) as {
      values: { accumulation: { values: [number, number][] } }[];
    };
    const points = values.flatMap((metric) => metric.accumulation.values);
    const total = points.reduce((sum, [, value]) => sum + value, 0);
    assert.ok(total > 0, "four records were appended");
    const chart = page().locator("#chart-append-throughput");
    assert.equal(Number(await chart.getAttribute("data-total")), total);
    assert.equal(Number(await chart.getAttribute("data-points")), points.length);
    assert.equal(
      Number(await page().locator("#chart-append-ops").getAttribute("data-total")),
      3 + 1, // three appends from the page, one from REST
    );
    assert.ok(Number(await page().locator("#chart-stream-storage").getAttribute("data-total")) > 0);
    assert.match((await page().textContent("#active-basins")) ?? "", new RegExp(basin));
    await saveScreenshot(page(), "4-metrics");
    // "Show" on the same query redraws (the hash does not change, so the page re-routes itself).
    await page().evaluate('document.getElementById("chart-append-throughput").dataset.old = "yes"');
    await page().click("#metrics-show");
    await page().locator("#chart-append-throughput:not([data-old]) canvas").first().waitFor();
  });

  it("issues, lists and revokes an access token", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await visit("#/tokens", "#tokens-table");
    await page().fill("#token-id", tokenId);
    await page().fill('#token-issue-form input[name="basins"]', "console-");
    await page().fill('#token-issue-form input[name="expires_days"]', "7");
    await page().click("#token-issue");
    const row = page().locator(`#tokens-table tr[data-token="${tokenId}"]`);
    await row.waitFor();
    assert.ok(((await page().textContent("#token-secret")) ?? "").length > 20);
    const cells = await row.locator("td").allTextContents();
    assert.equal(cells[0], tokenId);
    assert.equal(cells[2], "console-*");
    assert.equal(cells[5], "basin read, stream read+write");
    await saveScreenshot(page(), "5-tokens");

    await page().click(`#tokens-table button[data-token="${tokenId}"]`);
    await page()
      .locator("#token-result", { hasText: `revoked ${tokenId}` })
      .waitFor();
    await row.waitFor({ state: "detached" });
    const listed = (await (await rest("GET", "/v1/access-tokens")).json()) as {
      access_tokens: { id: string }[];
    };
    assert.deepEqual(
      listed.access_tokens.map(({ id }) => id).filter((id) => id === tokenId),
      [],
    );
  });

  it("deletes the stream and then the basin", async (t) => {
    if (!haveChromiumOrSkip(t)) return;
    await visit(`#/basins/${basin}/streams/${stream}`, "#stream-delete");
    await page().click("#stream-delete");
    await page().locator("#basin-page").waitFor();
    await page()
      .locator("#notice", { hasText: `deleted stream ${stream}` })
      .waitFor();
    await page().locator("#streams-table").waitFor();
    const streamRow = page().locator(`#streams-table tr[data-stream="${stream}"]`);
    // A deleted stream is gone, or listed as deleting until the background removal ends.
    assert.ok(
      (await streamRow.count()) === 0 || /deleting/.test((await streamRow.textContent()) ?? ""),
    );
    const tail = await fetch(`${server.endpoint}/v1/streams/${stream}/records/tail`, {
      headers: { "s2-basin": basin },
    });
    assert.ok(
      tail.status === 404 || tail.status === 409,
      `check tail after delete: ${tail.status}`,
    );

    await page().click("#basin-delete");
    await page().locator("#basins-page").waitFor();
    await page()
      .locator("#notice", { hasText: `deleted basin ${basin}` })
      .waitFor();
    const basinRow = page().locator(`#basins-table tr[data-basin="${basin}"]`);
    assert.ok(
      (await basinRow.count()) === 0 || /deleting/.test((await basinRow.textContent()) ?? ""),
    );
    assert.deepEqual(opened?.problems, []);
  });
});
