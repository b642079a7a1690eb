// Goal: deletion is asynchronous and sticky as in s2-lite (S2-API.md §6.5, §11.21): 202 on every
// delete while pending, 409 `*_deletion_pending` for changes, listings that show `deleted_at`, and
// a name that is free again once the background removal is done. Method: the real server in memory
// mode with a 1 s group-commit interval, so that each background removal step takes about a
// second and the pending state stays observable; driven by the SDK and raw fetch.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type S2, S2Error } from "@s2-dev/streamstore";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

/**
 * Every background removal step waits for a flush; this keeps the pending state visible (a stream
 * is pending for two flushes) while the test makes its ~7 requests: at 1 s, a loaded CI machine
 * (make test's files side by side on 2 cores) once took 4.2 s for them and saw the name free.
 */
const flushIntervalMs = 3000;

/** How long a removal may take here (a basin's: its streams' flushes, then its own). */
const removalWaitMsMax = 90_000;

let server: ServerProcess;
let s2: S2;

async function call(
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: object } = {},
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${server.endpoint}${path}`, {
    method,
    headers: {
      ...options.headers,
      ...(options.body !== undefined && { "content-type": "application/json" }),
    },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

function assertError(reply: { status: number; body: unknown }, status: number, code: string) {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  assert.equal((reply.body as { code?: unknown }).code, code, JSON.stringify(reply.body));
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + removalWaitMsMax;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  server = await startServer({
    mode: "memory",
    args: ["--flush-interval-ms", String(flushIntervalMs)],
  });
  s2 = s2ClientFor(server);
});

after(async () => {
  await server?.stop();
  await server?.cleanup();
});

describe("deletion pending states", () => {
  it("a deleted stream stays pending, listed with deleted_at, until it is removed", async () => {
    await s2.basins.create({ basin: "deleting-streams" });
    const basin = s2.basin("deleting-streams");
    await Promise.all([
      basin.streams.create({ stream: "doomed", config: { storageClass: "standard" } }),
      basin.streams.create({ stream: "kept" }),
    ]);
    const headers = { "s2-basin": "deleting-streams" };

    const deletedAfterMs = Date.now() - 1000;
    const first = await call("DELETE", "/v1/streams/doomed", { headers });
    assert.equal(first.status, 202);

    // While the removal is in flight (about one flush interval).
    const listed = await basin.streams.list();
    const doomed = listed.streams.find((stream) => stream.name === "doomed");
    assert.ok(doomed?.deletedAt instanceof Date, "a deleting stream is listed with deletedAt");
    assert.ok(doomed.deletedAt.getTime() >= deletedAfterMs);
    assert.equal(listed.streams.find((stream) => stream.name === "kept")?.deletedAt, null);
    const visible: string[] = [];
    for await (const stream of basin.streams.listAll()) visible.push(stream.name);
    assert.deepEqual(visible, ["kept"], "listAll hides deleting streams by default");

    assertError(
      await call("GET", "/v1/streams/doomed", { headers }),
      409,
      "stream_deletion_pending",
    );
    assertError(
      await call("PATCH", "/v1/streams/doomed", { headers, body: { storage_class: "express" } }),
      409,
      "stream_deletion_pending",
    );
    assertError(
      await call("PUT", "/v1/streams/doomed", { headers }),
      409,
      "stream_deletion_pending",
    );
    assertError(
      await call("POST", "/v1/streams", { headers, body: { stream: "doomed" } }),
      409,
      "stream_deletion_pending",
    );
    assert.equal((await call("DELETE", "/v1/streams/doomed", { headers })).status, 202);

    await eventually(
      async () => (await call("GET", "/v1/streams/doomed", { headers })).status === 404,
      "the stream to be removed",
    );
    assertError(await call("DELETE", "/v1/streams/doomed", { headers }), 404, "stream_not_found");
    const again = await basin.streams.create({ stream: "doomed" });
    assert.equal(again.deletedAt, null);
    assert.equal((await basin.streams.getConfig({ stream: "doomed" })).storageClass, "express");
  });

  it("a deleted basin stays pending with its config readable, until it is removed", async () => {
    await s2.basins.create({
      basin: "deleting-basin",
      config: { createStreamOnAppend: true },
    });
    const basin = s2.basin("deleting-basin");
    await Promise.all([
      basin.streams.create({ stream: "one" }),
      basin.streams.create({ stream: "two" }),
    ]);
    const headers = { "s2-basin": "deleting-basin" };

    await s2.basins.delete({ basin: "deleting-basin" });

    // The removal deletes both streams first (two flushes each), then the basin.
    const listed = await call("GET", "/v1/basins?prefix=deleting-basin");
    const [info] = (listed.body as { basins: Record<string, unknown>[] }).basins;
    assert.equal(info?.["name"], "deleting-basin");
    assert.equal(info?.["state"], "deleting");
    assert.equal(typeof info?.["deleted_at"], "string");
    const sdkListed = await s2.basins.list({ prefix: "deleting-basin" });
    assert.ok(sdkListed.basins[0]?.deletedAt instanceof Date);
    const visible: string[] = [];
    for await (const b of s2.basins.listAll({ prefix: "deleting-" })) visible.push(b.name);
    assert.deepEqual(visible, ["deleting-streams"], "listAll hides deleting basins by default");
    const all: string[] = [];
    for await (const b of s2.basins.listAll({ prefix: "deleting-", includeDeleted: true })) {
      all.push(b.name);
    }
    assert.deepEqual(all, ["deleting-basin", "deleting-streams"]);

    // Lite still answers the config of a deleting basin.
    const config = await s2.basins.getConfig({ basin: "deleting-basin" });
    assert.equal(config.createStreamOnAppend, true);

    assertError(
      await call("POST", "/v1/basins", { body: { basin: "deleting-basin" } }),
      409,
      "basin_deletion_pending",
    );
    assertError(await call("PUT", "/v1/basins/deleting-basin"), 409, "basin_deletion_pending");
    assertError(
      await call("PATCH", "/v1/basins/deleting-basin", { body: { create_stream_on_read: true } }),
      409,
      "basin_deletion_pending",
    );
    assertError(
      await call("POST", "/v1/streams", { headers, body: { stream: "three" } }),
      409,
      "basin_deletion_pending",
    );
    assertError(await call("PUT", "/v1/streams/three", { headers }), 409, "basin_deletion_pending");
    await assert.rejects(
      s2.basins.create({ basin: "deleting-basin" }),
      (error: unknown) =>
        error instanceof S2Error && error.status === 409 && error.code === "basin_deletion_pending",
    );
    assert.equal((await call("DELETE", "/v1/basins/deleting-basin")).status, 202);

    await eventually(
      async () => (await call("GET", "/v1/basins/deleting-basin")).status === 404,
      "the basin to be removed",
    );
    assertError(await call("DELETE", "/v1/basins/deleting-basin"), 404, "basin_not_found");
    assert.deepEqual(await basin.streams.list(), { streams: [], hasMore: false });
    const recreated = await s2.basins.create({ basin: "deleting-basin" });
    assert.equal(recreated.deletedAt, null);
    assert.equal(
      (await s2.basins.getConfig({ basin: "deleting-basin" })).createStreamOnAppend,
      false,
    );
  });
});
