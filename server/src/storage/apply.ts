/**
 * The apply step: a durable segment becomes durable state and a cache commit. The live path
 * (`Storage`, when a flush's PUT succeeds) and recovery (replaying the WAL) both call
 * `applyDurableSegment`, so the two cannot drift apart.
 *
 * Invariant: applying is synchronous and in WAL order; the returned commit runs later, after the
 * previous segment's (the caller serializes commits).
 */
import type { SegmentCache } from "./cache/segment-cache.js";
import { cacheMarkerOp, hexOf } from "./cache/cache-marker.js";
import type { AppliedEffects, DurableState } from "./durable-state.js";
import type { KvOp } from "./kv/kv-store.js";
import type { EncodedSegment, SegmentEntry } from "./segment/format.js";

/** A durable segment as `applyDurableSegment` takes it. */
export interface DurableSegmentInput {
  readonly walId: number;
  readonly writeId: Uint8Array;
  readonly writerEpoch: number;
  readonly entries: readonly SegmentEntry[];
  /** The segment's bytes exactly as in `wal/<walId>`, in parts (`encodedSegmentOf` for one buffer). */
  readonly bytes: EncodedSegment;
}

/**
 * Applies a durable segment's entries to the state, synchronously, and returns its cache commit
 * to run later, after the previous segment's (the caller serializes commits): the segment file,
 * then one batch with its metadata, index rows, reference count and marker, then the index rows
 * its trims and removals freed. The live path (`Storage`) and replay share this, so both leave the
 * same cache.
 */
export function applyDurableSegment(
  cache: SegmentCache,
  state: DurableState,
  segment: DurableSegmentInput,
): () => Promise<void> {
  const { walId, entries, bytes } = segment;
  const effects: AppliedEffects = { trimmed: [], removedStreamIds: [] };
  const ops: KvOp[] = [];
  const isIndexed: boolean[] = [];
  const meteredBytesBefore: number[] = [];
  for (const entry of entries) {
    const isRecords = entry.kind === "records" && state.streamsById.has(entry.streamId);
    isIndexed.push(isRecords);
    meteredBytesBefore.push(isRecords ? state.metrics.appendedBytesOf(entry.streamId) : 0);
    ops.push(...state.applyEntry(entry, effects));
  }
  ops.push(
    cacheMarkerOp({
      walId,
      writeId: hexOf(segment.writeId),
      writerEpoch: segment.writerEpoch,
      nextStreamId: state.nextStreamId,
    }),
  );
  return async () => {
    await cache.commitSegment({ walId, bytes, entries, isIndexed, meteredBytesBefore, ops });
    for (const { streamId, trimPoint } of effects.trimmed) {
      await cache.dropRowsBelow(streamId, trimPoint);
    }
    for (const streamId of effects.removedStreamIds) await cache.dropStream(streamId);
  };
}
