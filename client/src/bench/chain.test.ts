// Goal: the reader's chain verification accepts exactly the writer's sequence and rejects every
// way a stream can go wrong (a flipped body or header byte, a gap, a duplicate, reordering, a wrong
// seq num, a foreign record). Method: build records with ChainWriter, tamper with copies, verify.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  BenchVerificationError,
  benchRecordOverheadBytes,
  ChainVerifier,
  ChainWriter,
  decodeBenchHeader,
  encodeBenchHeader,
  hashHex,
  type ReadRecord,
} from "./chain.js";
import { meteredBytes, toAppendRecord } from "../records.js";

const bodyBytes = 64;
const encoder = new TextEncoder();

function written(count: number): { records: ReadRecord[]; writer: ChainWriter } {
  const writer = new ChainWriter();
  const records: ReadRecord[] = [];
  for (let i = 0; i < count; i++) {
    const input = writer.next(randomBytes(bodyBytes), 1_700_000_000_000_000 + i);
    const message = toAppendRecord(input);
    records.push({ seqNum: BigInt(i), headers: message.headers, body: message.body });
  }
  return { records, writer };
}

function copy(record: ReadRecord, change: Partial<ReadRecord> = {}): ReadRecord {
  return {
    seqNum: record.seqNum,
    headers: record.headers.map((h) => ({ name: h.name.slice(), value: h.value.slice() })),
    body: record.body.slice(),
    ...change,
  };
}

function verifyAll(records: readonly ReadRecord[]): ChainVerifier {
  const verifier = new ChainVerifier(bodyBytes);
  for (const record of records) verifier.verify(record);
  return verifier;
}

function rejects(records: readonly ReadRecord[], message: RegExp): void {
  assert.throws(
    () => verifyAll(records),
    (error: unknown) => error instanceof BenchVerificationError && message.test(error.message),
  );
}

describe("bench hash chain", () => {
  it("accepts the writer's sequence and ends at the writer's hash", () => {
    const { records, writer } = written(20);
    const verifier = verifyAll(records);
    assert.equal(verifier.count, 20);
    assert.equal(hashHex(verifier.lastHash), hashHex(writer.lastHash));
  });

  it("meters a record at exactly the body plus the stated overhead", () => {
    const input = new ChainWriter().next(new Uint8Array(100), 0);
    assert.equal(meteredBytes(toAppendRecord(input)), 100 + benchRecordOverheadBytes);
  });

  it("round-trips the header fields", () => {
    const hash = randomBytes(16);
    const header = decodeBenchHeader(
      encodeBenchHeader({ index: 123_456_789, sendTimeUs: 1_700_000_000_123_456, hash }),
    );
    assert.equal(header.index, 123_456_789);
    assert.equal(header.sendTimeUs, 1_700_000_000_123_456);
    assert.deepEqual(Buffer.from(header.hash), hash);
  });

  it("detects a flipped body byte", () => {
    const { records } = written(5);
    const body = records[3]!.body.slice();
    body[10]! ^= 0x01;
    rejects(records.with(3, copy(records[3]!, { body })), /hash chain broken.*seq_num=3/);
  });

  it("detects a flipped byte in the header's hash", () => {
    const { records } = written(5);
    const tampered = copy(records[2]!);
    tampered.headers[0]!.value[20]! ^= 0x80;
    rejects(records.with(2, tampered), /hash chain broken.*seq_num=2/);
  });

  it("detects a gap", () => {
    const { records } = written(5);
    const withGap = [records[0]!, records[1]!, copy(records[3]!, { seqNum: 2n })];
    rejects(withGap, /gap or reordered record: expected index 2, got 3/);
  });

  it("detects a duplicate", () => {
    const { records } = written(5);
    const withDuplicate = [records[0]!, records[1]!, copy(records[1]!, { seqNum: 2n })];
    rejects(withDuplicate, /duplicate or reordered record: index 1 was already read/);
  });

  it("detects reordering", () => {
    const { records } = written(5);
    const reordered = [
      records[0]!,
      copy(records[2]!, { seqNum: 1n }),
      copy(records[1]!, { seqNum: 2n }),
    ];
    rejects(reordered, /reordered/);
  });

  it("detects a record at the wrong seq num", () => {
    const { records } = written(3);
    rejects([records[0]!, copy(records[1]!, { seqNum: 5n })], /wrong seq num.*seq_num=5/);
  });

  it("detects a foreign record and a wrong body size", () => {
    const { records } = written(3);
    const foreign: ReadRecord = { seqNum: 0n, headers: [], body: encoder.encode("hello") };
    rejects([foreign], /0 bench headers/);
    rejects([copy(records[0]!, { body: records[0]!.body.subarray(1) })], /body has 63 bytes/);
    const badHeader = copy(records[0]!);
    const header = badHeader.headers[0]!;
    rejects(
      [{ ...badHeader, headers: [{ name: header.name, value: header.value.subarray(1) }] }],
      /31 bytes/,
    );
  });
});
