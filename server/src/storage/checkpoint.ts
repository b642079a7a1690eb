/**
 * Checkpoints (docs/design/bottomless.md "The checkpoint", "Incremental checkpoints"): the durable
 * part of the cache, dumped at one cache commit point and uploaded, so that recovery is one
 * checkpoint plus the WAL after it, whatever the history. A checkpoint names its parts: a base
 * (every row) and deltas (the rows changed since the previous checkpoint's snapshot, tombstones
 * for rows gone), so that each upload costs what changed, not the whole index.
 *
 * Layout of a checkpoint ("TRIBCKP1") and of a part ("TRIBPRT1"): magic · headerLen u32 · header
 * JSON · rowCount u32 · (keyLen u32 · key · valueLen u32 · value) × rowCount · crc32c u32 of
 * everything before it; a part's tombstone is a value length of 0xFFFFFFFF and no value. A
 * checkpoint with parts holds no rows itself; one without (written before parts existed) holds
 * them all.
 *
 * Invariants: a checkpoint's rows (its parts merged in order) are exactly the rows of
 * `checkpointKeyTypes` as they were after the cache commit of `header.walId` (the snapshot runs
 * on the commit chain); loading writes the same rows back, with the reference counts they imply,
 * and the marker last, so a crash mid-load leaves a cache without a marker, which recovery resets.
 *
 * Fault model: bytes from the bucket may be truncated or corrupt: every length is checked against
 * the buffer and the CRC covers everything; a bad checkpoint or part is a `CheckpointFormatError`.
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
import { keyString } from "./kv/switchable.js";
import { checkpointPartPrefix, parseObjectId } from "./object-keys.js";
import type { KvOp, KvSnapshot, KvStore } from "./kv/kv-store.js";
import { crc32c } from "./segment/crc32c.js";

export const checkpointMagic = "TRIBCKP1";
/**
 * The magic of a checkpoint that names parts. A build from before parts would read one with the
 * old magic as a checkpoint of no rows (it ignores header fields it does not know), start an
 * empty index and let its GC delete every object: with this one it refuses the checkpoint.
 */
export const checkpointWithPartsMagic = "TRIBCKP2";

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

/** Whether a cache key is a row a checkpoint holds (its first byte is its type). */
export function isCheckpointRowKey(key: Uint8Array): boolean {
  return (checkpointKeyTypes as readonly number[]).includes(key[0] ?? -1);
}

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
  /**
   * The parts holding the rows, base first (bottomless.md "Incremental checkpoints"); the
   * checkpoint's own rows are then empty. Absent in checkpoints written before parts existed,
   * which hold their rows themselves.
   */
  readonly parts?: readonly CheckpointPartRef[];
  /** Every part id below this was allocated before the snapshot (garbage if unlisted). */
  readonly partIdBound?: number;
}

/** A part as a checkpoint names it. */
export interface CheckpointPartRef {
  readonly key: string;
  readonly bytes: number;
}

/** A part's row: a value, or `null` for a key its snapshot no longer holds (a tombstone). */
export type CheckpointPartRow = readonly [Uint8Array, Uint8Array | null];

/**
 * The rows of one snapshot, whole (a base: every row, no tombstones) or as changed since its
 * parent's snapshot (a delta).
 */
export interface CheckpointPart {
  readonly partId: number;
  readonly kind: "base" | "delta";
  readonly rows: readonly CheckpointPartRow[];
}

export const checkpointPartMagic = "TRIBPRT1";

/** A part's value length that marks a tombstone (no value follows). */
const tombstoneLength = 0xffff_ffff;

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
export function encodeCheckpoint(
  checkpoint: Checkpoint,
  slicer = new Slicer(),
): Promise<Uint8Array> {
  const magic = checkpoint.header.parts === undefined ? checkpointMagic : checkpointWithPartsMagic;
  return encodeRowObject(magic, checkpoint.header, checkpoint.rows, slicer);
}

export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const withParts = hasMagic(bytes, checkpointWithPartsMagic);
  const { header: raw, rows } = decodeRowObject(
    withParts ? checkpointWithPartsMagic : checkpointMagic,
    "checkpoint",
    bytes,
  );
  const header = raw as CheckpointHeader;
  if ((header.parts !== undefined) !== withParts) {
    throw new CheckpointFormatError("a checkpoint's magic and its parts disagree");
  }
  if (
    !Number.isSafeInteger(header.walId) ||
    typeof header.writeId !== "string" ||
    !Number.isSafeInteger(header.writerEpoch) ||
    !Number.isSafeInteger(header.nextStreamId) ||
    !Number.isSafeInteger(header.chunkIdBound) ||
    (header.parts !== undefined &&
      (!Array.isArray(header.parts) ||
        header.parts.length === 0 ||
        !header.parts.every(
          (part) =>
            typeof part?.key === "string" &&
            parseObjectId(checkpointPartPrefix, part.key) !== undefined &&
            Number.isSafeInteger(part.bytes),
        ) ||
        !Number.isSafeInteger(header.partIdBound) ||
        rows.length > 0))
  ) {
    throw new CheckpointFormatError("malformed checkpoint header");
  }
  const values: [Uint8Array, Uint8Array][] = [];
  for (const [key, value] of rows) {
    if (value === null) throw new CheckpointFormatError("a tombstone in a checkpoint");
    values.push([key, value]);
  }
  return { header, rows: values };
}

export function encodeCheckpointPart(
  part: CheckpointPart,
  slicer = new Slicer(),
): Promise<Uint8Array> {
  return encodeRowObject(
    checkpointPartMagic,
    { partId: part.partId, kind: part.kind },
    part.rows,
    slicer,
  );
}

export function decodeCheckpointPart(bytes: Uint8Array): CheckpointPart {
  const { header, rows } = decodeRowObject(checkpointPartMagic, "checkpoint part", bytes);
  const { partId, kind } = header as { partId?: unknown; kind?: unknown };
  if (!Number.isSafeInteger(partId) || (kind !== "base" && kind !== "delta")) {
    throw new CheckpointFormatError("malformed checkpoint part header");
  }
  if (kind === "base" && rows.some(([, value]) => value === null)) {
    throw new CheckpointFormatError("a tombstone in a base part");
  }
  return { partId: partId as number, kind, rows };
}

/**
 * Applies `part` to `merged` (rows by key string): the first part of a checkpoint is its base,
 * every later one a delta, whose values replace and whose tombstones delete.
 */
export async function mergeCheckpointPart(
  merged: Map<string, readonly [Uint8Array, Uint8Array | null]>,
  part: CheckpointPart,
  isFirst: boolean,
  slicer = new Slicer(),
): Promise<void> {
  if (part.kind !== (isFirst ? "base" : "delta")) {
    throw new CheckpointFormatError("a checkpoint's parts are a base, then deltas");
  }
  for (const row of part.rows) {
    if (slicer.isDue()) await slicer.pause();
    if (!isCheckpointRowKey(row[0])) {
      throw new CheckpointFormatError(`a part's row of an unknown type. type=\`${row[0][0]}\``);
    }
    merged.set(keyString(row[0]), row);
  }
}

/**
 * The checkpoint at `key` with its rows, gathered from its parts when it names parts: `get`
 * reads an object (undefined when missing). A missing part is an assertion failure: GC never
 * deletes a part of a checkpoint it keeps.
 */
export async function readCheckpoint(
  key: string,
  get: (key: string) => Promise<Uint8Array | undefined>,
  slicer = new Slicer(),
): Promise<Checkpoint> {
  const bytes = await get(key);
  assert(bytes !== undefined, `the checkpoint exists: ${key}`);
  const checkpoint = decodeCheckpoint(bytes);
  const { parts } = checkpoint.header;
  if (parts === undefined) return checkpoint;
  // Merged part by part, so that one part's bytes at a time are held beside the merged rows.
  const merged = new Map<string, readonly [Uint8Array, Uint8Array | null]>();
  for (const [i, ref] of parts.entries()) {
    const partBytes = await get(ref.key);
    assert(partBytes !== undefined, `a part of checkpoint ${key} exists: ${ref.key}`);
    if (partBytes.length !== ref.bytes) {
      throw new CheckpointFormatError(`a checkpoint part's size differs. key=\`${ref.key}\``);
    }
    const part = decodeCheckpointPart(partBytes);
    if (part.partId !== parseObjectId(checkpointPartPrefix, ref.key)) {
      throw new CheckpointFormatError(`a part's id is not its key's. key=\`${ref.key}\``);
    }
    await mergeCheckpointPart(merged, part, i === 0, slicer);
  }
  const rows: [Uint8Array, Uint8Array][] = [];
  for (const [rowKey, value] of merged.values()) if (value !== null) rows.push([rowKey, value]);
  return { header: checkpoint.header, rows };
}

/**
 * The layout shared by checkpoints and parts: magic · headerLen u32 · header JSON · rowCount u32 ·
 * (keyLen u32 · key · valueLen u32 · value) × rowCount · crc32c u32 of everything before it; a
 * part's tombstone is a value length of 0xFFFFFFFF and no value.
 */
async function encodeRowObject(
  magic: string,
  header: unknown,
  rows: readonly (readonly [Uint8Array, Uint8Array | null])[],
  slicer: Slicer,
): Promise<Uint8Array> {
  const headerBytes = encoder.encode(JSON.stringify(header));
  const total = magic.length + 4 + headerBytes.length + 4 + rowsEncodedBytes(rows) + 4;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (let i = 0; i < magic.length; i++) out[i] = magic.charCodeAt(i);
  let at = magic.length;
  view.setUint32(at, headerBytes.length);
  out.set(headerBytes, at + 4);
  at += 4 + headerBytes.length;
  view.setUint32(at, rows.length);
  at += 4;
  for (const [key, value] of rows) {
    view.setUint32(at, key.length);
    out.set(key, at + 4);
    at += 4 + key.length;
    if (value === null) {
      view.setUint32(at, tombstoneLength);
      at += 4;
    } else {
      assert(value.length < tombstoneLength, "a row's value fits its length field");
      view.setUint32(at, value.length);
      out.set(value, at + 4);
      at += 4 + value.length;
    }
    if (slicer.isDue()) await slicer.pause();
  }
  view.setUint32(at, crc32c(out.subarray(0, at)));
  assert(at + 4 === total, "checkpoint size mismatch");
  return out;
}

/** The bytes `rows` take in a checkpoint or a part (a tombstone: its key and length field). */
export function rowsEncodedBytes(
  rows: readonly (readonly [Uint8Array, Uint8Array | null])[],
): number {
  let bytes = 0;
  for (const [key, value] of rows) bytes += 8 + key.length + (value?.length ?? 0);
  return bytes;
}

/** Whether `bytes` starts with `magic` (ASCII). */
function hasMagic(bytes: Uint8Array, magic: string): boolean {
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic.charCodeAt(i)) return false;
  return true;
}

function decodeRowObject(
  magic: string,
  what: string,
  bytes: Uint8Array,
): { header: unknown; rows: [Uint8Array, Uint8Array | null][] } {
  const minBytes = magic.length + 12;
  if (bytes.length < minBytes) throw new CheckpointFormatError(`${what} truncated`);
  if (!hasMagic(bytes, magic)) throw new CheckpointFormatError(`bad ${what} magic`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const crcAt = bytes.length - 4;
  if (view.getUint32(crcAt) !== crc32c(bytes.subarray(0, crcAt))) {
    throw new CheckpointFormatError(`${what} checksum mismatch`);
  }
  const take = (at: number, length: number): Uint8Array => {
    if (at + length > crcAt) throw new CheckpointFormatError(`${what} field past its end`);
    return bytes.subarray(at, at + length);
  };
  const u32At = (at: number): number => {
    if (at + 4 > crcAt) throw new CheckpointFormatError(`${what} field past its end`);
    return view.getUint32(at);
  };
  let at = magic.length;
  const headerLength = u32At(at);
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(take(at + 4, headerLength)));
  } catch (error) {
    throw new CheckpointFormatError(`${what} header is not JSON`, { cause: error });
  }
  if (typeof header !== "object" || header === null) {
    throw new CheckpointFormatError(`malformed ${what} header`);
  }
  at += 4 + headerLength;
  const rowCount = u32At(at);
  at += 4;
  const rows: [Uint8Array, Uint8Array | null][] = [];
  for (let i = 0; i < rowCount; i++) {
    const keyLength = u32At(at);
    const key = take(at + 4, keyLength);
    at += 4 + keyLength;
    const valueLength = u32At(at);
    if (valueLength === tombstoneLength) {
      rows.push([key, null]);
      at += 4;
      continue;
    }
    const value = take(at + 4, valueLength);
    at += 4 + valueLength;
    rows.push([key, value]);
  }
  if (at !== crcAt) throw new CheckpointFormatError(`trailing bytes in ${what}`);
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
