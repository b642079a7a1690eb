/**
 * Checkpoints (docs/design/bottomless.md "The checkpoint"): the durable part of the cache, dumped
 * at one cache commit point and uploaded, so that recovery is one checkpoint plus the WAL after
 * it, whatever the history.
 *
 * Layout: magic "TRIBCKP1" · headerLen u32 · header JSON · rowCount u32 ·
 * (keyLen u32 · key · valueLen u32 · value) × rowCount · crc32c u32 of everything before it.
 *
 * Invariants: a checkpoint holds exactly the rows of `checkpointKeyTypes` as they were after the
 * cache commit of `header.walId` (the snapshot runs on the commit chain); loading writes the same
 * rows back, with the reference counts they imply, and the marker last, so a crash mid-load
 * leaves a cache without a marker, which recovery resets.
 *
 * Fault model: bytes from the bucket may be truncated or corrupt: every length is checked against
 * the buffer and the CRC covers everything; a bad checkpoint is a `CheckpointFormatError`.
 */
import { assert } from "../core/assert.js";
import { Slicer } from "../core/slices.js";
import { cacheMarkerOp } from "./cache/cache-marker.js";
import {
  decodeJsonValue,
  decodeSegmentEntryValue,
  encodeSegmentRefsKey,
  encodeSegmentRefsValue,
  KeyType,
  keyTypeRange,
  type ObjectSource,
} from "./kv/keys.js";
import type { KvOp, KvSnapshot, KvStore } from "./kv/kv-store.js";
import { crc32c } from "./segment/crc32c.js";

export const checkpointMagic = "TRIBCKP1";

/**
 * The LevelDB rows that are derived from the WAL alone, and so belong in a checkpoint. Not the
 * marker (rewritten at load), the retired Record rows, nor the reference counts (recomputed).
 */
export const checkpointKeyTypes = [
  KeyType.Basin,
  KeyType.Stream,
  KeyType.StreamTail,
  KeyType.AccessToken,
  KeyType.MetricBucket,
  KeyType.MetricGauge,
  KeyType.StreamBytes,
  KeyType.MetricsClock,
  KeyType.SegmentEntry,
  KeyType.FenceWalIds,
  KeyType.Producer,
] as const;

export interface CheckpointHeader {
  /** The last WAL segment the checkpoint includes; recovery replays from `walId + 1`. */
  readonly walId: number;
  /** That segment's write id (hex), the marker's write id after a load. */
  readonly writeId: string;
  readonly writerEpoch: number;
  readonly nextStreamId: number;
  /** Every chunk id below this was allocated before the snapshot (garbage if unreferenced). */
  readonly chunkIdBound: number;
  readonly createdAtMs: number;
}

export interface Checkpoint {
  readonly header: CheckpointHeader;
  readonly rows: readonly (readonly [Uint8Array, Uint8Array])[];
}

/** The objects a checkpoint's index references, for GC. */
export interface CheckpointReferences {
  readonly walIds: ReadonlySet<number>;
  readonly chunkIds: ReadonlySet<number>;
  /** The WAL id each epoch claimed at start: never deleted (bottomless.md "Fence segments stay"). */
  readonly fenceWalIds: ReadonlySet<number>;
}

/** Raised for bytes that are not a valid checkpoint. */
export class CheckpointFormatError extends Error {
  override readonly name = "CheckpointFormatError";
}

/** Rows written per LevelDB batch when a checkpoint is loaded. */
const loadRowsPerBatchMax = 4096;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Dumps the checkpoint rows of a view of the cache (taken between two segment commits). */
export async function snapshotRows(
  view: KvSnapshot,
  slicer = new Slicer(),
): Promise<[Uint8Array, Uint8Array][]> {
  const rows: [Uint8Array, Uint8Array][] = [];
  for (const type of checkpointKeyTypes) {
    for await (const [key, value] of view.entries(keyTypeRange(type))) {
      rows.push([key, value]);
      if (slicer.isDue()) await slicer.pause();
    }
  }
  return rows;
}

/** Encodes in slices (`Slicer`): a checkpoint holds a row per index entry of the whole history. */
export async function encodeCheckpoint(
  checkpoint: Checkpoint,
  slicer = new Slicer(),
): Promise<Uint8Array> {
  const header = encoder.encode(JSON.stringify(checkpoint.header));
  let total = checkpointMagic.length + 4 + header.length + 4 + 4;
  for (const [key, value] of checkpoint.rows) total += 8 + key.length + value.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (let i = 0; i < checkpointMagic.length; i++) out[i] = checkpointMagic.charCodeAt(i);
  let at = checkpointMagic.length;
  view.setUint32(at, header.length);
  out.set(header, at + 4);
  at += 4 + header.length;
  view.setUint32(at, checkpoint.rows.length);
  at += 4;
  for (const [key, value] of checkpoint.rows) {
    view.setUint32(at, key.length);
    out.set(key, at + 4);
    at += 4 + key.length;
    view.setUint32(at, value.length);
    out.set(value, at + 4);
    at += 4 + value.length;
    if (slicer.isDue()) await slicer.pause();
  }
  view.setUint32(at, crc32c(out.subarray(0, at)));
  assert(at + 4 === total, "checkpoint size mismatch");
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const minBytes = checkpointMagic.length + 12;
  if (bytes.length < minBytes) throw new CheckpointFormatError("checkpoint truncated");
  for (let i = 0; i < checkpointMagic.length; i++) {
    if (bytes[i] !== checkpointMagic.charCodeAt(i)) {
      throw new CheckpointFormatError("bad checkpoint magic");
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const crcAt = bytes.length - 4;
  if (view.getUint32(crcAt) !== crc32c(bytes.subarray(0, crcAt))) {
    throw new CheckpointFormatError("checkpoint checksum mismatch");
  }
  const take = (at: number, length: number): Uint8Array => {
    if (at + length > crcAt) throw new CheckpointFormatError("checkpoint field past its end");
    return bytes.subarray(at, at + length);
  };
  const u32At = (at: number): number => {
    if (at + 4 > crcAt) throw new CheckpointFormatError("checkpoint field past its end");
    return view.getUint32(at);
  };
  let at = checkpointMagic.length;
  const headerLength = u32At(at);
  let header: CheckpointHeader;
  try {
    header = JSON.parse(decoder.decode(take(at + 4, headerLength))) as CheckpointHeader;
  } catch (error) {
    throw new CheckpointFormatError("checkpoint header is not JSON", { cause: error });
  }
  if (
    !Number.isSafeInteger(header.walId) ||
    typeof header.writeId !== "string" ||
    !Number.isSafeInteger(header.writerEpoch) ||
    !Number.isSafeInteger(header.nextStreamId) ||
    !Number.isSafeInteger(header.chunkIdBound)
  ) {
    throw new CheckpointFormatError("malformed checkpoint header");
  }
  at += 4 + headerLength;
  const rowCount = u32At(at);
  at += 4;
  const rows: [Uint8Array, Uint8Array][] = [];
  for (let i = 0; i < rowCount; i++) {
    const keyLength = u32At(at);
    const key = take(at + 4, keyLength);
    at += 4 + keyLength;
    const valueLength = u32At(at);
    const value = take(at + 4, valueLength);
    at += 4 + valueLength;
    rows.push([key, value]);
  }
  if (at !== crcAt) throw new CheckpointFormatError("trailing bytes in checkpoint");
  return { header, rows };
}

/** The WAL segments and chunks a checkpoint's index rows point into. */
export async function referencesOf(
  rows: Checkpoint["rows"],
  slicer = new Slicer(),
): Promise<CheckpointReferences> {
  const walIds = new Set<number>();
  const chunkIds = new Set<number>();
  const fenceWalIds = new Set<number>();
  for (const [key, value] of rows) {
    if (slicer.isDue()) await slicer.pause();
    if (key[0] === KeyType.FenceWalIds) {
      for (const id of decodeJsonValue(value) as number[]) fenceWalIds.add(id);
      continue;
    }
    if (key[0] !== KeyType.SegmentEntry) continue;
    const { source, objectId } = decodeSegmentEntryValue(value);
    (source === "chunk" ? chunkIds : walIds).add(objectId);
  }
  return { walIds, chunkIds, fenceWalIds };
}

/**
 * Writes a checkpoint into an empty cache: its rows in batches, the reference counts of the
 * objects its index rows point into, then the marker (`header.walId`) in the last batch.
 */
export async function loadCheckpoint(kv: KvStore, checkpoint: Checkpoint): Promise<void> {
  const counts = new Map<string, { source: ObjectSource; id: number; count: number }>();
  let ops: KvOp[] = [];
  for (const [key, value] of checkpoint.rows) {
    const type = key[0];
    if (!checkpointKeyTypes.includes(type as (typeof checkpointKeyTypes)[number])) {
      throw new CheckpointFormatError(`checkpoint row of an unknown type. type=\`${type}\``);
    }
    if (type === KeyType.SegmentEntry) {
      const { source, objectId } = decodeSegmentEntryValue(value);
      const name = `${source}:${objectId}`;
      const known = counts.get(name);
      if (known === undefined) counts.set(name, { source, id: objectId, count: 1 });
      else known.count += 1;
    }
    ops.push({ type: "put", key, value });
    if (ops.length >= loadRowsPerBatchMax) {
      await kv.write(ops);
      ops = [];
    }
  }
  for (const { source, id, count } of counts.values()) {
    ops.push({
      type: "put",
      key: encodeSegmentRefsKey(id, source),
      value: encodeSegmentRefsValue(count),
    });
  }
  const { header } = checkpoint;
  ops.push(
    cacheMarkerOp({
      walId: header.walId,
      writeId: header.writeId,
      writerEpoch: header.writerEpoch,
      nextStreamId: header.nextStreamId,
    }),
  );
  await kv.write(ops);
}
