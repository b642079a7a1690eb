import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { appendInflightBytesMax, walPutsInFlightMax } from "../server/src/core/limits.js";
import type { AppendInput } from "../server/src/core/records.js";
import type { StorageStats } from "../server/src/storage/storage.js";
import { testBasin } from "../server/test/support/engine.js";
import {
  appendInputs,
  type CacheKind,
  type Engine,
  fmt,
  kib,
  mean,
  mib,
  openEngine,
  percentile,
  type PutTiming,
  randomBodies,
  readThreadCpu,
  runPaced,
  sleep,
  sortedCopy,
  type StoreKind,
  table,
  type ThreadCpu,
  threadCpuDelta,
  WindowProfiler,
  attempt,
  printSummary,
  runBenchMain,
  type Verdict,
  machineLine,
  printLoadBeforeStart,
  recordBytes,
  latencyRecordsPerSec,
  s3LatencyMs,
} from "./support.js";

const parts = ["latency", "throughput", "stall", "s3-latency"] as const;
type Part = (typeof parts)[number];
const latencyStores: readonly StoreKind[] = ["memory", "local-fs", "moto"];

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message: string): never {
  console.error(`engine-bench: ${message}`);
  console.error(
    "flags: --only latency,throughput,stall --seconds N --warmup N --stall-seconds N " +
      "--stores memory,local-fs,moto --batch N --concurrency N --flush 5,50 --streams 1,1000 " +
      "--no-extra --cpu-profile DIR",
  );
  process.exit(2);
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) usage(`--${name} must be a positive number`);
  return value;
}

function listFlag<T extends string>(name: string, raw: string[] | undefined, all: readonly T[]) {
  if (raw === undefined) return new Set(all);
  const chosen = raw.flatMap((value) => value.split(",")).filter((value) => value !== "");
  for (const value of chosen) {
    if (!all.includes(value as T)) usage(`--${name}: unknown value ${value}`);
  }
  return new Set(chosen as T[]);
}

function parseCli() {
  let values: ReturnType<typeof parse>["values"];
  function parse() {
    return parseArgs({
      options: {
        only: { type: "string", multiple: true },
        seconds: { type: "string" },
        warmup: { type: "string" },
        "stall-seconds": { type: "string" },
        stores: { type: "string", multiple: true },
        batch: { type: "string" },
        concurrency: { type: "string" },
        flush: { type: "string", multiple: true },
        streams: { type: "string", multiple: true },
        "cpu-profile": { type: "string" },
        "no-extra": { type: "boolean" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    });
  }
  try {
    values = parse().values;
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) usage("help");
  const batch = Math.round(positive("batch", values.batch, 100));
  if (batch * (recordBytes + 8) > mib || batch > 1000) usage("--batch: at most 127 records");
  return {
    parts: listFlag<Part>("only", values.only, parts),
    stores: listFlag<StoreKind>("stores", values.stores, latencyStores),
    seconds: positive("seconds", values.seconds, 5),
    warmupSeconds: positive("warmup", values.warmup, 1),
    stallSeconds: positive("stall-seconds", values["stall-seconds"], 3),
    recordsPerAppend: batch,
    concurrency: Math.round(positive("concurrency", values.concurrency, 160)),
    flushes: new Set([...listFlag("flush", values.flush, ["5", "50"])].map(Number)),
    streamCounts: new Set([...listFlag("streams", values.streams, ["1", "1000"])].map(Number)),
    extra: values["no-extra"] !== true,
    profiler: new WindowProfiler(values["cpu-profile"]),
  };
}

type Cli = ReturnType<typeof parseCli>;

// ---------------------------------------------------------------------------------------------
// Shared measurement plumbing

/** What is sampled at the edges of a measured window. */
interface Snapshot {
  readonly atMs: number;
  readonly stats: StorageStats;
  readonly elu: ReturnType<typeof performance.eventLoopUtilization>;
  readonly cpu: NodeJS.CpuUsage;
  readonly ackedRecords: number;
  readonly threads: ThreadCpu;
}

function snapshot(engine: Engine, ackedRecords: number): Snapshot {
  return {
    atMs: performance.now(),
    stats: engine.service.storage.stats,
    elu: performance.eventLoopUtilization(),
    cpu: process.cpuUsage(),
    ackedRecords,
    threads: readThreadCpu(),
  };
}

/** Figures common to every windowed run. */
interface WindowFigures {
  readonly seconds: number;
  readonly recordsPerSec: number;
  readonly mibPerSec: number;
  readonly putsPerSec: number;
  readonly putMeanMs: number;
  readonly putP99Ms: number;
  readonly segmentMeanKiB: number;
  /** Main-thread event-loop utilization over the window (1 = never idle). */
  readonly elu: number;
  /** Process CPU (all threads: main, libuv pool, GC, LevelDB) in cores. */
  readonly cpuCores: number;
  /** Main thread CPU in cores (Linux), the busiest other thread, and disk writes (MiB/s). */
  readonly mainCpu: number;
  readonly busiestOtherCpu: number;
  readonly diskWriteMiBps: number;
  /** Cores busy in other processes (moto included) during the window. */
  readonly otherProcessesCpu: number;
}

function windowFigures(
  start: Snapshot,
  end: Snapshot,
  puts: readonly PutTiming[],
): WindowFigures & { readonly windowPuts: PutTiming[] } {
  const seconds = (end.atMs - start.atMs) / 1000;
  const records = end.ackedRecords - start.ackedRecords;
  const windowPuts = puts.filter((p) => p.startMs >= start.atMs && p.startMs < end.atMs);
  const putMs = windowPuts.map((p) => p.endMs - p.startMs);
  const cpuMicros = end.cpu.user - start.cpu.user + (end.cpu.system - start.cpu.system);
  const threads = threadCpuDelta(start.threads, end.threads, seconds);
  return {
    seconds,
    recordsPerSec: records / seconds,
    mibPerSec: (records * recordBytes) / mib / seconds,
    putsPerSec: (end.stats.segmentsUploaded - start.stats.segmentsUploaded) / seconds,
    putMeanMs: mean(putMs),
    putP99Ms: percentile(sortedCopy(putMs), 99),
    segmentMeanKiB: mean(windowPuts.map((p) => p.bytes)) / kib,
    elu: performance.eventLoopUtilization(end.elu, start.elu).utilization,
    cpuCores: cpuMicros / 1e6 / seconds,
    mainCpu: threads.main,
    busiestOtherCpu: threads.busiestOther,
    diskWriteMiBps: threads.diskWriteMiBps,
    otherProcessesCpu: Math.max(0, threads.machineBusy - cpuMicros / 1e6 / seconds),
    windowPuts,
  };
}

/** Index of the last PUT that ended at or before `atMs` (PUTs are sequential), or -1. */
function lastPutEndedBy(puts: readonly PutTiming[], atMs: number): number {
  let lo = 0;
  let hi = puts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (puts[mid]!.endMs <= atMs) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Part 1: ack latency at a fixed rate

interface LatencyResult extends WindowFigures {
  readonly label: string;
  readonly store: StoreKind;
  readonly cache: CacheKind;
  readonly flushIntervalMs: number;
  readonly samples: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** Decomposition of the ack latency (p50 of each): issue → PUT start, the PUT, PUT end → ack. */
  readonly waitP50: number;
  readonly afterPutP50: number;
  readonly afterPutP99: number;
  /** How late appends were issued against their schedule (p99, ms). */
  readonly issueLagP99: number;
  readonly errors: number;
}

async function runLatency(
  cli: Cli,
  store: StoreKind,
  cache: CacheKind,
  flushIntervalMs: number,
): Promise<LatencyResult> {
  const label = `${store}, ${cache}, ${flushIntervalMs} ms flush`;
  const bodies = randomBodies(2048, recordBytes);
  const inputs: AppendInput[] = appendInputs(bodies, bodies.length, 1);
  const engine = await openEngine({ store, cache, flushIntervalMs });
  try {
    const { service } = engine;
    const stream = "latency";
    await service.streams.create({ basin: testBasin, name: stream });
    await service.records.append(testBasin, stream, inputs[0]!);

    const intervalMs = 1000 / latencyRecordsPerSec;
    const t0 = performance.now();
    const windowStartMs = t0 + cli.warmupSeconds * 1000;
    const windowEndMs = windowStartMs + cli.seconds * 1000;
    const issuedAt: number[] = [];
    const ackedAt: number[] = [];
    const issueLag: number[] = [];
    let acked = 0;
    let errors = 0;
    let outstanding = 0;
    let drained: (() => void) | undefined;
    let start: Snapshot | undefined;
    let end: Snapshot | undefined;

    const issue = (i: number): void => {
      const at = performance.now();
      const inWindow = at >= windowStartMs;
      if (inWindow) issueLag.push(at - (t0 + i * intervalMs));
      outstanding++;
      service.records.append(testBasin, stream, inputs[i % inputs.length]!).then(
        () => {
          const doneAt = performance.now();
          acked++;
          if (inWindow) {
            issuedAt.push(at);
            ackedAt.push(doneAt);
          }
          if (--outstanding === 0) drained?.();
        },
        (error: unknown) => {
          errors++;
          if (errors === 1) console.error(`  ${label}: append failed:`, error);
          if (--outstanding === 0) drained?.();
        },
      );
    };

    await runPaced({
      t0Ms: t0,
      ratePerSec: latencyRecordsPerSec,
      windowStartMs,
      windowEndMs,
      issue,
      onWindowStart: async () => {
        start = snapshot(engine, acked);
        await cli.profiler.start();
      },
      onWindowEnd: async () => {
        end = snapshot(engine, acked);
        const file = await cli.profiler.stop(`latency ${label}`);
        if (file !== undefined) console.log(`  profile: ${file}`);
      },
    });
    if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve));
    const figures = windowFigures(start!, end!, engine.timed.puts);

    const latencies = issuedAt.map((at, i) => ackedAt[i]! - at);
    const sorted = sortedCopy(latencies);
    const waits: number[] = [];
    const afterPuts: number[] = [];
    const puts = engine.timed.puts;
    for (let i = 0; i < issuedAt.length; i++) {
      const p = lastPutEndedBy(puts, ackedAt[i]!);
      if (p < 0) continue;
      waits.push(puts[p]!.startMs - issuedAt[i]!);
      afterPuts.push(ackedAt[i]! - puts[p]!.endMs);
    }
    const sortedAfter = sortedCopy(afterPuts);
    return {
      label,
      store,
      cache,
      flushIntervalMs,
      ...figures,
      samples: latencies.length,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: percentile(sorted, 100),
      waitP50: percentile(sortedCopy(waits), 50),
      afterPutP50: percentile(sortedAfter, 50),
      afterPutP99: percentile(sortedAfter, 99),
      issueLagP99: percentile(sortedCopy(issueLag), 99),
      errors,
    };
  } finally {
    await engine.close();
  }
}

function printLatency(results: readonly LatencyResult[]): void {
  console.log(
    table(
      [
        "store, cache, flush",
        "MiB/s",
        "rec/s",
        "p50",
        "p90",
        "p99",
        "max",
        "PUT/s",
        "PUT mean",
        "PUT p99",
        "seg KiB",
        "wait→PUT p50",
        "PUT→ack p50/p99",
        "ELU",
        "CPU main/1/all",
        "disk MiB/s",
        "others",
        "lag p99",
      ],
      results.map((r) => [
        r.label,
        fmt(r.mibPerSec, 2),
        fmt(r.recordsPerSec, 0),
        fmt(r.p50, 2),
        fmt(r.p90, 2),
        fmt(r.p99, 2),
        fmt(r.max, 2),
        fmt(r.putsPerSec, 1),
        fmt(r.putMeanMs, 2),
        fmt(r.putP99Ms, 2),
        fmt(r.segmentMeanKiB, 0),
        fmt(r.waitP50, 2),
        `${fmt(r.afterPutP50, 2)}/${fmt(r.afterPutP99, 2)}`,
        fmt(r.elu, 2),
        `${fmt(r.mainCpu, 2)}/${fmt(r.busiestOtherCpu, 2)}/${fmt(r.cpuCores, 2)}`,
        fmt(r.diskWriteMiBps, 0),
        fmt(r.otherProcessesCpu, 2),
        fmt(r.issueLagP99, 2),
      ]),
    ),
  );
  for (const r of results) {
    if (r.errors > 0) console.log(`  ${r.label}: ${r.errors} appends failed`);
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: maximum throughput

interface ThroughputResult extends WindowFigures {
  readonly label: string;
  readonly streams: number;
  readonly cache: CacheKind;
  readonly flushIntervalMs: number;
  readonly appendsPerSec: number;
  readonly inflightMiBAtEnd: number;
  readonly waitingAtEnd: number;
  readonly errors: number;
}

async function runThroughput(
  cli: Cli,
  streams: number,
  cache: CacheKind,
  flushIntervalMs: number,
): Promise<ThroughputResult> {
  const label = `${streams} stream${streams === 1 ? "" : "s"}, memory store, ${cache}, ${flushIntervalMs} ms flush`;
  const bodies = randomBodies(4096, recordBytes);
  const inputs = appendInputs(bodies, 64, cli.recordsPerAppend);
  const engine = await openEngine({ store: "memory", cache, flushIntervalMs });
  try {
    const { service } = engine;
    const names = Array.from({ length: streams }, (_, i) => `tp-${i}`);
    await Promise.all(names.map((name) => service.streams.create({ basin: testBasin, name })));

    const t0 = performance.now();
    const windowStartMs = t0 + cli.warmupSeconds * 1000;
    const windowEndMs = windowStartMs + cli.seconds * 1000;
    let ackedRecords = 0;
    let ackedAppends = 0;
    let errors = 0;
    let next = 0;
    let start: Snapshot | undefined;
    let startAppends = 0;
    let end: Snapshot | undefined;
    let endAppends = 0;
    let profiled: Promise<string | undefined> | undefined;
    const startTimer = setTimeout(() => {
      start = snapshot(engine, ackedRecords);
      startAppends = ackedAppends;
      void cli.profiler.start();
    }, windowStartMs - t0);
    const endTimer = setTimeout(() => {
      end = snapshot(engine, ackedRecords);
      endAppends = ackedAppends;
      profiled = cli.profiler.stop(`throughput ${label}`);
    }, windowEndMs - t0);

    const worker = async (): Promise<void> => {
      while (end === undefined && errors === 0) {
        const i = next++;
        const input = inputs[i % inputs.length]!;
        try {
          await service.records.append(testBasin, names[i % streams]!, input);
          ackedRecords += input.records.length;
          ackedAppends++;
        } catch (error) {
          errors++;
          if (errors === 1) console.error(`  ${label}: append failed:`, error);
        }
      }
    };
    await Promise.all(Array.from({ length: cli.concurrency }, worker));
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    const file = await profiled;
    if (file !== undefined) console.log(`  profile: ${file}`);
    if (start === undefined || end === undefined) throw new Error("the run ended early");
    const figures = windowFigures(start, end, engine.timed.puts);
    return {
      label,
      streams,
      cache,
      flushIntervalMs,
      ...figures,
      appendsPerSec: (endAppends - startAppends) / figures.seconds,
      inflightMiBAtEnd: end.stats.inflightBytes / mib,
      waitingAtEnd: end.stats.admissionWaiting,
      errors,
    };
  } finally {
    await engine.close();
  }
}

function printThroughput(results: readonly ThroughputResult[]): void {
  console.log(
    table(
      [
        "streams, store, cache, flush",
        "MiB/s",
        "main ms/MiB",
        "rec/s",
        "appends/s",
        "PUT/s",
        "PUT mean",
        "PUT p99",
        "seg KiB",
        "inflight MiB",
        "waiting",
        "ELU",
        "CPU main/1/all",
        "disk MiB/s",
        "others",
      ],
      results.map((r) => [
        r.label,
        fmt(r.mibPerSec, 1),
        fmt((r.mainCpu * 1000) / r.mibPerSec, 2),
        fmt(r.recordsPerSec, 0),
        fmt(r.appendsPerSec, 0),
        fmt(r.putsPerSec, 1),
        fmt(r.putMeanMs, 2),
        fmt(r.putP99Ms, 2),
        fmt(r.segmentMeanKiB, 0),
        fmt(r.inflightMiBAtEnd, 1),
        String(r.waitingAtEnd),
        fmt(r.elu, 2),
        `${fmt(r.mainCpu, 2)}/${fmt(r.busiestOtherCpu, 2)}/${fmt(r.cpuCores, 2)}`,
        fmt(r.diskWriteMiBps, 0),
        fmt(r.otherProcessesCpu, 2),
      ]),
    ),
  );
  for (const r of results) {
    if (r.errors > 0) console.log(`  ${r.label}: ${r.errors} appends failed`);
  }
}

// ---------------------------------------------------------------------------------------------
// Part 3: RSS under a stalled store

interface StallResult {
  readonly baselineMiB: number;
  readonly peakMiB: number;
  readonly growthMiB: number;
  readonly peakHeapUsedMiB: number;
  readonly peakArrayBuffersMiB: number;
  readonly offeredAppends: number;
  readonly offeredMiB: number;
  readonly inflightMiB: number;
  readonly waiting: number;
  readonly putAttempts: number;
  readonly drainSeconds: number;
  readonly errors: number;
}

const stallRecordsPerAppend = 16;
/** Appends kept outstanding while stalled (none completes): 8× what admission lets in. */
const stallOutstandingMax = Math.ceil(
  (8 * appendInflightBytesMax) / (stallRecordsPerAppend * recordBytes),
);

async function runStall(cli: Cli): Promise<StallResult> {
  const bodies = randomBodies(2048, recordBytes);
  const inputs = appendInputs(bodies, 128, stallRecordsPerAppend);
  const engine = await openEngine({
    store: "stalled-memory",
    cache: "leveldb",
    flushIntervalMs: 5,
  });
  const sampler: { timer?: NodeJS.Timeout } = {};
  try {
    const { service } = engine;
    const faulty = engine.faulty!;
    const stream = "stall";
    await service.streams.create({ basin: testBasin, name: stream });
    // Warm-up with the store answering, so that LevelDB and the code paths are warm.
    for (let i = 0; i < 64; i++) {
      await Promise.all(
        Array.from({ length: 8 }, (_, j) =>
          service.records.append(testBasin, stream, inputs[(i * 8 + j) % inputs.length]!),
        ),
      );
    }
    await sleep(250);
    const baseline = process.memoryUsage();
    let peak = baseline.rss;
    let peakHeap = baseline.heapUsed;
    let peakArrayBuffers = baseline.arrayBuffers;
    sampler.timer = setInterval(() => {
      const usage = process.memoryUsage();
      peak = Math.max(peak, usage.rss);
      peakHeap = Math.max(peakHeap, usage.heapUsed);
      peakArrayBuffers = Math.max(peakArrayBuffers, usage.arrayBuffers);
    }, 50);

    faulty.setStalled(true);
    const stallEndMs = performance.now() + cli.stallSeconds * 1000;
    const pending: Promise<unknown>[] = [];
    let errors = 0;
    let offered = 0;
    while (performance.now() < stallEndMs) {
      // Keep issuing while below the outstanding cap; nothing completes while stalled.
      for (let k = 0; k < 64 && offered < stallOutstandingMax; k++) {
        pending.push(
          service.records
            .append(testBasin, stream, inputs[offered % inputs.length]!)
            .catch(() => void errors++),
        );
        offered++;
      }
      await sleep(1);
    }
    const stats = service.storage.stats;
    const result = {
      baselineMiB: baseline.rss / mib,
      peakMiB: peak / mib,
      growthMiB: (peak - baseline.rss) / mib,
      peakHeapUsedMiB: (peakHeap - baseline.heapUsed) / mib,
      peakArrayBuffersMiB: (peakArrayBuffers - baseline.arrayBuffers) / mib,
      offeredAppends: offered,
      offeredMiB: (offered * stallRecordsPerAppend * recordBytes) / mib,
      inflightMiB: stats.inflightBytes / mib,
      waiting: stats.admissionWaiting,
      putAttempts: stats.putAttempts,
    };
    clearInterval(sampler.timer);
    faulty.setStalled(false);
    const drainStart = performance.now();
    await Promise.all(pending);
    return { ...result, drainSeconds: (performance.now() - drainStart) / 1000, errors };
  } finally {
    clearInterval(sampler.timer);
    engine.faulty?.setStalled(false);
    await engine.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const cli = parseCli();
  console.log("Tributary engine benchmark (engine alone: the Service in-process, no HTTP)");
  console.log(machineLine());
  console.log(
    "cache: the real LevelDB cache (openCache in a temp dir) for every engine, not the memory " +
      "KV; lines marked memory-kv, 'no segment files' or moto-raw-put are what-ifs for " +
      "diagnosis (no target)",
  );
  console.log(
    `records: 8 KiB random bodies prepared before timing; MiB/s counts record bodies acked; ` +
      `warm-up ${cli.warmupSeconds} s, measured ${cli.seconds} s`,
  );
  await printLoadBeforeStart();
  console.log(
    "columns: ELU = main-thread event-loop utilization; CPU main/1/all = cores used by the main " +
      "thread / the busiest other thread / the whole process; disk = MiB/s this process sent to " +
      "storage (/proc/self/io); others = cores busy in other processes meanwhile (moto included; " +
      "other work on the machine skews every figure); PUT figures are segment PUTs timed at the store",
  );
  const verdicts: Verdict[] = [];

  let stall: StallResult | undefined;
  if (cli.parts.has("stall")) {
    // First, in a fresh process: memory freed by other parts is reused without growing RSS and
    // would hide growth, and their garbage would blur it.
    console.log(
      `\n== RSS under a stalled store (memory store, every call held; LevelDB cache; 5 ms flush; ` +
        `${stallRecordsPerAppend} × 8 KiB records per append, up to ${stallOutstandingMax} appends ` +
        `outstanding, ${cli.stallSeconds} s) ==`,
    );
    stall = await attempt("stall", () => runStall(cli));
    if (stall !== undefined) {
      console.log(
        `  RSS baseline ${fmt(stall.baselineMiB)} MiB, peak ${fmt(stall.peakMiB)} MiB, ` +
          `growth ${fmt(stall.growthMiB)} MiB (heap used +${fmt(stall.peakHeapUsedMiB)} MiB, ` +
          `array buffers +${fmt(stall.peakArrayBuffersMiB)} MiB)`,
      );
      console.log(
        `  offered ${stall.offeredAppends} appends (${fmt(stall.offeredMiB, 0)} MiB); at the end: ` +
          `admitted ${fmt(stall.inflightMiB)} MiB (appendInflightBytesMax ` +
          `${fmt(appendInflightBytesMax / mib, 0)} MiB), ${stall.waiting} waiting for admission, ` +
          `${stall.putAttempts} PUT attempts; drained in ${fmt(stall.drainSeconds, 2)} s after ` +
          `un-stalling; ${stall.errors} errors`,
      );
    }
    const limitMiB = appendInflightBytesMax / mib + 256;
    verdicts.push({
      measurement: "RSS growth, stalled store",
      figure: stall ? `${fmt(stall.growthMiB)} MiB` : "error",
      target: `< ${fmt(limitMiB, 0)} MiB (inflight max + 256 MiB)`,
      met: stall ? stall.growthMiB < limitMiB : undefined,
    });
  }

  if (cli.parts.has("latency")) {
    console.log(
      `\n== Ack latency at ${latencyRecordsPerSec} records/s (10 MiB/s), one record per append, ` +
        "pipelined, one stream; ms from issue to ack ==",
    );
    const results: LatencyResult[] = [];
    const runs: [StoreKind, CacheKind, number][] = [];
    for (const store of latencyStores) {
      if (!cli.stores.has(store)) continue;
      for (const flush of cli.flushes) runs.push([store, "leveldb", flush]);
      if (store === "memory" && cli.extra) {
        for (const flush of cli.flushes) runs.push([store, "memory-kv", flush]);
      }
      if (store === "moto" && cli.extra) {
        for (const flush of cli.flushes) runs.push(["moto-raw-put", "leveldb", flush]);
      }
    }
    for (const [store, cache, flush] of runs) {
      const result = await attempt(`${store}, ${cache}, ${flush} ms`, () =>
        runLatency(cli, store, cache, flush),
      );
      if (result !== undefined) results.push(result);
    }
    printLatency(results);
    console.log(
      "  wait→PUT: issue to the start of the PUT that carried the record; PUT→ack: PUT end to " +
        "ack; lag: issue delay versus schedule; moto-raw-put is a what-if for diagnosis (segment " +
        "PUTs as bare HTTP requests instead of through the AWS SDK); no target applies to it",
    );
    const moto5 = results.find((r) => r.store === "moto" && r.flushIntervalMs === 5);
    if (cli.stores.has("moto") && cli.flushes.has(5)) {
      verdicts.push({
        measurement: "ack p50, moto, 5 ms flush, 10 MiB/s",
        figure: moto5 ? `${fmt(moto5.p50, 2)} ms` : "error",
        target: "≤ 8 ms",
        met: moto5 ? moto5.p50 <= 8 : undefined,
      });
      verdicts.push({
        measurement: "ack p99, moto, 5 ms flush, 10 MiB/s",
        figure: moto5 ? `${fmt(moto5.p99, 2)} ms` : "error",
        target: "≤ 12 ms",
        met: moto5 ? moto5.p99 <= 12 : undefined,
      });
    }
  }

  if (cli.parts.has("throughput")) {
    console.log(
      `\n== Max throughput, memory store, 8 KiB records, ${cli.recordsPerAppend} per append, ` +
        `${cli.concurrency} appends in flight (admission bounds them) ==`,
    );
    const results: ThroughputResult[] = [];
    const runs: [number, CacheKind, number][] = [];
    for (const flush of cli.flushes) {
      for (const streams of cli.streamCounts) runs.push([streams, "leveldb", flush]);
    }
    if (cli.extra) {
      for (const flush of cli.flushes) {
        for (const streams of cli.streamCounts) {
          runs.push([streams, "leveldb, no segment files", flush]);
        }
      }
    }
    for (const [streams, cache, flush] of runs) {
      const result = await attempt(`${streams} streams, ${cache}, ${flush} ms`, () =>
        runThroughput(cli, streams, cache, flush),
      );
      if (result !== undefined) results.push(result);
    }
    printThroughput(results);
    if (cli.extra) {
      console.log(
        '  "leveldb, no segment files" is a what-if for diagnosis (segment file writes ' +
          "dropped, so reads would miss the cache); no target applies to it",
      );
    }
    console.log(
      "  main ms/MiB: main-thread CPU per MiB acked; 1000 / it is the rate at which the main " +
        "thread alone would saturate",
    );
    const find = (streams: number, flush: number) =>
      results.find(
        (r) => r.streams === streams && r.flushIntervalMs === flush && r.cache === "leveldb",
      );
    for (const streams of cli.flushes.has(5) ? cli.streamCounts : []) {
      const r = find(streams, 5);
      verdicts.push({
        measurement: `throughput, memory store, ${streams} stream${streams === 1 ? "" : "s"}, 5 ms`,
        figure: r ? `${fmt(r.mibPerSec)} MiB/s` : "error",
        target: "≥ 250 MiB/s",
        met: r ? r.mibPerSec >= 250 : undefined,
      });
    }
    for (const streams of cli.flushes.has(50) ? cli.streamCounts : []) {
      const r = find(streams, 50);
      verdicts.push({
        measurement: `PUTs/s under load, ${streams} stream${streams === 1 ? "" : "s"}, 50 ms`,
        figure: r ? `${fmt(r.putsPerSec, 2)}/s (at ${fmt(r.mibPerSec)} MiB/s)` : "error",
        target: "20/s (±2.5%)",
        met: r ? Math.abs(r.putsPerSec - 20) <= 0.5 : undefined,
      });
    }
  }

  if (cli.parts.has("s3-latency")) {
    console.log(
      `\n== One stream on a store answering every call in ${s3LatencyMs.min}–${s3LatencyMs.max} ms ` +
        `(S3 Standard-like), ${walPutsInFlightMax} segment PUTs in flight at most; ` +
        `${slowRecordsPerAppend} × 8 KiB records per append; LevelDB cache, 5 ms flush ==`,
    );
    const slow = await attempt("s3-latency", () => runS3Latency(cli));
    if (slow !== undefined) {
      console.log(
        `  closed loop, ${slowAppendsInFlight} appends in flight: ${fmt(slow.maxMiBps)} MiB/s, ` +
          `ack p50 ${fmt(slow.maxP50, 1)} ms; paced at ${slowPacedMiBps} MiB/s: ` +
          `${fmt(slow.pacedMiBps)} MiB/s acked, ack p50 ${fmt(slow.pacedP50, 1)} ms, ` +
          `p99 ${fmt(slow.pacedP99, 1)} ms; ${slow.errors} errors`,
      );
    }
    verdicts.push({
      measurement: "one stream, S3-like store, max throughput",
      figure: slow ? `${fmt(slow.maxMiBps)} MiB/s` : "error",
      target: "≥ 100 MiB/s",
      met: slow ? slow.maxMiBps >= 100 : undefined,
    });
    verdicts.push({
      measurement: `one stream, S3-like store, ack p50 at ${slowPacedMiBps} MiB/s`,
      figure: slow ? `${fmt(slow.pacedP50, 1)} ms` : "error",
      target: "≤ 80 ms",
      met: slow ? slow.pacedP50 <= 80 : undefined,
    });
  }

  printSummary(verdicts);
}

const slowRecordsPerAppend = 120;
const slowAppendsInFlight = 16;
const slowPacedMiBps = 100;

interface S3LatencyResult {
  readonly maxMiBps: number;
  readonly maxP50: number;
  readonly pacedMiBps: number;
  readonly pacedP50: number;
  readonly pacedP99: number;
  readonly errors: number;
}

/**
 * Issue 12's S3-latency target: a closed loop of ~1 MiB appends (max throughput), then the same
 * appends paced at 100 MiB/s (ack latency), each on a fresh engine.
 */
async function runS3Latency(cli: Cli): Promise<S3LatencyResult> {
  const bodies = randomBodies(512, recordBytes);
  const inputs = appendInputs(bodies, 64, slowRecordsPerAppend);
  const appendMiB = (slowRecordsPerAppend * recordBytes) / mib;
  let errors = 0;
  const open = async () => {
    const engine = await openEngine({ store: "s3-latency", cache: "leveldb", flushIntervalMs: 5 });
    await engine.service.streams.create({ basin: testBasin, name: "slow" });
    return engine;
  };

  const closed = await open();
  let maxMiBps: number;
  let maxLatencies: number[];
  try {
    const windowStart = performance.now() + cli.warmupSeconds * 1000;
    const windowEnd = windowStart + cli.seconds * 1000;
    let acked = 0;
    let next = 0;
    maxLatencies = [];
    const worker = async (): Promise<void> => {
      while (performance.now() < windowEnd) {
        const input = inputs[next++ % inputs.length]!;
        const at = performance.now();
        try {
          await closed.service.records.append(testBasin, "slow", input);
          if (at >= windowStart && at < windowEnd) {
            acked += 1;
            maxLatencies.push(performance.now() - at);
          }
        } catch {
          errors += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: slowAppendsInFlight }, worker));
    maxMiBps = (acked * appendMiB) / cli.seconds;
  } finally {
    await closed.close();
  }

  const paced = await open();
  try {
    const t0 = performance.now();
    const windowStartMs = t0 + cli.warmupSeconds * 1000;
    const windowEndMs = windowStartMs + cli.seconds * 1000;
    const latencies: number[] = [];
    const pending: Promise<void>[] = [];
    await runPaced({
      t0Ms: t0,
      ratePerSec: slowPacedMiBps / appendMiB,
      windowStartMs,
      windowEndMs,
      issue: (index) => {
        const at = performance.now();
        pending.push(
          paced.service.records.append(testBasin, "slow", inputs[index % inputs.length]!).then(
            () => {
              if (at >= windowStartMs) latencies.push(performance.now() - at);
            },
            () => void (errors += 1),
          ),
        );
      },
    });
    await Promise.all(pending);
    const sorted = sortedCopy(latencies);
    const maxSorted = sortedCopy(maxLatencies);
    return {
      maxMiBps,
      maxP50: percentile(maxSorted, 50),
      pacedMiBps: (latencies.length * appendMiB) / cli.seconds,
      pacedP50: percentile(sorted, 50),
      pacedP99: percentile(sorted, 99),
      errors,
    };
  } finally {
    await paced.close();
  }
}

runBenchMain("engine-bench", main);
