/**
 * Segment format, version 1: the immutable object a flush uploads to `wal/<id>`. The layout,
 * and why it is shaped so, is in docs/design/storage.md ("Segment format").
 *
 * Invariants: a segment is self-describing (id, writer epoch, write id) and fully checksummed
 * (header CRC, one CRC per entry payload, a trailer CRC chaining header, index and entry CRCs).
 * Records entries within one segment are contiguous per stream (asserted when sealing).
 *
 * Fault model: bytes from object storage may be truncated or corrupt; every length is checked
 * against the buffer and against `segmentBytesMax` before use, and every failure is a
 * `SegmentFormatError` (the caller decides whether that is fatal).
 */
import { assert } from "../../core/assert.js";
import { writeU32 } from "../../core/big-endian.js";
import { segmentBytesMax } from "../../core/limits.js";
import type { SeqNum } from "../../core/records.js";
import { crc32c } from "./crc32c.js";
import { type DecodedRecord, decodeRecordAt, RecordDecodeError } from "./record-codec.js";
import { bodyAsBuffer } from "../object-store/object-store.js";

export const segmentMagic = "TRIBSEG1";
export const segmentFormatVersion = 1;
export const segmentHeaderBytes = 64;
export const segmentIndexRowBytes = 29;
export const segmentTrailerBytes = 4;
export const writeIdBytes = 16;

const entryKindCode = { records: 1, control: 2 } as const;

/** Raised for bytes that are not a valid segment. */
export class SegmentFormatError extends Error {
  override readonly name = "SegmentFormatError";
}

/** A records entry to encode: one append batch of one stream, records already encoded. */
export interface RecordsEntryInput {
  readonly kind: "records";
  readonly streamId: number;
  readonly firstSeqNum: SeqNum;
  /** Each record encoded by `encodeRecord`. */
  readonly encodedRecords: readonly Uint8Array[];
}

/** A control entry: a UTF-8 JSON control-plane operation (storage/wal/entries.ts). */
export interface ControlEntryInput {
  readonly kind: "control";
  readonly payload: Uint8Array;
}

export type SegmentEntryInput = RecordsEntryInput | ControlEntryInput;

/** The fixed header of a segment. */
export interface SegmentHeader {
  readonly walId: number;
  readonly writerEpoch: number;
  readonly writeId: Uint8Array;
  readonly entryCount: number;
  readonly indexBytes: number;
  readonly bodyBytes: number;
}

/** One index row: where an entry's payload is and what it holds. */
export interface SegmentIndexRow {
  readonly kind: "records" | "control";
  readonly streamId: number;
  readonly firstSeqNum: SeqNum;
  readonly recordCount: number;
  readonly bodyOffset: number;
  readonly payloadBytes: number;
}

export type SegmentEntry =
  | {
      readonly kind: "records";
      readonly streamId: number;
      readonly firstSeqNum: SeqNum;
      readonly records: readonly DecodedRecord[];
    }
  | { readonly kind: "control"; readonly payload: Uint8Array };

/** A decoded segment; entries are views into the downloaded bytes. */
export interface Segment {
  readonly header: SegmentHeader;
  readonly entries: readonly SegmentEntry[];
}

const twoPow32 = 0x1_0000_0000;

function setU64(view: DataView, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `u64 out of range: ${value}`);
  view.setUint32(offset, Math.floor(value / twoPow32));
  view.setUint32(offset + 4, value >>> 0);
}

function getU64(view: DataView, offset: number): number {
  const value = view.getUint32(offset) * twoPow32 + view.getUint32(offset + 4);
  if (!Number.isSafeInteger(value))
    throw new SegmentFormatError(`u64 too large. offset=\`${offset}\``);
  return value;
}

function payloadBytesOf(entry: SegmentEntryInput): number {
  if (entry.kind === "control") return entry.payload.length;
  let bytes = 0;
  for (const record of entry.encodedRecords) bytes += record.length;
  return bytes;
}

/** The encoded size of a segment holding `entries`, to cut segments at a target size. */
export function encodedSegmentBytes(entries: readonly SegmentEntryInput[]): number {
  let bytes = segmentHeaderBytes + segmentTrailerBytes;
  for (const entry of entries) bytes += segmentIndexRowBytes + payloadBytesOf(entry) + 4;
  return bytes;
}

/**
 * A records entry's payload bytes below which it is copied into the segment's own buffer rather
 * than kept as a part of its own (ours): a part costs an iovec and a CRC call, a copy of a few KiB
 * less than that, and a segment of many small entries would otherwise be thousands of parts.
 */
const payloadPartBytesMin = 4096;

/**
 * A segment as the parts it is written from, back to back (`ObjectBody`): its header and index
 * first (always one part), then each entry's payload and CRC, and the trailer. A records entry's
 * payload of at least `payloadPartBytesMin` whose records lie back to back in one buffer (one
 * append's batch) is a view of that buffer, not a copy: the write path then copies no record byte
 * into its segments. Everything else is copied into one buffer of the segment's own.
 */
export interface EncodedSegment {
  readonly parts: readonly Uint8Array[];
  readonly byteLength: number;
}

/** A segment downloaded or read whole, as an `EncodedSegment` of one part. */
export function encodedSegmentOf(bytes: Uint8Array): EncodedSegment {
  return { parts: [bytes], byteLength: bytes.length };
}

/** The header and index of an encoded segment (its first part holds both). */
export function segmentHeadOf(segment: EncodedSegment): Uint8Array {
  return segment.parts[0]!;
}

/**
 * Encodes a segment into one buffer. Asserts per-stream seq-num contiguity across its records
 * entries, and the size bound `decodeSegmentHeader` checks.
 */
export function encodeSegment(options: {
  readonly walId: number;
  readonly writerEpoch: number;
  readonly writeId: Uint8Array;
  readonly entries: readonly SegmentEntryInput[];
}): Uint8Array {
  const { parts } = encodeSegmentParts(options);
  return bodyAsBuffer(parts);
}

/** The records' bytes as one view when they lie back to back in one buffer, else undefined. */
function contiguousView(records: readonly Uint8Array[]): Uint8Array | undefined {
  const first = records[0];
  if (first === undefined) return undefined;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < records.length; i++) {
    const record = records[i]!;
    if (record.buffer !== first.buffer || record.byteOffset !== end) return undefined;
    end += record.length;
  }
  return new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
}

/**
 * Encodes a segment as parts (`EncodedSegment`). Asserts per-stream seq-num contiguity across its
 * records entries, and the size bound `decodeSegmentHeader` checks.
 */
export function encodeSegmentParts(options: {
  readonly walId: number;
  readonly writerEpoch: number;
  readonly writeId: Uint8Array;
  readonly entries: readonly SegmentEntryInput[];
}): EncodedSegment {
  const { entries } = options;
  assert(options.writeId.length === writeIdBytes, "write id must be 16 bytes");
  const nextSeqNumByStream = new Map<number, number>();
  for (const entry of entries) {
    if (entry.kind !== "records") continue;
    assert(entry.encodedRecords.length > 0, "a records entry holds at least one record");
    const expected = nextSeqNumByStream.get(entry.streamId);
    assert(
      expected === undefined || expected === entry.firstSeqNum,
      `seq nums not contiguous in segment: stream ${entry.streamId} expected ${expected} got ${entry.firstSeqNum}`,
    );
    nextSeqNumByStream.set(entry.streamId, entry.firstSeqNum + entry.encodedRecords.length);
  }

  const totalBytes = encodedSegmentBytes(entries);
  // Paired with `decodeSegmentHeader`'s check: a segment it would reject must never be written,
  // or an acknowledged segment would be unreadable at recovery.
  assert(
    totalBytes <= segmentBytesMax,
    `segment larger than allowed. bytes=\`${totalBytes}\` max=\`${segmentBytesMax}\``,
  );
  const indexBytes = segmentIndexRowBytes * entries.length;
  const bodyBytes = totalBytes - segmentHeaderBytes - indexBytes - segmentTrailerBytes;
  const bodyStart = segmentHeaderBytes + indexBytes;

  // Which payloads stay views of their records' buffer; the rest is copied into `own`.
  const views: (Uint8Array | undefined)[] = entries.map((entry) => {
    if (entry.kind !== "records") return undefined;
    const view = contiguousView(entry.encodedRecords);
    return view !== undefined && view.length >= payloadPartBytesMin ? view : undefined;
  });
  let viewedBytes = 0;
  for (const view of views) viewedBytes += view?.length ?? 0;
  // The segment's own buffer: header, index, and everything not viewed, in segment order.
  const own = new Uint8Array(totalBytes - viewedBytes);
  const view = new DataView(own.buffer);

  for (let i = 0; i < segmentMagic.length; i++) own[i] = segmentMagic.charCodeAt(i);
  view.setUint16(8, segmentFormatVersion);
  view.setUint16(10, 0);
  view.setUint32(12, entries.length);
  setU64(view, 16, options.walId);
  setU64(view, 24, options.writerEpoch);
  own.set(options.writeId, 32);
  view.setUint32(48, indexBytes);
  view.setUint32(52, bodyBytes);
  view.setUint32(56, 0);
  view.setUint32(60, crc32c(own.subarray(0, 60)));

  const parts: Uint8Array[] = [];
  /** Where the next byte goes in `own`, and where the part of `own` not yet cut began. */
  let ownAt = bodyStart;
  let ownPartStart = 0;
  const cutOwn = (): void => {
    if (ownAt > ownPartStart) parts.push(own.subarray(ownPartStart, ownAt));
    ownPartStart = ownAt;
  };
  const entryCrcs: number[] = [];
  let bodyOffset = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const row = segmentHeaderBytes + i * segmentIndexRowBytes;
    const payloadBytes = payloadBytesOf(entry);
    view.setUint8(row, entryKindCode[entry.kind]);
    if (entry.kind === "records") {
      setU64(view, row + 1, entry.streamId);
      setU64(view, row + 9, entry.firstSeqNum);
      view.setUint32(row + 17, entry.encodedRecords.length);
    } else {
      setU64(view, row + 1, 0);
      setU64(view, row + 9, 0);
      view.setUint32(row + 17, 0);
    }
    view.setUint32(row + 21, bodyOffset);
    view.setUint32(row + 25, payloadBytes);

    const payloadView = views[i];
    let payloadCrc: number;
    if (payloadView !== undefined) {
      assert(payloadView.length === payloadBytes, "a viewed payload is the entry's records");
      cutOwn();
      parts.push(payloadView);
      payloadCrc = crc32c(payloadView);
    } else {
      const payloadStart = ownAt;
      if (entry.kind === "records") {
        for (const record of entry.encodedRecords) {
          own.set(record, ownAt);
          ownAt += record.length;
        }
      } else {
        own.set(entry.payload, ownAt);
        ownAt += entry.payload.length;
      }
      assert(ownAt - payloadStart === payloadBytes, "a copied payload is the entry's records");
      payloadCrc = crc32c(own.subarray(payloadStart, ownAt));
    }
    view.setUint32(ownAt, payloadCrc);
    ownAt += 4;
    entryCrcs.push(payloadCrc);
    bodyOffset += payloadBytes + 4;
  }
  assert(bodyOffset === bodyBytes, "segment body size mismatch");
  // The trailer chains the header, the index and each entry's CRC (as read from the segment).
  let trailerCrc = crc32c(own.subarray(0, segmentHeaderBytes));
  trailerCrc = crc32c(own.subarray(segmentHeaderBytes, bodyStart), trailerCrc);
  const crcBytes = new Uint8Array(4);
  for (const entryCrc of entryCrcs) {
    writeU32(crcBytes, 0, entryCrc);
    trailerCrc = crc32c(crcBytes, trailerCrc);
  }
  view.setUint32(ownAt, trailerCrc);
  ownAt += 4;
  assert(ownAt === own.length, "the segment's own buffer is filled exactly");
  cutOwn();
  assert(parts[0]!.length >= bodyStart, "the first part holds the header and the index");
  return { parts, byteLength: totalBytes };
}

/** Decodes and verifies the 64-byte header (e.g. from a range GET). */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader {
  if (bytes.length < segmentHeaderBytes) {
    throw new SegmentFormatError(`segment header truncated. length=\`${bytes.length}\``);
  }
  for (let i = 0; i < segmentMagic.length; i++) {
    if (bytes[i] !== segmentMagic.charCodeAt(i)) throw new SegmentFormatError("bad segment magic");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, segmentHeaderBytes);
  if (view.getUint32(60) !== crc32c(bytes.subarray(0, 60))) {
    throw new SegmentFormatError("segment header checksum mismatch");
  }
  const version = view.getUint16(8);
  if (version !== segmentFormatVersion) {
    throw new SegmentFormatError(`unsupported segment version. version=\`${version}\``);
  }
  const entryCount = view.getUint32(12);
  const indexBytes = view.getUint32(48);
  const bodyBytes = view.getUint32(52);
  if (indexBytes !== entryCount * segmentIndexRowBytes) {
    throw new SegmentFormatError(`segment index size mismatch. entries=\`${entryCount}\``);
  }
  if (segmentHeaderBytes + indexBytes + bodyBytes + segmentTrailerBytes > segmentBytesMax) {
    throw new SegmentFormatError(`segment larger than allowed. body=\`${bodyBytes}\``);
  }
  return {
    walId: getU64(view, 16),
    writerEpoch: getU64(view, 24),
    writeId: bytes.slice(32, 48),
    entryCount,
    indexBytes,
    bodyBytes,
  };
}

/** Decodes the index rows that follow the header (`bytes` = exactly the index). */
export function decodeSegmentIndex(header: SegmentHeader, bytes: Uint8Array): SegmentIndexRow[] {
  if (bytes.length !== header.indexBytes) {
    throw new SegmentFormatError(`segment index truncated. length=\`${bytes.length}\``);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows: SegmentIndexRow[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const row = i * segmentIndexRowBytes;
    const code = view.getUint8(row);
    const kind =
      code === entryKindCode.records
        ? "records"
        : code === entryKindCode.control
          ? "control"
          : undefined;
    if (kind === undefined) throw new SegmentFormatError(`unknown entry kind. kind=\`${code}\``);
    const bodyOffset = view.getUint32(row + 21);
    const payloadBytes = view.getUint32(row + 25);
    if (bodyOffset + payloadBytes + 4 > header.bodyBytes) {
      throw new SegmentFormatError(`entry outside the segment body. entry=\`${i}\``);
    }
    rows.push({
      kind,
      streamId: getU64(view, row + 1),
      firstSeqNum: getU64(view, row + 9),
      recordCount: view.getUint32(row + 17),
      bodyOffset,
      payloadBytes,
    });
  }
  return rows;
}

/**
 * Decodes one entry from its payload followed by its 4-byte CRC (as stored in the body, e.g. from
 * a range GET of `[bodyStart + bodyOffset, + payloadBytes + 4)`), verifying the CRC.
 */
export function decodeSegmentEntry(row: SegmentIndexRow, bytesWithCrc: Uint8Array): SegmentEntry {
  if (bytesWithCrc.length !== row.payloadBytes + 4) {
    throw new SegmentFormatError(`entry truncated. length=\`${bytesWithCrc.length}\``);
  }
  const payload = bytesWithCrc.subarray(0, row.payloadBytes);
  const stored = new DataView(
    bytesWithCrc.buffer,
    bytesWithCrc.byteOffset + row.payloadBytes,
    4,
  ).getUint32(0);
  if (stored !== crc32c(payload)) throw new SegmentFormatError("entry checksum mismatch");
  if (row.kind === "control") return { kind: "control", payload };
  const records: DecodedRecord[] = [];
  let offset = 0;
  try {
    for (let i = 0; i < row.recordCount; i++) {
      const [record, next] = decodeRecordAt(payload, offset);
      records.push(record);
      offset = next;
    }
  } catch (error) {
    if (error instanceof RecordDecodeError)
      throw new SegmentFormatError(error.message, { cause: error });
    throw error;
  }
  if (offset !== payload.length) throw new SegmentFormatError("trailing bytes in records entry");
  return { kind: "records", streamId: row.streamId, firstSeqNum: row.firstSeqNum, records };
}

/** Where an entry's payload (with its CRC) lies in the whole segment, for range reads. */
export function entryByteRange(
  header: SegmentHeader,
  row: SegmentIndexRow,
): { start: number; end: number } {
  const start = segmentHeaderBytes + header.indexBytes + row.bodyOffset;
  return { start, end: start + row.payloadBytes + 4 };
}

/** Decodes and fully verifies a whole segment. */
export function decodeSegment(bytes: Uint8Array): Segment {
  const header = decodeSegmentHeader(bytes);
  const totalBytes =
    segmentHeaderBytes + header.indexBytes + header.bodyBytes + segmentTrailerBytes;
  if (bytes.length !== totalBytes) {
    throw new SegmentFormatError(
      `segment size mismatch. expected=\`${totalBytes}\` actual=\`${bytes.length}\``,
    );
  }
  const indexBytes = bytes.subarray(segmentHeaderBytes, segmentHeaderBytes + header.indexBytes);
  const rows = decodeSegmentIndex(header, indexBytes);
  let trailerCrc = crc32c(bytes.subarray(0, segmentHeaderBytes + header.indexBytes));
  const entries: SegmentEntry[] = [];
  for (const row of rows) {
    const range = entryByteRange(header, row);
    const withCrc = bytes.subarray(range.start, range.end);
    entries.push(decodeSegmentEntry(row, withCrc));
    trailerCrc = crc32c(withCrc.subarray(row.payloadBytes), trailerCrc);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(totalBytes - segmentTrailerBytes) !== trailerCrc) {
    throw new SegmentFormatError("segment trailer checksum mismatch");
  }
  return { header, entries };
}
