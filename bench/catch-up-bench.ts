/**
 * The catch-up read of issue 12 alone: one stream of `--mib` MiB of `--record-bytes` records is
 * written through the official SDK (`@s2-dev/streamstore`, an S2S append session), the server is
 * restarted on the same object store, and the stream is read back from its first record through an
 * S2S read session `--rounds` times, every record compared with what was appended (as
 * bench/peers-bench.ts reads, but without its append parts, so a profile of the restarted server
 * holds the catch-up and little else). The figure that matters is the server's CPU per MiB read
 * (from /proc, robust on a shared machine), next to MiB/s and the client's CPU.
 *
 *   node --import tsx bench/catch-up-bench.ts [--mode local|s3] [--mib 256] [--rounds 3]
 *     [--record-bytes 8192] [--cold] [--from-chunks] [--profile-dir DIR] [--no-compaction]
 *
 * `--mode s3` needs moto (scripts/with-moto.sh). `--cold` restarts the server with an empty cache
 * directory bounded to 16 MiB, so the reads come from the object store (each round prints how many
 * entries came from cache files and how many from the bucket). `--profile-dir` starts the restarted server with `--cpu-prof` into DIR (read
 * it with scripts/cpu-profile-summary.ts).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { AppendInput, AppendRecord } from "@s2-dev/streamstore";
import {
  type ServerProcess,
  s2ClientFor,
  startServer,
} from "../server/test/support/server-process.js";
import { createBodyPool } from "./load-generator.js";
import {
  fmt,
  metricValue,
  machineLine,
  mib,
  printLoadBeforeStart,
  processCpuSeconds,
  runBenchMain,
} from "./support.js";

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "local" },
    mib: { type: "string", default: "256" },
    rounds: { type: "string", default: "3" },
    "record-bytes": { type: "string", default: "8192" },
    cold: { type: "boolean", default: false },
    "profile-dir": { type: "string" },
    "no-compaction": { type: "boolean", default: false },
    "from-chunks": { type: "boolean", default: false },
  },
  strict: true,
});
const mode = values.mode === "s3" ? "s3" : "local";
const totalMiB = Number(values.mib);
const rounds = Number(values.rounds);
const recordBytes = Number(values["record-bytes"]);
/** Bytes of appends unacknowledged at once while writing. */
const inflightBytesMax = 16 * mib;

/** One series of the server's /metrics (the first, whatever its labels). */
async function metric(endpoint: string, name: string): Promise<number> {
  return metricValue(await (await fetch(`${endpoint}/metrics`)).text(), name);
}

/** The server's cache entry hits and misses and chunk downloads so far (/metrics counters). */
async function cacheEntryReads(endpoint: string): Promise<{
  hits: number;
  misses: number;
  chunkDownloads: number;
  chunkReadAheads: number;
  walReadAheadEntries: number;
}> {
  return {
    hits: await metric(endpoint, "tributary_cache_entry_hits_total"),
    misses: await metric(endpoint, "tributary_cache_entry_misses_total"),
    chunkDownloads: await metric(endpoint, "tributary_cache_chunk_downloads_total"),
    chunkReadAheads: await metric(endpoint, "tributary_cache_chunk_read_aheads_total"),
    walReadAheadEntries: await metric(endpoint, "tributary_cache_wal_read_ahead_entries_total"),
  };
}

/**
 * `--from-chunks`: the writer compacts every `fromChunksJobIntervalMs`, and the bench waits until
 * its WAL backlog is under `fromChunksBacklogBytesMax` (a stream's last rows wait for 1 MiB), so
 * that the cold reader reads chunks (whole-chunk GETs and read-ahead) rather than WAL entries.
 */
const fromChunksJobIntervalMs = 500;
const fromChunksBacklogBytesMax = 2 * mib;
const fromChunksWaitMsMax = 300_000;
/** The cold reader's cache bound with `--from-chunks`: room for read-ahead (an eighth of it). */
const fromChunksCacheSize = "256MiB";

/** User and system CPU seconds of process `pid` (/proc, clock ticks of 1/100 s). */
function processCpuSplit(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}
const flushIntervalMs = 5;

async function main(): Promise<void> {
  console.log(machineLine());
  await printLoadBeforeStart();
  const pool = createBodyPool(recordBytes);
  const batchRecords = Math.max(1, Math.min(1000, Math.floor(mib / (recordBytes + 8)) - 1));
  const count = Math.ceil((totalMiB * mib) / recordBytes / batchRecords) * batchRecords;
  const cacheDir = await mkdtemp(path.join(tmpdir(), "tributary-catch-up-cache-"));
  const dirs = [cacheDir];
  const args = ["--flush-interval-ms", String(flushIntervalMs)];
  if (values["no-compaction"]) args.push("--no-compaction");
  const fromChunks = values["from-chunks"];
  if (fromChunks && (!values.cold || values["no-compaction"])) {
    throw new Error("--from-chunks needs --cold and compaction");
  }
  let server: ServerProcess | undefined;
  try {
    server = await startServer({
      mode,
      cacheDir,
      args: fromChunks
        ? [...args, "--checkpoint-interval-ms", String(fromChunksJobIntervalMs)]
        : args,
    });
    const s2 = s2ClientFor(server);
    const basinName = `bench-catch-up-${randomBytes(4).toString("hex")}`;
    await s2.basins.create({ basin: basinName });
    await s2.basin(basinName).streams.create({ stream: "s" });
    const writer = s2.basin(basinName).stream("s");
    const session = await writer.appendSession({ maxInflightBytes: 2 * inflightBytesMax });
    const writerPid = server.child.pid ?? -1;
    const writerCpuStart = processCpuSeconds(writerPid);
    const clientCpuStart = process.cpuUsage();
    const writeStartMs = performance.now();
    const acks: Promise<unknown>[] = [];
    for (let seq = 0; seq < count; seq += batchRecords) {
      const records: AppendRecord[] = [];
      for (let k = seq; k < seq + batchRecords; k++) {
        records.push(AppendRecord.bytes({ body: pool.bodies[k % pool.bodies.length]! }));
      }
      const ticket = await session.submit(AppendInput.create(records));
      acks.push(ticket.ack());
    }
    await Promise.all(acks);
    await session.close();
    await writer.close();
    const writeSeconds = (performance.now() - writeStartMs) / 1000;
    const writtenMiB = (count * recordBytes) / mib;
    const writerCpu = processCpuSeconds(writerPid) - writerCpuStart;
    const clientCpuUsage = process.cpuUsage(clientCpuStart);
    const clientCpu = (clientCpuUsage.user + clientCpuUsage.system) / 1e6;
    console.log(
      `wrote ${count} records of ${recordBytes} B (${fmt(writtenMiB, 0)} MiB) ` +
        `in ${fmt(writeSeconds, 1)} s, mode ${mode}; server ${fmt((writerCpu * 1000) / writtenMiB, 2)} ` +
        `ms CPU/MiB (${fmt(writerCpu / writeSeconds, 2)} cores), client ` +
        `${fmt((clientCpu * 1000) / writtenMiB, 2)} ms CPU/MiB (${fmt(clientCpu / writeSeconds, 2)} cores) ` +
        "while writing (one S2S append session of the SDK)",
    );
    if (fromChunks) {
      const waitStartMs = performance.now();
      for (;;) {
        const backlog = await metric(server.endpoint, "tributary_compaction_wal_backlog_bytes");
        if (backlog <= fromChunksBacklogBytesMax) break;
        if (performance.now() - waitStartMs > fromChunksWaitMsMax) {
          throw new Error(`compaction did not catch up: ${fmt(backlog / mib, 1)} MiB of WAL left`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      console.log(`compacted in ${fmt((performance.now() - waitStartMs) / 1000, 1)} s more`);
    }
    await server.stop();
    const { localRoot, bucket } = server;
    let readCacheDir = cacheDir;
    if (values.cold) {
      readCacheDir = await mkdtemp(path.join(tmpdir(), "tributary-catch-up-cache-"));
      dirs.push(readCacheDir);
    }
    const profileDir = values["profile-dir"];
    const env: Record<string, string> =
      profileDir === undefined
        ? {}
        : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${path.resolve(profileDir)}` };
    const restarted = await startServer({
      mode,
      cacheDir: readCacheDir,
      // Cold: a cache bound far below the stream, so that what recovery's replay caches is evicted
      // and the reads are misses served from the object store.
      args: values.cold
        ? [...args, "--cache-size", fromChunks ? fromChunksCacheSize : "16MiB"]
        : args,
      env,
      ...(localRoot === undefined ? {} : { localRoot }),
      ...(bucket === undefined ? {} : { bucket }),
    });
    // The first server's cache dir is ours and its local root is removed below with the others.
    server = restarted;
    if (localRoot !== undefined) dirs.push(localRoot);
    const reader = s2ClientFor(restarted).basin(basinName).stream("s");
    const pid = restarted.child.pid ?? -1;
    for (let round = 1; round <= rounds; round++) {
      let records = 0;
      let bytes = 0;
      let mismatched = 0;
      const serverCpuStart = processCpuSeconds(pid);
      const serverSplitStart = processCpuSplit(pid);
      const entryReadsStart = await cacheEntryReads(restarted.endpoint);
      const clientCpuStart = process.cpuUsage();
      const startMs = performance.now();
      const readSession = await reader.readSession(
        { start: { from: { seqNum: 0 } }, stop: { limits: { count } } },
        { as: "bytes" },
      );
      for await (const record of readSession) {
        const expected = pool.bodies[records % pool.bodies.length]!;
        if (!expected.equals(record.body)) mismatched++;
        records++;
        bytes += record.body.length;
      }
      const seconds = (performance.now() - startMs) / 1000;
      const serverCpu = processCpuSeconds(pid) - serverCpuStart;
      const serverSplit = processCpuSplit(pid);
      const serverUser = serverSplit.user - serverSplitStart.user;
      const entryReads = await cacheEntryReads(restarted.endpoint);
      const clientUsage = process.cpuUsage(clientCpuStart);
      const clientCpu = (clientUsage.user + clientUsage.system) / 1e6;
      const readMiB = bytes / mib;
      console.log(
        `round ${round}: ${fmt(readMiB, 0)} MiB in ${fmt(seconds, 2)} s = ` +
          `${fmt(readMiB / seconds, 1)} MiB/s; server ${fmt((serverCpu * 1000) / readMiB, 2)} ms ` +
          `CPU/MiB (${fmt((serverUser * 1000) / readMiB, 2)} user + ` +
          `${fmt(((serverCpu - serverUser) * 1000) / readMiB, 2)} system; ` +
          `${fmt(serverCpu / seconds, 2)} cores), client ` +
          `${fmt((clientCpu * 1000) / readMiB, 2)} ms CPU/MiB (${fmt(clientCpu / seconds, 2)} cores); ` +
          `cache entries ${entryReads.hits - entryReadsStart.hits} from files, ` +
          `${entryReads.misses - entryReadsStart.misses} from the bucket, ` +
          `${entryReads.chunkDownloads - entryReadsStart.chunkDownloads} chunks downloaded ` +
          `(${entryReads.chunkReadAheads - entryReadsStart.chunkReadAheads} ahead of the reader), ` +
          `${entryReads.walReadAheadEntries - entryReadsStart.walReadAheadEntries} WAL entries ` +
          "fetched ahead; " +
          (records === count && mismatched === 0
            ? `${records} records verified`
            : `NOT VERIFIED: ${records} of ${count} read, ${mismatched} differ`),
      );
    }
    await reader.close();
  } finally {
    if (server !== undefined) {
      await server.stop();
      await server.cleanup();
    }
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
}

runBenchMain("catch-up-bench", main);
