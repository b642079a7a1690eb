/**
 * The metrics API's service side (docs/design/metrics.md): the recorder, which counts operations,
 * appends and reads into in-memory minute cells and periodically submits them to the WAL as a
 * `metrics.add` control entry, and the queries, which answer from the durable ledger plus the
 * deltas not yet durable (so a caller sees its own operations at once).
 *
 * Fault model: a crash loses the unflushed deltas (at most one flush interval); a failed flush
 * keeps its deltas (up to `metricsPendingCellsMax`) and retries at the next tick. While a flush
 * hangs (an object-store outage), deltas that need a new cell past the cap are dropped: metrics
 * never hold a request back and never grow without bound.
 */
import type { Clock } from "../core/clock.js";
import { decodeStreamConfig, type StorageClass } from "../core/config.js";
import { invalid } from "../core/errors.js";
import { assert } from "../core/assert.js";
import {
  metricsEndLeewaySecs,
  metricsEntryBytesMax,
  metricsFlushIntervalMs,
  metricsGaugeSampleIntervalSecs,
  metricsPendingCellsMax,
  metricsRangeSecsMax,
} from "../core/limits.js";
import { validateBasinName, validateStreamName } from "../core/names.js";
import { type Operation, operationGroups } from "../core/operations.js";
import { meteredBytes } from "../core/records.js";
import { type DurableState, streamMapKey } from "../storage/durable-state.js";
import {
  basinGaugeStream,
  bucketStartOf,
  type CounterRow,
  gaugeKeyOf,
  type GaugeRow,
  granularitySecs,
  type MetricGranularity,
  seriesKeyOf,
} from "../storage/metrics-ledger.js";
import type { Storage } from "../storage/storage.js";
import type { StreamRecord } from "../storage/wal/entries.js";
import type { ReadEvent } from "./read-session.js";
import { StoredBytes } from "./stored-bytes.js";

export const accountMetricSets = ["active-basins", "account-ops"] as const;
export const basinMetricSets = [
  "storage",
  "append-ops",
  "read-ops",
  "read-throughput",
  "append-throughput",
  "basin-ops",
] as const;
export const streamMetricSets = ["storage"] as const;
export const timeseriesIntervals = ["minute", "hour", "day"] as const;

export type AccountMetricSet = (typeof accountMetricSets)[number];
export type BasinMetricSet = (typeof basinMetricSets)[number];
export type StreamMetricSet = (typeof streamMetricSets)[number];
export type TimeseriesInterval = MetricGranularity;
export type MetricUnit = "bytes" | "operations";

/** A metric as S2 defines it (S2-API.md §4.5 `Metric`); timestamps are epoch seconds. */
export type Metric =
  | { readonly kind: "scalar"; readonly name: string; readonly unit: MetricUnit; value: number }
  | {
      readonly kind: "accumulation";
      readonly name: string;
      readonly unit: MetricUnit;
      readonly interval: TimeseriesInterval;
      readonly values: readonly (readonly [number, number])[];
    }
  | {
      readonly kind: "gauge";
      readonly name: string;
      readonly unit: MetricUnit;
      readonly values: readonly (readonly [number, number])[];
    }
  | { readonly kind: "label"; readonly name: string; readonly values: readonly string[] };

/** A query as the API parsed it: `start`/`end` may be missing (422 here, as S2 does). */
export interface MetricsQuery<Set extends string> {
  readonly set: Set;
  readonly start?: number | undefined;
  readonly end?: number | undefined;
  readonly interval?: TimeseriesInterval | undefined;
}

/** Whether a value names one of `sets`. */
export function isMetricSet<Set extends string>(sets: readonly Set[], value: string): value is Set {
  return (sets as readonly string[]).includes(value);
}

/** The read kinds of `read-ops` (S2: one series for unary reads, one for streaming reads). */
type ReadKind = "unary" | "streaming";

/** Sessions that `collectUnaryRead` drains: their read op is `unary`. */
const unaryReadSessions = new WeakSet<object>();

/** Marks a read session as the body of a unary read (called before its first event is pulled). */
export function noteUnaryReadSession(session: object): void {
  unaryReadSessions.add(session);
}

interface Cell {
  readonly scope: string;
  readonly set: string;
  readonly name: string;
  readonly minuteSec: number;
  value: number;
}

export class MetricsService {
  /** Deltas not yet submitted, by series and minute. */
  private pending = new Map<string, Cell>();
  /** Deltas submitted, not yet durable (queries count them until the ledger has them). */
  private readonly inflight = new Set<readonly Cell[]>();
  /** The minute each append session last counted an op for each stream. */
  private readonly appendSessionMinutes = new WeakMap<object, Map<string, number>>();
  private flushing: Promise<void> | undefined;
  private droppedDeltas = 0;
  private cancelTimer: (() => void) | undefined;
  private isStopped = false;

  /** The `storage` gauge's bytes per stream. */
  private readonly storedBytes: StoredBytes;

  constructor(
    private readonly storage: Storage,
    private readonly clock: Clock,
  ) {
    this.storedBytes = new StoredBytes(storage);
  }

  /** Starts the periodic flush (every `flushIntervalMs`, only when something changed). */
  start(flushIntervalMs: number = metricsFlushIntervalMs): void {
    const tick = (): void => {
      if (this.isStopped) return;
      this.flush()
        .catch(() => {})
        .finally(() => {
          if (!this.isStopped) this.cancelTimer = this.clock.setTimer(flushIntervalMs, tick);
        });
    };
    this.cancelTimer = this.clock.setTimer(flushIntervalMs, tick);
  }

  /**
   * Stops the timer and submits what is pending, synchronously when no flush is in progress, so
   * that a storage close right after flushes it too (shutdown; a failure is a crash's loss).
   */
  async stop(): Promise<void> {
    this.isStopped = true;
    this.cancelTimer?.();
    const previous = this.flushing;
    const last = previous === undefined ? this.flush() : previous.then(() => this.flush());
    await last.catch(() => {});
  }

  /**
   * Counts one request of `op` (account ops toward the account, others toward `basin`). A basin
   * op counts only if the basin exists: a request naming an unknown basin (a 404) must not
   * create a durable series (kept 400 days, listed by `active-basins`).
   */
  recordOp(op: Operation, basin?: string): void {
    const isAccountOp = operationGroups[op].level === "account" || op.endsWith("-metrics");
    if (isAccountOp) {
      this.add("", "account-ops", op, 1);
      return;
    }
    if (basin === undefined || !this.state.basins.has(basin)) return;
    this.add(basin, "basin-ops", op, 1);
  }

  /** Deltas dropped because the recorder was full (`metricsPendingCellsMax`); on /metrics. */
  get droppedDeltaCount(): number {
    return this.droppedDeltas;
  }

  /**
   * Counts an acknowledged append: one op per unary append, one per minute and stream for a
   * session (S2: "one minute of appends to a single stream, using a single TCP connection").
   */
  recordAppend(options: {
    readonly stream: StreamRecord;
    readonly bytes: number;
    readonly session?: object | undefined;
  }): void {
    const { stream, bytes, session } = options;
    const storageClass = storageClassOf(stream);
    const minuteSec = this.nowMinuteSec();
    let isNewOp = true;
    if (session !== undefined) {
      let minutes = this.appendSessionMinutes.get(session);
      if (minutes === undefined) {
        minutes = new Map();
        this.appendSessionMinutes.set(session, minutes);
      }
      isNewOp = minutes.get(stream.name) !== minuteSec;
      minutes.set(stream.name, minuteSec);
    }
    if (isNewOp) this.add(stream.basin, "append-ops", storageClass, 1);
    this.add(stream.basin, "append-throughput", storageClass, bytes);
  }

  /**
   * Wraps a read session so that what it delivers is counted: a `unary` op for a session drained
   * by `collectUnaryRead`, else a `streaming` op when first pulled and one more per later minute
   * with a batch; `read-throughput` adds the metered bytes of every record delivered.
   */
  meterReadSession(
    basin: string,
    session: AsyncGenerator<ReadEvent, void, undefined>,
  ): AsyncGenerator<ReadEvent, void, undefined> {
    let kind: ReadKind | undefined;
    let lastMinuteSec = -1;
    const onPull = (wrapper: object): void => {
      if (kind !== undefined) return;
      kind = unaryReadSessions.has(wrapper) ? "unary" : "streaming";
      lastMinuteSec = this.nowMinuteSec();
      this.add(basin, "read-ops", kind, 1);
    };
    const onEvent = (event: ReadEvent): void => {
      if (event.kind !== "batch" || event.records.length === 0) return;
      let bytes = 0;
      for (const record of event.records) bytes += meteredBytes(record);
      this.add(basin, "read-throughput", "read-throughput", bytes);
      const minuteSec = this.nowMinuteSec();
      if (kind === "streaming" && minuteSec !== lastMinuteSec) {
        lastMinuteSec = minuteSec;
        this.add(basin, "read-ops", "streaming", 1);
      }
    };
    const wrapper: AsyncGenerator<ReadEvent, void, undefined> = {
      next: async (...args: [] | [undefined]) => {
        onPull(wrapper);
        const result = await session.next(...args);
        if (result.done !== true) onEvent(result.value);
        return result;
      },
      return: (value) => session.return(value),
      throw: (error) => session.throw(error),
      [Symbol.asyncIterator]() {
        return wrapper;
      },
    };
    return wrapper;
  }

  /**
   * Submits the pending deltas and the storage samples due as one `metrics.add` entry; resolves
   * once durable. One flush at a time; a failed flush puts its deltas back.
   */
  flush(): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    const flushing = this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    this.flushing = flushing;
    return flushing;
  }

  /** Account metrics (`GET /v1/metrics`). */
  account(query: MetricsQuery<AccountMetricSet>): Metric[] {
    this.recordOp("account-metrics");
    const { start, end, interval } = validateQuery(query, this.nowSec(), {
      defaultInterval: "hour",
      allowed: query.set === "active-basins" ? "any" : timeseriesIntervals,
    });
    switch (query.set) {
      case "active-basins":
        return [{ kind: "label", name: "active-basins", values: this.activeBasins(start, end) }];
      case "account-ops":
        return this.accumulations("", "account-ops", "operations", interval, start, end);
    }
  }

  /** Basin metrics (`GET /v1/metrics/{basin}`); an unknown basin has empty data, as in S2. */
  async basin(basin: string, query: MetricsQuery<BasinMetricSet>): Promise<Metric[]> {
    this.recordOp("basin-metrics");
    validName(validateBasinName(basin));
    const isStorage = query.set === "storage";
    const defaultInterval = isStorage || query.set === "basin-ops" ? "hour" : "minute";
    const { start, end, interval } = validateQuery(query, this.nowSec(), {
      defaultInterval,
      allowed: isStorage ? ["hour"] : timeseriesIntervals,
    });
    switch (query.set) {
      case "storage":
        await this.storedBytes.refresh(this.streamIdsOf(basin));
        return [this.basinStorage(basin, start, end)];
      case "append-ops":
        return this.accumulations(basin, query.set, "operations", interval, start, end);
      case "read-ops":
        return this.accumulations(basin, query.set, "operations", interval, start, end);
      case "basin-ops":
        return this.accumulations(basin, query.set, "operations", interval, start, end);
      case "read-throughput":
        return this.accumulations(basin, query.set, "bytes", interval, start, end);
      case "append-throughput":
        return this.accumulations(basin, query.set, "bytes", interval, start, end);
    }
  }

  /** Stream metrics (`GET /v1/metrics/{basin}/{stream}`). */
  async stream(
    basin: string,
    stream: string,
    query: MetricsQuery<StreamMetricSet>,
  ): Promise<Metric[]> {
    this.recordOp("stream-metrics");
    validName(validateBasinName(basin) ?? validateStreamName(stream));
    const { start, end } = validateQuery(query, this.nowSec(), {
      defaultInterval: "minute",
      allowed: ["minute"],
    });
    const record = this.state.streams.get(streamMapKey(basin, stream));
    if (record !== undefined) await this.storedBytes.refresh([record.streamId]);
    const values = this.gaugePoints(start, end, "minute", (sec, isNow) =>
      isNow ? this.liveStoredBytes(basin, stream) : this.state.metrics.gaugeAt(basin, stream, sec),
    );
    return [{ kind: "gauge", name: "storage", unit: "bytes", values }];
  }

  /** The ids of a basin's streams now. */
  private streamIdsOf(basin: string): number[] {
    const ids: number[] = [];
    for (const record of this.state.streams.values()) {
      if (record.basin === basin) ids.push(record.streamId);
    }
    return ids;
  }

  private get state(): DurableState {
    return this.storage.state;
  }

  private nowSec(): number {
    return Math.floor(this.clock.nowMs() / 1000);
  }

  private nowMinuteSec(): number {
    return bucketStartOf(this.nowSec(), "minute");
  }

  private add(scope: string, set: string, name: string, value: number): void {
    if (value === 0) return;
    const minuteSec = this.nowMinuteSec();
    const key = `${seriesKeyOf(scope, set, name)}\u0000${minuteSec}`;
    const cell = this.pending.get(key);
    if (cell !== undefined) {
      cell.value += value;
      return;
    }
    if (this.pending.size >= metricsPendingCellsMax) {
      // Full while a flush is in flight (or failing): drop rather than grow.
      this.droppedDeltas += 1;
      void this.flush().catch(() => {});
      return;
    }
    this.pending.set(key, { scope, set, name, minuteSec, value });
    if (this.pending.size >= metricsPendingCellsMax) void this.flush().catch(() => {});
  }

  /** Puts a failed flush's cells back, within `metricsPendingCellsMax`. */
  private mergeBack(cells: readonly Cell[]): void {
    for (const cell of cells) {
      const key = `${seriesKeyOf(cell.scope, cell.set, cell.name)}\u0000${cell.minuteSec}`;
      const current = this.pending.get(key);
      if (current !== undefined) current.value += cell.value;
      else if (this.pending.size < metricsPendingCellsMax) this.pending.set(key, { ...cell });
      else this.droppedDeltas += 1;
    }
  }

  private async flushOnce(): Promise<void> {
    const cells = [...this.pending.values()];
    this.pending = new Map();
    const atSec = this.nowSec();
    await this.storedBytes.refresh(this.state.streamsById.keys());
    const gauges = this.dueGaugeSamples(atSec);
    if (cells.length === 0 && gauges.length === 0) return;
    // Several entries of at most `metricsEntryBytesMax` each: one entry per flush could outgrow a
    // segment (every stream can be due at once). Folding them in turn equals folding their union.
    const entries: { cells: readonly Cell[]; gauges: readonly GaugeRow[] }[] = [
      ...chunkByBytes(cells, (cell) => rowBytesOf(counterRowOf(cell))).map((chunk) => ({
        cells: chunk,
        gauges: [],
      })),
      ...chunkByBytes(gauges, rowBytesOf).map((chunk) => ({ cells: [], gauges: chunk })),
    ];
    const results = await Promise.allSettled(
      entries.map(async (entry) => {
        // The flusher folds the entry into the ledger and resolves its submitter in one
        // synchronous step; the cells leave `inflight` in this continuation's microtasks, before
        // any request can run a query, so no query counts them twice (or not at all).
        this.inflight.add(entry.cells);
        try {
          await this.storage.submitControl({
            op: "metrics.add",
            atSec,
            counters: entry.cells.map(counterRowOf),
            gauges: entry.gauges,
          });
        } catch (error) {
          this.mergeBack(entry.cells);
          throw error;
        } finally {
          this.inflight.delete(entry.cells);
        }
      }),
    );
    for (const result of results) if (result.status === "rejected") throw result.reason;
  }

  /**
   * Samples of streams and basins (a basin's is the sum of its streams) whose storage changed,
   * whose phase-shifted hour has no sample yet, or that are gone (a last sample of 0).
   */
  private dueGaugeSamples(atSec: number): GaugeRow[] {
    const minuteSec = bucketStartOf(atSec, "minute");
    const rows: GaugeRow[] = [];
    const live = new Set<string>();
    const basinBytes = new Map<string, number>();
    const sampleIfDue = (basin: string, stream: string, bytes: number): void => {
      const key = gaugeKeyOf(basin, stream);
      live.add(key);
      const last = this.state.metrics.lastGaugeOf(basin, stream);
      const isDue =
        last === undefined ||
        last.bytes !== bytes ||
        hourlySampleOf(key, minuteSec) !== hourlySampleOf(key, last.minuteSec);
      if (isDue) rows.push([basin, stream, minuteSec, bytes]);
    };
    for (const record of this.state.streams.values()) {
      const bytes = this.storedBytes.of(record.streamId);
      basinBytes.set(record.basin, (basinBytes.get(record.basin) ?? 0) + bytes);
      sampleIfDue(record.basin, record.name, bytes);
    }
    for (const [basin, bytes] of basinBytes) sampleIfDue(basin, basinGaugeStream, bytes);
    for (const sampled of this.state.metrics.lastSamples()) {
      if (sampled.bytes === 0 || live.has(gaugeKeyOf(sampled.basin, sampled.stream))) continue;
      rows.push([sampled.basin, sampled.stream, minuteSec, 0]);
    }
    return rows;
  }

  /** Undurable cells (pending and in flight) of a scope and set. */
  private *undurableCells(scope: string, set: string): Generator<Cell> {
    for (const cell of this.pending.values()) {
      if (cell.scope === scope && cell.set === set) yield cell;
    }
    for (const cells of this.inflight) {
      for (const cell of cells) if (cell.scope === scope && cell.set === set) yield cell;
    }
  }

  private accumulations(
    scope: string,
    set: string,
    unit: MetricUnit,
    interval: TimeseriesInterval,
    startSec: number,
    endSec: number,
  ): Metric[] {
    const series = this.state.metrics.accumulations({
      scope,
      set,
      granularity: interval,
      startSec,
      endSec,
    });
    const length = granularitySecs[interval];
    for (const cell of this.undurableCells(scope, set)) {
      const bucket = bucketStartOf(cell.minuteSec, interval);
      if (bucket > endSec || bucket + length <= startSec) continue;
      let buckets = series.get(cell.name);
      if (buckets === undefined) {
        buckets = new Map();
        series.set(cell.name, buckets);
      }
      buckets.set(bucket, (buckets.get(bucket) ?? 0) + cell.value);
    }
    const metrics: Metric[] = [];
    for (const name of [...series.keys()].sort()) {
      const values = [...series.get(name)!.entries()]
        .filter(([, value]) => value !== 0)
        .sort(([a], [b]) => a - b);
      if (values.length > 0) metrics.push({ kind: "accumulation", name, unit, interval, values });
    }
    return metrics;
  }

  /**
   * One point per interval bucket intersecting `[startSec, endSec]` (up to now), at the bucket's
   * start; the point of the current bucket is the live value.
   */
  private gaugePoints(
    startSec: number,
    endSec: number,
    interval: TimeseriesInterval,
    valueAt: (sec: number, isNow: boolean) => number,
  ): [number, number][] {
    const length = granularitySecs[interval];
    const nowSec = this.nowSec();
    const currentBucket = bucketStartOf(nowSec, interval);
    const points: [number, number][] = [];
    const last = Math.min(endSec, nowSec);
    for (let sec = bucketStartOf(startSec, interval); sec <= last; sec += length) {
      points.push([sec, valueAt(sec, sec === currentBucket)]);
    }
    return points;
  }

  /** A basin's storage: its own series (sampled at flush), one lookup per point. */
  private basinStorage(basin: string, startSec: number, endSec: number): Metric {
    const values = this.gaugePoints(startSec, endSec, "hour", (sec, isNow) => {
      if (!isNow) return this.state.metrics.basinGaugeAt(basin, sec);
      let total = 0;
      for (const record of this.state.streams.values()) {
        if (record.basin === basin) total += this.storedBytes.of(record.streamId);
      }
      return total;
    });
    return { kind: "gauge", name: "storage", unit: "bytes", values };
  }

  private liveStoredBytes(basin: string, stream: string): number {
    const record = this.state.streams.get(streamMapKey(basin, stream));
    return record === undefined ? 0 : this.storedBytes.of(record.streamId);
  }

  /**
   * Basins that had a stream in the range (S2 `active-basins`): those with a stream now that was
   * created by `end`, and those with any operation or non-zero storage sample in the range.
   */
  private activeBasins(startSec: number, endSec: number): string[] {
    const basins = this.state.metrics.activeBasins(startSec, endSec);
    for (const record of this.state.streams.values()) {
      if (record.createdAtMs <= endSec * 1000) basins.add(record.basin);
    }
    for (const cells of [this.pending.values(), ...[...this.inflight].map((c) => c.values())]) {
      for (const cell of cells) {
        const inRange = cell.minuteSec <= endSec && cell.minuteSec + 60 > startSec;
        if (inRange && cell.scope !== "") basins.add(cell.scope);
      }
    }
    return [...basins].sort();
  }
}

function counterRowOf(cell: Cell): CounterRow {
  return [cell.scope, cell.set, cell.name, cell.minuteSec, cell.value];
}

const utf8 = new TextEncoder();

/** A row's JSON bytes in a `metrics.add` entry, with its separating comma. */
function rowBytesOf(row: CounterRow | GaugeRow): number {
  return utf8.encode(JSON.stringify(row)).length + 1;
}

/** Room in an entry for the op, `atSec` and the two array brackets. */
const metricsEntryOverheadBytes = 256;

/**
 * Splits rows into chunks whose JSON rows total at most `metricsEntryBytesMax` minus the entry's
 * own overhead, so that every `metrics.add` entry is at most `metricsEntryBytesMax`.
 * @internal
 */
export function chunkByBytes<T>(rows: readonly T[], bytesOf: (row: T) => number): T[][] {
  const budget = metricsEntryBytesMax - metricsEntryOverheadBytes;
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let chunkBytes = 0;
  for (const row of rows) {
    const bytes = bytesOf(row);
    // Names are bounded (basin 48, stream 512 characters, at most 6 JSON bytes each).
    assert(bytes <= budget, `a metrics row fits an entry. bytes=\`${bytes}\``);
    if (chunk.length > 0 && chunkBytes + bytes > budget) {
      chunks.push(chunk);
      chunk = [];
      chunkBytes = 0;
    }
    chunk.push(row);
    chunkBytes += bytes;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Which hourly sample a minute belongs to for a gauge key: hours shifted by a phase hashed from
 * the key (whole minutes), so that the hourly re-samples of many streams spread over the hour
 * instead of all falling due at the same flush.
 */
function hourlySampleOf(key: string, minuteSec: number): number {
  const phaseMinutes = metricsGaugeSampleIntervalSecs / 60;
  const phaseSec = (fnv1a(key) % phaseMinutes) * 60;
  return Math.floor((minuteSec - phaseSec) / metricsGaugeSampleIntervalSecs);
}

/** FNV-1a over UTF-16 code units: a cheap, stable hash (not for security). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function storageClassOf(record: StreamRecord): StorageClass {
  return decodeStreamConfig(record.config).storageClass;
}

function validName(reason: string | undefined): void {
  if (reason !== undefined) throw invalid(reason);
}

/**
 * Validates a query's time range and interval (S2: start and end required, `start <= end`, at
 * most 30 days, `end` not in the future beyond a leeway); returns the range and the effective
 * interval (`active-basins` takes any interval and ignores it).
 */
function validateQuery(
  query: MetricsQuery<string>,
  nowSec: number,
  options: {
    readonly defaultInterval: TimeseriesInterval;
    readonly allowed: readonly TimeseriesInterval[] | "any";
  },
): { start: number; end: number; interval: TimeseriesInterval } {
  const { start, end, interval } = query;
  if (start === undefined || end === undefined) {
    throw invalid(`start and end params required for ${query.set}`);
  }
  if (start > end) throw invalid("start must not be after end");
  if (end - start > metricsRangeSecsMax) {
    throw invalid(`time range must not exceed ${metricsRangeSecsMax} seconds`);
  }
  if (end > nowSec + metricsEndLeewaySecs) throw invalid("end must not be in the future");
  if (interval !== undefined && options.allowed !== "any" && !options.allowed.includes(interval)) {
    throw invalid(`interval \`${interval}\` is not supported for ${query.set}`);
  }
  return { start, end, interval: interval ?? options.defaultInterval };
}
