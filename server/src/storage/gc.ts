/**
 * Garbage collection of the bucket (docs/design/bottomless.md "Garbage collection"): deletes
 * what a committed checkpoint at least `graceMs` old no longer references.
 *
 * Invariants:
 * - Garbage relative to a committed checkpoint C is garbage relative to every later one (the
 *   index only gains rows for WAL ids past C's and chunk ids at or past C's bound), so deleting
 *   it never removes an object the newest checkpoint references.
 * - The WAL id each epoch claimed at start is never deleted (a zombie's PUT there must fail).
 * - The newest manifest, C itself, and everything newer than C are never deleted.
 * - A pass starts only after a manifest listing shows no newer epoch, and deletes only while
 *   `isReady()`: a fenced writer never deletes.
 *
 * Fault model: lists and deletes may fail or time out, and a failed batch delete may have
 * deleted any part of its batch; a failed pass is counted and retried at the next; a delete is
 * idempotent.
 */
import type { Clock } from "../core/clock.js";
import { objectDeleteBatchMax } from "../core/limits.js";
import { failpoint } from "../core/failpoints.js";
import type { CheckpointReferences } from "./checkpoint.js";
import { type Manifest, readNewerWriter } from "./manifest/manifest.js";
import {
  checkpointPrefix,
  chunkPrefix,
  manifestPrefix,
  parseObjectId,
  walPrefix,
} from "./object-keys.js";
import { listAll, type ObjectStore } from "./object-store/object-store.js";

/** The default grace period (`--gc-grace-ms`): minutes, well past any read or recovery. */
export const gcGraceMsDefault = 10 * 60_000;

/** Committed checkpoints remembered for GC at most (with their reference sets). */
const committedCheckpointsMax = 32;

/**
 * Delete requests in flight at once, each a batch of up to `objectDeleteBatchMax` keys of one
 * kind: a pass over a steady load's garbage (one WAL object per flush) is then a request or two,
 * not one per object, which on S3 also keeps GC far from the per-prefix request rate.
 */
const gcDeleteBatchesInFlight = 4;

/**
 * During a pass the manifest is listed again at least this often: a writer fenced mid-pass stops
 * deleting within about this long (what it deletes meanwhile is garbage for the newest
 * checkpoint too, bottomless.md "Garbage collection", so this narrows the window, for economy).
 */
const gcManifestRecheckMs = 1_000;

/** A checkpoint this writer committed, as GC needs it. */
export interface CommittedCheckpoint {
  readonly key: string;
  readonly manifestVersion: number;
  readonly walId: number;
  readonly chunkIdBound: number;
  readonly committedAtMs: number;
  readonly references: CheckpointReferences;
}

/** Objects and bytes per kind, as of the last listing. */
export interface BucketUsage {
  readonly objects: number;
  readonly bytes: number;
}

export interface GcStats {
  passes: number;
  objectsDeleted: number;
  bytesDeleted: number;
  errors: number;
  bucket: Record<"wal" | "chunks" | "checkpoints" | "manifests", BucketUsage>;
}

export class GarbageCollector {
  readonly stats: GcStats = {
    passes: 0,
    objectsDeleted: 0,
    bytesDeleted: 0,
    errors: 0,
    bucket: {
      wal: { objects: 0, bytes: 0 },
      chunks: { objects: 0, bytes: 0 },
      checkpoints: { objects: 0, bytes: 0 },
      manifests: { objects: 0, bytes: 0 },
    },
  };
  /** Committed checkpoints, oldest first; those older than the one collected are dropped. */
  private readonly committed: CommittedCheckpoint[] = [];
  private lastCollectedKey: string | undefined;

  constructor(
    private readonly options: {
      readonly store: ObjectStore;
      readonly clock: Clock;
      readonly graceMs: number;
      /** The manifest this writer holds now (its own newest). */
      readonly manifest: () => Manifest;
      readonly isReady: () => boolean;
    },
  ) {}

  /** Records a checkpoint this writer just committed. */
  addCommitted(checkpoint: CommittedCheckpoint): void {
    this.committed.push(checkpoint);
    // A bound while passes fail: dropping the oldest only postpones what they would collect.
    if (this.committed.length > committedCheckpointsMax) this.committed.shift();
  }

  /** Whether a pass would have a newer checkpoint to collect against than the last pass. */
  get isDue(): boolean {
    const target = this.target();
    return target !== undefined && target.key !== this.lastCollectedKey;
  }

  /**
   * One pass: garbage relative to the newest committed checkpoint at least `graceMs` old. Returns
   * false if it did not run (nothing old enough, not ready, or fenced).
   */
  async collect(): Promise<boolean> {
    const target = this.target();
    if (target === undefined || !this.options.isReady()) return false;
    const { store } = this.options;
    const ours = this.options.manifest();
    if ((await readNewerWriter(store, ours)) !== undefined) return false;
    const { references } = target;
    type Kind = keyof GcStats["bucket"];
    const garbage: { key: string; size: number; kind: Kind }[] = [];

    const wal = await listAll(store, walPrefix);
    this.stats.bucket.wal = usageOf(wal);
    for (const object of wal) {
      const id = parseObjectId(walPrefix, object.key);
      if (id === undefined || id > target.walId) continue;
      if (references.walIds.has(id) || references.fenceWalIds.has(id)) continue;
      garbage.push({ ...object, kind: "wal" });
    }
    const chunks = await listAll(store, chunkPrefix);
    this.stats.bucket.chunks = usageOf(chunks);
    for (const object of chunks) {
      const id = parseObjectId(chunkPrefix, object.key);
      if (id === undefined || id >= target.chunkIdBound || references.chunkIds.has(id)) continue;
      garbage.push({ ...object, kind: "chunks" });
    }
    const checkpoints = await listAll(store, checkpointPrefix);
    this.stats.bucket.checkpoints = usageOf(checkpoints);
    const targetWalPart = target.key.slice(0, checkpointPrefix.length + 20);
    // The target and every checkpoint committed after it stay (two may share a WAL id).
    const kept = new Set(this.committed.slice(this.committed.indexOf(target)).map((c) => c.key));
    for (const object of checkpoints) {
      const walPart = object.key.slice(0, checkpointPrefix.length + 20);
      // Older checkpoints, and uncommitted attempts at the target's WAL id.
      if (walPart <= targetWalPart && !kept.has(object.key)) {
        garbage.push({ ...object, kind: "checkpoints" });
      }
    }
    const manifests = await listAll(store, manifestPrefix);
    this.stats.bucket.manifests = usageOf(manifests);
    for (const object of manifests) {
      const version = parseObjectId(manifestPrefix, object.key);
      if (version !== undefined && version < target.manifestVersion) {
        garbage.push({ ...object, kind: "manifests" });
      }
    }

    const batches = batchesByKind(garbage);
    let next = 0;
    let isFenced = false;
    let failure: unknown;
    let checkedAtMs = this.options.clock.nowMs();
    let recheck: Promise<void> | undefined;
    const stillOurs = async (): Promise<boolean> => {
      if (this.options.clock.nowMs() - checkedAtMs >= gcManifestRecheckMs) {
        recheck ??= readNewerWriter(store, ours).then((newer) => {
          if (newer !== undefined) isFenced = true;
          checkedAtMs = this.options.clock.nowMs();
          recheck = undefined;
        });
        try {
          await recheck;
        } catch (error) {
          failure ??= error; // cannot tell whether we are still the writer: stop deleting
          return false;
        }
      }
      return !isFenced && this.options.isReady();
    };
    const worker = async (): Promise<void> => {
      while (next < batches.length && failure === undefined && (await stillOurs())) {
        if (next >= batches.length || failure !== undefined) return;
        const batch = batches[next++]!;
        try {
          await store.delete(batch.map((object) => object.key));
        } catch (error) {
          failure ??= error; // the other workers stop at their next step
          return;
        }
        failpoint("gc.after-delete");
        for (const object of batch) {
          this.stats.objectsDeleted += 1;
          this.stats.bytesDeleted += object.size;
          const usage = this.stats.bucket[object.kind];
          this.stats.bucket[object.kind] = {
            objects: usage.objects - 1,
            bytes: usage.bytes - object.size,
          };
        }
      }
    };
    await Promise.all(Array.from({ length: gcDeleteBatchesInFlight }, worker));
    if (failure !== undefined) throw failure;
    if (isFenced || next < batches.length) return false;
    this.stats.passes += 1;
    this.lastCollectedKey = target.key;
    // Checkpoints older than the target are superseded for good.
    while (this.committed[0] !== target) this.committed.shift();
    return true;
  }

  /** The newest committed checkpoint at least `graceMs` old. */
  private target(): CommittedCheckpoint | undefined {
    const horizonMs = this.options.clock.nowMs() - this.options.graceMs;
    let found: CommittedCheckpoint | undefined;
    for (const checkpoint of this.committed) {
      if (checkpoint.committedAtMs <= horizonMs) found = checkpoint;
    }
    return found;
  }
}

/** Consecutive objects of one kind, cut into batches of at most `objectDeleteBatchMax`. */
function batchesByKind<T extends { readonly kind: string }>(objects: readonly T[]): T[][] {
  const batches: T[][] = [];
  for (const object of objects) {
    const last = batches.at(-1);
    if (last !== undefined && last.length < objectDeleteBatchMax && last[0]!.kind === object.kind) {
      last.push(object);
    } else {
      batches.push([object]);
    }
  }
  return batches;
}

function usageOf(objects: readonly { size: number }[]): BucketUsage {
  let bytes = 0;
  for (const object of objects) bytes += object.size;
  return { objects: objects.length, bytes };
}
