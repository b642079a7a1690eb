// Goal: the hand-written `decodeAppendInput` gives exactly what the protobuf-es route gives
// (`appendInputFromProto(decodeAppendInputProto(bytes))`), and finds malformed every input that
// route finds malformed. Method: fast-check messages (0–5 records, 0–3 headers, bodies 0–300
// bytes, u64 values at the varint and safe-integer boundaries up to 2^64 − 1, optional fields
// absent or present with their default) encoded by protobuf-es; the same with unknown fields of
// every wire type (groups included) inside records and the message, and two encodings
// concatenated (protobuf's merge). Then damaged encodings (bytes flipped, truncated): whatever
// this accepts (or finds out of range), protobuf-es gives the same; whatever protobuf-es finds
// malformed, this does too.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { AppendInputSchema, AppendRecordSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { S2Error } from "../../core/errors.js";
import type { AppendInput } from "../../core/records.js";
import { decodeAppendInput } from "./append-input-decoder.js";
import { appendInputFromProto, decodeAppendInputProto } from "./records-proto.js";

type Outcome =
  | { readonly input: AppendInput }
  | { readonly code: string; readonly message: string };

function outcome(decode: () => AppendInput): Outcome {
  try {
    return { input: decode() };
  } catch (error) {
    if (!(error instanceof S2Error)) throw error;
    return { code: error.code, message: error.message };
  }
}

const reference = (bytes: Uint8Array): Outcome =>
  outcome(() => appendInputFromProto(decodeAppendInputProto(bytes, "bad_frame")));

const decoded = (bytes: Uint8Array): Outcome =>
  outcome(() => decodeAppendInput(bytes, "bad_frame"));

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function varint(value: bigint): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return Uint8Array.from(out);
}

const tag = (field: number, wire: number): Uint8Array => varint(BigInt((field << 3) | wire));

/** Unknown fields (numbers 9–15) of every wire type, a group with a field inside included. */
const unknownField = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => concat([tag(9, 0), varint(v)])),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => concat([tag(10, 1), b])),
  fc.uint8Array({ maxLength: 20 }).map((b) => concat([tag(11, 2), varint(BigInt(b.length)), b])),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => concat([tag(12, 5), b])),
  fc
    .bigInt({ min: 0n, max: 1000n })
    .map((v) => concat([tag(13, 3), tag(1, 0), varint(v), tag(13, 4)])),
);

const u64 = fc.oneof(
  fc.constantFrom(0n, 1n, 127n, 128n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n - 1n, 2n ** 53n),
  fc.constantFrom(2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 53n - 1n }),
);

const header = fc.record({
  name: fc.uint8Array({ maxLength: 12 }),
  value: fc.uint8Array({ maxLength: 20 }),
});

const record = fc.record({
  timestamp: fc.option(u64, { nil: undefined }),
  headers: fc.array(header, { maxLength: 3 }),
  body: fc.uint8Array({ maxLength: 300 }),
  unknown: fc.array(unknownField, { maxLength: 2 }),
});

const message = fc.record({
  records: fc.array(record, { maxLength: 5 }),
  matchSeqNum: fc.option(u64, { nil: undefined }),
  fencingToken: fc.option(fc.string({ maxLength: 16 }), { nil: undefined }),
  unknown: fc.array(unknownField, { maxLength: 3 }),
});

type Message = typeof message extends fc.Arbitrary<infer T> ? T : never;

/** protobuf-es's encoding, with each record's and the message's unknown fields appended. */
function encode(value: Message): Uint8Array {
  const records = value.records.map((r) => {
    const bytes = concat([
      toBinary(
        AppendRecordSchema,
        create(AppendRecordSchema, {
          ...(r.timestamp !== undefined && { timestamp: r.timestamp }),
          headers: r.headers,
          body: r.body,
        }),
      ),
      ...r.unknown,
    ]);
    return concat([tag(1, 2), varint(BigInt(bytes.length)), bytes]);
  });
  const rest = toBinary(
    AppendInputSchema,
    create(AppendInputSchema, {
      ...(value.matchSeqNum !== undefined && { matchSeqNum: value.matchSeqNum }),
      ...(value.fencingToken !== undefined && { fencingToken: value.fencingToken }),
    }),
  );
  return concat([...value.unknown, ...records, rest]);
}

describe("decodeAppendInput", () => {
  it("decodes what protobuf-es decodes", () => {
    fc.assert(
      fc.property(message, (value) => {
        const bytes = encode(value);
        assert.deepEqual(decoded(bytes), reference(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("decodes two encodings concatenated as their merge", () => {
    fc.assert(
      fc.property(message, message, (first, second) => {
        const bytes = concat([encode(first), encode(second)]);
        assert.deepEqual(decoded(bytes), reference(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it("refuses what protobuf-es refuses, and accepts nothing it would decode otherwise", () => {
    fc.assert(
      fc.property(
        message,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.option(fc.nat(), { nil: undefined }),
        (value, flips, truncateAt) => {
          let bytes = encode(value);
          if (bytes.length === 0) return;
          bytes = bytes.slice();
          for (const [position, mask] of flips) bytes[position % bytes.length]! ^= mask;
          if (truncateAt !== undefined) bytes = bytes.subarray(0, truncateAt % bytes.length);
          const ours = decoded(bytes);
          const theirs = reference(bytes);
          // Accepted, or out of range after decoding: exactly as protobuf-es.
          if ("input" in ours || ours.code !== "bad_frame") assert.deepEqual(ours, theirs);
          // Malformed for protobuf-es: malformed here too. (The converse need not hold: this
          // decoder refuses some input protobuf-es reads on, see its header.)
          if ("code" in theirs && theirs.code === "bad_frame")
            assert.deepEqual(ours, { ...ours, code: "bad_frame" });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("reports a u64 past 2^53 − 1 as 422 invalid only once the message has decoded", () => {
    const bytes = encode({
      records: [{ timestamp: 2n ** 60n, headers: [], body: new Uint8Array(1), unknown: [] }],
      matchSeqNum: undefined,
      fencingToken: undefined,
      unknown: [],
    });
    const ours = decoded(bytes);
    assert.ok("code" in ours && ours.code === "invalid", JSON.stringify(ours));
    assert.deepEqual(ours, reference(bytes));
    // The same record, then a truncated one: malformed wins, as with protobuf-es.
    const damaged = concat([bytes, tag(1, 2), varint(10n)]);
    assert.equal((decoded(damaged) as { code: string }).code, "bad_frame");
    assert.equal((reference(damaged) as { code: string }).code, "bad_frame");
  });

  it("refuses an invalid UTF-8 fencing token and groups nested past the limit", () => {
    const badToken = concat([tag(3, 2), varint(2n), Uint8Array.from([0xc3, 0x28])]);
    assert.equal((decoded(badToken) as { code: string }).code, "bad_frame");
    assert.equal((reference(badToken) as { code: string }).code, "bad_frame");
    const deep = concat([
      ...Array.from({ length: 200 }, () => tag(13, 3)),
      ...Array.from({ length: 200 }, () => tag(13, 4)),
    ]);
    assert.equal((decoded(deep) as { code: string }).code, "bad_frame");
  });

  it("gives bodies as views of the input, not copies", () => {
    const body = new Uint8Array(64).fill(7);
    const bytes = toBinary(
      AppendInputSchema,
      create(AppendInputSchema, { records: [{ body }, { body }] }),
    );
    const whole = decoded(bytes);
    assert.ok("input" in whole);
    for (const r of whole.input.records) {
      assert.equal(r.body.buffer, bytes.buffer);
      assert.deepEqual(r.body, body);
    }
  });
});
