/**
 * The LevelDB cache's key space. The first byte of every key is its `KeyType`; the ordinals are
 * persisted and never renumbered. Integers are big-endian so that byte order is numeric order.
 *
 * | type | scope | mutability | key | value |
 * | --- | --- | --- | --- | --- |
 * | CacheMarker | singleton | rewritten per committed segment | `01` | JSON `{ walId, writeId (hex), writerEpoch }`: the last WAL segment the cache holds entirely |
 * | Basin | per basin | rewritten on every change | `02 · name` | JSON `BasinRecord` |
 * | Stream | per stream | rewritten on every change | `03 · basin · 00 · name` | JSON `StreamRecord` (byte order lists a basin's streams by name) |
 * | StreamTail | per stream | rewritten per segment that appends to it | `04 · streamId u64` | JSON `StreamTail` |
 * | Record | per record | written once (staged before durable), deleted by trim/removal/recovery | `05 · streamId u64 · seqNum u64` | `encodeRecord` bytes |
 */

export const KeyType = { CacheMarker: 1, Basin: 2, Stream: 3, StreamTail: 4, Record: 5 } as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const twoPow32 = 0x1_0000_0000;

function writeU64(out: Uint8Array, offset: number, value: number): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset, Math.floor(value / twoPow32));
  view.setUint32(offset + 4, value >>> 0);
}

function readU64(bytes: Uint8Array, offset: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return view.getUint32(offset) * twoPow32 + view.getUint32(offset + 4);
}

export const cacheMarkerKey = new Uint8Array([KeyType.CacheMarker]);

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
