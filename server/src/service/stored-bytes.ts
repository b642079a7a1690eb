/**
 * Exact stored bytes per stream, for the metrics API's `storage` gauge (docs/design/metrics.md):
 * the metered bytes ever appended (the ledger's total, folded from the WAL) minus those below the
 * trim point (`Storage.meteredBytesBelow`: one cache-index lookup and at most one entry read),
 * memoized per stream for the trim point it was taken at.
 *
 * Invariant: `of` is exact for a stream untrimmed, trimmed to its tail, or whose memo was taken at
 * its current trim point, which `refresh` brings about for the streams it is given unless the
 * cache cannot answer (rows written by an older version) or a trim lands during it. Then, and only then, `of` answers the estimate from
 * the stream's mean record size, and the next refresh tries again.
 */
import type { SeqNum } from "../core/records.js";
import type { Storage } from "../storage/storage.js";

export class StoredBytes {
  /** Per trimmed stream: the metered bytes below `trimPoint`. */
  private readonly below = new Map<
    number,
    { readonly trimPoint: SeqNum; readonly bytes: number }
  >();

  constructor(private readonly storage: Storage) {}

  /** The stream's stored metered bytes now (exact, but for the cases in the header). */
  of(streamId: number): number {
    const { state } = this.storage;
    const { trimPoint, nextSeqNum } = state.tailOf(streamId);
    const appended = state.metrics.appendedBytesOf(streamId);
    if (trimPoint === 0) return appended;
    if (trimPoint >= nextSeqNum) return 0;
    const memo = this.below.get(streamId);
    if (memo?.trimPoint === trimPoint) return appended - memo.bytes;
    return Math.round((appended * (nextSeqNum - trimPoint)) / nextSeqNum);
  }

  /** Takes the bytes below the current trim point of each stream whose memo is stale. */
  async refresh(streamIds: Iterable<number>): Promise<void> {
    const { state } = this.storage;
    for (const streamId of streamIds) {
      const { trimPoint, nextSeqNum } = state.tailOf(streamId);
      if (trimPoint === 0 || trimPoint >= nextSeqNum) {
        this.below.delete(streamId);
        continue;
      }
      if (this.below.get(streamId)?.trimPoint === trimPoint) continue;
      // Taken for this trim point, whatever moves meanwhile: `of` uses it only while it holds.
      const bytes = await this.storage.meteredBytesBelow(streamId, trimPoint);
      if (bytes !== undefined) this.below.set(streamId, { trimPoint, bytes });
    }
    for (const streamId of this.below.keys()) {
      if (!state.streamsById.has(streamId)) this.below.delete(streamId);
    }
  }
}
