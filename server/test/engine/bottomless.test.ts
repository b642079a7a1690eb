// Goal: compaction, checkpoints, GC and the bounded cache keep every acknowledged untrimmed record
// readable at its seq num, remove trimmed and deleted records' bytes from the bucket, start an
// empty cache from the checkpoint, and never let a fenced writer checkpoint or delete.
// Method: Services in-process on memory and local-directory object stores with real LevelDB
// caches; jobs run on demand (`runMaintenanceNow`) with a zero grace period; every object in the
// bucket is scanned for the marker bytes of records that must be gone.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { commandHeader, encodeTrimBody, meteredBytesOfBatch } from "../../src/core/records.js";
import type { Service } from "../../src/service/service.js";
import { type Clock, systemClock } from "../../src/core/clock.js";
import type { SegmentFiles } from "../../src/storage/cache/segment-files.js";
import { readCheckpoint, referencesOf, snapshotRows } from "../../src/storage/checkpoint.js";
import { gcListingIntervalMs } from "../../src/storage/gc.js";
import { readNewestManifest } from "../../src/storage/manifest/manifest.js";
import {
  checkpointPartPrefix,
  chunkIdOf,
  chunkKey,
  parseObjectId,
} from "../../src/storage/object-keys.js";
import { createLocalFsObjectStore } from "../../src/storage/object-store/local-fs.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import { listAll, type ObjectStore } from "../../src/storage/object-store/object-store.js";
import type { BottomlessOptions } from "../../src/storage/storage.js";
import {
  appendText,
  type CachedNode,
  ensureTestBasin,
  openCachedNode,
  readAll,
  testBasin,
  textsOf,
} from "../support/engine.js";
import { objectsContaining as objectsHolding } from "../support/bottomless-workload.js";

const encoder = new TextEncoder();

/** A record body that is easy to find in raw object bytes. */
function bodyOf(stream: string, index: number): string {
  return `<${stream}#${String(index).padStart(6, "0")}>${"x".repeat(200)}`;
}

/** Every object key in the bucket whose bytes contain `needle`. */
function objectsContaining(store: ObjectStore, needle: string): Promise<string[]> {
  return objectsHolding(store, [needle]);
}

type Node = CachedNode;

/** A node with this suite's defaults: jobs by hand only (no interval), a zero grace period. */
function openNode(
  store: ObjectStore,
  cacheDir: string,
  bottomless: BottomlessOptions = {},
  options: {
    /** Wraps the WAL's cache files (to count reads). */
    readonly wrapSegmentFiles?: (files: SegmentFiles) => SegmentFiles;
    readonly flushIntervalMs?: number;
    readonly clock?: Clock;
    /** The metrics recorder's flush (a WAL write) between a job and a look at the cache. */
    readonly metricsFlushIntervalMs?: number;
  } = {},
): Promise<Node> {
  return openCachedNode({
    store,
    dir: cacheDir,
    bottomless: { gcGraceMs: 0, checkpointIntervalMs: 3_600_000, ...bottomless },
    service: {
      flushIntervalMs: options.flushIntervalMs ?? 1,
      manifestPollIntervalMs: 50,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.metricsFlushIntervalMs === undefined
        ? {}
        : { metricsFlushIntervalMs: options.metricsFlushIntervalMs }),
    },
    ...(options.wrapSegmentFiles === undefined
      ? {}
      : { wrapSegmentFiles: options.wrapSegmentFiles }),
  });
}

/** Appends `batches` batches of `perBatch` records to each stream; returns the bodies by stream. */
async function appendHistory(
  service: Service,
  streams: readonly string[],
  options: { batches: number; perBatch: number; from?: number },
): Promise<Map<string, string[]>> {
  const written = new Map<string, string[]>();
  for (let b = 0; b < options.batches; b++) {
    await Promise.all(
      streams.map(async (stream) => {
        const first = (options.from ?? 0) + b * options.perBatch;
        const texts = Array.from({ length: options.perBatch }, (_, i) => bodyOf(stream, first + i));
        await appendText(service, stream, texts);
        written.set(stream, [...(written.get(stream) ?? []), ...texts]);
      }),
    );
  }
  return written;
}

/** A memory store that counts ranged GETs of WAL objects (entry reads from the bucket). */
function countingWalGets(): {
  readonly store: ObjectStore;
  readonly walGets: { readonly count: number; reset(): void };
} {
  const inner = createMemoryObjectStore();
  let count = 0;
  const store: ObjectStore = {
    ...inner,
    get: (key, range) => {
      if (key.startsWith("wal/") && range !== undefined) count += 1;
      return inner.get(key, range);
    },
  };
  return {
    store,
    walGets: {
      get count() {
        return count;
      },
      reset() {
        count = 0;
      },
    },
  };
}

async function trim(service: Service, stream: string, trimPoint: number): Promise<void> {
  await service.records.append(testBasin, stream, {
    records: [{ headers: [commandHeader("trim")], body: encodeTrimBody(BigInt(trimPoint)) }],
  });
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "tributary-bottomless-"));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const kind of ["memory", "local-fs"] as const) {
  describe(`bottomless storage (${kind} store)`, () => {
    const openStore = (dir: string): ObjectStore =>
      kind === "memory"
        ? createMemoryObjectStore()
        : createLocalFsObjectStore({ root: path.join(dir, "bucket") });

    it("compacts into chunks, collects what is trimmed or deleted, and restarts from the checkpoint", async () => {
      await withTempDir(async (dir) => {
        const store = openStore(dir);
        const streams = ["keep-a", "keep-b", "trimmed", "deleted"];
        let node = await openNode(store, path.join(dir, "cache-1"));
        await ensureTestBasin(node.service);
        const written = await appendHistory(node.service, streams, { batches: 20, perBatch: 10 });
        await trim(node.service, "trimmed", 150);
        await node.service.streams.delete(testBasin, "deleted");
        // The deletion's removal runs in the background; wait until the stream is gone.
        for (let i = 0; i < 200 && node.service.storage.state.streams.size > 3; i++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(node.service.storage.state.streams.size, 3, "the deleted stream is removed");

        await node.service.storage.runMaintenanceNow();
        const stats = node.service.storage.stats.maintenance!;
        assert.equal(stats.checkpointsCommitted, 1);
        assert.ok(stats.chunksWritten >= 3, `chunks written: ${stats.chunksWritten}`);
        assert.ok(stats.gcObjectsDeleted > 0, "GC deleted the compacted WAL segments");
        const manifest = await readNewestManifest(store);
        assert.ok(manifest?.checkpoint !== undefined, "the newest manifest names a checkpoint");
        assert.equal(manifest.walStartId, manifest.checkpoint.walId + 1);

        // No byte of a deleted or trimmed record is left anywhere in the bucket.
        assert.deepEqual(await objectsContaining(store, "<deleted#"), []);
        for (const index of [0, 75, 149]) {
          assert.deepEqual(
            await objectsContaining(store, `<trimmed#${String(index).padStart(6, "0")}>`),
            [],
          );
        }
        assert.ok((await objectsContaining(store, "<trimmed#000150>")).length > 0);
        // Every live record is in a chunk; only fence segments remain of the compacted WAL.
        const wal = await listAll(store, "wal/");
        for (const { key } of wal) {
          const id = Number(key.slice(4));
          if (id > manifest.checkpoint.walId) continue;
          assert.ok((await store.get(key))!.length <= 68, `only fence segments remain: ${key}`);
        }

        // More history after the checkpoint, then a restart with an empty cache.
        const more = await appendHistory(node.service, ["keep-a"], {
          batches: 3,
          perBatch: 5,
          from: 200,
        });
        await node.close();
        node = await openNode(store, path.join(dir, "cache-2"));
        assert.equal(node.service.storage.stats.loadedCheckpoint, true);
        assert.ok(node.service.storage.stats.replayedSegments <= 5);
        assert.deepEqual(textsOf(await readAll(node.service, "keep-a")), [
          ...written.get("keep-a")!,
          ...more.get("keep-a")!,
        ]);
        assert.deepEqual(textsOf(await readAll(node.service, "keep-b")), written.get("keep-b"));
        const trimmed = await readAll(node.service, "trimmed");
        assert.equal(trimmed[0]?.seqNum, 150);
        assert.deepEqual(
          textsOf(trimmed.filter((record) => record.body.length > 8)),
          written.get("trimmed")!.slice(150),
        );
        assert.equal(node.service.storage.state.streams.has(`${testBasin}\u0000deleted`), false);

        // A second job merges the small new chunk with the previous one (binary counter) and the
        // restart with the cache kept still reads everything.
        await node.service.storage.runMaintenanceNow();
        await node.close();
        node = await openNode(store, path.join(dir, "cache-2"));
        assert.equal(node.service.storage.stats.loadedCheckpoint, false, "the cache is resumed");
        assert.equal(node.service.storage.stats.cacheResetReason, undefined);
        assert.deepEqual(textsOf(await readAll(node.service, "keep-a")), [
          ...written.get("keep-a")!,
          ...more.get("keep-a")!,
        ]);
        await node.close();
      });
    });

    it("answers the metrics API's stored bytes exactly after trims: in WAL rows, in chunks, after a restart from the checkpoint", async () => {
      await withTempDir(async (dir) => {
        const store = openStore(dir);
        const stream = "sized";
        // Records of very different sizes, so that the mean-size estimate is off at any trim.
        const texts = Array.from({ length: 48 }, (_, i) => (i % 4 === 0 ? "y".repeat(4000) : "z"));
        /** The storage gauge's point for now, and what it must be: the records still readable. */
        const check = async (service: Service, what: string): Promise<void> => {
          // The end reaches past now (within S2's 60 s leeway), so that the last point is the
          // live one even when a minute turns between here and the query.
          const nowSec = Math.floor(Date.now() / 1000);
          const [gauge] = await service.metrics.stream(testBasin, stream, {
            set: "storage",
            start: nowSec - 60,
            end: nowSec + 30,
          });
          assert.ok(gauge?.kind === "gauge");
          const stored = gauge.values.at(-1)![1];
          assert.equal(stored, meteredBytesOfBatch(await readAll(service, stream)), what);
          const { trimPoint, nextSeqNum } = service.storage.state.tailOf(
            service.storage.state.streams.get(`${testBasin}\u0000${stream}`)!.streamId,
          );
          if (trimPoint > 0 && trimPoint < nextSeqNum) {
            const appended = meteredBytesOfBatch(
              texts.map((text) => ({ headers: [], body: encoder.encode(text) })),
            );
            const estimate = Math.round((appended * (nextSeqNum - trimPoint)) / nextSeqNum);
            assert.notEqual(stored, estimate, `${what}: the estimate would differ`);
          }
        };
        let node = await openNode(store, path.join(dir, "cache-a"));
        try {
          await ensureTestBasin(node.service);
          for (let i = 0; i < texts.length; i += 8) {
            await appendText(node.service, stream, texts.slice(i, i + 8));
          }
          await check(node.service, "untrimmed");
          await trim(node.service, stream, 11);
          await check(node.service, "trimmed inside a WAL row");
          await node.service.storage.runMaintenanceNow();
          assert.ok(node.service.storage.stats.maintenance!.chunksWritten > 0);
          await trim(node.service, stream, 21);
          await check(node.service, "trimmed inside a chunk entry");
          await node.service.storage.runMaintenanceNow();
        } finally {
          await node.close();
        }
        // An empty cache: the rows come from the checkpoint.
        node = await openNode(store, path.join(dir, "cache-b"));
        try {
          await check(node.service, "after a restart from the checkpoint");
          await trim(node.service, stream, 30);
          await check(node.service, "trimmed after the restart");
          await trim(node.service, stream, Number.MAX_SAFE_INTEGER);
          await check(node.service, "trimmed to the tail");
        } finally {
          await node.close();
        }
      });
    });
  });
}

describe("bottomless storage: the bounded cache", () => {
  it("stays under its bound and serves evicted chunks from the bucket", async () => {
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      const boundBytes = 96 << 10;
      let node = await openNode(store, path.join(dir, "cache"), { cacheBytesMax: boundBytes });
      await ensureTestBasin(node.service);
      const written = await appendHistory(node.service, ["a", "b"], { batches: 40, perBatch: 10 });
      await node.service.storage.runMaintenanceNow();
      await node.close();
      node = await openNode(store, path.join(dir, "cache"), { cacheBytesMax: boundBytes });
      for (const stream of ["a", "b"]) {
        assert.deepEqual(textsOf(await readAll(node.service, stream)), written.get(stream));
      }
      const stats = node.service.storage.stats;
      assert.ok(stats.fileBytes <= boundBytes, `cache ${stats.fileBytes} ≤ ${boundBytes}`);
      assert.ok(stats.chunkDownloads > 0, "cold chunks were downloaded");
      await node.close();
    });
  });
});

describe("bottomless storage: chunk read-ahead", () => {
  it("a read that stops before a stream's end downloads the next chunks before they are asked for", async () => {
    // A catch-up reader on a cold cache waits for a whole-chunk GET at each chunk unless the
    // chunks after its batch are already coming (bottomless.md "The bounded cache"). Each
    // chunk is downloaded once, read-ahead or not, and every record reads back.
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      let node = await openNode(store, path.join(dir, "writer"));
      await ensureTestBasin(node.service);
      // Shrinking jobs (40, 20, 10, 5 batches), each compacted on its own: four chunks, none
      // merged (a chunk merges into the next only when it is no larger than what is written).
      const texts: string[] = [];
      let from = 0;
      for (const batches of [40, 20, 10, 5]) {
        const written = await appendHistory(node.service, ["s"], { batches, perBatch: 10, from });
        texts.push(...written.get("s")!);
        from += batches * 10;
        await node.service.storage.runMaintenanceNow();
      }
      const chunkKeys = (await listAll(store, "chunks/")).map((object) => object.key);
      assert.equal(chunkKeys.length, 4, `chunks: ${chunkKeys}`);
      await node.close();

      node = await openNode(store, path.join(dir, "reader"));
      try {
        /** The storage's counters now (`stats` is a snapshot). */
        const stats = () => node.service.storage.stats;
        assert.equal(stats().chunkDownloads, 0, "a cold cache");
        const first = await node.service.records.read(testBasin, "s", {
          startSeqNum: 0,
          countMax: 5,
          bytesMax: 1 << 20,
        });
        assert.deepEqual(textsOf(first), texts.slice(0, 5));
        // The rows listed past the read's end point into the next chunks: they come without
        // another read (within a bounded wait: downloads run in the background).
        for (let i = 0; i < 500 && stats().chunkDownloads < 4; i++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const { chunkReadAheads } = stats();
        assert.equal(chunkReadAheads, 3, "the three chunks after the first");
        assert.equal(stats().chunkDownloads, 4);
        assert.deepEqual(textsOf(await readAll(node.service, "s")), texts);
        assert.equal(stats().chunkDownloads, 4, "each chunk downloaded once");
        assert.equal(stats().chunkReadAheads, chunkReadAheads, "nothing left to read ahead");
      } finally {
        await node.close();
      }
    });
  });
});

describe("bottomless storage: reads of evicted WAL entries", () => {
  it("fetch a WAL object's entries of a stream with one ranged GET, not one per entry", async () => {
    // Appends that land in one flush are entries of one WAL object; once its cache file is gone
    // (evicted, or the cache lost), a read gets them with one GET per span of them
    // (read-window.ts `getRangesInSpans`). Every record reads back, counted as cache misses.
    await withTempDir(async (dir) => {
      const { store, walGets } = countingWalGets();
      const node = await openNode(store, dir, { maintenance: false }, { flushIntervalMs: 50 });
      try {
        await ensureTestBasin(node.service);
        const texts: string[] = [];
        for (let round = 0; round < 4; round++) {
          const batches = Array.from({ length: 8 }, (_, b) =>
            Array.from({ length: 3 }, (_, i) => bodyOf("s", round * 100 + b * 10 + i)),
          );
          // Parallel appends to one stream: one flush, several entries.
          await Promise.all(batches.map((batch) => appendText(node.service, "s", batch)));
          texts.push(...batches.flat());
        }
        await node.service.storage.cacheCommitted();
        const objects = (await listAll(store, "wal/")).length;
        await rm(path.join(dir, "segments"), { recursive: true, force: true });
        walGets.reset();
        const missesBefore = node.service.storage.stats.entryMisses;
        const read = textsOf(await readAll(node.service, "s"));
        assert.deepEqual(read.sort(), [...texts].sort());
        const misses = node.service.storage.stats.entryMisses - missesBefore;
        assert.ok(misses >= 2 * objects, `entries (${misses}) outnumber objects (${objects})`);
        assert.ok(walGets.count <= objects, `ranged WAL GETs=${walGets.count} objects=${objects}`);
      } finally {
        await node.close();
      }
    });
  });
});

describe("bottomless storage: WAL read-ahead", () => {
  it("a catch-up session on evicted WAL entries gets each batch's entries fetched ahead, once", async () => {
    // Entries of ~400 KiB (100 records of 4 KiB per append), their cache files evicted: each
    // batch's read fetches the entries of the next batch while the session serves it
    // (segment-cache.ts `readWalAhead`), so after the first batch the reads find them fetched.
    // Every record reads back, and no entry is fetched twice.
    await withTempDir(async (dir) => {
      const { store, walGets } = countingWalGets();
      // A bound below one entry: every WAL file is evicted (the newest at the next write).
      const node = await openNode(store, dir, { maintenance: false, cacheBytesMax: 1 << 10 });
      try {
        await ensureTestBasin(node.service);
        const body = (seqNum: number): Uint8Array => new Uint8Array(4096).fill(seqNum % 251);
        const appends = 12;
        const perAppend = 100;
        for (let a = 0; a < appends; a++) {
          await node.service.records.append(testBasin, "cold", {
            records: Array.from({ length: perAppend }, (_, i) => ({
              headers: [],
              body: body(a * perAppend + i),
            })),
          });
        }
        await appendText(node.service, "other", ["evicts the last file of cold"]);
        await node.service.storage.cacheCommitted();
        walGets.reset();
        const before = node.service.storage.stats;
        const session = await node.service.records.openReadSession(
          testBasin,
          "cold",
          { start: { kind: "seqNum", seqNum: 0 }, clamp: false, count: appends * perAppend },
          { heartbeatDelayMs: () => 20 },
        );
        const seqNums: number[] = [];
        for await (const event of session) {
          if (event.kind !== "batch") continue;
          for (const record of event.records) {
            assert.deepEqual(record.body, body(record.seqNum));
            seqNums.push(record.seqNum);
          }
        }
        assert.deepEqual(
          seqNums,
          Array.from({ length: appends * perAppend }, (_, i) => i),
        );
        const after = node.service.storage.stats;
        const aheadEntries = after.walReadAheadEntries - before.walReadAheadEntries;
        assert.ok(aheadEntries >= appends / 2, `entries fetched ahead: ${aheadEntries}`);
        // Each entry came from the bucket once: by read-ahead, or by the read itself.
        assert.equal(after.entryMisses - before.entryMisses, appends);
        assert.ok(
          walGets.count <= appends,
          `ranged WAL GETs=${walGets.count} for ${appends} entries`,
        );
        assert.equal(after.walReadAheadBytes, 0, "a finished read holds nothing fetched ahead");

        // A reader that stops reading after one batch and goes away: what was fetched ahead for
        // it is held, within the budget, and given back after the hold time (10 s).
        const abandoned = await node.service.records.openReadSession(
          testBasin,
          "cold",
          { start: { kind: "seqNum", seqNum: 0 }, clamp: false, count: appends * perAppend },
          { heartbeatDelayMs: () => 20 },
        );
        const events = abandoned[Symbol.asyncIterator]();
        let first = await events.next();
        while (first.done !== true && first.value.kind !== "batch") first = await events.next();
        assert.equal(first.done, false, "the session served a batch");
        const held = node.service.storage.stats.walReadAheadBytes;
        assert.ok(held > 0 && held <= 64 << 20, `held ahead: ${held}`);
        await events.return?.(undefined);
        for (let i = 0; i < 150 && node.service.storage.stats.walReadAheadBytes > 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(node.service.storage.stats.walReadAheadBytes, 0, "given back");
      } finally {
        await node.close();
      }
    });
  });
});

describe("bottomless storage: fencing", () => {
  it("a fenced writer neither checkpoints nor deletes", async () => {
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      const old = await openNode(store, path.join(dir, "old"));
      await ensureTestBasin(old.service);
      await appendHistory(old.service, ["s"], { batches: 5, perBatch: 5 });
      const newer = await openNode(store, path.join(dir, "new"));
      const before = (await listAll(store, "")).map((object) => object.key);
      await old.service.storage.runMaintenanceNow().catch(() => {});
      const after = (await listAll(store, "")).map((object) => object.key);
      assert.deepEqual(
        after.filter((key) => key.startsWith("checkpoints/") || key.startsWith("manifest/")),
        before.filter((key) => key.startsWith("checkpoints/") || key.startsWith("manifest/")),
        "no checkpoint and no manifest from the fenced writer",
      );
      for (const key of before) assert.ok(after.includes(key), `not deleted: ${key}`);
      assert.equal(old.service.storage.stats.maintenance!.checkpointsCommitted, 0);
      await old.close().catch(() => {});
      // The newer writer checkpoints and serves what the old one acknowledged.
      await newer.service.storage.runMaintenanceNow();
      assert.equal(newer.service.storage.stats.maintenance!.checkpointsCommitted, 1);
      assert.equal((await readAll(newer.service, "s")).length, 25);
      await newer.close();
    });
  });
});

/**
 * The `wal/` and `chunks/` objects that are garbage for the newest committed checkpoint: within
 * its marks, not referenced by its index, not a fence.
 */
async function garbageLeft(store: ObjectStore): Promise<string[]> {
  const manifest = await readNewestManifest(store);
  assert.ok(manifest?.checkpoint !== undefined, "a committed checkpoint");
  const checkpoint = await readCheckpoint(manifest.checkpoint.key, (key) => store.get(key));
  const references = await referencesOf(checkpoint.rows);
  const left: string[] = [];
  for (const { key } of await listAll(store, "wal/")) {
    const id = parseObjectId("wal/", key)!;
    const isLive = references.walIds.has(id) || references.fenceWalIds.has(id);
    if (id <= checkpoint.header.walId && !isLive) left.push(key);
  }
  for (const { key } of await listAll(store, "chunks/")) {
    const id = parseObjectId("chunks/", key)!;
    if (id < checkpoint.header.chunkIdBound && !references.chunkIds.has(id)) left.push(key);
  }
  return left;
}

/** The newest committed checkpoint's rows (from its parts), as `key=value` hex, sorted. */
async function newestCheckpointRows(store: ObjectStore): Promise<string[]> {
  const manifest = await readNewestManifest(store);
  assert.ok(manifest?.checkpoint !== undefined, "a committed checkpoint");
  const checkpoint = await readCheckpoint(manifest.checkpoint.key, (key) => store.get(key));
  return rowStrings(checkpoint.rows);
}

function rowStrings(rows: readonly (readonly [Uint8Array, Uint8Array])[]): string[] {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
  return rows.map(([key, value]) => `${hex(key)}=${hex(value)}`).sort();
}

/** The checkpoint rows the cache holds now (what the newest checkpoint must hold when idle). */
async function cacheRows(node: Node): Promise<string[]> {
  const view = node.kv.snapshot();
  try {
    return rowStrings(await snapshotRows(view));
  } finally {
    await view.close();
  }
}

describe("bottomless storage: incremental checkpoints", () => {
  it("a process's first checkpoint is a base, the next deltas of what changed; the newest reads back as the cache held it, and old parts go", async () => {
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      // No metrics flush between a job and the comparison with the cache.
      const open = (cache: string) =>
        openNode(store, path.join(dir, cache), {}, { metricsFlushIntervalMs: 3_600_000 });
      let node = await open("cache-1");
      const streams = Array.from({ length: 40 }, (_, i) => `s-${String(i).padStart(2, "0")}`);
      let written: Map<string, string[]>;
      try {
        await ensureTestBasin(node.service);
        written = await appendHistory(node.service, streams, { batches: 4, perBatch: 5 });
        await node.service.storage.runMaintenanceNow();
        const stats = () => node.service.storage.stats.maintenance!;
        assert.equal(stats().checkpointsCommitted, 1);
        assert.equal(stats().checkpointRebases, 1, "the first checkpoint is a base");
        const baseBytes = stats().lastCheckpointBytes;
        assert.deepEqual(await newestCheckpointRows(store), await cacheRows(node));

        // A few streams change: appends to two, a trim of one, a deletion of one.
        const more = await appendHistory(node.service, ["s-01", "s-02"], {
          batches: 1,
          perBatch: 3,
          from: 20,
        });
        for (const [stream, texts] of more) written.get(stream)!.push(...texts);
        await trim(node.service, "s-03", 10);
        await node.service.streams.delete(testBasin, "s-04");
        for (let i = 0; i < 200 && node.service.storage.state.streams.size > 39; i++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(node.service.storage.state.streams.size, 39, "the deleted stream is removed");
        await node.service.storage.runMaintenanceNow();
        assert.equal(stats().checkpointsCommitted, 2);
        assert.equal(stats().checkpointRebases, 1, "the second checkpoint is a delta");
        assert.ok(
          stats().lastCheckpointBytes * 4 < baseBytes,
          `a delta of 4 streams' rows (${stats().lastCheckpointBytes} B) against a base of 40 (${baseBytes} B)`,
        );
        const manifest = await readNewestManifest(store);
        const newest = await readCheckpoint(manifest!.checkpoint!.key, (key) => store.get(key));
        assert.equal(newest.header.parts?.length, 2, "a base and a delta");
        assert.deepEqual(await newestCheckpointRows(store), await cacheRows(node));
      } finally {
        await node.close();
      }

      // An empty cache starts from the base and the delta.
      node = await open("cache-2");
      try {
        assert.equal(node.service.storage.stats.loadedCheckpoint, true);
        for (const stream of ["s-00", "s-01", "s-02", "s-39"]) {
          assert.deepEqual(textsOf(await readAll(node.service, stream)), written.get(stream));
        }
        const trimmed = await readAll(node.service, "s-03");
        assert.equal(trimmed[0]?.seqNum, 10);
        assert.equal(node.service.storage.state.streams.has(`${testBasin}\u0000s-04`), false);
        // This process's first checkpoint is a base again; GC then removes the previous parts.
        await appendHistory(node.service, ["s-00"], { batches: 1, perBatch: 2, from: 20 });
        await node.service.storage.runMaintenanceNow();
        assert.equal(
          node.service.storage.stats.maintenance!.checkpointRebases,
          1,
          "a new process starts with a base",
        );
        await node.service.storage.runMaintenanceNow();
        const parts = (await listAll(store, checkpointPartPrefix)).map((object) => object.key);
        const manifest = await readNewestManifest(store);
        const newest = await readCheckpoint(manifest!.checkpoint!.key, (key) => store.get(key));
        assert.deepEqual(
          parts,
          (newest.header.parts ?? []).map((part) => part.key),
          "only the newest checkpoint's parts are left",
        );
        assert.deepEqual(await newestCheckpointRows(store), await cacheRows(node));
      } finally {
        await node.close();
      }
    });
  });

  it("rebases once the deltas pass half the base", async () => {
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      const node = await openNode(
        store,
        path.join(dir, "cache"),
        {},
        { metricsFlushIntervalMs: 3_600_000 },
      );
      try {
        await ensureTestBasin(node.service);
        const streams = Array.from({ length: 8 }, (_, i) => `r-${i}`);
        await appendHistory(node.service, streams, { batches: 2, perBatch: 4 });
        await node.service.storage.runMaintenanceNow();
        const stats = () => node.service.storage.stats.maintenance!;
        // Each round changes half of the streams: a delta of about a third of the base, so the
        // second delta in a row passes half the base and the job writes a base again.
        for (let round = 0; round < 4; round++) {
          const changed = streams.slice((round % 2) * 4, (round % 2) * 4 + 4);
          await appendHistory(node.service, changed, {
            batches: 1,
            perBatch: 4,
            from: 8 + round * 4,
          });
          await node.service.storage.runMaintenanceNow();
          assert.deepEqual(
            await newestCheckpointRows(store),
            await cacheRows(node),
            `round ${round}`,
          );
          const manifest = await readNewestManifest(store);
          const { parts } = (
            await readCheckpoint(manifest!.checkpoint!.key, (key) => store.get(key))
          ).header;
          const [base, ...deltas] = parts!;
          const deltaBytes = deltas.reduce((sum, part) => sum + part.bytes, 0);
          // The rule weighs a new delta by its rows' bytes, a part's header aside (< 100 B).
          assert.ok(
            deltaBytes <= base!.bytes * 0.5 + 100 * deltas.length,
            `round ${round}: deltas ${deltaBytes} B on a base of ${base!.bytes} B`,
          );
        }
        assert.equal(stats().checkpointsCommitted, 5);
        assert.ok(
          stats().checkpointRebases >= 2 && stats().checkpointRebases < 5,
          `bases written: ${stats().checkpointRebases} of 5`,
        );
      } finally {
        await node.close();
      }
    });
  });
});

describe("bottomless storage: GC by difference", () => {
  it("lists the WAL and chunks at its first pass only, leaves no garbage, and keeps the bucket gauges exact", async () => {
    // A pass that lists `wal/` and `chunks/` costs the whole bucket's LIST pages, and on moto
    // stalled the WAL's PUTs (bottomless.md "Which objects a pass looks at"). After the first,
    // a pass takes its candidates from the last collected checkpoint and the new one; what it
    // deletes must be all the garbage there is, whatever moved: compaction, merges, a trim, a
    // deleted stream. And a stray that only a listing can see goes at the next listing pass.
    await withTempDir(async (dir) => {
      const inner = createMemoryObjectStore();
      const lists = new Map<string, number>();
      const store: ObjectStore = {
        ...inner,
        list: (prefix, options) => {
          lists.set(prefix, (lists.get(prefix) ?? 0) + 1);
          return inner.list(prefix, options);
        },
      };
      let clockOffsetMs = 0;
      const clock: Clock = {
        ...systemClock,
        nowMs: () => Date.now() + clockOffsetMs,
        // The listing interval is a duration: the collector reads it on the monotonic clock.
        monotonicMs: () => performance.now() + clockOffsetMs,
      };
      const node = await openNode(store, path.join(dir, "cache"), {}, { clock });
      try {
        await ensureTestBasin(node.service);
        const stats = () => node.service.storage.stats.maintenance!;
        /** One job by hand; returns the LISTs of `wal/` and `chunks/` the server made in it. */
        const job = async (allStreams = true): Promise<number> => {
          const before = (lists.get("wal/") ?? 0) + (lists.get("chunks/") ?? 0);
          await node.service.storage.runMaintenanceNow({ allStreams });
          return (lists.get("wal/") ?? 0) + (lists.get("chunks/") ?? 0) - before;
        };
        const checkGauges = async (): Promise<void> => {
          for (const [kind, prefix] of [
            ["wal", "wal/"],
            ["chunks", "chunks/"],
            ["checkpoints", "checkpoints/"],
            ["manifests", "manifest/"],
          ] as const) {
            const objects = await listAll(inner, prefix);
            assert.deepEqual(stats().bucket[kind], {
              objects: objects.length,
              bytes: objects.reduce((sum, object) => sum + object.size, 0),
            });
          }
        };

        const streams = ["a", "b", "trimmed", "deleted"];
        const written = await appendHistory(node.service, streams, { batches: 10, perBatch: 5 });
        assert.ok((await job()) >= 2, "the first pass lists the WAL and the chunks");
        assert.equal(stats().gcListingPasses, 1);
        assert.deepEqual(await garbageLeft(inner), []);
        await checkGauges();

        // Rounds of more appends, a trim, a delete. In the first two the streams' WAL rows wait
        // (as a timer's job leaves small ones), so the checkpoints reference their WAL objects
        // until the third compacts them and merges the small chunks with the previous ones.
        let from = 50;
        for (const round of [0, 1, 2]) {
          const more = await appendHistory(node.service, ["a", "b", "trimmed"], {
            batches: 4,
            perBatch: 5,
            from,
          });
          for (const [stream, texts] of more) written.get(stream)!.push(...texts);
          from += 20;
          if (round === 1) await trim(node.service, "trimmed", 60);
          if (round === 2) {
            await node.service.streams.delete(testBasin, "deleted");
            for (let i = 0; i < 200 && node.service.storage.state.streams.size > 3; i++) {
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
            assert.equal(
              node.service.storage.state.streams.size,
              3,
              "the deleted stream is removed",
            );
          }
          assert.equal(await job(round === 2), 0, `round ${round}: no WAL or chunk listing`);
          assert.deepEqual(await garbageLeft(inner), [], `round ${round}: no garbage left`);
          await checkGauges();
        }
        assert.equal(stats().gcListingPasses, 1);
        assert.ok(stats().gcPasses >= 4);
        assert.deepEqual(await objectsContaining(inner, "<deleted#"), []);
        assert.deepEqual(await objectsContaining(inner, "<trimmed#000059>"), []);
        for (const stream of ["a", "b"]) {
          assert.deepEqual(textsOf(await readAll(node.service, stream)), written.get(stream));
        }

        // An earlier epoch's orphan chunk (ids below the bound, referenced by nothing): garbage,
        // but no checkpoint difference names it.
        const stray = chunkKey(chunkIdOf(0, 7));
        assert.equal(await inner.putIfAbsent(stray, encoder.encode("orphan")), "created");
        await appendHistory(node.service, ["a"], { batches: 1, perBatch: 5, from });
        assert.equal(await job(), 0);
        assert.ok((await inner.get(stray)) !== undefined, "a difference pass leaves the stray");
        clockOffsetMs += gcListingIntervalMs;
        await appendHistory(node.service, ["a"], { batches: 1, perBatch: 5, from: from + 5 });
        assert.ok((await job()) >= 2, "a listing pass once the interval has passed");
        assert.equal(stats().gcListingPasses, 2);
        assert.equal(await inner.get(stray), undefined, "the listing pass deletes the stray");
        assert.deepEqual(await garbageLeft(inner), []);
        await checkGauges();
      } finally {
        await node.close();
      }
    });
  });
});

describe("bottomless storage: retention", () => {
  it("removes the bytes of records that retention expired from the bucket", async () => {
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      const node = await openNode(store, path.join(dir, "cache"));
      await ensureTestBasin(node.service);
      await node.service.streams.create({
        basin: testBasin,
        name: "aged",
        config: { retentionPolicy: { kind: "age", ageSecs: 60 } },
      });
      const nowMs = Date.now();
      const old = Array.from({ length: 30 }, (_, i) => bodyOf("aged", i));
      for (let i = 0; i < old.length; i += 10) {
        await node.service.records.append(testBasin, "aged", {
          records: old.slice(i, i + 10).map((text) => ({
            timestamp: nowMs - 600_000,
            headers: [],
            body: encoder.encode(text),
          })),
        });
      }
      await appendText(node.service, "aged", [bodyOf("aged", 30)]);
      // The first job puts the old records into a chunk; then retention expires them.
      await node.service.storage.runMaintenanceNow();
      assert.ok((await objectsContaining(store, "<aged#000000>")).length > 0);
      await node.service.retention.runOnce();
      assert.deepEqual(textsOf(await readAll(node.service, "aged")), [bodyOf("aged", 30)]);
      await node.service.storage.runMaintenanceNow();
      for (const index of [0, 15, 29]) {
        const needle = `<aged#${String(index).padStart(6, "0")}>`;
        assert.deepEqual(await objectsContaining(store, needle), [], `${needle} is gone`);
      }
      assert.ok((await objectsContaining(store, "<aged#000030>")).length > 0);
      await node.close();
    });
  });
});

describe("which streams a timer's job compacts", () => {
  it("a stream's WAL rows wait until they hold compactionStreamBytesMin or are older than the lag", async () => {
    // Chunk PUTs follow bytes, not streams × jobs (bottomless.md "Which streams a job takes"):
    // a job leaves a small stream's rows in the WAL, compacts a stream with 1 MiB of them, and
    // takes the small one once its rows are older than the lag; a job on demand takes every
    // stream. Every record reads back throughout.
    const lagMaxMs = 400;
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      const node = await openNode(store, dir, { compactionLagMaxMs: lagMaxMs });
      try {
        await ensureTestBasin(node.service);
        // `bodyOf` records are ~210 bytes: 5,500 of them are over 1 MiB of WAL rows.
        const big = await appendHistory(node.service, ["big"], { batches: 11, perBatch: 500 });
        const small = await appendHistory(node.service, ["small"], { batches: 1, perBatch: 5 });
        const chunkKeysHolding = async (needle: string): Promise<string[]> =>
          (await objectsContaining(store, needle)).filter((key) => key.startsWith("chunks/"));

        await node.service.storage.runMaintenanceNow({ allStreams: false });
        assert.ok((await chunkKeysHolding(bodyOf("big", 0))).length > 0, "big is compacted");
        assert.deepEqual(await chunkKeysHolding(bodyOf("small", 0)), [], "small waits");

        // Still younger than the lag: a second job at once leaves it too.
        await node.service.storage.runMaintenanceNow({ allStreams: false });
        assert.deepEqual(await chunkKeysHolding(bodyOf("small", 0)), [], "small still waits");

        // A young record joins the waiting ones; once the oldest is past the lag, the stream's
        // rows go (whether the timer's own job, due for the waiting stream, or this one takes
        // them first).
        await appendText(node.service, "small", [bodyOf("small", 5)]);
        await new Promise((resolve) => setTimeout(resolve, lagMaxMs + 100));
        await node.service.storage.runMaintenanceNow({ allStreams: false });
        assert.ok((await chunkKeysHolding(bodyOf("small", 0))).length > 0, "small, once old");
        // A stream's WAL rows move together: the young record went with the old ones.
        assert.ok((await chunkKeysHolding(bodyOf("small", 5))).length > 0, "with its stream");

        // A new young record alone waits for a later job; a job on demand takes it.
        await appendText(node.service, "small", [bodyOf("small", 6)]);
        await node.service.storage.runMaintenanceNow({ allStreams: false });
        assert.deepEqual(await chunkKeysHolding(bodyOf("small", 6)), [], "the young one waits");
        await node.service.storage.runMaintenanceNow();
        assert.ok((await chunkKeysHolding(bodyOf("small", 6))).length > 0, "on demand: all");
        assert.deepEqual(textsOf(await readAll(node.service, "big")), big.get("big"));
        assert.deepEqual(textsOf(await readAll(node.service, "small")), [
          ...small.get("small")!,
          bodyOf("small", 5),
          bodyOf("small", 6),
        ]);
      } finally {
        await node.close();
      }
    });
  });

  it("a server gone quiet still compacts the streams its last job left waiting, once past the lag", async () => {
    // No append after the records, no job on demand: the timer's jobs alone must take them
    // (before, a job ran only after new WAL bytes, so they waited for ever).
    const lagMaxMs = 300;
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      const node = await openNode(store, dir, {
        compactionLagMaxMs: lagMaxMs,
        checkpointWalBytes: 1 << 30,
        checkpointIntervalMs: 3_600_000,
      });
      try {
        await ensureTestBasin(node.service);
        await appendHistory(node.service, ["quiet"], { batches: 1, perBatch: 5 });
        const deadline = performance.now() + 15_000;
        const inChunk = async (): Promise<boolean> =>
          (await objectsContaining(store, bodyOf("quiet", 0))).some((key) =>
            key.startsWith("chunks/"),
          );
        while (!(await inChunk())) {
          assert.ok(performance.now() < deadline, "the quiet stream was compacted by the timer");
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(node.service.storage.stats.maintenance?.compactionStreamsWaiting, 0);
      } finally {
        await node.close();
      }
    });
  });
});

describe("how a job reads the WAL", () => {
  // A WAL object holds entries of every stream that appended during its flush; a job reads each
  // object once for all the streams of a read window (bottomless.md "How a job reads the WAL"),
  // from its cache file, or once evicted, with one ranged GET per object, instead of one read
  // per entry. Every record reads back after the job.
  const streams = Array.from({ length: 12 }, (_, i) => `window-${i}`);
  /** Long enough for a round's parallel appends (one per stream) to share a WAL object. */
  const flushIntervalMs = 50;

  /** WAL object keys in the bucket. */
  async function walObjects(store: ObjectStore): Promise<number> {
    return (await listAll(store, "wal/")).length;
  }

  it("reads each WAL object's cache file once, not once per stream", async () => {
    await withTempDir(async (dir) => {
      const store = createMemoryObjectStore();
      let fileReads = 0;
      const node = await openNode(
        store,
        dir,
        {},
        {
          flushIntervalMs,
          wrapSegmentFiles: (files) => ({
            ...files,
            read: (...args) => {
              fileReads += 1;
              return files.read(...args);
            },
            readRanges: (...args) => {
              fileReads += 1;
              return files.readRanges(...args);
            },
          }),
        },
      );
      try {
        await ensureTestBasin(node.service);
        // Each round's appends (one per stream, in parallel) share WAL objects.
        const written = await appendHistory(node.service, streams, { batches: 8, perBatch: 4 });
        const objects = await walObjects(store);
        assert.ok(objects < streams.length * 8, `streams share WAL objects: ${objects}`);
        fileReads = 0;
        const missesBefore = node.service.storage.stats.entryMisses;
        await node.service.storage.runMaintenanceNow();
        const stats = node.service.storage.stats.maintenance!;
        assert.ok(stats.bytesCompacted > 0, "the job compacted");
        // One read per WAL object, whatever the streams in it (read stream by stream: one per
        // entry, ~streams × rounds = 96).
        assert.ok(fileReads <= objects, `file reads=${fileReads} objects=${objects}`);
        assert.equal(stats.compactionWindowFileReads, fileReads, "every read was the window's");
        assert.equal(node.service.storage.stats.entryMisses, missesBefore, "no range GETs");
        for (const stream of streams) {
          assert.deepEqual(textsOf(await readAll(node.service, stream)), written.get(stream));
        }
      } finally {
        await node.close();
      }
    });
  });

  it("reads an evicted WAL object with one ranged GET, not one per entry", async () => {
    await withTempDir(async (dir) => {
      const { store, walGets } = countingWalGets();
      const node = await openNode(store, dir, {}, { flushIntervalMs });
      try {
        await ensureTestBasin(node.service);
        const written = await appendHistory(node.service, streams, { batches: 8, perBatch: 4 });
        assert.ok((await walObjects(store)) < streams.length * 8, "streams share WAL objects");
        await node.service.storage.cacheCommitted();
        // The WAL's cache files go (as eviction would take them): every entry is in the bucket only.
        await rm(path.join(dir, "segments"), { recursive: true, force: true });
        const objects = await walObjects(store);
        walGets.reset();
        await node.service.storage.runMaintenanceNow();
        assert.ok(node.service.storage.stats.maintenance!.bytesCompacted > 0, "the job compacted");
        assert.ok(walGets.count <= objects, `ranged WAL GETs=${walGets.count} objects=${objects}`);
        const { compactionWindowGets } = node.service.storage.stats.maintenance!;
        assert.equal(compactionWindowGets, walGets.count, "every GET was the window's");
        for (const stream of streams) {
          assert.deepEqual(textsOf(await readAll(node.service, stream)), written.get(stream));
        }
      } finally {
        await node.close();
      }
    });
  });
});
