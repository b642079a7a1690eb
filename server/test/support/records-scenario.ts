/**
 * The main append/read scenario of the records API (S2-API.md §5.3–§5.6), driven by the official
 * S2 SDK: string appends (JSON), bytes appends (protobuf), headers, `matchSeqNum`, fencing,
 * fence and trim command records, reads as strings and as bytes, check tail and a 416. The
 * records integration tests run it in memory mode and on S3 (moto).
 */
import assert from "node:assert/strict";
import {
  AppendInput,
  AppendRecord,
  FencingTokenMismatchError,
  RangeNotSatisfiableError,
  type S2,
  SeqNumMismatchError,
} from "@s2-dev/streamstore";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Runs the scenario on a fresh basin named `basinName` (8..48 chars). */
export async function runRecordsScenario(s2: S2, basinName: string): Promise<void> {
  await s2.basins.create({ basin: basinName });
  const basin = s2.basin(basinName);
  await basin.streams.create({ stream: "orders" });
  const stream = basin.stream("orders");

  // Strings (JSON, raw format) with headers, duplicates kept in order.
  const first = await stream.append(
    AppendInput.create([
      AppendRecord.string({ body: "a" }),
      AppendRecord.string({
        body: "b",
        headers: [
          ["k", "v"],
          ["k", "w"],
        ],
      }),
    ]),
  );
  assert.equal(first.start.seqNum, 0);
  assert.equal(first.end.seqNum, 2);
  assert.equal(first.tail.seqNum, 2);
  assert.ok(first.end.timestamp.getTime() >= first.start.timestamp.getTime());

  // Bytes (protobuf body and response).
  const binary = new Uint8Array([0, 1, 0xff, 0xfe]);
  const second = await stream.append(
    AppendInput.create([
      AppendRecord.bytes({
        body: binary,
        headers: [[new Uint8Array([0xff]), new Uint8Array([0])]],
      }),
    ]),
  );
  assert.equal(second.start.seqNum, 2);
  assert.equal(second.end.seqNum, 3);

  // match_seq_num.
  const third = await stream.append(
    AppendInput.create([AppendRecord.string({ body: "c" })], { matchSeqNum: 3 }),
  );
  assert.equal(third.start.seqNum, 3);
  await assert.rejects(
    stream.append(AppendInput.create([AppendRecord.string({ body: "x" })], { matchSeqNum: 0 })),
    (error: unknown) => {
      assert.ok(error instanceof SeqNumMismatchError, String(error));
      assert.equal(error.status, 412);
      assert.equal(error.expectedSeqNum, 4);
      return true;
    },
  );

  // Fencing: a fence command, then a mismatching and a matching token.
  const fence = await stream.append(AppendInput.create([AppendRecord.fence("writer-1")]));
  assert.equal(fence.start.seqNum, 4);
  await assert.rejects(
    stream.append(
      AppendInput.create([AppendRecord.string({ body: "x" })], { fencingToken: "writer-2" }),
    ),
    (error: unknown) => {
      assert.ok(error instanceof FencingTokenMismatchError, String(error));
      assert.equal(error.status, 412);
      assert.equal(error.expectedFencingToken, "writer-1");
      return true;
    },
  );
  const fenced = await stream.append(
    AppendInput.create([AppendRecord.string({ body: "d" })], { fencingToken: "writer-1" }),
  );
  assert.equal(fenced.start.seqNum, 5);

  // Read back as strings (JSON): binary bodies come back lossily, commands as records.
  const batch = await stream.read({ start: { from: { seqNum: 0 } } });
  assert.deepEqual(
    batch.records.map((record) => [record.seqNum, record.body, record.headers]),
    [
      [0, "a", []],
      [
        1,
        "b",
        [
          ["k", "v"],
          ["k", "w"],
        ],
      ],
      [2, "\u0000\u0001\uFFFD\uFFFD", [["\uFFFD", "\u0000"]]],
      [3, "c", []],
      [4, "writer-1", [["", "fence"]]],
      [5, "d", []],
    ],
  );
  assert.equal(batch.tail, undefined);

  // Read back as bytes (protobuf).
  const bytes = await stream.read(
    { start: { from: { seqNum: 2 } }, stop: { limits: { count: 1 } } },
    { as: "bytes" },
  );
  assert.equal(bytes.records.length, 1);
  assert.deepEqual(bytes.records[0]?.body, binary);
  assert.deepEqual(bytes.records[0]?.headers, [[new Uint8Array([0xff]), new Uint8Array([0])]]);

  // Check tail, then a trim command (bytes → protobuf) that reads back as one.
  assert.equal((await stream.checkTail()).tail.seqNum, 6);
  const trim = await stream.append(AppendInput.create([AppendRecord.trim(2)]));
  assert.equal(trim.start.seqNum, 6);
  const trimRecord = await stream.read(
    { start: { from: { seqNum: 6 } }, stop: { limits: { count: 1 } } },
    { as: "bytes" },
  );
  assert.deepEqual(trimRecord.records[0]?.headers, [[new Uint8Array(), utf8("trim")]]);
  assert.deepEqual(trimRecord.records[0]?.body, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 2]));

  // Beyond the tail: 416 with the tail.
  await assert.rejects(stream.read({ start: { from: { seqNum: 100 } } }), (error: unknown) => {
    assert.ok(error instanceof RangeNotSatisfiableError, String(error));
    assert.equal(error.status, 416);
    assert.equal(error.tail?.seqNum, 7);
    return true;
  });
}
