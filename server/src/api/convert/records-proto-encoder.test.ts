// Goal: the hand-written `encodeReadBatchProto` writes exactly the bytes protobuf-es writes for
// the same batch, and those bytes decode back to the batch. Method: fast-check batches (0–20
// records, 0–4 headers, bodies 0–300 bytes, some of them views into larger buffers, u64 values at
// the varint boundaries up to 2^53 − 1, tail absent, zero or set) compared byte for byte with
// `toBinary(ReadBatchSchema, create(ReadBatchSchema, …))`, then decoded with `fromBinary`; plus
// lengths whose varints take 1 to 4 bytes. The chunked form (`encodeReadBatchProtoChunks`, bodies
// by reference) is checked on every batch at several thresholds: its chunks concatenate to the
// same bytes, and each body at or above the threshold is a chunk that is the record's own view.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { ReadBatchSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import type { SequencedRecord, StreamPosition } from "../../core/records.js";
import { encodeReadBatchProto, encodeReadBatchProtoChunks } from "./records-proto.js";

interface Batch {
  readonly records: readonly SequencedRecord[];
  readonly tail?: StreamPosition | undefined;
}

/** protobuf-es's encoding of the batch, built without the module's converters. */
function reference(batch: Batch): Uint8Array {
  return toBinary(
    ReadBatchSchema,
    create(ReadBatchSchema, {
      records: batch.records.map((record) => ({
        seqNum: BigInt(record.seqNum),
        timestamp: BigInt(record.timestamp),
        headers: record.headers.map((header) => ({ name: header.name, value: header.value })),
        body: record.body,
      })),
      ...(batch.tail !== undefined && {
        tail: { seqNum: BigInt(batch.tail.seqNum), timestamp: BigInt(batch.tail.timestamp) },
      }),
    }),
  );
}

/**
 * Encodes with the hand-written encoder, without and with headroom; asserts the reference's bytes
 * and the round trip.
 */
function check(batch: Batch): void {
  const bytes = encodeReadBatchProto(batch);
  assert.deepEqual(bytes, reference(batch));
  // With headroom (the S2S read path frames the message in place): zeroes, then the same bytes.
  const withHeadroom = encodeReadBatchProto(batch, 4);
  assert.deepEqual(withHeadroom.subarray(0, 4), new Uint8Array(4));
  assert.deepEqual(withHeadroom.subarray(4), bytes);
  for (const bodyBytesByReferenceMin of [1, 2, 100, 301]) {
    const { chunks, messageBytes } = encodeReadBatchProtoChunks(batch, {
      headroomBytes: 4,
      bodyBytesByReferenceMin,
    });
    assert.equal(messageBytes, bytes.length);
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(withHeadroom));
    const referenced = batch.records.filter((r) => r.body.length >= bodyBytesByReferenceMin);
    for (const { body } of referenced) assert.ok(chunks.includes(body), "a body by reference");
    assert.ok(chunks.length >= 1 && chunks.length <= 2 * referenced.length + 1);
  }
  const decoded = fromBinary(ReadBatchSchema, bytes);
  assert.deepEqual(
    decoded.records.map((record) => ({
      seqNum: Number(record.seqNum),
      timestamp: Number(record.timestamp),
      headers: record.headers.map((h) => ({ name: h.name, value: h.value })),
      body: record.body,
    })),
    batch.records.map((record) => ({
      seqNum: record.seqNum,
      timestamp: record.timestamp,
      headers: record.headers.map((h) => ({
        name: Uint8Array.from(h.name),
        value: Uint8Array.from(h.value),
      })),
      body: Uint8Array.from(record.body),
    })),
  );
  assert.deepEqual(
    decoded.tail === undefined
      ? undefined
      : { seqNum: Number(decoded.tail.seqNum), timestamp: Number(decoded.tail.timestamp) },
    batch.tail === undefined ? undefined : { ...batch.tail },
  );
}

const boundaries = [
  0,
  1,
  127,
  128,
  16_383,
  16_384,
  2 ** 21 - 1,
  2 ** 21,
  2 ** 28 - 1,
  2 ** 28,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 35 - 1,
  2 ** 35,
  2 ** 42,
  2 ** 49 - 1,
  2 ** 49,
  Number.MAX_SAFE_INTEGER,
];
const u64 = fc.oneof(fc.constantFrom(...boundaries), fc.nat(), fc.maxSafeNat());

/** Bytes up to `maxLength`, often empty, sometimes a view with a non-zero offset. */
function bytes(maxLength: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.constant(new Uint8Array()),
    fc.uint8Array({ maxLength }),
    fc
      .uint8Array({ minLength: 2, maxLength: maxLength + 2 })
      .map((array) => array.subarray(1, array.length - 1)),
  );
}

const record: fc.Arbitrary<SequencedRecord> = fc.record({
  seqNum: u64,
  timestamp: u64,
  headers: fc.array(fc.record({ name: bytes(16), value: bytes(40) }), { maxLength: 4 }),
  body: bytes(300),
});

const position: fc.Arbitrary<StreamPosition> = fc.record({ seqNum: u64, timestamp: u64 });

describe("hand-written ReadBatch encoder", () => {
  it("writes protobuf-es's bytes for random batches", () => {
    fc.assert(
      fc.property(
        fc.array(record, { maxLength: 20 }),
        fc.option(fc.oneof(fc.constant({ seqNum: 0, timestamp: 0 }), position), {
          nil: undefined,
        }),
        (records, tail) => check({ records, tail }),
      ),
      { numRuns: 500 },
    );
  });

  it("handles an absent or zero tail and empty records", () => {
    check({ records: [] });
    check({ records: [], tail: undefined });
    check({ records: [], tail: { seqNum: 0, timestamp: 0 } });
    assert.deepEqual(encodeReadBatchProto({ records: [] }), new Uint8Array());
    assert.deepEqual(
      encodeReadBatchProto({ records: [], tail: { seqNum: 0, timestamp: 0 } }),
      new Uint8Array([0x12, 0x00]),
    );
    const empty = { seqNum: 0, timestamp: 0, headers: [], body: new Uint8Array() };
    check({ records: [empty, empty] });
    check({
      records: [{ ...empty, headers: [{ name: new Uint8Array(), value: new Uint8Array() }] }],
    });
  });

  it("sizes length prefixes of 1 to 4 bytes", () => {
    for (const length of [127, 128, 16_383, 16_384, 2 ** 21 - 1, 2 ** 21]) {
      const body = new Uint8Array(length).fill(7);
      check({
        records: [{ seqNum: length, timestamp: Number.MAX_SAFE_INTEGER, headers: [], body }],
        tail: { seqNum: length + 1, timestamp: 2 ** 32 },
      });
      check({
        records: [
          {
            seqNum: 1,
            timestamp: 2,
            headers: [{ name: new Uint8Array([1]), value: body }],
            body: new Uint8Array(),
          },
        ],
      });
    }
  });
});
