// Goal: protobuf record messages (S2-API.md §5.9) convert to and from the domain types without
// loss, and u64 values outside the safe range are 422 instead of being rounded. Method: encode
// with protobuf-es, decode through the converters (and back), plus fast-check round trips and
// garbage inputs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import {
  AppendAckSchema,
  AppendInputSchema,
  ReadBatchSchema,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { S2Error } from "../../core/errors.js";
import type { SequencedRecord } from "../../core/records.js";
import {
  appendAckToProto,
  appendInputFromProto,
  decodeAppendInputProto,
  encodeAppendAckProto,
  encodeReadBatchProto,
  readBatchToProto,
  u64ToNumber,
} from "./records-proto.js";

const utf8 = (text: string) => new TextEncoder().encode(text);

function assertCode(run: () => unknown, code: string): void {
  assert.throws(run, (error: unknown) => error instanceof S2Error && error.code === code);
}

describe("protobuf records", () => {
  it("converts an AppendInput, keeping absent optionals absent", () => {
    const bytes = toBinary(
      AppendInputSchema,
      create(AppendInputSchema, {
        records: [
          { body: utf8("a") },
          { timestamp: 5n, headers: [{ name: utf8("k"), value: utf8("v") }], body: utf8("b") },
        ],
        matchSeqNum: 0n,
        fencingToken: "",
      }),
    );
    const input = appendInputFromProto(decodeAppendInputProto(bytes, "bad_proto"));
    assert.deepEqual(input, {
      records: [
        { headers: [], body: utf8("a") },
        { timestamp: 5, headers: [{ name: utf8("k"), value: utf8("v") }], body: utf8("b") },
      ],
      matchSeqNum: 0,
      fencingToken: "",
    });
    const bare = appendInputFromProto(
      decodeAppendInputProto(
        toBinary(AppendInputSchema, create(AppendInputSchema, { records: [{}] })),
        "bad_proto",
      ),
    );
    assert.deepEqual(bare, { records: [{ headers: [], body: new Uint8Array() }] });
  });

  it("rejects garbage with the caller's code", () => {
    for (const garbage of [utf8("garbage garbage"), new Uint8Array([0xff, 0xff, 0xff])]) {
      assertCode(() => decodeAppendInputProto(garbage, "bad_proto"), "bad_proto");
      assertCode(() => decodeAppendInputProto(garbage, "bad_frame"), "bad_frame");
    }
  });

  it("rejects u64 values above 2^53 - 1 with invalid", () => {
    assert.equal(u64ToNumber(BigInt(Number.MAX_SAFE_INTEGER), "x"), Number.MAX_SAFE_INTEGER);
    assertCode(() => u64ToNumber(2n ** 53n, "x"), "invalid");
    assertCode(
      () =>
        appendInputFromProto(
          create(AppendInputSchema, { records: [{ timestamp: 2n ** 64n - 1n }] }),
        ),
      "invalid",
    );
    assertCode(
      () =>
        appendInputFromProto(create(AppendInputSchema, { records: [], matchSeqNum: 2n ** 60n })),
      "invalid",
    );
  });

  it("encodes read batches and acks", () => {
    const ack = {
      start: { seqNum: 1, timestamp: 2 },
      end: { seqNum: 3, timestamp: 4 },
      tail: { seqNum: 5, timestamp: 6 },
    };
    const decodedAck = fromBinary(AppendAckSchema, encodeAppendAckProto(ack));
    assert.equal(decodedAck.start?.seqNum, 1n);
    assert.equal(decodedAck.end?.timestamp, 4n);
    assert.equal(decodedAck.tail?.seqNum, 5n);
    assert.equal(appendAckToProto(ack).tail?.timestamp, 6n);

    const heartbeat = fromBinary(
      ReadBatchSchema,
      encodeReadBatchProto({ records: [], tail: { seqNum: 9, timestamp: 10 } }),
    );
    assert.equal(heartbeat.records.length, 0);
    assert.equal(heartbeat.tail?.seqNum, 9n);
    assert.equal(readBatchToProto({ records: [] }).tail, undefined);
  });

  it("round-trips arbitrary sequenced records", () => {
    const arbitraryRecord = fc.record({
      seqNum: fc.maxSafeNat(),
      timestamp: fc.maxSafeNat(),
      headers: fc.array(fc.record({ name: fc.uint8Array(), value: fc.uint8Array() }), {
        maxLength: 3,
      }),
      body: fc.uint8Array({ maxLength: 32 }),
    });
    fc.assert(
      fc.property(fc.array(arbitraryRecord, { maxLength: 5 }), (records: SequencedRecord[]) => {
        const decoded = fromBinary(ReadBatchSchema, encodeReadBatchProto({ records }));
        assert.deepEqual(
          decoded.records.map((record) => ({
            seqNum: Number(record.seqNum),
            timestamp: Number(record.timestamp),
            headers: record.headers.map((h) => ({ name: h.name, value: h.value })),
            body: record.body,
          })),
          records.map((record) => ({ ...record, headers: record.headers.map((h) => ({ ...h })) })),
        );
      }),
    );
  });
});
