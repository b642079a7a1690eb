/**
 * The storage engine: object store (truth) + local cache (LevelDB metadata and index, segment
 * files) + flusher, opened through recovery. Upper layers submit records and control operations
 * and are answered when they are durable; they read durable metadata and tails from `state` and
 * records through `readRecords` (docs/design/storage.md "The write path", "The local cache").
 *
 * Invariants:
 * - `state` only ever reflects segments that are in object storage.
 * - Nothing reaches local disk before its segment is durable: submitted records are held in
 *   memory only. A durable segment's records entries stay readable from memory (`uncommitted`)
 *   from the moment it is applied until its cache commit is written, so a reader finds every
 *   record below a durable tail, in memory or in the cache.
 * - Cache commits run one at a time, in WAL order (`commitChain`).
 * - Admission bytes are returned only after the segment's cache commit, so memory held for
 *   accepted-but-uncommitted appends (records and encoded segments) is bounded by
 *   `appendInflightBytesMax` (twice over: records and segment bytes).
 * - Every user of the cache index holds `kv`, a switch: the cache guard moves it between LevelDB
 *   and memory on the commit chain only (docs/design/degraded-cache.md).
 *
 * Fault model: object-store faults are absorbed by the flusher's retries; being fenced fails
 * everything pending with `FencedError`. A disk fault in the cache (ENOSPC, EDQUOT, EIO, EROFS
 * on a LevelDB write or a file write or unlink, or at the LevelDB open or during recovery at
 * start) degrades the cache (`cache/cache-guard.ts`): the index moves to memory, the failed
 * commit runs again there, reads come from the bucket, acks go on, and a probe brings the disk
 * back. Any other cache failure is fatal (`onFatal`), since the restart path rebuilds the cache
 * from object storage. Cache reads are CRC-checked and fall back to the bucket
 * (`cache/segment-cache.ts`).
 */
import { assert } from "../core/assert.js";
import type { Clock } from "../core/clock.js";
import {
  appendInflightBytesMax,
  flushIntervalMsDefault,
  manifestPollIntervalMs,
  segmentBytesTarget,
  segmentPutTimeoutMs,
} from "../core/limits.js";
import type { Random } from "../core/random.js";
import { meteredBytes, type SeqNum, type SequencedRecord } from "../core/records.js";
import {
  type CacheDisk,
  CacheGuard,
  type CacheGuardStats,
  type OpenedCache,
} from "./cache/cache-guard.js";
import { diskFaultOf } from "./cache/disk-fault.js";
import type { RowsAhead, SegmentCache, SegmentCacheStats } from "./cache/segment-cache.js";
import { createMemorySegmentFiles, type SegmentFiles } from "./cache/segment-files.js";
import { createMemoryKvStore } from "./kv/memory.js";
import { SwitchableKvStore } from "./kv/switchable.js";
import type { DurableState } from "./durable-state.js";
import { type BucketKind, type BucketKindUsage, BucketUsage } from "./bucket-usage.js";
import type { KvStore } from "./kv/kv-store.js";
import { type Manifest, readNewerWriter } from "./manifest/manifest.js";
import { gcGraceMsDefault } from "./gc.js";
import type { ObjectStore } from "./object-store/object-store.js";
import { applyDurableSegment } from "./apply.js";
import { isCheckpointRowKey } from "./checkpoint.js";
import { Maintenance } from "./maintenance.js";
import { recover } from "./recovery.js";
import type { SegmentEntry } from "./segment/format.js";
import type { DecodedRecord } from "./segment/record-codec.js";
import { Admission } from "./wal/admission.js";
import { type ControlOp, encodeControlOp } from "./wal/entries.js";
import {
  type DurableSegment,
  type FencedError,
  Flusher,
  FlusherClosedError,
  type FlusherStats,
} from "./wal/flusher.js";

/** What `Storage.readRecords` takes. */
export interface ReadRecordsOptions {
  readonly streamId: number;
  readonly startSeqNum: SeqNum;
  readonly endSeqNum: SeqNum;
  readonly countMax: number;
  readonly bytesMax: number;
  /** How a stored record is metered against `bytesMax`; `meteredBytes` by default. */
  readonly meteredBytesOf?: ((record: DecodedRecord) => number) | undefined;
}

/**
 * What a reader keeps between two reads of one stream (`Storage.readRecordsAhead`): the rest of
 * the entry the last read ended in, durable records already read and checked (`records[i]` is seq
 * num `firstSeqNum + i`; records are immutable once durable, so the next read may serve them, from
 * its start raised to the trim point and below its end, instead of reading their entry again), and
 * the index rows listed past it (`RowsAhead`, a hint the cache checks before use).
 */
export interface ReadAhead {
  readonly firstSeqNum: SeqNum;
  readonly records: readonly DecodedRecord[];
  readonly rows: RowsAhead | undefined;
}

/** Compaction, checkpoints, GC and the cache bound (docs/design/bottomless.md). */
export interface BottomlessOptions {
  /** Where chunks are cached as files (`<cache-dir>/chunks`); memory by default. */
  readonly chunkFiles?: SegmentFiles | undefined;
  /** The bound on the cache's files (`--cache-size`); `cacheBytesMaxDefault` by default. */
  readonly cacheBytesMax?: number | undefined;
  /**
   * Compaction, checkpoints and GC; on by default. Off, the WAL and the cache grow with history
   * (benches compare the two).
   */
  readonly maintenance?: boolean | undefined;
  readonly checkpointWalBytes?: number | undefined;
  readonly checkpointIntervalMs?: number | undefined;
  /** How long garbage outlives the checkpoint that made it so (`--gc-grace-ms`). */
  readonly gcGraceMs?: number | undefined;
  /** How long a stream's small WAL backlog may wait for compaction; `compactionLagMaxMs` by default. */
  readonly compactionLagMaxMs?: number | undefined;
  /** How often a GC pass lists the WAL and chunks anyway; `gcListingIntervalMs` by default. */
  readonly gcListingIntervalMs?: number | undefined;
  /** How often a degraded cache probes its disk (`cacheDiskProbeIntervalMs` by default). */
  readonly cacheDiskProbeIntervalMs?: number | undefined;
}

export interface StorageOptions extends BottomlessOptions {
  readonly store: ObjectStore;
  /**
   * The cache index, opened by the caller (who closes it); or give `cacheDisk` instead. A disk
   * fault degrades the cache either way; only a `cacheDisk` can be probed and rejoined.
   */
  readonly kv?: KvStore | undefined;
  /**
   * Where durable segments are cached as files (`<cache-dir>/segments`); memory by default. Pair
   * it with `kv`: a cache index whose files are elsewhere is served from the bucket (misses).
   */
  readonly segmentFiles?: SegmentFiles | undefined;
  /**
   * The cache directory, opened (and closed) by the storage: LevelDB and both file directories.
   * A disk fault at open or during recovery starts the cache degraded; a degraded cache probes it
   * every `cacheDiskProbeIntervalMs` and rejoins it (docs/design/degraded-cache.md).
   */
  readonly cacheDisk?: CacheDisk | undefined;
  /** One line per cache mode change (degraded, rejoined), for the operator's log. */
  readonly log?: ((line: string) => void) | undefined;
  readonly clock: Clock;
  readonly random: Random;
  readonly flushIntervalMs?: number;
  readonly segmentBytesTarget?: number;
  readonly appendInflightBytesMax?: number;
  readonly putTimeoutMs?: number;
  readonly manifestPollIntervalMs?: number;
  /** Called once if a newer writer fences this one. */
  readonly onFenced?: (error: FencedError) => void;
  /** Called on an unrecoverable local failure (the cache); the default rethrows asynchronously. */
  readonly onFatal?: (error: unknown) => void;
}

export type StorageHealth = "ready" | "fenced" | "closed";

/** Durable records of one stream delivered to listeners when their segment is durable. */
export interface DurableRecords {
  readonly streamId: number;
  readonly firstSeqNum: SeqNum;
  readonly records: readonly DecodedRecord[];
}

export interface StorageStats extends FlusherStats, SegmentCacheStats {
  /** The cache's mode (`disk` or `degraded`) and its transitions. */
  readonly cacheGuard: CacheGuardStats;
  readonly inflightBytes: number;
  readonly admissionWaiting: number;
  readonly replayedSegments: number;
  /** Segments recovery skipped as dead (docs/design/storage.md "The PUT window"). */
  readonly deadSegments: number;
  readonly cacheResetReason: string | undefined;
  readonly loadedCheckpoint: boolean;
  /** Background job, compaction and GC counters (absent with maintenance off). */
  readonly maintenance: MaintenanceStatsView | undefined;
}

/** What `/metrics` shows of the background job. */
export interface MaintenanceStatsView {
  readonly jobs: number;
  readonly jobErrors: number;
  readonly checkpointsCommitted: number;
  readonly checkpointAgeMs: number | undefined;
  readonly lastCheckpointBytes: number;
  /** Committed checkpoints that wrote a base part; the others wrote a delta. */
  readonly checkpointRebases: number;
  readonly checkpointBytesUploaded: number;
  readonly walBytesSinceCheckpoint: number;
  readonly chunksWritten: number;
  readonly chunkBytesWritten: number;
  readonly bytesCompacted: number;
  readonly compactionWalBacklogBytes: number;
  readonly compactionStreamsWaiting: number;
  readonly compactionStreamErrors: number;
  readonly compactionWindowFileReads: number;
  readonly compactionWindowGets: number;
  readonly gcPasses: number;
  /** GC passes that listed `wal/` and `chunks/` (the others took a checkpoint difference). */
  readonly gcListingPasses: number;
  readonly gcObjectsDeleted: number;
  readonly gcBytesDeleted: number;
  readonly gcErrors: number;
  readonly bucket: Record<BucketKind, BucketKindUsage>;
}

/** A records entry of a durable segment whose cache commit is not written yet. */
interface UncommittedEntry {
  readonly firstSeqNum: SeqNum;
  readonly records: readonly DecodedRecord[];
}

function defaultOnFatal(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

export class Storage {
  private healthState: StorageHealth = "ready";
  private readonly admittedBytesByEntry = new WeakMap<SegmentEntry, number>();
  private readonly durableListeners = new Set<(segment: DurableSegment) => void>();
  private commitChain: Promise<void> = Promise.resolve();
  /** Per stream, in seq-num order: records entries applied but not yet committed to the cache. */
  private readonly uncommitted = new Map<number, UncommittedEntry[]>();
  private cancelManifestPoll: (() => void) | undefined;
  private maintenance: Maintenance | undefined;
  /** WAL bytes applied, and as of the last cache commit (the checkpoint trigger counts these). */
  private walBytesApplied = 0;
  private walBytesCommitted = 0;
  private readonly cacheGuard: CacheGuard;

  private constructor(
    private readonly options: StorageOptions,
    readonly state: DurableState,
    private currentManifest: Manifest,
    private readonly admission: Admission,
    private readonly flusher: Flusher,
    private readonly segmentCache: SegmentCache,
    private readonly recovery: {
      replayedSegments: number;
      deadSegments: number;
      cacheResetReason: string | undefined;
      loadedCheckpoint: boolean;
    },
    private readonly kv: SwitchableKvStore,
    /** What the bucket holds (maintenance on: every create and delete goes through it). */
    private readonly bucketUsage: BucketUsage | undefined,
    cache: {
      readonly owned: OpenedCache | undefined;
      readonly degradedAtStart: string | undefined;
    },
  ) {
    this.cacheGuard = new CacheGuard({
      kv,
      cache: segmentCache,
      disk: options.cacheDisk,
      ownedKv: cache.owned?.kv,
      clock: options.clock,
      onChain: (task) => this.onChainOrFatal(task),
      log: options.log ?? (() => {}),
      degradedAtStart: cache.degradedAtStart,
      probeIntervalMs: options.cacheDiskProbeIntervalMs,
    });
  }

  /** The manifest this writer holds: its claim, or its last checkpoint commit. */
  get manifest(): Manifest {
    return this.currentManifest;
  }

  /** Recovers from object storage and the cache, fences older writers, and starts flushing. */
  static async open(openOptions: StorageOptions): Promise<Storage> {
    assert(
      (openOptions.kv === undefined) !== (openOptions.cacheDisk === undefined),
      "the cache is either opened by the caller (kv) or by the storage (cacheDisk)",
    );
    // With maintenance on, every object the storage creates or deletes is recorded, so that the
    // bucket gauges stay exact between GC listings (bucket-usage.ts). Off, nothing is deleted and
    // the record would only grow.
    const bucketUsage =
      (openOptions.maintenance ?? true) ? new BucketUsage(openOptions.clock) : undefined;
    const options: StorageOptions =
      bucketUsage === undefined
        ? openOptions
        : { ...openOptions, store: bucketUsage.track(openOptions.store) };
    // A disk that fails at open or during recovery (which writes the cache) starts the cache
    // degraded: recovery runs again on a memory index, with no files (degraded-cache.md).
    let owned: OpenedCache | undefined;
    let degradedAtStart: string | undefined;
    if (options.cacheDisk !== undefined) {
      try {
        owned = await options.cacheDisk.open();
      } catch (error) {
        degradedAtStart = diskFaultOf(error);
        if (degradedAtStart === undefined) throw error;
      }
    }
    const kv = new SwitchableKvStore(options.kv ?? owned?.kv ?? createMemoryKvStore());
    const filesOf = (files: SegmentFiles | undefined): SegmentFiles =>
      degradedAtStart === undefined && files !== undefined ? files : createMemorySegmentFiles();
    const recoverOn = () =>
      recover({
        ...options,
        kv,
        segmentFiles: filesOf(owned?.segmentFiles ?? options.segmentFiles),
        chunkFiles:
          degradedAtStart === undefined ? (owned?.chunkFiles ?? options.chunkFiles) : undefined,
      });
    let recovered: Awaited<ReturnType<typeof recover>>;
    try {
      recovered = await recoverOn();
    } catch (error) {
      const fault = diskFaultOf(error);
      if (fault === undefined || degradedAtStart !== undefined) {
        await owned?.kv.close().catch(() => {}); // its lock, for whoever opens the path next
        throw error;
      }
      degradedAtStart = fault;
      if (owned !== undefined) {
        await owned.kv.close().catch(() => {});
        await options.cacheDisk?.wipe().catch(() => {});
        owned = undefined;
      }
      kv.switchTo(createMemoryKvStore());
      // A second claim and fence, as a restart would make: the first attempt's are harmless.
      recovered = await recoverOn();
    }
    // Nothing was cached yet: the bound stays as configured.
    if (degradedAtStart !== undefined) {
      recovered.segmentCache.detachFiles(() => Number.MAX_SAFE_INTEGER);
    }
    const admission = new Admission(options.appendInflightBytesMax ?? appendInflightBytesMax);
    let storage: Storage | undefined;
    const flusher = new Flusher({
      store: options.store,
      clock: options.clock,
      random: options.random,
      writerEpoch: recovered.manifest.writerEpoch,
      firstWalId: recovered.firstWalId,
      flushIntervalMs: options.flushIntervalMs ?? flushIntervalMsDefault,
      segmentBytesTarget: options.segmentBytesTarget ?? segmentBytesTarget,
      putTimeoutMs: options.putTimeoutMs ?? segmentPutTimeoutMs,
      onSegmentDurable: (segment) => storage!.onSegmentDurable(segment),
      onFenced: (error) => storage!.onFenced(error),
    });
    storage = new Storage(
      options,
      recovered.state,
      recovered.manifest,
      admission,
      flusher,
      recovered.segmentCache,
      {
        ...recovered,
        cacheResetReason:
          recovered.cacheResetReason ??
          (owned?.wiped === true ? "LevelDB was corrupt, wiped at open" : undefined),
      },
      kv,
      bucketUsage,
      { owned, degradedAtStart },
    );
    storage.pollManifest();
    if (options.maintenance ?? true) storage.startMaintenance();
    return storage;
  }

  private startMaintenance(): void {
    this.maintenance = new Maintenance(
      {
        store: this.options.store,
        kv: this.kv,
        cache: this.segmentCache,
        state: this.state,
        clock: this.options.clock,
        random: this.options.random,
        writerEpoch: this.writerEpoch,
        onCommitChain: (task) => this.onCommitChain(task),
        manifest: () => this.currentManifest,
        onCommitted: (manifest) => {
          this.currentManifest = manifest;
        },
        walBytesApplied: () => this.walBytesApplied,
        walBytesCommitted: () => this.walBytesCommitted,
        nextWalId: () => this.flusher.nextSegmentId,
        isReady: () => this.healthState === "ready",
        onFencedByManifest: (why) => this.flusher.fence(why),
        bucketUsage: this.bucketUsage!,
        changes: this.kv.recordChanges(isCheckpointRowKey),
      },
      {
        checkpointWalBytes: this.options.checkpointWalBytes,
        checkpointIntervalMs: this.options.checkpointIntervalMs,
        gcGraceMs: this.options.gcGraceMs ?? gcGraceMsDefault,
        compactionLagMaxMs: this.options.compactionLagMaxMs,
        gcListingIntervalMs: this.options.gcListingIntervalMs,
      },
    );
    this.maintenance.start();
  }

  /**
   * Runs one compaction + checkpoint + GC job over everything durable so far (its cache commits
   * first), for tests and benches; rejects if it fails. Resolves at once when maintenance is off.
   * It compacts every stream unless `allStreams` is false: then it chooses as a timer's job does.
   */
  async runMaintenanceNow(options: { readonly allStreams?: boolean } = {}): Promise<void> {
    await this.commitChain;
    await this.maintenance?.runNow(options);
  }

  /** Runs one GC pass now if a checkpoint is past its grace period; true if it ran. */
  async collectGarbageNow(): Promise<boolean> {
    return (await this.maintenance?.collectNow()) ?? false;
  }

  /**
   * Runs `task` on the commit chain, between two segment commits. A disk fault degrades the cache
   * (the task still rejects: its caller counts it and tries again later); any other failure, or
   * a failed degrade, is fatal.
   */
  private onCommitChain<T>(task: () => Promise<T>): Promise<T> {
    const result = this.commitChain.then(task);
    this.commitChain = result.then(
      () => {},
      async (error: unknown) => {
        if (!(await this.cacheGuard.absorb(error))) this.fatal(error);
      },
    );
    this.commitChain = this.commitChain.catch((error: unknown) => this.fatal(error));
    return result;
  }

  /** Runs the cache guard's `task` on the commit chain; any failure is fatal. */
  private onChainOrFatal(task: () => Promise<void>): void {
    this.commitChain = this.commitChain.then(task).catch((error: unknown) => this.fatal(error));
  }

  /** Whether the cache is degraded, and why (the disk fault); undefined when it is on disk. */
  get cacheDegradedReason(): string | undefined {
    return this.cacheGuard.stats.degradedReason;
  }

  get health(): StorageHealth {
    return this.healthState;
  }

  get writerEpoch(): number {
    return this.manifest.writerEpoch;
  }

  get stats(): StorageStats {
    return {
      ...this.flusher.stats,
      ...this.segmentCache.stats,
      cacheGuard: this.cacheGuard.stats,
      inflightBytes: this.admission.inflight,
      admissionWaiting: this.admission.waiting,
      replayedSegments: this.recovery.replayedSegments,
      deadSegments: this.recovery.deadSegments,
      cacheResetReason: this.recovery.cacheResetReason,
      loadedCheckpoint: this.recovery.loadedCheckpoint,
      maintenance: this.maintenanceStats(),
    };
  }

  private maintenanceStats(): MaintenanceStatsView | undefined {
    const job = this.maintenance;
    if (job === undefined) return undefined;
    const { lastCheckpointAtMs } = job.stats;
    return {
      jobs: job.stats.jobs,
      jobErrors: job.stats.jobErrors,
      checkpointsCommitted: job.stats.checkpointsCommitted,
      checkpointAgeMs:
        lastCheckpointAtMs === undefined
          ? undefined
          : this.options.clock.nowMs() - lastCheckpointAtMs,
      lastCheckpointBytes: job.stats.lastCheckpointBytes,
      checkpointRebases: job.stats.checkpointRebases,
      checkpointBytesUploaded: job.stats.checkpointBytesUploaded,
      walBytesSinceCheckpoint: job.walBytesSinceCheckpoint,
      chunksWritten: job.compactor.stats.chunksWritten,
      chunkBytesWritten: job.compactor.stats.chunkBytesWritten,
      bytesCompacted: job.compactor.stats.bytesCompacted,
      compactionWalBacklogBytes: job.compactor.walBacklogBytes(),
      compactionStreamsWaiting: job.compactor.stats.streamsWaiting,
      compactionStreamErrors: job.compactor.stats.streamErrors,
      compactionWindowFileReads: job.compactor.stats.windowFileReads,
      compactionWindowGets: job.compactor.stats.windowGets,
      gcPasses: job.gc.stats.passes,
      gcObjectsDeleted: job.gc.stats.objectsDeleted,
      gcBytesDeleted: job.gc.stats.bytesDeleted,
      gcErrors: job.gc.stats.errors,
      gcListingPasses: job.gc.stats.listingPasses,
      bucket: job.gc.bucketUsage(),
    };
  }

  /** Waits until `bytes` more may be in flight (back-pressure). */
  admit(bytes: number): Promise<void> {
    return this.admission.acquire(bytes);
  }

  /** Returns admitted bytes of an append that was rejected before it was submitted. */
  releaseAdmission(bytes: number): void {
    this.admission.release(bytes);
  }

  /**
   * Submits one stream's sequenced records (held in memory only); resolves when durable.
   * `admittedBytes` (from `admit`) are released after the segment's cache commit.
   */
  submitRecords(options: {
    readonly streamId: number;
    readonly firstSeqNum: SeqNum;
    readonly records: readonly DecodedRecord[];
    readonly admittedBytes: number;
    /** The producer that sent the batch: a `producer.put` is sealed right after it. */
    readonly producer?:
      | {
          readonly producerId: string;
          readonly epoch: number;
          readonly seq: number;
          /** The server's wall time at sequencing. */
          readonly appendedAtMs: number;
        }
      | undefined;
  }): Promise<void> {
    const { streamId, firstSeqNum, records, producer } = options;
    const entry: SegmentEntry = { kind: "records", streamId, firstSeqNum, records };
    this.admittedBytesByEntry.set(entry, options.admittedBytes);
    if (producer === undefined) return this.flusher.submit(entry);
    const op: ControlOp = {
      op: "producer.put",
      streamId,
      ...producer,
      firstSeqNum,
      recordCount: records.length,
      firstTimestamp: records[0]!.timestamp,
      lastTimestamp: records.at(-1)!.timestamp,
    };
    return this.flusher.submitAll([entry, { kind: "control", payload: encodeControlOp(op) }]);
  }

  /** Submits a control-plane operation; resolves when durable (and applied to `state`). */
  submitControl(op: ControlOp): Promise<void> {
    return this.flusher.submit({ kind: "control", payload: encodeControlOp(op) });
  }

  /** Subscribes to durable segments (called synchronously, in WAL order, before acks). */
  onDurable(listener: (segment: DurableSegment) => void): () => void {
    this.durableListeners.add(listener);
    return () => this.durableListeners.delete(listener);
  }

  /**
   * The metered bytes of a stream's records below `seqNum` (its trim point), from the cache's
   * index, once every segment durable so far is committed to it (the entry covering `seqNum` may
   * have been acknowledged just now); undefined while it cannot say (every row dropped by a trim
   * to the tail, or rows written by an older version).
   */
  async meteredBytesBelow(streamId: number, seqNum: SeqNum): Promise<number | undefined> {
    await this.commitChain;
    return this.segmentCache.meteredBytesBelow(streamId, seqNum);
  }

  /**
   * Durable records of a stream from the cache, from `startSeqNum` (raised to the trim point)
   * below `endSeqNum`, at most `countMax` records and `bytesMax` metered bytes; a record is never
   * split, so a record larger than the remaining budget ends the read.
   */
  async readRecords(options: ReadRecordsOptions): Promise<SequencedRecord[]> {
    return (await this.readRecordsAhead(options)).records;
  }

  /**
   * `readRecords` for a reader that goes on where the read ends (a catch-up read session): the
   * read also returns the entry it stopped in (`ahead`, when records of it are left), and the next
   * read takes those records from `options.ahead` before it looks at the cache. Entries are read
   * and checked whole, and a batch rarely ends at an entry's end, so without this every entry
   * that a batch boundary cuts would be read, checked and decoded twice.
   */
  async readRecordsAhead(
    options: ReadRecordsOptions & {
      /** What the previous read returned as `ahead`; ignored unless it holds `startSeqNum`. */
      readonly ahead?: ReadAhead | undefined;
    },
  ): Promise<{ readonly records: SequencedRecord[]; readonly ahead: ReadAhead | undefined }> {
    const { streamId, countMax, bytesMax } = options;
    const meteredBytesOf = options.meteredBytesOf ?? meteredBytes;
    const tail = this.state.tailOf(streamId);
    const startSeqNum = Math.max(options.startSeqNum, tail.trimPoint);
    const endSeqNum = Math.min(options.endSeqNum, tail.nextSeqNum);
    const records: SequencedRecord[] = [];
    if (startSeqNum >= endSeqNum || countMax <= 0) return { records, ahead: undefined };
    let nextSeqNum = startSeqNum;
    let bytes = 0;
    let isFull = false;
    /** The last entry taken from, while records of it below `endSeqNum` are left. */
    let aheadEntry: { firstSeqNum: SeqNum; records: readonly DecodedRecord[] } | undefined;
    let rowsAhead: RowsAhead | undefined = options.ahead?.rows;
    /** Takes the records of an entry from `nextSeqNum` on; false once the read is complete. */
    const take = (firstSeqNum: SeqNum, entryRecords: readonly DecodedRecord[]): boolean => {
      assert(firstSeqNum <= nextSeqNum, "an entry is taken from a seq num it holds");
      for (let i = nextSeqNum - firstSeqNum; i < entryRecords.length; i++) {
        const seqNum = firstSeqNum + i;
        if (seqNum >= endSeqNum || records.length >= countMax) break;
        const decoded = entryRecords[i]!;
        const recordBytes = meteredBytesOf(decoded);
        if (bytes + recordBytes > bytesMax) {
          isFull = true;
          break;
        }
        bytes += recordBytes;
        records.push({
          seqNum,
          timestamp: decoded.timestamp,
          headers: decoded.headers,
          body: decoded.body,
        });
        nextSeqNum = seqNum + 1;
      }
      const entryEndSeqNum = Math.min(firstSeqNum + entryRecords.length, endSeqNum);
      aheadEntry = nextSeqNum < entryEndSeqNum ? { firstSeqNum, records: entryRecords } : undefined;
      return !isFull && nextSeqNum < endSeqNum && records.length < countMax;
    };
    const given = options.ahead;
    if (
      given !== undefined &&
      given.firstSeqNum <= nextSeqNum &&
      nextSeqNum < given.firstSeqNum + given.records.length
    ) {
      take(given.firstSeqNum, given.records);
    }
    let isRetried = false;
    while (!isFull && nextSeqNum < endSeqNum && records.length < countMax) {
      // Segments applied but not committed are newer than everything the cache index holds.
      const inMemory = this.uncommittedCovering(streamId, nextSeqNum);
      if (inMemory !== undefined) {
        take(inMemory.firstSeqNum, inMemory.records);
        continue;
      }
      const before = nextSeqNum;
      rowsAhead = await this.segmentCache.readEntries({
        streamId,
        startSeqNum: nextSeqNum,
        endSeqNum,
        rowsAhead,
        visit: (firstSeqNum, entryRecords) => {
          if (firstSeqNum > nextSeqNum) {
            // A gap: a trim that landed during this read dropped the rows below its trim point
            // (the first row left starts at or below it). Read on from the trim point.
            const { trimPoint } = this.state.tailOf(streamId);
            if (firstSeqNum > trimPoint) return false;
            nextSeqNum = Math.max(nextSeqNum, trimPoint);
          }
          return take(firstSeqNum, entryRecords);
        },
      });
      // Nothing found: trimmed or removed meanwhile, or the entry committed between the two looks
      // (then the next pass finds it in the index). Stop rather than spin if neither holds it.
      if (nextSeqNum === before && this.uncommittedCovering(streamId, nextSeqNum) === undefined) {
        // Once more: a compaction switch between the read's two index lookups can hide the rows
        // it wanted (they now live under other keys); a second look sees the switched index.
        if (isRetried) break;
        isRetried = true;
      }
    }
    const ahead =
      aheadEntry === undefined && rowsAhead === undefined
        ? undefined
        : {
            firstSeqNum: aheadEntry?.firstSeqNum ?? nextSeqNum,
            records: aheadEntry?.records ?? [],
            rows: rowsAhead,
          };
    return { records, ahead };
  }

  /** Resolves once every segment durable so far is committed to the cache (tests, diagnostics). */
  cacheCommitted(): Promise<void> {
    return this.commitChain;
  }

  /** Flushes everything submitted so far (tests and shutdown). */
  flushNow(): Promise<void> {
    return this.flusher.flushNow();
  }

  /** Flushes, waits for the cache commits, and stops. The stores are the caller's to close. */
  async close(): Promise<void> {
    if (this.healthState === "ready") this.healthState = "closed";
    this.cancelManifestPoll?.();
    await this.maintenance?.stop();
    await this.flusher.close();
    this.admission.close(new FlusherClosedError("storage closed"));
    await this.commitChain;
    await this.cacheGuard.close();
  }

  private onSegmentDurable(segment: DurableSegment): void {
    const commit = applyDurableSegment(this.segmentCache, this.state, {
      walId: segment.walId,
      writeId: segment.writeId,
      writerEpoch: segment.writerEpoch,
      entries: segment.entries,
      bytes: segment.encoded,
    });
    let admittedBytes = 0;
    this.walBytesApplied += segment.encoded.byteLength;
    const walBytesApplied = this.walBytesApplied;
    const held: { streamId: number; entry: UncommittedEntry }[] = [];
    for (const entry of segment.entries) {
      admittedBytes += this.admittedBytesByEntry.get(entry) ?? 0;
      if (entry.kind !== "records") continue;
      const uncommitted = { firstSeqNum: entry.firstSeqNum, records: entry.records };
      held.push({ streamId: entry.streamId, entry: uncommitted });
      const list = this.uncommitted.get(entry.streamId);
      if (list === undefined) this.uncommitted.set(entry.streamId, [uncommitted]);
      else list.push(uncommitted);
    }
    for (const listener of this.durableListeners) listener(segment);
    this.commitChain = this.commitChain
      .then(async () => {
        try {
          await commit();
        } catch (error) {
          // A disk fault: the cache is now in memory, where the same commit is written again
          // (every commit is idempotent: puts of absolute values, drops of what is there).
          if (!(await this.cacheGuard.absorb(error))) throw error;
          await commit();
        }
      })
      .catch((error: unknown) => this.fatal(error))
      .finally(() => {
        // Commits run in WAL order, so each stream's oldest uncommitted entries are this segment's.
        for (const { streamId, entry } of held) {
          const list = this.uncommitted.get(streamId);
          assert(list !== undefined && list[0] === entry, "cache commits run in WAL order");
          list.shift();
          if (list.length === 0) this.uncommitted.delete(streamId);
        }
        this.walBytesCommitted = walBytesApplied;
        this.admission.release(admittedBytes);
      });
  }

  /** The uncommitted records entry of a stream that holds `seqNum`, if any. */
  private uncommittedCovering(streamId: number, seqNum: SeqNum): UncommittedEntry | undefined {
    const list = this.uncommitted.get(streamId);
    if (list === undefined) return undefined;
    // Contiguous entries in seq-num order (a slow disk can queue many): binary search.
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const entry = list[mid]!;
      if (seqNum < entry.firstSeqNum) hi = mid - 1;
      else if (seqNum >= entry.firstSeqNum + entry.records.length) lo = mid + 1;
      else return entry;
    }
    return undefined;
  }

  private onFenced(error: FencedError): void {
    this.healthState = "fenced";
    this.cancelManifestPoll?.();
    this.admission.close(error);
    this.options.onFenced?.(error);
  }

  /** An idle writer learns of a newer one from the manifests (a busy one from its next PUT). */
  private pollManifest(): void {
    const intervalMs = this.options.manifestPollIntervalMs ?? manifestPollIntervalMs;
    const tick = (): void => {
      this.cancelManifestPoll = undefined;
      readNewerWriter(this.options.store, this.currentManifest)
        .then((newer) => {
          if (newer !== undefined) {
            this.flusher.fence(`a newer writer started. epoch=\`${newer.writerEpoch}\``);
          }
        })
        .catch(() => {
          // A failed poll is retried at the next tick; fencing is still caught by the WAL claim.
        })
        .finally(() => {
          if (this.healthState === "ready")
            this.cancelManifestPoll = this.options.clock.setTimer(intervalMs, tick);
        });
    };
    this.cancelManifestPoll = this.options.clock.setTimer(intervalMs, tick);
  }

  private fatal(error: unknown): void {
    (this.options.onFatal ?? defaultOnFatal)(error);
  }
}
