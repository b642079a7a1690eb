// Goal: the metrics ledger buckets counters by minute, hour and day, answers gauges as the last
// sample, prunes by retention (from the entries' own time) and by its gauge cap, and is a pure
// function of the WAL: folding the same entries twice, or reloading what its cache ops wrote at
// any point and folding the rest, gives the same ledger, pruned or not. Method: fold hand-made
// `metrics.add` deltas into ledgers, write their cache ops to the memory KV store, load them back
// through `loadMetricsLedger`, and compare whole ledgers (`dump`).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  metricsGaugeSampleIntervalSecs,
  metricsHourRetentionSecs,
  metricsMinuteRetentionSecs,
} from "../core/limits.js";
import {
  decodeMetricBucketKey,
  decodeMetricGaugeKey,
  decodeStreamBytesKey,
  encodeMetricBucketKey,
  encodeMetricGaugeKey,
  encodeStreamBytesKey,
} from "./kv/keys.js";
import type { KvOp } from "./kv/kv-store.js";
import { createMemoryKvStore } from "./kv/memory.js";
import {
  bucketStartOf,
  loadMetricsLedger,
  type MetricsDelta,
  MetricsLedger,
} from "./metrics-ledger.js";

const t0 = 1_800_000_000 - (1_800_000_000 % 86_400); // a UTC midnight

function fold(ledger: MetricsLedger, deltas: readonly MetricsDelta[]): KvOp[] {
  const ops: KvOp[] = [];
  for (const delta of deltas) ledger.fold(delta, ops);
  return ops;
}

const deltas: MetricsDelta[] = [
  {
    atSec: t0 + 70,
    counters: [
      ["basin-a", "append-ops", "express", t0, 2],
      ["basin-a", "append-ops", "express", t0 + 60, 3],
      ["", "account-ops", "list-basins", t0 + 60, 1],
    ],
    gauges: [["basin-a", "s1", t0 + 60, 100]],
  },
  {
    atSec: t0 + 3_700,
    counters: [
      ["basin-a", "append-ops", "express", t0 + 3_660, 4],
      ["basin-a", "append-ops", "standard", t0 + 3_660, 1],
      ["basin-b", "append-ops", "express", t0 + 3_660, 9],
    ],
    gauges: [
      ["basin-a", "s1", t0 + 3_660, 250],
      ["basin-a", "s2", t0 + 3_660, 50],
    ],
  },
];

function appendOps(ledger: MetricsLedger, granularity: "minute" | "hour" | "day", endSec: number) {
  const series = ledger.accumulations({
    scope: "basin-a",
    set: "append-ops",
    granularity,
    startSec: t0,
    endSec,
  });
  return Object.fromEntries([...series].map(([name, buckets]) => [name, [...buckets]]));
}

describe("metrics ledger", () => {
  it("adds each counter to its minute, hour and day bucket", () => {
    const ledger = new MetricsLedger();
    fold(ledger, deltas);
    assert.deepEqual(appendOps(ledger, "minute", t0 + 7_200), {
      express: [
        [t0, 2],
        [t0 + 60, 3],
        [t0 + 3_660, 4],
      ],
      standard: [[t0 + 3_660, 1]],
    });
    assert.deepEqual(appendOps(ledger, "hour", t0 + 7_200), {
      express: [
        [t0, 5],
        [t0 + 3_600, 4],
      ],
      standard: [[t0 + 3_600, 1]],
    });
    assert.deepEqual(appendOps(ledger, "day", t0 + 7_200), {
      express: [[t0, 9]],
      standard: [[t0, 1]],
    });
  });

  it("answers only buckets that intersect the range, and only the scope asked", () => {
    const ledger = new MetricsLedger();
    fold(ledger, deltas);
    const series = ledger.accumulations({
      scope: "basin-a",
      set: "append-ops",
      granularity: "minute",
      startSec: t0 + 61,
      endSec: t0 + 3_600,
    });
    assert.deepEqual([...series.get("express")!], [[t0 + 60, 3]]);
    const account = ledger.accumulations({
      scope: "",
      set: "account-ops",
      granularity: "hour",
      startSec: t0,
      endSec: t0 + 60,
    });
    assert.deepEqual([...account.keys()], ["list-basins"]);
  });

  it("answers a gauge as the last sample at or before the instant", () => {
    const ledger = new MetricsLedger();
    fold(ledger, deltas);
    assert.equal(ledger.gaugeAt("basin-a", "s1", t0 + 59), 0);
    assert.equal(ledger.gaugeAt("basin-a", "s1", t0 + 60), 100);
    assert.equal(ledger.gaugeAt("basin-a", "s1", t0 + 3_659), 100);
    assert.equal(ledger.gaugeAt("basin-a", "s1", t0 + 3_660), 250);
    assert.equal(ledger.gaugeAt("basin-a", "s2", t0 + 3_600), 0);
    assert.deepEqual([...ledger.lastSamples()].map(({ stream, bytes }) => [stream, bytes]).sort(), [
      ["s1", 250],
      ["s2", 50],
    ]);
    assert.deepEqual(ledger.lastGaugeOf("basin-a", "s1"), { bytes: 250, minuteSec: t0 + 3_660 });
    assert.deepEqual([...ledger.activeBasins(t0, t0 + 60)].sort(), ["basin-a"]);
    assert.deepEqual([...ledger.activeBasins(t0 + 3_600, t0 + 3_700)].sort(), [
      "basin-a",
      "basin-b",
    ]);
  });

  it("prunes minute buckets past their retention but keeps the hour and day roll-ups", () => {
    const ledger = new MetricsLedger();
    fold(ledger, deltas);
    const later = t0 + metricsMinuteRetentionSecs + 7_200;
    const ops = fold(ledger, [{ atSec: later, counters: [], gauges: [] }]);
    assert.deepEqual(appendOps(ledger, "minute", t0 + 7_200), {});
    assert.deepEqual(appendOps(ledger, "hour", t0 + 7_200).express, [
      [t0, 5],
      [t0 + 3_600, 4],
    ]);
    const deleted = ops.filter((op) => op.type === "del").map((op) => op.key);
    assert.ok(deleted.some((key) => key[0] === 7 && decodeMetricBucketKey(key).granularity === 1));
    assert.ok(!deleted.some((key) => key[0] === 7 && decodeMetricBucketKey(key).granularity === 2));
    // The hour samples still answer the gauge for a time whose minutes are gone.
    assert.equal(ledger.gaugeAt("basin-a", "s1", t0 + 7_200), 250);
    fold(ledger, [{ atSec: t0 + metricsHourRetentionSecs + 7_200, counters: [], gauges: [] }]);
    assert.deepEqual(appendOps(ledger, "hour", t0 + 7_200), {});
    assert.deepEqual(appendOps(ledger, "day", t0 + 7_200).express, [[t0, 9]]);
  });

  it("is deterministic: the same entries, or the cache it wrote, give the same ledger", async () => {
    const first = new MetricsLedger();
    const second = new MetricsLedger();
    const ops = fold(first, deltas);
    fold(second, deltas);
    const kv = createMemoryKvStore();
    await kv.write(ops);
    first.addAppendedBytes(7, 1_000, []);
    const bytesOps: KvOp[] = [];
    second.addAppendedBytes(7, 400, bytesOps);
    second.addAppendedBytes(7, 600, bytesOps);
    await kv.write(bytesOps);
    const loaded = new MetricsLedger();
    await loadMetricsLedger(loaded, kv);
    assert.deepEqual(second.dump(), first.dump());
    assert.deepEqual(loaded.dump(), first.dump());
    // Retention after a reload measures from the same time as after a replay.
    const late: MetricsDelta = {
      atSec: t0 + metricsMinuteRetentionSecs + 90,
      counters: [],
      gauges: [],
    };
    fold(first, [late]);
    fold(loaded, [late]);
    assert.deepEqual(loaded.dump(), first.dump());
    assert.deepEqual(Object.keys(appendOps(first, "minute", t0 + 7_200)), ["express", "standard"]);
    const removal: KvOp[] = [];
    loaded.removeStream(7, removal);
    assert.equal(loaded.appendedBytesOf(7), 0);
    assert.deepEqual(removal, [{ type: "del", key: encodeStreamBytesKey(7) }]);
  });

  // The review's repro: a stream held 1 GB, was deleted, and days passed. A reload must answer
  // what a replay answers (and what was true: the basin held 1 GB at t0 + 1 h), at every point
  // where the cache could have been written, with minute buckets and last samples pruned.
  it("reloads to the replayed ledger at every entry, across retention and the gauge cap", async () => {
    const hour = metricsGaugeSampleIntervalSecs;
    const history: MetricsDelta[] = [
      {
        atSec: t0 + 60,
        counters: [["basin-a", "basin-ops", "create-stream", t0, 1]],
        gauges: [
          ["basin-a", "big", t0 + 60, 1e9],
          ["basin-a", "", t0 + 60, 1e9],
        ],
      },
      // Deleted: the recorder samples 0 for the stream and its basin.
      {
        atSec: t0 + 2 * hour + 30,
        counters: [["basin-a", "basin-ops", "delete-stream", t0 + 2 * hour, 1]],
        gauges: [
          ["basin-a", "big", t0 + 2 * hour, 0],
          ["basin-a", "", t0 + 2 * hour, 0],
        ],
      },
    ];
    // Three days of hourly samples of another basin's streams (growing), then a late entry.
    for (let i = 3; i <= 72; i++) {
      const sec = t0 + i * hour;
      history.push({
        atSec: sec + 10,
        counters: [["basin-b", "append-ops", "express", sec, i]],
        gauges: [
          ["basin-b", `s${i % 5}`, sec, i * 100],
          ["basin-b", "", sec, i * 500],
        ],
      });
    }
    history.push({ atSec: t0 + metricsHourRetentionSecs + 3 * hour, counters: [], gauges: [] });
    for (const gaugeCellsMax of [Number.POSITIVE_INFINITY, 40]) {
      const replayed = new MetricsLedger(gaugeCellsMax);
      const kv = createMemoryKvStore();
      for (const [index, delta] of history.entries()) {
        await kv.write(fold(replayed, [delta]));
        assert.ok(replayed.gaugeCellCount <= gaugeCellsMax);
        // Recovery with the cache written here: load it, then replay the rest of the WAL.
        if (index % 7 !== 0 && index !== history.length - 2) continue;
        const loaded = new MetricsLedger(gaugeCellsMax);
        await loadMetricsLedger(loaded, kv);
        assert.deepEqual(loaded.dump(), replayed.dump(), `reload after entry ${index}`);
        const rest = history.slice(index + 1);
        const resumed = new MetricsLedger(gaugeCellsMax);
        await loadMetricsLedger(resumed, kv);
        fold(resumed, rest);
        const full = new MetricsLedger(gaugeCellsMax);
        fold(full, history);
        assert.deepEqual(resumed.dump(), full.dump(), `reload after entry ${index}, then replay`);
      }
      if (gaugeCellsMax === Number.POSITIVE_INFINITY) {
        // Before the last entry: three days on, the minute samples of the deleted stream are gone,
        // its hour sample is not, and the basin's own series still answers 1 GB at t0 + 1 h.
        const atThreeDays = new MetricsLedger();
        fold(atThreeDays, history.slice(0, -1));
        assert.equal(atThreeDays.lastGaugeOf("basin-a", "big"), undefined);
        assert.equal(atThreeDays.basinGaugeAt("basin-a", t0 + hour), 1e9);
        assert.equal(atThreeDays.basinGaugeAt("basin-a", t0 + 3 * hour), 0);
        assert.equal(atThreeDays.basinGaugeAt("basin-b", t0 + 72 * hour), 72 * 500);
      } else {
        // The cap pruned the buckets that end first: the newest samples (and the last samples the
        // recorder compares with) are kept; the oldest history is gone.
        const capped = new MetricsLedger(gaugeCellsMax);
        fold(capped, history.slice(0, -1));
        assert.ok(capped.gaugeCellCount <= gaugeCellsMax);
        assert.equal(capped.basinGaugeAt("basin-b", t0 + 72 * hour), 72 * 500);
        assert.equal(capped.basinGaugeAt("basin-b", t0 + 73 * hour), 72 * 500);
        assert.deepEqual(capped.lastGaugeOf("basin-b", ""), {
          bytes: 72 * 500,
          minuteSec: t0 + 72 * hour,
        });
        assert.equal(capped.basinGaugeAt("basin-a", t0 + hour), 0);
      }
    }
  });

  it("encodes metric keys that decode back, ordered by granularity then time", () => {
    const key = encodeMetricBucketKey(2, t0 + 3_600, "basin-a\u0000append-ops\u0000express");
    assert.deepEqual(decodeMetricBucketKey(key), {
      granularity: 2,
      bucketSec: t0 + 3_600,
      name: "basin-a\u0000append-ops\u0000express",
    });
    const gauge = encodeMetricGaugeKey(1, t0, "basin-a\u0000s/1");
    assert.deepEqual(decodeMetricGaugeKey(gauge), {
      granularity: 1,
      bucketSec: t0,
      name: "basin-a\u0000s/1",
    });
    assert.equal(decodeStreamBytesKey(encodeStreamBytesKey(2 ** 40 + 3)), 2 ** 40 + 3);
    const earlier = encodeMetricBucketKey(1, t0, "z");
    const later = encodeMetricBucketKey(1, t0 + 60, "a");
    assert.ok(Buffer.compare(Buffer.from(earlier), Buffer.from(later)) < 0);
    assert.throws(() => decodeMetricBucketKey(gauge));
  });

  it("aligns buckets to the minute, the hour and the UTC day", () => {
    assert.equal(bucketStartOf(t0 + 3_725, "minute"), t0 + 3_720);
    assert.equal(bucketStartOf(t0 + 3_725, "hour"), t0 + 3_600);
    assert.equal(bucketStartOf(t0 + 3_725, "day"), t0);
  });
});
