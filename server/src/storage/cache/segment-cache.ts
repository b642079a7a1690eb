/**
 * The record half of the local cache (docs/design/storage.md "The local cache",
 * docs/design/bottomless.md "The bounded cache"): durable WAL segments and chunks kept as files
 * (two `SegmentFiles`), indexed in LevelDB by one SegmentEntry row per records entry, with a
 * SegmentRefs (ChunkRefs) row per object counting the rows that point into it. Files are bounded
 * by `cacheBytesMax`: the least recently used are unlinked (their rows stay; a read of them is a
 * miss, served from the bucket, a chunk by downloading it whole back into the cache).
 *
 * Invariants:
 * - A segment's file write completes before the LevelDB batch that indexes it is issued, and the
 *   batch that drops a file's last reference is written before the file is unlinked.
 * - SegmentEntry rows and the SegmentRefs counts they imply change in the same batch.
 * - Callers serialize every mutation (the storage's commit chain, or recovery, which runs alone):
 *   reference counts are read, modified and written without a lock.
 * - Bytes read back are never trusted: each entry is checked against its CRC32C, from the file
 *   or, on a miss, from the bucket; what fails both is an error, never data.
 * - `fileBytes` is the sum of the sizes of the files in `lru` (both orders), and every file this
 *   cache wrote or found at open is in `lru` until it is unlinked.
 *
 * - Detached (`detachFiles`, the degraded mode of docs/design/degraded-cache.md), no file is
 *   written, read or unlinked and `lru` is empty: every entry read is a range GET of its object.
 *
 * Fault model: a process crash between a file write and its batch leaves a file that the replay
 * of that segment overwrites (same id, same bytes); between a batch and an unlink, an orphan file
 * that `sweepOrphanFiles` removes at recovery. A machine crash or a damaged disk can leave rows
 * pointing at missing or wrong bytes: cache misses, served by a range GET of `wal/<walId>` or by a
 * download of `chunks/<chunkId>`. A write or unlink that fails (a full or failing disk) rejects the
 * operation that made it, on the commit chain, where the storage's `CacheGuard` degrades the cache;
 * the file writes made off the chain (chunks before a switch, a downloaded chunk) also tell
 * `onDiskFault`, and a failed write of a downloaded chunk does not fail the read.
 */
import { assert } from "../../core/assert.js";
import type { Clock } from "../../core/clock.js";
import { failpoint } from "../../core/failpoints.js";
import {
  readBatchBytesMax,
  readBatchCountMax,
  segmentPutRetryDelayMsMax,
} from "../../core/limits.js";
import { meteredBytesOfBatch, type SeqNum } from "../../core/records.js";
import {
  decodeSegmentEntryKey,
  decodeSegmentEntryValue,
  decodeSegmentRefsValue,
  encodeSegmentEntryKey,
  encodeSegmentEntryValue,
  encodeSegmentRefsKey,
  encodeSegmentRefsValue,
  type ObjectSource,
  type SegmentEntryLocation,
} from "../kv/keys.js";
import type { KvOp, KvRange, KvStore } from "../kv/kv-store.js";
import { SwitchableKvStore } from "../kv/switchable.js";
import { chunkKey, walKey } from "../object-keys.js";
import { bodyBytes, type ObjectBody, type ObjectStore } from "../object-store/object-store.js";
import {
  decodeSegmentEntry,
  decodeSegmentHeader,
  decodeSegmentIndex,
  type EncodedSegment,
  entryByteRange,
  type SegmentEntry,
  SegmentFormatError,
  segmentHeaderBytes,
  segmentHeadOf,
} from "../segment/format.js";
import type { DecodedRecord } from "../segment/record-codec.js";
import { diskFaultOf } from "./disk-fault.js";
import { getRangesInSpans, readWindow, type WindowBytes } from "./read-window.js";
import { type ByteRange, createMemorySegmentFiles, type SegmentFiles } from "./segment-files.js";

/**
 * Index rows of one stream that a read listed past the row it stopped at (that row first), for
 * the reader's next read to start from instead of listing them again (`readEntries`'s
 * `rowsAhead`). A hint, used only while current: no row has been deleted or replaced since
 * (`generation`: a trim, a removal or a compaction switch bumps it) and the index is still in the
 * same store; new rows are only ever added past the stream's tail, after these.
 */
export interface RowsAhead {
  readonly streamId: number;
  readonly generation: number;
  readonly kvTarget: KvStore;
  readonly rows: readonly (readonly [Uint8Array, Uint8Array])[];
  /** The size of the page they came from: the next page doubles it. */
  readonly pageRowsMax: number;
  /**
   * The entries of the first of these rows whose WAL files are not cached, being fetched from the
   * bucket for the reader's next read (`readWalAhead`); that read takes them and drops the rest.
   */
  readonly walAhead?: WalAhead | undefined;
}

/** WAL entries fetched ahead of a reader, and how to give back their share of the budget. */
interface WalAhead {
  /**
   * Each entry's bytes from the bucket, fetched or being fetched, by `walAheadKeyOf` (undefined
   * where its GET failed: the read then reads it itself).
   */
  readonly entries: ReadonlyMap<string, Promise<Uint8Array | undefined>>;
  /** Drops the entries and returns their bytes to `walReadAheadBytesMax` (idempotent). */
  release(): void;
}

/** A cached entry could be read neither from its file nor from the bucket. */
export class CacheReadError extends Error {
  override readonly name = "CacheReadError";
}

/**
 * Attempts of the range GET that serves a cache miss (as recovery's object reads), with backoff
 * from 10 ms doubling up to `segmentPutRetryDelayMsMax`: a transient store error must not fail a
 * read that a retry would serve.
 */
const missReadAttemptsMax = 10;

/**
 * A read gathers consecutive rows that point into one file while their entries fit in this many
 * bytes (a row larger than that alone), then reads them from the file in one call (one open, one
 * pread per span, one close) instead of one open per entry: a catch-up read of one-record entries
 * would otherwise open the same file a hundred times. One read batch's worth, so a read that stops
 * early (its caller's byte or count limit) has read ahead at most one batch; and a run of entries
 * of about a batch each holds one entry, not the two that "at least one batch" made it read (the
 * second one decoded, checked and, as a batch ends in the first, read again by the next batch).
 */
const readRunBytesMax = readBatchBytesMax;

/** A run also ends at this many rows: a read batch never needs more entries than records. */
const readRunRowsMax = readBatchCountMax;

/**
 * A read lists its rows in pages of this many, doubling up to `readRowsPageMax` (each page one
 * native call, `kv/level.ts`), instead of one
 * LevelDB iterator over the rest of the stream: after its first row, an unbounded iterator fetches
 * the next 1,000 rows at once (classic-level's `nextv`), keys and values as buffers, where a
 * catch-up batch of ~1 MiB entries needs two (measured: that fetch was the read path's biggest
 * CPU cost after GC). The pages are separate iterators, so the index may change between two; the
 * reader sees that as it sees a change under one iterator's later rows (a gap, or rows that start
 * before its position), and `Storage.readRecords` reads on from where it got.
 */
const readRowsPageFirst = 4;
const readRowsPageMax = 1000;

/**
 * A read that stops with rows listed past its end downloads the chunks of the next this many
 * bytes of them (two chunks of compaction's 8 MiB target) before they are asked for: a catch-up
 * reader otherwise waits for a whole-chunk GET every 8 MiB (on moto ~75 ms of transfer plus the
 * AWS SDK's ~9 ms of CPU per MiB) with nothing else in flight.
 */
const chunkReadAheadBytes = 16 << 20;

/** ...and at most this share of the cache bound, so that read-ahead never evicts what is read. */
const chunkReadAheadShareOfCache = 1 / 8;

/**
 * Read-ahead starts no download while this many are in flight (any reader's): each holds its
 * chunk in memory until written to the cache (8 MiB or so), and readers in their thousands must
 * not multiply that.
 */
const chunkReadAheadDownloadsMax = 4;

/**
 * A read that stops with rows listed past its end whose WAL files are not cached (evicted, or a
 * cache lost) fetches the entries of the next this many bytes of them, one ranged GET per span,
 * while its reader serves what it read, and hands what it fetched on to the next read: a catch-up
 * reader on a cold cache otherwise waits for each batch's GETs in turn. Measured in-process on a
 * store answering in 30–70 ms, 127 MiB of ~1 MiB entries: 20 MiB/s without, 105–112 MiB/s with;
 * one read batch ahead (1 MiB) changed nothing (the reader serves a batch in a few ms and then
 * waits for the GET anyway): the bytes in flight must cover the latency at the rate wanted.
 */
const walReadAheadBytes = 8 << 20;

/** WAL entries fetched ahead of readers, in flight or held for them, at most (all readers). */
const walReadAheadBytesMax = 64 << 20;

/** Entries fetched ahead and not taken within this long are dropped (their reader went away). */
const walReadAheadHoldMs = 10_000;

/** The key of a WAL entry in a `WalAhead`. */
function walAheadKeyOf(location: SegmentEntryLocation): string {
  return `${location.objectId}:${location.offset}`;
}

/** Rows deleted per LevelDB batch when a trim or a removal drops many (each batch is consistent). */
const dropRowsPerBatchMax = 4096;

/** Counters for metrics and tests. */
export interface SegmentCacheStats {
  /** Segment and chunk files written. */
  filesWritten: number;
  /** Files unlinked (no reference left, or orphans swept at recovery); evictions not included. */
  filesDeleted: number;
  /** Entries read from their file with a good CRC. */
  entryHits: number;
  /** Entries whose file was missing, short or failed the CRC, read from the bucket instead. */
  entryMisses: number;
  /** Files unlinked to keep the cache within its bound. */
  filesEvicted: number;
  /** Chunks downloaded whole on a miss (read-ahead). */
  chunkDownloads: number;
  /** Chunk downloads started ahead of a reader (`readChunksAhead`), counted in `chunkDownloads` too. */
  chunkReadAheads: number;
  /** WAL entries fetched from the bucket ahead of a reader (`readWalAhead`). */
  walReadAheadEntries: number;
  /** Bytes of WAL entries fetched ahead of readers, in flight or held now (`walReadAheadBytesMax`). */
  walReadAheadBytes: number;
  /** Bytes of the files the cache holds now, and its bound. */
  fileBytes: number;
  fileBytesMax: number;
}

/** The default bound on the cache's files (`--cache-size`). */
/** A chunk uploaded by compaction, for `switchToChunks`. */
export interface ChunkToSwitch {
  readonly chunkId: number;
  readonly bytes: Uint8Array;
  /** Per entry of the chunk, in order: its `SegmentEntryLocation.meteredBytesBefore`. */
  readonly meteredBytesBefore: readonly (number | undefined)[];
}

export const cacheBytesMaxDefault = 1 << 30;

/** The files of one kind of object, with the object keys they mirror. */
interface FileKind {
  readonly files: SegmentFiles;
  readonly objectKey: (id: number) => string;
}

/** One object by kind and id (a file of the cache, a reference count). */
interface ObjectRef {
  readonly source: ObjectSource;
  readonly id: number;
}

export class SegmentCache {
  readonly stats: SegmentCacheStats;
  /**
   * Every cached file, least recently used first, with its size, one order per kind: chunks are
   * evicted before WAL segments, because a WAL segment's rows are recent (live readers) and not
   * yet compacted (compaction reads them; evicted, it reads them entry by entry from the bucket).
   */
  private readonly lru: Record<ObjectSource, Map<number, number>> = {
    wal: new Map(),
    chunk: new Map(),
  };
  /** Chunk downloads in progress, so concurrent misses on one chunk share one GET. */
  private readonly downloads = new Map<number, Promise<Uint8Array | undefined>>();
  private kinds: Record<ObjectSource, FileKind>;
  /** No file is written, read or unlinked (the disk failed: degraded-cache.md). */
  private isDetached = false;
  /** Bumped after every write that deletes or replaces index rows (`RowsAhead`). */
  private rowsGeneration = 0;
  /**
   * Told of a disk fault met off the commit chain (chunk file writes), so that the owner can
   * degrade the cache on the chain; faults on the chain reject the operation instead.
   */
  onDiskFault: ((error: unknown) => void) | undefined;

  constructor(
    private readonly kv: KvStore,
    files: SegmentFiles,
    private readonly store: ObjectStore,
    private readonly clock: Clock,
    options: {
      /** Chunk files (`<cache-dir>/chunks`); memory when absent. */
      readonly chunkFiles?: SegmentFiles | undefined;
      readonly fileBytesMax?: number | undefined;
    } = {},
  ) {
    const fileBytesMax = options.fileBytesMax ?? cacheBytesMaxDefault;
    assert(Number.isSafeInteger(fileBytesMax) && fileBytesMax >= 0, "cache bound is a byte count");
    this.stats = {
      filesWritten: 0,
      filesDeleted: 0,
      entryHits: 0,
      entryMisses: 0,
      filesEvicted: 0,
      chunkDownloads: 0,
      chunkReadAheads: 0,
      walReadAheadEntries: 0,
      walReadAheadBytes: 0,
      fileBytes: 0,
      fileBytesMax,
    };
    this.kinds = {
      wal: { files, objectKey: walKey },
      chunk: { files: options.chunkFiles ?? createMemorySegmentFiles(), objectKey: chunkKey },
    };
  }

  /** Accounts the files already on disk (oldest first), then evicts down to the bound. */
  async loadFileSizes(): Promise<void> {
    for (const source of ["wal", "chunk"] as const) {
      for (const { id, bytes } of await this.kinds[source].files.sizes()) {
        this.accountFile(source, id, bytes);
      }
    }
    await this.evict();
  }

  /**
   * Commits one durable segment: writes its file when it indexes at least one entry, then one
   * LevelDB batch with `ops` (metadata, tails, marker), the index rows and the file's reference
   * count. `isIndexed[i]` says whether entry i (a records entry of a stream that was live when it
   * was applied) gets a row, which carries `meteredBytesBefore[i]`: the stream's metered bytes
   * appended before the entry.
   */
  async commitSegment(options: {
    readonly walId: number;
    readonly bytes: EncodedSegment;
    readonly entries: readonly SegmentEntry[];
    readonly isIndexed: readonly boolean[];
    readonly meteredBytesBefore: readonly number[];
    readonly ops: readonly KvOp[];
  }): Promise<void> {
    const { walId, bytes, entries, isIndexed, meteredBytesBefore } = options;
    assert(isIndexed.length === entries.length, "one index flag per entry");
    assert(meteredBytesBefore.length === entries.length, "one metered total per entry");
    const rowOps: KvOp[] = [];
    if (isIndexed.some((flag) => flag)) {
      const head = segmentHeadOf(bytes);
      const header = decodeSegmentHeader(head);
      assert(header.walId === walId, "the segment bytes are the segment's");
      const rows = decodeSegmentIndex(
        header,
        head.subarray(segmentHeaderBytes, segmentHeaderBytes + header.indexBytes),
      );
      assert(rows.length === entries.length, "one index row per entry");
      for (let i = 0; i < entries.length; i++) {
        if (!isIndexed[i]) continue;
        const entry = entries[i]!;
        const row = rows[i]!;
        assert(
          entry.kind === "records" &&
            row.kind === "records" &&
            row.streamId === entry.streamId &&
            row.firstSeqNum === entry.firstSeqNum &&
            row.recordCount === entry.records.length,
          "the segment's index row matches its entry",
        );
        const range = entryByteRange(header, row);
        rowOps.push({
          type: "put",
          key: encodeSegmentEntryKey(row.streamId, row.firstSeqNum),
          value: encodeSegmentEntryValue({
            source: "wal",
            objectId: walId,
            offset: range.start,
            length: range.end - range.start,
            recordCount: row.recordCount,
            meteredBytesBefore: meteredBytesBefore[i],
          }),
        });
      }
      await this.writeFile("wal", walId, bytes.parts);
      failpoint("cache.after-file-write");
      rowOps.push({
        type: "put",
        key: encodeSegmentRefsKey(walId),
        value: encodeSegmentRefsValue(rowOps.length),
      });
    }
    await this.kv.write([...options.ops, ...rowOps]);
  }

  /**
   * Writes the files of chunks about to be switched in (before the switch, off the commit chain:
   * no row points at them yet, so the file-before-index order holds and the chain is not held
   * for file writes).
   */
  async writeChunkFiles(
    chunks: readonly { readonly chunkId: number; readonly bytes: Uint8Array }[],
  ): Promise<void> {
    try {
      for (const { chunkId, bytes } of chunks) await this.writeFile("chunk", chunkId, bytes);
    } catch (error) {
      if (diskFaultOf(error) !== undefined) this.onDiskFault?.(error);
      throw error;
    }
  }

  /** Whether files are detached (the degraded mode). */
  get isFilesDetached(): boolean {
    return this.isDetached;
  }

  /**
   * Stops using files (the disk failed): forgets every file without unlinking it (the owner wipes
   * the directory if it can), and serves every entry from the bucket from now on. Lowers the bound
   * to `boundAfter(bytes held now)`, so that a cache larger than its disk settles below it.
   */
  detachFiles(boundAfter: (fileBytes: number) => number): void {
    assert(!this.isDetached, "files are detached once per fault");
    const bound = boundAfter(this.stats.fileBytes);
    assert(Number.isSafeInteger(bound) && bound >= 0, "the lowered bound is a byte count");
    this.stats.fileBytesMax = Math.min(this.stats.fileBytesMax, bound);
    this.isDetached = true;
    this.lru.wal.clear();
    this.lru.chunk.clear();
    this.stats.fileBytes = 0;
    this.kinds = {
      wal: { files: createMemorySegmentFiles(), objectKey: walKey },
      chunk: { files: createMemorySegmentFiles(), objectKey: chunkKey },
    };
  }

  /** Uses files again (the disk recovered): `files` and `chunkFiles` are empty directories. */
  attachFiles(files: SegmentFiles, chunkFiles: SegmentFiles): void {
    assert(this.isDetached, "files are attached only after they were detached");
    assert(this.stats.fileBytes === 0 && this.lru.wal.size + this.lru.chunk.size === 0, "no file");
    this.kinds = {
      wal: { files, objectKey: walKey },
      chunk: { files: chunkFiles, objectKey: chunkKey },
    };
    this.isDetached = false;
  }

  /**
   * Compaction's index switch for one stream (docs/design/bottomless.md), after
   * `writeChunkFiles`: one batch that deletes `replacedKeys` (rows that still exist; a trim may
   * have dropped some meanwhile) with their references and puts one row per chunk entry not
   * wholly below `trimPoint`, with the chunks' reference counts. Unlinks files left unreferenced,
   * the new chunks' included when nothing of them is live any more.
   */
  async switchToChunks(options: {
    readonly streamId: number;
    readonly replacedKeys: readonly Uint8Array[];
    readonly chunks: readonly ChunkToSwitch[];
    readonly trimPoint: SeqNum;
  }): Promise<void> {
    const { streamId, trimPoint, replacedKeys } = options;
    // The rows still there (a trim may have dropped some meanwhile), in one call: this runs on
    // the commit chain, where every await delays the next segment's acknowledgements. No other
    // row can lie between two replaced ones: rows are added only past a stream's tail (commits)
    // or by a switch, and compaction runs one plan per stream at a time.
    const existing: { key: Uint8Array; location: SegmentEntryLocation }[] = [];
    const values = await this.kv.getMany(replacedKeys);
    for (const [i, value] of values.entries()) {
      if (value !== undefined) {
        existing.push({ key: replacedKeys[i]!, location: decodeSegmentEntryValue(value) });
      }
    }
    const ops: KvOp[] = [];
    // Deletions first: a new row may have the key of a replaced one (same first seq num), and a
    // batch applies in order.
    const freed = await this.deleteRowOps(existing, ops);
    for (const chunk of options.chunks) {
      const { chunkId, bytes } = chunk;
      const header = decodeSegmentHeader(bytes);
      assert(header.walId === chunkId, "a chunk's header names its id");
      const rows = decodeSegmentIndex(
        header,
        bytes.subarray(segmentHeaderBytes, segmentHeaderBytes + header.indexBytes),
      );
      assert(rows.length === chunk.meteredBytesBefore.length, "one metered total per chunk entry");
      let count = 0;
      for (const [i, row] of rows.entries()) {
        assert(row.kind === "records" && row.streamId === streamId, "a chunk holds one stream");
        if (row.firstSeqNum + row.recordCount <= trimPoint) continue;
        const range = entryByteRange(header, row);
        ops.push({
          type: "put",
          key: encodeSegmentEntryKey(streamId, row.firstSeqNum),
          value: encodeSegmentEntryValue({
            source: "chunk",
            objectId: chunkId,
            offset: range.start,
            length: range.end - range.start,
            recordCount: row.recordCount,
            meteredBytesBefore: chunk.meteredBytesBefore[i],
          }),
        });
        count += 1;
      }
      if (count === 0) {
        freed.push({ source: "chunk", id: chunkId });
        continue;
      }
      ops.push({
        type: "put",
        key: encodeSegmentRefsKey(chunkId, "chunk"),
        value: encodeSegmentRefsValue(count),
      });
    }
    failpoint("compaction.before-index-switch");
    await this.kv.write(ops);
    this.rowsGeneration += 1;
    await this.unlinkFiles(freed);
  }

  /** Drops the rows of a stream that lie wholly below `trimPoint`, and files left unreferenced. */
  dropRowsBelow(streamId: number, trimPoint: SeqNum): Promise<void> {
    return this.dropRows(
      { gte: encodeSegmentEntryKey(streamId, 0), lt: encodeSegmentEntryKey(streamId, trimPoint) },
      (firstSeqNum, location) => firstSeqNum + location.recordCount <= trimPoint,
    );
  }

  /** Drops the rows of a stream that start at or past `fromSeqNum` (recovery's defensive cleanup). */
  dropRowsFrom(streamId: number, fromSeqNum: SeqNum): Promise<void> {
    return this.dropRows(
      {
        gte: encodeSegmentEntryKey(streamId, fromSeqNum),
        lt: encodeSegmentEntryKey(streamId + 1, 0),
      },
      () => true,
    );
  }

  /** Drops every row of a (removed) stream, and files left unreferenced. */
  dropStream(streamId: number): Promise<void> {
    return this.dropRowsFrom(streamId, 0);
  }

  /**
   * The metered bytes of a stream's records below `seqNum` (a trim point): the `meteredBytesBefore`
   * of the row covering it (or starting at it), plus the metered bytes of that row's records below
   * it, read like any entry (from the file or the bucket). Undefined when no row covers `seqNum`
   * (nothing is indexed there: a trim to the tail drops every row) or the row predates the field.
   */
  async meteredBytesBelow(streamId: number, seqNum: SeqNum): Promise<number | undefined> {
    let covering: { firstSeqNum: SeqNum; location: SegmentEntryLocation } | undefined;
    for await (const [key, value] of this.kv.entries({
      gte: encodeSegmentEntryKey(streamId, 0),
      lte: encodeSegmentEntryKey(streamId, seqNum),
      reverse: true,
      limit: 1,
    })) {
      covering = {
        firstSeqNum: decodeSegmentEntryKey(key).firstSeqNum,
        location: decodeSegmentEntryValue(value),
      };
    }
    if (covering === undefined) return undefined;
    const { firstSeqNum, location } = covering;
    const before = location.meteredBytesBefore;
    if (before === undefined || firstSeqNum + location.recordCount < seqNum) return undefined;
    if (firstSeqNum === seqNum) return before;
    // The row may be replaced under the read (a compaction switch, same records, other rows):
    // whichever row the read finds covering `seqNum` answers, with its own total.
    let below: number | undefined;
    await this.readEntries({
      streamId,
      startSeqNum: firstSeqNum,
      endSeqNum: seqNum + 1,
      visit: (visitedSeqNum, records, visitedBefore) => {
        below = undefined;
        if (visitedBefore === undefined || visitedSeqNum > seqNum) return false;
        const count = seqNum - visitedSeqNum;
        if (count > records.length) return true;
        below = visitedBefore + meteredBytesOfBatch(records.slice(0, count));
        return false;
      },
    });
    return below;
  }

  /**
   * Visits the cached entries of a stream in order, from the one covering `startSeqNum` up to
   * (excluding) entries starting at or past `endSeqNum`, until `visit` returns false. Entries come
   * from their file or, on a miss, from the bucket, always CRC-checked. The entries of one file are
   * read together (`readRunBytesMax`), so a read may fetch up to one batch past where `visit` stops.
   * With `runsAhead` n > 1, up to n runs are read at once (visited in order): a caller that wants
   * every entry of a long range (compaction) then waits for one round trip per n bucket misses,
   * not per miss; a reader with a byte limit keeps the default 1, which reads nothing it skips.
   */
  async readEntries(options: {
    readonly streamId: number;
    readonly startSeqNum: SeqNum;
    readonly endSeqNum: SeqNum;
    /** `meteredBytesBefore` is the row's (`SegmentEntryLocation`). */
    readonly visit: (
      firstSeqNum: SeqNum,
      records: readonly DecodedRecord[],
      meteredBytesBefore: number | undefined,
    ) => boolean;
    readonly runsAhead?: number;
    /** What an earlier read of this stream returned; used only while it is current. */
    readonly rowsAhead?: RowsAhead | undefined;
    /** Entry bytes read ahead (compaction's read window): rows found there are not read again. */
    readonly window?: WindowBytes | undefined;
  }): Promise<RowsAhead | undefined> {
    const { streamId, startSeqNum, endSeqNum, visit } = options;
    // Taken before listing: a row deletion written after this makes the rows listed stale.
    const generation = this.rowsGeneration;
    const kvTarget = this.kvTarget();
    const runsAhead = options.runsAhead ?? 1;
    assert(Number.isInteger(runsAhead) && runsAhead >= 1, "runsAhead is a positive integer");
    const startKey = encodeSegmentEntryKey(streamId, startSeqNum);
    /** The key of the row covering `startSeqNum`, if one starts before it (a look back). */
    const coveringKey = async (): Promise<Uint8Array> => {
      let from = startKey;
      for await (const [key] of this.kv.entries({
        gte: encodeSegmentEntryKey(streamId, 0),
        lte: startKey,
        reverse: true,
        limit: 1,
      })) {
        from = key;
      }
      return from;
    };
    // Rows of one stream that point into one file are consecutive (segments are committed in WAL
    // order), so a run of them is read from the file at once, then decoded and visited one by one.
    type Row = {
      firstSeqNum: SeqNum;
      location: SegmentEntryLocation;
      raw: readonly [Uint8Array, Uint8Array];
    };
    /** The rows of the run `visit` stopped in that it did not reach (`RowsAhead`). */
    let unvisited: readonly Row[] = [];
    let run: Row[] = [];
    let runBytes = 0;
    /** Runs being read, oldest first; each is visited once read and all before it are visited. */
    type Entries = Promise<Promise<readonly DecodedRecord[]>[]>;
    const reading: { rows: Row[]; records: Entries }[] = [];
    /** Entry bytes read ahead for compaction (its read window). */
    const { window } = options;
    /** The last read's WAL read-ahead, while the index has not changed since (else dropped). */
    let currentWalAhead: WalAhead | undefined;
    /** Whether `currentWalAhead` went on to the `RowsAhead` this read returns. */
    let isWalAheadHandedOn = false;
    /** One promise per row (a row past where `visit` stops may fail unseen: never awaited). */
    const readRun = async (rows: readonly Row[]): Entries => {
      const { source, objectId } = rows[0]!.location;
      const fromAhead =
        currentWalAhead === undefined
          ? []
          : await Promise.all(
              rows.map(({ location }) => currentWalAhead?.entries.get(walAheadKeyOf(location))),
            );
      const fromWindow = rows.map(({ location }, i) => window?.get(location) ?? fromAhead[i]);
      const toRead = rows.filter((_, i) => fromWindow[i] === undefined);
      const fromFile =
        toRead.length === 0
          ? []
          : await this.readFileRanges(
              source,
              objectId,
              toRead.map(({ location }) => ({ offset: location.offset, length: location.length })),
            );
      assert(fromFile.length === toRead.length, "one result per range read");
      const fromBucket = await this.getMissingWalRanges(toRead, fromFile);
      let nextFromFile = 0;
      return rows.map(({ firstSeqNum, location }, i) => {
        const k = fromWindow[i] === undefined ? nextFromFile++ : -1;
        const bytes = k < 0 ? fromWindow[i] : (fromFile[k] ?? fromBucket[k]);
        const isFromBucket =
          k < 0
            ? fromAhead[i] !== undefined || window!.isFromBucket(location)
            : fromFile[k] === undefined;
        const records = this.readEntry(streamId, firstSeqNum, location, bytes, isFromBucket);
        records.catch(() => {}); // seen when awaited below, in order
        return records;
      });
    };
    /** Visits the oldest run read; false once `visit` has had enough. */
    const visitOldest = async (): Promise<boolean> => {
      const { rows, records } = reading.shift()!;
      const entries = await records;
      for (let i = 0; i < rows.length; i++) {
        const { firstSeqNum, location } = rows[i]!;
        if (!visit(firstSeqNum, await entries[i]!, location.meteredBytesBefore)) {
          unvisited = rows.slice(i + 1);
          return false;
        }
      }
      return true;
    };
    /** Starts reading the run; visits the oldest once `runsAhead` are being read. */
    const visitRun = async (): Promise<boolean> => {
      const rows = run;
      run = [];
      runBytes = 0;
      if (rows.length > 0) reading.push({ rows, records: readRun(rows) });
      return reading.length < runsAhead || (await visitOldest());
    };
    /**
     * Adds a row to the run, reading and visiting the run it ends: "more" while `visit` wants more,
     * else whether `visit` stopped before this row was added ("stopped-before") or after.
     */
    const takeRow = async (
      key: Uint8Array,
      value: Uint8Array,
    ): Promise<"more" | "stopped-before" | "stopped-after"> => {
      const { firstSeqNum } = decodeSegmentEntryKey(key);
      const location = decodeSegmentEntryValue(value);
      if (firstSeqNum + location.recordCount <= startSeqNum) return "more";
      const head = run[0]?.location;
      if (
        head !== undefined &&
        (head.objectId !== location.objectId ||
          head.source !== location.source ||
          runBytes + location.length > readRunBytesMax) &&
        !(await visitRun())
      ) {
        return "stopped-before";
      }
      run.push({ firstSeqNum, location, raw: [key, value] });
      runBytes += location.length;
      const isRunComplete = runBytes >= readRunBytesMax || run.length >= readRunRowsMax;
      return !isRunComplete || (await visitRun()) ? "more" : "stopped-after";
    };
    const lt = encodeSegmentEntryKey(streamId, endSeqNum);
    /**
     * What a read that `visit` stopped returns as `RowsAhead`: the rows listed and not visited, in
     * order (of the run it stopped in, of the run being gathered, `notTaken`: the row whose
     * `takeRow` stopped, if it was not taken, then the rest of the page). Reads with runs ahead
     * (compaction) carry nothing.
     */
    const carry = async (
      notTaken: readonly (readonly [Uint8Array, Uint8Array])[],
      rest: AsyncIterator<readonly [Uint8Array, Uint8Array]> | undefined,
      pageRowsMax: number,
    ): Promise<RowsAhead | undefined> => {
      if (runsAhead > 1) return undefined;
      const rows = [...unvisited.map((row) => row.raw), ...run.map((row) => row.raw), ...notTaken];
      for (let next = await rest?.next(); next !== undefined && next.done !== true; ) {
        rows.push(next.value);
        next = await rest?.next();
      }
      this.readChunksAhead(rows);
      if (rows.length === 0) return undefined;
      // What was fetched ahead for this read and not used goes on to the next (no GET twice).
      isWalAheadHandedOn = true;
      const walAhead = this.readWalAhead(rows, currentWalAhead);
      return { streamId, generation, kvTarget, rows, pageRowsMax, walAhead };
    };
    // The rows are listed in pages: from the row starting at `startSeqNum`, then after the last
    // row of the page before. A reader that goes on where its last read ended starts at a row
    // (`Storage.readRecordsAhead`), so the look back for a row covering `startSeqNum`, a second
    // iterator, is made only when no row starts there.
    let pageRowsMax = readRowsPageFirst;
    let page: KvRange = { gte: startKey, lt, limit: pageRowsMax };
    /** Whether the first row listed was checked to start at `startSeqNum` (once). */
    let isStartChecked = false;
    try {
      // Rows an earlier read listed past where it stopped, if the index has not lost a row since:
      // they stand for the first page.
      const ahead = this.currentRowsAhead(options.rowsAhead, streamId, startSeqNum);
      // What the last read fetched ahead is this read's (then handed on or dropped: see finally).
      if (window === undefined) currentWalAhead = ahead?.walAhead;
      /** Whether a carried row lies past `endSeqNum`: then there is nothing more to list. */
      let isPastEnd = false;
      if (ahead !== undefined) {
        isStartChecked = true;
        for (const [i, row] of ahead.rows.entries()) {
          if (decodeSegmentEntryKey(row[0]).firstSeqNum >= endSeqNum) {
            isPastEnd = true;
            break;
          }
          const taken = await takeRow(row[0], row[1]);
          if (taken !== "more") {
            const rest = ahead.rows.slice(taken === "stopped-before" ? i : i + 1);
            return await carry(rest, undefined, ahead.pageRowsMax);
          }
        }
        pageRowsMax = Math.min(2 * ahead.pageRowsMax, readRowsPageMax);
        page = { gt: ahead.rows.at(-1)![0], lt, limit: pageRowsMax };
      }
      while (!isPastEnd) {
        let pageRows = 0;
        let lastKey: Uint8Array | undefined;
        let isLookBackNeeded = false;
        const rows = this.kv.entries(page)[Symbol.asyncIterator]();
        try {
          for (let next = await rows.next(); next.done !== true; next = await rows.next()) {
            const [key, value] = next.value;
            if (!isStartChecked) {
              isStartChecked = true;
              isLookBackNeeded = decodeSegmentEntryKey(key).firstSeqNum !== startSeqNum;
              if (isLookBackNeeded) break;
            }
            pageRows += 1;
            lastKey = key;
            const taken = await takeRow(key, value);
            if (taken !== "more") {
              return await carry(taken === "stopped-before" ? [next.value] : [], rows, pageRowsMax);
            }
          }
        } finally {
          await rows.return?.();
        }
        if (!isStartChecked) {
          isStartChecked = true;
          isLookBackNeeded = true;
        }
        if (isLookBackNeeded) {
          // No row starts at `startSeqNum`: list from the row covering it (or from it, if none).
          page = { gte: await coveringKey(), lt, limit: pageRowsMax };
          continue;
        }
        if (lastKey === undefined || pageRows < pageRowsMax) break;
        pageRowsMax = Math.min(2 * pageRowsMax, readRowsPageMax);
        page = { gt: lastKey, lt, limit: pageRowsMax };
      }
      if (!(await visitRun())) return await carry([], undefined, pageRowsMax);
      while (reading.length > 0) if (!(await visitOldest())) return undefined;
      return undefined;
    } finally {
      // Runs read ahead of an early stop (or an error): nobody will look at their outcome.
      for (const { records } of reading.splice(0)) records.catch(() => {});
      if (!isWalAheadHandedOn) options.rowsAhead?.walAhead?.release();
      else if (options.rowsAhead?.walAhead !== currentWalAhead)
        options.rowsAhead?.walAhead?.release();
    }
  }

  /** `rowsAhead` if it may stand for the index: same store, no row lost since, starts here. */
  private currentRowsAhead(
    rowsAhead: RowsAhead | undefined,
    streamId: number,
    startSeqNum: SeqNum,
  ): RowsAhead | undefined {
    if (
      rowsAhead === undefined ||
      rowsAhead.streamId !== streamId ||
      rowsAhead.generation !== this.rowsGeneration ||
      rowsAhead.kvTarget !== this.kvTarget()
    ) {
      return undefined;
    }
    // Rows wholly below the start are skipped (`takeRow`); the first other one must start there.
    for (const [key, value] of rowsAhead.rows) {
      const { firstSeqNum } = decodeSegmentEntryKey(key);
      if (firstSeqNum + decodeSegmentEntryValue(value).recordCount <= startSeqNum) continue;
      return firstSeqNum === startSeqNum ? rowsAhead : undefined;
    }
    return undefined;
  }

  /** The store the index is in now (the cache guard switches it between LevelDB and memory). */
  private kvTarget(): KvStore {
    return this.kv instanceof SwitchableKvStore ? this.kv.target : this.kv;
  }

  /**
   * Unlinks every file that no reference row names (recovery, after replay), and accounts the
   * rest against the bound.
   */
  async sweepOrphanFiles(): Promise<void> {
    for (const source of ["wal", "chunk"] as const) {
      const { files } = this.kinds[source];
      for (const id of await files.list()) {
        if ((await this.kv.get(encodeSegmentRefsKey(id, source))) !== undefined) continue;
        await files.delete(id);
        this.forgetFile(source, id);
        this.stats.filesDeleted += 1;
      }
    }
  }

  /** Unlinks every file (the LevelDB half is being cleared by the caller). */
  async clearFiles(): Promise<void> {
    await this.kinds.wal.files.clear();
    await this.kinds.chunk.files.clear();
    this.lru.wal.clear();
    this.lru.chunk.clear();
    this.stats.fileBytes = 0;
  }

  /** The bytes of each range of a cached file (undefined where missing), marking it used. */
  private async readFileRanges(
    source: ObjectSource,
    id: number,
    ranges: readonly ByteRange[],
  ): Promise<readonly (Uint8Array | undefined)[]> {
    const { files } = this.kinds[source];
    // Detached, nothing is on disk: every entry is a range GET (a chunk too: a whole download
    // kept nowhere would be fetched again by the next run).
    if (this.isDetached) return ranges.map(() => undefined);
    const bytes = this.lru[source].get(id);
    if (bytes !== undefined) {
      // Marked as used: to the young end of its order.
      this.lru[source].delete(id);
      this.lru[source].set(id, bytes);
    } else if (source === "chunk") {
      // Not cached (evicted, or never here after a checkpoint load): download the whole chunk
      // once, which is the read-ahead of a catch-up reader; the ranges then come from the file.
      const chunk = await this.downloadChunk(id);
      if (chunk === undefined) return ranges.map(() => undefined);
      return ranges.map(({ offset, length }) =>
        offset + length <= chunk.length ? chunk.subarray(offset, offset + length) : undefined,
      );
    }
    return files.readRanges(id, ranges).catch(() => ranges.map(() => undefined));
  }

  /**
   * Reads the entries at `locations` (WAL rows of many streams) each object once, from its cache
   * file or else by ranged GETs of spans: compaction's read window (read-window.ts).
   */
  readWindow(locations: readonly SegmentEntryLocation[]): Promise<WindowBytes> {
    return readWindow(locations, {
      readFile: (objectId, ranges) => this.readFileRanges("wal", objectId, ranges),
      getRange: (objectId, start, end) => this.store.get(walKey(objectId), { start, end }),
    });
  }

  /**
   * Starts downloading the chunks that the rows a read listed past where it stopped point into
   * (the next batches of a catch-up reader), within `chunkReadAheadBytes` of rows and a share of
   * the cache bound, at most `chunkReadAheadDownloadsMax` downloads in flight: the reader's next
   * batches then find them downloading or cached instead of waiting for a GET at each chunk.
   */
  private readChunksAhead(rows: readonly (readonly [Uint8Array, Uint8Array])[]): void {
    if (this.isDetached) return;
    const aheadBytesMax = Math.min(
      chunkReadAheadBytes,
      this.stats.fileBytesMax * chunkReadAheadShareOfCache,
    );
    let aheadBytes = 0;
    for (const [, value] of rows) {
      if (this.downloads.size >= chunkReadAheadDownloadsMax) return;
      const location = decodeSegmentEntryValue(value);
      aheadBytes += location.length;
      if (aheadBytes > aheadBytesMax) return;
      const { source, objectId } = location;
      // A stream's chunk rows come before its WAL rows: none follows a WAL row, and a reader of
      // WAL rows need not have up to 16 MiB of them decoded here at every batch.
      if (source === "wal") return;
      if (this.lru.chunk.has(objectId) || this.downloads.has(objectId)) continue;
      this.stats.chunkReadAheads += 1;
      // A failure is the reader's to see, when its own read reaches this chunk (and retries).
      this.downloadChunk(objectId).catch(() => {});
    }
  }

  /**
   * Starts fetching the entries of the first `walReadAheadBytes` of `rows` (the rows a read listed
   * past where it stopped) whose WAL files are not cached, for the reader's next reads: one ranged
   * GET per span of an object's entries, each entry its own promise, so that a read waits only for
   * the entries it takes. What `previous` (the last read-ahead) is already bringing is carried
   * over, and the rest of it dropped. Within `walReadAheadBytesMax` for all readers; released when
   * the reader's reads stop handing it on, or after `walReadAheadHoldMs`.
   */
  private readWalAhead(
    rows: readonly (readonly [Uint8Array, Uint8Array])[],
    previous: WalAhead | undefined,
  ): WalAhead | undefined {
    const wanted: SegmentEntryLocation[] = [];
    let bytes = 0;
    for (const [, value] of rows) {
      const location = decodeSegmentEntryValue(value);
      if (location.source !== "wal") continue;
      if (bytes + location.length > walReadAheadBytes && bytes > 0) break;
      bytes += location.length;
      // A cached file is read at its turn (a pread is cheaper than holding its bytes meanwhile);
      // a reader whose next entry is cached is reading hot data: no read-ahead, and no scan of
      // up to 8 MiB of rows at every batch (a later read starts one if it reaches evicted rows).
      if (!this.isDetached && this.lru.wal.has(location.objectId)) {
        if (wanted.length === 0) break;
        continue;
      }
      wanted.push(location);
    }
    const entries = new Map<string, Promise<Uint8Array | undefined>>();
    let toFetch: SegmentEntryLocation[] = [];
    let held = 0;
    for (const location of wanted) {
      const key = walAheadKeyOf(location);
      const carried = previous?.entries.get(key);
      if (carried !== undefined) entries.set(key, carried);
      else toFetch.push(location);
      held += location.length;
    }
    // The previous one's entries still wanted are this one's now; the rest go with it.
    previous?.release();
    if (this.stats.walReadAheadBytes + held > walReadAheadBytesMax) {
      // Over the budget: carry what is there, fetch nothing more.
      for (const location of toFetch) held -= location.length;
      toFetch = [];
    }
    if (entries.size === 0 && toFetch.length === 0) return undefined;
    this.stats.walReadAheadBytes += held;
    this.stats.walReadAheadEntries += toFetch.length;
    // One GET per span of an object's entries (`getRangesInSpans`), each entry its own promise,
    // so that a read waits only for the entries it takes.
    const byObject = new Map<number, SegmentEntryLocation[]>();
    for (const location of toFetch) {
      const list = byObject.get(location.objectId);
      if (list === undefined) byObject.set(location.objectId, [location]);
      else list.push(location);
    }
    for (const [objectId, locations] of byObject) {
      locations.sort((a, b) => a.offset - b.offset);
      const objectKey = walKey(objectId);
      const spans = getRangesInSpans(
        locations.map(({ offset, length }) => ({ offset, length })),
        (start, end) => this.store.get(objectKey, { start, end }),
      );
      locations.forEach((location, i) => {
        entries.set(
          walAheadKeyOf(location),
          spans.then((fetched) => fetched[i]),
        );
      });
    }
    let isReleased = false;
    const release = (): void => {
      if (isReleased) return;
      isReleased = true;
      clearTimeout(expiry);
      entries.clear();
      this.stats.walReadAheadBytes -= held;
    };
    const expiry = setTimeout(release, walReadAheadHoldMs);
    expiry.unref();
    return { entries, release };
  }

  /** Downloads a chunk into the cache (one GET shared by concurrent misses). */
  private downloadChunk(chunkId: number): Promise<Uint8Array | undefined> {
    const pending = this.downloads.get(chunkId);
    if (pending !== undefined) return pending;
    const download = (async () => {
      let bytes: Uint8Array | undefined;
      try {
        bytes = await this.store.get(chunkKey(chunkId));
      } catch {
        return undefined; // each entry then retries by range GET, with backoff
      }
      if (bytes === undefined) return undefined;
      this.stats.chunkDownloads += 1;
      // Only a chunk some row still references is worth keeping (a trim may have freed it).
      if ((await this.kv.get(encodeSegmentRefsKey(chunkId, "chunk"))) !== undefined) {
        try {
          await this.writeFile("chunk", chunkId, bytes);
        } catch (error) {
          // The read is served from the bytes downloaded; only keeping them failed.
          if (diskFaultOf(error) === undefined) throw error;
          this.onDiskFault?.(error);
        }
      }
      return bytes;
    })().finally(() => this.downloads.delete(chunkId));
    this.downloads.set(chunkId, download);
    return download;
  }

  private async writeFile(source: ObjectSource, id: number, body: ObjectBody): Promise<void> {
    if (this.isDetached) return;
    // Counted before it is written, and room made first (older files go), so that concurrent
    // writers see each other and the files never exceed the bound, not even while written.
    this.accountFile(source, id, bodyBytes(body));
    await this.evict({ source, id });
    await this.kinds[source].files.write(id, body);
    this.stats.filesWritten += 1;
  }

  private accountFile(source: ObjectSource, id: number, bytes: number): void {
    const known = this.lru[source].get(id);
    if (known !== undefined) {
      this.lru[source].delete(id);
      this.stats.fileBytes -= known;
    }
    this.lru[source].set(id, bytes);
    this.stats.fileBytes += bytes;
  }

  private forgetFile(source: ObjectSource, id: number): void {
    const known = this.lru[source].get(id);
    if (known === undefined) return;
    this.lru[source].delete(id);
    this.stats.fileBytes -= known;
    assert(this.stats.fileBytes >= 0, "cache file bytes never go negative");
  }

  /**
   * Unlinks the least recently used files until the cache is within its bound; never `keep`
   * (the file being written: a single file larger than the bound stays until the next one).
   */
  private async evict(keep?: ObjectRef): Promise<void> {
    // Victims are chosen and uncounted at once (no await in between), so concurrent writers
    // never pick the same file and the count never passes the bound; then they are unlinked,
    // before the caller writes its file.
    const victims: ObjectRef[] = [];
    while (this.stats.fileBytes > this.stats.fileBytesMax) {
      const victim = this.oldestFile(keep);
      if (victim === undefined) break;
      this.forgetFile(victim.source, victim.id);
      victims.push(victim);
    }
    for (const { source, id } of victims) {
      await this.kinds[source].files.delete(id);
      this.stats.filesEvicted += 1;
    }
  }

  /** The least recently used chunk file, else WAL file, other than `keep`. */
  private oldestFile(keep: ObjectRef | undefined): ObjectRef | undefined {
    for (const source of ["chunk", "wal"] as const) {
      for (const id of this.lru[source].keys()) {
        if (source !== keep?.source || id !== keep.id) return { source, id };
      }
    }
    return undefined;
  }

  /**
   * Adds to `ops` the deletion of `rows` (as the index holds them now) with their reference
   * counts decremented (or deleted); returns the objects left with no reference (their files go
   * once the batch is written).
   */
  private async deleteRowOps(
    rows: readonly { readonly key: Uint8Array; readonly location: SegmentEntryLocation }[],
    ops: KvOp[],
  ): Promise<ObjectRef[]> {
    const decrements = new Map<string, { source: ObjectSource; id: number; count: number }>();
    for (const { key, location } of rows) {
      const { source, objectId } = location;
      ops.push({ type: "del", key });
      const name = `${source}:${objectId}`;
      const known = decrements.get(name);
      if (known === undefined) decrements.set(name, { source, id: objectId, count: 1 });
      else known.count += 1;
    }
    const freed: ObjectRef[] = [];
    const objects = [...decrements.values()];
    const refsKeys = objects.map(({ source, id }) => encodeSegmentRefsKey(id, source));
    const counts = await this.kv.getMany(refsKeys);
    for (const [i, { source, id, count: decrement }] of objects.entries()) {
      const refsKey = refsKeys[i]!;
      const stored = counts[i];
      // A missing or short count can only come from a damaged cache: treat the file as freed
      // (a later read of a row still pointing into it is a miss, served from the bucket).
      const count = stored === undefined ? 0 : decodeSegmentRefsValue(stored);
      if (count > decrement) {
        ops.push({ type: "put", key: refsKey, value: encodeSegmentRefsValue(count - decrement) });
      } else {
        ops.push({ type: "del", key: refsKey });
        freed.push({ source, id });
      }
    }
    return freed;
  }

  /** Unlinks files whose last reference is gone (uncounted first, then removed side by side). */
  private async unlinkFiles(freed: readonly ObjectRef[]): Promise<void> {
    for (const { source, id } of freed) this.forgetFile(source, id);
    if (this.isDetached) return;
    this.stats.filesDeleted += freed.length;
    await Promise.all(freed.map(({ source, id }) => this.kinds[source].files.delete(id)));
  }

  /**
   * For a run of WAL rows whose cache file lacks some (evicted, or a detached cache), the missing
   * entries from the bucket with one ranged GET per span of them (`getRangesInSpans`) rather than
   * one per entry; `undefined` where the file had the entry, or for a chunk's rows (a chunk miss
   * downloads the whole chunk).
   */
  private async getMissingWalRanges(
    rows: readonly { readonly location: SegmentEntryLocation }[],
    fromFile: readonly (Uint8Array | undefined)[],
  ): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = rows.map(() => undefined);
    const missing = rows
      .map((row, i) => ({ location: row.location, i }))
      .filter(({ location, i }) => location.source === "wal" && fromFile[i] === undefined);
    // One missing entry is left to `readEntry`'s own range GET, with its retries.
    if (missing.length < 2) return out;
    missing.sort((a, b) => a.location.offset - b.location.offset);
    const objectKey = walKey(missing[0]!.location.objectId);
    const fetched = await getRangesInSpans(
      missing.map(({ location }) => ({ offset: location.offset, length: location.length })),
      (start, end) => this.store.get(objectKey, { start, end }),
    );
    missing.forEach(({ i }, k) => {
      out[i] = fetched[k];
    });
    return out;
  }

  /**
   * The records of one entry from `fromFile` (its bytes as read from the cache file, `undefined`
   * when the file is missing or short; `isFromBucket` when a GET brought them, a miss) if they
   * pass the CRC, else from the bucket.
   */
  private async readEntry(
    streamId: number,
    firstSeqNum: SeqNum,
    location: SegmentEntryLocation,
    fromFile: Uint8Array | undefined,
    isFromBucket = false,
  ): Promise<readonly DecodedRecord[]> {
    const row = {
      kind: "records" as const,
      streamId,
      firstSeqNum,
      recordCount: location.recordCount,
      bodyOffset: 0,
      payloadBytes: location.length - 4,
    };
    const decode = (bytes: Uint8Array | undefined): readonly DecodedRecord[] | undefined => {
      if (bytes === undefined || bytes.length !== location.length) return undefined;
      try {
        const entry = decodeSegmentEntry(row, bytes);
        assert(entry.kind === "records", "a records row decodes to a records entry");
        return entry.records;
      } catch (error) {
        if (error instanceof SegmentFormatError) return undefined;
        throw error;
      }
    };
    const { source, objectId, offset, length } = location;
    const cached = decode(fromFile);
    if (cached !== undefined) {
      if (isFromBucket) this.stats.entryMisses += 1;
      else this.stats.entryHits += 1;
      return cached;
    }
    this.stats.entryMisses += 1;
    const objectKey = this.kinds[source].objectKey(objectId);
    const where = `object=\`${objectKey}\` streamId=\`${streamId}\` firstSeqNum=\`${firstSeqNum}\``;
    let fetched: Uint8Array | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        fetched = await this.store.get(objectKey, { start: offset, end: offset + length });
        break;
      } catch (error) {
        if (attempt === missReadAttemptsMax) {
          throw new CacheReadError(`cache miss and segment read failed. ${where}`, {
            cause: error,
          });
        }
        await this.clock.sleep(Math.min(segmentPutRetryDelayMsMax, 10 * 2 ** (attempt - 1)));
      }
    }
    const records = decode(fetched);
    if (records === undefined) {
      throw new CacheReadError(`cached entry unreadable from the cache and the bucket. ${where}`);
    }
    return records;
  }

  /**
   * Deletes the rows in `range` that `isDropped` selects (stopping at the first row it keeps:
   * rows are in seq-num order), with their references, in batches; unlinks files left with none.
   */
  private async dropRows(
    range: { readonly gte: Uint8Array; readonly lt: Uint8Array },
    isDropped: (firstSeqNum: SeqNum, location: SegmentEntryLocation) => boolean,
  ): Promise<void> {
    let gte = range.gte;
    for (;;) {
      const dropped: { key: Uint8Array; location: SegmentEntryLocation }[] = [];
      let isDone = true;
      for await (const [key, value] of this.kv.entries({ gte, lt: range.lt })) {
        const { firstSeqNum } = decodeSegmentEntryKey(key);
        const location = decodeSegmentEntryValue(value);
        if (!isDropped(firstSeqNum, location)) break;
        if (dropped.length === dropRowsPerBatchMax) {
          isDone = false;
          break;
        }
        dropped.push({ key, location });
      }
      if (dropped.length === 0) return;
      const ops: KvOp[] = [];
      const freed = await this.deleteRowOps(dropped, ops);
      await this.kv.write(ops);
      this.rowsGeneration += 1;
      await this.unlinkFiles(freed);
      if (isDone) return;
      const last = dropped.at(-1)!.key;
      gte = new Uint8Array(last.length + 1);
      gte.set(last);
    }
  }
}
