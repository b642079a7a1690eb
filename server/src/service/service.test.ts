// Goal: the basin, stream and record services follow S2's control-plane semantics (S2-API.md
// §6.2–§6.7): create/ensure/reconfigure/list/delete, config snapshots, auto-create, deletion
// states, and that all of it survives a restart. Method: a real Service on the memory object store
// and memory KV with a 1 ms flush interval; restarts open a new Service on the same object store
// with a fresh KV; background deletions are awaited by polling with a deadline.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Clock } from "../core/clock.js";
import type { BasinConfig, StreamConfig } from "../core/config.js";
import { type ErrorCode, S2Error } from "../core/errors.js";
import { recordBatchBytesMax, recordBatchCountMax } from "../core/limits.js";
import { systemRandom } from "../core/random.js";
import { type AppendRecord, commandHeader, encodeTrimBody } from "../core/records.js";
import type { KvStore } from "../storage/kv/kv-store.js";
import { createMemoryKvStore } from "../storage/kv/memory.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import type { ObjectStore } from "../storage/object-store/object-store.js";
import { Service } from "./service.js";
import { createSettableClock } from "../../test/support/clock.js";

const encoder = new TextEncoder();
const sevenDaysSecs = 7 * 24 * 60 * 60;

/** A wall clock the test sets; timers are real. */

function openService(
  options: { store?: ObjectStore; kv?: KvStore; clock?: Clock } = {},
): Promise<Service> {
  return Service.open({
    store: options.store ?? createMemoryObjectStore(),
    kv: options.kv ?? createMemoryKvStore(),
    clock: options.clock ?? createSettableClock(1_700_000_000_000),
    random: systemRandom,
    flushIntervalMs: 1,
  });
}

/** Opens a service, runs `body`, and closes the service whatever happens. */
async function withService(
  body: (service: Service) => Promise<void>,
  options: { store?: ObjectStore; clock?: Clock } = {},
): Promise<void> {
  const service = await openService(options);
  try {
    await body(service);
  } finally {
    await service.close();
  }
}

function record(body: string): AppendRecord {
  return { headers: [], body: encoder.encode(body) };
}

function records(count: number): AppendRecord[] {
  return Array.from({ length: count }, (_, i) => record(`r${i}`));
}

function readAll(service: Service, basin: string, stream: string, startSeqNum = 0) {
  return service.records.read(basin, stream, {
    startSeqNum,
    countMax: recordBatchCountMax,
    bytesMax: recordBatchBytesMax,
  });
}

function errorOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

function assertS2Error(error: unknown, code: ErrorCode, context = ""): void {
  assert.ok(error instanceof S2Error, `${context} expected an S2Error, got ${String(error)}`);
  assert.equal(error.code, code, `${context} ${error.message}`);
}

/** Asserts that `promise` rejects, or `run` throws, with an S2Error of `code`. */
async function rejectsWithCode(
  promise: Promise<unknown> | (() => unknown),
  code: ErrorCode,
  context = "",
): Promise<void> {
  if (typeof promise === "function") {
    assertS2Error(errorOf(promise), code, context);
    return;
  }
  await assert.rejects(promise, (error: unknown) => {
    assertS2Error(error, code, context);
    return true;
  });
}

/** Polls `condition` until it holds, failing after `timeoutMs`. */
async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 3_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail("condition did not hold in time");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function basinNames(service: Service): string[] {
  return service.basins.list({}).items.map((info) => info.name);
}

function basinExists(service: Service, name: string): boolean {
  return basinNames(service).includes(name);
}

function streamExists(service: Service, basin: string, name: string): boolean {
  return service.streams.list(basin, {}).items.some((info) => info.name === name);
}

function systemDefaults(): StreamConfig {
  return {
    storageClass: "express",
    retentionPolicy: { kind: "age", ageSecs: sevenDaysSecs },
    timestamping: { mode: "client-prefer", uncapped: false },
    deleteOnEmpty: { minAgeSecs: 0 },
  };
}

function basinConfig(overrides: Partial<BasinConfig> = {}): BasinConfig {
  return {
    defaultStreamConfig: null,
    streamCipher: null,
    createStreamOnAppend: false,
    createStreamOnRead: false,
    ...overrides,
  };
}

describe("basins", () => {
  it("creates a basin, and a duplicate create is 409 resource_already_exists", async () => {
    const clock = createSettableClock(5_000);
    await withService(
      async (service) => {
        const created = await service.basins.create({ name: "basin-alpha" });
        assert.deepEqual(created, {
          info: { name: "basin-alpha", createdAtMs: 5_000, deletedAtMs: null },
          result: "created",
        });
        assert.deepEqual(service.basins.getConfig("basin-alpha"), basinConfig());
        await rejectsWithCode(
          service.basins.create({ name: "basin-alpha" }),
          "resource_already_exists",
        );
        await rejectsWithCode(
          service.basins.create({ name: "basin-alpha", requestToken: "t" }),
          "resource_already_exists",
        );
      },
      { clock },
    );
  });

  it("answers noop to a create with the same request token and config, 409 otherwise", async () => {
    const clock = createSettableClock(5_000);
    await withService(
      async (service) => {
        const config = basinConfig({ createStreamOnAppend: true });
        const first = await service.basins.create({
          name: "basin-token",
          config,
          requestToken: "tok-1",
        });
        clock.setNowMs(9_000);
        const retry = await service.basins.create({
          name: "basin-token",
          config,
          requestToken: "tok-1",
        });
        assert.deepEqual(retry, { info: first.info, result: "noop" });
        await rejectsWithCode(
          service.basins.create({
            name: "basin-token",
            config: basinConfig({ createStreamOnRead: true }),
            requestToken: "tok-1",
          }),
          "resource_already_exists",
        );
        await rejectsWithCode(
          service.basins.create({ name: "basin-token", config, requestToken: "tok-2" }),
          "resource_already_exists",
        );
        await rejectsWithCode(
          service.basins.create({ name: "basin-token", config }),
          "resource_already_exists",
        );
        // The idempotency key survives a later ensure (S2-API.md §6.3).
        await service.basins.ensure({ name: "basin-token", config: basinConfig() });
        const afterEnsure = await service.basins.create({
          name: "basin-token",
          config,
          requestToken: "tok-1",
        });
        assert.equal(afterEnsure.result, "noop");
        assert.deepEqual(service.basins.getConfig("basin-token"), basinConfig());
      },
      { clock },
    );
  });

  it("stores configs normalized: empty defaults read back as null", async () => {
    await withService(async (service) => {
      await service.basins.create({
        name: "basin-norm",
        config: basinConfig({ defaultStreamConfig: { timestamping: {} } }),
      });
      assert.equal(service.basins.getConfig("basin-norm").defaultStreamConfig, null);
      await service.basins.create({
        name: "basin-doe",
        config: basinConfig({ defaultStreamConfig: { deleteOnEmpty: { minAgeSecs: 0 } } }),
      });
      assert.deepEqual(service.basins.getConfig("basin-doe").defaultStreamConfig, {
        deleteOnEmpty: { minAgeSecs: 0 },
      });
    });
  });

  it("ensure creates, replaces the whole config, and answers noop when identical", async () => {
    await withService(async (service) => {
      const config = basinConfig({
        createStreamOnRead: true,
        defaultStreamConfig: { storageClass: "standard" },
      });
      const created = await service.basins.ensure({ name: "basin-ensure", config });
      assert.equal(created.result, "created");
      assert.equal((await service.basins.ensure({ name: "basin-ensure", config })).result, "noop");
      assert.deepEqual(service.basins.getConfig("basin-ensure"), config);
      const updated = await service.basins.ensure({ name: "basin-ensure" });
      assert.equal(updated.result, "updated");
      assert.deepEqual(updated.info, created.info);
      assert.deepEqual(service.basins.getConfig("basin-ensure"), basinConfig());
      assert.equal((await service.basins.ensure({ name: "basin-ensure" })).result, "noop");
    });
  });

  it("reconfigure patches the config and affects only streams created afterwards", async () => {
    await withService(async (service) => {
      await service.basins.create({
        name: "basin-patch",
        config: basinConfig({
          createStreamOnAppend: true,
          defaultStreamConfig: { storageClass: "standard", timestamping: { uncapped: true } },
        }),
      });
      await service.streams.create({ basin: "basin-patch", name: "before" });
      const patched = await service.basins.reconfigure("basin-patch", {
        createStreamOnRead: true,
        defaultStreamConfig: {
          timestamping: { mode: "arrival", uncapped: null },
          storageClass: undefined,
        },
      });
      const expected = basinConfig({
        createStreamOnAppend: true,
        createStreamOnRead: true,
        defaultStreamConfig: { storageClass: "standard", timestamping: { mode: "arrival" } },
      });
      assert.deepEqual(patched, expected);
      assert.deepEqual(service.basins.getConfig("basin-patch"), expected);
      await service.streams.create({ basin: "basin-patch", name: "after" });
      assert.deepEqual(service.streams.getConfig("basin-patch", "before"), {
        ...systemDefaults(),
        storageClass: "standard",
        timestamping: { mode: "client-prefer", uncapped: true },
      });
      assert.deepEqual(service.streams.getConfig("basin-patch", "after"), {
        ...systemDefaults(),
        storageClass: "standard",
        timestamping: { mode: "arrival", uncapped: false },
      });
      const cleared = await service.basins.reconfigure("basin-patch", {
        defaultStreamConfig: null,
      });
      assert.equal(cleared.defaultStreamConfig, null);
      assert.equal(cleared.createStreamOnAppend, true);
      await rejectsWithCode(service.basins.reconfigure("basin-missing", {}), "basin_not_found");
      await rejectsWithCode(
        service.basins.reconfigure("basin-patch", {
          defaultStreamConfig: { retentionPolicy: { kind: "age", ageSecs: 0 } },
        }),
        "invalid",
      );
    });
  });

  it("rejects invalid names and configs with invalid, and unknown basins with basin_not_found", async () => {
    await withService(async (service) => {
      for (const name of [
        "short",
        "Upper-case-basin",
        "-leading-dash",
        "trailing-dash-",
        "a".repeat(49),
        "under_score",
      ]) {
        await rejectsWithCode(service.basins.create({ name }), "invalid", name);
        await rejectsWithCode(service.basins.ensure({ name }), "invalid", name);
        await rejectsWithCode(() => service.basins.getConfig(name), "invalid", name);
        await rejectsWithCode(service.basins.reconfigure(name, {}), "invalid", name);
        await rejectsWithCode(service.basins.delete(name), "invalid", name);
      }
      await rejectsWithCode(
        service.basins.create({
          name: "basin-bad-config",
          config: basinConfig({
            defaultStreamConfig: { retentionPolicy: { kind: "age", ageSecs: 0 } },
          }),
        }),
        "invalid",
      );
      assert.deepEqual(basinNames(service), []);
      await rejectsWithCode(() => service.basins.getConfig("basin-missing"), "basin_not_found");
      await rejectsWithCode(service.basins.delete("basin-missing"), "basin_not_found");
      // Boundary names are valid.
      await service.basins.create({ name: "a".repeat(8) });
      await service.basins.create({ name: `0${"-".repeat(46)}9` });
      assert.equal(basinNames(service).length, 2);
    });
  });

  it("lists basins in byte order with prefix, startAfter, limit and hasMore", async () => {
    await withService(async (service) => {
      const names = [
        "basin-c-1",
        "basin-a-1",
        "basin-b-2",
        "basin-b-1",
        "other-basin",
        "basin-b-10",
      ];
      await Promise.all(names.map((name) => service.basins.create({ name })));
      assert.deepEqual(basinNames(service), [
        "basin-a-1",
        "basin-b-1",
        "basin-b-10",
        "basin-b-2",
        "basin-c-1",
        "other-basin",
      ]);
      const page = service.basins.list({ prefix: "basin-b", limit: 2 });
      assert.deepEqual(
        page.items.map((info) => info.name),
        ["basin-b-1", "basin-b-10"],
      );
      assert.equal(page.hasMore, true);
      const rest = service.basins.list({ prefix: "basin-b", startAfter: "basin-b-10", limit: 2 });
      assert.deepEqual(
        rest.items.map((info) => info.name),
        ["basin-b-2"],
      );
      assert.equal(rest.hasMore, false);
      const exact = service.basins.list({ prefix: "basin-", limit: 5 });
      assert.equal(exact.items.length, 5);
      assert.equal(exact.hasMore, false);
      assert.deepEqual(
        service.basins.list({ prefix: "basin-b", startAfter: "a" }).items.map((info) => info.name),
        ["basin-b-1", "basin-b-10", "basin-b-2"],
      );
      assert.deepEqual(service.basins.list({ prefix: "zzz" }), { items: [], hasMore: false });
      assert.equal(service.basins.list({ limit: 0 }).items.length, 6);
    });
  });

  it("deletes a basin in the background: listed as deleting, 409s, then gone and reusable", async () => {
    const clock = createSettableClock(1_000);
    await withService(
      async (service) => {
        await service.basins.create({
          name: "basin-doomed",
          config: basinConfig({ createStreamOnAppend: true }),
        });
        await service.streams.create({ basin: "basin-doomed", name: "s1" });
        await service.records.append("basin-doomed", "s1", { records: records(3) });
        await service.streams.create({ basin: "basin-doomed", name: "s2" });
        clock.setNowMs(2_000);
        await service.basins.delete("basin-doomed");
        // Before the background task runs (it starts on a later turn of the event loop).
        const listed = service.basins.list({}).items.find((info) => info.name === "basin-doomed");
        assert.deepEqual(listed, { name: "basin-doomed", createdAtMs: 1_000, deletedAtMs: 2_000 });
        assert.equal(service.basins.getConfig("basin-doomed").createStreamOnAppend, true);
        const pending = await Promise.allSettled([
          service.basins.delete("basin-doomed"),
          service.basins.create({ name: "basin-doomed" }),
          service.basins.ensure({ name: "basin-doomed" }),
          service.basins.reconfigure("basin-doomed", { createStreamOnRead: true }),
          service.streams.create({ basin: "basin-doomed", name: "s3" }),
          service.streams.ensure({ basin: "basin-doomed", name: "s3" }),
          service.records.append("basin-doomed", "new-stream", { records: records(1) }),
        ]);
        assert.equal(pending[0]!.status, "fulfilled", "a repeated delete succeeds");
        for (const [i, outcome] of pending.slice(1).entries()) {
          assert.equal(outcome.status, "rejected", `operation ${i + 1}`);
          assertS2Error(outcome.reason, "basin_deletion_pending", `operation ${i + 1}`);
        }
        await eventually(() => !basinExists(service, "basin-doomed"));
        await rejectsWithCode(() => service.basins.getConfig("basin-doomed"), "basin_not_found");
        assert.deepEqual(service.streams.list("basin-doomed", {}), { items: [], hasMore: false });
        await rejectsWithCode(service.basins.delete("basin-doomed"), "basin_not_found");
        const recreated = await service.basins.create({ name: "basin-doomed" });
        assert.equal(recreated.result, "created");
        assert.deepEqual(service.streams.list("basin-doomed", {}).items, []);
        await service.streams.create({ basin: "basin-doomed", name: "s1" });
        assert.deepEqual(await service.records.checkTail("basin-doomed", "s1"), {
          seqNum: 0,
          timestamp: 0,
        });
        assert.deepEqual(await readAll(service, "basin-doomed", "s1"), []);
      },
      { clock },
    );
  });
});

describe("streams", () => {
  const basin = "basin-streams";

  it("creates a stream with its config resolved against the basin defaults of that moment", async () => {
    const clock = createSettableClock(3_000);
    await withService(
      async (service) => {
        await service.basins.create({
          name: basin,
          config: basinConfig({
            streamCipher: "aegis-256",
            defaultStreamConfig: {
              retentionPolicy: { kind: "infinite" },
              timestamping: { mode: "arrival" },
            },
          }),
        });
        const created = await service.streams.create({
          basin,
          name: "snap",
          config: { timestamping: { uncapped: true }, deleteOnEmpty: { minAgeSecs: 60 } },
        });
        assert.deepEqual(created, {
          info: { name: "snap", createdAtMs: 3_000, deletedAtMs: null, cipher: "aegis-256" },
          result: "created",
        });
        const expected: StreamConfig = {
          storageClass: "express",
          retentionPolicy: { kind: "infinite" },
          timestamping: { mode: "arrival", uncapped: true },
          deleteOnEmpty: { minAgeSecs: 60 },
        };
        assert.deepEqual(service.streams.getConfig(basin, "snap"), expected);
        await service.basins.reconfigure(basin, {
          defaultStreamConfig: null,
          streamCipher: null,
        });
        // A snapshot: later basin changes do not reach it.
        assert.deepEqual(service.streams.getConfig(basin, "snap"), expected);
        const plain = await service.streams.create({ basin, name: "plain" });
        assert.equal(plain.info.cipher, null);
        assert.deepEqual(service.streams.getConfig(basin, "plain"), systemDefaults());
      },
      { clock },
    );
  });

  it("create is 409 on duplicates, noop with the same token and requested config", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      const config = { storageClass: "standard" as const };
      const first = await service.streams.create({
        basin,
        name: "dup",
        config,
        requestToken: "req",
      });
      await rejectsWithCode(
        service.streams.create({ basin, name: "dup", config }),
        "resource_already_exists",
      );
      await rejectsWithCode(
        service.streams.create({ basin, name: "dup", config: {}, requestToken: "req" }),
        "resource_already_exists",
      );
      // Basin default changes in between do not matter: the requested config is compared.
      await service.basins.reconfigure(basin, { defaultStreamConfig: { storageClass: "express" } });
      const retry = await service.streams.create({
        basin,
        name: "dup",
        config,
        requestToken: "req",
      });
      assert.deepEqual(retry, { info: first.info, result: "noop" });
      await rejectsWithCode(
        service.streams.create({ basin: "basin-missing", name: "x" }),
        "basin_not_found",
      );
    });
  });

  it("ensure creates, replaces the config against current basin defaults, or answers noop", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      const created = await service.streams.ensure({
        basin,
        name: "ens",
        config: { storageClass: "standard" },
      });
      assert.equal(created.result, "created");
      assert.equal(
        (await service.streams.ensure({ basin, name: "ens", config: { storageClass: "standard" } }))
          .result,
        "noop",
      );
      await service.basins.reconfigure(basin, {
        defaultStreamConfig: { timestamping: { mode: "arrival" } },
      });
      const updated = await service.streams.ensure({ basin, name: "ens" });
      assert.equal(updated.result, "updated");
      assert.deepEqual(updated.info, created.info);
      assert.deepEqual(service.streams.getConfig(basin, "ens"), {
        ...systemDefaults(),
        timestamping: { mode: "arrival", uncapped: false },
      });
      assert.equal((await service.streams.ensure({ basin, name: "ens" })).result, "noop");
      await rejectsWithCode(
        service.streams.ensure({ basin: "basin-missing", name: "ens" }),
        "basin_not_found",
      );
    });
  });

  it("reconfigure patches fields; null resets to the current basin default", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      await service.streams.create({
        basin,
        name: "re",
        config: {
          storageClass: "standard",
          timestamping: { mode: "client-require", uncapped: true },
          deleteOnEmpty: { minAgeSecs: 30 },
        },
      });
      const partial = await service.streams.reconfigure(basin, "re", {
        timestamping: { mode: "arrival" },
      });
      assert.deepEqual(partial.timestamping, { mode: "arrival", uncapped: true });
      assert.equal(partial.storageClass, "standard");
      await service.basins.reconfigure(basin, {
        defaultStreamConfig: { storageClass: "express", timestamping: { uncapped: true } },
      });
      const reset = await service.streams.reconfigure(basin, "re", {
        storageClass: null,
        timestamping: null,
        deleteOnEmpty: { minAgeSecs: null },
      });
      const expected: StreamConfig = {
        ...systemDefaults(),
        timestamping: { mode: "client-prefer", uncapped: true },
      };
      assert.deepEqual(reset, expected);
      assert.deepEqual(service.streams.getConfig(basin, "re"), expected);
      await rejectsWithCode(service.streams.reconfigure(basin, "missing", {}), "stream_not_found");
      await rejectsWithCode(
        service.streams.reconfigure("basin-missing", "re", {}),
        "basin_not_found",
      );
      await rejectsWithCode(
        service.streams.reconfigure(basin, "re", { retentionPolicy: { kind: "age", ageSecs: 0 } }),
        "invalid",
      );
    });
  });

  it("getConfig answers stream_not_found for a missing stream, even in a missing basin", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      await rejectsWithCode(() => service.streams.getConfig(basin, "nope"), "stream_not_found");
      await rejectsWithCode(
        () => service.streams.getConfig("basin-missing", "nope"),
        "stream_not_found",
      );
      await rejectsWithCode(service.streams.delete(basin, "nope"), "stream_not_found");
    });
  });

  it("lists streams in byte order with prefix, startAfter, limit and hasMore", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      await service.basins.create({ name: "basin-elsewhere" });
      // UTF-8 order puts U+E000 before U+1F600; UTF-16 order would not.
      const names = ["b", "a/2", "a/10", "a/1", "\u{1F600}", "\uE000", "a", "A"];
      await Promise.all(names.map((name) => service.streams.create({ basin, name })));
      await service.streams.create({ basin: "basin-elsewhere", name: "a/3" });
      const list = (options: Parameters<Service["streams"]["list"]>[1]) =>
        service.streams.list(basin, options).items.map((info) => info.name);
      assert.deepEqual(list({}), ["A", "a", "a/1", "a/10", "a/2", "b", "\uE000", "\u{1F600}"]);
      assert.deepEqual(list({ prefix: "a/" }), ["a/1", "a/10", "a/2"]);
      assert.deepEqual(list({ prefix: "a/", startAfter: "a/1" }), ["a/10", "a/2"]);
      assert.deepEqual(list({ prefix: "a/", startAfter: "A" }), ["a/1", "a/10", "a/2"]);
      assert.deepEqual(list({ startAfter: "b" }), ["\uE000", "\u{1F600}"]);
      const page = service.streams.list(basin, { prefix: "a", limit: 3 });
      assert.equal(page.hasMore, true);
      assert.deepEqual(
        page.items.map((info) => info.name),
        ["a", "a/1", "a/10"],
      );
      const last = service.streams.list(basin, { prefix: "a", startAfter: "a/10", limit: 3 });
      assert.equal(last.hasMore, false);
      assert.deepEqual(
        last.items.map((info) => info.name),
        ["a/2"],
      );
      assert.deepEqual(service.streams.list("basin-missing", {}), { items: [], hasMore: false });
    });
  });

  it("pages through more than 1000 streams; limit 0 or over 1000 means 1000", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      const names = Array.from({ length: 1001 }, (_, i) => `s-${String(i).padStart(4, "0")}`);
      await Promise.all(names.map((name) => service.streams.create({ basin, name })));
      for (const limit of [0, 1001, undefined]) {
        const page = service.streams.list(basin, limit === undefined ? {} : { limit });
        assert.equal(page.items.length, 1000, `limit ${limit}`);
        assert.equal(page.hasMore, true);
      }
      const seen: string[] = [];
      let startAfter = "";
      for (;;) {
        const page = service.streams.list(basin, { startAfter, limit: 300 });
        seen.push(...page.items.map((info) => info.name));
        if (!page.hasMore) break;
        startAfter = page.items.at(-1)!.name;
      }
      assert.deepEqual(seen, names);
    });
  });

  it("rejects invalid stream and basin names with invalid", async () => {
    await withService(async (service) => {
      await service.basins.create({
        name: basin,
        config: basinConfig({ createStreamOnAppend: true, createStreamOnRead: true }),
      });
      for (const name of ["", ".", "..", "x".repeat(513), "é".repeat(257)]) {
        const label = `stream ${JSON.stringify(name.slice(0, 8))}`;
        await rejectsWithCode(service.streams.create({ basin, name }), "invalid", label);
        await rejectsWithCode(service.streams.ensure({ basin, name }), "invalid", label);
        await rejectsWithCode(() => service.streams.getConfig(basin, name), "invalid", label);
        await rejectsWithCode(service.streams.reconfigure(basin, name, {}), "invalid", label);
        await rejectsWithCode(service.streams.delete(basin, name), "invalid", label);
        await rejectsWithCode(
          service.records.append(basin, name, { records: records(1) }),
          "invalid",
          label,
        );
        await rejectsWithCode(readAll(service, basin, name), "invalid", label);
        await rejectsWithCode(service.records.checkTail(basin, name), "invalid", label);
      }
      await rejectsWithCode(
        service.records.append("Bad_Basin", "s", { records: records(1) }),
        "invalid",
      );
      await rejectsWithCode(service.records.checkTail("tiny", "s"), "invalid");
      assert.deepEqual(service.streams.list(basin, {}).items, []);
      // Boundary names are valid: 512 bytes, and dot names other than "." and "..".
      for (const name of ["x".repeat(512), "...", "./x", " "]) {
        await service.streams.create({ basin, name });
      }
      assert.equal(service.streams.list(basin, {}).items.length, 4);
    });
  });
});

describe("stream deletion", () => {
  const basin = "basin-deletion";

  it("is 409 stream_deletion_pending while pending, then 404, and a re-created stream starts at 0", async () => {
    const clock = createSettableClock(10_000);
    await withService(
      async (service) => {
        await service.basins.create({ name: basin });
        await service.streams.create({ basin, name: "gone" });
        await service.records.append(basin, "gone", { records: records(5) });
        clock.setNowMs(11_000);
        await service.streams.delete(basin, "gone");
        // The background removal starts on a later turn of the event loop; until it is durable the
        // stream is listed as deleting.
        assert.deepEqual(
          service.streams.list(basin, {}).items.find((info) => info.name === "gone")?.deletedAtMs,
          11_000,
        );
        const pending = await Promise.allSettled([
          service.records.append(basin, "gone", { records: records(1) }),
          readAll(service, basin, "gone"),
          service.records.checkTail(basin, "gone"),
          Promise.resolve().then(() => service.streams.getConfig(basin, "gone")),
          service.streams.reconfigure(basin, "gone", { storageClass: "standard" }),
          service.streams.create({ basin, name: "gone" }),
          service.streams.ensure({ basin, name: "gone" }),
          service.records.follow(basin, "gone"),
        ]);
        for (const [i, outcome] of pending.entries()) {
          assert.equal(outcome.status, "rejected", `operation ${i}`);
          assertS2Error(outcome.reason, "stream_deletion_pending", `operation ${i}`);
        }
        await service.streams.delete(basin, "gone");
        await eventually(() => !streamExists(service, basin, "gone"));
        await rejectsWithCode(service.records.checkTail(basin, "gone"), "stream_not_found");
        await rejectsWithCode(
          service.records.append(basin, "gone", { records: records(1) }),
          "stream_not_found",
        );
        await rejectsWithCode(readAll(service, basin, "gone"), "stream_not_found");
        await rejectsWithCode(() => service.streams.getConfig(basin, "gone"), "stream_not_found");
        await rejectsWithCode(service.streams.delete(basin, "gone"), "stream_not_found");
        await service.streams.create({ basin, name: "gone" });
        assert.deepEqual(await service.records.checkTail(basin, "gone"), {
          seqNum: 0,
          timestamp: 0,
        });
        assert.deepEqual(await readAll(service, basin, "gone"), []);
        const ack = await service.records.append(basin, "gone", { records: records(2) });
        assert.equal(ack.start.seqNum, 0);
        assert.deepEqual(
          (await readAll(service, basin, "gone")).map((r) => new TextDecoder().decode(r.body)),
          ["r0", "r1"],
        );
      },
      { clock },
    );
  });

  it("appends a terminal trim that a follower sees before it ends with unavailable", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "followed" });
      await service.records.append(basin, "followed", { records: records(2) });
      const { follower } = await service.records.follow(basin, "followed");
      await service.streams.delete(basin, "followed");
      const batch = await follower.next();
      assert.ok(!("end" in batch), "the terminal trim is delivered");
      assert.equal(batch.records.length, 1);
      assert.equal(batch.records[0]!.seqNum, 2);
      assert.deepEqual(batch.records[0]!.headers, [commandHeader("trim")]);
      assert.deepEqual(batch.records[0]!.body, encodeTrimBody(2n ** 64n - 1n));
      const end = await follower.next();
      assert.ok("end" in end);
      assertS2Error(end.end, "unavailable");
    });
  });

  it("acks appends sequenced before the deletion and fails those still waiting for admission", async () => {
    // A tiny admission budget: the first batch is admitted alone and holds it until its cache
    // commit, so the second batch waits behind it, and the terminal trim behind that.
    const service = await Service.open({
      store: createMemoryObjectStore(),
      kv: createMemoryKvStore(),
      clock: createSettableClock(1_700_000_000_000),
      random: systemRandom,
      flushIntervalMs: 1,
      appendInflightBytesMax: 64,
    });
    try {
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "racing" });
      const sequenced = service.records.append(basin, "racing", { records: records(10) });
      const waiting = service.records.append(basin, "racing", { records: records(1) });
      const waitingOutcome = waiting.then(
        () => "acked",
        (error: unknown) => error,
      );
      await new Promise((resolve) => setImmediate(resolve));
      const deletion = service.streams.delete(basin, "racing");
      const ack = await sequenced;
      assert.deepEqual([ack.start.seqNum, ack.end.seqNum], [0, 10]);
      assertS2Error(await waitingOutcome, "stream_deletion_pending");
      await deletion;
      await rejectsWithCode(
        service.records.append(basin, "racing", { records: records(1) }),
        "stream_deletion_pending",
      );
    } finally {
      await service.close();
    }
  });
});

describe("basin deletion racing a stream deletion", () => {
  it("removes the stream only after its terminal trim is durable", async () => {
    // A slow cache holds the first batch's admission bytes, so the stream deletion's terminal trim
    // waits for admission while the basin deletion's background task reaches the same stream.
    const inner = createMemoryKvStore();
    let cacheDelayMs = 0;
    const kv: KvStore = {
      get: (key) => inner.get(key),
      getMany: (keys) => inner.getMany(keys),
      snapshot: () => inner.snapshot(),
      async write(ops, options) {
        if (cacheDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, cacheDelayMs));
        return inner.write(ops, options);
      },
      entries: (range) => inner.entries(range),
      clear: (range) => inner.clear(range),
      close: () => inner.close(),
    };
    const service = await Service.open({
      store: createMemoryObjectStore(),
      kv,
      clock: createSettableClock(1_700_000_000_000),
      random: systemRandom,
      flushIntervalMs: 1,
      appendInflightBytesMax: 64,
    });
    try {
      await service.basins.create({ name: "basin-racing" });
      await service.streams.create({ basin: "basin-racing", name: "s" });
      cacheDelayMs = 20;
      const append = service.records.append("basin-racing", "s", { records: records(10) });
      await new Promise((resolve) => setImmediate(resolve));
      const streamDeletion = service.streams.delete("basin-racing", "s");
      const basinDeletion = service.basins.delete("basin-racing");
      assert.equal((await append).end.seqNum, 10);
      await streamDeletion;
      await basinDeletion;
      await eventually(() => !basinExists(service, "basin-racing"));
      cacheDelayMs = 0;
      await service.basins.create({ name: "basin-racing" });
      await service.streams.create({ basin: "basin-racing", name: "s" });
      assert.deepEqual(await service.records.checkTail("basin-racing", "s"), {
        seqNum: 0,
        timestamp: 0,
      });
    } finally {
      await service.close();
    }
  });
});

describe("auto-create", () => {
  const basin = "basin-auto";

  it("creates the stream with the basin defaults on append when the basin allows it", async () => {
    const clock = createSettableClock(77_000);
    await withService(
      async (service) => {
        await service.basins.create({
          name: basin,
          config: basinConfig({
            createStreamOnAppend: true,
            defaultStreamConfig: { timestamping: { mode: "arrival" } },
          }),
        });
        const ack = await service.records.append(basin, "auto", {
          records: [{ timestamp: 5, headers: [], body: encoder.encode("x") }],
        });
        assert.deepEqual(ack.start, { seqNum: 0, timestamp: 77_000 });
        assert.deepEqual(service.streams.getConfig(basin, "auto").timestamping, {
          mode: "arrival",
          uncapped: false,
        });
        assert.ok(streamExists(service, basin, "auto"));
        // Reads do not auto-create unless createStreamOnRead is set.
        await rejectsWithCode(service.records.checkTail(basin, "unread"), "stream_not_found");
        await rejectsWithCode(readAll(service, basin, "unread"), "stream_not_found");
        assert.ok(!streamExists(service, basin, "unread"));
      },
      { clock },
    );
  });

  it("lets 20 concurrent auto-creating appends to one new stream all succeed with dense seq nums", async () => {
    await withService(async (service) => {
      await service.basins.create({
        name: basin,
        config: basinConfig({ createStreamOnAppend: true }),
      });
      const acks = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          service.records.append(basin, "crowd", { records: records((i % 2) + 1) }),
        ),
      );
      const ranges = acks
        .map((ack) => [ack.start.seqNum, ack.end.seqNum] as const)
        .sort((a, b) => a[0] - b[0]);
      let next = 0;
      for (const [start, end] of ranges) {
        assert.equal(start, next);
        next = end;
      }
      assert.equal(next, 30);
      assert.equal((await readAll(service, basin, "crowd")).length, 30);
      assert.equal(service.streams.list(basin, {}).items.length, 1);
    });
  });

  it("creates the stream on read and check tail when the basin allows it", async () => {
    await withService(async (service) => {
      await service.basins.create({
        name: basin,
        config: basinConfig({ createStreamOnRead: true }),
      });
      assert.deepEqual(await service.records.checkTail(basin, "by-tail"), {
        seqNum: 0,
        timestamp: 0,
      });
      assert.ok(streamExists(service, basin, "by-tail"));
      assert.deepEqual(await readAll(service, basin, "by-read"), []);
      assert.ok(streamExists(service, basin, "by-read"));
      const { tail, follower } = await service.records.follow(basin, "by-follow");
      assert.deepEqual(tail, { seqNum: 0, timestamp: 0 });
      follower.close();
      const concurrent = await Promise.all(
        Array.from({ length: 10 }, () => service.records.checkTail(basin, "by-many")),
      );
      assert.ok(concurrent.every((position) => position.seqNum === 0));
      await rejectsWithCode(
        service.records.append(basin, "by-append", { records: records(1) }),
        "stream_not_found",
      );
    });
  });

  it("is basin_not_found for a missing basin, and stream_not_found without the flag", async () => {
    await withService(async (service) => {
      await service.basins.create({ name: basin });
      await rejectsWithCode(
        service.records.append("basin-missing", "s", { records: records(1) }),
        "basin_not_found",
      );
      await rejectsWithCode(service.records.checkTail("basin-missing", "s"), "basin_not_found");
      await rejectsWithCode(readAll(service, "basin-missing", "s"), "basin_not_found");
      await rejectsWithCode(
        service.records.append(basin, "s", { records: records(1) }),
        "stream_not_found",
      );
      await rejectsWithCode(service.records.checkTail(basin, "s"), "stream_not_found");
      await rejectsWithCode(readAll(service, basin, "s"), "stream_not_found");
      assert.deepEqual(service.streams.list(basin, {}).items, []);
    });
  });

  it("does not auto-create an invalid append's stream", async () => {
    await withService(async (service) => {
      await service.basins.create({
        name: basin,
        config: basinConfig({ createStreamOnAppend: true }),
      });
      await rejectsWithCode(service.records.append(basin, "never", { records: [] }), "invalid");
      // S2 validates the batch before resolving the stream (S2-API.md §5.3 processing order).
      assert.ok(!streamExists(service, basin, "never"));
    });
  });
});

describe("restart", () => {
  it("keeps basins, streams, configs, records and idempotency keys across a reopen", async () => {
    const store = createMemoryObjectStore();
    const clock = createSettableClock(100_000);
    const first = await openService({ store, clock });
    const basinCfg = basinConfig({
      createStreamOnRead: true,
      defaultStreamConfig: { storageClass: "standard" },
    });
    await first.basins.create({ name: "basin-durable", config: basinCfg, requestToken: "b-tok" });
    await first.basins.create({ name: "basin-second" });
    await first.streams.create({ basin: "basin-durable", name: "s", requestToken: "s-tok" });
    await first.streams.create({
      basin: "basin-durable",
      name: "t",
      config: { timestamping: { mode: "arrival" } },
    });
    await first.streams.reconfigure("basin-durable", "t", { deleteOnEmpty: { minAgeSecs: 5 } });
    await first.records.append("basin-durable", "s", { records: records(7) });
    const before = {
      basins: first.basins.list({}),
      streams: first.streams.list("basin-durable", {}),
      configS: first.streams.getConfig("basin-durable", "s"),
      configT: first.streams.getConfig("basin-durable", "t"),
      basinConfig: first.basins.getConfig("basin-durable"),
      records: await readAll(first, "basin-durable", "s"),
      tail: await first.records.checkTail("basin-durable", "s"),
    };
    await first.close();

    clock.setNowMs(200_000);
    const second = await openService({ store, clock });
    try {
      assert.deepEqual(second.basins.list({}), before.basins);
      assert.deepEqual(second.streams.list("basin-durable", {}), before.streams);
      assert.deepEqual(second.streams.getConfig("basin-durable", "s"), before.configS);
      assert.deepEqual(second.streams.getConfig("basin-durable", "t"), before.configT);
      assert.deepEqual(second.basins.getConfig("basin-durable"), before.basinConfig);
      assert.deepEqual(await readAll(second, "basin-durable", "s"), before.records);
      assert.deepEqual(await second.records.checkTail("basin-durable", "s"), before.tail);
      const retryBasin = await second.basins.create({
        name: "basin-durable",
        config: basinCfg,
        requestToken: "b-tok",
      });
      assert.equal(retryBasin.result, "noop");
      const retryStream = await second.streams.create({
        basin: "basin-durable",
        name: "s",
        requestToken: "s-tok",
      });
      assert.equal(retryStream.result, "noop");
      await rejectsWithCode(
        second.basins.create({ name: "basin-second" }),
        "resource_already_exists",
      );
      // New streams get fresh ids: no records of an old stream leak into a new one.
      await second.streams.create({ basin: "basin-durable", name: "u" });
      assert.deepEqual(await readAll(second, "basin-durable", "u"), []);
      await second.records.append("basin-durable", "u", { records: records(1) });
      assert.equal((await readAll(second, "basin-durable", "s")).length, 7);
    } finally {
      await second.close();
    }
  });

  it("resumes pending basin and stream deletions after a reopen", async () => {
    const store = createMemoryObjectStore();
    const first = await openService({ store });
    await first.basins.create({ name: "basin-keep" });
    await first.basins.create({ name: "basin-drop" });
    await first.streams.create({ basin: "basin-drop", name: "inner" });
    await first.records.append("basin-drop", "inner", { records: records(2) });
    await first.streams.create({ basin: "basin-keep", name: "doomed" });
    await first.streams.create({ basin: "basin-keep", name: "kept" });
    await first.records.append("basin-keep", "doomed", { records: records(2) });
    // Both marks become durable in one flush; closing right away, before the background removals
    // get a turn of the event loop, leaves both deletions pending in the WAL.
    await Promise.all([
      first.streams.delete("basin-keep", "doomed"),
      first.basins.delete("basin-drop"),
    ]);
    await first.close();

    const second = await openService({ store });
    try {
      const dropping = second.basins.list({}).items.find((info) => info.name === "basin-drop");
      assert.ok(
        dropping !== undefined && dropping.deletedAtMs !== null,
        "the basin deletion is pending",
      );
      const doomed = second.streams
        .list("basin-keep", {})
        .items.find((info) => info.name === "doomed");
      assert.ok(
        doomed !== undefined && doomed.deletedAtMs !== null,
        "the stream deletion is pending",
      );
      await rejectsWithCode(
        second.records.checkTail("basin-keep", "doomed"),
        "stream_deletion_pending",
      );
      await rejectsWithCode(
        second.streams.create({ basin: "basin-drop", name: "x" }),
        "basin_deletion_pending",
      );
      await eventually(
        () => !basinExists(second, "basin-drop") && !streamExists(second, "basin-keep", "doomed"),
      );
      assert.deepEqual(
        second.streams.list("basin-keep", {}).items.map((info) => info.name),
        ["kept"],
      );
      await second.basins.create({ name: "basin-drop" });
      await second.streams.create({ basin: "basin-drop", name: "inner" });
      assert.deepEqual(await second.records.checkTail("basin-drop", "inner"), {
        seqNum: 0,
        timestamp: 0,
      });
      await second.streams.create({ basin: "basin-keep", name: "doomed" });
      assert.deepEqual(await readAll(second, "basin-keep", "doomed"), []);
    } finally {
      await second.close();
    }
    // And the completed removals are durable too.
    const third = await openService({ store });
    try {
      assert.deepEqual(await third.records.checkTail("basin-drop", "inner"), {
        seqNum: 0,
        timestamp: 0,
      });
      assert.deepEqual(
        third.streams.list("basin-keep", {}).items.map((info) => info.name),
        ["doomed", "kept"],
      );
      assert.deepEqual(await readAll(third, "basin-keep", "doomed"), []);
    } finally {
      await third.close();
    }
  });
});
