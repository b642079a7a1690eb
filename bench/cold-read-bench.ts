/**
 * A cold catch-up read on a store with S3's latency: one stream of ~1 MiB entries is written,
 * then read from seq num 0 through a read session by a second node with an empty cache, on a
 * memory store answering every call in 30–70 ms (the faulty store's latency mode: S3 Standard's
 * first-byte latency, none of the machine's CPU, unlike moto). Two layouts: chunks (compacted
 * before the read; whole-chunk GETs, read ahead by `readChunksAhead`) and WAL (not compacted, the
 * reader's cache bound below one entry; ranged GETs, read ahead by `readWalAhead`). In-process, the
 * engine alone: what it shows is how much of the store's latency the read-ahead hides.
 *
 *   node --import tsx bench/cold-read-bench.ts [--mib 128]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { systemClock } from "../server/src/core/clock.js";
import { createSeededRandom } from "../server/src/core/random.js";
import { createFaultyObjectStore } from "../server/src/storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../server/src/storage/object-store/memory.js";
import type { ObjectStore } from "../server/src/storage/object-store/object-store.js";
import {
  type CachedNode,
  ensureTestBasin,
  openCachedNode,
  testBasin,
} from "../server/test/support/engine.js";
import {
  fmt,
  machineLine,
  mib,
  printLoadBeforeStart,
  runBenchMain,
  s3LatencyMs,
} from "./support.js";

const { values } = parseArgs({ options: { mib: { type: "string", default: "128" } } });
const totalMiB = Number(values.mib);

/** Records per append: 127 of 8 KiB make an entry of just under 1 MiB (one read batch). */
const recordsPerAppend = 127;
const recordBodyBytes = 8192;
/** Appends in flight while writing. */
const writeConcurrency = 16;
/** The reader's cache bound: room for read-ahead with chunks; below one entry with the WAL. */
const chunkCacheBytes = 256 * mib;
const walCacheBytes = 1 * mib;
/** A cold read of this many MiB per second or more, from chunks and from the WAL (ours). */
const targetMiBPerSecond = 100;

function openNode(
  store: ObjectStore,
  dir: string,
  options: { readonly maintenance: boolean; readonly cacheBytesMax: number },
): Promise<CachedNode> {
  return openCachedNode({
    store,
    dir,
    bottomless: {
      maintenance: options.maintenance,
      checkpointWalBytes: 1 << 40,
      checkpointIntervalMs: 3_600_000,
      gcGraceMs: 0,
      cacheBytesMax: options.cacheBytesMax,
    },
  });
}

async function run(layout: "chunks" | "wal"): Promise<number> {
  const store = createFaultyObjectStore(createMemoryObjectStore(), {
    random: createSeededRandom(1),
    clock: systemClock,
    faults: { latencyMs: s3LatencyMs },
  });
  const dirs = [
    await mkdtemp(path.join(tmpdir(), "cold-read-")),
    await mkdtemp(path.join(tmpdir(), "cold-read-")),
  ];
  try {
    const maintenance = layout === "chunks";
    const writer = await openNode(store, dirs[0]!, { maintenance, cacheBytesMax: chunkCacheBytes });
    await ensureTestBasin(writer.service);
    const body = new Uint8Array(randomBytes(recordBodyBytes));
    let next = 0;
    await Promise.all(
      Array.from({ length: writeConcurrency }, async () => {
        while (next++ < totalMiB) {
          await writer.service.records.append(testBasin, "s", {
            records: Array.from({ length: recordsPerAppend }, () => ({ headers: [], body })),
          });
        }
      }),
    );
    if (maintenance) await writer.service.storage.runMaintenanceNow();
    await writer.close();

    const reader = await openNode(store, dirs[1]!, {
      maintenance,
      cacheBytesMax: layout === "chunks" ? chunkCacheBytes : walCacheBytes,
    });
    try {
      const count = totalMiB * recordsPerAppend;
      const startMs = performance.now();
      let bytes = 0;
      let records = 0;
      const session = await reader.service.records.openReadSession(
        testBasin,
        "s",
        { start: { kind: "seqNum", seqNum: 0 }, clamp: false, count },
        { heartbeatDelayMs: () => 20 },
      );
      for await (const event of session) {
        if (event.kind !== "batch") continue;
        for (const record of event.records) {
          if (record.body.length !== recordBodyBytes || record.body[0] !== body[0]) {
            throw new Error(`record ${record.seqNum} differs from what was written`);
          }
          bytes += record.body.length;
          records += 1;
        }
      }
      if (records !== count) throw new Error(`read ${records} of ${count} records`);
      const seconds = (performance.now() - startMs) / 1000;
      const stats = reader.service.storage.stats;
      const rate = bytes / mib / seconds;
      console.log(
        `${layout}: ${fmt(bytes / mib, 0)} MiB in ${fmt(seconds, 2)} s = ${fmt(rate, 1)} MiB/s; ` +
          `chunks downloaded ${stats.chunkDownloads} (${stats.chunkReadAheads} ahead of the ` +
          `reader), WAL entries from the bucket ${stats.entryMisses} ` +
          `(${stats.walReadAheadEntries} fetched ahead); ${records} records checked`,
      );
      return rate;
    } finally {
      await reader.close();
    }
  } finally {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(
    `Tributary cold catch-up read on a store answering in ${s3LatencyMs.min}–${s3LatencyMs.max} ms ` +
      "(engine in-process, one stream " +
      `of ~1 MiB entries, ${totalMiB} MiB, empty cache)`,
  );
  console.log(machineLine());
  await printLoadBeforeStart();
  for (const layout of ["chunks", "wal"] as const) {
    const rate = await run(layout);
    console.log(
      `  ${layout}: ${fmt(rate, 1)} MiB/s, target ≥ ${targetMiBPerSecond} MiB/s: ` +
        (rate >= targetMiBPerSecond ? "met" : "missed"),
    );
  }
}

runBenchMain("cold-read-bench", main);
