/**
 * Helpers of the engine benchmark (bench/engine-bench.ts): an object-store wrapper that times
 * segment PUTs, percentiles, random record bodies prepared before timing, and opening and closing
 * an engine (a Service on a chosen object store and cache) with everything it owns.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, platform, release, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { systemClock } from "../server/src/core/clock.js";
import { createSeededRandom, systemRandom } from "../server/src/core/random.js";
import type { AppendInput, AppendRecord } from "../server/src/core/records.js";
import { Service } from "../server/src/service/service.js";
import {
  createMemorySegmentFiles,
  type SegmentFiles,
} from "../server/src/storage/cache/segment-files.js";
import type { KvStore } from "../server/src/storage/kv/kv-store.js";
import { createMemoryKvStore } from "../server/src/storage/kv/memory.js";
import {
  createFaultyObjectStore,
  type FaultyObjectStore,
} from "../server/src/storage/object-store/faulty.js";
import { createLocalFsObjectStore } from "../server/src/storage/object-store/local-fs.js";
import { createMemoryObjectStore } from "../server/src/storage/object-store/memory.js";
import { bodyBytes, type ObjectStore } from "../server/src/storage/object-store/object-store.js";
import { openCache } from "../server/src/storage/open-stores.js";
import { ensureTestBasin } from "../server/test/support/engine.js";
import { createTestS3Store } from "../server/test/support/moto.js";

export const kib = 1024;
export const mib = 1024 * 1024;

/** Both benches measure with 8 KiB records, and their latency parts at 10 MiB/s of them. */
export const recordBytes = 8 * kib;
export const latencyRecordsPerSec = 1280;

// The AWS SDK (in the bench or the server it starts) warns once that its 2027 releases need
// node 22; that is not a finding of a bench.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

/** One timed segment PUT (`wal/…` keys only), in `performance.now()` milliseconds. */
export interface PutTiming {
  readonly startMs: number;
  readonly endMs: number;
  readonly bytes: number;
}

/** An object store that records the start, end and size of every segment PUT. */
export interface TimedStore extends ObjectStore {
  readonly puts: PutTiming[];
}

export function timeSegmentPuts(inner: ObjectStore): TimedStore {
  const puts: PutTiming[] = [];
  return {
    puts,
    get: (key, range) => inner.get(key, range),
    async putIfAbsent(key, bytes) {
      const startMs = performance.now();
      const outcome = await inner.putIfAbsent(key, bytes);
      if (key.startsWith("wal/")) {
        puts.push({ startMs, endMs: performance.now(), bytes: bytes.length });
      }
      return outcome;
    },
    list: (prefix, options) => inner.list(prefix, options),
    delete: (keys) => inner.delete(keys),
    close: () => inner.close(),
  };
}

/** Nearest-rank percentile of sorted values (`p` in [0, 100]); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function sortedCopy(values: readonly number[]): Float64Array {
  return Float64Array.from(values).sort();
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** `count` random (incompressible) bodies of `bytes` each, views into one buffer. */
export function randomBodies(count: number, bytes: number): Uint8Array[] {
  const all = new Uint8Array(randomBytes(count * bytes));
  return Array.from({ length: count }, (_, i) => all.subarray(i * bytes, (i + 1) * bytes));
}

/** `count` append batches of `recordsPerAppend` records, cycling through `bodies`. */
export function appendInputs(
  bodies: readonly Uint8Array[],
  count: number,
  recordsPerAppend: number,
): AppendInput[] {
  let next = 0;
  return Array.from({ length: count }, () => {
    const records: AppendRecord[] = [];
    for (let i = 0; i < recordsPerAppend; i++) {
      records.push({ headers: [], body: bodies[next++ % bodies.length]! });
    }
    return { records };
  });
}

/**
 * "moto-raw-put" is a what-if for diagnosis: moto with segment and manifest PUTs sent as bare
 * HTTP requests (unsigned; moto does not check) instead of through the AWS SDK, to measure what
 * the SDK's PUT path costs. Every other call goes through the SDK store.
 */
export type StoreKind =
  | "memory"
  | "local-fs"
  | "moto"
  | "moto-raw-put"
  | "stalled-memory"
  /** The memory store behind the faulty store's latency mode: every call 50 ± 20 ms (S3-like). */
  | "s3-latency";
/**
 * "leveldb": the real cache (`openCache`: LevelDB and segment files). "memory-kv": the memory KV
 * and memory segment files (tests' cache). "leveldb, no segment files": a what-if for diagnosis
 * only: the real LevelDB with every segment file write dropped (reads would be cache misses), to
 * measure what writing the segment files costs.
 */
/** S3 Standard-like request latency (issue 12): 50 ± 20 ms, uniform. */
export const s3LatencyMs = { min: 30, max: 70 } as const;

export type CacheKind = "leveldb" | "memory-kv" | "leveldb, no segment files";

/** A Service with its stores; `close` releases everything it opened. */
export interface Engine {
  readonly service: Service;
  readonly timed: TimedStore;
  /** Set for "stalled-memory": the fault wrapper to stall. */
  readonly faulty: FaultyObjectStore | undefined;
  close(): Promise<void>;
}

export async function openEngine(options: {
  readonly store: StoreKind;
  readonly cache: CacheKind;
  readonly flushIntervalMs: number;
}): Promise<Engine> {
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  try {
    let inner: ObjectStore;
    let faulty: FaultyObjectStore | undefined;
    switch (options.store) {
      case "memory":
        inner = createMemoryObjectStore();
        break;
      case "stalled-memory":
        faulty = createFaultyObjectStore(createMemoryObjectStore(), {
          random: createSeededRandom(1),
          clock: systemClock,
        });
        inner = faulty;
        break;
      case "s3-latency":
        inner = createFaultyObjectStore(createMemoryObjectStore(), {
          random: createSeededRandom(1),
          clock: systemClock,
          faults: { latencyMs: s3LatencyMs },
        });
        break;
      case "local-fs": {
        const root = await mkdtemp(path.join(tmpdir(), "tributary-bench-objects-"));
        cleanups.push(() => rm(root, { recursive: true, force: true }));
        inner = createLocalFsObjectStore({ root });
        break;
      }
      case "moto":
      case "moto-raw-put": {
        const s3 = await createTestS3Store();
        inner =
          options.store === "moto" ? s3.store : withRawHttpPuts(s3.store, s3.endpoint, s3.bucket);
        break;
      }
    }
    const timed = timeSegmentPuts(inner);
    cleanups.push(() => timed.close());

    let kv: KvStore;
    let segmentFiles: SegmentFiles;
    if (options.cache !== "memory-kv") {
      const dir = await mkdtemp(path.join(tmpdir(), "tributary-bench-cache-"));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const cache = await openCache(dir);
      kv = cache.kv;
      segmentFiles =
        options.cache === "leveldb, no segment files"
          ? withoutWrites(cache.segmentFiles)
          : cache.segmentFiles;
    } else {
      kv = createMemoryKvStore();
      segmentFiles = createMemorySegmentFiles();
    }
    cleanups.push(() => kv.close());

    const service = await Service.open({
      store: timed,
      kv,
      segmentFiles,
      clock: systemClock,
      random: systemRandom,
      flushIntervalMs: options.flushIntervalMs,
    });
    cleanups.push(() => service.close());
    await ensureTestBasin(service);
    return { service, timed, faulty, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The value of series `name` in a /metrics text (its first line, whatever its labels); NaN when
 * absent.
 */
export function metricValue(text: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
}

/** Resolves after `ms` (setTimeout: at least ~1 ms). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return "n/a";
  return value.toFixed(digits);
}

/** Renders rows as a left-aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/**
 * CPU profiles of measured windows only (`--cpu-profile DIR`): the V8 sampling profiler of the
 * main thread, through the inspector, written as `.cpuprofile` files (Chrome DevTools, speedscope).
 */
export class WindowProfiler {
  private session: Session | undefined;

  constructor(private readonly dir: string | undefined) {}

  async start(): Promise<void> {
    if (this.dir === undefined) return;
    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 200 });
    await session.post("Profiler.start");
    this.session = session;
  }

  /** Stops a started profile and writes it as `<dir>/<name>.cpuprofile`; returns the path. */
  async stop(name: string): Promise<string | undefined> {
    const session = this.session;
    if (session === undefined || this.dir === undefined) return undefined;
    this.session = undefined;
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    await mkdir(this.dir, { recursive: true });
    const file = path.join(this.dir, `${name.replace(/[^a-z0-9]+/gi, "-")}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    return file;
  }
}

/** The what-if cache: segment file writes are dropped, everything else reaches `inner`. */
function withoutWrites(inner: SegmentFiles): SegmentFiles {
  return {
    write: async () => {},
    read: (walId, offset, length) => inner.read(walId, offset, length),
    readRanges: (walId, ranges) => inner.readRanges(walId, ranges),
    delete: (walId) => inner.delete(walId),
    list: () => inner.list(),
    sizes: () => inner.sizes(),
    clear: () => inner.clear(),
  };
}

/** CPU time per thread of this process (Linux `/proc`; empty elsewhere), in seconds. */
export interface ThreadCpu {
  readonly byThread: ReadonlyMap<number, number>;
  /** Bytes this process caused to be written to storage (`/proc/self/io` write_bytes). */
  readonly diskWriteBytes: number;
  /** Busy CPU seconds of the whole machine (`/proc/stat`: all but idle and iowait). */
  readonly machineBusy: number;
}

const clockTicksPerSecond = 100; // USER_HZ on Linux

export function readThreadCpu(): ThreadCpu {
  const byThread = new Map<number, number>();
  let diskWriteBytes = Number.NaN;
  let machineBusy = Number.NaN;
  try {
    const cpuLine = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const [user, nice, system, , , irq, softirq, steal] = cpuLine
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    machineBusy = (user! + nice! + system! + irq! + softirq! + steal!) / clockTicksPerSecond;
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const ticks = Number(fields[11]) + Number(fields[12]);
        byThread.set(Number(tid), ticks / clockTicksPerSecond);
      } catch {
        // The thread ended meanwhile.
      }
    }
    const io = readFileSync("/proc/self/io", "utf8");
    const match = /^write_bytes: (\d+)$/m.exec(io);
    if (match !== null) diskWriteBytes = Number(match[1]);
  } catch {
    // Not Linux: no per-thread figures.
  }
  return { byThread, diskWriteBytes, machineBusy };
}

/** Cores used over `seconds` by the main thread, the busiest other thread, and all others. */
export function threadCpuDelta(
  start: ThreadCpu,
  end: ThreadCpu,
  seconds: number,
): {
  main: number;
  busiestOther: number;
  others: number;
  diskWriteMiBps: number;
  machineBusy: number;
} {
  let main = Number.NaN;
  let busiestOther = 0;
  let others = 0;
  for (const [tid, cpu] of end.byThread) {
    const used = (cpu - (start.byThread.get(tid) ?? 0)) / seconds;
    if (tid === process.pid) {
      main = used;
    } else {
      others += used;
      busiestOther = Math.max(busiestOther, used);
    }
  }
  const diskWriteMiBps = (end.diskWriteBytes - start.diskWriteBytes) / mib / seconds;
  const machineBusy = (end.machineBusy - start.machineBusy) / seconds;
  return { main, busiestOther, others, diskWriteMiBps, machineBusy };
}

/** CPU seconds (user + system) of process `pid`; NaN when /proc is not there. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS and VmHWM (peak RSS) of process `pid` in MiB; NaN when /proc is not there. */
export function processRss(pid: number): { rssMiB: number; peakMiB: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string): number => {
      const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
      return match === null ? Number.NaN : Number(match[1]) / kib;
    };
    return { rssMiB: kb("VmRSS"), peakMiB: kb("VmHWM") };
  } catch {
    return { rssMiB: Number.NaN, peakMiB: Number.NaN };
  }
}

/**
 * The paced load of the latency measurements: calls `issue(i)` for i = 0, 1, … on a fixed
 * schedule of `ratePerSec` from `t0Ms` until `windowEndMs`, without waiting for what it issued.
 * Every call due by now is made before sleeping again, so a late timer catches up instead of
 * lowering the rate. `onWindowStart` runs once at `windowStartMs` (after the warm-up) and
 * `onWindowEnd` at `windowEndMs`, both awaited. Returns how many calls were made.
 */
export async function runPaced(options: {
  readonly t0Ms: number;
  readonly ratePerSec: number;
  readonly windowStartMs: number;
  readonly windowEndMs: number;
  readonly issue: (index: number) => void;
  readonly onWindowStart?: (() => Promise<void> | void) | undefined;
  readonly onWindowEnd?: (() => Promise<void> | void) | undefined;
}): Promise<number> {
  const { t0Ms, windowStartMs, windowEndMs } = options;
  const intervalMs = 1000 / options.ratePerSec;
  const last = Math.ceil((windowEndMs - t0Ms) / intervalMs);
  let issued = 0;
  let started = false;
  for (;;) {
    const now = performance.now();
    if (!started && now >= windowStartMs) {
      started = true;
      await options.onWindowStart?.();
    }
    if (now >= windowEndMs) {
      await options.onWindowEnd?.();
      return issued;
    }
    const due = Math.min(Math.floor((now - t0Ms) / intervalMs) + 1, last);
    while (issued < due) options.issue(issued++);
    await sleep(Math.max(0, Math.floor(t0Ms + issued * intervalMs - performance.now())));
  }
}

/** `inner` with `putIfAbsent` as one bare HTTP PUT with `If-None-Match: *` (the what-if). */
function withRawHttpPuts(inner: ObjectStore, endpoint: string, bucket: string): ObjectStore {
  const url = new URL(endpoint);
  const agent = new http.Agent({ keepAlive: true });
  const objectPath = (key: string): string =>
    `/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  return {
    get: (key, range) => inner.get(key, range),
    putIfAbsent(key, bytes) {
      return new Promise((resolve, reject) => {
        const request = http.request(
          {
            host: url.hostname,
            port: url.port,
            method: "PUT",
            path: objectPath(key),
            agent,
            headers: { "content-length": bodyBytes(bytes), "if-none-match": "*" },
          },
          (response) => {
            response.resume();
            response.on("end", () => {
              if (response.statusCode === 200) resolve("created");
              else if (response.statusCode === 412) resolve("exists");
              else reject(new Error(`raw put failed. status=\`${response.statusCode}\``));
            });
          },
        );
        request.on("error", reject);
        // A segment comes in parts (`ObjectBody`); each is written as it is, without a join.
        for (const part of bytes instanceof Uint8Array ? [bytes] : bytes) request.write(part);
        request.end();
      });
    },
    list: (prefix, options) => inner.list(prefix, options),
    delete: (keys) => inner.delete(keys),
    async close() {
      agent.destroy();
      await inner.close();
    },
  };
}

/** One line of a benchmark's closing table: a figure against its target. */
export interface Verdict {
  readonly measurement: string;
  readonly figure: string;
  readonly target: string;
  /** undefined when the measurement failed. */
  readonly met: boolean | undefined;
}

/** Runs one measurement; a failure is printed and yields undefined, so the others still run. */
export async function attempt<T>(label: string, run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (error) {
    console.log(`  ${label}: ERROR ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof Error && error.cause !== undefined) console.log("   cause:", error.cause);
    return undefined;
  }
}

/** Prints the closing figure/target/verdict table. */
export function printSummary(verdicts: readonly Verdict[]): void {
  console.log("\n== Summary ==");
  console.log(
    table(
      ["measurement", "figure", "target", "verdict"],
      verdicts.map((v) => [
        v.measurement,
        v.figure,
        v.target,
        v.met === undefined ? "error" : v.met ? "met" : "missed",
      ]),
    ),
  );
}

/**
 * Runs a benchmark's main. Everything it opens is closed, so the process should exit on its own;
 * a watchdog reports open handles and exits if it is still alive 30 s after finishing.
 */
export function runBenchMain(name: string, main: () => Promise<void>): void {
  const watchdog = (): void => {
    const timer = setTimeout(() => {
      console.error(`${name}: still alive 30 s after finishing; open handles:`);
      console.error(process.getActiveResourcesInfo());
      process.exit(1);
    }, 30_000);
    timer.unref();
  };
  main().then(watchdog, (error: unknown) => {
    console.error(`${name} failed:`, error);
    process.exitCode = 1;
    watchdog();
  });
}

/** The machine a benchmark ran on: CPU model and cores, memory, node, kernel. */
export function machineLine(): string {
  const cores = cpus();
  return (
    `machine: ${cores[0]?.model.trim() ?? "unknown cpu"}, ${cores.length} cores, ` +
    `${fmt(totalmem() / 2 ** 30, 1)} GiB RAM, node ${process.version}, ${platform()} ${release()}`
  );
}

/**
 * Measures for 1 s how busy other processes keep the machine before a benchmark starts, and prints
 * that and the moto endpoint: figures are only comparable on an otherwise idle machine.
 */
export async function printLoadBeforeStart(): Promise<void> {
  const before = readThreadCpu();
  const cpuBefore = process.cpuUsage();
  await sleep(1000);
  const idleLoad = threadCpuDelta(before, readThreadCpu(), 1).machineBusy;
  const used = process.cpuUsage(cpuBefore);
  const ownLoad = (used.user + used.system) / 1e6;
  console.log(
    `load before starting: other processes kept ${fmt(Math.max(0, idleLoad - ownLoad), 2)} of ` +
      `${cpus().length} cores busy (figures below are only comparable on an otherwise idle machine)`,
  );
  const s3Endpoint = process.env["TRIBUTARY_TEST_S3_ENDPOINT"];
  console.log(
    `moto: ${s3Endpoint !== undefined && s3Endpoint !== "" ? s3Endpoint : "none set; started on demand"} ` +
      "(a Python process on the same cores)",
  );
}
