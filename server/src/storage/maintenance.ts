/**
 * The background job (docs/design/bottomless.md "The background job"): compact, snapshot a
 * checkpoint, commit it with a manifest, collect garbage. One job at a time, triggered by WAL
 * bytes since the last checkpoint or by time; GC passes also run on their own once a committed
 * checkpoint passes the grace period.
 *
 * Invariants:
 * - Only a `ready` writer runs a job; a commit that finds a newer epoch stops everything (the
 *   storage is told it is fenced) and nothing is deleted.
 * - The snapshot's view of the cache is taken on the commit chain, so the rows it dumps (read
 *   after the chain moves on) are exactly the cache after the commit of the marker's segment `m`;
 *   the checkpoint's `walId` is `m`.
 * - A checkpoint is committed only if something changed since the previous one (`m` moved, or
 *   compaction switched rows), and only after its part and then its object are uploaded.
 * - A checkpoint's new part is a delta of the keys changed since its parent (the last one this
 *   process committed), taken with the snapshot; a process's first checkpoint, and one whose
 *   deltas would pass half the base or `checkpointPartsMax` parts, writes a base instead. Keys
 *   taken for a checkpoint that is not committed go back into the record.
 * - An assertion failure in a job is rethrown from the timer (the process stops: corrupt state
 *   is not served); every other failure is counted and the next trigger starts over.
 *
 * Fault model: any step may fail (store errors, timeouts): the job is counted as failed and the
 * next trigger starts over; uploaded chunks and checkpoints of a failed job are garbage.
 */
import { assert } from "../core/assert.js";
import { failpoint } from "../core/failpoints.js";
import { type CacheMarker, readMarker } from "./cache/cache-marker.js";
import {
  type CheckpointPartRef,
  type CheckpointPartRow,
  encodeCheckpoint,
  encodeCheckpointPart,
  referencesOf,
  rowsEncodedBytes,
  snapshotRows,
} from "./checkpoint.js";
import type { KvSnapshot } from "./kv/kv-store.js";
import { type ChangedKeys, keyString, type TakenChanges } from "./kv/switchable.js";
import { Slicer } from "../core/slices.js";
import type { BucketUsage } from "./bucket-usage.js";
import { type CompactionHost, Compactor, compactionLagMaxMs } from "./compaction.js";
import { GarbageCollector, gcListingIntervalMs } from "./gc.js";
import { commitCheckpointManifest, type Manifest, readNewerWriter } from "./manifest/manifest.js";
import { checkpointKey, checkpointPartKey, chunkIdOf } from "./object-keys.js";

/** Defaults of the job's triggers (ours: bounds recovery's WAL replay to a few seconds). */
export const checkpointWalBytesDefault = 64 << 20;
export const checkpointIntervalMsDefault = 60_000;
/** How often the triggers are checked. */
const maintenanceTickMs = 1_000;

/**
 * A checkpoint's deltas may add up to this share of its base's bytes; past it the job writes a
 * fresh base (bottomless.md "Incremental checkpoints"): uploads stay within about three times
 * what changed, and recovery downloads at most 1.5 times the index.
 */
export const checkpointDeltaShareMax = 0.5;

/**
 * Parts a checkpoint names at most (a base and its deltas): recovery GETs each, so a quiet
 * server's small deltas still end in a rebase (one index per this many checkpoints).
 */
export const checkpointPartsMax = 64;

export interface MaintenanceOptions {
  readonly checkpointWalBytes?: number | undefined;
  readonly checkpointIntervalMs?: number | undefined;
  readonly gcGraceMs: number;
  readonly compactionLagMaxMs?: number | undefined;
  readonly gcListingIntervalMs?: number | undefined;
}

export interface MaintenanceHost extends CompactionHost {
  /** The manifest this writer holds now. */
  manifest(): Manifest;
  /** Called with the manifest that committed a checkpoint. */
  onCommitted(manifest: Manifest): void;
  /** WAL bytes applied as of the last cache commit (read on the commit chain). */
  walBytesCommitted(): number;
  /** A checkpoint commit found a newer writer. */
  onFencedByManifest(newerEpochHint: string): void;
  /** What the bucket holds; `store` is tracked by it. */
  readonly bucketUsage: BucketUsage;
  /** The checkpoint rows' keys written since the last take (recorded by the cache's store). */
  readonly changes: ChangedKeys;
}

export interface MaintenanceStats {
  jobs: number;
  jobErrors: number;
  checkpointsCommitted: number;
  lastCheckpointAtMs: number | undefined;
  /** Bytes the last committed checkpoint uploaded (its new part and itself). */
  lastCheckpointBytes: number;
  /** Committed checkpoints that wrote a base part (the rest wrote a delta). */
  checkpointRebases: number;
  /** Bytes of parts and checkpoints uploaded for committed checkpoints. */
  checkpointBytesUploaded: number;
  lastJobError: string | undefined;
}

export class Maintenance {
  readonly stats: MaintenanceStats = {
    jobs: 0,
    jobErrors: 0,
    checkpointsCommitted: 0,
    lastCheckpointAtMs: undefined,
    lastCheckpointBytes: 0,
    checkpointRebases: 0,
    checkpointBytesUploaded: 0,
    lastJobError: undefined,
  };
  readonly compactor: Compactor;
  readonly gc: GarbageCollector;
  private running: Promise<void> | undefined;
  private cancelTick: (() => void) | undefined;
  private stopped = false;
  /** WAL bytes applied when the last checkpoint's snapshot was taken. */
  private walBytesAtCheckpoint = 0;
  private lastCheckpointWalId: number | undefined;
  /**
   * The parts of the last checkpoint this process committed (a new delta's parent); none before
   * the first, which is always a base: the changed keys cover this process's writes only.
   */
  private parentParts:
    | {
        readonly refs: readonly CheckpointPartRef[];
        readonly baseBytes: number;
        readonly deltaBytes: number;
      }
    | undefined;
  /** The counter of this writer's part ids (`chunkIdOf(writerEpoch, n)`'s rule). */
  private nextPartCounter = 0;
  /** When the last checkpoint was committed (monotonic ms; the start of this writer before any). */
  private lastCheckpointAtMonotonicMs: number;
  /** When the last job started (monotonic ms; the start of this writer before any). */
  private lastJobAtMs: number;
  /**
   * Whether the last job left streams waiting for a later one (before any job: unknown, so yes).
   * Such streams need a job once their rows pass the lag, appends or not.
   */
  private mayHaveWaiting = true;
  private readonly lagMaxMs: number;

  constructor(
    private readonly host: MaintenanceHost,
    private readonly options: MaintenanceOptions,
  ) {
    this.compactor = new Compactor(host, options.compactionLagMaxMs ?? compactionLagMaxMs);
    this.gc = new GarbageCollector({
      store: host.store,
      clock: host.clock,
      graceMs: options.gcGraceMs,
      manifest: () => host.manifest(),
      isReady: () => host.isReady() && !this.stopped,
      usage: host.bucketUsage,
      listingIntervalMs: options.gcListingIntervalMs ?? gcListingIntervalMs,
    });
    this.lastCheckpointAtMonotonicMs = host.clock.monotonicMs();
    this.lastJobAtMs = host.clock.monotonicMs();
    this.lagMaxMs = options.compactionLagMaxMs ?? compactionLagMaxMs;
    this.lastCheckpointWalId = host.manifest().checkpoint?.walId;
  }

  /** WAL bytes written since the last checkpoint's snapshot. */
  get walBytesSinceCheckpoint(): number {
    return this.host.walBytesApplied() - this.walBytesAtCheckpoint;
  }

  start(): void {
    this.schedule();
  }

  /** Stops scheduling and waits for a job in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTick?.();
    await this.running;
  }

  /**
   * Runs one job now (tests, benches), or waits for the one running; rethrows its failure. It
   * compacts every stream with WAL rows, however few, unless `allStreams` is false (a timer's job
   * lets small ones wait).
   */
  async runNow(options: { readonly allStreams?: boolean } = {}): Promise<void> {
    while (this.running !== undefined) await this.running.catch(() => {});
    const job = this.job({ allStreams: options.allStreams ?? true });
    // Marked as running, so the timer never starts a second job beside it.
    this.running = job
      .then(
        () => {},
        () => {},
      )
      .finally(() => {
        this.running = undefined;
      });
    await job;
  }

  /** Runs one GC pass now if one is due (tests, benches). */
  collectNow(): Promise<boolean> {
    return this.gc.collect();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.cancelTick = this.host.clock.setTimer(maintenanceTickMs, () => {
      this.cancelTick = undefined;
      if (this.running === undefined && this.host.isReady() && !this.stopped) {
        const work = this.isJobDue() ? this.job() : this.gc.isDue ? this.collect() : undefined;
        if (work !== undefined) {
          this.running = work
            .catch((error: unknown) => this.recordError(error))
            .finally(() => {
              this.running = undefined;
            });
        }
      }
      this.schedule();
    });
  }

  private isJobDue(): boolean {
    // Streams left waiting are due once their rows pass the lag, even on a server gone quiet
    // (and rows from before this writer started, at the lag after its start).
    if (this.mayHaveWaiting && this.host.clock.monotonicMs() - this.lastJobAtMs >= this.lagMaxMs) {
      return true;
    }
    const walBytes = this.walBytesSinceCheckpoint;
    if (walBytes <= 0) return false;
    if (walBytes >= (this.options.checkpointWalBytes ?? checkpointWalBytesDefault)) return true;
    const sinceMs = this.host.clock.monotonicMs() - this.lastCheckpointAtMonotonicMs;
    return sinceMs >= (this.options.checkpointIntervalMs ?? checkpointIntervalMsDefault);
  }

  private recordError(error: unknown): void {
    this.stats.jobErrors += 1;
    this.stats.lastJobError = error instanceof Error ? error.message : String(error);
    if (error instanceof Error && error.name === "AssertionError") throw error;
  }

  private async collect(): Promise<void> {
    try {
      await this.gc.collect();
    } catch (error) {
      this.gc.stats.errors += 1;
      throw error;
    }
  }

  /** Compact, snapshot, upload, commit, collect. */
  private async job(options: { readonly allStreams?: boolean } = {}): Promise<void> {
    if (!this.host.isReady()) return;
    this.stats.jobs += 1;
    this.lastJobAtMs = this.host.clock.monotonicMs();
    const compactedBytes = await this.compactor.compact(options);
    this.mayHaveWaiting = this.compactor.stats.streamsWaiting > 0;
    if (!this.host.isReady()) return;
    const { host } = this;
    // The view is taken on the commit chain (between two segment commits) and read after it:
    // iterating every row there would hold back every acknowledgement meanwhile. The keys
    // changed since the last checkpoint are taken in the same synchronous step as the view.
    const taken = await host.onCommitChain(async () => {
      const marker = await readMarker(host.kv);
      assert(marker !== undefined, "a running storage has a cache marker");
      return {
        marker,
        view: host.kv.snapshot(),
        changes: host.changes.take(),
        walBytes: host.walBytesCommitted(),
        chunkIdBound: this.compactor.chunkIdBound,
      };
    });
    let isCommitted = false;
    try {
      isCommitted = await this.checkpoint(taken, compactedBytes);
    } finally {
      // Not committed: the next checkpoint's parent is this one's, so its delta needs these too.
      if (!isCommitted) host.changes.restore(taken.changes);
    }
    if (isCommitted) await this.collect();
  }

  /**
   * Dumps the snapshot, uploads its rows as a base or a delta part (bottomless.md "Incremental
   * checkpoints"), then the checkpoint naming its parts, and commits it with a manifest. Returns
   * whether it committed one (not when nothing changed, or the writer is fenced or not ready).
   */
  private async checkpoint(
    taken: {
      readonly marker: CacheMarker;
      readonly view: KvSnapshot;
      readonly changes: TakenChanges;
      readonly walBytes: number;
      readonly chunkIdBound: number;
    },
    compactedBytes: number,
  ): Promise<boolean> {
    const { host } = this;
    // The dump, encoding and reference scan cover a row per index entry: in slices (`Slicer`).
    const slicer = new Slicer();
    let rows: [Uint8Array, Uint8Array][];
    try {
      rows = await snapshotRows(taken.view, slicer);
    } finally {
      await taken.view.close();
    }
    const { marker } = taken;
    // Nothing new to record: no WAL since the last checkpoint and no index change.
    if (
      this.lastCheckpointWalId !== undefined &&
      marker.walId <= this.lastCheckpointWalId &&
      compactedBytes === 0
    ) {
      return false;
    }
    // A delta on the parent's parts, or (undefined) a base.
    const parent = this.parentParts;
    const delta =
      parent === undefined || !taken.changes.isComplete
        ? undefined
        : { parent, rows: await deltaRows(rows, taken.changes.keys, slicer) };
    const onParent =
      delta !== undefined &&
      delta.parent.refs.length < checkpointPartsMax &&
      delta.parent.deltaBytes + rowsEncodedBytes(delta.rows) <=
        delta.parent.baseBytes * checkpointDeltaShareMax
        ? delta
        : undefined;
    const partId = chunkIdOf(host.writerEpoch, this.nextPartCounter);
    this.nextPartCounter += 1;
    const partBytes = await encodeCheckpointPart(
      onParent === undefined
        ? { partId, kind: "base", rows }
        : { partId, kind: "delta", rows: onParent.rows },
      slicer,
    );
    const partRef = { key: checkpointPartKey(partId), bytes: partBytes.length };
    const refs = onParent === undefined ? [partRef] : [...onParent.parent.refs, partRef];
    const nowMs = host.clock.nowMs();
    const partIdBound = chunkIdOf(host.writerEpoch, this.nextPartCounter);
    const bytes = await encodeCheckpoint(
      {
        header: {
          walId: marker.walId,
          writeId: marker.writeId,
          writerEpoch: host.writerEpoch,
          nextStreamId: marker.nextStreamId,
          chunkIdBound: taken.chunkIdBound,
          createdAtMs: nowMs,
          parts: refs,
          partIdBound,
        },
        rows: [],
      },
      slicer,
    );
    const key = checkpointKey(marker.walId, Buffer.from(host.random.bytes(8)).toString("hex"));
    // A writer that a newer one has fenced must not even upload a checkpoint: look first.
    const newer = await readNewerWriter(host.store, host.manifest());
    if (newer !== undefined) {
      host.onFencedByManifest(`a newer writer started. epoch=\`${newer.writerEpoch}\``);
      return false;
    }
    failpoint("checkpoint.before-upload");
    // The part before the checkpoint that names it, as chunks before the rows that point at them.
    if ((await host.store.putIfAbsent(partRef.key, partBytes)) === "exists") {
      // Only a lost answer of ours can hold this id (as for chunks): it must be these bytes.
      const stored = await host.store.get(partRef.key);
      assert(
        stored !== undefined && Buffer.compare(stored, partBytes) === 0,
        `checkpoint part id taken by other bytes: ${partRef.key}`,
      );
    }
    failpoint("checkpoint.after-part-upload");
    if ((await host.store.putIfAbsent(key, bytes)) === "exists") {
      throw new Error(`checkpoint key taken. key=\`${key}\``);
    }
    failpoint("checkpoint.after-upload");
    if (!host.isReady()) return false;
    const committed = await commitCheckpointManifest(
      host.store,
      host.manifest(),
      { key, walId: marker.walId, writeId: marker.writeId },
      nowMs,
    );
    if (committed === "fenced") {
      host.onFencedByManifest("a newer writer committed a manifest");
      return false;
    }
    failpoint("checkpoint.after-commit");
    host.onCommitted(committed);
    this.parentParts = {
      refs,
      baseBytes: refs[0]!.bytes,
      deltaBytes: refs.slice(1).reduce((sum, ref) => sum + ref.bytes, 0),
    };
    this.walBytesAtCheckpoint = taken.walBytes;
    this.lastCheckpointWalId = marker.walId;
    this.stats.checkpointsCommitted += 1;
    if (onParent === undefined) this.stats.checkpointRebases += 1;
    this.stats.lastCheckpointAtMs = nowMs;
    this.lastCheckpointAtMonotonicMs = host.clock.monotonicMs();
    this.stats.lastCheckpointBytes = partBytes.length + bytes.length;
    this.stats.checkpointBytesUploaded += partBytes.length + bytes.length;
    this.gc.addCommitted({
      key,
      manifestVersion: committed.version,
      walId: marker.walId,
      chunkIdBound: taken.chunkIdBound,
      partIdBound,
      partKeys: new Set(refs.map((ref) => ref.key)),
      committedAtMs: host.clock.monotonicMs(),
      references: await referencesOf(rows, slicer),
    });
    return true;
  }
}

/**
 * The delta between the parent's snapshot and this one: each changed key's row in `rows` (the
 * snapshot's dump), or a tombstone where the snapshot has none. One pass over the dump.
 */
async function deltaRows(
  rows: readonly [Uint8Array, Uint8Array][],
  changed: ReadonlyMap<string, Uint8Array>,
  slicer: Slicer,
): Promise<CheckpointPartRow[]> {
  const delta: CheckpointPartRow[] = [];
  const found = new Set<string>();
  for (const [key, value] of rows) {
    if (slicer.isDue()) await slicer.pause();
    const name = keyString(key);
    if (!changed.has(name)) continue;
    delta.push([key, value]);
    found.add(name);
  }
  for (const [name, key] of changed) if (!found.has(name)) delta.push([key, null]);
  return delta;
}
