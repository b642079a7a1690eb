// Goal: the official S2 SDK appends and reads records against Tributary as against s2-lite
// (S2-API.md §5.3–§5.6, §11.1–§11.15): conditions, commands, timestamps, every read start, clamp,
// the count/bytes/until/wait bounds, long polls, check tail and the 416 rules. Method: the real
// server process in memory mode, driven by `@s2-dev/streamstore` unary calls (JSON for strings,
// protobuf for bytes), one stream per behaviour.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AppendInput,
  AppendRecord,
  RangeNotSatisfiableError,
  type ReadInput,
  type S2Basin,
  type S2Stream,
} from "@s2-dev/streamstore";
import { runRecordsScenario } from "../support/records-scenario.js";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const basinName = "records-memory";

async function expect416(promise: Promise<unknown>, tail: { seqNum: number; timestamp?: number }) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RangeNotSatisfiableError, String(error));
    assert.equal(error.status, 416);
    assert.equal(error.tail?.seqNum, tail.seqNum);
    if (tail.timestamp !== undefined) assert.equal(error.tail?.timestamp.getTime(), tail.timestamp);
    return true;
  });
}

describe("records (memory)", () => {
  let server: ServerProcess;
  let basin: S2Basin;
  let streamCount = 0;

  /** A new stream with `count` records `r0`, `r1`, ... with client timestamps 1000, 1001, ... */
  async function streamWith(count: number): Promise<S2Stream> {
    const name = `s${streamCount++}`;
    await basin.streams.create({ stream: name });
    const stream = basin.stream(name);
    if (count > 0) {
      await stream.append(
        AppendInput.create(
          Array.from({ length: count }, (_, i) =>
            AppendRecord.string({ body: `r${i}`, timestamp: 1000 + i }),
          ),
        ),
      );
    }
    return stream;
  }

  const seqNumsOf = async (stream: S2Stream, input: ReadInput) =>
    (await stream.read(input)).records.map((record) => record.seqNum);

  before(async () => {
    server = await startServer({ mode: "memory" });
    const s2 = s2ClientFor(server);
    await runRecordsScenario(s2, "records-memory-scenario");
    await s2.basins.create({ basin: basinName });
    basin = s2.basin(basinName);
  });

  after(async () => {
    await server?.cleanup();
  });

  it("assigns timestamps: client values kept, raised to the running max, capped at arrival", async () => {
    const stream = await streamWith(0);
    const before = Date.now();
    const ack = await stream.append(
      AppendInput.create([
        AppendRecord.string({ body: "a", timestamp: 5000 }),
        AppendRecord.string({ body: "b", timestamp: 4000 }),
        AppendRecord.string({ body: "c" }),
        AppendRecord.string({ body: "d", timestamp: Date.now() + 3_600_000 }),
      ]),
    );
    const after = Date.now();
    const { records } = await stream.read({ start: { from: { seqNum: 0 } } });
    const stamps = records.map((record) => record.timestamp.getTime());
    assert.equal(stamps[0], 5000);
    assert.equal(stamps[1], 5000);
    assert.ok(stamps[2]! >= before && stamps[2]! <= after, `${stamps[2]}`);
    assert.ok(stamps[3]! >= stamps[2]! && stamps[3]! <= after, `${stamps[3]}`);
    assert.equal(ack.start.timestamp.getTime(), 5000);
    assert.equal(ack.end.timestamp.getTime(), stamps[3]);
    assert.equal((await stream.checkTail()).tail.timestamp.getTime(), stamps[3]);
  });

  it("starts at a seq num, a timestamp or a tail offset", async () => {
    const stream = await streamWith(10);
    assert.deepEqual(await seqNumsOf(stream, { start: { from: { seqNum: 7 } } }), [7, 8, 9]);
    assert.deepEqual(await seqNumsOf(stream, { start: { from: { timestamp: 1008 } } }), [8, 9]);
    assert.deepEqual(
      await seqNumsOf(stream, {
        start: { from: { timestamp: new Date(1003) } },
        stop: { limits: { count: 2 } },
      }),
      [3, 4],
    );
    assert.deepEqual(await seqNumsOf(stream, { start: { from: { tailOffset: 2 } } }), [8, 9]);
    // A tail offset beyond the stream saturates at 0.
    assert.equal((await seqNumsOf(stream, { start: { from: { tailOffset: 100 } } })).length, 10);
    // A timestamp before every record starts at the first one.
    assert.equal((await seqNumsOf(stream, { start: { from: { timestamp: 0 } } }))[0], 0);
  });

  it("answers 416 at or beyond the tail, clamped or not, unless the read can wait", async () => {
    const empty = await streamWith(0);
    await expect416(empty.read({ start: { from: { seqNum: 0 } } }), { seqNum: 0, timestamp: 0 });
    await expect416(empty.read(), { seqNum: 0, timestamp: 0 }); // default start: the tail
    const stream = await streamWith(3);
    await expect416(stream.read({ start: { from: { seqNum: 4 } } }), {
      seqNum: 3,
      timestamp: 1002,
    });
    await expect416(stream.read({ start: { from: { seqNum: 3 } } }), { seqNum: 3 });
    await expect416(stream.read({ start: { from: { seqNum: 9 }, clamp: true } }), { seqNum: 3 });
    await expect416(stream.read({ start: { from: { timestamp: 5000 } } }), { seqNum: 3 });
    // Clamped to the tail with a wait: an empty long poll instead.
    const startedMs = Date.now();
    const waited = await stream.read({
      start: { from: { seqNum: 9 }, clamp: true },
      stop: { waitSecs: 1 },
    });
    assert.deepEqual(waited.records, []);
    assert.ok(Date.now() - startedMs >= 900, "the read waited");
    // A timestamp start with no record at or after it, but not beyond the tail: empty 200.
    const clampedTs = await stream.read({
      start: { from: { timestamp: 5000 }, clamp: true },
      stop: { waitSecs: 0 },
    });
    assert.deepEqual(clampedTs.records, []);
  });

  it("stops at count, bytes and until without splitting records", async () => {
    const stream = await streamWith(10); // each record meters 8 + 2 = 10 bytes
    const from0 = { from: { seqNum: 0 } };
    assert.deepEqual(
      await seqNumsOf(stream, { start: from0, stop: { limits: { count: 3 } } }),
      [0, 1, 2],
    );
    assert.deepEqual(
      await seqNumsOf(stream, { start: from0, stop: { limits: { bytes: 25 } } }),
      [0, 1],
    );
    assert.deepEqual(await seqNumsOf(stream, { start: from0, stop: { limits: { bytes: 5 } } }), []);
    assert.deepEqual(await seqNumsOf(stream, { start: from0, stop: { limits: { count: 0 } } }), []);
    assert.deepEqual(
      await seqNumsOf(stream, { start: from0, stop: { untilTimestamp: 1004 } }),
      [0, 1, 2, 3],
    );
    assert.deepEqual(
      await seqNumsOf(stream, {
        start: { from: { timestamp: 1002 } },
        stop: { untilTimestamp: new Date(1005), limits: { count: 2 } },
      }),
      [2, 3],
    );
  });

  it("caps a unary read at 1000 records", async () => {
    const stream = await streamWith(0);
    for (let i = 0; i < 2; i++) {
      await stream.append(
        AppendInput.create(
          Array.from({ length: 700 }, (_, j) => AppendRecord.string({ body: `${i}-${j}` })),
        ),
      );
    }
    const first = await stream.read({ start: { from: { seqNum: 0 } } });
    assert.equal(first.records.length, 1000);
    const rest = await stream.read({
      start: { from: { seqNum: 1000 } },
      stop: { limits: { count: 5000 } },
    });
    assert.equal(rest.records.length, 400);
  });

  it("long-polls with wait: returns the first live batch with its tail", async () => {
    const stream = await streamWith(2);
    const reading = stream.read({ start: { from: { seqNum: 2 } }, stop: { waitSecs: 10 } });
    await sleep(300);
    await stream.append(AppendInput.create([AppendRecord.string({ body: "live" })]));
    const batch = await reading;
    assert.deepEqual(
      batch.records.map((record) => [record.seqNum, record.body]),
      [[2, "live"]],
    );
    assert.equal(batch.tail?.seqNum, 3);
    // Catch-up records return at once (no tail) even with a wait.
    const startedMs = Date.now();
    const caughtUp = await stream.read({ start: { from: { seqNum: 0 } }, stop: { waitSecs: 10 } });
    assert.equal(caughtUp.records.length, 3);
    assert.equal(caughtUp.tail, undefined);
    assert.ok(Date.now() - startedMs < 5000);
  });

  it("reports the tail: {0, 0} before any write, then the next seq num and last timestamp", async () => {
    const stream = await streamWith(0);
    const empty = await stream.checkTail();
    assert.equal(empty.tail.seqNum, 0);
    assert.equal(empty.tail.timestamp.getTime(), 0);
    await stream.append(AppendInput.create([AppendRecord.string({ body: "x", timestamp: 1234 })]));
    const tail = await stream.checkTail();
    assert.equal(tail.tail.seqNum, 1);
    assert.equal(tail.tail.timestamp.getTime(), 1234);
  });

  it("resets the fencing token with an empty fence, and returns command records", async () => {
    const stream = await streamWith(0);
    await stream.append(AppendInput.create([AppendRecord.fence("t1")]));
    await stream.append(AppendInput.create([AppendRecord.fence("")], { fencingToken: "t1" }));
    const ack = await stream.append(
      AppendInput.create([AppendRecord.string({ body: "ok" })], { fencingToken: "" }),
    );
    assert.equal(ack.start.seqNum, 2);
    const { records } = await stream.read({ start: { from: { seqNum: 0 } } });
    assert.deepEqual(
      records.map((record) => [record.headers, record.body]),
      [
        [[["", "fence"]], "t1"],
        [[["", "fence"]], ""],
        [[], "ok"],
      ],
    );
  });
});
