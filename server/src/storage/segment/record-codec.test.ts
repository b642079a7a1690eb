// Goal: `encodeRecordBatch` gives each record exactly the bytes `encodeRecord` gives it, back to
// back in one buffer for the whole batch (one allocation per batch, not one per record: issue 12),
// and returns the records decoded as views of that buffer. Method: batches with and without
// headers, empty bodies, one record and a timestamp past u64, compared with `encodeRecord` byte
// for byte and with `decodeRecord` of those bytes (the records are built as they are written).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RecordContent } from "../../core/records.js";
import { decodeRecord, encodeRecord, encodeRecordBatch } from "./record-codec.js";

const encoder = new TextEncoder();

const batch: RecordContent[] = [
  { timestamp: 1_700_000_000_123, headers: [], body: encoder.encode("first") },
  {
    timestamp: 2 ** 40 + 7,
    headers: [
      { name: encoder.encode("k"), value: encoder.encode("v") },
      { name: new Uint8Array(0), value: encoder.encode("fence") },
    ],
    body: new Uint8Array(0),
  },
  { timestamp: 0, headers: [], body: new Uint8Array(8192).fill(0xab) },
  // A timestamp past u64 is written modulo 2⁶⁴ (the APIs refuse any past 2⁵³ − 1 before it gets
  // here): the record gives what its bytes hold, as decoding them does.
  { timestamp: 2 ** 64 + 2 ** 20, headers: [], body: encoder.encode("late") },
];

describe("encodeRecordBatch", () => {
  it("encodes each record as encodeRecord does, back to back in one buffer", () => {
    const records = encodeRecordBatch(batch);
    assert.equal(records.length, batch.length);
    const buffer = records[0]!.encoded.buffer;
    let offset = 0;
    records.forEach((record, i) => {
      assert.equal(record.encoded.buffer, buffer, `record ${i} shares the batch's buffer`);
      assert.equal(record.body.buffer, buffer, `record ${i}'s body is a view of it`);
      for (const header of record.headers) {
        assert.equal(header.name.buffer, buffer, `record ${i}'s header names are views of it`);
        assert.equal(header.value.buffer, buffer, `record ${i}'s header values are views of it`);
      }
      assert.equal(record.encoded.byteOffset, offset, `record ${i} follows the one before`);
      assert.deepEqual(record.encoded, encodeRecord(batch[i]!));
      assert.deepEqual(record, decodeRecord(encodeRecord(batch[i]!)));
      offset += record.encoded.length;
    });
    assert.equal(buffer.byteLength, offset, "the buffer holds the batch and nothing else");
  });

  it("takes one record, and records of empty bodies", () => {
    const [only] = encodeRecordBatch([batch[1]!]);
    assert.deepEqual(only, decodeRecord(encodeRecord(batch[1]!)));
  });

  it("does not keep the caller's buffers", () => {
    const body = encoder.encode("mutable");
    const [record] = encodeRecordBatch([{ timestamp: 1, headers: [], body }]);
    body.fill(0);
    assert.equal(new TextDecoder().decode(record!.body), "mutable");
  });
});
