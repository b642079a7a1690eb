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
import { readBatchBytesMax, readBatchCountMax } from "../core/limits.js";
import type { Random } from "../core/random.js";
import type { SeqNum } from "../core/records.js";
import type { SegmentCache } from "./cache/segment-cache.js";
import type { DurableState } from "./durable-state.js";
import {
  decodeSegmentEntryKey,
  decodeSegmentEntryValue,
  KeyType,
  keyTypeRange,
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

/** Record bytes one job compacts at most; the rest waits for the next job. */
export const compactionBytesPerJobMax = 512 << 20;

/** The pace of compaction's reads and uploads (a bandwidth budget beside the appends). */
export const compactionBytesPerSecondMax = 128 << 20;

/** Attempts of a chunk PUT before the job gives up (the next job starts over). */
const chunkPutAttemptsMax = 5;

export interface CompactionStats {
  chunksWritten: number;
  chunkBytesWritten: number;
  /** Record bytes (entry payloads) read from WAL rows and rewritten into chunks. */
  bytesCompacted: number;
}

/** One index row of a stream as the plan reads it. */
interface PlanRow {
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
}

export class Compactor {
  readonly stats: CompactionStats = { chunksWritten: 0, chunkBytesWritten: 0, bytesCompacted: 0 };
  private nextChunkCounter = 0;
  /** The first seq num each chunk object holds (its own index's), learned when needed. */
  private readonly chunkStartSeqNums = new Map<number, SeqNum>();

  constructor(private readonly host: CompactionHost) {}

  /** Every chunk id below this has been allocated (the checkpoint's `chunkIdBound`). */
  get chunkIdBound(): number {
    return chunkIdOf(this.host.writerEpoch, this.nextChunkCounter);
  }

  /** One compaction pass over every stream; returns the record bytes it moved. */
  async compact(): Promise<number> {
    const { state } = this.host;
    let budget = compactionBytesPerJobMax;
    for (const [streamId, rows] of await this.rowsByStream()) {
      if (budget <= 0 || !this.host.isReady()) break;
      if (!state.streamsById.has(streamId)) continue; // removal in flight: its rows go anyway
      const { trimPoint } = state.tailOf(streamId);
      for (const plan of await this.planStream(rows, trimPoint)) {
        budget -= await this.rewrite(streamId, plan, trimPoint);
      }
    }
    return compactionBytesPerJobMax - budget;
  }

  /** Every SegmentEntry row, by stream, in seq-num order. */
  private async rowsByStream(): Promise<Map<number, PlanRow[]>> {
    const byStream = new Map<number, PlanRow[]>();
    for await (const [key, value] of this.host.kv.entries(keyTypeRange(KeyType.SegmentEntry))) {
      const { streamId, firstSeqNum } = decodeSegmentEntryKey(key);
      const row = { key, firstSeqNum, location: decodeSegmentEntryValue(value) };
      const rows = byStream.get(streamId);
      if (rows === undefined) byStream.set(streamId, [row]);
      else rows.push(row);
    }
    return byStream;
  }

  /**
   * The rows of one stream to rewrite: its WAL rows with the trailing chunks they merge with, and
   * its first chunk when that chunk still holds trimmed records; each plan is contiguous.
   */
  private async planStream(rows: readonly PlanRow[], trimPoint: SeqNum): Promise<PlanRow[][]> {
    // Group rows by object, in order: [chunk…, chunk…, wal…].
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
    const bytesOf = (group: readonly PlanRow[]): number =>
      group.reduce((sum, row) => sum + row.location.length, 0);
    const plans: PlanRow[][] = [];
    const tail = groups.at(-1);
    if (tail !== undefined && tail[0]!.location.source === "wal") {
      const merged = [groups.pop()!];
      let size = bytesOf(tail);
      // Binary counter: merge the previous chunk while it is no larger than what is written.
      for (;;) {
        const previous = groups.at(-1);
        if (previous === undefined || previous[0]!.location.source !== "chunk") break;
        const previousBytes = bytesOf(previous);
        if (previousBytes > size || size + previousBytes > chunkBytesTarget) break;
        merged.unshift(groups.pop()!);
        size += previousBytes;
      }
      plans.push(merged.flat());
    }
    // What is left is chunks only; the first one may still hold records below the trim point.
    const first = groups[0];
    if (first !== undefined && trimPoint > 0) {
      const startSeqNum = await this.chunkStartSeqNum(first[0]!.location.objectId);
      if (startSeqNum < trimPoint) plans.unshift(first);
    }
    for (const plan of plans) {
      for (let i = 1; i < plan.length; i++) {
        assert(
          plan[i]!.firstSeqNum === plan[i - 1]!.firstSeqNum + plan[i - 1]!.location.recordCount,
          "a stream's rows are contiguous",
        );
      }
    }
    return plans;
  }

  /** Reads the plan's records, writes them as chunks, switches the index; returns bytes read. */
  private async rewrite(
    streamId: number,
    plan: readonly PlanRow[],
    trimPoint: SeqNum,
  ): Promise<number> {
    const { cache } = this.host;
    const startSeqNum = Math.max(plan[0]!.firstSeqNum, trimPoint);
    const last = plan.at(-1)!;
    const endSeqNum = last.firstSeqNum + last.location.recordCount;
    const readBytes = plan.reduce((sum, row) => sum + row.location.length, 0);
    const entries: RecordsEntryInput[] = [];
    let pending: { firstSeqNum: SeqNum; encoded: Uint8Array[]; bytes: number } | undefined;
    const flushEntry = (): void => {
      if (pending === undefined || pending.encoded.length === 0) return;
      entries.push({
        kind: "records",
        streamId,
        firstSeqNum: pending.firstSeqNum,
        encodedRecords: pending.encoded,
      });
      pending = undefined;
    };
    let nextSeqNum = startSeqNum;
    if (startSeqNum < endSeqNum) {
      await cache.readEntries({
        streamId,
        startSeqNum,
        endSeqNum,
        visit: (firstSeqNum: SeqNum, records: readonly DecodedRecord[]) => {
          for (let i = Math.max(0, nextSeqNum - firstSeqNum); i < records.length; i++) {
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
            pending ??= { firstSeqNum: seqNum, encoded: [], bytes: 0 };
            pending.encoded.push(encoded);
            pending.bytes += encoded.length;
            nextSeqNum = seqNum + 1;
          }
          return nextSeqNum < endSeqNum;
        },
      });
      flushEntry();
    }
    if (nextSeqNum < endSeqNum) {
      // A trim or removal landed during the read (rows gone): this stream waits for the next job.
      if (this.host.state.tailOf(streamId).trimPoint > nextSeqNum) return readBytes;
      if (!this.host.state.streamsById.has(streamId)) return readBytes;
      assert(false, `compaction could not read records below the tail: stream ${streamId}`);
    }
    const chunks: { chunkId: number; bytes: Uint8Array }[] = [];
    let group: RecordsEntryInput[] = [];
    let groupBytes = 0;
    const cut = async (): Promise<void> => {
      if (group.length === 0) return;
      chunks.push(await this.uploadChunk(group));
      group = [];
      groupBytes = 0;
    };
    for (const entry of entries) {
      const entryBytes = entry.encodedRecords.reduce((sum, record) => sum + record.length, 0);
      if (groupBytes > 0 && groupBytes + entryBytes > chunkBytesTarget) await cut();
      group.push(entry);
      groupBytes += entryBytes;
    }
    await cut();
    failpoint("compaction.after-chunk-upload");
    await cache.writeChunkFiles(chunks);
    await this.host.onCommitChain(() =>
      cache.switchToChunks({
        streamId,
        replacedKeys: plan.map((row) => row.key),
        chunks,
        trimPoint: this.host.state.streamsById.has(streamId)
          ? this.host.state.tailOf(streamId).trimPoint
          : Number.MAX_SAFE_INTEGER,
      }),
    );
    this.stats.bytesCompacted += readBytes;
    await this.host.clock.sleep((readBytes / compactionBytesPerSecondMax) * 1000);
    return readBytes;
  }

  private async uploadChunk(entries: readonly RecordsEntryInput[]): Promise<{
    chunkId: number;
    bytes: Uint8Array;
  }> {
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
        this.chunkStartSeqNums.set(chunkId, entries[0]!.firstSeqNum);
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

  /** The first seq num a chunk object holds (from its index: the cached file or a range GET). */
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
    this.chunkStartSeqNums.set(chunkId, first.firstSeqNum);
    return first.firstSeqNum;
  }
}
