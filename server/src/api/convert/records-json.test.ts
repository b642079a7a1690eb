// Goal: records travel in JSON exactly as S2 lite renders and accepts them (S2-API.md §3.1
// `S2-Format`, §4.1, §5.6), with lite's 400 bad_json / 422 invalid split. Method: table cases per
// rule (formats, strict Base64, shapes, u64 range, omitted fields, lossy UTF-8) and fast-check
// round trips of arbitrary bytes through both formats.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { S2Error } from "../../core/errors.js";
import type { SequencedRecord } from "../../core/records.js";
import { parseJsonText } from "../json/json-body.js";
import {
  appendAckToJson,
  appendInputFromJson,
  decodeBase64Strict,
  decodeRecordBytes,
  encodeRecordBytes,
  parseRecordFormat,
  readBatchToJson,
  sequencedRecordToJson,
  tailResponseToJson,
} from "./records-json.js";

const bytes = (...values: number[]) => new Uint8Array(values);
const utf8 = (text: string) => new TextEncoder().encode(text);

function assertCode(run: () => unknown, code: string, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

describe("S2-Format header", () => {
  it("accepts raw, base64 and lite's aliases, trimmed; absent is raw", () => {
    assert.equal(parseRecordFormat(undefined), "raw");
    assert.equal(parseRecordFormat("raw"), "raw");
    assert.equal(parseRecordFormat("json"), "raw");
    assert.equal(parseRecordFormat(" base64 "), "base64");
    assert.equal(parseRecordFormat("json-binsafe"), "base64");
  });

  it("rejects anything else with bad_header", () => {
    for (const value of ["", "RAW", "Base64", "hex", "raw,base64"]) {
      assertCode(() => parseRecordFormat(value), "bad_header");
    }
  });
});

describe("record bytes", () => {
  it("decodes strict Base64 only", () => {
    assert.deepEqual(decodeBase64Strict(""), bytes());
    assert.deepEqual(decodeBase64Strict("dHJpbQ=="), utf8("trim"));
    assert.deepEqual(decodeBase64Strict("ZmVuY2U="), utf8("fence"));
    assert.deepEqual(decodeBase64Strict("AAAAAAAAAAI="), bytes(0, 0, 0, 0, 0, 0, 0, 2));
    for (const text of [
      "dHJpbQ",
      "dHJpbQ=",
      "dHJ pbQ==",
      "dHJpbR==",
      "d",
      "dHJpbQ==\n",
      "-_8=",
      "====",
    ]) {
      assert.equal(decodeBase64Strict(text), undefined, text);
    }
    assertCode(() => decodeRecordBytes("!!", "base64"), "invalid", /invalid Base64 encoding/);
  });

  it("renders raw bytes as lossy UTF-8, keeping a BOM", () => {
    assert.equal(encodeRecordBytes(utf8("héllo"), "raw"), "héllo");
    assert.equal(encodeRecordBytes(bytes(0x61, 0xff, 0x7a), "raw"), "a\uFFFDz");
    assert.equal(encodeRecordBytes(bytes(0xf0, 0x28, 0x8c, 0xbc), "raw"), "\uFFFD(\uFFFD\uFFFD");
    assert.equal(encodeRecordBytes(bytes(0xef, 0xbb, 0xbf, 0x61), "raw"), "\uFEFFa");
  });

  it("round-trips any bytes through base64, and any string through raw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        assert.deepEqual(decodeRecordBytes(encodeRecordBytes(data, "base64"), "base64"), data);
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 32 }), (text) => {
        assert.equal(encodeRecordBytes(decodeRecordBytes(text, "raw"), "raw"), text);
      }),
    );
  });
});

describe("append input JSON", () => {
  const parse = (text: string, format: "raw" | "base64" = "raw") =>
    appendInputFromJson(parseJsonText(text), format);

  it("reads records, headers, timestamps and conditions", () => {
    const input = parse(
      '{"records":[{"body":"a"},{"headers":[["k","v"],["k","w"]],"body":"b","timestamp":7},{}],' +
        '"match_seq_num":3,"fencing_token":"f","unknown":1}',
    );
    assert.equal(input.records.length, 3);
    assert.deepEqual(input.records[0], { headers: [], body: utf8("a") });
    assert.deepEqual(input.records[1], {
      timestamp: 7,
      headers: [
        { name: utf8("k"), value: utf8("v") },
        { name: utf8("k"), value: utf8("w") },
      ],
      body: utf8("b"),
    });
    assert.deepEqual(input.records[2], { headers: [], body: bytes() });
    assert.equal(input.matchSeqNum, 3);
    assert.equal(input.fencingToken, "f");
  });

  it("treats null optional fields as absent", () => {
    const input = parse(
      '{"records":[{"body":"a","timestamp":null}],"match_seq_num":null,"fencing_token":null}',
    );
    assert.deepEqual(input, { records: [{ headers: [], body: utf8("a") }] });
  });

  it("decodes base64 headers and bodies (a trim command)", () => {
    const input = parse(
      '{"records":[{"headers":[["","dHJpbQ=="]],"body":"AAAAAAAAAAI="}]}',
      "base64",
    );
    assert.deepEqual(input.records[0], {
      headers: [{ name: bytes(), value: utf8("trim") }],
      body: bytes(0, 0, 0, 0, 0, 0, 0, 2),
    });
  });

  it("rejects shape errors with bad_json", () => {
    for (const text of [
      "[]",
      "{}",
      '{"records":null}',
      '{"records":{}}',
      '{"records":[1]}',
      '{"records":[{"body":1}]}',
      '{"records":[{"body":null}]}',
      '{"records":[{"headers":null}]}',
      '{"records":[{"headers":[["k"]]}]}',
      '{"records":[{"headers":[["k","v","w"]]}]}',
      '{"records":[{"headers":[["k",1]]}]}',
      '{"records":[{"headers":[{"0":"k","1":"v"}]}]}',
      '{"records":[{"timestamp":-1}]}',
      '{"records":[{"timestamp":1.5}]}',
      '{"records":[{"timestamp":"1"}]}',
      '{"records":[{"timestamp":1e30}]}',
      '{"records":[],"match_seq_num":-1}',
      '{"records":[],"fencing_token":5}',
      `{"records":[],"fencing_token":"${"x".repeat(37)}"}`,
    ]) {
      assertCode(() => parse(text), "bad_json");
    }
  });

  it("checks the whole shape before decoding any record", () => {
    // Record 0 has bad Base64 (422) but record 1 has the wrong shape (400): lite says 400.
    assertCode(() => parse('{"records":[{"body":"!"},{"body":2}]}', "base64"), "bad_json");
  });

  it("rejects bad Base64 and unsafe u64 values with invalid", () => {
    assertCode(() => parse('{"records":[{"body":"YQ"}]}', "base64"), "invalid", /Base64/);
    assertCode(() => parse('{"records":[{"headers":[["a","b"]]}]}', "base64"), "invalid");
    assertCode(() => parse('{"records":[{"timestamp":9007199254740992}]}'), "invalid");
    assertCode(() => parse('{"records":[],"match_seq_num":18446744073709551615}'), "invalid");
    assert.equal(
      parse('{"records":[{"timestamp":9007199254740991}]}').records[0]?.timestamp,
      Number.MAX_SAFE_INTEGER,
    );
  });

  it("leaves batch validation to the record service", () => {
    // An empty batch and an empty header name parse; `validateAppendBatch` rejects them (422).
    assert.equal(parse('{"records":[]}').records.length, 0);
    assert.deepEqual(parse('{"records":[{"headers":[["","x"],["a","b"]]}]}').records[0]?.headers, [
      { name: bytes(), value: utf8("x") },
      { name: utf8("a"), value: utf8("b") },
    ]);
  });
});

describe("response JSON", () => {
  const record = (overrides: Partial<SequencedRecord>): SequencedRecord => ({
    seqNum: 4,
    timestamp: 1700000000000,
    headers: [],
    body: bytes(),
    ...overrides,
  });

  it("omits empty headers and body", () => {
    assert.deepEqual(sequencedRecordToJson(record({}), "raw"), {
      seq_num: 4,
      timestamp: 1700000000000,
    });
    assert.equal(
      JSON.stringify(sequencedRecordToJson(record({ body: utf8("hi") }), "raw")),
      '{"seq_num":4,"timestamp":1700000000000,"body":"hi"}',
    );
  });

  it("renders commands like lite: a fence with an empty token has no body", () => {
    const fence = record({ headers: [{ name: bytes(), value: utf8("fence") }] });
    assert.deepEqual(sequencedRecordToJson(fence, "raw"), {
      seq_num: 4,
      timestamp: 1700000000000,
      headers: [["", "fence"]],
    });
    const trim = record({
      headers: [{ name: bytes(), value: utf8("trim") }],
      body: bytes(0, 0, 0, 0, 0, 0, 0, 42),
    });
    assert.deepEqual(sequencedRecordToJson(trim, "base64"), {
      seq_num: 4,
      timestamp: 1700000000000,
      headers: [["", "dHJpbQ=="]],
      body: "AAAAAAAAACo=",
    });
  });

  it("renders a batch with its tail only when present", () => {
    const records = [record({ body: bytes(0x61, 0xff) })];
    assert.deepEqual(readBatchToJson({ records }, "raw"), {
      records: [{ seq_num: 4, timestamp: 1700000000000, body: "a\uFFFD" }],
    });
    assert.deepEqual(readBatchToJson({ records: [], tail: { seqNum: 5, timestamp: 9 } }, "raw"), {
      records: [],
      tail: { seq_num: 5, timestamp: 9 },
    });
  });

  it("renders acks and tails", () => {
    assert.deepEqual(
      appendAckToJson({
        start: { seqNum: 0, timestamp: 1 },
        end: { seqNum: 2, timestamp: 3 },
        tail: { seqNum: 2, timestamp: 3 },
      }),
      {
        start: { seq_num: 0, timestamp: 1 },
        end: { seq_num: 2, timestamp: 3 },
        tail: { seq_num: 2, timestamp: 3 },
      },
    );
    assert.deepEqual(tailResponseToJson({ seqNum: 0, timestamp: 0 }), {
      tail: { seq_num: 0, timestamp: 0 },
    });
  });
});
