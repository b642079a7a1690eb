// Goal: the official S2 SDK's S2S sessions (its default transport on node, over h2c) work unchanged
// against the real server: pipelined append sessions, live read sessions, gzip, conditions that
// fail mid-session, bounded reads. Method: one server process in memory mode (and the pipelined
// scenario again in S3 mode on moto), driven only through `@s2-dev/streamstore`.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  AppendInput,
  AppendRecord,
  type ReadRecord,
  RangeNotSatisfiableError,
  type S2,
  S2Error,
  SeqNumMismatchError,
} from "@s2-dev/streamstore";
import { S2 as S2Client } from "@s2-dev/streamstore";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

function uniqueBasin(label: string): string {
  return `s2s-${label}-${randomBytes(4).toString("hex")}`;
}

type Stream = ReturnType<ReturnType<S2["basin"]>["stream"]>;

/**
 * Runs `body` on a new stream in a new basin, and always closes the stream's handle: the SDK pools
 * its HTTP/2 connection until every stream handle that used it is closed.
 */
async function withStream(s2: S2, label: string, body: (stream: Stream) => Promise<void>) {
  const basinName = uniqueBasin(label);
  await s2.basins.create({ basin: basinName });
  const basin = s2.basin(basinName);
  await basin.streams.create({ stream: "events" });
  const stream = basin.stream("events");
  try {
    await body(stream);
  } finally {
    await stream.close();
  }
}

function batchOf(texts: readonly string[], matchSeqNum?: number): AppendInput {
  return AppendInput.create(
    texts.map((body) => AppendRecord.string({ body })),
    matchSeqNum === undefined ? undefined : { matchSeqNum },
  );
}

async function collect<T>(iterable: AsyncIterable<T>, countMax = Number.POSITIVE_INFINITY) {
  const items: T[] = [];
  for await (const item of iterable) {
    items.push(item);
    if (items.length >= countMax) break;
  }
  return items;
}

/** Submits `batchCount` batches without awaiting acks, then checks order and density. */
async function assertPipelinedAppends(s2: S2, label: string): Promise<void> {
  await withStream(s2, label, async (stream) => {
    const batchCount = 200;
    const recordsPerBatch = 5;
    const session = await stream.appendSession();
    const tickets = [];
    for (let i = 0; i < batchCount; i++) {
      const texts = Array.from({ length: recordsPerBatch }, (_, j) => `b${i}-r${j}`);
      tickets.push(await session.submit(batchOf(texts)));
    }
    const acks = await Promise.all(tickets.map((ticket) => ticket.ack()));
    await session.close();
    acks.forEach((ack, i) => {
      assert.equal(ack.start.seqNum, i * recordsPerBatch, `start of batch ${i}`);
      assert.equal(ack.end.seqNum, (i + 1) * recordsPerBatch, `end of batch ${i}`);
      assert.ok(ack.tail.seqNum >= ack.end.seqNum);
    });
    const total = batchCount * recordsPerBatch;
    const readSession = await stream.readSession({
      start: { from: { seqNum: 0 } },
      stop: { limits: { count: total } },
    });
    const records = await collect(readSession);
    assert.deepEqual(
      records.map((record) => record.seqNum),
      Array.from({ length: total }, (_, i) => i),
    );
    assert.equal(records[7]?.body, "b1-r2");
  });
}

describe("S2S sessions through the SDK (memory)", () => {
  let server: ServerProcess;
  let s2: S2;

  before(async () => {
    server = await startServer({ mode: "memory" });
    s2 = s2ClientFor(server);
  });

  after(async () => {
    await server?.cleanup();
  });

  it("acknowledges many pipelined batches in order with dense seq nums", async () => {
    await assertPipelinedAppends(s2, "pipe");
  });

  it("follows live appends in a read session, with tails and heartbeats", async () => {
    await withStream(s2, "live", async (stream) => {
      await stream.append(batchOf(["before"]));
      const session = await stream.readSession({ start: { from: { seqNum: 0 } } });
      const iterator = session[Symbol.asyncIterator]();
      try {
        const first = await iterator.next();
        assert.equal((first.value as ReadRecord).body, "before");
        // Reaching the tail brings a heartbeat (an empty batch with the tail).
        const caughtUp = await session.caughtUp();
        assert.equal(caughtUp.seqNum, 1);
        const appender = await stream.appendSession();
        for (let i = 0; i < 3; i++) await (await appender.submit(batchOf([`live-${i}`]))).ack();
        await appender.close();
        for (let i = 0; i < 3; i++) {
          const next = await iterator.next();
          assert.equal((next.value as ReadRecord).body, `live-${i}`);
          assert.equal((next.value as ReadRecord).seqNum, i + 1);
        }
        assert.equal(session.lastObservedTail()?.seqNum, 4, "live batches carry the tail");
      } finally {
        await iterator.return?.();
      }
    });
  });

  it("ends a read session cleanly at its count, bytes and until limits", async () => {
    await withStream(s2, "limits", async (stream) => {
      const texts = Array.from({ length: 10 }, (_, i) => `r${i}`);
      await stream.append(batchOf(texts));
      const later = await stream.append(batchOf(["late"]));
      const byCount = await collect(
        await stream.readSession({
          start: { from: { seqNum: 2 } },
          stop: { limits: { count: 5 } },
        }),
      );
      assert.deepEqual(
        byCount.map((record) => record.seqNum),
        [2, 3, 4, 5, 6],
      );
      // Each record meters 8 + 2 bytes: 35 bytes hold three of them.
      const byBytes = await collect(
        await stream.readSession({
          start: { from: { seqNum: 0 } },
          stop: { limits: { bytes: 35 } },
        }),
      );
      assert.deepEqual(
        byBytes.map((record) => record.seqNum),
        [0, 1, 2],
      );
      const until = later.start.timestamp.getTime();
      const byUntil = await collect(
        await stream.readSession({
          start: { from: { seqNum: 0 } },
          stop: { untilTimestamp: until },
        }),
      );
      assert.ok(byUntil.length <= 10);
      assert.ok(byUntil.every((record) => record.timestamp.getTime() < until));
    });
  });

  it("fails a session with 412 after the acks of earlier batches, applying nothing later", async () => {
    await withStream(s2, "cond", async (stream) => {
      const session = await stream.appendSession();
      const tickets = [
        await session.submit(batchOf(["a"], 0)),
        await session.submit(batchOf(["b"])),
        await session.submit(batchOf(["c"], 99)),
        await session.submit(batchOf(["d"])),
      ];
      const outcomes = await Promise.allSettled(tickets.map((ticket) => ticket.ack()));
      assert.equal(outcomes[0]?.status, "fulfilled");
      assert.equal(outcomes[1]?.status, "fulfilled");
      const failure = outcomes[2];
      assert.equal(failure?.status, "rejected");
      const error = (failure as PromiseRejectedResult).reason;
      assert.ok(error instanceof SeqNumMismatchError, String(error));
      assert.equal(error.status, 412);
      assert.equal(error.expectedSeqNum, 2);
      assert.equal(outcomes[3]?.status, "rejected");
      await session.close().catch(() => {});
      const { tail } = await stream.checkTail();
      assert.equal(tail.seqNum, 2, "the batch after the failed one was not applied");
    });
  });

  it("reports errors before the session as HTTP errors: 416 and 404", async () => {
    await withStream(s2, "errors", async (stream) => {
      await stream.append(batchOf(["x"]));
      const beyond = await stream.readSession({ start: { from: { seqNum: 5 } } });
      await assert.rejects(collect(beyond), (error: unknown) => {
        assert.ok(error instanceof RangeNotSatisfiableError, String(error));
        assert.equal(error.tail?.seqNum, 1);
        return true;
      });
    });
    const missing = s2.basin(uniqueBasin("none")).stream("nope");
    try {
      const session = await missing.appendSession();
      const ticket = await session.submit(batchOf(["x"]));
      await assert.rejects(ticket.ack(), (error: unknown) => {
        assert.ok(error instanceof S2Error, String(error));
        assert.equal(error.status, 404);
        assert.equal(error.code, "basin_not_found");
        return true;
      });
      await session.close().catch(() => {});
    } finally {
      await missing.close();
    }
  });

  it("round-trips large records with gzip frames in both directions", async () => {
    const gzipClient = new S2Client({
      accessToken: "ignored",
      endpoints: { account: server.endpoint, basin: server.endpoint },
      compression: "gzip",
    });
    await withStream(gzipClient, "gzip", async (stream) => {
      const bodies = Array.from({ length: 20 }, (_, i) => `${i}:`.padEnd(4000, "x"));
      const session = await stream.appendSession();
      const tickets = [];
      for (const body of bodies) tickets.push(await session.submit(batchOf([body])));
      await Promise.all(tickets.map((ticket) => ticket.ack()));
      await session.close();
      const records = await collect(
        await stream.readSession({
          start: { from: { seqNum: 0 } },
          stop: { limits: { count: bodies.length } },
        }),
      );
      assert.deepEqual(
        records.map((record) => record.body),
        bodies,
      );
    });
  });
});

describe("S2S sessions through the SDK (S3)", () => {
  let server: ServerProcess;
  let s2: S2;

  before(async () => {
    server = await startServer({ mode: "s3" });
    s2 = s2ClientFor(server);
  });

  after(async () => {
    await server?.cleanup();
  });

  it("acknowledges many pipelined batches in order with dense seq nums", async () => {
    await assertPipelinedAppends(s2, "s3pipe");
  });
});
