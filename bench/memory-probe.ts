/**
 * Where the server's memory goes during one row of bench/peers-bench.ts (issue 12's RSS target):
 * the same parts on a freshly started server (ack latency at 10 MiB/s, max appends, the catch-up
 * read of what they wrote; bench/load-generator.ts, the official SDK over S2S), then an idle
 * wait. Per part it prints the server's highest VmRSS (/proc, every 100 ms) and the highest V8
 * heap committed and used, external memory, append bytes in flight and frame-buffer bytes
 * (`/metrics`, every 200 ms); at the end VmHWM and the RSS after the idle wait. It never asserts.
 *
 *   node --import tsx bench/memory-probe.ts [--mode local|s3] [--record-bytes 8192] [--seconds 3]
 *     [--idle-seconds 10] [--server-arg=--no-compaction ...] [--env NAME=VALUE ...]
 *
 * `--mode s3` needs moto (scripts/with-moto.sh). `--env` sets the server's environment, e.g.
 * `--env NODE_OPTIONS=--max-semi-space-size=8` or `--env MALLOC_ARENA_MAX=2`; with
 * `--env "NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR"`, `kill -USR2` the
 * printed pid for a heap snapshot. Figures from one run on a shared machine vary a lot: compare
 * alternating runs.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { s2ClientFor, startServer } from "../server/test/support/server-process.js";
import {
  type BenchStream,
  createBodyPool,
  readBack,
  runMaxAppends,
  runPacedAppends,
} from "./load-generator.js";
import { openSdkStream } from "./peer-systems.js";
import {
  fmt,
  machineLine,
  metricValue,
  mib,
  printLoadBeforeStart,
  runBenchMain,
} from "./support.js";

/** VmRSS sampling period: short parts of a few seconds still get tens of samples. */
const rssSampleMs = 100;
/** `/metrics` sampling period: a scrape costs the server a little CPU. */
const metricsSampleMs = 200;
const pacedBytesPerSec = 10 * mib;

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "local" },
    "record-bytes": { type: "string", default: "8192" },
    seconds: { type: "string", default: "3" },
    "idle-seconds": { type: "string", default: "10" },
    "server-arg": { type: "string", multiple: true },
    env: { type: "string", multiple: true },
  },
});

interface PartPeaks {
  rssMiB: number;
  heapTotalMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  inflightMiB: number;
  frameBufferMiB: number;
}

const gauges: Readonly<Record<Exclude<keyof PartPeaks, "rssMiB">, string>> = {
  heapTotalMiB: "nodejs_heap_size_total_bytes",
  heapUsedMiB: "nodejs_heap_size_used_bytes",
  externalMiB: "nodejs_external_memory_bytes",
  inflightMiB: "tributary_append_inflight_bytes",
  frameBufferMiB: "tributary_frame_buffer_bytes",
};

function statusMiB(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

async function main(): Promise<void> {
  const mode = values.mode === "s3" ? "s3" : "local";
  const recordBytes = Number(values["record-bytes"]);
  const window = { seconds: Number(values.seconds), warmupSeconds: 1 };
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const at = pair.indexOf("=");
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  console.log(machineLine());
  await printLoadBeforeStart();
  const server = await startServer({
    mode,
    args: ["--flush-interval-ms", "5", ...(values["server-arg"] ?? [])],
    env,
  });
  const pid = server.child.pid ?? -1;
  console.log(`server pid ${pid}, ${mode}, ${recordBytes} B records, env ${JSON.stringify(env)}`);
  const peaks = new Map<string, PartPeaks>();
  let part = "start";
  const peaksOf = (): PartPeaks => {
    let entry = peaks.get(part);
    if (entry === undefined) {
      entry = {
        rssMiB: 0,
        heapTotalMiB: 0,
        heapUsedMiB: 0,
        externalMiB: 0,
        inflightMiB: 0,
        frameBufferMiB: 0,
      };
      peaks.set(part, entry);
    }
    return entry;
  };
  const rssTimer = setInterval(() => {
    const entry = peaksOf();
    entry.rssMiB = Math.max(entry.rssMiB, statusMiB(pid, "VmRSS") || 0);
  }, rssSampleMs);
  let isScraping = false;
  const metricsTimer = setInterval(() => {
    if (isScraping) return;
    isScraping = true;
    fetch(`${server.endpoint}/metrics`)
      .then((response) => response.text())
      .then((text) => {
        const entry = peaksOf();
        for (const [key, name] of Object.entries(gauges) as [keyof typeof gauges, string][]) {
          const value = metricValue(text, name);
          if (!Number.isNaN(value)) entry[key] = Math.max(entry[key], value / mib);
        }
      })
      .catch(() => {})
      .finally(() => {
        isScraping = false;
      });
  }, metricsSampleMs);
  const figures: string[] = [];
  try {
    const s2 = s2ClientFor(server);
    const basinName = `memory-${randomBytes(4).toString("hex")}`;
    await s2.basins.create({ basin: basinName });
    const basin = s2.basin(basinName);
    const open = (name: string): Promise<BenchStream> => openSdkStream(basin, name);
    const pool = createBodyPool(recordBytes);
    part = "paced";
    const latency = await open("latency");
    const paced = await runPacedAppends({
      stream: latency,
      pool,
      ratePerSec: pacedBytesPerSec / recordBytes,
      window,
    });
    figures.push(`paced: ${fmt(paced.mibPerSec, 1)} MiB/s, ack p50 ${fmt(paced.ackP50, 1)} ms`);
    part = "max";
    const throughput = await open("throughput");
    const max = await runMaxAppends({ stream: throughput, pool, window });
    figures.push(`max append: ${fmt(max.mibPerSec, 1)} MiB/s, ${max.records} records`);
    part = "catch-up";
    const catchUp = await readBack({ stream: throughput, pool, count: max.records });
    figures.push(
      `catch-up: ${fmt(catchUp.bodyMiB, 0)} MiB at ${fmt(catchUp.mibPerSec, 1)} MiB/s, ` +
        (catchUp.isVerified ? "verified" : "NOT VERIFIED"),
    );
    await latency.close();
    await throughput.close();
    part = "idle";
    await new Promise((resolve) => setTimeout(resolve, Number(values["idle-seconds"]) * 1000));
    figures.push(
      `VmHWM ${fmt(statusMiB(pid, "VmHWM"), 0)} MiB; VmRSS ${fmt(statusMiB(pid, "VmRSS"), 0)} ` +
        `MiB after ${values["idle-seconds"]} s idle`,
    );
  } finally {
    clearInterval(rssTimer);
    clearInterval(metricsTimer);
    await server.stop();
    await server.cleanup();
  }
  for (const line of figures) console.log(`  ${line}`);
  console.log(
    "  part      RSS  heap committed / used  external  in flight  frame buffer (MiB, peaks)",
  );
  for (const [name, p] of peaks) {
    console.log(
      `  ${name.padEnd(8)} ${fmt(p.rssMiB, 0).padStart(4)}  ${fmt(p.heapTotalMiB, 0).padStart(8)} / ` +
        `${fmt(p.heapUsedMiB, 0).padEnd(10)} ${fmt(p.externalMiB, 0).padStart(6)}  ` +
        `${fmt(p.inflightMiB, 1).padStart(9)}  ${fmt(p.frameBufferMiB, 1).padStart(12)}`,
    );
  }
}

runBenchMain("memory-probe", main);
