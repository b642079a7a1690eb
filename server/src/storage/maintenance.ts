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
 *   compaction switched rows), and only after its object is uploaded.
 * - An assertion failure in a job is rethrown from the timer (the process stops: corrupt state
 *   is not served); every other failure is counted and the next trigger starts over.
 *
 * Fault model: any step may fail (store errors, timeouts): the job is counted as failed and the
 * next trigger starts over; uploaded chunks and checkpoints of a failed job are garbage.
 */
import { assert } from "../core/assert.js";
import { failpoint } from "../core/failpoints.js";
import { readMarker } from "./cache/cache-marker.js";
import { encodeCheckpoint, referencesOf, snapshotRows } from "./checkpoint.js";
import { Slicer } from "../core/slices.js";
import type { BucketUsage } from "./bucket-usage.js";
import { type CompactionHost, Compactor, compactionLagMaxMs } from "./compaction.js";
import { GarbageCollector, gcListingIntervalMs } from "./gc.js";
import { commitCheckpointManifest, type Manifest, readNewerWriter } from "./manifest/manifest.js";
import { checkpointKey } from "./object-keys.js";

/** Defaults of the job's triggers (ours: bounds recovery's WAL replay to a few seconds). */
export const checkpointWalBytesDefault = 64 << 20;
export const checkpointIntervalMsDefault = 60_000;
/** How often the triggers are checked. */
const maintenanceTickMs = 1_000;

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
}

export interface MaintenanceStats {
  jobs: number;
  jobErrors: number;
  checkpointsCommitted: number;
  lastCheckpointAtMs: number | undefined;
  lastCheckpointBytes: number;
  lastJobError: string | undefined;
}

export class Maintenance {
  readonly stats: MaintenanceStats = {
    jobs: 0,
    jobErrors: 0,
    checkpointsCommitted: 0,
    lastCheckpointAtMs: undefined,
    lastCheckpointBytes: 0,
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
    // iterating every row there would hold back every acknowledgement meanwhile.
    const taken = await host.onCommitChain(async () => {
      const marker = await readMarker(host.kv);
      assert(marker !== undefined, "a running storage has a cache marker");
      return {
        marker,
        view: host.kv.snapshot(),
        walBytes: host.walBytesCommitted(),
        chunkIdBound: this.compactor.chunkIdBound,
      };
    });
    // The dump, encoding and reference scan cover a row per index entry: in slices (`Slicer`).
    const slicer = new Slicer();
    let rows: [Uint8Array, Uint8Array][];
    try {
      rows = await snapshotRows(taken.view, slicer);
    } finally {
      await taken.view.close();
    }
    const snapshot = { ...taken, rows };
    const { marker } = snapshot;
    // Nothing new to record: no WAL since the last checkpoint and no index change.
    if (
      this.lastCheckpointWalId !== undefined &&
      marker.walId <= this.lastCheckpointWalId &&
      compactedBytes === 0
    ) {
      return;
    }
    const nowMs = host.clock.nowMs();
    const bytes = await encodeCheckpoint(
      {
        header: {
          walId: marker.walId,
          writeId: marker.writeId,
          writerEpoch: host.writerEpoch,
          nextStreamId: marker.nextStreamId,
          chunkIdBound: snapshot.chunkIdBound,
          createdAtMs: nowMs,
        },
        rows: snapshot.rows,
      },
      slicer,
    );
    const key = checkpointKey(marker.walId, Buffer.from(host.random.bytes(8)).toString("hex"));
    // A writer that a newer one has fenced must not even upload a checkpoint: look first.
    const newer = await readNewerWriter(host.store, host.manifest());
    if (newer !== undefined) {
      host.onFencedByManifest(`a newer writer started. epoch=\`${newer.writerEpoch}\``);
      return;
    }
    failpoint("checkpoint.before-upload");
    if ((await host.store.putIfAbsent(key, bytes)) === "exists") {
      throw new Error(`checkpoint key taken. key=\`${key}\``);
    }
    failpoint("checkpoint.after-upload");
    if (!host.isReady()) return;
    const committed = await commitCheckpointManifest(
      host.store,
      host.manifest(),
      { key, walId: marker.walId, writeId: marker.writeId },
      nowMs,
    );
    if (committed === "fenced") {
      host.onFencedByManifest("a newer writer committed a manifest");
      return;
    }
    failpoint("checkpoint.after-commit");
    host.onCommitted(committed);
    this.walBytesAtCheckpoint = snapshot.walBytes;
    this.lastCheckpointWalId = marker.walId;
    this.stats.checkpointsCommitted += 1;
    this.stats.lastCheckpointAtMs = nowMs;
    this.lastCheckpointAtMonotonicMs = host.clock.monotonicMs();
    this.stats.lastCheckpointBytes = bytes.length;
    this.gc.addCommitted({
      key,
      manifestVersion: committed.version,
      walId: marker.walId,
      chunkIdBound: snapshot.chunkIdBound,
      committedAtMs: host.clock.monotonicMs(),
      references: await referencesOf(snapshot.rows, slicer),
    });
    await this.collect();
  }
}
