/**
 * The binary encoding of one sequenced record's content, concatenated in a segment's records
 * entry (which the local cache keeps byte for byte), so a record is encoded once when it is
 * appended and never re-encoded. The seq num is not encoded: it is implied by the position in the
 * entry.
 *
 * Layout (big-endian): timestamp u64 · headerCount u32 · (nameLen u32 · name · valueLen u32 ·
 * value)* · bodyLen u32 · body. Decoding returns views into the input, never copies.
 */
import { assert } from "../../core/assert.js";
import { readU32, readU64 } from "../../core/big-endian.js";
import type { Header, RecordContent } from "../../core/records.js";

/** Thrown when bytes that passed their checksum still do not decode: a writer bug. */
export class RecordDecodeError extends Error {
  override readonly name = "RecordDecodeError";
}

const twoPow32 = 0x1_0000_0000;

/** The encoded size of a record. */
export function encodedRecordBytes(record: {
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}): number {
  let bytes = 8 + 4 + 4 + record.body.length;
  for (const header of record.headers) bytes += 8 + header.name.length + header.value.length;
  return bytes;
}

/** Encodes a record's timestamp, headers and body. */
export function encodeRecord(record: RecordContent): Uint8Array {
  const out = new Uint8Array(encodedRecordBytes(record));
  return encodeRecordAt(out, new DataView(out.buffer), 0, record).encoded;
}

/**
 * Encodes `records` back to back into one new buffer and returns each decoded, as views into it:
 * one allocation per batch instead of one per record. Each record's own buffer was a separate
 * `ArrayBuffer` (a malloc'd backing store and a V8 object; ~50,000 a second at 512 B records in
 * the peers bench), copied into its segment and then garbage. Measured (`bench/memory-probe.ts
 * --record-bytes 512`, two alternating runs each): server peak RSS 378 and 377 MiB before, 352
 * and 353 after. The buffer lives as long as any record of the batch is referenced:
 * while the batch is pending, and while the followers it was sent to hold it.
 * The views are made as each record is written, not by decoding the buffer afterwards (which
 * cost a second pass and a `DataView` per record: 4% of the server's main thread at 512 B).
 */
export function encodeRecordBatch(records: readonly RecordContent[]): DecodedRecord[] {
  let totalBytes = 0;
  for (const record of records) totalBytes += encodedRecordBytes(record);
  const out = new Uint8Array(totalBytes);
  const view = new DataView(out.buffer);
  const encoded: DecodedRecord[] = new Array(records.length);
  let offset = 0;
  for (let i = 0; i < records.length; i++) {
    const record = encodeRecordAt(out, view, offset, records[i]!);
    encoded[i] = record;
    offset += record.encoded.length;
  }
  assert(offset === totalBytes, "a batch's records fill its buffer");
  return encoded;
}

/**
 * Writes `record` into `out` at `at` (`view` is over `out`); returns it as decoding those bytes
 * would: views into `out`, the timestamp as read back (the u64 the bytes hold).
 */
function encodeRecordAt(
  out: Uint8Array,
  view: DataView,
  at: number,
  record: RecordContent,
): DecodedRecord {
  view.setUint32(at, Math.floor(record.timestamp / twoPow32));
  view.setUint32(at + 4, record.timestamp >>> 0);
  view.setUint32(at + 8, record.headers.length);
  let offset = at + 12;
  const headers: Header[] = new Array(record.headers.length);
  for (let i = 0; i < record.headers.length; i++) {
    const { name, value } = record.headers[i]!;
    view.setUint32(offset, name.length);
    out.set(name, offset + 4);
    const nameView = out.subarray(offset + 4, offset + 4 + name.length);
    offset += 4 + name.length;
    view.setUint32(offset, value.length);
    out.set(value, offset + 4);
    headers[i] = { name: nameView, value: out.subarray(offset + 4, offset + 4 + value.length) };
    offset += 4 + value.length;
  }
  view.setUint32(offset, record.body.length);
  out.set(record.body, offset + 4);
  const body = out.subarray(offset + 4, offset + 4 + record.body.length);
  offset += 4 + record.body.length;
  const timestamp = view.getUint32(at) * twoPow32 + view.getUint32(at + 4);
  return { timestamp, headers, body, encoded: out.subarray(at, offset) };
}

/** A decoded record: views into the encoded bytes. */
export interface DecodedRecord {
  readonly timestamp: number;
  readonly headers: Header[];
  readonly body: Uint8Array;
  /** The record's own encoded bytes (a view), e.g. to store in the cache. */
  readonly encoded: Uint8Array;
}

/**
 * Decodes the record starting at `offset` of `bytes`; returns it and the offset after it.
 * Throws `RecordDecodeError` on any length that points outside `bytes`.
 */
export function decodeRecordAt(bytes: Uint8Array, offset: number): [DecodedRecord, number] {
  // Byte reads, not a `DataView`: this runs once per record read, and a view was an object each.
  const start = offset;
  need(bytes, offset, 12);
  const timestamp = readU64(bytes, offset);
  const headerCount = readU32(bytes, offset + 8);
  offset += 12;
  const headers: Header[] = [];
  for (let i = 0; i < headerCount; i++) {
    need(bytes, offset, 4);
    const nameLength = readU32(bytes, offset);
    need(bytes, offset, 4 + nameLength + 4);
    const name = bytes.subarray(offset + 4, offset + 4 + nameLength);
    offset += 4 + nameLength;
    const valueLength = readU32(bytes, offset);
    need(bytes, offset, 4 + valueLength);
    const value = bytes.subarray(offset + 4, offset + 4 + valueLength);
    offset += 4 + valueLength;
    headers.push({ name, value });
  }
  need(bytes, offset, 4);
  const bodyLength = readU32(bytes, offset);
  need(bytes, offset, 4 + bodyLength);
  const body = bytes.subarray(offset + 4, offset + 4 + bodyLength);
  offset += 4 + bodyLength;
  return [{ timestamp, headers, body, encoded: bytes.subarray(start, offset) }, offset];
}

/**
 * Throws `RecordDecodeError` unless `n` bytes are left at `offset`. A module function rather than
 * a closure in `decodeRecordAt`: that runs once per record served, and a closure there was an
 * allocation (and, under tsx's keep-names transform, a `defineProperty` call) per record.
 */
function need(bytes: Uint8Array, offset: number, n: number): void {
  if (offset + n > bytes.length) {
    throw new RecordDecodeError(`record truncated. offset=\`${offset}\` need=\`${n}\``);
  }
}

/** Decodes one record that fills `bytes` exactly (a cache value). */
export function decodeRecord(bytes: Uint8Array): DecodedRecord {
  const [record, end] = decodeRecordAt(bytes, 0);
  if (end !== bytes.length) {
    throw new RecordDecodeError(
      `trailing bytes after record. length=\`${bytes.length}\` end=\`${end}\``,
    );
  }
  return record;
}
