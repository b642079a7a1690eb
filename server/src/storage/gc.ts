/**
 * Garbage collection of the bucket (docs/design/bottomless.md "Garbage collection"): deletes
 * what a committed checkpoint at least `graceMs` old no longer references. A pass after one that
 * succeeded takes its `wal/` and `chunks/` candidates from the difference between the two
 * checkpoints; the first pass, and one every `gcListingIntervalMs`, lists those prefixes instead.
 *
 * Invariants:
 * - Garbage relative to a committed checkpoint C is garbage relative to every later one (the
 *   index only gains rows for WAL ids past C's and chunk ids at or past C's bound), so deleting
 *   it never removes an object the newest checkpoint references.
 * - The WAL id each epoch claimed at start is never deleted (a zombie's PUT there must fail).
 * - The newest manifest, C itself, and everything newer than C are never deleted.
 * - A pass starts only after a manifest listing shows no newer epoch, and deletes only while
 *   `isReady()`: a fenced writer never deletes.
 * - Every candidate is garbage relative to the pass's target (id within its marks, not
 *   referenced, not a fence), whichever way it was found; `base` moves only when a pass succeeds.
 *
 * Fault model: lists and deletes may fail or time out, and a failed batch delete may have
 * deleted any part of its batch; a failed pass is counted and retried at the next; a delete is
 * idempotent.
 */
import { assert } from "../core/assert.js";
import type { Clock } from "../core/clock.js";
import { Slicer } from "../core/slices.js";
import { objectDeleteBatchMax } from "../core/limits.js";
import { failpoint } from "../core/failpoints.js";
import {
  type BucketKind,
  type BucketKindUsage,
  type BucketUsage,
  bucketKindOf,
  bucketPrefixOf,
} from "./bucket-usage.js";
import type { CheckpointReferences } from "./checkpoint.js";
import { type Manifest, readNewerWriter, readNewestManifest } from "./manifest/manifest.js";
import {
  checkpointPartPrefix,
  checkpointPrefix,
  chunkKey,
  manifestPrefix,
  parseObjectId,
  walKey,
} from "./object-keys.js";
import { listAll, type ObjectStore } from "./object-store/object-store.js";

/** The default grace period (`--gc-grace-ms`): minutes, well past any read or recovery. */
export const gcGraceMsDefault = 10 * 60_000;

/**
 * A pass lists `wal/` and `chunks/` at least this often (and at its first): the passes between
 * take their candidates from the difference of two checkpoints, and what that cannot see (a
 * zombie's retried WAL PUT, an earlier epoch's orphan chunks) goes at the next listing.
 */
export const gcListingIntervalMs = 10 * 60_000;

/**
 * A difference pass deletes at most this many ids past the last pass's marks (WAL ids, chunk
 * ids), built in one synchronous loop (~12 ms for 10,000 keys, measured; 112 ms for 100,000); a
 * larger range (passes failing for minutes at 40 flushes a second) is listed instead.
 */
const gcIdRangeMax = 10_000;

/**
 * Committed checkpoints remembered for GC at most, with their reference sets: a set of chunk ids
 * each, which grows with the history (8.4 MB per 200,000 chunks, measured). Fewer only spaces the
 * targets out: the oldest remembered are kept, so one comes of age at least once per grace period.
 */
const committedCheckpointsMax = 8;

/**
 * Keys of committed checkpoints dropped from the remembered ones, kept at most (a bound while
 * passes fail; the oldest go first, and are superseded by then).
 */
const droppedKeysMax = 100_000;

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
  /** Every part id below this was allocated before it (absent: a checkpoint without parts). */
  readonly partIdBound?: number | undefined;
  /** The keys of the parts it names. */
  readonly partKeys?: ReadonlySet<string> | undefined;
  /**
   * When it was committed, on the monotonic clock: the grace is a duration, which a wall clock
   * set back would stretch (no GC for as long) and set forward would cut short.
   */
  readonly committedAtMs: number;
  readonly references: CheckpointReferences;
}

export interface GcStats {
  passes: number;
  /** Passes that listed `wal/` and `chunks/` (the rest took the difference of two checkpoints). */
  listingPasses: number;
  objectsDeleted: number;
  bytesDeleted: number;
  errors: number;
}

/** What the last successful pass collected against: the marks and references of its target. */
interface CollectedBase {
  readonly walId: number;
  readonly chunkIdBound: number;
  readonly references: CheckpointReferences;
}

type Garbage = { key: string; size: number; kind: BucketKind };

export class GarbageCollector {
  readonly stats: GcStats = {
    passes: 0,
    listingPasses: 0,
    objectsDeleted: 0,
    bytesDeleted: 0,
    errors: 0,
  };
  /** Committed checkpoints, oldest first; those older than the one collected are dropped. */
  private readonly committed: CommittedCheckpoint[] = [];
  private lastCollectedKey: string | undefined;
  /**
   * Committed checkpoints dropped from `committed` when it was full (key → manifest version):
   * never targets, but kept like the remembered ones while newer than the target.
   */
  private readonly droppedKeys = new Map<string, number>();
  private base: CollectedBase | undefined;
  /** When the last listing pass started (monotonic ms). */
  private listedAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly options: {
      readonly store: ObjectStore;
      readonly clock: Clock;
      readonly graceMs: number;
      /** The manifest this writer holds now (its own newest). */
      readonly manifest: () => Manifest;
      readonly isReady: () => boolean;
      /** What the bucket holds; `store` is tracked by it (`BucketUsage.track`). */
      readonly usage: BucketUsage;
      /** `gcListingIntervalMs` unless a test shortens it. */
      readonly listingIntervalMs: number;
      /**
       * How long the candidate loops run before the event loop turns (`backgroundSliceMs`;
       * tests set 0 to run every pause): a base references every chunk of the history, and a
       * listing holds every object.
       */
      readonly sliceMs?: number | undefined;
    },
  ) {}

  /** Objects and bytes by kind: the last listing plus what this server created and deleted. */
  bucketUsage(): Record<BucketKind, BucketKindUsage> {
    const { usage } = this.options;
    return {
      wal: usage.usage("wal"),
      chunks: usage.usage("chunks"),
      checkpoints: usage.usage("checkpoints"),
      manifests: usage.usage("manifests"),
    };
  }

  /** Records a checkpoint this writer just committed. */
  addCommitted(checkpoint: CommittedCheckpoint): void {
    // A bound on the reference sets kept. When full, the newest takes the place of the newest
    // kept: the oldest are the next targets (the first past the grace period). Dropping the
    // oldest instead starved GC for good whenever checkpoints came more often than the grace
    // period over this bound (when it was 32: every 6 s at 10 MiB/s against 10 min / 32 = 19 s):
    // no checkpoint kept ever grew old enough.
    if (this.committed.length >= committedCheckpointsMax) {
      const dropped = this.committed.pop()!;
      // Its object must outlive every target older than it, as a remembered one does.
      this.droppedKeys.set(dropped.key, dropped.manifestVersion);
      if (this.droppedKeys.size > droppedKeysMax) {
        this.droppedKeys.delete(this.droppedKeys.keys().next().value!);
      }
    }
    this.committed.push(checkpoint);
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
    const newest = await readNewestManifest(store, ours.version);
    if (newest !== undefined && newest.writerEpoch !== ours.writerEpoch) return false;
    const startedAtMs = this.options.clock.monotonicMs();
    const isListing =
      this.base === undefined ||
      startedAtMs - this.listedAtMs >= this.options.listingIntervalMs ||
      !isDifferenceBounded(this.base, target);
    const garbage: Garbage[] = isListing
      ? await this.garbageByListing(target)
      : await this.garbageByDifference(this.base!, target);
    const checkpoints = await this.list("checkpoints");
    const targetWalPart = target.key.slice(0, checkpointPrefix.length + 20);
    // The target and every checkpoint committed after it stay (two may share a WAL id).
    const kept = new Set(this.committed.slice(this.committed.indexOf(target)).map((c) => c.key));
    for (const [key, version] of this.droppedKeys) {
      if (version > target.manifestVersion) kept.add(key);
    }
    // A commit of ours that applied although its request failed: the bucket's newest manifest
    // names a checkpoint this collector never heard of, maybe at the target's WAL id.
    if (newest?.checkpoint !== undefined) kept.add(newest.checkpoint.key);
    for (const object of checkpoints) {
      if (object.key.startsWith(checkpointPartPrefix)) {
        if (isPartGarbageOf(target, object.key)) garbage.push({ ...object, kind: "checkpoints" });
        continue;
      }
      const walPart = object.key.slice(0, checkpointPrefix.length + 20);
      // Older checkpoints, and uncommitted attempts at the target's WAL id.
      if (walPart <= targetWalPart && !kept.has(object.key)) {
        garbage.push({ ...object, kind: "checkpoints" });
      }
    }
    const manifests = await this.list("manifests");
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
    let checkedAtMs = this.options.clock.monotonicMs();
    let recheck: Promise<void> | undefined;
    const stillOurs = async (): Promise<boolean> => {
      if (this.options.clock.monotonicMs() - checkedAtMs >= gcManifestRecheckMs) {
        recheck ??= readNewerWriter(store, ours).then((newer) => {
          if (newer !== undefined) isFenced = true;
          checkedAtMs = this.options.clock.monotonicMs();
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
        }
      }
    };
    await Promise.all(Array.from({ length: gcDeleteBatchesInFlight }, worker));
    if (failure !== undefined) throw failure;
    if (isFenced || next < batches.length) return false;
    this.stats.passes += 1;
    if (isListing) {
      this.stats.listingPasses += 1;
      this.listedAtMs = startedAtMs;
    }
    this.base = target;
    this.lastCollectedKey = target.key;
    // Checkpoints older than the target are superseded for good.
    // (Bounded: a pass run beside a job, which only tests do, may find its target dropped.)
    while (this.committed.length > 0 && this.committed[0] !== target) this.committed.shift();
    for (const [key, version] of this.droppedKeys) {
      if (version <= target.manifestVersion) this.droppedKeys.delete(key);
    }
    return true;
  }

  /** Garbage of `target` among every `wal/` and `chunks/` object the bucket lists. */
  private async garbageByListing(target: CommittedCheckpoint): Promise<Garbage[]> {
    const slicer = new Slicer(this.options.sliceMs);
    const garbage: Garbage[] = [];
    for (const kind of ["wal", "chunks"] as const) {
      for (const object of await this.list(kind)) {
        if (slicer.isDue()) await slicer.pause();
        const id = parseObjectId(bucketPrefixOf(kind), object.key);
        if (id !== undefined && isGarbageOf(target, kind, id)) garbage.push({ ...object, kind });
      }
    }
    return garbage;
  }

  /**
   * Garbage of `target` that was not garbage of `base` (the last pass's target, collected):
   * what `base` referenced and `target` does not, and what lies between their marks and `target`
   * does not reference (bottomless.md "Which objects a pass looks at"); and our creates that
   * failed, which may have applied after the pass that would have taken them. Sizes are the
   * recorded ones (0 for an object created with a lost answer, or never created: the id ranges).
   */
  private async garbageByDifference(
    base: CollectedBase,
    target: CommittedCheckpoint,
  ): Promise<Garbage[]> {
    const { usage } = this.options;
    const slicer = new Slicer(this.options.sliceMs);
    // The garbage among the candidates, gathered without copying the candidates (the base
    // references every chunk of the history; a set of them is rehashed whole as it grows).
    const ids = { wal: [] as number[], chunks: [] as number[] };
    const consider = (kind: "wal" | "chunks", id: number): void => {
      if (isGarbageOf(target, kind, id)) ids[kind].push(id);
    };
    for (const id of base.references.walIds) {
      if (slicer.isDue()) await slicer.pause();
      assert(id <= target.walId, "a WAL id the base references is within the target's marks");
      consider("wal", id);
    }
    for (let id = base.walId + 1; id <= target.walId; id++) consider("wal", id);
    for (const id of base.references.chunkIds) {
      if (slicer.isDue()) await slicer.pause();
      assert(id < target.chunkIdBound, "a chunk the base references is within the target's marks");
      consider("chunks", id);
    }
    for (let id = base.chunkIdBound; id < target.chunkIdBound; id++) consider("chunks", id);
    for (const key of usage.uncertainKeys()) {
      const kind = bucketKindOf(key);
      if (kind !== "wal" && kind !== "chunks") continue;
      const id = parseObjectId(bucketPrefixOf(kind), key);
      if (id !== undefined) consider(kind, id);
    }
    const garbage: Garbage[] = [];
    for (const kind of ["wal", "chunks"] as const) {
      let previous: number | undefined;
      // An uncertain key may also be a reference or in a range: once each.
      for (const id of ids[kind].sort((x, y) => x - y)) {
        if (id === previous) continue;
        previous = id;
        const key = kind === "wal" ? walKey(id) : chunkKey(id);
        garbage.push({ key, size: usage.sizeOf(key) ?? 0, kind });
      }
    }
    return garbage;
  }

  /** Every object of `kind`, recorded as the bucket's usage of that kind. */
  private async list(kind: BucketKind): Promise<{ key: string; size: number }[]> {
    const { usage } = this.options;
    usage.startListing(kind);
    try {
      const objects = await listAll(this.options.store, bucketPrefixOf(kind));
      usage.finishListing(kind, objects);
      return objects;
    } catch (error) {
      usage.abandonListing(kind);
      throw error;
    }
  }

  /** The newest committed checkpoint at least `graceMs` old. */
  private target(): CommittedCheckpoint | undefined {
    const horizonMs = this.options.clock.monotonicMs() - this.options.graceMs;
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

/**
 * Whether a `wal/` or `chunks/` object is garbage relative to `target`: within its marks, not
 * referenced by its index, not a fence (bottomless.md "Garbage collection").
 */
function isGarbageOf(target: CommittedCheckpoint, kind: "wal" | "chunks", id: number): boolean {
  const { references } = target;
  return kind === "wal"
    ? id <= target.walId && !references.walIds.has(id) && !references.fenceWalIds.has(id)
    : id < target.chunkIdBound && !references.chunkIds.has(id);
}

/**
 * Whether a checkpoint part is garbage relative to `target` (bottomless.md "Incremental
 * checkpoints"): allocated before it and not one of its parts. Every checkpoint committed after
 * the target descends from it in this process, so names only its parts and newer ones. Against
 * a target without parts (written before parts existed) no part is garbage.
 */
function isPartGarbageOf(target: CommittedCheckpoint, key: string): boolean {
  const id = parseObjectId(checkpointPartPrefix, key);
  const { partIdBound, partKeys } = target;
  if (id === undefined || partIdBound === undefined || partKeys === undefined) return false;
  return id < partIdBound && !partKeys.has(key);
}

/**
 * Whether a difference pass from `base` to `target` stays within `gcIdRangeMax` ids past the
 * marks (both from this writer's epoch, so chunk ids between them are one counter's range).
 */
function isDifferenceBounded(base: CollectedBase, target: CommittedCheckpoint): boolean {
  return (
    target.walId >= base.walId &&
    target.chunkIdBound >= base.chunkIdBound &&
    target.walId - base.walId <= gcIdRangeMax &&
    target.chunkIdBound - base.chunkIdBound <= gcIdRangeMax
  );
}
