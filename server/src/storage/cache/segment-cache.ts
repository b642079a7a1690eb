/**
 * The record half of the local cache (docs/design/storage.md "The local cache"): durable segments
 * kept as files (`SegmentFiles`), indexed in LevelDB by one SegmentEntry row per records entry,
 * with a SegmentRefs row per file counting the rows that point into it.
 *
 * Invariants:
 * - A segment's file write completes before the LevelDB batch that indexes it is issued, and the
 *   batch that drops a file's last reference is written before the file is unlinked.
 * - SegmentEntry rows and the SegmentRefs counts they imply change in the same batch.
 * - Callers serialize every mutation (the storage's commit chain, or recovery, which runs alone):
 *   reference counts are read, modified and written without a lock.
 * - Bytes read back are never trusted: each entry is checked against its CRC32C, from the file
 *   or, on a miss, from the bucket; what fails both is an error, never data.
 *
 * Fault model: a process crash between a file write and its batch leaves a file that the replay
 * of that segment overwrites (same id, same bytes); between a batch and an unlink, an orphan file
 * that `sweepOrphanFiles` removes at recovery. A machine crash or a damaged disk can leave rows
 * pointing at missing or wrong bytes: cache misses, served by a range GET of `wal/<walId>`.
 */
import { assert } from "../../core/assert.js";
import type { Clock } from "../../core/clock.js";
import { failpoint } from "../../core/failpoints.js";
import {
  readBatchBytesMax,
  readBatchCountMax,
  segmentPutRetryDelayMsMax,
} from "../../core/limits.js";
import type { SeqNum } from "../../core/records.js";
import {
  decodeSegmentEntryKey,
  decodeSegmentEntryValue,
  decodeSegmentRefsValue,
  encodeSegmentEntryKey,
  encodeSegmentEntryValue,
  encodeSegmentRefsKey,
  encodeSegmentRefsValue,
  type SegmentEntryLocation,
} from "../kv/keys.js";
import type { KvOp, KvStore } from "../kv/kv-store.js";
import { walKey } from "../object-keys.js";
import type { ObjectStore } from "../object-store/object-store.js";
import {
  decodeSegmentEntry,
  decodeSegmentHeader,
  decodeSegmentIndex,
  entryByteRange,
  type SegmentEntry,
  SegmentFormatError,
  segmentHeaderBytes,
} from "../segment/format.js";
import type { DecodedRecord } from "../segment/record-codec.js";
import type { SegmentFiles } from "./segment-files.js";

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
 * A read gathers consecutive rows that point into one file until their entries hold at least this
 * many bytes, then reads them from the file in one call (one open, one pread per span, one close)
 * instead of one open per entry: a catch-up read of one-record entries would otherwise open the
 * same file a hundred times. One read batch's worth, so a read that stops early (its caller's
 * byte or count limit) has read ahead at most one batch plus one entry.
 */
const readRunBytesMax = readBatchBytesMax;

/** A run also ends at this many rows: a read batch never needs more entries than records. */
const readRunRowsMax = readBatchCountMax;

/** Rows deleted per LevelDB batch when a trim or a removal drops many (each batch is consistent). */
const dropRowsPerBatchMax = 4096;

/** Counters for metrics and tests. */
export interface SegmentCacheStats {
  /** Segment files written. */
  filesWritten: number;
  /** Segment files unlinked (no reference left, or orphans swept at recovery). */
  filesDeleted: number;
  /** Entries read from their file with a good CRC. */
  entryHits: number;
  /** Entries whose file was missing, short or failed the CRC, read from the bucket instead. */
  entryMisses: number;
}

export class SegmentCache {
  readonly stats: SegmentCacheStats = {
    filesWritten: 0,
    filesDeleted: 0,
    entryHits: 0,
    entryMisses: 0,
  };

  constructor(
    private readonly kv: KvStore,
    private readonly files: SegmentFiles,
    private readonly store: ObjectStore,
    private readonly clock: Clock,
  ) {}

  /**
   * Commits one durable segment: writes its file when it indexes at least one entry, then one
   * LevelDB batch with `ops` (metadata, tails, marker), the index rows and the file's reference
   * count. `isIndexed[i]` says whether entry i (a records entry of a stream that was live when it
   * was applied) gets a row.
   */
  async commitSegment(options: {
    readonly walId: number;
    readonly bytes: Uint8Array;
    readonly entries: readonly SegmentEntry[];
    readonly isIndexed: readonly boolean[];
    readonly ops: readonly KvOp[];
  }): Promise<void> {
    const { walId, bytes, entries, isIndexed } = options;
    assert(isIndexed.length === entries.length, "one index flag per entry");
    const rowOps: KvOp[] = [];
    if (isIndexed.some((flag) => flag)) {
      const header = decodeSegmentHeader(bytes);
      assert(header.walId === walId, "the segment bytes are the segment's");
      const rows = decodeSegmentIndex(
        header,
        bytes.subarray(segmentHeaderBytes, segmentHeaderBytes + header.indexBytes),
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
            walId,
            offset: range.start,
            length: range.end - range.start,
            recordCount: row.recordCount,
          }),
        });
      }
      await this.files.write(walId, bytes);
      this.stats.filesWritten += 1;
      failpoint("cache.after-file-write");
      rowOps.push({
        type: "put",
        key: encodeSegmentRefsKey(walId),
        value: encodeSegmentRefsValue(rowOps.length),
      });
    }
    await this.kv.write([...options.ops, ...rowOps]);
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
   * Visits the cached entries of a stream in order, from the one covering `startSeqNum` up to
   * (excluding) entries starting at or past `endSeqNum`, until `visit` returns false. Entries come
   * from their file or, on a miss, from the bucket, always CRC-checked. The entries of one file are
   * read together (`readRunBytesMax`), so a read may fetch up to one batch past where `visit` stops.
   */
  async readEntries(options: {
    readonly streamId: number;
    readonly startSeqNum: SeqNum;
    readonly endSeqNum: SeqNum;
    readonly visit: (firstSeqNum: SeqNum, records: readonly DecodedRecord[]) => boolean;
  }): Promise<void> {
    const { streamId, startSeqNum, endSeqNum, visit } = options;
    let from = encodeSegmentEntryKey(streamId, startSeqNum);
    for await (const [key] of this.kv.entries({
      gte: encodeSegmentEntryKey(streamId, 0),
      lte: from,
      reverse: true,
      limit: 1,
    })) {
      from = key;
    }
    // Rows of one stream that point into one file are consecutive (segments are committed in WAL
    // order), so a run of them is read from the file at once, then decoded and visited one by one.
    let run: { firstSeqNum: SeqNum; location: SegmentEntryLocation }[] = [];
    let runBytes = 0;
    /** Reads and visits the run; false once `visit` has had enough. */
    const visitRun = async (): Promise<boolean> => {
      const rows = run;
      run = [];
      runBytes = 0;
      if (rows.length === 0) return true;
      const walId = rows[0]!.location.walId;
      const fromFile = await this.files
        .readRanges(
          walId,
          rows.map(({ location }) => ({ offset: location.offset, length: location.length })),
        )
        .catch(() => rows.map(() => undefined));
      assert(fromFile.length === rows.length, "one result per range read");
      for (let i = 0; i < rows.length; i++) {
        const { firstSeqNum, location } = rows[i]!;
        const records = await this.readEntry(streamId, firstSeqNum, location, fromFile[i]);
        if (!visit(firstSeqNum, records)) return false;
      }
      return true;
    };
    for await (const [key, value] of this.kv.entries({
      gte: from,
      lt: encodeSegmentEntryKey(streamId, endSeqNum),
    })) {
      const { firstSeqNum } = decodeSegmentEntryKey(key);
      const location = decodeSegmentEntryValue(value);
      if (firstSeqNum + location.recordCount <= startSeqNum) continue;
      if (run.length > 0 && run[0]!.location.walId !== location.walId) {
        if (!(await visitRun())) return;
      }
      run.push({ firstSeqNum, location });
      runBytes += location.length;
      if ((runBytes >= readRunBytesMax || run.length >= readRunRowsMax) && !(await visitRun())) {
        return;
      }
    }
    await visitRun();
  }

  /** Unlinks every segment file that no SegmentRefs row references (recovery, after replay). */
  async sweepOrphanFiles(): Promise<void> {
    for (const walId of await this.files.list()) {
      if ((await this.kv.get(encodeSegmentRefsKey(walId))) !== undefined) continue;
      await this.files.delete(walId);
      this.stats.filesDeleted += 1;
    }
  }

  /** Unlinks every segment file (the LevelDB half is being cleared by the caller). */
  clearFiles(): Promise<void> {
    return this.files.clear();
  }

  /**
   * The records of one entry from `fromFile` (its bytes as read from the cache file, `undefined`
   * when the file is missing or short) if they pass the CRC, else from the bucket.
   */
  private async readEntry(
    streamId: number,
    firstSeqNum: SeqNum,
    location: SegmentEntryLocation,
    fromFile: Uint8Array | undefined,
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
    const { walId, offset, length } = location;
    const cached = decode(fromFile);
    if (cached !== undefined) {
      this.stats.entryHits += 1;
      return cached;
    }
    this.stats.entryMisses += 1;
    const where = `walId=\`${walId}\` streamId=\`${streamId}\` firstSeqNum=\`${firstSeqNum}\``;
    let fetched: Uint8Array | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        fetched = await this.store.get(walKey(walId), { start: offset, end: offset + length });
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
      const dropped: { key: Uint8Array; walId: number }[] = [];
      let isDone = true;
      for await (const [key, value] of this.kv.entries({ gte, lt: range.lt })) {
        const { firstSeqNum } = decodeSegmentEntryKey(key);
        const location = decodeSegmentEntryValue(value);
        if (!isDropped(firstSeqNum, location)) break;
        if (dropped.length === dropRowsPerBatchMax) {
          isDone = false;
          break;
        }
        dropped.push({ key, walId: location.walId });
      }
      if (dropped.length === 0) return;
      const decrements = new Map<number, number>();
      for (const { walId } of dropped) decrements.set(walId, (decrements.get(walId) ?? 0) + 1);
      const ops: KvOp[] = dropped.map(({ key }) => ({ type: "del", key }));
      const unreferenced: number[] = [];
      for (const [walId, decrement] of decrements) {
        const refsKey = encodeSegmentRefsKey(walId);
        const stored = await this.kv.get(refsKey);
        // A missing or short count can only come from a damaged cache: treat the file as freed
        // (a later read of a row still pointing into it is a miss, served from the bucket).
        const count = stored === undefined ? 0 : decodeSegmentRefsValue(stored);
        if (count > decrement) {
          ops.push({ type: "put", key: refsKey, value: encodeSegmentRefsValue(count - decrement) });
        } else {
          ops.push({ type: "del", key: refsKey });
          unreferenced.push(walId);
        }
      }
      await this.kv.write(ops);
      for (const walId of unreferenced) {
        await this.files.delete(walId);
        this.stats.filesDeleted += 1;
      }
      if (isDone) return;
      const last = dropped.at(-1)!.key;
      gte = new Uint8Array(last.length + 1);
      gte.set(last);
    }
  }
}
