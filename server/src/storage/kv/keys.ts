/**
 * The LevelDB cache's key space. The first byte of every key is its `KeyType`; the ordinals are
 * persisted and never renumbered. Integers are big-endian so that byte order is numeric order.
 *
 * | type | scope | mutability | key | value |
 * | --- | --- | --- | --- | --- |
 * | CacheMarker | singleton | rewritten per committed segment | `01` | JSON `{ walId, writeId (hex), writerEpoch, nextStreamId, layout }`: the last WAL segment the cache holds entirely |
 * | Basin | per basin | rewritten on every change | `02 · name` | JSON `BasinRecord` |
 * | Stream | per stream | rewritten on every change | `03 · basin · 00 · name` | JSON `StreamRecord` (byte order lists a basin's streams by name) |
 * | StreamTail | per stream | rewritten per segment that appends to it | `04 · streamId u64` | JSON `StreamTail` |
 * | Record | retired: the old staging layout, never written again and never reused | `05 · streamId u64 · seqNum u64` | `encodeRecord` bytes |
 * | AccessToken | per access token | written on issue, deleted on revoke | `06 · id` | JSON `AccessTokenRecord` (a hash of the secret, never the secret) |
 * | MetricBucket | per metric series and bucket | rewritten per `metrics.add` entry, deleted past retention | `07 · granularity u8 · bucketSec u64 · series` (series: `scope 00 set 00 name`) | JSON number |
 * | MetricGauge | per stream (and per basin: empty stream name) and bucket | rewritten per storage sample, deleted past retention | `08 · granularity u8 · bucketSec u64 · basin 00 stream` | JSON number (bytes) |
 * | StreamBytes | per stream | rewritten per segment that appends to it, deleted with the stream | `09 · streamId u64` | JSON number: appended metered bytes |
 * | MetricsClock | singleton | rewritten per `metrics.add` entry | `0a` | JSON number: the newest `atSec` folded (retention's reference time) |
 * | SegmentEntry | per records entry of a durable segment or chunk | written by the segment's cache commit, replaced by compaction's index switch, deleted by trim/removal/recovery | `0b · streamId u64 · firstSeqNum u64` | `objectId u64 · offset u32 · length u32 · recordCount u32 [· 01]`: the entry's payload and CRC in `wal/<objectId>` (20 bytes) or, with the trailing `01`, in `chunks/<objectId>` (21 bytes); the cache file holds the same bytes |
 * | SegmentRefs | per WAL segment some row points into | written by the segment's cache commit, rewritten as rows are deleted, deleted with the last row | `0c · walId u64` | `count u32`: the SegmentEntry rows pointing into `wal/<walId>` (> 0) |
 * | FenceWalIds | singleton | rewritten at each server start | `0e` | JSON array: the WAL id each writer epoch claimed at start (never deleted by GC) |
 * | ChunkRefs | per chunk some row points into | written by compaction's index switch (and checkpoint loads), rewritten as rows are deleted, deleted with the last row | `0d · chunkId u64` | `count u32`, as SegmentRefs |
 * | Producer | per (stream, producer) | rewritten per `producer.put` entry, deleted with the stream | `0f · streamId u64 · producerId` | JSON `ProducerState` (docs/design/producers.md) |
 */

import { readU32, readU64, writeU32, writeU64 } from "../../core/big-endian.js";

export const KeyType = {
  CacheMarker: 1,
  Basin: 2,
  Stream: 3,
  StreamTail: 4,
  Record: 5,
  AccessToken: 6,
  MetricBucket: 7,
  MetricGauge: 8,
  StreamBytes: 9,
  MetricsClock: 10,
  SegmentEntry: 11,
  SegmentRefs: 12,
  ChunkRefs: 13,
  FenceWalIds: 14,
  Producer: 15,
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export const cacheMarkerKey = new Uint8Array([KeyType.CacheMarker]);
export const metricsClockKey = new Uint8Array([KeyType.MetricsClock]);
export const fenceWalIdsKey = new Uint8Array([KeyType.FenceWalIds]);

/** The fence WAL ids (empty when none recorded yet). */
export async function readFenceWalIds(kv: {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
}): Promise<number[]> {
  const bytes = await kv.get(fenceWalIdsKey);
  if (bytes === undefined) return [];
  const value = decodeJsonValue(bytes);
  if (!Array.isArray(value) || !value.every((id) => Number.isSafeInteger(id))) {
    throw new Error("bad fence wal ids value");
  }
  return value as number[];
}

export function encodeBasinKey(name: string): Uint8Array {
  const nameBytes = encoder.encode(name);
  const key = new Uint8Array(1 + nameBytes.length);
  key[0] = KeyType.Basin;
  key.set(nameBytes, 1);
  return key;
}

export function encodeStreamKey(basin: string, name: string): Uint8Array {
  const basinBytes = encoder.encode(basin);
  const nameBytes = encoder.encode(name);
  const key = new Uint8Array(2 + basinBytes.length + nameBytes.length);
  key[0] = KeyType.Stream;
  key.set(basinBytes, 1);
  key[1 + basinBytes.length] = 0;
  key.set(nameBytes, 2 + basinBytes.length);
  return key;
}

export function encodeAccessTokenKey(id: string): Uint8Array {
  const idBytes = encoder.encode(id);
  const key = new Uint8Array(1 + idBytes.length);
  key[0] = KeyType.AccessToken;
  key.set(idBytes, 1);
  return key;
}

export function encodeProducerKey(streamId: number, producerId: string): Uint8Array {
  const id = encoder.encode(producerId);
  const key = new Uint8Array(9 + id.length);
  key[0] = KeyType.Producer;
  writeU64(key, 1, streamId);
  key.set(id, 9);
  return key;
}

export function decodeProducerKey(key: Uint8Array): { streamId: number; producerId: string } {
  if (key.length < 10 || key[0] !== KeyType.Producer) throw new Error("not a producer key");
  return { streamId: readU64(key, 1), producerId: new TextDecoder().decode(key.subarray(9)) };
}

export function encodeStreamTailKey(streamId: number): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = KeyType.StreamTail;
  writeU64(key, 1, streamId);
  return key;
}

export function encodeRecordKey(streamId: number, seqNum: number): Uint8Array {
  const key = new Uint8Array(17);
  key[0] = KeyType.Record;
  writeU64(key, 1, streamId);
  writeU64(key, 9, seqNum);
  return key;
}

export function decodeRecordKey(key: Uint8Array): { streamId: number; seqNum: number } {
  if (key.length !== 17 || key[0] !== KeyType.Record) throw new Error("not a record key");
  return { streamId: readU64(key, 1), seqNum: readU64(key, 9) };
}

function encodeMetricKey(
  type: number,
  granularity: number,
  bucketSec: number,
  name: string,
): Uint8Array {
  const nameBytes = encoder.encode(name);
  const key = new Uint8Array(10 + nameBytes.length);
  key[0] = type;
  key[1] = granularity;
  writeU64(key, 2, bucketSec);
  key.set(nameBytes, 10);
  return key;
}

/** A metric key's parts (`MetricBucket` and `MetricGauge` share the layout). */
export interface MetricKey {
  readonly granularity: number;
  readonly bucketSec: number;
  readonly name: string;
}

function decodeMetricKey(type: number, key: Uint8Array): MetricKey {
  if (key.length < 10 || key[0] !== type) throw new Error("not a metric key");
  return {
    granularity: key[1]!,
    bucketSec: readU64(key, 2),
    name: decoder.decode(key.subarray(10)),
  };
}

/** A metric counter cell (`storage/metrics-ledger.ts`). */
export function encodeMetricBucketKey(
  granularity: number,
  bucketSec: number,
  series: string,
): Uint8Array {
  return encodeMetricKey(KeyType.MetricBucket, granularity, bucketSec, series);
}

export function decodeMetricBucketKey(key: Uint8Array): MetricKey {
  return decodeMetricKey(KeyType.MetricBucket, key);
}

/** A stream's storage sample (`storage/metrics-ledger.ts`); `stream` is `basin 00 stream`. */
export function encodeMetricGaugeKey(
  granularity: number,
  bucketSec: number,
  stream: string,
): Uint8Array {
  return encodeMetricKey(KeyType.MetricGauge, granularity, bucketSec, stream);
}

export function decodeMetricGaugeKey(key: Uint8Array): MetricKey {
  return decodeMetricKey(KeyType.MetricGauge, key);
}

/** A stream's appended metered bytes (`storage/metrics-ledger.ts`). */
export function encodeStreamBytesKey(streamId: number): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = KeyType.StreamBytes;
  writeU64(key, 1, streamId);
  return key;
}

export function decodeStreamBytesKey(key: Uint8Array): number {
  if (key.length !== 9 || key[0] !== KeyType.StreamBytes) throw new Error("not a stream bytes key");
  return readU64(key, 1);
}

/** The first key of a type, and the first key after it: bounds for scanning one type. */
export function keyTypeRange(type: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: new Uint8Array([type]), lt: new Uint8Array([type + 1]) };
}

/** JSON values (metadata, tails, marker). */
export function encodeJsonValue(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJsonValue(bytes: Uint8Array): unknown {
  return JSON.parse(decoder.decode(bytes));
}

/** Which kind of object a SegmentEntry row points into: a WAL segment or a chunk. */
export type ObjectSource = "wal" | "chunk";

/** Where one records entry lies in a segment or chunk (file and object alike). */
export interface SegmentEntryLocation {
  readonly source: ObjectSource;
  /** The WAL id or the chunk id. */
  readonly objectId: number;
  /** From the start of the object: the entry's payload, followed by its 4-byte CRC. */
  readonly offset: number;
  /** Payload bytes + 4. */
  readonly length: number;
  readonly recordCount: number;
  /**
   * The metered bytes of the stream's records before this entry's first one (the running total of
   * the metrics ledger when the entry was applied): with it, the bytes below any trim point are one
   * row lookup and at most one entry read away (`SegmentCache.meteredBytesBelow`). Undefined in
   * rows written by an older version (a cache or checkpoint of the same layout, 2: both value
   * lengths are read).
   */
  readonly meteredBytesBefore?: number | undefined;
}

/**
 * Value layouts, told apart by length: 20 bytes (a WAL row: object id u64, offset u32, length
 * u32, record count u32), 21 (a chunk row: the same and a source byte), and 28 / 29 (the same
 * with `meteredBytesBefore` u64 after the record count, and the chunk's source byte last).
 */
const segmentEntryValueBytes = 20;
const segmentEntryMeteredValueBytes = 28;
const chunkSourceByte = 1;

export function encodeSegmentEntryKey(streamId: number, firstSeqNum: number): Uint8Array {
  const key = new Uint8Array(17);
  key[0] = KeyType.SegmentEntry;
  writeU64(key, 1, streamId);
  writeU64(key, 9, firstSeqNum);
  return key;
}

export function decodeSegmentEntryKey(key: Uint8Array): { streamId: number; firstSeqNum: number } {
  if (key.length !== 17 || key[0] !== KeyType.SegmentEntry) {
    throw new Error("not a segment entry key");
  }
  return { streamId: readU64(key, 1), firstSeqNum: readU64(key, 9) };
}

export function encodeSegmentEntryValue(location: SegmentEntryLocation): Uint8Array {
  const { meteredBytesBefore } = location;
  const bytes =
    meteredBytesBefore === undefined ? segmentEntryValueBytes : segmentEntryMeteredValueBytes;
  const value = new Uint8Array(bytes + (location.source === "chunk" ? 1 : 0));
  writeU64(value, 0, location.objectId);
  writeU32(value, 8, location.offset);
  writeU32(value, 12, location.length);
  writeU32(value, 16, location.recordCount);
  if (meteredBytesBefore !== undefined) writeU64(value, 20, meteredBytesBefore);
  if (location.source === "chunk") value[bytes] = chunkSourceByte;
  return value;
}

export function decodeSegmentEntryValue(value: Uint8Array): SegmentEntryLocation {
  const hasMetered = value.length >= segmentEntryMeteredValueBytes;
  const bytes = hasMetered ? segmentEntryMeteredValueBytes : segmentEntryValueBytes;
  const isChunk = value.length === bytes + 1 && value[bytes] === chunkSourceByte;
  if (value.length !== bytes && !isChunk) throw new Error("bad segment entry value");
  const location: SegmentEntryLocation = {
    source: isChunk ? "chunk" : "wal",
    objectId: readU64(value, 0),
    offset: readU32(value, 8),
    length: readU32(value, 12),
    recordCount: readU32(value, 16),
    meteredBytesBefore: hasMetered ? readU64(value, 20) : undefined,
  };
  if (location.length < 4 || location.recordCount === 0) throw new Error("bad segment entry value");
  return location;
}

/** The reference count row of a WAL segment (SegmentRefs) or a chunk (ChunkRefs). */
export function encodeSegmentRefsKey(walId: number, source: ObjectSource = "wal"): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = source === "chunk" ? KeyType.ChunkRefs : KeyType.SegmentRefs;
  writeU64(key, 1, walId);
  return key;
}

export function decodeSegmentRefsKey(key: Uint8Array): { source: ObjectSource; objectId: number } {
  if (key.length !== 9 || (key[0] !== KeyType.SegmentRefs && key[0] !== KeyType.ChunkRefs)) {
    throw new Error("not a segment refs key");
  }
  return { source: key[0] === KeyType.ChunkRefs ? "chunk" : "wal", objectId: readU64(key, 1) };
}

export function encodeSegmentRefsValue(count: number): Uint8Array {
  const value = new Uint8Array(4);
  writeU32(value, 0, count);
  return value;
}

export function decodeSegmentRefsValue(value: Uint8Array): number {
  if (value.length !== 4) throw new Error("bad segment refs value");
  return readU32(value, 0);
}
