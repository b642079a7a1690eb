// Goal: object-store faults during compaction, checkpoints and GC (errors before and after apply,
// timeouts, late success, torn lists) may fail a job but never lose an acknowledged record, and a
// writer fenced while its job runs never commits a checkpoint nor deletes once it knows. Method:
// the engine in-process on a memory store behind the seeded faulty wrapper, jobs run on demand
// beside the shared workload, then a clean job, byte checks, a bucket scan and an empty-cache
// restart; for fencing, a gate holds the old writer's job at one step while a new writer starts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Clock, systemClock } from "../../src/core/clock.js";
import { gcListingIntervalMs } from "../../src/storage/gc.js";
import { createSeededRandom, systemRandom } from "../../src/core/random.js";
import type { Service } from "../../src/service/service.js";
import { createMemorySegmentFiles } from "../../src/storage/cache/segment-files.js";
import { readNewestManifest } from "../../src/storage/manifest/manifest.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";
import {
  createFaultyObjectStore,
  type FaultKind,
  type FaultyObjectStore,
  type ObjectStoreOp,
} from "../../src/storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import { listAll, type ObjectStore } from "../../src/storage/object-store/object-store.js";
import {
  checkCheckpointReferences,
  checkServes,
  Ledger,
  objectsContaining,
  runIteration,
} from "../support/bottomless-workload.js";
import { ensureTestBasin, openTestService } from "../support/engine.js";

const baseSeed = Number(process.env["TRIBUTARY_FAULT_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
const decoder = new TextDecoder();

function openNode(
  store: ObjectStore,
  cacheBytesMax = 64 << 10,
  clock: Clock = systemClock,
): Promise<Service> {
  return openTestService({
    store,
    clock,
    kv: createMemoryKvStore(),
    segmentFiles: createMemorySegmentFiles(),
    putTimeoutMs: 200,
    bottomless: {
      chunkFiles: createMemorySegmentFiles(),
      cacheBytesMax,
      gcGraceMs: 0,
      checkpointIntervalMs: 3_600_000,
    },
  });
}

/**
 * The calls maintenance makes (WAL PUTs are the flusher's, tested in faults.test.ts). WAL GETs are
 * compaction's: the 64 KiB cache bound evicts WAL files before they are compacted, so its read
 * windows and entry reads fetch them from the bucket (no other read runs while faults are on).
 */
function isMaintenanceCall(op: ObjectStoreOp, key: string): boolean {
  if (op === "list" || op === "delete") return true;
  if (op === "get" && key.startsWith("wal/")) return true;
  return ["chunks/", "checkpoints/", "manifest/"].some((prefix) => key.startsWith(prefix));
}

interface Scenario {
  readonly name: string;
  /** Fault kinds and their probability per maintenance call of each op. */
  readonly faults: { readonly [Op in ObjectStoreOp]?: readonly [FaultKind, number][] };
  /** The cache bound of the node under faults (64 KiB unless given). */
  readonly cacheBytesMax?: number;
}

const scenarios: readonly Scenario[] = [
  {
    name: "chunk, checkpoint and manifest PUTs fail before applying",
    faults: { putIfAbsent: [["failBeforeApply", 0.3]] },
  },
  {
    name: "PUTs apply, then throw (lost answers)",
    faults: { putIfAbsent: [["failAfterApply", 0.3]] },
  },
  {
    name: "every call may time out",
    faults: {
      putIfAbsent: [["timeout", 0.15]],
      get: [["timeout", 0.15]],
      list: [["timeout", 0.15]],
      delete: [["timeout", 0.15]],
    },
  },
  {
    name: "PUTs and deletes succeed late, after the caller gave up",
    faults: { putIfAbsent: [["lateSuccess", 0.3]], delete: [["lateSuccess", 0.3]] },
  },
  {
    name: "GETs fail or time out (compaction's reads of evicted WAL entries and chunks)",
    // A bound below one segment: every WAL file but the newest is evicted before it is compacted.
    cacheBytesMax: 1 << 10,
    faults: {
      get: [
        ["failBeforeApply", 0.3],
        ["timeout", 0.1],
      ],
    },
  },
  {
    name: "lists are torn (a suffix missing, claimed complete)",
    faults: { list: [["tornList", 0.5]] },
  },
  {
    name: "GC deletes fail before and after applying",
    faults: {
      delete: [
        ["failBeforeApply", 0.2],
        ["failAfterApply", 0.2],
      ],
    },
  },
  {
    name: "everything at once",
    faults: {
      putIfAbsent: [
        ["failBeforeApply", 0.1],
        ["failAfterApply", 0.1],
        ["lateSuccess", 0.1],
      ],
      get: [["failBeforeApply", 0.1]],
      list: [
        ["tornList", 0.2],
        ["failBeforeApply", 0.1],
      ],
      delete: [
        ["failAfterApply", 0.1],
        ["lateSuccess", 0.1],
      ],
    },
  },
];

describe("bottomless jobs on a faulty store", { timeout: 60_000 }, () => {
  for (const [index, scenario] of scenarios.entries()) {
    it(scenario.name, async (t) => {
      const seed = baseSeed + index;
      const where = `${scenario.name} seed=${seed} (TRIBUTARY_FAULT_SEED=${baseSeed})`;
      const random = createSeededRandom(seed);
      const store = createFaultyObjectStore(createMemoryObjectStore(), {
        random: createSeededRandom(seed + 1_000),
        clock: systemClock,
      });
      let faultsOn = false;
      const faultSettings = {
        timeoutMs: 40,
        lateSuccessDelayMs: { min: 0, max: 150 },
        decide: ({ op, key }: { op: ObjectStoreOp; key: string }): FaultKind | undefined => {
          if (!faultsOn || !isMaintenanceCall(op, key)) return undefined;
          let draw = random.float();
          for (const [kind, p] of scenario.faults[op] ?? []) {
            if (draw < p) return kind;
            draw -= p;
          }
          return undefined;
        },
      };
      store.setFaults(faultSettings);
      const ledger = new Ledger(`faults-${index}`);
      // Wall time the test moves on before the clean job (GC's listing interval reads it).
      let clockOffsetMs = 0;
      const clock: Clock = {
        ...systemClock,
        nowMs: () => Date.now() + clockOffsetMs,
        // The listing interval is a duration: the collector reads it on the monotonic clock.
        monotonicMs: () => performance.now() + clockOffsetMs,
      };
      let service = await openNode(store, scenario.cacheBytesMax, clock);
      let jobsFailed = 0;
      try {
        await ensureTestBasin(service);
        for (let i = 0; i < 8; i++) {
          faultsOn = true;
          // A job beside the appends of the next iteration, then one after them.
          const [beside] = await Promise.allSettled([
            service.storage.runMaintenanceNow(),
            runIteration(service, ledger.runId, `0.${i}`, i, (event) => ledger.add(event)),
          ]);
          const after = await Promise.allSettled([service.storage.runMaintenanceNow()]);
          for (const outcome of [beside, ...after]) {
            if (outcome?.status === "rejected") jobsFailed += 1;
          }
          faultsOn = false;
          assert.equal(service.storage.health, "ready", `${where}: the writer stays ready`);
        }
        const faults = store.counters().faults;
        const injected = Object.values(faults).reduce((sum, n) => sum + n, 0);
        assert.ok(injected > 0, `${where}: faults were injected`);
        assert.deepEqual(await checkServes(service, ledger), [], `${where}: under faults`);

        // Faults off, late operations landed, one more iteration (a job with no new WAL has
        // nothing to commit): a job succeeds and collects everything.
        await store.whenLateOpsSettled();
        // GC passes between listings take their candidates from two checkpoints, so what a torn
        // listing hid stays until the next listing pass (bottomless.md "Which objects a pass
        // looks at"): the clean job is one, as it is at most `gcListingIntervalMs` later.
        clockOffsetMs += gcListingIntervalMs;
        await runIteration(service, ledger.runId, "1.0", 8, (event) => ledger.add(event));
        const committedBefore = service.storage.stats.maintenance!.checkpointsCommitted;
        await service.storage.runMaintenanceNow();
        const stats = service.storage.stats.maintenance!;
        assert.equal(
          stats.checkpointsCommitted,
          committedBefore + 1,
          `${where}: a later job commits`,
        );
        assert.deepEqual(await checkServes(service, ledger), [], `${where}: after a clean job`);
        await checkCheckpointReferences(store.inner);
        assert.deepEqual(
          await objectsContaining(store.inner, ledger.goneNeedles()),
          [],
          `${where}: nothing trimmed or deleted is left in the bucket`,
        );
        t.diagnostic(
          `${where}: ${ledger.ackCount} acks, faults ${JSON.stringify(faults)}, ` +
            `${jobsFailed} jobs failed of ${stats.jobs}, ${stats.checkpointsCommitted} ` +
            `checkpoints, ${stats.gcObjectsDeleted} objects deleted`,
        );
        await service.close();

        // A restart with an empty cache starts from the checkpoint and serves the same.
        service = await openNode(store.inner);
        assert.equal(service.storage.stats.loadedCheckpoint, true);
        assert.deepEqual(await checkServes(service, ledger), [], `${where}: after a restart`);
      } finally {
        await service.close().catch(() => {});
      }
    });
  }
});

/** Where the old writer's job is held while the new writer starts. */
type Gate = "chunk-put" | "checkpoint-put" | "manifest-put" | "gc-delete";

/** A store that holds the first call matching `gate` until released. */
function gatedStore(inner: FaultyObjectStore, gate: Gate) {
  let reached: () => void = () => {};
  const isReached = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let armed = false;
  let held = false;
  const hold = async (): Promise<void> => {
    if (!armed || held) return;
    held = true;
    reached();
    await released;
  };
  const prefix = {
    "chunk-put": "chunks/",
    "checkpoint-put": "checkpoints/",
    "manifest-put": "manifest/",
  };
  inner.setHooks({
    beforePut: async (key) => {
      if (gate !== "gc-delete" && key.startsWith(prefix[gate])) await hold();
    },
  });
  const deletes: string[] = [];
  const store: ObjectStore = {
    get: (key, range) => inner.get(key, range),
    putIfAbsent: (key, bytes) => inner.putIfAbsent(key, bytes),
    list: (listPrefix, options) => inner.list(listPrefix, options),
    async delete(keys) {
      if (gate === "gc-delete") await hold();
      deletes.push(...keys);
      return inner.delete(keys);
    },
    close: () => inner.close(),
  };
  return {
    store,
    deletes,
    arm() {
      armed = true;
    },
    isReached,
    release,
  };
}

describe("bottomless fencing while the old writer's job runs", { timeout: 60_000 }, () => {
  const gates: Gate[] = ["chunk-put", "checkpoint-put", "manifest-put", "gc-delete"];
  for (const gate of gates) {
    it(`new writer starts while the old one's job is held at its ${gate}`, async (t) => {
      const memory = createMemoryObjectStore();
      // A slow store for the old writer: every call waits 1-4 ms.
      const faulty = createFaultyObjectStore(memory, {
        random: systemRandom,
        clock: systemClock,
        faults: { latencyMs: { min: 1, max: 4 } },
      });
      const gated = gatedStore(faulty, gate);
      const ledger = new Ledger(`fence-${gate}`);
      const report = (event: Parameters<Ledger["add"]>[0]): void => ledger.add(event);
      const old = await openNode(gated.store);
      let newer: Service | undefined;
      try {
        await ensureTestBasin(old);
        for (let i = 0; i < 3; i++) await runIteration(old, ledger.runId, `0.${i}`, i, report);
        if (gate !== "gc-delete") {
          // A first job commits a checkpoint, so that the held one would have garbage to delete.
          await old.storage.runMaintenanceNow();
          for (let i = 3; i < 6; i++) await runIteration(old, ledger.runId, `0.${i}`, i, report);
        }
        const committedBefore = old.storage.stats.maintenance!.checkpointsCommitted;
        const deletesBefore = gated.deletes.length;
        gated.arm();
        const job = old.storage.runMaintenanceNow().then(
          () => "ok",
          (error: unknown) => `failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        await gated.isReached;

        // The new writer claims the bucket (straight on the memory store) while the job is held.
        newer = await openNode(memory);
        const newerEpoch = newer.storage.writerEpoch;
        const atFence = new Set((await listAll(memory, "")).map((object) => object.key));
        // Let the old writer's manifest poll see the new writer for the first three gates.
        if (gate !== "gc-delete") await sleep(150);
        gated.release();
        const outcome = await job;
        await sleep(100);
        const after = (await listAll(memory, "")).map((object) => object.key);
        const added = after.filter((key) => !atFence.has(key));
        const removed = [...atFence].filter((key) => !after.includes(key));

        // No manifest of the old epoch after the fence, and no checkpoint the old writer wrote
        // since is named by any manifest.
        for (const key of added.filter((key) => key.startsWith("manifest/"))) {
          const manifest = JSON.parse(decoder.decode(await memory.get(key))) as {
            writerEpoch: number;
          };
          assert.equal(manifest.writerEpoch, newerEpoch, `a fenced writer wrote ${key}`);
        }
        const newest = await readNewestManifest(memory);
        assert.equal(newest?.writerEpoch, newerEpoch, "the newest manifest is the new writer's");
        const orphanCheckpoints = added.filter((key) => key.startsWith("checkpoints/"));
        assert.ok(
          orphanCheckpoints.every((key) => newest?.checkpoint?.key !== key),
          "no manifest names a checkpoint the fenced writer uploaded",
        );
        if (gate === "chunk-put") {
          assert.deepEqual(orphanCheckpoints, [], "a fenced writer uploads no checkpoint");
        }
        if (gate === "gc-delete") {
          // The pass's manifest check preceded the fence: its garbage is garbage of the newest
          // checkpoint too, so what the new writer recovered from is intact.
          assert.equal(old.storage.stats.maintenance!.checkpointsCommitted, committedBefore + 1);
        } else {
          assert.equal(old.storage.stats.maintenance!.checkpointsCommitted, committedBefore);
          assert.deepEqual(removed, [], "a fenced writer deletes nothing");
          assert.equal(gated.deletes.length, deletesBefore, "a fenced writer calls no delete");
        }
        // Once it knows, the old writer neither checkpoints nor deletes.
        await sleep(100);
        assert.notEqual(old.storage.health, "ready", "the old writer learned it is fenced");
        const deletesKnown = gated.deletes.length;
        const keysKnown = (await listAll(memory, "")).map((object) => object.key);
        await old.storage.runMaintenanceNow().catch(() => {});
        await old.storage.collectGarbageNow().catch(() => false);
        assert.equal(gated.deletes.length, deletesKnown, "no delete once fenced");
        const keysLater = (await listAll(memory, "")).map((object) => object.key);
        assert.deepEqual(keysLater, keysKnown, "no object written or deleted once fenced");

        // The new writer serves every acknowledged record, checkpoints, and collects.
        await checkCheckpointReferences(memory);
        assert.deepEqual(await checkServes(newer, ledger), [], "the new writer after the fence");
        await newer.storage.runMaintenanceNow();
        await checkCheckpointReferences(memory);
        assert.deepEqual(await checkServes(newer, ledger), [], "the new writer after its job");
        t.diagnostic(
          `${gate}: old job ${outcome}; after the fence ${added.length} objects added ` +
            `(${added.join(" ")}), ${removed.length} removed`,
        );
      } finally {
        gated.release();
        await old.close().catch(() => {});
        await newer?.close().catch(() => {});
      }
    });
  }
});
