/**
 * Recovery: from whatever the local cache holds to the bucket's truth, then the fence that makes
 * this server the only writer (docs/design/storage.md "Recovery" and "Fencing").
 *
 * Invariants: the cache's marker names a segment that exists in the bucket with the same write id
 * and the current cache layout, or the cache is wiped (LevelDB and segment files); segments are
 * replayed densely in id order up to the first missing id, each committed to the cache as the live
 * path does (file, then one batch), except dead ones (a writer epoch lower than one before it:
 * docs/design/storage.md "The PUT window"), which are skipped, so the epochs applied never
 * decrease; the ids after our fence that an earlier writer's window could still reach are
 * tombstoned before we serve; after recovery the cache index holds no entry at or past a stream's
 * durable tail, wholly below its trim point, or of a removed stream, and no segment file lacks a
 * reference count.
 *
 * Fault model: object-store reads may fail (retried, bounded); the cache may be missing, stale,
 * corrupt or from another bucket; a newer writer may appear at any moment (we stop: fenced).
 * A segment that fails its checksum is not skipped: recovery stops, because serving a history with
 * a hole would lose acknowledged data silently.
 */
import { assert } from "../core/assert.js";
import { failpoint } from "../core/failpoints.js";
import { type Clock, orTimeout } from "../core/clock.js";
import {
  segmentPutRetryDelayMsMax,
  segmentPutTimeoutMs,
  walClaimAttemptsMax,
  walPutsInFlightMax,
} from "../core/limits.js";
import type { Random } from "../core/random.js";
import { applyDurableSegment } from "./apply.js";
import { cacheLayout, cacheMarkerOp, hexOf, readMarker } from "./cache/cache-marker.js";
import { loadCheckpoint, readCheckpoint } from "./checkpoint.js";
import { DurableState, type ProducerState, type StreamTail } from "./durable-state.js";
import { SegmentCache } from "./cache/segment-cache.js";
import type { SegmentFiles } from "./cache/segment-files.js";
import {
  decodeJsonValue,
  decodeProducerKey,
  decodeSegmentEntryKey,
  encodeJsonValue,
  encodeSegmentEntryKey,
  fenceWalIdsKey,
  KeyType,
  keyTypeRange,
  readFenceWalIds,
} from "./kv/keys.js";
import type { KvOp, KvStore } from "./kv/kv-store.js";
import { claimManifest, type Manifest } from "./manifest/manifest.js";
import { loadMetricsLedger } from "./metrics-ledger.js";
import { parseObjectId, walKey, walPrefix } from "./object-keys.js";
import type { ObjectStore } from "./object-store/object-store.js";
import {
  decodeSegment,
  decodeSegmentHeader,
  encodeSegment,
  encodedSegmentOf,
  type Segment,
  segmentHeaderBytes,
  writeIdBytes,
} from "./segment/format.js";
import type { AccessTokenRecord, BasinRecord, StreamRecord } from "./wal/entries.js";
import { FencedError } from "./wal/flusher.js";

export interface RecoveryResult {
  readonly manifest: Manifest;
  /** Segments skipped as dead (docs/design/storage.md "The PUT window"). */
  readonly deadSegments: number;
  readonly state: DurableState;
  /** The first WAL id the flusher uploads to (after our fence segment). */
  readonly firstWalId: number;
  readonly replayedSegments: number;
  /** Why the cache was wiped, if it was. */
  readonly cacheResetReason: string | undefined;
  /** Whether the cache started from the newest checkpoint (empty or reset). */
  readonly loadedCheckpoint: boolean;
  /** The record cache, for the live path to keep committing to. */
  readonly segmentCache: SegmentCache;
}

export interface RecoveryOptions {
  readonly store: ObjectStore;
  readonly kv: KvStore;
  readonly segmentFiles: SegmentFiles;
  readonly chunkFiles?: SegmentFiles | undefined;
  /** The bound on the cache's files (`--cache-size`). */
  readonly cacheBytesMax?: number | undefined;
  readonly clock: Clock;
  readonly random: Random;
}

const objectReadAttemptsMax = 10;

async function retrying<T>(clock: Clock, what: string, operation: () => Promise<T>): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt < objectReadAttemptsMax; attempt++) {
    try {
      return await operation();
    } catch (error) {
      lastError = error;
      await clock.sleep(Math.min(segmentPutRetryDelayMsMax, 10 * 2 ** attempt));
    }
  }
  throw new Error(`${what} failed after ${objectReadAttemptsMax} attempts`, { cause: lastError });
}

/** Loads basins, streams and tails from the cache into a fresh state. */
async function loadState(kv: KvStore): Promise<DurableState> {
  const state = new DurableState();
  for await (const [, value] of kv.entries(keyTypeRange(KeyType.Basin))) {
    state.loadBasin(decodeJsonValue(value) as BasinRecord);
  }
  for await (const [, value] of kv.entries(keyTypeRange(KeyType.Stream))) {
    state.loadStream(decodeJsonValue(value) as StreamRecord);
  }
  for await (const [, value] of kv.entries(keyTypeRange(KeyType.AccessToken))) {
    state.loadToken(decodeJsonValue(value) as AccessTokenRecord);
  }
  for await (const [key, value] of kv.entries(keyTypeRange(KeyType.StreamTail))) {
    const streamId = new DataView(key.buffer, key.byteOffset + 1, 8);
    const id = streamId.getUint32(0) * 0x1_0000_0000 + streamId.getUint32(4);
    state.loadTail(id, decodeJsonValue(value) as StreamTail);
  }
  for await (const [key, value] of kv.entries(keyTypeRange(KeyType.Producer))) {
    const { streamId, producerId } = decodeProducerKey(key);
    state.loadProducer(streamId, producerId, decodeJsonValue(value) as ProducerState);
  }
  await loadMetricsLedger(state.metrics, kv);
  return state;
}

/**
 * Drops index rows a crash left behind (between a segment's batch and its trim cleanup): rows of
 * streams that no longer exist, rows wholly below a trim point, and, defensively, rows at or past
 * a tail (none can exist: nothing is cached before it is durable); then unlinks orphan files.
 */
async function cleanUpCache(kv: KvStore, cache: SegmentCache, state: DurableState): Promise<void> {
  const rowRange = keyTypeRange(KeyType.SegmentEntry);
  let cursor = rowRange.gte;
  for (;;) {
    let firstKey: Uint8Array | undefined;
    for await (const [key] of kv.entries({ gte: cursor, lt: rowRange.lt, limit: 1 }))
      firstKey = key;
    if (firstKey === undefined) break;
    const { streamId } = decodeSegmentEntryKey(firstKey);
    if (!state.streamsById.has(streamId)) {
      await cache.dropStream(streamId);
    } else {
      const tail = state.tailOf(streamId);
      if (tail.trimPoint > 0) await cache.dropRowsBelow(streamId, tail.trimPoint);
      await cache.dropRowsFrom(streamId, tail.nextSeqNum);
    }
    cursor = encodeSegmentEntryKey(streamId + 1, 0);
  }
  await cache.sweepOrphanFiles();
}

/** Opens the durable state: manifest claim, cache check, replay, cleanup, fence. */
export async function recover(options: RecoveryOptions): Promise<RecoveryResult> {
  const { store, kv, clock, random } = options;
  const cache = new SegmentCache(kv, options.segmentFiles, store, clock, {
    chunkFiles: options.chunkFiles,
    fileBytesMax: options.cacheBytesMax,
  });
  const manifest = await claimManifest(store, () => clock.nowMs(), random);
  const newestCheckpoint = manifest.checkpoint;

  let cacheResetReason = await staleCacheReason(store, clock, kv, manifest);
  if (cacheResetReason !== undefined) await clearCache(kv, cache);
  let marker = cacheResetReason === undefined ? await readMarker(kv) : undefined;
  let loadedCheckpoint = false;
  /** An empty cache starts from the newest checkpoint, if there is one. */
  const loadNewestCheckpoint = async (): Promise<void> => {
    if (newestCheckpoint === undefined) return;
    const checkpoint = await readCheckpoint(newestCheckpoint.key, (key) =>
      retrying(clock, `read ${key}`, () => store.get(key)),
    );
    assert(
      checkpoint.header.walId === newestCheckpoint.walId &&
        checkpoint.header.writeId === newestCheckpoint.writeId,
      "the manifest and its checkpoint agree on the WAL id",
    );
    failpoint("recovery.checkpoint-load");
    await loadCheckpoint(kv, checkpoint);
    marker = await readMarker(kv);
    assert(marker?.walId === newestCheckpoint.walId, "a loaded checkpoint leaves its marker");
    loadedCheckpoint = true;
  };
  if (marker === undefined) await loadNewestCheckpoint();
  let state = new DurableState();
  /** The WAL id each epoch claimed (bottomless.md "Fence segments stay"), as the cache has it. */
  let fenceWalIds: number[] = [];
  const loadCached = async (): Promise<void> => {
    state = await loadState(kv);
    fenceWalIds = await readFenceWalIds(kv);
  };
  try {
    await loadCached();
  } catch (error) {
    // LevelDB does not verify checksums on reads: a damaged value shows up here. The cache is
    // only a cache; rebuild it (a checkpoint just loaded that does not read back is a bug).
    assert(!loadedCheckpoint, "a checkpoint just loaded reads back");
    cacheResetReason = `cache unreadable: ${error instanceof Error ? error.message : String(error)}`;
    await clearCache(kv, cache);
    marker = undefined;
    await loadNewestCheckpoint();
    await loadCached();
  }
  await cache.loadFileSizes();
  if (marker !== undefined) {
    state.nextStreamId = Math.max(state.nextStreamId, marker.nextStreamId);
  }
  // Without a marker the cache is empty and there is no checkpoint: the WAL starts at 0.
  assert(marker !== undefined || manifest.walStartId === 0, "an empty cache starts at WAL id 0");
  let nextWalId = marker !== undefined ? marker.walId + 1 : 0;
  let lastEpoch = marker !== undefined ? marker.writerEpoch : 0;
  let replayedSegments = 0;
  let deadSegments = 0;
  /** The write ids of our fence attempts: a lost answer leaves one of ours in the WAL. */
  const ourFenceWriteIds = new Set<string>();

  const replay = async (segment: Segment, bytes: Uint8Array): Promise<void> => {
    assert(
      segment.header.walId === nextWalId,
      `wal ids not dense: expected ${nextWalId} got ${segment.header.walId}`,
    );
    if (segment.header.writerEpoch < lastEpoch) {
      // Dead: landed in a fenced writer's window past the fence that cut it off; never acked.
      nextWalId += 1;
      deadSegments += 1;
      return;
    }
    if (segment.header.writerEpoch > manifest.writerEpoch) {
      throw new FencedError(`a newer writer owns the WAL. epoch=\`${segment.header.writerEpoch}\``);
    }
    if (
      segment.header.writerEpoch === manifest.writerEpoch &&
      !ourFenceWriteIds.has(hexOf(segment.header.writeId))
    ) {
      // Not one of our own fence attempts (an answer lost, the segment landed): another writer
      // holds our epoch, which a store whose create-if-absent is not atomic can let happen
      // (`claimManifest`). Whoever's segment landed first keeps it; we stop.
      throw new FencedError(`another writer holds our epoch. epoch=\`${manifest.writerEpoch}\``);
    }
    if (segment.header.writerEpoch > lastEpoch && !fenceWalIds.includes(nextWalId)) {
      // The first segment of an epoch is its writer's fence: remember it before the segment's
      // commit moves the marker past it (GC must never delete it).
      fenceWalIds = [...fenceWalIds, nextWalId];
      await kv.write([fenceWalIdsOp(fenceWalIds)]);
    }
    await applyDurableSegment(cache, state, {
      walId: segment.header.walId,
      writeId: segment.header.writeId,
      writerEpoch: segment.header.writerEpoch,
      entries: segment.entries,
      bytes: encodedSegmentOf(bytes),
    })();
    lastEpoch = segment.header.writerEpoch;
    nextWalId += 1;
    replayedSegments += 1;
  };

  const replayAvailable = async (): Promise<void> => {
    let startAfter = nextWalId === 0 ? undefined : walKey(nextWalId - 1);
    for (;;) {
      const after = startAfter;
      const page = await retrying(clock, "list wal", () =>
        store.list(walPrefix, { startAfter: after }),
      );
      // Keys that are not WAL ids are skipped, but paging still moves past them.
      startAfter = page.objects.at(-1)?.key ?? startAfter;
      for (const object of page.objects) {
        const id = parseObjectId(walPrefix, object.key);
        if (id === undefined) continue;
        // A hole: what lies past it landed in a crashed writer's window and was never acked; the
        // fence goes into the hole and the tombstones after it cover the rest.
        if (id !== nextWalId) return;
        const bytes = await retrying(clock, "read segment", () => store.get(object.key));
        assert(bytes !== undefined, `listed segment missing: ${object.key}`);
        await replay(decodeSegment(bytes), bytes);
      }
      if (!page.isTruncated) return;
    }
  };

  await replayAvailable();

  // Claim the next WAL id with a fence segment. Whoever holds an id we find taken either wrote
  // before us (replay it and move on) or is newer (we are fenced).
  let lastClaimError: unknown;
  for (let attempt = 0; attempt < walClaimAttemptsMax; attempt++) {
    const writeId = random.bytes(writeIdBytes);
    ourFenceWriteIds.add(hexOf(writeId));
    let result: "created" | "exists" | "timeout";
    try {
      result = await putEmptySegment(store, clock, nextWalId, manifest.writerEpoch, writeId);
    } catch (error) {
      lastClaimError = error;
      await clock.sleep(segmentPutRetryDelayMsMax / 10);
      continue;
    }
    if (result === "timeout") {
      lastClaimError = new Error(`fence put timed out after ${segmentPutTimeoutMs} ms`);
      continue;
    }
    if (result === "exists") {
      const bytes = await retrying(clock, "read segment", () => store.get(walKey(nextWalId)));
      assert(bytes !== undefined, "a segment that exists can be read");
      const segment = decodeSegment(bytes);
      if (hexOf(segment.header.writeId) !== hexOf(writeId)) {
        await replay(segment, bytes);
        continue;
      }
    }
    failpoint("recovery.after-fence");
    await tombstoneWindow(store, clock, random, manifest.writerEpoch, nextWalId);
    // After the claim loop, which may have replayed more segments (trims, removals) into the cache.
    await cleanUpCache(kv, cache, state);
    fenceWalIds = [...fenceWalIds, nextWalId];
    await kv.write([
      cacheMarkerOp({
        walId: nextWalId,
        writeId: hexOf(writeId),
        writerEpoch: manifest.writerEpoch,
        nextStreamId: state.nextStreamId,
      }),
      fenceWalIdsOp(fenceWalIds),
    ]);
    return {
      manifest,
      state,
      firstWalId: nextWalId + walPutsInFlightMax,
      replayedSegments,
      deadSegments,
      cacheResetReason,
      loadedCheckpoint,
      segmentCache: cache,
    };
  }
  // Out of attempts: because the store kept failing (not fenced), or because others kept writing.
  if (lastClaimError !== undefined) {
    throw new Error(
      `could not claim a wal id: object store failing. attempts=\`${walClaimAttemptsMax}\``,
      {
        cause: lastClaimError,
      },
    );
  }
  throw new FencedError(`could not claim a wal id. attempts=\`${walClaimAttemptsMax}\``);
}

/**
 * Why the cache cannot be resumed from, or undefined when it can (or is empty). A marker at or
 * below the newest checkpoint is judged against the checkpoint (its segment may be gone: GC);
 * one past it against its segment in the bucket.
 */
async function staleCacheReason(
  store: ObjectStore,
  clock: Clock,
  kv: KvStore,
  manifest: Manifest,
): Promise<string | undefined> {
  const marker = await readMarker(kv);
  if (marker === undefined) {
    return (await firstKey(kv)) !== undefined ? "cache has data but no marker" : undefined;
  }
  if (marker.layout !== cacheLayout) return `cache of another layout. layout=\`${marker.layout}\``;
  const checkpoint = manifest.checkpoint;
  if (checkpoint !== undefined && marker.walId < checkpoint.walId) {
    return `cache older than the newest checkpoint. walId=\`${marker.walId}\``;
  }
  if (checkpoint !== undefined && marker.walId === checkpoint.walId) {
    return marker.writeId === checkpoint.writeId
      ? undefined
      : `cache marker names another history. walId=\`${marker.walId}\``;
  }
  const header = await retrying(clock, "read segment header", () =>
    store.get(walKey(marker.walId), { start: 0, end: segmentHeaderBytes }),
  );
  if (header === undefined) {
    return `cache marker names a missing segment. walId=\`${marker.walId}\``;
  }
  if (hexOf(decodeSegmentHeader(header).writeId) !== marker.writeId) {
    return `cache marker names another history. walId=\`${marker.walId}\``;
  }
  return undefined;
}

/** PUTs an empty segment (a fence or a tombstone) create-if-absent, within the PUT timeout. */
function putEmptySegment(
  store: ObjectStore,
  clock: Clock,
  walId: number,
  writerEpoch: number,
  writeId: Uint8Array,
): Promise<"created" | "exists" | "timeout"> {
  const bytes = encodeSegment({ walId, writerEpoch, writeId, entries: [] });
  return orTimeout(store.putIfAbsent(walKey(walId), bytes), segmentPutTimeoutMs, clock);
}

/**
 * PUTs empty segments with our epoch at the `walPutsInFlightMax − 1` ids after our fence at
 * `fenceWalId`, so that no earlier writer's window can land anything where we will write. An id
 * found taken holds a dead segment (a lower epoch: it stays dead) or a newer writer's (fenced).
 */
async function tombstoneWindow(
  store: ObjectStore,
  clock: Clock,
  random: Random,
  writerEpoch: number,
  fenceWalId: number,
): Promise<void> {
  const tombstone = async (walId: number): Promise<void> => {
    const writeId = random.bytes(writeIdBytes);
    let lastError: unknown;
    for (let attempt = 0; attempt < walClaimAttemptsMax; attempt++) {
      if (attempt > 0) await clock.sleep(segmentPutRetryDelayMsMax / 10);
      let result: "created" | "exists" | "timeout";
      try {
        result = await putEmptySegment(store, clock, walId, writerEpoch, writeId);
      } catch (error) {
        lastError = error;
        continue;
      }
      if (result === "created") return;
      if (result === "timeout") {
        lastError = new Error(`tombstone put timed out after ${segmentPutTimeoutMs} ms`);
        continue;
      }
      const found = await retrying(clock, "read segment header", () =>
        store.get(walKey(walId), { start: 0, end: segmentHeaderBytes }),
      );
      assert(found !== undefined, "a segment that exists can be read");
      const header = decodeSegmentHeader(found);
      if (hexOf(header.writeId) === hexOf(writeId)) return; // an earlier attempt of ours landed
      if (header.writerEpoch >= writerEpoch) {
        // Newer, or another writer holding our epoch (see `replay`): either way not ours to use.
        throw new FencedError(`another writer owns the WAL. epoch=\`${header.writerEpoch}\``);
      }
      return; // dead: an earlier writer's, past the fence that cut it off
    }
    throw new Error(`could not tombstone wal id ${walId}: object store failing`, {
      cause: lastError,
    });
  };
  const ids = Array.from({ length: walPutsInFlightMax - 1 }, (_, i) => fenceWalId + 1 + i);
  await Promise.all(ids.map(tombstone));
}

function fenceWalIdsOp(fenceWalIds: readonly number[]): KvOp {
  return { type: "put", key: fenceWalIdsKey, value: encodeJsonValue(fenceWalIds) };
}

async function clearCache(kv: KvStore, cache: SegmentCache): Promise<void> {
  await kv.clear({});
  await cache.clearFiles();
}

async function firstKey(kv: KvStore): Promise<Uint8Array | undefined> {
  for await (const [key] of kv.entries({ limit: 1 })) return key;
  return undefined;
}
