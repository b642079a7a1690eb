// Goal: the metrics recorder counts operations, appends and reads as docs/design/metrics.md says
// (append ops per session and minute, unary vs streaming reads, account vs basin ops), queries see
// undurable deltas at once, flushed deltas survive a restart (WAL replay, with and without the
// cache), and query validation answers S2's 422s; and that it stays bounded: entries under
// `metricsEntryBytesMax`, no series for unknown basins, a hard pending cap during an outage.
// Method: a real Service on the memory object store and memory KV, with a settable wall clock;
// restarts open a new Service on the same store; an outage is a store whose PUTs fail.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Clock } from "../core/clock.js";
import { S2Error } from "../core/errors.js";
import { metricsEntryBytesMax, metricsPendingCellsMax } from "../core/limits.js";
import { systemRandom } from "../core/random.js";
import type { AppendRecord } from "../core/records.js";
import type { KvStore } from "../storage/kv/kv-store.js";
import { createMemoryKvStore } from "../storage/kv/memory.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import { listAll, type ObjectStore } from "../storage/object-store/object-store.js";
import { walPrefix } from "../storage/object-keys.js";
import { decodeSegment } from "../storage/segment/format.js";
import { decodeControlOp } from "../storage/wal/entries.js";
import type { Metric } from "./metrics.js";
import { collectUnaryRead } from "./read-session.js";
import { Service } from "./service.js";
import { createSettableClock, type SettableClock } from "../../test/support/clock.js";

const encoder = new TextEncoder();
const t0Sec = 1_800_000_000 - (1_800_000_000 % 3_600); // an hour boundary
const basin = "metrics-unit";

function openService(options: { store: ObjectStore; kv: KvStore; clock: Clock }): Promise<Service> {
  // The recorder's timer is effectively off: tests flush explicitly.
  return Service.open({
    ...options,
    random: systemRandom,
    flushIntervalMs: 1,
    metricsFlushIntervalMs: 60_000,
  });
}

const record = (body: string): AppendRecord => ({ headers: [], body: encoder.encode(body) });
/** Metered size of `record(body)`: 8 bytes of overhead plus the body. */
const meteredOf = (body: string): number => 8 + body.length;

function valuesOf(metrics: Metric[]): Record<string, [number, number][]> {
  const result: Record<string, [number, number][]> = {};
  for (const metric of metrics) {
    assert.ok(metric.kind === "accumulation" || metric.kind === "gauge", metric.kind);
    result[metric.name] = metric.values.map(([t, v]) => [t, v]);
  }
  return result;
}

/** The `metrics.add` entries in the WAL, in order, with their payload sizes. */
async function metricsEntriesIn(
  store: ObjectStore,
): Promise<{ bytes: number; counters: number; gauges: number }[]> {
  const entries: { bytes: number; counters: number; gauges: number }[] = [];
  for (const object of await listAll(store, walPrefix)) {
    const bytes = await store.get(object.key);
    assert.ok(bytes !== undefined);
    for (const entry of decodeSegment(bytes).entries) {
      if (entry.kind !== "control") continue;
      const op = decodeControlOp(entry.payload);
      if (op.op !== "metrics.add") continue;
      const { length } = entry.payload;
      entries.push({ bytes: length, counters: op.counters.length, gauges: op.gauges.length });
    }
  }
  return entries;
}

function isInvalid(message: RegExp): (error: unknown) => true {
  return (error) => {
    assert.ok(error instanceof S2Error);
    assert.equal(error.code, "invalid");
    assert.match(error.message, message);
    return true;
  };
}

function assertInvalid(run: () => unknown, message: RegExp): void {
  assert.throws(run, isInvalid(message));
}

async function assertRejectsInvalid(query: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(query, isInvalid(message));
}

/** Runs `fn` on a fresh in-memory service whose clock starts at `t0Sec`, then closes it. */
async function withFreshService(
  fn: (service: Service, clock: SettableClock) => Promise<void>,
): Promise<void> {
  const clock = createSettableClock(t0Sec * 1000);
  const service = await openService({
    store: createMemoryObjectStore(),
    kv: createMemoryKvStore(),
    clock,
  });
  try {
    await fn(service, clock);
  } finally {
    await service.close();
  }
}

describe("metrics service", () => {
  it("counts append ops per unary append and per session minute, with metered bytes", async () => {
    const clock = createSettableClock(t0Sec * 1000 + 5_000);
    const service = await openService({
      store: createMemoryObjectStore(),
      kv: createMemoryKvStore(),
      clock,
    });
    try {
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "s", config: { storageClass: "standard" } });
      await service.records.append(basin, "s", { records: [record("a")] });
      await service.records.append(basin, "s", { records: [record("bb")] });
      const session = { isPoisoned: false };
      await service.records.append(basin, "s", { records: [record("c")] }, { session });
      await service.records.append(basin, "s", { records: [record("d")] }, { session });
      clock.setNowMs((t0Sec + 60) * 1000);
      await service.records.append(basin, "s", { records: [record("e")] }, { session });
      const range = { start: t0Sec, end: t0Sec + 120 };
      assert.deepEqual(
        valuesOf(await service.metrics.basin(basin, { set: "append-ops", ...range })),
        {
          standard: [
            [t0Sec, 3],
            [t0Sec + 60, 1],
          ],
        },
      );
      const bytes = valuesOf(
        await service.metrics.basin(basin, { set: "append-throughput", ...range }),
      );
      assert.deepEqual(bytes, {
        standard: [
          [t0Sec, meteredOf("a") + meteredOf("bb") + meteredOf("c") + meteredOf("d")],
          [t0Sec + 60, meteredOf("e")],
        ],
      });
      // Hourly, the same ops in one bucket; create-stream is a basin op, create-basin an account op.
      assert.deepEqual(
        valuesOf(
          await service.metrics.basin(basin, { set: "append-ops", ...range, interval: "hour" }),
        ),
        { standard: [[t0Sec, 4]] },
      );
      assert.deepEqual(
        valuesOf(await service.metrics.basin(basin, { set: "basin-ops", ...range })),
        {
          "create-stream": [[t0Sec, 1]],
        },
      );
      const account = valuesOf(service.metrics.account({ set: "account-ops", ...range }));
      assert.deepEqual(account["create-basin"], [[t0Sec, 1]]);
    } finally {
      await service.close();
    }
  });

  it("counts a unary read as one unary op and a session as streaming ops, with read bytes", async () => {
    await withFreshService(async (service) => {
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "s" });
      await service.records.append(basin, "s", { records: [record("xyz"), record("w")] });
      const request = { start: { kind: "seqNum", seqNum: 0 } as const, clamp: false, count: 2 };
      const unary = await service.records.openReadSession(basin, "s", request);
      const read = await collectUnaryRead(unary, () => unary.next());
      assert.equal(read?.records.length, 2);
      const streaming = await service.records.openReadSession(basin, "s", request);
      for await (const event of streaming) assert.equal(event.kind, "batch");
      const range = { start: t0Sec, end: t0Sec + 60 };
      assert.deepEqual(
        valuesOf(await service.metrics.basin(basin, { set: "read-ops", ...range })),
        {
          streaming: [[t0Sec, 1]],
          unary: [[t0Sec, 1]],
        },
      );
      const bytes = 2 * (meteredOf("xyz") + meteredOf("w"));
      assert.deepEqual(
        valuesOf(await service.metrics.basin(basin, { set: "read-throughput", ...range })),
        {
          "read-throughput": [[t0Sec, bytes]],
        },
      );
      const storage = valuesOf(
        await service.metrics.stream(basin, "s", { set: "storage", ...range }),
      );
      assert.deepEqual(storage, { storage: [[t0Sec, meteredOf("xyz") + meteredOf("w")]] });
    });
  });

  it("keeps flushed metrics across restarts, with the cache and without it", async () => {
    const clock = createSettableClock(t0Sec * 1000);
    const store = createMemoryObjectStore();
    const kv = createMemoryKvStore();
    const first = await openService({ store, kv, clock });
    const range = { start: t0Sec, end: t0Sec + 120 };
    const storageRange = { start: t0Sec, end: t0Sec + 180 };
    let before: { ops: Metric[]; storage: Metric[] };
    try {
      await first.basins.create({ name: basin });
      await first.streams.create({ basin, name: "s" });
      await first.records.append(basin, "s", { records: [record("hello")] });
      clock.setNowMs((t0Sec + 120) * 1000);
      await first.metrics.flush();
      // Storage is sampled at flush time (minute t0 + 120); later minutes carry it forward.
      clock.setNowMs((t0Sec + 240) * 1000);
      before = {
        ops: await first.metrics.basin(basin, { set: "append-ops", ...range }),
        storage: await first.metrics.stream(basin, "s", { set: "storage", ...storageRange }),
      };
      assert.deepEqual(valuesOf(before.ops), { express: [[t0Sec, 1]] });
      const bytes = meteredOf("hello");
      assert.deepEqual(valuesOf(before.storage), {
        storage: [
          [t0Sec, 0],
          [t0Sec + 60, 0],
          [t0Sec + 120, bytes],
          [t0Sec + 180, bytes],
        ],
      });
    } finally {
      await first.close();
    }
    for (const restartKv of [kv, createMemoryKvStore()]) {
      const restarted = await openService({ store, kv: restartKv, clock });
      try {
        assert.deepEqual(
          await restarted.metrics.basin(basin, { set: "append-ops", ...range }),
          before.ops,
        );
        assert.deepEqual(
          await restarted.metrics.stream(basin, "s", { set: "storage", ...storageRange }),
          before.storage,
        );
        const active = restarted.metrics.account({ set: "active-basins", ...range });
        assert.deepEqual(active, [{ kind: "label", name: "active-basins", values: [basin] }]);
      } finally {
        await restarted.close();
      }
    }
  });

  it("validates ranges and intervals as S2 does (422 invalid)", async () => {
    await withFreshService(async (service) => {
      const { metrics } = service;
      assertInvalid(() => metrics.account({ set: "account-ops", end: t0Sec }), /start and end/);
      assertInvalid(() => metrics.account({ set: "account-ops", start: t0Sec }), /start and end/);
      assertInvalid(
        () => metrics.account({ set: "account-ops", start: t0Sec, end: t0Sec - 1 }),
        /start must not be after end/,
      );
      assertInvalid(
        () => metrics.account({ set: "active-basins", start: t0Sec - 31 * 86_400, end: t0Sec }),
        /must not exceed/,
      );
      assertInvalid(
        () => metrics.account({ set: "account-ops", start: t0Sec, end: t0Sec + 600 }),
        /future/,
      );
      const range = { start: t0Sec - 3_600, end: t0Sec };
      await assertRejectsInvalid(
        metrics.basin(basin, { set: "storage", ...range, interval: "minute" }),
        /interval/,
      );
      await assertRejectsInvalid(
        metrics.stream(basin, "s", { set: "storage", ...range, interval: "hour" }),
        /interval/,
      );
      await assertRejectsInvalid(metrics.basin("Bad_Name", { set: "storage", ...range }), /basin/);
      // An unknown basin or stream has empty data (S2 does not 404 here); gauges still have points.
      assert.deepEqual(await metrics.basin("no-such-basin", { set: "append-ops", ...range }), []);
      const gauge = await metrics.stream("no-such-basin", "s", { set: "storage", ...range });
      assert.equal(gauge.length, 1);
      assert.equal(gauge[0]!.kind === "gauge" && gauge[0]!.values.length, 61);
      assert.ok(gauge[0]!.kind === "gauge" && gauge[0]!.values.every(([, v]) => v === 0));
    });
  });

  it("splits a flush into entries under metricsEntryBytesMax, and recovers without the cache", async () => {
    const clock = createSettableClock(t0Sec * 1000);
    const store = createMemoryObjectStore();
    const first = await openService({ store, kv: createMemoryKvStore(), clock });
    const streamCount = 1_500;
    // Long names: ~530 JSON bytes per gauge row, ~800 KB of rows due at one flush.
    const nameOf = (i: number): string => `${"s".repeat(500)}-${i}`;
    try {
      await first.basins.create({ name: basin });
      for (let i = 0; i < streamCount; i += 250) {
        const names = Array.from({ length: 250 }, (_, j) => nameOf(i + j));
        await Promise.all(names.map((name) => first.streams.create({ basin, name })));
      }
      await first.records.append(basin, nameOf(7), { records: [record("seven")] });
      clock.setNowMs((t0Sec + 60) * 1000);
      await first.metrics.flush();
    } finally {
      await first.close();
    }
    const entries = await metricsEntriesIn(store);
    for (const { bytes } of entries) assert.ok(bytes <= metricsEntryBytesMax, `${bytes}`);
    const gaugeRows = entries.reduce((sum, entry) => sum + entry.gauges, 0);
    assert.equal(gaugeRows, streamCount + 1); // every stream, and the basin's own series
    assert.ok(entries.length > 2, `${entries.length}`);
    const restarted = await openService({ store, kv: createMemoryKvStore(), clock });
    try {
      const range = { start: t0Sec, end: t0Sec + 60 };
      const bytes = meteredOf("seven");
      assert.deepEqual(
        valuesOf(await restarted.metrics.stream(basin, nameOf(7), { set: "storage", ...range })),
        {
          storage: [
            [t0Sec, 0],
            [t0Sec + 60, bytes],
          ],
        },
      );
      clock.setNowMs((t0Sec + 3_600) * 1000);
      const hours = { start: t0Sec, end: t0Sec + 3_600 };
      assert.deepEqual(
        valuesOf(await restarted.metrics.basin(basin, { set: "storage", ...hours })),
        {
          storage: [
            [t0Sec, 0],
            [t0Sec + 3_600, bytes],
          ],
        },
      );
    } finally {
      await restarted.close();
    }
  });

  it("staggers the hourly re-samples of unchanged streams over the hour", async () => {
    const clock = createSettableClock(t0Sec * 1000);
    const store = createMemoryObjectStore();
    const service = await openService({ store, kv: createMemoryKvStore(), clock });
    const streamCount = 120;
    try {
      await service.basins.create({ name: basin });
      await Promise.all(
        Array.from({ length: streamCount }, (_, i) =>
          service.streams.create({ basin, name: `s${i}` }),
        ),
      );
      await service.metrics.flush(); // the first samples of every stream
      const perFlush: number[] = [];
      for (let minute = 1; minute <= 60; minute++) {
        const before = (await metricsEntriesIn(store)).length;
        clock.setNowMs((t0Sec + minute * 60) * 1000);
        await service.metrics.flush();
        const added = (await metricsEntriesIn(store)).slice(before);
        perFlush.push(added.reduce((sum, entry) => sum + entry.gauges, 0));
      }
      // Within the hour every stream (and the basin) is sampled again, never all at once.
      assert.equal(
        perFlush.reduce((sum, rows) => sum + rows, 0),
        streamCount + 1,
      );
      assert.ok(Math.max(...perFlush) <= streamCount / 4, JSON.stringify(perFlush));
    } finally {
      await service.close();
    }
  });

  it("answers basin storage from the basin's series, also after its streams are gone", async () => {
    const clock = createSettableClock(t0Sec * 1000);
    const store = createMemoryObjectStore();
    const service = await openService({ store, kv: createMemoryKvStore(), clock });
    try {
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "a" });
      await service.streams.create({ basin, name: "b" });
      await service.records.append(basin, "a", { records: [record("aa")] });
      await service.records.append(basin, "b", { records: [record("bbb")] });
      clock.setNowMs((t0Sec + 60) * 1000);
      await service.metrics.flush();
      await service.streams.delete(basin, "a");
      await service.streams.delete(basin, "b");
      clock.setNowMs((t0Sec + 3_600 + 60) * 1000);
      await service.metrics.flush();
      clock.setNowMs((t0Sec + 2 * 3_600) * 1000);
      const range = { start: t0Sec, end: t0Sec + 2 * 3_600 };
      assert.deepEqual(valuesOf(await service.metrics.basin(basin, { set: "storage", ...range })), {
        storage: [
          [t0Sec, 0],
          [t0Sec + 3_600, meteredOf("aa") + meteredOf("bbb")],
          [t0Sec + 2 * 3_600, 0],
        ],
      });
    } finally {
      await service.close();
    }
  });

  it("does not count basin ops on an unknown basin (no series, not in active-basins)", async () => {
    await withFreshService(async (service) => {
      await service.basins.create({ name: basin });
      const phantom = "phantom-basin-zzz";
      assert.throws(() => service.streams.getConfig(phantom, "x"), S2Error);
      service.streams.list(phantom, {}); // lite answers an empty page here
      assert.throws(() => service.streams.getConfig(basin, "x"), S2Error);
      await service.metrics.flush();
      const range = { start: t0Sec, end: t0Sec + 60 };
      const active = service.metrics.account({ set: "active-basins", ...range });
      assert.deepEqual(active, [{ kind: "label", name: "active-basins", values: [basin] }]);
      assert.deepEqual(await service.metrics.basin(phantom, { set: "basin-ops", ...range }), []);
      assert.deepEqual(
        valuesOf(await service.metrics.basin(basin, { set: "basin-ops", ...range })),
        {
          "get-stream-config": [[t0Sec, 1]],
        },
      );
    });
  });

  it("keeps at most metricsPendingCellsMax cells while a flush hangs in an outage", async () => {
    const clock = createSettableClock(t0Sec * 1000);
    const inner = createMemoryObjectStore();
    let isDown = false;
    const store: ObjectStore = {
      get: (key, range) => inner.get(key, range),
      putIfAbsent: (key, bytes) =>
        isDown ? Promise.reject(new Error("injected outage")) : inner.putIfAbsent(key, bytes),
      list: (prefix, options) => inner.list(prefix, options),
      delete: (keys) => inner.delete(keys),
      close: () => inner.close(),
    };
    const service = await openService({ store, kv: createMemoryKvStore(), clock });
    try {
      await service.metrics.flush();
      service.metrics.recordOp("list-basins");
      isDown = true;
      const hung = service.metrics.flush();
      // One new cell per minute: the recorder is full after metricsPendingCellsMax of them.
      const extra = 100;
      for (let i = 1; i <= metricsPendingCellsMax + extra; i++) {
        clock.setNowMs((t0Sec + 60 * i) * 1000);
        service.metrics.recordOp("list-basins");
      }
      assert.equal(service.metrics.droppedDeltaCount, extra);
      // An existing cell still takes deltas.
      clock.setNowMs((t0Sec + 60) * 1000);
      service.metrics.recordOp("list-basins");
      assert.equal(service.metrics.droppedDeltaCount, extra);
      isDown = false;
      await hung;
      await service.metrics.flush();
      const end = t0Sec + 60 * (metricsPendingCellsMax + extra);
      clock.setNowMs(end * 1000);
      const ops = service.metrics.account({
        set: "account-ops",
        start: end - 29 * 86_400,
        end,
        interval: "day",
      });
      const total = ops
        .filter((metric) => metric.name === "list-basins")
        .flatMap((metric) => (metric.kind === "accumulation" ? metric.values : []))
        .reduce((sum, [, value]) => sum + value, 0);
      assert.equal(total, 1 + metricsPendingCellsMax + 1);
    } finally {
      isDown = false; // else the close would wait for the hung flush forever
      await service.close();
    }
  });
});
