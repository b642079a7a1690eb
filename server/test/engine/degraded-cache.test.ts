// Goal: a full or failing cache disk is a degraded mode, not an exit (docs/design/degraded-cache.md):
// appends are acknowledged from the bucket, every acknowledged record reads back byte for byte,
// `/health` and `/metrics` say so, and the cache goes back to its disk by itself. Method: the
// engine in-process on a memory bucket, its cache directory a failure-injecting wrapper over the
// memory KV and files (a full disk on any machine; the tmpfs test is in integration/).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import type { Service } from "../../src/service/service.js";
import { diskFaultOf } from "../../src/storage/cache/disk-fault.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import {
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  startLoopbackApi,
} from "../support/engine.js";
import { createFaultyCacheDisk, type FaultyCacheDisk } from "../support/faulty-cache-disk.js";

/** Bounds every wait of this file (a rejoin is one probe interval away). */
const waitMsMax = 10_000;
const probeIntervalMs = 20;

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function open(
  store: ObjectStore,
  disk: FaultyCacheDisk,
  log: string[],
  onFatal?: (e: unknown) => void,
) {
  return openTestService({
    store,
    cacheDisk: disk,
    log: (line) => log.push(line),
    bottomless: { cacheDiskProbeIntervalMs: probeIntervalMs },
    ...(onFatal !== undefined && { onFatal }),
  });
}

/** Appends `count` batches of random binary records; returns every acknowledged body, in order. */
async function appendRandom(service: Service, stream: string, count: number): Promise<Buffer[]> {
  const bodies: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const batch = [randomBytes(1 + i * 37), randomBytes(200)];
    const ack = await service.records.append(testBasin, stream, {
      records: batch.map((body) => ({ headers: [], body })),
    });
    assert.equal(ack.end.seqNum - ack.start.seqNum, batch.length, "the whole batch is acked");
    bodies.push(...batch);
  }
  return bodies;
}

/** A bucket and a healthy cache disk after a server appended `count` records to "s" and closed. */
async function historyOnHealthyDisk(count: number) {
  const store = createMemoryObjectStore();
  const disk = createFaultyCacheDisk();
  const log: string[] = [];
  const first = await open(store, disk, log);
  await ensureTestBasin(first);
  const acked = await appendRandom(first, "s", count);
  await first.close();
  return { store, disk, log, acked };
}

async function assertReadsBack(service: Service, stream: string, acked: readonly Buffer[]) {
  const records = await readAll(service, stream);
  assert.equal(records.length, acked.length, "every acknowledged record reads back");
  for (const [i, record] of records.entries()) {
    assert.equal(record.seqNum, i, "seq nums are dense from 0");
    assert.ok(Buffer.from(record.body).equals(acked[i]!), `record ${i} reads back byte for byte`);
  }
}

async function healthOf(
  service: Service,
): Promise<{ status: number; body: string; gauge: string }> {
  const api = await startLoopbackApi(service, {
    tls: undefined,
    auth: { kind: "open" },
  });
  try {
    const health = await fetch(`http://127.0.0.1:${api.port}/health`);
    const metrics = await (await fetch(`http://127.0.0.1:${api.port}/metrics`)).text();
    const gauge = /^tributary_cache_degraded (\d+)$/m.exec(metrics)?.[1] ?? "missing";
    return { status: health.status, body: await health.text(), gauge };
  } finally {
    await api.close();
  }
}

describe("degraded cache", () => {
  it("keeps acknowledging appends on a full disk, reads every acked record back, reports it, and rejoins by itself", async () => {
    const store = createMemoryObjectStore();
    const disk = createFaultyCacheDisk();
    const log: string[] = [];
    const fatal: unknown[] = [];
    const service = await open(store, disk, log, (error) => fatal.push(error));
    const acked: Buffer[] = [];
    try {
      await ensureTestBasin(service);
      acked.push(...(await appendRandom(service, "s", 5)));
      await service.storage.cacheCommitted();
      assert.equal((await healthOf(service)).body, "OK");
      const filesBefore = service.storage.stats.filesWritten;
      assert.ok(filesBefore > 0, "the disk cache holds files before the fault");

      disk.full = true;
      acked.push(...(await appendRandom(service, "s", 20)));
      await service.storage.cacheCommitted();
      assert.match(service.storage.cacheDegradedReason ?? "", /^ENOSPC/);
      const health = await healthOf(service);
      assert.equal(health.status, 200, "a degraded server still serves: 200");
      assert.match(health.body, /^degraded: cache disk unusable \(ENOSPC/);
      assert.equal(health.gauge, "1");
      assert.equal(log.filter((line) => /cache disk unusable \(ENOSPC/.test(line)).length, 1);
      const misses = service.storage.stats.entryMisses;
      await assertReadsBack(service, "s", acked);
      assert.ok(service.storage.stats.entryMisses > misses, "degraded reads come from the bucket");
      assert.equal(service.storage.stats.filesWritten, filesBefore, "no file written while full");
      // Compaction, a checkpoint and GC run on the index in memory.
      await service.storage.runMaintenanceNow();
      acked.push(...(await appendRandom(service, "s", 5)));
      await assertReadsBack(service, "s", acked);

      disk.full = false;
      await waitFor("the rejoin", () => service.storage.cacheDegradedReason === undefined);
      assert.equal((await healthOf(service)).body, "OK");
      assert.equal((await healthOf(service)).gauge, "0");
      assert.equal(service.storage.stats.cacheGuard.rejoinedTotal, 1);
      acked.push(...(await appendRandom(service, "s", 5)));
      await service.storage.cacheCommitted();
      assert.ok(service.storage.stats.filesWritten > filesBefore, "files are written again");
      await assertReadsBack(service, "s", acked);
      assert.deepEqual(fatal, [], "nothing was fatal");
    } finally {
      await service.close();
    }
    // The rejoined LevelDB is a whole cache: a restart resumes from it without a reset.
    const restarted = await open(store, disk, log);
    try {
      assert.equal(
        restarted.storage.stats.cacheResetReason,
        undefined,
        "the copy is a valid cache",
      );
      assert.equal(restarted.storage.cacheDegradedReason, undefined);
      await assertReadsBack(restarted, "s", acked);
    } finally {
      await restarted.close();
    }
  });

  it("starts on a full disk, says why in one line naming ENOSPC, serves and rejoins", async () => {
    const { store, disk, log, acked } = await historyOnHealthyDisk(5);

    disk.full = true;
    disk.failOpen = true;
    const service = await open(store, disk, log);
    try {
      const lines = log.filter((line) => /cache disk unusable/.test(line));
      assert.equal(lines.length, 1, "one line says why");
      assert.match(lines[0]!, /\(ENOSPC: /);
      assert.match((await healthOf(service)).body, /^degraded: .*ENOSPC/);
      await assertReadsBack(service, "s", acked);
      acked.push(...(await appendRandom(service, "s", 5)));
      await assertReadsBack(service, "s", acked);

      disk.full = false;
      disk.failOpen = false;
      await waitFor("the rejoin", () => service.storage.cacheDegradedReason === undefined);
      acked.push(...(await appendRandom(service, "s", 3)));
      await assertReadsBack(service, "s", acked);
    } finally {
      await service.close();
    }
  });

  it("starts degraded when the database opens but recovery's writes fail", async () => {
    const { store, disk, log, acked } = await historyOnHealthyDisk(4);

    disk.full = true;
    const service = await open(store, disk, log);
    try {
      assert.match(service.storage.cacheDegradedReason ?? "", /^ENOSPC/);
      assert.equal(log.filter((line) => /cache disk unusable \(ENOSPC/.test(line)).length, 1);
      await assertReadsBack(service, "s", acked);
      acked.push(...(await appendRandom(service, "s", 4)));
      await assertReadsBack(service, "s", acked);
    } finally {
      await service.close();
    }
  });

  it("degrades a cache the caller opened (kv given) instead of stopping, and keeps every ack", async () => {
    const store = createMemoryObjectStore();
    const disk = createFaultyCacheDisk();
    const opened = await disk.open();
    const fatal: unknown[] = [];
    const service = await openTestService({
      store,
      kv: opened.kv,
      segmentFiles: opened.segmentFiles,
      onFatal: (error) => fatal.push(error),
    });
    try {
      await ensureTestBasin(service);
      const acked = await appendRandom(service, "s", 3);
      disk.full = true;
      acked.push(...(await appendRandom(service, "s", 10)));
      await service.storage.cacheCommitted();
      assert.deepEqual(fatal, [], "a full disk is not fatal");
      assert.match(service.storage.cacheDegradedReason ?? "", /^ENOSPC/);
      await assertReadsBack(service, "s", acked);
    } finally {
      await service.close();
    }
  });

  it("degrades when compaction cannot write its chunk files (off the commit chain)", async () => {
    const store = createMemoryObjectStore();
    const disk = createFaultyCacheDisk();
    const fatal: unknown[] = [];
    const service = await open(store, disk, [], (error) => fatal.push(error));
    try {
      await ensureTestBasin(service);
      const acked = await appendRandom(service, "s", 10);
      await service.storage.cacheCommitted();
      disk.full = true;
      // The job's chunk write fails (its stream is counted and skipped), the cache degrades on
      // the chain, and the checkpoint is taken from the index in memory.
      await service.storage.runMaintenanceNow();
      await service.storage.cacheCommitted();
      assert.match(service.storage.cacheDegradedReason ?? "", /^ENOSPC/);
      assert.ok((service.storage.stats.maintenance?.compactionStreamErrors ?? 0) >= 1);
      await assertReadsBack(service, "s", acked);
      // The next job compacts on memory (no file written) and reads still see every record.
      await service.storage.runMaintenanceNow();
      assert.ok((service.storage.stats.maintenance?.chunksWritten ?? 0) >= 1);
      acked.push(...(await appendRandom(service, "s", 3)));
      await assertReadsBack(service, "s", acked);
      assert.deepEqual(fatal, []);
    } finally {
      await service.close();
    }
  });

  it("degrades when a trim's unlink fails with EIO", async () => {
    const store = createMemoryObjectStore();
    const disk = createFaultyCacheDisk();
    const fatal: unknown[] = [];
    const service = await open(store, disk, [], (error) => fatal.push(error));
    try {
      await ensureTestBasin(service);
      const acked = await appendRandom(service, "s", 6);
      await service.storage.cacheCommitted();
      disk.failDeletes = true;
      // A trim command record (S2-API.md §5.2): everything but the last 2 records goes.
      const trimPoint = Buffer.alloc(8);
      trimPoint.writeBigUInt64BE(BigInt(acked.length - 2));
      await service.records.append(testBasin, "s", {
        records: [
          { headers: [{ name: new Uint8Array(0), value: Buffer.from("trim") }], body: trimPoint },
        ],
      });
      await service.storage.cacheCommitted();
      assert.match(service.storage.cacheDegradedReason ?? "", /^EIO/);
      const records = await readAll(service, "s");
      assert.equal(records[0]?.seqNum, acked.length - 2, "reads start at the trim point");
      assert.ok(Buffer.from(records[0]!.body).equals(acked.at(-2)!));
      assert.ok(Buffer.from(records[1]!.body).equals(acked.at(-1)!));
      assert.equal(records.length, 3, "the two records kept and the trim command");
      assert.deepEqual(fatal, []);
    } finally {
      disk.failDeletes = false;
      await service.close();
    }
  });

  it("still stops on a cache failure that is not the disk's", async () => {
    const store = createMemoryObjectStore();
    const disk = createFaultyCacheDisk();
    const fatal: unknown[] = [];
    const service = await open(store, disk, [], (error) => fatal.push(error));
    try {
      await ensureTestBasin(service);
      disk.otherError = new Error("not a disk fault");
      await appendRandom(service, "s", 1);
      await service.storage.cacheCommitted();
      // Every later commit fails too (onFatal here does not exit, as main.ts's does).
      assert.ok(fatal.length >= 1, "fatal, as before");
      for (const error of fatal) assert.equal(diskFaultOf(error), undefined);
      assert.equal(service.storage.cacheDegradedReason, undefined, "not degraded");
    } finally {
      disk.otherError = undefined;
      await service.close();
    }
  });
});
