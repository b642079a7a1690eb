// Goal: the metrics recorder counts operations, appends and reads as docs/design/metrics.md says
// (append ops per session and minute, unary vs streaming reads, account vs basin ops), queries see
// undurable deltas at once, flushed deltas survive a restart (WAL replay, with and without the
// cache), and query validation answers S2's 422s. Method: a real Service on the memory object
// store and memory KV, with a settable wall clock; restarts open a new Service on the same store.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Clock } from "../core/clock.js";
import { S2Error } from "../core/errors.js";
import { systemRandom } from "../core/random.js";
import type { AppendRecord } from "../core/records.js";
import type { KvStore } from "../storage/kv/kv-store.js";
import { createMemoryKvStore } from "../storage/kv/memory.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import type { ObjectStore } from "../storage/object-store/object-store.js";
import type { Metric } from "./metrics.js";
import { collectUnaryRead } from "./read-session.js";
import { Service } from "./service.js";
import { createSettableClock } from "../../test/support/clock.js";

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

function assertInvalid(run: () => unknown, message: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof S2Error);
    assert.equal(error.code, "invalid");
    assert.match(error.message, message);
    return true;
  });
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
      assert.deepEqual(valuesOf(service.metrics.basin(basin, { set: "append-ops", ...range })), {
        standard: [
          [t0Sec, 3],
          [t0Sec + 60, 1],
        ],
      });
      const bytes = valuesOf(service.metrics.basin(basin, { set: "append-throughput", ...range }));
      assert.deepEqual(bytes, {
        standard: [
          [t0Sec, meteredOf("a") + meteredOf("bb") + meteredOf("c") + meteredOf("d")],
          [t0Sec + 60, meteredOf("e")],
        ],
      });
      // Hourly, the same ops in one bucket; create-stream is a basin op, create-basin an account op.
      assert.deepEqual(
        valuesOf(service.metrics.basin(basin, { set: "append-ops", ...range, interval: "hour" })),
        { standard: [[t0Sec, 4]] },
      );
      assert.deepEqual(valuesOf(service.metrics.basin(basin, { set: "basin-ops", ...range })), {
        "create-stream": [[t0Sec, 1]],
      });
      const account = valuesOf(service.metrics.account({ set: "account-ops", ...range }));
      assert.deepEqual(account["create-basin"], [[t0Sec, 1]]);
    } finally {
      await service.close();
    }
  });

  it("counts a unary read as one unary op and a session as streaming ops, with read bytes", async () => {
    const clock = createSettableClock(t0Sec * 1000);
    const service = await openService({
      store: createMemoryObjectStore(),
      kv: createMemoryKvStore(),
      clock,
    });
    try {
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
      assert.deepEqual(valuesOf(service.metrics.basin(basin, { set: "read-ops", ...range })), {
        streaming: [[t0Sec, 1]],
        unary: [[t0Sec, 1]],
      });
      const bytes = 2 * (meteredOf("xyz") + meteredOf("w"));
      assert.deepEqual(
        valuesOf(service.metrics.basin(basin, { set: "read-throughput", ...range })),
        {
          "read-throughput": [[t0Sec, bytes]],
        },
      );
      const storage = valuesOf(service.metrics.stream(basin, "s", { set: "storage", ...range }));
      assert.deepEqual(storage, { storage: [[t0Sec, meteredOf("xyz") + meteredOf("w")]] });
    } finally {
      await service.close();
    }
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
        ops: first.metrics.basin(basin, { set: "append-ops", ...range }),
        storage: first.metrics.stream(basin, "s", { set: "storage", ...storageRange }),
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
          restarted.metrics.basin(basin, { set: "append-ops", ...range }),
          before.ops,
        );
        assert.deepEqual(
          restarted.metrics.stream(basin, "s", { set: "storage", ...storageRange }),
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
    const clock = createSettableClock(t0Sec * 1000);
    const service = await openService({
      store: createMemoryObjectStore(),
      kv: createMemoryKvStore(),
      clock,
    });
    try {
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
      assertInvalid(
        () => metrics.basin(basin, { set: "storage", ...range, interval: "minute" }),
        /interval/,
      );
      assertInvalid(
        () => metrics.stream(basin, "s", { set: "storage", ...range, interval: "hour" }),
        /interval/,
      );
      assertInvalid(() => metrics.basin("Bad_Name", { set: "storage", ...range }), /basin/);
      // An unknown basin or stream has empty data (S2 does not 404 here); gauges still have points.
      assert.deepEqual(metrics.basin("no-such-basin", { set: "append-ops", ...range }), []);
      const gauge = metrics.stream("no-such-basin", "s", { set: "storage", ...range });
      assert.equal(gauge.length, 1);
      assert.equal(gauge[0]!.kind === "gauge" && gauge[0]!.values.length, 61);
      assert.ok(gauge[0]!.kind === "gauge" && gauge[0]!.values.every(([, v]) => v === 0));
    } finally {
      await service.close();
    }
  });
});
