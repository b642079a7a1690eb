// Goal: the official S2 SDK manages basins and streams against Tributary exactly as against s2-lite
// (S2-API.md §6): create, get, list with pagination, reconfigure, ensure, delete, request-token
// idempotency, 404s and 409s. Method: the real server process, once in memory mode and once on S3
// (moto), driven by `@s2-dev/streamstore` through one scenario; lost responses are simulated by
// wrapping the global fetch the SDK calls.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type S2, S2Error } from "@s2-dev/streamstore";
import {
  type ServerMode,
  type ServerProcess,
  s2ClientFor,
  startServer,
} from "../support/server-process.js";

/** Awaits `promise` and checks that it fails as the server said: HTTP status and S2 code. */
async function expectS2Error(promise: Promise<unknown>, status: number, code: string) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
    assert.equal(error.status, status, error.message);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/** Polls `check` until it returns true (background deletion is asynchronous, §6.5). */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function isGone(promise: Promise<unknown>): Promise<boolean> {
  try {
    await promise;
    return false;
  } catch (error) {
    if (error instanceof S2Error && error.status === 404) return true;
    if (error instanceof S2Error && error.status === 409) return false;
    throw error;
  }
}

/**
 * Runs `body` while the first request matching `method` and `path` gets a 503 after the server
 * has handled it, as if the response were lost: the SDK retries with the same request token.
 * Returns the request tokens the SDK sent.
 */
async function withFirstResponseLost<T>(
  method: string,
  path: string,
  body: () => Promise<T>,
): Promise<{ result: T; tokens: string[] }> {
  const realFetch = globalThis.fetch;
  const tokens: string[] = [];
  let isLost = false;
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const matches = request.method === method && new URL(request.url).pathname === path;
    if (matches) tokens.push(request.headers.get("s2-request-token") ?? "");
    const response = await realFetch(request);
    if (!matches || isLost) return response;
    isLost = true;
    await response.arrayBuffer();
    return new Response(JSON.stringify({ code: "unavailable", message: "lost in transit" }), {
      status: 503,
      headers: { "content-type": "application/json" },
    });
  };
  try {
    return { result: await body(), tokens };
  } finally {
    globalThis.fetch = realFetch;
  }
}

function scenario(mode: ServerMode): void {
  describe(`control plane through the SDK (${mode})`, () => {
    let server: ServerProcess;
    let s2: S2;

    before(async () => {
      server = await startServer({ mode });
      s2 = s2ClientFor(server);
    });

    after(async () => {
      await server?.stop();
      await server?.cleanup();
    });

    it("lists the one location, gets and sets it as the default, and creates a basin in it", async () => {
      const locations = await s2.locations.list();
      assert.deepEqual(locations, [{ name: "local", isPrivate: false }]);
      assert.deepEqual(await s2.locations.getDefault(), locations[0]);
      assert.deepEqual(await s2.locations.setDefault({ location: "local" }), locations[0]);
      await assert.rejects(
        s2.locations.setDefault({ location: "elsewhere" }),
        (error: unknown) => error instanceof S2Error && error.status === 422,
      );
      const info = await s2.basins.create({ basin: "located-sdk-basin", location: "local" });
      assert.equal(info.name, "located-sdk-basin");
      await s2.basins.delete({ basin: "located-sdk-basin" });
    });

    it("creates a basin and reads back its info and config", async () => {
      const beforeMs = Date.now() - 1000;
      const info = await s2.basins.create({
        basin: "orders-basin",
        config: {
          createStreamOnAppend: true,
          defaultStreamConfig: {
            storageClass: "standard",
            retentionPolicy: { ageSecs: 3600 },
          },
        },
      });
      assert.equal(info.name, "orders-basin");
      assert.equal(info.location, null);
      assert.equal(info.deletedAt, null);
      assert.ok(info.createdAt instanceof Date);
      assert.ok(info.createdAt.getTime() >= beforeMs && info.createdAt.getTime() <= Date.now());

      assert.deepEqual(await s2.basins.getConfig({ basin: "orders-basin" }), {
        defaultStreamConfig: {
          storageClass: "standard",
          retentionPolicy: { ageSecs: 3600 },
          timestamping: null,
          deleteOnEmpty: null,
        },
        streamCipher: null,
        createStreamOnAppend: true,
        createStreamOnRead: false,
      });
    });

    it("rejects a second create of a basin and answers 404 for a missing one", async () => {
      await expectS2Error(
        s2.basins.create({ basin: "orders-basin" }),
        409,
        "resource_already_exists",
      );
      await expectS2Error(s2.basins.getConfig({ basin: "missing-basin" }), 404, "basin_not_found");
      await expectS2Error(s2.basins.delete({ basin: "missing-basin" }), 404, "basin_not_found");
      await expectS2Error(
        s2.basins.reconfigure({ basin: "missing-basin", createStreamOnRead: true }),
        404,
        "basin_not_found",
      );
    });

    it("retries a create whose response was lost with the same token: one basin, no 409", async () => {
      const { result, tokens } = await withFirstResponseLost("POST", "/v1/basins", () =>
        s2.basins.create({ basin: "retried-basin", config: { createStreamOnRead: true } }),
      );
      assert.equal(result.name, "retried-basin");
      assert.equal(tokens.length, 2);
      assert.equal(tokens[0], tokens[1]);
      assert.ok(tokens[0] !== undefined && tokens[0].length > 0);
      const listed = await s2.basins.list({ prefix: "retried-" });
      assert.deepEqual(
        listed.basins.map((basin) => basin.name),
        ["retried-basin"],
      );
    });

    it("lists basins by prefix, page by page", async () => {
      const names = [
        "page-basin-1",
        "page-basin-2",
        "page-basin-3",
        "page-basin-4",
        "page-basin-5",
      ];
      await Promise.all(names.map((basin) => s2.basins.create({ basin })));

      const first = await s2.basins.list({ prefix: "page-basin-", limit: 2 });
      assert.deepEqual(
        first.basins.map((basin) => basin.name),
        names.slice(0, 2),
      );
      assert.equal(first.hasMore, true);
      const second = await s2.basins.list({
        prefix: "page-basin-",
        startAfter: "page-basin-2",
        limit: 2,
      });
      assert.deepEqual(
        second.basins.map((basin) => basin.name),
        names.slice(2, 4),
      );
      assert.equal(second.hasMore, true);
      const last = await s2.basins.list({
        prefix: "page-basin-",
        startAfter: "page-basin-4",
        limit: 2,
      });
      assert.deepEqual(
        last.basins.map((basin) => basin.name),
        names.slice(4),
      );
      assert.equal(last.hasMore, false);
      for (const basin of [...first.basins, ...second.basins, ...last.basins]) {
        assert.equal(basin.deletedAt, null);
      }

      const all: string[] = [];
      for await (const basin of s2.basins.listAll({ prefix: "page-basin-", limit: 2 })) {
        all.push(basin.name);
      }
      assert.deepEqual(all, names);
      assert.equal((await s2.basins.list({ prefix: "page-basin-9" })).basins.length, 0);
    });

    it("reconfigures a basin: absent keeps, null clears, nested defaults patch", async () => {
      const patched = await s2.basins.reconfigure({
        basin: "orders-basin",
        createStreamOnRead: true,
        defaultStreamConfig: { timestamping: { mode: "arrival" }, retentionPolicy: null },
      });
      assert.deepEqual(patched, {
        defaultStreamConfig: {
          storageClass: "standard",
          retentionPolicy: null,
          timestamping: { mode: "arrival", uncapped: null },
          deleteOnEmpty: null,
        },
        streamCipher: null,
        createStreamOnAppend: true,
        createStreamOnRead: true,
      });
      assert.deepEqual(await s2.basins.getConfig({ basin: "orders-basin" }), patched);

      const cleared = await s2.basins.reconfigure({
        basin: "orders-basin",
        defaultStreamConfig: null,
      });
      assert.equal(cleared.defaultStreamConfig, null);
      assert.equal(cleared.createStreamOnRead, true);

      // Back to the defaults the stream tests below rely on.
      await s2.basins.reconfigure({
        basin: "orders-basin",
        createStreamOnRead: false,
        defaultStreamConfig: { storageClass: "standard", retentionPolicy: { ageSecs: 3600 } },
      });
    });

    it("ensures basins: created, noop, updated (full replace), never a 409", async () => {
      const created = await s2.basins.ensure({
        basin: "ensured-basin",
        config: { createStreamOnAppend: true },
      });
      assert.equal(created.result, "created");
      assert.equal(created.basin.name, "ensured-basin");

      const noop = await s2.basins.ensure({
        basin: "ensured-basin",
        config: { createStreamOnAppend: true },
      });
      assert.equal(noop.result, "noop");
      assert.equal(noop.basin.createdAt.getTime(), created.basin.createdAt.getTime());

      const updated = await s2.basins.ensure({
        basin: "ensured-basin",
        config: { defaultStreamConfig: { storageClass: "standard" } },
      });
      assert.equal(updated.result, "updated");
      const config = await s2.basins.getConfig({ basin: "ensured-basin" });
      assert.equal(config.createStreamOnAppend, false, "ensure replaces the whole config");
      assert.equal(config.defaultStreamConfig?.storageClass, "standard");

      const reset = await s2.basins.ensure({ basin: "ensured-basin" });
      assert.equal(reset.result, "updated");
      assert.deepEqual(await s2.basins.getConfig({ basin: "ensured-basin" }), {
        defaultStreamConfig: null,
        streamCipher: null,
        createStreamOnAppend: false,
        createStreamOnRead: false,
      });
    });

    it("creates streams with the basin defaults resolved into their config", async () => {
      const basin = s2.basin("orders-basin");
      const info = await basin.streams.create({
        stream: "orders",
        config: { retentionPolicy: { infinite: {} } },
      });
      assert.equal(info.name, "orders");
      assert.equal(info.deletedAt, null);
      assert.equal(info.cipher, null);
      assert.ok(info.createdAt instanceof Date);
      assert.deepEqual(await basin.streams.getConfig({ stream: "orders" }), {
        storageClass: "standard",
        retentionPolicy: { infinite: {} },
        timestamping: { mode: "client-prefer", uncapped: false },
        deleteOnEmpty: { minAgeSecs: 0 },
      });

      await expectS2Error(
        basin.streams.create({ stream: "orders" }),
        409,
        "resource_already_exists",
      );
      await expectS2Error(
        s2.basin("missing-basin").streams.create({ stream: "orders" }),
        404,
        "basin_not_found",
      );
      await expectS2Error(basin.streams.getConfig({ stream: "missing" }), 404, "stream_not_found");
      await expectS2Error(basin.streams.delete({ stream: "missing" }), 404, "stream_not_found");
      await expectS2Error(
        basin.streams.reconfigure({ stream: "missing", storageClass: "express" }),
        404,
        "stream_not_found",
      );
    });

    it("retries a stream create whose response was lost with the same token", async () => {
      const basin = s2.basin("orders-basin");
      const { result, tokens } = await withFirstResponseLost("POST", "/v1/streams", () =>
        basin.streams.create({ stream: "retried", config: { storageClass: "express" } }),
      );
      assert.equal(result.name, "retried");
      assert.equal(tokens.length, 2);
      assert.equal(tokens[0], tokens[1]);
      const config = await basin.streams.getConfig({ stream: "retried" });
      assert.equal(config.storageClass, "express");
    });

    it("handles stream names with slashes, spaces and non-ASCII characters", async () => {
      const basin = s2.basin("orders-basin");
      const names = ["tree/a/1", "tree/a/2", "tree/b c/é", "tree/日本/😀"];
      for (const stream of names) await basin.streams.create({ stream });
      for (const stream of names) {
        assert.equal((await basin.streams.getConfig({ stream })).storageClass, "standard");
      }
      const listed = await basin.streams.list({ prefix: "tree/" });
      assert.deepEqual(
        listed.streams.map((stream) => stream.name),
        names,
      );
      const page = await basin.streams.list({ prefix: "tree/", startAfter: "tree/a/2", limit: 1 });
      assert.deepEqual(
        page.streams.map((stream) => stream.name),
        ["tree/b c/é"],
      );
      assert.equal(page.hasMore, true);
      const all: string[] = [];
      for await (const stream of basin.streams.listAll({ prefix: "tree/", limit: 3 })) {
        all.push(stream.name);
      }
      assert.deepEqual(all, names);
      // Lite lists nothing for an unknown basin (S2-API.md §6.4).
      const none = await s2.basin("missing-basin").streams.list();
      assert.deepEqual(none, { streams: [], hasMore: false });
    });

    it("reconfigures a stream: nested fields patch, null re-resolves against the basin", async () => {
      const basin = s2.basin("orders-basin");
      await basin.streams.reconfigure({ stream: "orders", timestamping: { uncapped: true } });
      const patched = await basin.streams.reconfigure({
        stream: "orders",
        timestamping: { mode: "arrival" },
        deleteOnEmpty: { minAgeSecs: 120 },
      });
      assert.deepEqual(patched, {
        storageClass: "standard",
        retentionPolicy: { infinite: {} },
        timestamping: { mode: "arrival", uncapped: true },
        deleteOnEmpty: { minAgeSecs: 120 },
      });
      const reset = await basin.streams.reconfigure({
        stream: "orders",
        retentionPolicy: null,
        timestamping: null,
        storageClass: "express",
      });
      assert.deepEqual(reset, {
        storageClass: "express",
        retentionPolicy: { ageSecs: 3600 },
        timestamping: { mode: "client-prefer", uncapped: false },
        deleteOnEmpty: { minAgeSecs: 120 },
      });
      assert.deepEqual(await basin.streams.getConfig({ stream: "orders" }), reset);
    });

    it("snapshots basin defaults into streams at creation", async () => {
      const basin = s2.basin("orders-basin");
      await basin.streams.create({ stream: "before-change" });
      await s2.basins.reconfigure({
        basin: "orders-basin",
        defaultStreamConfig: { storageClass: "express" },
      });
      await basin.streams.create({ stream: "after-change" });
      assert.equal(
        (await basin.streams.getConfig({ stream: "before-change" })).storageClass,
        "standard",
      );
      assert.equal(
        (await basin.streams.getConfig({ stream: "after-change" })).storageClass,
        "express",
      );
      await s2.basins.reconfigure({
        basin: "orders-basin",
        defaultStreamConfig: { storageClass: "standard" },
      });
    });

    it("ensures streams: created, noop, updated against the current basin defaults", async () => {
      const basin = s2.basin("orders-basin");
      const created = await basin.streams.ensure({
        stream: "ensured",
        config: { timestamping: { mode: "client-require" } },
      });
      assert.equal(created.result, "created");
      assert.equal(created.stream.name, "ensured");
      const noop = await basin.streams.ensure({
        stream: "ensured",
        config: { timestamping: { mode: "client-require" } },
      });
      assert.equal(noop.result, "noop");
      const updated = await basin.streams.ensure({ stream: "ensured" });
      assert.equal(updated.result, "updated");
      assert.equal(updated.stream.createdAt.getTime(), created.stream.createdAt.getTime());
      assert.deepEqual(await basin.streams.getConfig({ stream: "ensured" }), {
        storageClass: "standard",
        retentionPolicy: { ageSecs: 3600 },
        timestamping: { mode: "client-prefer", uncapped: false },
        deleteOnEmpty: { minAgeSecs: 0 },
      });
      await expectS2Error(
        s2.basin("missing-basin").streams.ensure({ stream: "x" }),
        404,
        "basin_not_found",
      );
    });

    it("deletes a stream, after which its name is free again", async () => {
      const basin = s2.basin("orders-basin");
      await basin.streams.create({ stream: "doomed", config: { storageClass: "express" } });
      await basin.streams.delete({ stream: "doomed" });
      await eventually(() => isGone(basin.streams.getConfig({ stream: "doomed" })), "stream gone");
      await expectS2Error(basin.streams.delete({ stream: "doomed" }), 404, "stream_not_found");
      const again = await basin.streams.create({ stream: "doomed" });
      assert.equal(again.deletedAt, null);
      assert.equal((await basin.streams.getConfig({ stream: "doomed" })).storageClass, "standard");
    });

    it("deletes a basin with its streams, after which the name is free again", async () => {
      await s2.basins.create({ basin: "doomed-basin" });
      const basin = s2.basin("doomed-basin");
      await Promise.all(["a", "b", "c"].map((stream) => basin.streams.create({ stream })));
      await s2.basins.delete({ basin: "doomed-basin" });
      await eventually(() => isGone(s2.basins.getConfig({ basin: "doomed-basin" })), "basin gone");
      assert.equal((await s2.basins.list({ prefix: "doomed-" })).basins.length, 0);
      await s2.basins.create({ basin: "doomed-basin" });
      assert.deepEqual(await basin.streams.list(), { streams: [], hasMore: false });
    });
  });
}

scenario("memory");
scenario("s3");
