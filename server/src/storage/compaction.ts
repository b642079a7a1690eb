/**
 * Compaction (docs/design/bottomless.md "The background job", step 1 and 2): records move from
 * WAL segments into per-stream chunks, trailing small chunks of a stream merge (a binary counter),
 * and a chunk that straddles its stream's trim point is rewritten without the trimmed records.
 *
 * Invariants:
 * - A chunk is uploaded (create-if-absent, read back on "exists") before any index row points
 *   at it; the index switch runs on the storage's commit chain, so it never interleaves with a
 *   segment's cache commit.
 * - The rows a stream's plan replaces are contiguous, and the new chunks hold exactly the
 *   records of those rows at or past the trim point seen when the plan was read (a later trim
 *   only drops more at the switch).
 * - Chunk ids are `chunkIdOf(epoch, n)` with n counting up: never reused, by anyone.
 *
 * Fault model: reads come from the cache or the bucket (CRC-checked); a failed chunk PUT fails
 * the job (retried at the next one): its uploaded chunks are orphans no checkpoint references,
 * garbage for GC. A crash anywhere leaves the index as it was or switched, per stream.
 */
import { assert } from "../core/assert.js";
import type { Clock } from "../core/clock.js";
import { failpoint } from "../core/failpoints.js";
import { Slicer } from "../core/slices.js";
import { readBatchBytesMax, readBatchCountMax } from "../core/limits.js";
import type { Random } from "../core/random.js";
import { meteredBytes, meteredBytesOfBatch, type SeqNum } from "../core/records.js";
import type { WindowBytes } from "./cache/read-window.js";
import type { ChunkToSwitch, SegmentCache } from "./cache/segment-cache.js";
import type { DurableState } from "./durable-state.js";
import {
  decodeSegmentEntryKey,
  decodeSegmentEntryValue,
  encodeSegmentEntryKey,
  type SegmentEntryLocation,
} from "./kv/keys.js";
import type { KvStore } from "./kv/kv-store.js";
import { chunkIdOf, chunkKey } from "./object-keys.js";
import type { ObjectStore } from "./object-store/object-store.js";
import {
  decodeSegmentHeader,
  decodeSegmentIndex,
  encodeSegment,
  type RecordsEntryInput,
  segmentHeaderBytes,
  writeIdBytes,
} from "./segment/format.js";
import type { DecodedRecord } from "./segment/record-codec.js";

/** A chunk is cut once its entries reach this size (ours; the issue asks for 4–64 MiB). */
export const chunkBytesTarget = 8 << 20;

/** Record bytes one job compacts out of the WAL at most; the rest waits for the next job. */
export const compactionBytesPerJobMax = 512 << 20;

/**
 * Record bytes one job rewrites at most to drop trimmed records from straddling chunks (retention
 * moves trim points all the time); streams take turns across jobs, after the WAL is compacted.
 */
export const trimRewriteBytesPerJobMax = 64 << 20;

/** One plan (read, re-packed, uploaded, switched at once) holds at most this many entry bytes. */
const planBytesMax = 4 * (8 << 20);

/** Chunks whose first seq num is remembered (a bound on the map; it is refilled on demand). */
const chunkStartSeqNumsMax = 100_000;

/** The pace of compaction's reads and uploads while no append arrives (a bandwidth cap). */
export const compactionBytesPerSecondMax = 48 << 20;

/**
 * The pace while appends arrive. Compaction sends every byte to the bucket a second time, with
 * its CRC and encoding work, so on a machine the appends keep busy it can only take a slice; yet
 * it must keep up with a steady load (10 MiB/s in the bench) and catch up on a burst's backlog.
 * Measured in bench/bottomless-bench.ts (moto on the same 2 cores, 2 rounds each): flat out at
 * 48 MiB/s, appends kept 0.66–0.71 of their throughput and their ack p99 grew 6–9×; at 16 MiB/s,
 * 0.79 and 1.6×, compacting 16 MiB/s during the 10 MiB/s run; at 1 MiB/s, 0.89 and 1.6×, but a
 * steady load then outruns compaction for ever. On this machine moto's ingest is what appends
 * and compaction share, so each compacted byte costs appends about one byte of throughput.
 */
export const compactionBytesPerSecondWhileAppending = 16 << 20;

/**
 * The share of the cache bound that the WAL backlog may fill before compaction stops yielding to
 * appends and goes at `compactionBytesPerSecondMax`. A backlog within the cache is compacted from
 * local files; past the bound, WAL files are evicted before they are compacted and each entry
 * costs a range GET (~10,000 per GiB measured), and a steady load faster than the appending pace
 * would grow the backlog, and the bucket, for ever. Half the bound leaves the other half to reads.
 * So a burst is absorbed at the low pace and drained once it ends; a sustained load keeps the lag
 * bounded at the cost of append throughput (the bench's peak-throughput run shows what it costs).
 */
export const compactionBacklogShareOfCache = 0.5;

/**
 * A stream's WAL rows wait for a later job until they hold this many bytes (bottomless.md "Which
 * streams a job takes"): chunk PUTs then follow the bytes appended, not streams × jobs, and a
 * busy stream's first chunks are an eighth of `chunkBytesTarget`, merged at most 3 times.
 */
export const compactionStreamBytesMin = 1 << 20;

/**
 * ...or until the oldest of them is older than this: how long a slow stream's records stay in
 * WAL objects, and so how much WAL the bucket holds besides the chunks (append rate × this).
 */
export const compactionLagMaxMs = 5 * 60_000;

/** Job marks kept at most (one per job; a job per second at the most, pruned past the lag). */
const jobMarksMax = 1_024;

/** Appends count as arriving for this long after the last WAL bytes were applied. */
const appendQuietMs = 1_000;

/**
 * Wall time one job spends compacting the WAL at most before it checkpoints what it has: a
 * backlog compacted at the appending pace would otherwise hold the next checkpoint back.
 */
export const compactionMsPerJobMax = 30_000;

/** Streams compacted at once, each worker pacing itself (a chunk PUT is a round trip). */
const compactionStreamsConcurrency = 2;

/**
 * WAL row bytes of one read window (bottomless.md "How a job reads the WAL"): the streams of a
 * window have each WAL object read once for all of them. Its memory adds to the two pieces being
 * rewritten (`planBytesMax` each); a backlog of B bytes costs about B / this passes over its
 * objects, against one per stream read stream by stream.
 */
export const compactionWindowBytes = 32 << 20;

/**
 * Runs of entries a worker reads at once (`SegmentCache.readEntries`): a WAL backlog larger than
 * the cache is read back from the bucket one range GET per entry, and one at a time compaction
 * was latency-bound at ~10 MiB/s on moto. Memory: at most this many runs (1 MiB each, or one
 * chunk being downloaded) per worker.
 */
const compactionRunsAhead = 8;

/** Attempts of a chunk PUT before the job gives up (the next job starts over). */
const chunkPutAttemptsMax = 5;

export interface CompactionStats {
  /** Streams whose compaction failed in a job (the job goes on with the others). */
  streamErrors: number;
  chunksWritten: number;
  chunkBytesWritten: number;
  /** Record bytes (entry payloads) read from WAL rows and rewritten into chunks. */
  bytesCompacted: number;
  /** Streams whose WAL rows the last job left for a later one (small and young). */
  streamsWaiting: number;
  /** WAL objects read ahead from their cache files, and ranged GETs made, by read windows. */
  windowFileReads: number;
  windowGets: number;
}

/** One index row of a stream as the plan reads it. */
export interface PlanRow {
  readonly key: Uint8Array;
  readonly firstSeqNum: SeqNum;
  readonly location: SegmentEntryLocation;
}

export interface CompactionHost {
  readonly store: ObjectStore;
  readonly kv: KvStore;
  readonly cache: SegmentCache;
  readonly state: DurableState;
  readonly clock: Clock;
  readonly random: Random;
  readonly writerEpoch: number;
  /** Runs `task` between two segment commits. */
  onCommitChain<T>(task: () => Promise<T>): Promise<T>;
  /** False once the writer is fenced or closing: compaction stops between streams. */
  isReady(): boolean;
  /** The WAL id the next segment will take: every row in the index points below it. */
  nextWalId(): number;
  /** WAL bytes this writer has made durable so far (compaction rests while this moves). */
  walBytesApplied(): number;
}

export class Compactor {
  readonly stats: CompactionStats = {
    streamErrors: 0,
    chunksWritten: 0,
    chunkBytesWritten: 0,
    bytesCompacted: 0,
    streamsWaiting: 0,
    windowFileReads: 0,
    windowGets: 0,
  };
  /** Where the trim-rewrite pass resumes: streams take turns across jobs. */
  private trimRewriteCursor = 0;
  private nextChunkCounter = 0;
  /** The first seq num each chunk object holds (its own index's), learned when needed. */
  private readonly chunkStartSeqNums = new Map<number, SeqNum>();
  /** `walBytesApplied()` when last looked at, and when it last moved (monotonic ms). */
  private walBytesSeen = 0;
  /** The last scan's WAL backlog, `walBytesApplied()` when it began, and bytes moved since. */
  private walBacklogAtScan = 0;
  private walBytesAtScan = 0;
  private walBytesMovedSinceScan = 0;
  private walBytesMovedAtMs = Number.NEGATIVE_INFINITY;
  /** When the pace lets the next chunk upload start (monotonic ms; a token bucket of depth 0). */
  private nextUploadAtMs = Number.NEGATIVE_INFINITY;
  /**
   * `nextWalId()` at the start of each job with its time (monotonic ms), oldest first: a row whose
   * WAL id is below a mark's was written before that mark's time (or, for a segment whose PUT was
   * in flight then, within a flush of it: the lag is kept to within milliseconds). The first mark
   * stands for everything written before this writer started, taken as old.
   */
  private readonly jobMarks: { readonly walId: number; readonly atMs: number }[];

  constructor(
    private readonly host: CompactionHost,
    /** `compactionLagMaxMs` unless a test shortens it. */
    private readonly lagMaxMs = compactionLagMaxMs,
  ) {
    this.jobMarks = [{ walId: host.nextWalId(), atMs: Number.NEGATIVE_INFINITY }];
  }

  /** Every chunk id below this has been allocated (the checkpoint's `chunkIdBound`). */
  get chunkIdBound(): number {
    return chunkIdOf(this.host.writerEpoch, this.nextChunkCounter);
  }

  /**
   * One compaction pass: first every stream's WAL rows (with the chunks they merge with), then
   * straddling chunks, streams taking turns. A stream that fails is counted and skipped: one bad
   * stream must not stop checkpoints. Returns the record bytes it moved.
   */
  async compact(options: { readonly allStreams?: boolean } = {}): Promise<number> {
    const oldBelowWalId = this.markJob();
    this.walBytesAtScan = this.host.walBytesApplied();
    const scanned = await this.walTails();
    this.walBacklogAtScan = 0;
    for (const rows of scanned.values()) this.walBacklogAtScan += walBytesOf(rows);
    this.walBytesMovedSinceScan = 0;
    const { fileBytesMax } = this.host.cache.stats;
    const bytesMin = streamBytesMin(backlogShareOf(fileBytesMax), scanned.size);
    const walTails =
      options.allStreams === true || isBacklogBehind(this.walBacklogAtScan, fileBytesMax)
        ? scanned
        : new Map([...scanned].filter(([, rows]) => isDue(rows, { bytesMin, oldBelowWalId })));
    this.stats.streamsWaiting = scanned.size - walTails.size;
    let walBudget = compactionBytesPerJobMax;
    const deadlineMs = this.host.clock.monotonicMs() + compactionMsPerJobMax;
    const isWithinJob = (): boolean =>
      walBudget > 0 && this.host.clock.monotonicMs() < deadlineMs && this.host.isReady();
    for (const streams of readWindowsOf([...walTails])) {
      if (!isWithinJob()) break;
      // Each WAL object of the window is read once for all its streams (bottomless.md "How a job
      // reads the WAL"); the rewrites below take their rows' bytes from it.
      const window = await this.host.cache.readWindow(windowLocationsOf(streams));
      this.stats.windowFileReads += window.fileReads;
      this.stats.windowGets += window.gets;
      // Streams are compacted side by side: each is a few object-store round trips (reads, one
      // PUT per chunk), and one at a time leaves a job latency-bound.
      const queue = [...streams];
      const worker = async (): Promise<void> => {
        for (let next = queue.shift(); next !== undefined && isWithinJob(); next = queue.shift()) {
          const [streamId, rows] = next;
          const moved = await this.compactStream(streamId, () => this.planWalTail(rows), window);
          walBudget -= moved;
          this.walBytesMovedSinceScan += moved;
        }
      };
      await Promise.all(Array.from({ length: compactionStreamsConcurrency }, worker));
      window.clear();
    }
    let trimBudget = trimRewriteBytesPerJobMax;
    const { state } = this.host;
    const turns = [...state.streamsById.keys()]
      .filter((streamId) => state.tailOf(streamId).trimPoint > 0)
      .sort((a, b) => a - b);
    const start = turns.findIndex((streamId) => streamId >= this.trimRewriteCursor);
    for (let k = 0; k < turns.length; k++) {
      const streamId = turns[(Math.max(start, 0) + k) % turns.length]!;
      if (trimBudget <= 0 || !this.host.isReady()) {
        this.trimRewriteCursor = streamId;
        break;
      }
      // Rows read afresh: the WAL pass may have switched this stream's rows since the scan.
      trimBudget -= await this.compactStream(streamId, async () =>
        this.planStraddlingChunk(await this.firstGroupOf(streamId), streamId),
      );
    }
    return compactionBytesPerJobMax - walBudget + (trimRewriteBytesPerJobMax - trimBudget);
  }

  /**
   * Notes this job's mark and drops marks no longer needed; returns the WAL id below which rows
   * are older than `compactionLagMaxMs` (that of the newest mark at least that old).
   */
  private markJob(): number {
    const nowMs = this.host.clock.monotonicMs();
    this.jobMarks.push({ walId: this.host.nextWalId(), atMs: nowMs });
    const horizonMs = nowMs - this.lagMaxMs;
    // Marks before the newest one past the horizon say nothing more.
    while (this.jobMarks.length > 1 && this.jobMarks[1]!.atMs <= horizonMs) this.jobMarks.shift();
    // Coarser: a row may then wait a little past the lag.
    if (this.jobMarks.length > jobMarksMax) this.jobMarks.splice(1, 1);
    const oldest = this.jobMarks[0]!;
    assert(
      this.jobMarks.every((mark, i) => i === 0 || mark.walId >= this.jobMarks[i - 1]!.walId),
      "job marks follow the WAL",
    );
    return oldest.atMs <= horizonMs ? oldest.walId : Number.NEGATIVE_INFINITY;
  }

  /** Plans and rewrites one stream; an error other than an assertion is counted, not thrown. */
  private async compactStream(
    streamId: number,
    plan: () => Promise<PlanRow[][]>,
    window?: WindowBytes,
  ): Promise<number> {
    if (!this.host.state.streamsById.has(streamId)) return 0; // removal in flight: rows go anyway
    let bytes = 0;
    try {
      for (const piece of await plan()) {
        if (!this.host.isReady()) break;
        bytes += await this.rewrite(streamId, piece, window);
      }
    } catch (error) {
      if (error instanceof Error && error.name === "AssertionError") throw error;
      this.stats.streamErrors += 1;
    }
    return bytes;
  }

  /**
   * The WAL tail of every stream that has one (`walTailOf`), by stream id: one backwards index
   * read per stream, so a job's cost and memory follow the WAL backlog and the number of streams,
   * never the whole history's index.
   */
  private async walTails(): Promise<Map<number, PlanRow[]>> {
    const tails = new Map<number, PlanRow[]>();
    const streamIds = [...this.host.state.streamsById.keys()].sort((a, b) => a - b);
    // In slices: the scan lists every WAL row of the backlog, a stretch of ~70 ms otherwise.
    const slicer = new Slicer();
    for (const streamId of streamIds) {
      if (slicer.isDue()) await slicer.pause();
      const rows = await this.walTailOf(streamId);
      if (rows.length > 0) tails.set(streamId, rows);
    }
    return tails;
  }

  /**
   * A stream's WAL rows with, before them, the chunk rows a merge may take (`planWalTail`), in
   * seq-num order; empty when it has no WAL rows. Read backwards from its last row: a stream's
   * rows are chunk rows, then WAL rows (compaction moves the oldest WAL rows first), and a merge
   * never reaches past `chunkBytesTarget` of chunks, so the rest of its index is never read.
   */
  private async walTailOf(streamId: number): Promise<PlanRow[]> {
    const rows: PlanRow[] = [];
    let chunkBytes = 0;
    let isCut = false;
    for await (const [key, value] of this.host.kv.entries({
      gte: encodeSegmentEntryKey(streamId, 0),
      lt: encodeSegmentEntryKey(streamId + 1, 0),
      reverse: true,
    })) {
      const row = {
        key,
        firstSeqNum: decodeSegmentEntryKey(key).firstSeqNum,
        location: decodeSegmentEntryValue(value),
      };
      if (row.location.source === "chunk") {
        if (rows.length === 0) return rows;
        chunkBytes += row.location.length;
        if (chunkBytes > chunkBytesTarget) {
          isCut = true;
          break;
        }
      } else {
        assert(chunkBytes === 0, `a stream's WAL rows follow its chunk rows: stream ${streamId}`);
      }
      rows.push(row);
    }
    rows.reverse();
    if (!isCut) return rows;
    // The oldest group may be cut short; whole, it is too large to merge anyway (the merged
    // size it would join already exceeds the target with it), so leave it out.
    const groups = groupByObject(rows);
    return groups[0]![0]!.location.source === "chunk" ? groups.slice(1).flat() : rows;
  }

  /**
   * A stream's first rows that point into one chunk (a chunk's rows are re-packed entries, so a
   * few dozen at most), or its first row alone when that is a WAL row: the trim pass rewrites
   * chunks only, and the WAL rows after it are the whole backlog.
   */
  private async firstGroupOf(streamId: number): Promise<PlanRow[]> {
    const rows: PlanRow[] = [];
    for await (const [key, value] of this.host.kv.entries({
      gte: encodeSegmentEntryKey(streamId, 0),
      lt: encodeSegmentEntryKey(streamId + 1, 0),
    })) {
      const row = {
        key,
        firstSeqNum: decodeSegmentEntryKey(key).firstSeqNum,
        location: decodeSegmentEntryValue(value),
      };
      const first = rows[0]?.location;
      if (
        first !== undefined &&
        (first.source !== row.location.source || first.objectId !== row.location.objectId)
      ) {
        break;
      }
      rows.push(row);
      if (row.location.source === "wal") break;
    }
    return rows;
  }

  /**
   * The WAL rows of a stream with the trailing chunks they merge with (a binary counter: the
   * previous chunk merges while it is no larger than what is being written), cut into contiguous
   * pieces of at most `planBytesMax`. Empty when the stream has no WAL rows.
   */
  private async planWalTail(rows: readonly PlanRow[]): Promise<PlanRow[][]> {
    const groups = groupByObject(rows);
    const tail = groups.at(-1);
    if (tail === undefined || tail[0]!.location.source !== "wal") return [];
    const merged = [groups.pop()!];
    let size = bytesOf(tail);
    for (;;) {
      const previous = groups.at(-1);
      if (previous === undefined || previous[0]!.location.source !== "chunk") break;
      const previousBytes = bytesOf(previous);
      if (previousBytes > size || size + previousBytes > chunkBytesTarget) break;
      merged.unshift(groups.pop()!);
      size += previousBytes;
    }
    const pieces: PlanRow[][] = [[]];
    let pieceBytes = 0;
    for (const row of merged.flat()) {
      if (pieceBytes > 0 && pieceBytes + row.location.length > planBytesMax) {
        pieces.push([]);
        pieceBytes = 0;
      }
      pieces.at(-1)!.push(row);
      pieceBytes += row.location.length;
    }
    return pieces;
  }

  /** The stream's first chunk, when it still holds records below the trim point. */
  private async planStraddlingChunk(
    rows: readonly PlanRow[],
    streamId: number,
  ): Promise<PlanRow[][]> {
    const first = groupByObject(rows)[0];
    const { trimPoint } = this.host.state.tailOf(streamId);
    if (first === undefined || first[0]!.location.source !== "chunk" || trimPoint === 0) return [];
    const startSeqNum = await this.chunkStartSeqNum(first[0]!.location.objectId);
    return startSeqNum < trimPoint ? [first] : [];
  }

  /** Reads the plan's records, writes them as chunks, switches the index; returns bytes read. */
  private async rewrite(
    streamId: number,
    plan: readonly PlanRow[],
    window: WindowBytes | undefined,
  ): Promise<number> {
    const { cache, state } = this.host;
    for (let i = 1; i < plan.length; i++) {
      assert(
        plan[i]!.firstSeqNum === plan[i - 1]!.firstSeqNum + plan[i - 1]!.location.recordCount,
        "a stream's rows are contiguous",
      );
    }
    // The trim point now (it moves while jobs run): records below it are not carried over.
    const startSeqNum = Math.max(plan[0]!.firstSeqNum, state.tailOf(streamId).trimPoint);
    const last = plan.at(-1)!;
    const endSeqNum = last.firstSeqNum + last.location.recordCount;
    const readBytes = bytesOf(plan);
    /** The re-packed entries with their payload bytes (the chunk cut counts them). */
    const entries: {
      input: RecordsEntryInput;
      bytes: number;
      meteredBytesBefore: number | undefined;
    }[] = [];
    let pending:
      | {
          firstSeqNum: SeqNum;
          encoded: Uint8Array[];
          bytes: number;
          meteredBytesBefore: number | undefined;
        }
      | undefined;
    const flushEntry = (): void => {
      if (pending === undefined || pending.encoded.length === 0) return;
      entries.push({
        input: {
          kind: "records",
          streamId,
          firstSeqNum: pending.firstSeqNum,
          encodedRecords: pending.encoded,
        },
        bytes: pending.bytes,
        meteredBytesBefore: pending.meteredBytesBefore,
      });
      pending = undefined;
    };
    let nextSeqNum = startSeqNum;
    /**
     * The stream's metered bytes before `nextSeqNum`, carried into the chunk rows (undefined
     * while the rows read predate the field); set from the first row read, then checked
     * against every following row's.
     */
    let meteredBytesBeforeNext: number | undefined;
    let isFirstRow = true;
    /** Set when rows vanished under the read for a reason other than a trim: skip this plan. */
    let isAbandoned = false;
    if (startSeqNum < endSeqNum) {
      await cache.readEntries({
        streamId,
        startSeqNum,
        endSeqNum,
        runsAhead: compactionRunsAhead,
        window,
        visit: (
          firstSeqNum: SeqNum,
          records: readonly DecodedRecord[],
          rowMeteredBytesBefore: number | undefined,
        ) => {
          if (firstSeqNum > nextSeqNum) {
            // Rows below `firstSeqNum` went away under the read: a trim that landed meanwhile
            // (its records need no copy), or something else (a removal): then give up the plan.
            if (
              state.streamsById.has(streamId) &&
              state.tailOf(streamId).trimPoint >= firstSeqNum
            ) {
              // Everything gathered so far is below the trim point now: drop it (a chunk's
              // entries must be contiguous).
              entries.length = 0;
              pending = undefined;
              nextSeqNum = firstSeqNum;
              isFirstRow = true;
            } else {
              isAbandoned = true;
              return false;
            }
          }
          const skipped = Math.max(0, nextSeqNum - firstSeqNum);
          const rowBefore =
            rowMeteredBytesBefore === undefined
              ? undefined
              : rowMeteredBytesBefore + meteredBytesOfBatch(records.slice(0, skipped));
          // A row without the field leaves the running total as it is (still exact once known).
          if (!isFirstRow && rowBefore !== undefined && meteredBytesBeforeNext !== undefined) {
            assert(
              rowBefore === meteredBytesBeforeNext,
              `a row's metered total continues the previous row's: stream ${streamId} seq ${firstSeqNum}`,
            );
          }
          if (isFirstRow || rowBefore !== undefined) meteredBytesBeforeNext = rowBefore;
          isFirstRow = false;
          for (let i = skipped; i < records.length; i++) {
            const seqNum = firstSeqNum + i;
            if (seqNum >= endSeqNum) break;
            assert(seqNum === nextSeqNum, "compaction reads every record of the plan in order");
            const encoded = records[i]!.encoded;
            if (
              pending !== undefined &&
              (pending.encoded.length >= readBatchCountMax ||
                pending.bytes + encoded.length > readBatchBytesMax)
            ) {
              flushEntry();
            }
            pending ??= {
              firstSeqNum: seqNum,
              encoded: [],
              bytes: 0,
              meteredBytesBefore: meteredBytesBeforeNext,
            };
            pending.encoded.push(encoded);
            pending.bytes += encoded.length;
            if (meteredBytesBeforeNext !== undefined) {
              meteredBytesBeforeNext += meteredBytes(records[i]!);
            }
            nextSeqNum = seqNum + 1;
          }
          return nextSeqNum < endSeqNum;
        },
      });
      flushEntry();
    }
    if (isAbandoned || nextSeqNum < endSeqNum) {
      // Rows gone under the read (a removal, or a trim past the plan's end; a reader racing a
      // switch would see the same): this stream waits for the next job, nothing was uploaded.
      return readBytes;
    }
    const chunks: ChunkToSwitch[] = [];
    let group: RecordsEntryInput[] = [];
    let groupMetered: (number | undefined)[] = [];
    let groupBytes = 0;
    const cut = async (): Promise<void> => {
      if (group.length === 0) return;
      const uploaded = await this.uploadChunk(group, groupBytes);
      chunks.push({ ...uploaded, meteredBytesBefore: groupMetered });
      group = [];
      groupMetered = [];
      groupBytes = 0;
    };
    for (const { input, bytes, meteredBytesBefore } of entries) {
      if (groupBytes > 0 && groupBytes + bytes > chunkBytesTarget) await cut();
      group.push(input);
      groupMetered.push(meteredBytesBefore);
      groupBytes += bytes;
    }
    await cut();
    failpoint("compaction.after-chunk-upload");
    await cache.writeChunkFiles(chunks);
    await this.host.onCommitChain(() =>
      cache.switchToChunks({
        streamId,
        replacedKeys: plan.map((row) => row.key),
        chunks,
        trimPoint: state.streamsById.has(streamId)
          ? state.tailOf(streamId).trimPoint
          : Number.MAX_SAFE_INTEGER,
      }),
    );
    this.stats.bytesCompacted += readBytes;
    return readBytes;
  }

  /**
   * Waits for the pace to allow `bytes` more of chunk uploads (every worker draws on one pace):
   * the lower pace while appends arrive and the backlog is within its bound, the cap otherwise.
   */
  private async pace(bytes: number): Promise<void> {
    const nowMs = this.host.clock.monotonicMs();
    const walBytes = this.host.walBytesApplied();
    if (walBytes !== this.walBytesSeen) {
      this.walBytesSeen = walBytes;
      this.walBytesMovedAtMs = nowMs;
    }
    const bytesPerSecond = compactionBytesPerSecond({
      isAppending: nowMs - this.walBytesMovedAtMs < appendQuietMs,
      walBacklogBytes: this.walBacklogBytes(),
      cacheBytesMax: this.host.cache.stats.fileBytesMax,
    });
    const startMs = Math.max(nowMs, this.nextUploadAtMs);
    this.nextUploadAtMs = startMs + (bytes / bytesPerSecond) * 1000;
    if (startMs > nowMs) await this.host.clock.sleep(startMs - nowMs);
  }

  /**
   * WAL bytes waiting for compaction: the WAL rows the last job's scan found, plus the WAL bytes
   * applied since, less what the job has moved (the lag between the WAL and the chunks; its bound
   * sets the pace). Rows of streams trimmed or removed meanwhile count until the next scan.
   */
  walBacklogBytes(): number {
    const arrived = this.host.walBytesApplied() - this.walBytesAtScan;
    return Math.max(0, this.walBacklogAtScan + arrived - this.walBytesMovedSinceScan);
  }

  private async uploadChunk(
    entries: readonly RecordsEntryInput[],
    entryBytes: number,
  ): Promise<{
    chunkId: number;
    bytes: Uint8Array;
  }> {
    await this.pace(entryBytes);
    const chunkId = chunkIdOf(this.host.writerEpoch, this.nextChunkCounter);
    this.nextChunkCounter += 1;
    const bytes = encodeSegment({
      walId: chunkId,
      writerEpoch: this.host.writerEpoch,
      writeId: this.host.random.bytes(writeIdBytes),
      entries,
    });
    const key = chunkKey(chunkId);
    let lastError: unknown;
    for (let attempt = 0; attempt < chunkPutAttemptsMax; attempt++) {
      try {
        const result = await this.host.store.putIfAbsent(key, bytes);
        if (result === "exists") {
          // Only a lost answer of ours can hold this id: it must be these very bytes.
          const stored = await this.host.store.get(key);
          assert(
            stored !== undefined && Buffer.compare(stored, bytes) === 0,
            `chunk id taken by other bytes: ${key}`,
          );
        }
        this.rememberChunkStart(chunkId, entries[0]!.firstSeqNum);
        this.stats.chunksWritten += 1;
        this.stats.chunkBytesWritten += bytes.length;
        return { chunkId, bytes };
      } catch (error) {
        if (error instanceof Error && error.name === "AssertionError") throw error;
        lastError = error;
        await this.host.clock.sleep(50 * 2 ** attempt);
      }
    }
    throw new Error(`chunk upload failed. key=\`${key}\``, { cause: lastError });
  }

  private rememberChunkStart(chunkId: number, firstSeqNum: SeqNum): void {
    if (this.chunkStartSeqNums.size >= chunkStartSeqNumsMax) this.chunkStartSeqNums.clear();
    this.chunkStartSeqNums.set(chunkId, firstSeqNum);
  }

  /** The first seq num a chunk object holds (from its index, by two range GETs). */
  private async chunkStartSeqNum(chunkId: number): Promise<SeqNum> {
    const known = this.chunkStartSeqNums.get(chunkId);
    if (known !== undefined) return known;
    const key = chunkKey(chunkId);
    const head = await this.host.store.get(key, { start: 0, end: segmentHeaderBytes });
    assert(head !== undefined, `a referenced chunk exists: ${key}`);
    const header = decodeSegmentHeader(head);
    const index = await this.host.store.get(key, {
      start: segmentHeaderBytes,
      end: segmentHeaderBytes + header.indexBytes,
    });
    assert(index !== undefined, `a referenced chunk exists: ${key}`);
    const first = decodeSegmentIndex(header, index)[0];
    assert(first !== undefined, "a chunk holds at least one entry");
    this.rememberChunkStart(chunkId, first.firstSeqNum);
    return first.firstSeqNum;
  }
}

/** Compaction's pace (bytes per second of chunk uploads); see the constants it names. */
export function compactionBytesPerSecond(options: {
  readonly isAppending: boolean;
  readonly walBacklogBytes: number;
  readonly cacheBytesMax: number;
}): number {
  return options.isAppending && !isBacklogBehind(options.walBacklogBytes, options.cacheBytesMax)
    ? compactionBytesPerSecondWhileAppending
    : compactionBytesPerSecondMax;
}

/** The WAL backlog's share of a cache bound (`compactionBacklogShareOfCache`). */
function backlogShareOf(cacheBytesMax: number): number {
  return cacheBytesMax * compactionBacklogShareOfCache;
}

/**
 * Whether the WAL backlog is over its share of the cache: compaction then takes every stream and
 * goes at its cap, whatever the appends.
 */
function isBacklogBehind(walBacklogBytes: number, cacheBytesMax: number): boolean {
  return walBacklogBytes > backlogShareOf(cacheBytesMax);
}

/**
 * The WAL bytes a stream's rows wait for: `compactionStreamBytesMin`, less when many streams wait,
 * so that rows waiting for it never fill the backlog's share of the cache by themselves.
 */
export function streamBytesMin(backlogShareBytes: number, streamsWithWal: number): number {
  return Math.min(
    compactionStreamBytesMin,
    Math.floor(backlogShareBytes / (2 * Math.max(1, streamsWithWal))),
  );
}

/**
 * Whether a stream's WAL tail is compacted now: it holds `bytesMin` of WAL rows, or its oldest
 * WAL row was written before the lag's horizon (its WAL id is below `oldBelowWalId`).
 */
export function isDue(
  rows: readonly PlanRow[],
  options: { readonly bytesMin: number; readonly oldBelowWalId: number },
): boolean {
  if (walBytesOf(rows) >= options.bytesMin) return true;
  const oldest = rows.find((row) => row.location.source === "wal");
  return oldest !== undefined && oldest.location.objectId < options.oldBelowWalId;
}

/**
 * The streams a job takes, in order, cut into read windows of at most `compactionWindowBytes` of
 * WAL rows each (a stream larger than that is a window on its own).
 */
export function readWindowsOf<T extends readonly [number, readonly PlanRow[]]>(
  streams: readonly T[],
): T[][] {
  const windows: T[][] = [];
  let bytes = 0;
  for (const stream of streams) {
    const streamBytes = walBytesOf(stream[1]);
    const current = windows.at(-1);
    if (current === undefined || bytes + streamBytes > compactionWindowBytes) {
      windows.push([stream]);
      bytes = streamBytes;
    } else {
      current.push(stream);
      bytes += streamBytes;
    }
  }
  return windows;
}

/** The WAL locations a window reads ahead: its streams' WAL rows, up to `compactionWindowBytes`. */
export function windowLocationsOf(
  streams: readonly (readonly [number, readonly PlanRow[]])[],
): SegmentEntryLocation[] {
  const locations: SegmentEntryLocation[] = [];
  let bytes = 0;
  for (const [, rows] of streams) {
    for (const { location } of rows) {
      if (location.source !== "wal") continue;
      if (bytes + location.length > compactionWindowBytes) return locations;
      locations.push(location);
      bytes += location.length;
    }
  }
  return locations;
}

/** Consecutive rows pointing into one object (all WAL rows count as one group). */
function groupByObject(rows: readonly PlanRow[]): PlanRow[][] {
  const groups: PlanRow[][] = [];
  for (const row of rows) {
    const last = groups.at(-1)?.[0]?.location;
    if (
      last !== undefined &&
      last.source === row.location.source &&
      (last.source === "wal" || last.objectId === row.location.objectId)
    ) {
      groups.at(-1)!.push(row);
    } else {
      groups.push([row]);
    }
  }
  return groups;
}

/** The bytes of the WAL rows among `rows`. */
function walBytesOf(rows: readonly PlanRow[]): number {
  let bytes = 0;
  for (const row of rows) if (row.location.source === "wal") bytes += row.location.length;
  return bytes;
}

function bytesOf(rows: readonly PlanRow[]): number {
  let bytes = 0;
  for (const row of rows) bytes += row.location.length;
  return bytes;
}
