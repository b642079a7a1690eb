/**
 * The API benchmark ("end to end through the API"): the real server process (`tributary serve`)
 * in S3 mode against moto with `--flush-interval-ms 5`, driven only through the official SDK
 * `@s2-dev/streamstore` over S2S (HTTP/2 cleartext). Prints figures and a comparison with the
 * targets; it never asserts (a missed target is a finding, not a failure).
 *
 *   scripts/with-moto.sh node --import tsx bench/api-bench.ts [flags]    (or `make bench`)
 *
 * Parts (each on a freshly started server, stopped at the end of the part):
 * - latency: 8 KiB random records, one per batch, submitted to one S2S append session on a fixed
 *   schedule (10 MiB/s = 1280 records/s) without waiting for acks; ack latency from submit to ack,
 *   and end-to-end latency to a live S2S read session (opened before appending, following the
 *   tail): each record carries its send time (`performance.now()`) in a header.
 * - throughput: one stream, one append session, batches of 100 × 8 KiB with several in flight,
 *   as fast as it goes; durable MiB/s (acked record bodies); then a catch-up read of all of it
 *   with a read session from seq 0.
 * - rss: 10,000 streams with one record each (create-on-append basin, unary appends, bounded
 *   concurrency), then 1,000 idle S2S read sessions following the tail of 1,000 of them; the
 *   server process's RSS (/proc/<pid>/status).
 *
 * Flags: --only latency,throughput,rss  --seconds N (measured, default 5)  --warmup N (1)
 *   --batch N (records per batch in the throughput part, 100)  --inflight-mib N (the append
 *   session's maxInflightBytes there, 16)  --streams N (10000)  --sessions N (1000)
 *   --concurrency N (appends / session opens in flight in the rss part, 32)
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import {
  AppendInput,
  AppendRecord,
  type ReadRecord,
  type ReadSession,
  type S2,
} from "@s2-dev/streamstore";
import {
  type ServerProcess,
  s2ClientFor,
  startServer,
} from "../server/test/support/server-process.js";
import {
  fmt,
  kib,
  mib,
  percentile,
  randomBodies,
  readThreadCpu,
  sleep,
  sortedCopy,
  type ThreadCpu,
  table,
  threadCpuDelta,
  attempt,
  printSummary,
  runBenchMain,
  type Verdict,
  machineLine,
  printLoadBeforeStart,
  recordBytes,
  latencyRecordsPerSec,
  processCpuSeconds,
  processRss,
  runPaced,
} from "./support.js";

const flushIntervalMs = 5;
const rssRecordBytes = kib;
const parts = ["latency", "throughput", "rss"] as const;
type Part = (typeof parts)[number];
const sendTimeHeader = new TextEncoder().encode("t");
const textDecoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message: string): never {
  console.error(`api-bench: ${message}`);
  console.error(
    "flags: --only latency,throughput,rss --seconds N --warmup N --batch N --inflight-mib N " +
      "--streams N --sessions N --concurrency N",
  );
  process.exit(2);
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) usage(`--${name} must be a positive number`);
  return value;
}

function parseCli() {
  let values: ReturnType<typeof parse>["values"];
  function parse() {
    return parseArgs({
      options: {
        only: { type: "string", multiple: true },
        seconds: { type: "string" },
        warmup: { type: "string" },
        batch: { type: "string" },
        "inflight-mib": { type: "string" },
        streams: { type: "string" },
        sessions: { type: "string" },
        concurrency: { type: "string" },
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
  const chosen = (values.only ?? [...parts])
    .flatMap((value) => value.split(","))
    .filter((value) => value !== "");
  for (const value of chosen) {
    if (!parts.includes(value as Part)) usage(`--only: unknown value ${value}`);
  }
  const batch = Math.round(positive("batch", values.batch, 100));
  if (batch * (recordBytes + 8) > mib) usage("--batch: at most 127 records");
  const streams = Math.round(positive("streams", values.streams, 10_000));
  const sessions = Math.round(positive("sessions", values.sessions, 1000));
  if (sessions > streams) usage("--sessions: at most --streams");
  return {
    parts: new Set(chosen as Part[]),
    seconds: positive("seconds", values.seconds, 5),
    warmupSeconds: positive("warmup", values.warmup, 1),
    recordsPerBatch: batch,
    inflightBytes: positive("inflight-mib", values["inflight-mib"], 16) * mib,
    streams,
    sessions,
    concurrency: Math.round(positive("concurrency", values.concurrency, 32)),
  };
}

type Cli = ReturnType<typeof parseCli>;

// ---------------------------------------------------------------------------------------------
// The server process and what is sampled of it

/** Unlabelled samples (and `_sum` / `_count` of histograms) of the server's /metrics. */
async function serverMetrics(server: ServerProcess): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  try {
    const response = await fetch(`${server.endpoint}/metrics`);
    for (const line of (await response.text()).split("\n")) {
      if (line.startsWith("#")) continue;
      const match = /^([a-z_]+(?:\{[^}]*\})?) ([-+0-9.eE]+|NaN)$/.exec(line);
      if (match !== null) values.set(match[1]!, Number(match[2]));
    }
  } catch {
    // No metrics: the figures that need them print n/a.
  }
  return values;
}

async function startBenchServer(): Promise<ServerProcess> {
  return startServer({ mode: "s3", args: ["--flush-interval-ms", String(flushIntervalMs)] });
}

async function stopBenchServer(server: ServerProcess): Promise<void> {
  await server.stop();
  await server.cleanup();
}

function uniqueBasin(label: string): string {
  return `bench-${label}-${randomBytes(4).toString("hex")}`;
}

/** What is sampled at the edges of a measured window. */
interface Snapshot {
  readonly atMs: number;
  readonly cpu: NodeJS.CpuUsage;
  readonly serverCpu: number;
  readonly threads: ThreadCpu;
  readonly metrics: Map<string, number>;
}

async function snapshot(server: ServerProcess): Promise<Snapshot> {
  const metrics = await serverMetrics(server);
  return {
    atMs: performance.now(),
    cpu: process.cpuUsage(),
    serverCpu: processCpuSeconds(server.child.pid ?? -1),
    threads: readThreadCpu(),
    metrics,
  };
}

/** Figures common to every windowed run. */
interface WindowFigures {
  readonly seconds: number;
  /** Cores used by the bench process (the SDK client) and by the server process. */
  readonly clientCpu: number;
  readonly serverCpu: number;
  /** Cores busy in other processes (moto included) during the window. */
  readonly others: number;
  readonly putsPerSec: number;
  /** Mean server-side ack latency (its histogram), ms. */
  readonly serverAckMeanMs: number;
}

function windowFigures(start: Snapshot, end: Snapshot): WindowFigures {
  const seconds = (end.atMs - start.atMs) / 1000;
  const clientCpu =
    (end.cpu.user - start.cpu.user + (end.cpu.system - start.cpu.system)) / 1e6 / seconds;
  const serverCpu = (end.serverCpu - start.serverCpu) / seconds;
  const machineBusy = threadCpuDelta(start.threads, end.threads, seconds).machineBusy;
  const delta = (name: string): number =>
    (end.metrics.get(name) ?? Number.NaN) - (start.metrics.get(name) ?? Number.NaN);
  const ackSum = delta("tributary_append_ack_latency_seconds_sum");
  const ackCount = delta("tributary_append_ack_latency_seconds_count");
  return {
    seconds,
    clientCpu,
    serverCpu,
    others: Math.max(0, machineBusy - clientCpu - serverCpu),
    putsPerSec: delta("tributary_segment_puts_total") / seconds,
    serverAckMeanMs: ackCount > 0 ? (ackSum / ackCount) * 1000 : Number.NaN,
  };
}

function cpuColumns(w: WindowFigures): string {
  return `client ${fmt(w.clientCpu, 2)}, server ${fmt(w.serverCpu, 2)}, others ${fmt(w.others, 2)} cores`;
}

// ---------------------------------------------------------------------------------------------
// Part 1: ack and end-to-end latency at 10 MiB/s

interface LatencyResult extends WindowFigures {
  readonly samples: number;
  readonly mibPerSec: number;
  readonly ackP50: number;
  readonly ackP90: number;
  readonly ackP99: number;
  readonly ackMax: number;
  readonly e2eSamples: number;
  readonly e2eP50: number;
  readonly e2eP90: number;
  readonly e2eP99: number;
  readonly e2eMax: number;
  readonly issueLagP99: number;
  readonly missing: number;
  readonly errors: number;
}

async function runLatency(cli: Cli, server: ServerProcess, s2: S2): Promise<LatencyResult> {
  const bodies = randomBodies(2048, recordBytes);
  const basinName = uniqueBasin("lat");
  await s2.basins.create({ basin: basinName });
  const basin = s2.basin(basinName);
  await basin.streams.create({ stream: "latency" });
  const writer = basin.stream("latency");
  const reader = basin.stream("latency");
  try {
    // The reader follows the tail from the start, before anything is appended.
    const readSession = await reader.readSession(
      { start: { from: { seqNum: 0 } } },
      { as: "bytes" },
    );
    const session = await writer.appendSession();

    const intervalMs = 1000 / latencyRecordsPerSec;
    const t0 = performance.now();
    const windowStartMs = t0 + cli.warmupSeconds * 1000;
    const windowEndMs = windowStartMs + cli.seconds * 1000;
    const acks: number[] = [];
    const e2e: number[] = [];
    const issueLag: number[] = [];
    let errors = 0;
    let outstanding = 0;
    let drained: (() => void) | undefined;
    let received = 0;
    let expected = Number.POSITIVE_INFINITY;
    let allReceived: (() => void) | undefined;

    const readerDone = (async () => {
      const iterator = readSession[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done === true) return;
          const now = performance.now();
          const record = next.value as ReadRecord<"bytes">;
          const header = record.headers.find(([name]) => name.length === 1 && name[0] === 116);
          if (header !== undefined) {
            const sentAt = Number(textDecoder.decode(header[1]));
            if (sentAt >= windowStartMs && sentAt < windowEndMs) e2e.push(now - sentAt);
          }
          if (++received >= expected) {
            allReceived?.();
            return;
          }
        }
      } catch (error) {
        console.error("  latency: read session failed:", error);
      } finally {
        void iterator.return?.();
      }
    })();

    const issue = (i: number): void => {
      const at = performance.now();
      const inWindow = at >= windowStartMs;
      if (inWindow) issueLag.push(at - (t0 + i * intervalMs));
      outstanding++;
      const input = AppendInput.create([
        AppendRecord.bytes({
          body: bodies[i % bodies.length]!,
          headers: [[sendTimeHeader, String(at)]],
        }),
      ]);
      session
        .submit(input)
        .then((ticket) => ticket.ack())
        .then(
          () => {
            if (inWindow) acks.push(performance.now() - at);
            if (--outstanding === 0) drained?.();
          },
          (error: unknown) => {
            errors++;
            if (errors === 1) console.error("  latency: append failed:", error);
            if (--outstanding === 0) drained?.();
          },
        );
    };

    let start: Snapshot | undefined;
    let end: Snapshot | undefined;
    const issued = await runPaced({
      t0Ms: t0,
      ratePerSec: latencyRecordsPerSec,
      windowStartMs,
      windowEndMs,
      issue,
      onWindowStart: async () => void (start = await snapshot(server)),
      onWindowEnd: async () => void (end = await snapshot(server)),
    });
    if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve));
    await session.close();
    // Wait (bounded) for the reader to see every record, then stop it.
    expected = issued;
    if (received < expected) {
      await Promise.race([new Promise<void>((resolve) => (allReceived = resolve)), sleep(10_000)]);
    }
    const missing = Math.max(0, expected - received);
    if (missing > 0) await readSession.cancel().catch(() => {});
    await Promise.race([readerDone, sleep(2000)]);

    const figures = windowFigures(start!, end!);
    const sortedAcks = sortedCopy(acks);
    const sortedE2e = sortedCopy(e2e);
    return {
      ...figures,
      samples: acks.length,
      mibPerSec: (acks.length * recordBytes) / mib / figures.seconds,
      ackP50: percentile(sortedAcks, 50),
      ackP90: percentile(sortedAcks, 90),
      ackP99: percentile(sortedAcks, 99),
      ackMax: percentile(sortedAcks, 100),
      e2eSamples: e2e.length,
      e2eP50: percentile(sortedE2e, 50),
      e2eP90: percentile(sortedE2e, 90),
      e2eP99: percentile(sortedE2e, 99),
      e2eMax: percentile(sortedE2e, 100),
      issueLagP99: percentile(sortedCopy(issueLag), 99),
      missing,
      errors,
    };
  } finally {
    await writer.close();
    await reader.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: max throughput of one append session, then a catch-up read

interface ThroughputResult extends WindowFigures {
  readonly mibPerSec: number;
  readonly recordsPerSec: number;
  readonly batchesPerSec: number;
  readonly ackP50: number;
  readonly ackP99: number;
  readonly totalRecords: number;
  readonly errors: number;
  readonly readMiB: number;
  readonly readSeconds: number;
  readonly readMiBPerSec: number;
  readonly readRecords: number;
  readonly readServerCpu: number;
}

async function runThroughput(cli: Cli, server: ServerProcess, s2: S2): Promise<ThroughputResult> {
  const bodies = randomBodies(4096, recordBytes);
  const inputs: AppendInput[] = [];
  for (let b = 0; b < 64; b++) {
    const records = Array.from({ length: cli.recordsPerBatch }, (_, i) =>
      AppendRecord.bytes({ body: bodies[(b * cli.recordsPerBatch + i) % bodies.length]! }),
    );
    inputs.push(AppendInput.create(records));
  }
  const basinName = uniqueBasin("tput");
  await s2.basins.create({ basin: basinName });
  const basin = s2.basin(basinName);
  await basin.streams.create({ stream: "throughput" });
  const writer = basin.stream("throughput");
  const reader = basin.stream("throughput");
  try {
    const session = await writer.appendSession({ maxInflightBytes: cli.inflightBytes });
    const t0 = performance.now();
    const windowStartMs = t0 + cli.warmupSeconds * 1000;
    const windowEndMs = windowStartMs + cli.seconds * 1000;
    let ackedRecords = 0;
    let ackedBatches = 0;
    let errors = 0;
    const ackMs: number[] = [];
    const pending: Promise<void>[] = [];
    let start: Snapshot | undefined;
    let startRecords = 0;
    let startBatches = 0;
    let end: Snapshot | undefined;
    let endRecords = 0;
    let endBatches = 0;
    // Window edges are sampled by timers, independent of submit's backpressure.
    const startTimer = setTimeout(() => {
      startRecords = ackedRecords;
      startBatches = ackedBatches;
      void snapshot(server).then((s) => (start = s));
    }, windowStartMs - t0);
    const endTimer = setTimeout(() => {
      endRecords = ackedRecords;
      endBatches = ackedBatches;
      void snapshot(server).then((s) => (end = s));
    }, windowEndMs - t0);
    let k = 0;
    while (performance.now() < windowEndMs && errors === 0) {
      const input = inputs[k++ % inputs.length]!;
      const at = performance.now();
      const ticket = await session.submit(input);
      pending.push(
        ticket.ack().then(
          () => {
            const now = performance.now();
            if (now >= windowStartMs && now < windowEndMs) ackMs.push(now - at);
            ackedRecords += input.records.length;
            ackedBatches++;
          },
          (error: unknown) => {
            errors++;
            if (errors === 1) console.error("  throughput: append failed:", error);
          },
        ),
      );
    }
    await Promise.all(pending);
    await session.close().catch(() => {});
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    while (end === undefined && errors === 0) await sleep(10);
    if (start === undefined || end === undefined) throw new Error("the run ended early");
    const figures = windowFigures(start, end);
    const totalRecords = ackedRecords;

    // Catch-up read of everything from seq 0.
    const readStartMs = performance.now();
    const readCpuStart = processCpuSeconds(server.child.pid ?? -1);
    const readSession = await reader.readSession(
      { start: { from: { seqNum: 0 } }, stop: { limits: { count: totalRecords } } },
      { as: "bytes" },
    );
    let readRecords = 0;
    let readBytes = 0;
    for await (const record of readSession) {
      readRecords++;
      readBytes += record.body.length;
    }
    const readSeconds = (performance.now() - readStartMs) / 1000;
    const readServerCpu = (processCpuSeconds(server.child.pid ?? -1) - readCpuStart) / readSeconds;
    const sortedAcks = sortedCopy(ackMs);
    return {
      ...figures,
      mibPerSec: ((endRecords - startRecords) * recordBytes) / mib / figures.seconds,
      recordsPerSec: (endRecords - startRecords) / figures.seconds,
      batchesPerSec: (endBatches - startBatches) / figures.seconds,
      ackP50: percentile(sortedAcks, 50),
      ackP99: percentile(sortedAcks, 99),
      totalRecords,
      errors,
      readMiB: readBytes / mib,
      readSeconds,
      readMiBPerSec: readBytes / mib / readSeconds,
      readRecords,
      readServerCpu,
    };
  } finally {
    await writer.close();
    await reader.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Part 3: RSS with many streams and idle read sessions

interface RssResult {
  readonly startRssMiB: number;
  readonly afterStreamsRssMiB: number;
  readonly streamsSeconds: number;
  readonly sessionsOpen: number;
  readonly sessionsServer: number;
  readonly sessionsSeconds: number;
  readonly rssMiB: number;
  readonly peakMiB: number;
  readonly errors: number;
}

/** Runs `task(0..count-1)` with at most `concurrency` at once. */
async function bounded(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function runRss(cli: Cli, server: ServerProcess, s2: S2): Promise<RssResult> {
  const pid = server.child.pid ?? -1;
  const bodies = randomBodies(256, rssRecordBytes);
  const basinName = uniqueBasin("rss");
  await s2.basins.create({ basin: basinName, config: { createStreamOnAppend: true } });
  const basin = s2.basin(basinName);
  const name = (i: number): string => `s-${String(i).padStart(5, "0")}`;
  await sleep(500);
  const startRssMiB = processRss(pid).rssMiB;
  let errors = 0;
  const fail = (what: string, error: unknown): void => {
    errors++;
    if (errors === 1) console.error(`  rss: ${what} failed:`, error);
  };

  const streamsStartMs = performance.now();
  await bounded(cli.streams, cli.concurrency, async (i) => {
    const stream = basin.stream(name(i));
    try {
      await stream.append(
        AppendInput.create([AppendRecord.bytes({ body: bodies[i % bodies.length]! })]),
      );
    } catch (error) {
      fail("append", error);
    } finally {
      await stream.close();
    }
  });
  const streamsSeconds = (performance.now() - streamsStartMs) / 1000;
  await sleep(500);
  const afterStreamsRssMiB = processRss(pid).rssMiB;

  const open: { stream: ReturnType<typeof basin.stream>; session: ReadSession<"bytes"> }[] = [];
  const sessionsStartMs = performance.now();
  try {
    await bounded(cli.sessions, cli.concurrency, async (i) => {
      const stream = basin.stream(name(i));
      try {
        // From the tail (each stream holds exactly one record): idle, following it.
        const session = await stream.readSession(
          { start: { from: { seqNum: 1 } } },
          { as: "bytes" },
        );
        open.push({ stream, session });
      } catch (error) {
        fail("read session", error);
        await stream.close();
      }
    });
    const sessionsSeconds = (performance.now() - sessionsStartMs) / 1000;
    // Let the server settle with every session open (heartbeats flowing), then sample.
    await sleep(2000);
    const metrics = await serverMetrics(server);
    let sessionsServer = 0;
    for (const [key, value] of metrics) {
      if (key.startsWith("tributary_sessions{")) sessionsServer += value;
    }
    const { rssMiB, peakMiB } = processRss(pid);
    return {
      startRssMiB,
      afterStreamsRssMiB,
      streamsSeconds,
      sessionsOpen: open.length,
      sessionsServer,
      sessionsSeconds,
      rssMiB,
      peakMiB,
      errors,
    };
  } finally {
    await bounded(open.length, cli.concurrency, async (i) => {
      const { stream, session } = open[i]!;
      await session.cancel().catch(() => {});
      await stream.close().catch(() => {});
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Main

/** Starts a server, runs `body` against it with an SDK client, and always stops it. */
async function onFreshServer<T>(
  label: string,
  body: (server: ServerProcess, s2: S2) => Promise<T>,
): Promise<T | undefined> {
  return attempt(label, async () => {
    const server = await startBenchServer();
    try {
      return await body(server, s2ClientFor(server));
    } finally {
      await stopBenchServer(server);
    }
  });
}

async function main(): Promise<void> {
  const cli = parseCli();
  console.log(
    "Tributary API benchmark (end to end: the server as a separate process, S3 mode on moto, " +
      `--flush-interval-ms ${flushIntervalMs}; the official SDK over S2S HTTP/2 as the client)`,
  );
  console.log(machineLine());
  console.log(
    `records: 8 KiB random bodies prepared before timing; MiB/s counts record bodies acked; ` +
      `warm-up ${cli.warmupSeconds} s, measured ${cli.seconds} s; each part on a fresh server`,
  );
  await printLoadBeforeStart();
  console.log(
    "columns: client / server = cores used by this process (the SDK) / the server process; " +
      "others = cores busy in other processes meanwhile (moto included; other work on the " +
      "machine skews every figure); PUT/s and server ack mean from the server's /metrics",
  );
  const verdicts: Verdict[] = [];

  if (cli.parts.has("latency")) {
    console.log(
      `\n== Latency at ${latencyRecordsPerSec} records/s (10 MiB/s), one 8 KiB record per batch, ` +
        "one S2S append session, pipelined; a live S2S read session following the tail; ms ==",
    );
    const r = await onFreshServer("latency", (server, s2) => runLatency(cli, server, s2));
    if (r !== undefined) {
      console.log(
        table(
          ["latency", "samples", "p50", "p90", "p99", "max"],
          [
            [
              "ack (submit → ack)",
              String(r.samples),
              fmt(r.ackP50, 2),
              fmt(r.ackP90, 2),
              fmt(r.ackP99, 2),
              fmt(r.ackMax, 2),
            ],
            [
              "end to end (submit → reader)",
              String(r.e2eSamples),
              fmt(r.e2eP50, 2),
              fmt(r.e2eP90, 2),
              fmt(r.e2eP99, 2),
              fmt(r.e2eMax, 2),
            ],
          ],
        ),
      );
      console.log(
        `  ${fmt(r.mibPerSec, 2)} MiB/s acked; server ack mean ${fmt(r.serverAckMeanMs, 2)} ms ` +
          `(its own histogram: arrival → durable); ${fmt(r.putsPerSec, 1)} PUT/s; ` +
          `${cpuColumns(r)}; submit lag p99 ${fmt(r.issueLagP99, 2)} ms; ${r.errors} errors; ` +
          `${r.missing} records not seen by the reader`,
      );
    }
    verdicts.push(
      {
        measurement: "ack p50, S2S session, 10 MiB/s",
        figure: r ? `${fmt(r.ackP50, 2)} ms` : "error",
        target: "≤ 10 ms",
        met: r ? r.ackP50 <= 10 : undefined,
      },
      {
        measurement: "ack p99, S2S session, 10 MiB/s",
        figure: r ? `${fmt(r.ackP99, 2)} ms` : "error",
        target: "≤ 15 ms",
        met: r ? r.ackP99 <= 15 : undefined,
      },
      {
        measurement: "end-to-end p50 to a live S2S reader",
        figure: r ? `${fmt(r.e2eP50, 2)} ms` : "error",
        target: "≤ 11 ms",
        met: r ? r.e2eP50 <= 11 : undefined,
      },
      {
        measurement: "end-to-end p99 to a live S2S reader",
        figure: r ? `${fmt(r.e2eP99, 2)} ms` : "error",
        target: "≤ 16 ms",
        met: r ? r.e2eP99 <= 16 : undefined,
      },
    );
  }

  if (cli.parts.has("throughput")) {
    console.log(
      `\n== Max throughput, one stream, one S2S append session, ${cli.recordsPerBatch} × 8 KiB ` +
        `per batch, maxInflightBytes ${fmt(cli.inflightBytes / mib, 0)} MiB; then a catch-up ` +
        "read of it all from seq 0 with one read session ==",
    );
    const r = await onFreshServer("throughput", (server, s2) => runThroughput(cli, server, s2));
    if (r !== undefined) {
      console.log(
        `  append: ${fmt(r.mibPerSec, 1)} MiB/s durable (${fmt(r.recordsPerSec, 0)} rec/s, ` +
          `${fmt(r.batchesPerSec, 0)} batches/s), batch ack p50 ${fmt(r.ackP50, 1)} ms, ` +
          `p99 ${fmt(r.ackP99, 1)} ms; server ack mean ${fmt(r.serverAckMeanMs, 1)} ms; ` +
          `${fmt(r.putsPerSec, 1)} PUT/s; ${cpuColumns(r)} (server ` +
          `${fmt((r.serverCpu * 1000) / r.mibPerSec, 1)} ms CPU/MiB); ${r.errors} errors`,
      );
      console.log(
        `  catch-up read: ${r.readRecords} of ${r.totalRecords} records, ${fmt(r.readMiB, 0)} MiB ` +
          `in ${fmt(r.readSeconds, 2)} s = ${fmt(r.readMiBPerSec, 1)} MiB/s; server ` +
          `${fmt(r.readServerCpu, 2)} cores (${fmt((r.readServerCpu * 1000) / r.readMiBPerSec, 1)} ms CPU/MiB)`,
      );
    }
    verdicts.push(
      {
        measurement: "append throughput, 1 stream, 1 session",
        figure: r ? `${fmt(r.mibPerSec)} MiB/s` : "error",
        target: "≥ 125 MiB/s",
        met: r ? r.mibPerSec >= 125 : undefined,
      },
      {
        measurement: "catch-up read, 1 read session",
        figure: r ? `${fmt(r.readMiBPerSec)} MiB/s` : "error",
        target: "≥ 500 MiB/s",
        met: r ? r.readMiBPerSec >= 500 && r.readRecords === r.totalRecords : undefined,
      },
    );
  }

  if (cli.parts.has("rss")) {
    console.log(
      `\n== Server RSS: ${cli.streams} streams with one ${rssRecordBytes / kib} KiB record each ` +
        `(create-on-append, unary appends, ${cli.concurrency} in flight), then ${cli.sessions} ` +
        "idle S2S read sessions following the tail of as many of them ==",
    );
    const r = await onFreshServer("rss", (server, s2) => runRss(cli, server, s2));
    if (r !== undefined) {
      console.log(
        `  RSS at start ${fmt(r.startRssMiB)} MiB; after ${cli.streams} streams ` +
          `${fmt(r.afterStreamsRssMiB)} MiB (created in ${fmt(r.streamsSeconds, 1)} s); with ` +
          `${r.sessionsOpen} sessions open (server counts ${r.sessionsServer}; opened in ` +
          `${fmt(r.sessionsSeconds, 1)} s) ${fmt(r.rssMiB)} MiB; peak (VmHWM) ${fmt(r.peakMiB)} MiB; ` +
          `${r.errors} errors`,
      );
    }
    verdicts.push({
      measurement: `server RSS, ${cli.streams} streams + ${cli.sessions} idle sessions`,
      figure: r ? `${fmt(r.rssMiB)} MiB (peak ${fmt(r.peakMiB)})` : "error",
      target: "< 1024 MiB",
      met: r ? r.rssMiB < 1024 && r.sessionsOpen === cli.sessions && r.errors === 0 : undefined,
    });
  }

  printSummary(verdicts);
}

runBenchMain("api-bench", main);
