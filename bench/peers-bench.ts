/**
 * The comparison bench of issue 12: Tributary next to Redis Streams and NATS JetStream on one
 * machine in one run, every system driven by the same load generator (bench/load-generator.ts:
 * records batched with the SDK producer's 5 ms linger, one stream) and every record read back and
 * compared byte for byte. Prints the README's table for each record size and issue 12's targets
 * for the Tributary rows, met or missed; it never asserts (a missed target is a finding).
 *
 *   scripts/with-moto.sh node --import tsx bench/peers-bench.ts [flags]    (or `make bench`)
 *
 * Each row (a system and a record size) runs on a freshly started server:
 * - ack latency: records submitted on a fixed schedule at 10 MiB/s; ms from a record's submission
 *   to the acknowledgement of its batch (the linger included, as a producer's caller sees it);
 * - max append: one stream, records submitted as fast as the producer takes them with 16 MiB of
 *   batches in flight; MiB/s of record bodies acknowledged in the measured window;
 * - catch-up read: everything the max-append part wrote, from the first record, in one pass (from
 *   Tributary's cache: nothing has been evicted); every record compared with what was appended;
 * - server peak RSS: VmHWM of the server process over the whole row.
 * The latency part's stream is read back and compared too, untimed.
 *
 * Redis and NATS are Debian's packages, installed (as root) when missing. Flags: --seconds N
 * (measured seconds of each timed part, default TRIBUTARY_BENCH_SECONDS or 5) --warmup N (1, at
 * most --seconds) --systems tributary-local,tributary-moto,redis-always,redis-everysec,nats
 * --sizes 8192,512 (record bytes). A smoke run: TRIBUTARY_BENCH_SECONDS=0.5 (under a minute).
 */
import { parseArgs } from "node:util";
import {
  type BenchStream,
  createBodyPool,
  inflightBytesMax,
  lingerMs,
  type PacedResult,
  type ReadBackResult,
  readBack,
  runMaxAppends,
  runPacedAppends,
  type ThroughputResult,
  type Window,
} from "./load-generator.js";
import {
  type BenchSystem,
  binaryVersion,
  ensurePeerBinaries,
  natsSystem,
  redisSystem,
  tributarySystem,
} from "./peer-systems.js";
import {
  attempt,
  fmt,
  kib,
  machineLine,
  mib,
  printLoadBeforeStart,
  printSummary,
  processCpuSeconds,
  processRss,
  runBenchMain,
  type Verdict,
} from "./support.js";

const systemKeys = [
  "tributary-local",
  "tributary-moto",
  "redis-always",
  "redis-everysec",
  "nats",
] as const;
type SystemKey = (typeof systemKeys)[number];
const pacedBytesPerSec = 10 * mib;

// Issue 12's targets that this bench measures (for the Tributary rows).
const catchUpMiBPerSecMin = 400;
const catchUpServerCpuMsPerMiBMax = 3;
const appendMiBPerSecMin: Readonly<Record<number, number>> = { [8 * kib]: 150, 512: 60 };
const ackP50MsMax = 10;
const ackP99MsMax = 15;
const rssMiBMax = 300;

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message: string): never {
  console.error(`peers-bench: ${message}`);
  console.error(`flags: --seconds N --warmup N --systems ${systemKeys.join(",")} --sizes 8192,512`);
  process.exit(2);
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) usage(`--${name} must be a positive number`);
  return value;
}

const cliOptions = {
  seconds: { type: "string" },
  warmup: { type: "string" },
  systems: { type: "string", multiple: true },
  sizes: { type: "string", multiple: true },
  help: { type: "boolean" },
} as const;

function parseCli() {
  let values: ReturnType<typeof parseArgs<{ options: typeof cliOptions }>>["values"];
  try {
    values = parseArgs({ options: cliOptions, strict: true, allowPositionals: false }).values;
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) usage("help");
  const list = (raw: string[] | undefined, fallback: readonly string[]): string[] =>
    (raw ?? [...fallback]).flatMap((value) => value.split(",")).filter((value) => value !== "");
  const systems = list(values.systems, systemKeys);
  for (const key of systems) {
    if (!systemKeys.includes(key as SystemKey)) usage(`--systems: unknown value ${key}`);
  }
  const sizes = list(values.sizes, ["8192", "512"]).map(Number);
  for (const size of sizes) {
    if (!Number.isSafeInteger(size) || size < 16 || size > 512 * kib) {
      usage("--sizes: record bytes from 16 to 524288");
    }
  }
  const seconds = positive("seconds", values.seconds ?? process.env["TRIBUTARY_BENCH_SECONDS"], 5);
  const window: Window = {
    seconds,
    warmupSeconds: positive("warmup", values.warmup, Math.min(1, seconds)),
  };
  return { systems: systems as SystemKey[], sizes, window };
}

// ---------------------------------------------------------------------------------------------
// One row: a system and a record size, on a freshly started server

/** Cores used by this process (the client) and by the server process over a window. */
interface CpuFigures {
  readonly client: number;
  readonly server: number;
}

function cpuMeter(pid: number): { start(): void; stop(): void; figures(): CpuFigures } {
  let startMs = 0;
  let startClient: NodeJS.CpuUsage | undefined;
  let startServer = 0;
  let figures: CpuFigures = { client: Number.NaN, server: Number.NaN };
  return {
    start() {
      startMs = performance.now();
      startClient = process.cpuUsage();
      startServer = processCpuSeconds(pid);
    },
    stop() {
      if (startClient === undefined) return;
      const seconds = (performance.now() - startMs) / 1000;
      const client = process.cpuUsage(startClient);
      figures = {
        client: (client.user + client.system) / 1e6 / seconds,
        server: (processCpuSeconds(pid) - startServer) / seconds,
      };
    },
    figures: () => figures,
  };
}

interface RowResult {
  readonly paced: PacedResult;
  readonly pacedCpu: CpuFigures;
  readonly max: ThroughputResult;
  readonly maxCpu: CpuFigures;
  readonly catchUp: ReadBackResult;
  readonly catchUpCpu: CpuFigures;
  /** The latency part's stream, read back untimed. */
  readonly pacedReadBack: ReadBackResult;
  readonly peakRssMiB: number;
  readonly endRssMiB: number;
}

async function runRow(
  system: BenchSystem,
  recordBytes: number,
  window: Window,
): Promise<RowResult> {
  const pool = createBodyPool(recordBytes);
  const running = await system.start();
  const streams: BenchStream[] = [];
  try {
    const meter = cpuMeter(running.pid);
    const latencyStream = await running.openStream("latency", recordBytes);
    streams.push(latencyStream);
    const paced = await runPacedAppends({
      stream: latencyStream,
      pool,
      ratePerSec: pacedBytesPerSec / recordBytes,
      window,
      onWindowStart: meter.start,
      onWindowEnd: meter.stop,
    });
    const pacedCpu = meter.figures();

    const throughputStream = await running.openStream("throughput", recordBytes);
    streams.push(throughputStream);
    const max = await runMaxAppends({
      stream: throughputStream,
      pool,
      window,
      onWindowStart: meter.start,
      onWindowEnd: meter.stop,
    });
    const maxCpu = meter.figures();

    meter.start();
    const catchUp = await readBack({ stream: throughputStream, pool, count: max.records });
    meter.stop();
    const catchUpCpu = meter.figures();
    const pacedReadBack = await readBack({ stream: latencyStream, pool, count: paced.records });
    const { peakMiB, rssMiB } = processRss(running.pid);
    return {
      paced,
      pacedCpu,
      max,
      maxCpu,
      catchUp,
      catchUpCpu,
      pacedReadBack,
      peakRssMiB: peakMiB,
      endRssMiB: rssMiB,
    };
  } finally {
    for (const stream of streams) await stream.close().catch(() => {});
    await running.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Printing

function sizeLabel(recordBytes: number): string {
  return recordBytes % kib === 0 ? `${recordBytes / kib} KiB` : `${recordBytes} B`;
}

function ms(value: number): string {
  return fmt(value, value < 1 ? 2 : value < 100 ? 1 : 0);
}

function rate(value: number): string {
  return fmt(value, value < 100 ? 1 : 0);
}

function memory(valueMiB: number): string {
  return valueMiB >= 1024 ? `${fmt(valueMiB / 1024, 2)} GiB` : `${fmt(valueMiB, 0)} MiB`;
}

function cpuPerMiB(cores: number, mibPerSec: number): string {
  return `${fmt((cores * 1000) / mibPerSec, 1)} ms CPU/MiB`;
}

function verified(r: ReadBackResult, expected: number): string {
  return r.isVerified
    ? `${r.records} of ${expected} records verified`
    : `NOT VERIFIED: ${r.records} of ${expected} records read, ${r.mismatched} with other bytes`;
}

function errorText(errors: number, first: unknown): string {
  if (errors === 0) return "0 errors";
  return `${errors} errors, first: ${first instanceof Error ? first.message : String(first)}`;
}

function printRowDetails(r: RowResult): void {
  const p = r.paced;
  console.log(
    `  ack at 10 MiB/s: ${fmt(p.mibPerSec, 2)} MiB/s acked, submit → ack p50 ${ms(p.ackP50)} / ` +
      `p99 ${ms(p.ackP99)} / max ${ms(p.ackMax)} ms; batch sent → ack p50 ${ms(p.batchAckP50)} / ` +
      `p99 ${ms(p.batchAckP99)} ms, ${fmt(p.batchesPerSec, 0)} batches/s; client ` +
      `${fmt(r.pacedCpu.client, 2)}, server ${fmt(r.pacedCpu.server, 2)} cores; ` +
      errorText(p.errors, p.firstError),
  );
  const m = r.max;
  console.log(
    `  max append: ${rate(m.mibPerSec)} MiB/s, ${fmt(m.batchesPerSec, 0)} batches/s, batch ack ` +
      `p50 ${ms(m.batchAckP50)} / p99 ${ms(m.batchAckP99)} ms; client ${fmt(r.maxCpu.client, 2)}, ` +
      `server ${fmt(r.maxCpu.server, 2)} cores (server ${cpuPerMiB(r.maxCpu.server, m.mibPerSec)}); ` +
      errorText(m.errors, m.firstError),
  );
  const c = r.catchUp;
  console.log(
    `  catch-up read: ${fmt(c.bodyMiB, 0)} MiB in ${fmt(c.seconds, 2)} s = ${rate(c.mibPerSec)} ` +
      `MiB/s, ${verified(c, m.records)}; client ${fmt(r.catchUpCpu.client, 2)}, server ` +
      `${fmt(r.catchUpCpu.server, 2)} cores (server ${cpuPerMiB(r.catchUpCpu.server, c.mibPerSec)})`,
  );
  console.log(
    `  latency stream read back: ${verified(r.pacedReadBack, p.records)}; server RSS peak ` +
      `${memory(r.peakRssMiB)}, at the end ${memory(r.endRssMiB)}`,
  );
}

function readCell(r: ReadBackResult): string {
  return r.isVerified ? rate(r.mibPerSec) : `${rate(r.mibPerSec)} (NOT VERIFIED)`;
}

/** The README's table for one record size (Markdown). */
function printTable(
  recordBytes: number,
  rows: readonly { system: BenchSystem; result: RowResult | undefined }[],
): void {
  console.log(
    `\n| ${sizeLabel(recordBytes)} records | ack p50 / p99 ms at 10 MiB/s | one-stream append MiB/s ` +
      "| catch-up read MiB/s | server peak RSS |",
  );
  console.log("| --- | --- | --- | --- | --- |");
  for (const { system, result: r } of rows) {
    const cells =
      r === undefined
        ? ["error", "error", "error", "error"]
        : [
            `${ms(r.paced.ackP50)} / ${ms(r.paced.ackP99)}`,
            rate(r.max.mibPerSec),
            readCell(r.catchUp),
            memory(r.peakRssMiB),
          ];
    console.log(`| ${system.label} | ${cells.join(" | ")} |`);
  }
}

function verdictsFor(
  system: BenchSystem,
  recordBytes: number,
  r: RowResult | undefined,
): Verdict[] {
  const at = `${system.label}, ${sizeLabel(recordBytes)}`;
  const verdicts: Verdict[] = [];
  if (recordBytes === 8 * kib) {
    verdicts.push(
      {
        measurement: `${at}: ack p50 at 10 MiB/s`,
        figure: r ? `${ms(r.paced.ackP50)} ms` : "error",
        target: `≤ ${ackP50MsMax} ms`,
        met: r ? r.paced.ackP50 <= ackP50MsMax && r.paced.errors === 0 : undefined,
      },
      {
        measurement: `${at}: ack p99 at 10 MiB/s`,
        figure: r ? `${ms(r.paced.ackP99)} ms` : "error",
        target: `≤ ${ackP99MsMax} ms`,
        met: r ? r.paced.ackP99 <= ackP99MsMax && r.paced.errors === 0 : undefined,
      },
    );
  }
  const appendMin = appendMiBPerSecMin[recordBytes];
  if (appendMin !== undefined) {
    verdicts.push({
      measurement: `${at}: one-stream append`,
      figure: r ? `${rate(r.max.mibPerSec)} MiB/s` : "error",
      target: `≥ ${appendMin} MiB/s`,
      met: r ? r.max.mibPerSec >= appendMin && r.max.errors === 0 : undefined,
    });
  }
  verdicts.push(
    {
      measurement: `${at}: catch-up read from the cache`,
      figure: r ? `${readCell(r.catchUp)} MiB/s` : "error",
      target: `≥ ${catchUpMiBPerSecMin} MiB/s`,
      met: r ? r.catchUp.mibPerSec >= catchUpMiBPerSecMin && r.catchUp.isVerified : undefined,
    },
    {
      measurement: `${at}: server CPU of the catch-up read`,
      figure: r ? cpuPerMiB(r.catchUpCpu.server, r.catchUp.mibPerSec) : "error",
      target: `≤ ${catchUpServerCpuMsPerMiBMax} ms CPU/MiB`,
      met: r
        ? (r.catchUpCpu.server * 1000) / r.catchUp.mibPerSec <= catchUpServerCpuMsPerMiBMax
        : undefined,
    },
    {
      measurement: `${at}: server peak RSS`,
      figure: r ? memory(r.peakRssMiB) : "error",
      target: `≤ ${rssMiBMax} MiB`,
      met: r ? r.peakRssMiB <= rssMiBMax : undefined,
    },
  );
  return verdicts;
}

// ---------------------------------------------------------------------------------------------
// Main

function chosenSystems(keys: readonly SystemKey[]): BenchSystem[] {
  const wantsPeers = keys.some((key) => !key.startsWith("tributary-"));
  const binaries = wantsPeers ? ensurePeerBinaries() : new Set<string>();
  const systems: BenchSystem[] = [];
  for (const key of keys) {
    switch (key) {
      case "tributary-local":
        systems.push(tributarySystem("local"));
        break;
      case "tributary-moto":
        systems.push(tributarySystem("s3"));
        break;
      case "redis-always":
      case "redis-everysec":
        if (!binaries.has("redis-server")) break;
        systems.push(
          redisSystem(
            key === "redis-always" ? "always" : "everysec",
            binaryVersion("redis-server"),
          ),
        );
        break;
      case "nats":
        if (binaries.has("nats-server")) systems.push(natsSystem(binaryVersion("nats-server")));
        break;
    }
  }
  return systems;
}

async function main(): Promise<void> {
  const cli = parseCli();
  console.log(
    "Comparison benchmark (issue 12): one stream per system, one load generator for all; " +
      `records batched as the S2 SDK's producer does (${lingerMs} ms linger, 1,000 records or ` +
      `1 MiB), ${fmt(inflightBytesMax / mib, 0)} MiB of batches in flight at max throughput; ` +
      "every record read back and compared byte for byte",
  );
  console.log(machineLine());
  const systems = chosenSystems(cli.systems);
  console.log(
    `random bodies prepared before timing; warm-up ${cli.window.warmupSeconds} s, measured ` +
      `${cli.window.seconds} s per timed part; each row on a freshly started server`,
  );
  await printLoadBeforeStart();
  console.log(
    "columns: client / server = cores used by this process (the load generator and the " +
      "system's client library, one Node thread: near 1.0 it, not the server, sets the figure) / " +
      "by the server process",
  );
  console.log("systems (client: Tributary the SDK over S2S, Redis ioredis, NATS nats.js):");
  for (const system of systems) console.log(`  ${system.label}: ${system.durability}`);

  const verdicts: Verdict[] = [];
  const tables: {
    recordBytes: number;
    rows: { system: BenchSystem; result: RowResult | undefined }[];
  }[] = [];
  for (const recordBytes of cli.sizes) {
    const rows: { system: BenchSystem; result: RowResult | undefined }[] = [];
    for (const system of systems) {
      console.log(`\n== ${system.label}, ${sizeLabel(recordBytes)} records ==`);
      const result = await attempt(system.label, () => runRow(system, recordBytes, cli.window));
      if (result !== undefined) printRowDetails(result);
      rows.push({ system, result });
      if (system.isTributary) verdicts.push(...verdictsFor(system, recordBytes, result));
    }
    tables.push({ recordBytes, rows });
  }

  console.log(
    "\n== Tables (ack: a record's submission → its batch acknowledged, the linger included; " +
      "catch-up: every record verified) ==",
  );
  for (const { recordBytes, rows } of tables) printTable(recordBytes, rows);
  printSummary(verdicts);
}

runBenchMain("peers-bench", main);
