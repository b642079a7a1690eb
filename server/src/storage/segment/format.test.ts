// Goal: the segment format round-trips every entry exactly and rejects every corruption or
// truncation, and a segment encoded as parts keeps a large batch's payload as a view of it.
// Method: fast-check generated segments, then bit flips and cuts in each region.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../../core/assert.js";
import { segmentBytesMax } from "../../core/limits.js";
import {
  decodeSegment,
  decodeSegmentEntry,
  decodeSegmentHeader,
  decodeSegmentIndex,
  encodedSegmentBytes,
  encodeSegment,
  encodeSegmentParts,
  entryByteRange,
  type SegmentEntryInput,
  SegmentFormatError,
  segmentHeaderBytes,
} from "./format.js";
import { decodeRecord, encodeRecord, encodeRecordBatch } from "./record-codec.js";

const bytesArb = fc.uint8Array({ maxLength: 64 });
const recordArb = fc.record({
  timestamp: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  headers: fc.array(fc.record({ name: bytesArb, value: bytesArb }), { maxLength: 4 }),
  body: fc.uint8Array({ maxLength: 300 }),
});
const controlArb = fc
  .string({ maxLength: 80 })
  .map((text): SegmentEntryInput => ({ kind: "control", payload: new TextEncoder().encode(text) }));

/** Entries for up to 5 streams, each stream's batches contiguous from a random start. */
const entriesArb = fc
  .array(
    fc.oneof(
      fc.record({
        streamId: fc.integer({ min: 1, max: 5 }),
        records: fc.array(recordArb, { minLength: 1, maxLength: 5 }),
      }),
      controlArb,
    ),
    { maxLength: 12 },
  )
  .map((items) => {
    const next = new Map<number, number>();
    return items.map((item): SegmentEntryInput => {
      if ("kind" in item) return item;
      const firstSeqNum = next.get(item.streamId) ?? item.streamId * 1000;
      next.set(item.streamId, firstSeqNum + item.records.length);
      return {
        kind: "records",
        streamId: item.streamId,
        firstSeqNum,
        encodedRecords: item.records.map(encodeRecord),
      };
    });
  });

function segmentOf(entries: readonly SegmentEntryInput[], walId = 7): Uint8Array {
  return encodeSegment({ walId, writerEpoch: 3, writeId: new Uint8Array(16).fill(9), entries });
}

describe("segment format", () => {
  it("keeps a large payload of one batch as a view of it, and copies the rest into one buffer", () => {
    const content = (i: number, bytes: number) => ({
      timestamp: 1_700_000_000_000 + i,
      headers: [{ name: new Uint8Array([104]), value: new Uint8Array([i]) }],
      body: new Uint8Array(bytes).fill(i),
    });
    // One append of 20 KiB (a view), a small one, a control entry, and 8 KiB of records that lie
    // in buffers of their own (copied).
    const batch = encodeRecordBatch(Array.from({ length: 20 }, (_, i) => content(i, 1024)));
    const entries: SegmentEntryInput[] = [
      { kind: "records", streamId: 1, firstSeqNum: 0, encodedRecords: batch.map((r) => r.encoded) },
      {
        kind: "records",
        streamId: 2,
        firstSeqNum: 5,
        encodedRecords: [encodeRecord(content(1, 10)), encodeRecord(content(2, 10))],
      },
      { kind: "control", payload: new TextEncoder().encode('{"op":"x"}') },
      {
        kind: "records",
        streamId: 1,
        firstSeqNum: 20,
        encodedRecords: Array.from({ length: 8 }, (_, i) => encodeRecord(content(i, 1024))),
      },
    ];
    const options = { walId: 4, writerEpoch: 2, writeId: new Uint8Array(16).fill(1), entries };
    const { parts, byteLength } = encodeSegmentParts(options);
    const batchBuffer = batch[0]!.encoded.buffer;
    const views = parts.filter((part) => part.buffer === batchBuffer);
    assert.equal(views.length, 1, "the batch's payload is one part, a view of its buffer");
    assert.equal(
      views[0]!.length,
      batch.reduce((sum, record) => sum + record.encoded.length, 0),
    );
    assert.equal(parts.length, 3, "the header and index, the view, then one buffer of the rest");
    assert.equal(
      new Set(parts.filter((part) => part.buffer !== batchBuffer).map((part) => part.buffer)).size,
      1,
    );
    const bytes = new Uint8Array(Buffer.concat(parts));
    assert.equal(byteLength, bytes.length);
    assert.deepEqual(bytes, encodeSegment(options));
    const segment = decodeSegment(bytes);
    assert.deepEqual(
      segment.entries.map((entry) => (entry.kind === "records" ? entry.records.length : -1)),
      [20, 2, -1, 8],
    );
    const first = segment.entries[0]!;
    assert.ok(first.kind === "records");
    assert.deepEqual(first.records[7]!.body, new Uint8Array(1024).fill(7));
  });

  it("round-trips header, index and every record byte for byte", () => {
    fc.assert(
      fc.property(entriesArb, fc.nat({ max: 2 ** 40 }), (entries, walId) => {
        const bytes = segmentOf(entries, walId);
        assert.equal(bytes.length, encodedSegmentBytes(entries));
        const segment = decodeSegment(bytes);
        assert.equal(segment.header.walId, walId);
        assert.equal(segment.header.writerEpoch, 3);
        assert.deepEqual([...segment.header.writeId], new Array(16).fill(9));
        assert.equal(segment.entries.length, entries.length);
        entries.forEach((input, i) => {
          const entry = segment.entries[i]!;
          assert.equal(entry.kind, input.kind);
          if (input.kind === "control" && entry.kind === "control") {
            assert.deepEqual(entry.payload, input.payload);
          } else if (input.kind === "records" && entry.kind === "records") {
            assert.equal(entry.streamId, input.streamId);
            assert.equal(entry.firstSeqNum, input.firstSeqNum);
            assert.deepEqual(
              entry.records.map((record) => record.encoded),
              input.encodedRecords.map((encoded) => new Uint8Array(encoded)),
            );
            entry.records.forEach((record, j) => {
              const expected = decodeRecord(input.encodedRecords[j]!);
              assert.equal(record.timestamp, expected.timestamp);
              assert.deepEqual(record.body, expected.body);
              assert.deepEqual(record.headers, expected.headers);
            });
          }
        });
      }),
      { numRuns: 200 },
    );
  });

  it("reads one entry by range from the header and index alone", () => {
    const entries: SegmentEntryInput[] = [
      {
        kind: "records",
        streamId: 1,
        firstSeqNum: 0,
        encodedRecords: [encodeRecord({ timestamp: 1, headers: [], body: new Uint8Array([1]) })],
      },
      {
        kind: "records",
        streamId: 2,
        firstSeqNum: 5,
        encodedRecords: [encodeRecord({ timestamp: 2, headers: [], body: new Uint8Array([2, 2]) })],
      },
    ];
    const bytes = segmentOf(entries);
    const header = decodeSegmentHeader(bytes.subarray(0, segmentHeaderBytes));
    const rows = decodeSegmentIndex(
      header,
      bytes.subarray(segmentHeaderBytes, segmentHeaderBytes + header.indexBytes),
    );
    const row = rows.find((r) => r.streamId === 2)!;
    const range = entryByteRange(header, row);
    const entry = decodeSegmentEntry(row, bytes.subarray(range.start, range.end));
    assert.equal(entry.kind, "records");
    assert.ok(entry.kind === "records");
    assert.equal(entry.firstSeqNum, 5);
    assert.deepEqual([...entry.records[0]!.body], [2, 2]);
  });

  it("detects a flipped bit anywhere in the segment", () => {
    const entries: SegmentEntryInput[] = [
      { kind: "control", payload: new TextEncoder().encode('{"op":"x"}') },
      {
        kind: "records",
        streamId: 4,
        firstSeqNum: 9,
        encodedRecords: [
          encodeRecord({
            timestamp: 5,
            headers: [{ name: new Uint8Array([1]), value: new Uint8Array([2]) }],
            body: new Uint8Array(40).fill(7),
          }),
        ],
      },
    ];
    const bytes = segmentOf(entries);
    for (let offset = 0; offset < bytes.length; offset++) {
      for (const bit of [0, 7]) {
        const corrupt = new Uint8Array(bytes);
        corrupt[offset]! ^= 1 << bit;
        assert.throws(
          () => decodeSegment(corrupt),
          SegmentFormatError,
          `flip at byte ${offset} bit ${bit}`,
        );
      }
    }
  });

  it("rejects every truncation and trailing garbage", () => {
    const bytes = segmentOf([{ kind: "control", payload: new Uint8Array([1, 2, 3]) }]);
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(
        () => decodeSegment(bytes.subarray(0, length)),
        SegmentFormatError,
        `cut at ${length}`,
      );
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.throws(() => decodeSegment(longer), SegmentFormatError);
  });

  it("rejects a header that claims more than the size cap before allocating", () => {
    const bytes = segmentOf([]);
    const view = new DataView(bytes.buffer);
    view.setUint32(52, 0xffff_fff0);
    assert.throws(() => decodeSegmentHeader(bytes), SegmentFormatError);
  });

  it("refuses to encode a segment over the size cap the decoder checks (paired assertion)", () => {
    const headroom = encodedSegmentBytes([{ kind: "control", payload: new Uint8Array(0) }]);
    const fits: SegmentEntryInput = {
      kind: "control",
      payload: new Uint8Array(segmentBytesMax - headroom),
    };
    assert.equal(decodeSegment(segmentOf([fits])).entries.length, 1);
    const tooBig: SegmentEntryInput = {
      kind: "control",
      payload: new Uint8Array(1 + fits.payload.length),
    };
    assert.throws(() => segmentOf([tooBig]), AssertionError);
  });

  it("refuses to seal non-contiguous seq nums of one stream (writer-side assertion)", () => {
    const record = encodeRecord({ timestamp: 1, headers: [], body: new Uint8Array(0) });
    assert.throws(
      () =>
        segmentOf([
          { kind: "records", streamId: 1, firstSeqNum: 0, encodedRecords: [record] },
          { kind: "records", streamId: 1, firstSeqNum: 2, encodedRecords: [record] },
        ]),
      AssertionError,
    );
  });
});
