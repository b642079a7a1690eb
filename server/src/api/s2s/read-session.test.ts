// Goal: every read-session event becomes ReadBatch frames the SDK accepts: heartbeats as empty
// batches with a tail, batches too large for one frame split in order, compression per frame.
// Method: events built by hand are encoded and decoded back with the frame codec and protobuf-es.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { ReadBatchSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { S2Error } from "../../core/errors.js";
import {
  recordBatchBytesMax,
  s2sFrameBytesMax,
  s2sReadFrameBytesTarget,
} from "../../core/limits.js";
import { meteredBytesOfBatch, type SequencedRecord } from "../../core/records.js";
import { decodeS2sPayload, S2sFrameDecoder } from "./frame.js";
import { encodeReadEventFrames } from "./read-session.js";

const encoder = new TextEncoder();
const tail = { seqNum: 5000, timestamp: 1_700_000_000_000 };

/** Decodes frames given as chunks, each chunk pushed on its own (as the socket may split them). */
async function decodeFrames(frames: readonly (readonly Uint8Array[])[]) {
  const decoder = new S2sFrameDecoder();
  const decoded = frames.flatMap((chunks) => {
    const complete = chunks.flatMap((chunk) => decoder.push(chunk).frames);
    assert.equal(complete.length, 1, "each list of chunks is one frame");
    return complete;
  });
  assert.equal(decoder.end(), undefined);
  return Promise.all(
    decoded.map(async (frame) => ({
      frame,
      batch: fromBinary(ReadBatchSchema, await decodeS2sPayload(frame)),
    })),
  );
}

/** Records with `headerCount` one-byte headers each: protobuf takes twice their metered size. */
function headerHeavyRecords(
  count: number,
  headerCount: number,
  firstSeqNum = 0,
): SequencedRecord[] {
  const name = encoder.encode("n");
  const value = encoder.encode("v");
  return Array.from({ length: count }, (_, i) => ({
    seqNum: firstSeqNum + i,
    timestamp: tail.timestamp,
    headers: Array.from({ length: headerCount }, () => ({ name, value })),
    body: new Uint8Array(0),
  }));
}

describe("S2S read session frames", () => {
  it("a heartbeat is a ReadBatch with no records and the tail", async () => {
    const frames = await encodeReadEventFrames({ kind: "heartbeat", tail }, "none");
    const [decoded] = await decodeFrames(frames);
    assert.equal(decoded?.batch.records.length, 0);
    assert.equal(decoded?.batch.tail?.seqNum, 5000n);
    assert.equal(decoded?.batch.tail?.timestamp, BigInt(tail.timestamp));
  });

  it("a catch-up batch has no tail, a live batch has one", async () => {
    const records: SequencedRecord[] = [
      { seqNum: 7, timestamp: 9, headers: [], body: encoder.encode("hi") },
    ];
    const [catchUp] = await decodeFrames(
      await encodeReadEventFrames({ kind: "batch", records }, "none"),
    );
    assert.equal(catchUp?.batch.tail, undefined);
    assert.equal(catchUp?.batch.records[0]?.seqNum, 7n);
    const [live] = await decodeFrames(
      await encodeReadEventFrames({ kind: "batch", records, tail }, "none"),
    );
    assert.equal(live?.batch.tail?.seqNum, 5000n);
  });

  it("compresses large batches when negotiated", async () => {
    const records = headerHeavyRecords(20, 100);
    for (const compression of ["gzip", "zstd"] as const) {
      const [decoded] = await decodeFrames(
        await encodeReadEventFrames({ kind: "batch", records }, compression),
      );
      assert.equal(decoded?.frame.compression, compression);
      assert.equal(decoded?.batch.records.length, 20);
    }
  });

  it("splits a maximal batch whose protobuf exceeds one frame, keeping order and tail", async () => {
    // Protobuf takes 8 bytes per one-byte header, metering 4: two records of 1 MiB metered in
    // total, with large seq nums, need more than one frame.
    const records = headerHeavyRecords(2, 131_070, 2 ** 40);
    assert.ok(meteredBytesOfBatch(records) <= recordBatchBytesMax, "a valid batch");
    const frames = await encodeReadEventFrames({ kind: "batch", records, tail }, "none");
    assert.ok(frames.length > 1, "split");
    for (const frame of frames) {
      const frameBytes = frame.reduce((sum, chunk) => sum + chunk.length, 0);
      assert.ok(frameBytes <= 3 + s2sFrameBytesMax);
    }
    const decoded = await decodeFrames(frames);
    const seqNums = decoded.flatMap(({ batch }) => batch.records.map((r) => Number(r.seqNum)));
    assert.deepEqual(
      seqNums,
      records.map((record) => record.seqNum),
    );
    for (const { batch } of decoded) assert.equal(batch.tail?.seqNum, 5000n);
  });

  it("cuts a 1 MiB catch-up batch into frames of about the target size, in order", async () => {
    const body = new Uint8Array(8184); // 8 KiB metered
    const records: SequencedRecord[] = Array.from({ length: 128 }, (_, i) => ({
      seqNum: 100 + i,
      timestamp: i,
      headers: [],
      body,
    }));
    const frames = await encodeReadEventFrames({ kind: "batch", records }, "none");
    // Bodies of 1 KiB or more are chunks of their own, by reference: not copied into the frame.
    for (const frame of frames) assert.ok(frame.includes(body), "the body is a chunk");
    const decoded = await decodeFrames(frames);
    assert.equal(decoded.length, Math.ceil(meteredBytesOfBatch(records) / s2sReadFrameBytesTarget));
    for (const { batch } of decoded) {
      const metered = batch.records.length * 8192;
      assert.ok(metered <= s2sReadFrameBytesTarget, `frame of ${metered} metered bytes`);
    }
    const seqNums = decoded.flatMap(({ batch }) => batch.records.map((r) => Number(r.seqNum)));
    assert.deepEqual(
      seqNums,
      records.map((record) => record.seqNum),
    );
  });

  it("sends a record larger than the target in a frame of its own", async () => {
    const big: SequencedRecord = {
      seqNum: 1,
      timestamp: 0,
      headers: [],
      body: new Uint8Array(s2sReadFrameBytesTarget * 2),
    };
    const small: SequencedRecord = { ...big, seqNum: 2, body: new Uint8Array(10) };
    const decoded = await decodeFrames(
      await encodeReadEventFrames({ kind: "batch", records: [big, small], tail }, "none"),
    );
    assert.deepEqual(
      decoded.map(({ batch }) => batch.records.map((r) => Number(r.seqNum))),
      [[1], [2]],
    );
    for (const { batch } of decoded) assert.equal(batch.tail?.seqNum, 5000n);
  });

  it("fails the session on a single record that no frame can hold", async () => {
    const [record] = headerHeavyRecords(1, 262_142, 2 ** 40);
    await assert.rejects(
      () => encodeReadEventFrames({ kind: "batch", records: [record!], tail }, "none"),
      (error: unknown) => error instanceof S2Error && error.code === "other",
    );
  });
});
