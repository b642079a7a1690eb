/**
 * The metrics ledger: the durable part of the metrics API (docs/design/metrics.md). It folds the
 * WAL's `metrics.add` control entries into minute, hour and day buckets of counters
 * (accumulations) and storage samples (gauges), and keeps each stream's appended metered bytes,
 * folded from records entries.
 *
 * Invariants: the ledger is a pure function of the WAL prefix folded so far. A fold depends only
 * on the entry and the ledger before it (retention and the gauge cap are measured from the
 * entry's own `atSec` and the ledger's contents, never the wall clock), so replay, with or
 * without the cache, rebuilds the same ledger. Every change returns the cache ops that mirror it;
 * they are committed with the segment's cache marker. Everything the ledger answers is rebuilt by
 * a cache load: a key's last sample is kept exactly as long as the minute bucket holding it, and
 * the load takes it from the newest minute bucket that holds the key.
 *
 * Fault model: none of its own. A crash loses only the recorder's unflushed deltas, which never
 * reached the WAL.
 */
import { assert } from "../core/assert.js";
import {
  metricsDayRetentionSecs,
  metricsGaugeCellsMax,
  metricsGaugeSampleIntervalSecs,
  metricsHourRetentionSecs,
  metricsMinuteRetentionSecs,
} from "../core/limits.js";
import {
  decodeJsonValue,
  decodeMetricBucketKey,
  decodeMetricGaugeKey,
  decodeStreamBytesKey,
  encodeJsonValue,
  encodeMetricBucketKey,
  encodeMetricGaugeKey,
  encodeStreamBytesKey,
  KeyType,
  keyTypeRange,
  metricsClockKey,
} from "./kv/keys.js";
import type { KvOp, KvStore } from "./kv/kv-store.js";

export type MetricGranularity = "minute" | "hour" | "day";

export const metricGranularities: readonly MetricGranularity[] = ["minute", "hour", "day"];

/** Bucket length in seconds. Day buckets are aligned to UTC midnight (epoch seconds). */
export const granularitySecs: Readonly<Record<MetricGranularity, number>> = {
  minute: 60,
  hour: 3_600,
  day: 86_400,
};

/** The persisted ordinal of a granularity in cache keys; never renumbered. */
export const granularityCode: Readonly<Record<MetricGranularity, number>> = {
  minute: 1,
  hour: 2,
  day: 3,
};

const retentionSecs: Readonly<Record<MetricGranularity, number>> = {
  minute: metricsMinuteRetentionSecs,
  hour: metricsHourRetentionSecs,
  day: metricsDayRetentionSecs,
};

/** Gauges are kept at these granularities (a day of storage is answered from hours). */
export type GaugeGranularity = "minute" | "hour";
const gaugeGranularities: readonly GaugeGranularity[] = ["minute", "hour"];

/**
 * A counter delta: `scope` is "" for the account or the basin name; `set` the metric set (e.g.
 * `append-ops`); `name` the series within the set; `minuteSec` the minute bucket it falls in.
 */
export type CounterRow = readonly [
  scope: string,
  set: string,
  name: string,
  minuteSec: number,
  value: number,
];

/**
 * A storage sample of a stream at `minuteSec` (the flush's minute); `stream` "" is the basin's own
 * series (the sum of its streams, so that a basin query reads one series).
 */
export type GaugeRow = readonly [basin: string, stream: string, minuteSec: number, bytes: number];

/** The gauge row's `stream` of a basin's own storage series (stream names are never empty). */
export const basinGaugeStream = "";

/** The payload of a `metrics.add` control entry. */
export interface MetricsDelta {
  /** When the recorder flushed (epoch seconds): the reference time of retention. */
  readonly atSec: number;
  readonly counters: readonly CounterRow[];
  readonly gauges: readonly GaugeRow[];
}

/** The key of a counter series within a bucket. */
export function seriesKeyOf(scope: string, set: string, name: string): string {
  return `${scope}\u0000${set}\u0000${name}`;
}

/** The key of a stream's gauge within a bucket. */
export function gaugeKeyOf(basin: string, stream: string): string {
  return `${basin}\u0000${stream}`;
}

/** The start of the bucket of `granularity` that holds `sec`. */
export function bucketStartOf(sec: number, granularity: MetricGranularity): number {
  const length = granularitySecs[granularity];
  return Math.floor(sec / length) * length;
}

type Buckets = Map<number, Map<string, number>>;

function bucketsOf(): Record<MetricGranularity, Buckets> {
  return { minute: new Map(), hour: new Map(), day: new Map() };
}

export class MetricsLedger {
  private readonly counters = bucketsOf();
  private readonly gauges: Record<GaugeGranularity, Buckets> = {
    minute: new Map(),
    hour: new Map(),
  };
  /** Gauge cells in `gauges` (both granularities), bounded by `metricsGaugeCellsMax`. */
  private gaugeCells = 0;
  /**
   * The last sample of each gauge key (value and minute bucket), for the recorder's change
   * detection; kept exactly as long as its minute bucket is (so a cache load rebuilds it).
   */
  private readonly lastGauges = new Map<string, { bytes: number; minuteSec: number }>();
  /** Appended metered bytes per stream id, ever (trims do not subtract). */
  private readonly appendedBytes = new Map<number, number>();
  /** The newest `atSec` folded: retention is measured from it. */
  private newestSec = 0;

  /** `gaugeCellsMax` is the memory bound (tests lower it to exercise the cap). */
  constructor(private readonly gaugeCellsMax: number = metricsGaugeCellsMax) {
    assert(gaugeCellsMax > 0, "the gauge cap admits at least one cell");
  }

  /** Appended metered bytes of a stream since it was created. */
  appendedBytesOf(streamId: number): number {
    return this.appendedBytes.get(streamId) ?? 0;
  }

  /** The last storage sample of a stream, if any. */
  lastGaugeOf(basin: string, stream: string): { bytes: number; minuteSec: number } | undefined {
    return this.lastGauges.get(gaugeKeyOf(basin, stream));
  }

  /**
   * Every gauge key with a kept last sample (stream "" for a basin's series), so that the
   * recorder samples 0 once its stream or basin is gone.
   */
  *lastSamples(): Generator<{ basin: string; stream: string; bytes: number; minuteSec: number }> {
    for (const [key, last] of this.lastGauges) {
      const separator = key.indexOf("\u0000");
      yield {
        basin: key.slice(0, separator),
        stream: key.slice(separator + 1),
        bytes: last.bytes,
        minuteSec: last.minuteSec,
      };
    }
  }

  /** Gauge cells held (for the `metricsGaugeCellsMax` bound and tests). */
  get gaugeCellCount(): number {
    return this.gaugeCells;
  }

  /** Folds a records entry's metered bytes into its stream's total. */
  addAppendedBytes(streamId: number, bytes: number, ops: KvOp[]): void {
    assert(bytes >= 0, "metered bytes are non-negative");
    const total = this.appendedBytesOf(streamId) + bytes;
    this.appendedBytes.set(streamId, total);
    ops.push({ type: "put", key: encodeStreamBytesKey(streamId), value: encodeJsonValue(total) });
  }

  /** Forgets a removed stream's byte total (its gauge history stays). */
  removeStream(streamId: number, ops: KvOp[]): void {
    if (!this.appendedBytes.delete(streamId)) return;
    ops.push({ type: "del", key: encodeStreamBytesKey(streamId) });
  }

  /** Folds one `metrics.add` entry: counters into every granularity, gauges, then retention. */
  fold(delta: MetricsDelta, ops: KvOp[]): void {
    this.newestSec = Math.max(this.newestSec, delta.atSec);
    ops.push({ type: "put", key: metricsClockKey, value: encodeJsonValue(this.newestSec) });
    for (const [scope, set, name, minuteSec, value] of delta.counters) {
      const series = seriesKeyOf(scope, set, name);
      for (const granularity of metricGranularities) {
        const bucket = bucketStartOf(minuteSec, granularity);
        const cells = getOrCreate(this.counters[granularity], bucket);
        const total = (cells.get(series) ?? 0) + value;
        cells.set(series, total);
        ops.push({
          type: "put",
          key: encodeMetricBucketKey(granularityCode[granularity], bucket, series),
          value: encodeJsonValue(total),
        });
      }
    }
    for (const [basin, stream, minuteSec, bytes] of delta.gauges) {
      const key = gaugeKeyOf(basin, stream);
      this.noteLastSample(key, bucketStartOf(minuteSec, "minute"), bytes);
      for (const granularity of gaugeGranularities) {
        const bucket = bucketStartOf(minuteSec, granularity);
        this.setGaugeCell(granularity, bucket, key, bytes);
        ops.push({
          type: "put",
          key: encodeMetricGaugeKey(granularityCode[granularity], bucket, key),
          value: encodeJsonValue(bytes),
        });
      }
    }
    this.prune(ops);
  }

  /**
   * A canonical copy of everything the ledger holds, sorted (map order is insertion order, which
   * differs between a replay and a reload): tests compare replay and reload with it.
   * @internal
   */
  dump(): unknown {
    const byKey = <V>(entries: Iterable<[string, V]>): [string, V][] =>
      [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const sorted = (buckets: Buckets): [number, [string, number][]][] =>
      [...buckets].sort(([a], [b]) => a - b).map(([bucket, cells]) => [bucket, byKey(cells)]);
    return {
      newestSec: this.newestSec,
      gaugeCells: this.gaugeCells,
      counters: metricGranularities.map((granularity) => sorted(this.counters[granularity])),
      gauges: gaugeGranularities.map((granularity) => sorted(this.gauges[granularity])),
      lastGauges: byKey(this.lastGauges),
      appendedBytes: [...this.appendedBytes].sort(([a], [b]) => a - b),
    };
  }

  /** Loads a counter cell read from the cache. */
  loadCounter(granularity: MetricGranularity, bucket: number, series: string, value: number): void {
    getOrCreate(this.counters[granularity], bucket).set(series, value);
  }

  /** Loads the newest `atSec` folded (so that retention after a reload matches a replay). */
  loadNewestSec(sec: number): void {
    this.newestSec = Math.max(this.newestSec, sec);
  }

  /** Loads a gauge cell read from the cache. */
  loadGauge(granularity: GaugeGranularity, bucket: number, key: string, bytes: number): void {
    this.setGaugeCell(granularity, bucket, key, bytes);
    if (granularity === "minute") this.noteLastSample(key, bucket, bytes);
  }

  /** Loads a stream's byte total read from the cache. */
  loadAppendedBytes(streamId: number, bytes: number): void {
    this.appendedBytes.set(streamId, bytes);
  }

  /**
   * The series of `set` in `scope` with their non-zero buckets intersecting `[startSec, endSec]`,
   * by name, buckets ascending.
   */
  accumulations(options: {
    readonly scope: string;
    readonly set: string;
    readonly granularity: MetricGranularity;
    readonly startSec: number;
    readonly endSec: number;
  }): Map<string, Map<number, number>> {
    const { scope, set, granularity, startSec, endSec } = options;
    const prefix = seriesKeyOf(scope, set, "");
    const length = granularitySecs[granularity];
    const result = new Map<string, Map<number, number>>();
    for (const [bucket, cells] of this.counters[granularity]) {
      if (bucket > endSec || bucket + length <= startSec) continue;
      for (const [series, value] of cells) {
        if (!series.startsWith(prefix) || value === 0) continue;
        getOrCreate(result, series.slice(prefix.length)).set(bucket, value);
      }
    }
    return result;
  }

  /**
   * The last storage sample of a stream at or before `sec`: minute samples first (every stream is
   * sampled at least hourly while the server runs), then the hour buckets (the last sample of an
   * earlier hour); 0 when there is none within `metricsHourRetentionSecs`' reach.
   */
  gaugeAt(basin: string, stream: string, sec: number): number {
    const key = gaugeKeyOf(basin, stream);
    const minute = bucketStartOf(sec, "minute");
    const minuteLookback = metricsGaugeSampleIntervalSecs / 60 + 1;
    for (let i = 0; i <= minuteLookback; i++) {
      const value = this.gauges.minute.get(minute - i * 60)?.get(key);
      if (value !== undefined) return value;
    }
    const hour = bucketStartOf(sec, "hour");
    for (let i = 1; i <= gaugeHourLookback; i++) {
      const value = this.gauges.hour.get(hour - i * 3_600)?.get(key);
      if (value !== undefined) return value;
    }
    return 0;
  }

  /** The last storage sample of a basin's own series at or before `sec` (see `gaugeAt`). */
  basinGaugeAt(basin: string, sec: number): number {
    return this.gaugeAt(basin, basinGaugeStream, sec);
  }

  /** Basins with a counter or a non-zero storage sample in an hour intersecting the range. */
  activeBasins(startSec: number, endSec: number): Set<string> {
    const basins = new Set<string>();
    const inRange = (bucket: number): boolean => bucket <= endSec && bucket + 3_600 > startSec;
    for (const [bucket, cells] of this.counters.hour) {
      if (!inRange(bucket)) continue;
      for (const [series, value] of cells) {
        const scope = series.slice(0, series.indexOf("\u0000"));
        if (scope !== "" && value !== 0) basins.add(scope);
      }
    }
    for (const [bucket, cells] of this.gauges.hour) {
      if (!inRange(bucket)) continue;
      for (const [key, bytes] of cells) {
        if (bytes !== 0) basins.add(key.slice(0, key.indexOf("\u0000")));
      }
    }
    return basins;
  }

  private setGaugeCell(
    granularity: GaugeGranularity,
    bucket: number,
    key: string,
    bytes: number,
  ): void {
    const cells = getOrCreate(this.gauges[granularity], bucket);
    if (!cells.has(key)) this.gaugeCells += 1;
    cells.set(key, bytes);
  }

  /** Keeps the newest sample of a key (the newest minute bucket holding it). */
  private noteLastSample(key: string, minuteSec: number, bytes: number): void {
    const last = this.lastGauges.get(key);
    if (last === undefined || last.minuteSec <= minuteSec) {
      this.lastGauges.set(key, { bytes, minuteSec });
    }
  }

  /** Drops one gauge bucket, its cache cells, and the last samples that lie in it. */
  private dropGaugeBucket(granularity: GaugeGranularity, bucket: number, ops: KvOp[]): void {
    const cells = this.gauges[granularity].get(bucket);
    assert(cells !== undefined, "a dropped gauge bucket exists");
    const code = granularityCode[granularity];
    for (const key of cells.keys()) {
      ops.push({ type: "del", key: encodeMetricGaugeKey(code, bucket, key) });
      // Buckets go oldest first, so the newest bucket holding a key is its last sample's: once it
      // is gone no minute bucket holds the key, and a cache load would not see it either.
      if (granularity === "minute" && this.lastGauges.get(key)?.minuteSec === bucket) {
        this.lastGauges.delete(key);
      }
    }
    this.gaugeCells -= cells.size;
    assert(this.gaugeCells >= 0, "gauge cell count is non-negative");
    this.gauges[granularity].delete(bucket);
  }

  /** Drops buckets older than their granularity's retention, measured from `newestSec`. */
  private prune(ops: KvOp[]): void {
    for (const granularity of metricGranularities) {
      const oldest = this.newestSec - retentionSecs[granularity];
      const code = granularityCode[granularity];
      for (const [bucket, cells] of this.counters[granularity]) {
        if (bucket >= oldest) continue;
        for (const series of cells.keys()) {
          ops.push({ type: "del", key: encodeMetricBucketKey(code, bucket, series) });
        }
        this.counters[granularity].delete(bucket);
      }
    }
    for (const granularity of gaugeGranularities) {
      const oldest = this.newestSec - retentionSecs[granularity];
      // Oldest first (see `dropGaugeBucket`); the map's order is insertion order, not time.
      const expired = [...this.gauges[granularity].keys()].filter((bucket) => bucket < oldest);
      for (const bucket of expired.sort((a, b) => a - b)) {
        this.dropGaugeBucket(granularity, bucket, ops);
      }
    }
    // The memory bound: the bucket that ends first goes first (old hours before recent minutes),
    // so the newest samples, which the recorder's change detection needs, go last: dropping them
    // would make every stream due again at each flush. A pure function of the ledger, so replay
    // and the cache agree.
    while (this.gaugeCells > this.gaugeCellsMax) {
      const minute = oldestBucketOf(this.gauges.minute);
      const hour = oldestBucketOf(this.gauges.hour);
      const minuteEnd = minute + granularitySecs.minute;
      const hourEnd = hour + granularitySecs.hour;
      if (minuteEnd <= hourEnd) this.dropGaugeBucket("minute", minute, ops);
      else this.dropGaugeBucket("hour", hour, ops);
    }
  }
}

/** How many earlier hours `gaugeAt` looks back (a server down longer reads as 0 storage). */
const gaugeHourLookback = 48;

/** The earliest bucket of a map (its order is insertion order), +∞ when empty. */
function oldestBucketOf(buckets: Buckets): number {
  let oldest = Number.POSITIVE_INFINITY;
  for (const bucket of buckets.keys()) oldest = Math.min(oldest, bucket);
  return oldest;
}

function getOrCreate<K, K2, V>(map: Map<K, Map<K2, V>>, key: K): Map<K2, V> {
  let value = map.get(key);
  if (value === undefined) {
    value = new Map();
    map.set(key, value);
  }
  return value;
}

const granularityByCode = new Map<number, MetricGranularity>(
  metricGranularities.map((granularity) => [granularityCode[granularity], granularity]),
);

/** Loads the ledger's cells from the cache (recovery, with the cache kept). */
export async function loadMetricsLedger(ledger: MetricsLedger, kv: KvStore): Promise<void> {
  const clock = await kv.get(metricsClockKey);
  if (clock !== undefined) ledger.loadNewestSec(decodeJsonValue(clock) as number);
  for await (const [key, value] of kv.entries(keyTypeRange(KeyType.MetricBucket))) {
    const { granularity, bucketSec, name } = decodeMetricBucketKey(key);
    const known = granularityByCode.get(granularity);
    assert(known !== undefined, `unknown metric granularity: ${granularity}`);
    ledger.loadCounter(known, bucketSec, name, decodeJsonValue(value) as number);
  }
  for await (const [key, value] of kv.entries(keyTypeRange(KeyType.MetricGauge))) {
    const { granularity, bucketSec, name } = decodeMetricGaugeKey(key);
    const known = granularityByCode.get(granularity);
    assert(known === "minute" || known === "hour", `unknown gauge granularity: ${granularity}`);
    ledger.loadGauge(known, bucketSec, name, decodeJsonValue(value) as number);
  }
  for await (const [key, value] of kv.entries(keyTypeRange(KeyType.StreamBytes))) {
    ledger.loadAppendedBytes(decodeStreamBytesKey(key), decodeJsonValue(value) as number);
  }
}
