// Goal: the streamer and the record service keep S2's data-plane promises (S2-API.md §5.1–§5.3,
// §11): dense seq nums, ack positions, conditions against pipelined state, commands, timestamps,
// validation, durable-only reads and follows, and identical state after recovery. Method: a real
// Service on the memory object store and memory KV with a 1 ms flush interval, a settable wall
// clock for timestamps, and an object store whose WAL PUTs a test can hold to see pipelined state.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Clock } from "../core/clock.js";
import type { StreamConfigInput } from "../core/config.js";
import { AppendConditionFailed, type ErrorCode, S2Error } from "../core/errors.js";
import {
  followerLagBatchesMax,
  readBatchCountMax,
  recordBatchBytesMax,
  recordBatchCountMax,
} from "../core/limits.js";
import { systemRandom } from "../core/random.js";
import {
  type AppendAck,
  type AppendInput,
  type AppendRecord,
  commandHeader,
  encodeTrimBody,
  type SequencedRecord,
} from "../core/records.js";
import { Service } from "../service/service.js";
import { decodeSegmentEntryKey, encodeSegmentEntryKey } from "../storage/kv/keys.js";
import type { KvStore } from "../storage/kv/kv-store.js";
import { createMemoryKvStore } from "../storage/kv/memory.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import type { ObjectStore } from "../storage/object-store/object-store.js";
import { walPrefix } from "../storage/object-keys.js";
import { Streamer } from "./streamer.js";
import { createSettableClock, type SettableClock } from "../../test/support/clock.js";

const basin = "streamer-tests";
const encoder = new TextEncoder();
const startNowMs = 1_700_000_000_000;

/** A wall clock the test sets; timers and the monotonic clock are real. */

/** A memory object store whose WAL PUTs wait while held, so that nothing becomes durable. */
interface GatedObjectStore extends ObjectStore {
  hold(): void;
  release(): void;
}

function createGatedObjectStore(inner: ObjectStore = createMemoryObjectStore()): GatedObjectStore {
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  return {
    get: (key, range) => inner.get(key, range),
    async putIfAbsent(key, bytes) {
      while (gate !== undefined && key.startsWith(walPrefix)) await gate.promise;
      return inner.putIfAbsent(key, bytes);
    },
    list: (prefix, options) => inner.list(prefix, options),
    delete: (keys) => inner.delete(keys),
    close: () => inner.close(),
    hold() {
      if (gate !== undefined) return;
      let open = (): void => {};
      const promise = new Promise<void>((resolve) => {
        open = resolve;
      });
      gate = { promise, open };
    },
    release() {
      const current = gate;
      gate = undefined;
      current?.open();
    },
  };
}

interface Fixture {
  readonly service: Service;
  readonly store: ObjectStore;
  readonly kv: KvStore;
  readonly clock: Clock;
}

async function openService(
  options: { store?: ObjectStore; kv?: KvStore; clock?: Clock } = {},
): Promise<Fixture> {
  const store = options.store ?? createMemoryObjectStore();
  const kv = options.kv ?? createMemoryKvStore();
  const clock = options.clock ?? createSettableClock(startNowMs);
  const service = await Service.open({
    store,
    kv,
    clock,
    random: systemRandom,
    flushIntervalMs: 1,
  });
  return { service, store, kv, clock };
}

/** Opens a service with `basin` and one stream `name` (with `config`), runs `body`, closes. */
async function withStream(
  config: StreamConfigInput | undefined,
  body: (fixture: Fixture & { readonly stream: string }) => Promise<void>,
  options: { store?: ObjectStore; clock?: Clock } = {},
): Promise<void> {
  const fixture = await openService(options);
  try {
    await fixture.service.basins.create({ name: basin });
    await fixture.service.streams.create({ basin, name: "s", config });
    await body({ ...fixture, stream: "s" });
  } finally {
    await fixture.service.close();
  }
}

function bytesOf(text: string): Uint8Array {
  return encoder.encode(text);
}

function record(
  body: string | Uint8Array,
  options: { timestamp?: number; headers?: readonly (readonly [string, string])[] } = {},
): AppendRecord {
  return {
    ...(options.timestamp !== undefined && { timestamp: options.timestamp }),
    headers: (options.headers ?? []).map(([name, value]) => ({
      name: bytesOf(name),
      value: bytesOf(value),
    })),
    body: typeof body === "string" ? bytesOf(body) : body,
  };
}

function fenceRecord(token: string | Uint8Array): AppendRecord {
  return {
    headers: [commandHeader("fence")],
    body: typeof token === "string" ? bytesOf(token) : token,
  };
}

function trimRecord(trimPoint: number | bigint): AppendRecord {
  return { headers: [commandHeader("trim")], body: encodeTrimBody(BigInt(trimPoint)) };
}

function records(count: number, prefix = "r"): AppendRecord[] {
  return Array.from({ length: count }, (_, i) => record(`${prefix}${i}`));
}

function readAll(
  fixture: Fixture & { stream: string },
  startSeqNum = 0,
): Promise<SequencedRecord[]> {
  return fixture.service.records.read(basin, fixture.stream, {
    startSeqNum,
    countMax: recordBatchCountMax,
    bytesMax: recordBatchBytesMax,
  });
}

function bodiesOf(read: readonly SequencedRecord[]): string[] {
  return read.map((r) => new TextDecoder().decode(r.body));
}

/** Asserts that `promise` rejects with an S2Error of `code` (and `message`, if given). */
async function rejectsWithCode(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: string,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected an S2Error, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.equal(error.message, message);
    return true;
  });
}

/** Asserts that `promise` rejects with a 412 carrying `condition`. */
async function rejectsWithCondition(
  promise: Promise<unknown>,
  condition: AppendConditionFailed["condition"],
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AppendConditionFailed, `expected a 412, got ${String(error)}`);
    assert.ok(error instanceof S2Error);
    assert.deepEqual(error.condition, condition);
    return true;
  });
}

/** "pending" if `promise` has not settled after `ms` (a liveness probe, not a timing check). */
async function stateAfter<T>(promise: Promise<T>, ms: number): Promise<"pending" | "settled"> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), ms);
  });
  const settled = promise.then(
    () => "settled" as const,
    () => "settled" as const,
  );
  const result = await Promise.race([pending, settled]);
  clearTimeout(timer);
  return result;
}

/** Polls `condition` until it holds or `timeoutMs` passes. */
async function eventually(condition: () => Promise<boolean>, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail("condition did not hold in time");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The first seq nums of the records entries the cache index holds for a stream. */
async function cachedEntryStarts(kv: KvStore, streamId: number): Promise<number[]> {
  const seqNums: number[] = [];
  for await (const [key] of kv.entries({
    gte: encodeSegmentEntryKey(streamId, 0),
    lt: encodeSegmentEntryKey(streamId + 1, 0),
  })) {
    seqNums.push(decodeSegmentEntryKey(key).firstSeqNum);
  }
  return seqNums;
}

function streamIdOf(service: Service, stream: string): number {
  const streamRecord = service.storage.state.streams.get(`${basin}\u0000${stream}`);
  assert.ok(streamRecord !== undefined);
  return streamRecord.streamId;
}

describe("append sequencing", () => {
  it("assigns dense seq nums from 0 to 200 concurrent appends, acked in order", async () => {
    await withStream(undefined, async (fixture) => {
      const resolvedOrder: number[] = [];
      const appends = Array.from({ length: 200 }, (_, i) =>
        fixture.service.records
          .append(basin, fixture.stream, { records: records((i % 3) + 1, `a${i}-`) })
          .then((ack) => {
            resolvedOrder.push(i);
            return ack;
          }),
      );
      const acks = await Promise.all(appends);
      assert.deepEqual(
        resolvedOrder,
        Array.from({ length: 200 }, (_, i) => i),
      );
      let next = 0;
      for (const [i, ack] of acks.entries()) {
        assert.equal(ack.start.seqNum, next, `append ${i} starts where the previous ended`);
        assert.equal(ack.end.seqNum - ack.start.seqNum, (i % 3) + 1);
        assert.ok(ack.tail.seqNum >= ack.end.seqNum);
        next = ack.end.seqNum;
      }
      const read = await readAll(fixture);
      assert.equal(read.length, next);
      assert.deepEqual(
        read.map((r) => r.seqNum),
        Array.from({ length: next }, (_, i) => i),
      );
      assert.equal(bodiesOf(read)[0], "a0-0");
      assert.equal(bodiesOf(read).at(-1), `a199-${(199 % 3) + 1 - 1}`);
      assert.deepEqual(await fixture.service.records.checkTail(basin, fixture.stream), {
        seqNum: next,
        timestamp: read.at(-1)!.timestamp,
      });
    });
  });

  it("acks start, end (last + 1, last timestamp) and a tail at or past the end", async () => {
    await withStream(undefined, async (fixture) => {
      const first = await fixture.service.records.append(basin, fixture.stream, {
        records: [
          record("a", { timestamp: 10 }),
          record("b", { timestamp: 20 }),
          record("c", { timestamp: 30 }),
        ],
      });
      assert.deepEqual(first.start, { seqNum: 0, timestamp: 10 });
      assert.deepEqual(first.end, { seqNum: 3, timestamp: 30 });
      assert.deepEqual(first.tail, { seqNum: 3, timestamp: 30 });
      const second = await fixture.service.records.append(basin, fixture.stream, {
        records: [record("d", { timestamp: 40 })],
      });
      assert.deepEqual(second.start, { seqNum: 3, timestamp: 40 });
      assert.deepEqual(second.end, { seqNum: 4, timestamp: 40 });
      assert.deepEqual(second.tail, { seqNum: 4, timestamp: 40 });
      assert.deepEqual(await fixture.service.records.checkTail(basin, fixture.stream), {
        seqNum: 4,
        timestamp: 40,
      });
    });
  });

  it("reports the durable tail in an ack, which may include later appends of the same flush", async () => {
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        store.hold();
        const a = fixture.service.records.append(basin, fixture.stream, { records: records(2) });
        const b = fixture.service.records.append(basin, fixture.stream, { records: records(3) });
        await new Promise((resolve) => setTimeout(resolve, 5));
        store.release();
        const [ackA, ackB] = await Promise.all([a, b]);
        assert.deepEqual([ackA.start.seqNum, ackA.end.seqNum], [0, 2]);
        assert.deepEqual([ackB.start.seqNum, ackB.end.seqNum], [2, 5]);
        for (const ack of [ackA, ackB]) {
          assert.ok(ack.tail.seqNum >= ack.end.seqNum);
          assert.ok(ack.tail.timestamp >= ack.end.timestamp);
        }
      },
      { store },
    );
  });

  it("neither shows nor acks records before they are durable", async () => {
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        store.hold();
        const append = fixture.service.records.append(basin, fixture.stream, {
          records: records(3),
        });
        assert.equal(await stateAfter(append, 20), "pending");
        assert.deepEqual(await fixture.service.records.checkTail(basin, fixture.stream), {
          seqNum: 0,
          timestamp: 0,
        });
        assert.deepEqual(await readAll(fixture), []);
        store.release();
        const ack = await append;
        assert.equal(ack.end.seqNum, 3);
        assert.equal((await readAll(fixture)).length, 3);
      },
      { store },
    );
  });

  it("runs the pipelined next seq num ahead of the durable tail", async () => {
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        // A streamer driven directly, on a stream the service never touches.
        await fixture.service.streams.create({ basin, name: "direct" });
        const streamer = new Streamer({
          storage: fixture.service.storage,
          clock: fixture.clock,
          streamId: streamIdOf(fixture.service, "direct"),
          config: fixture.service.streams.getConfig(basin, "direct"),
        });
        store.hold();
        const a = streamer.append({ records: records(4) });
        const b = streamer.append({ records: records(1) });
        await new Promise((resolve) => setTimeout(resolve, 5));
        assert.equal(streamer.pipelinedNextSeqNum, 5);
        assert.deepEqual(streamer.tail, { seqNum: 0, timestamp: 0 });
        store.release();
        await Promise.all([a, b]);
        assert.equal(streamer.pipelinedNextSeqNum, 5);
        assert.equal(streamer.tail.seqNum, 5);
      },
      { store },
    );
  });
});

describe("append conditions", () => {
  it("never answers a 412 from pipelined state that is then lost to a newer writer", async () => {
    // Goal: a rejection must not report a tail (or token) that never becomes durable. Writer A's
    // WAL PUTs stall; it sequences a batch and fence, then judges two conditional appends against
    // that pipelined state; writer B then takes over the bucket, so A's batches are lost. The
    // rejections must say what A's lost batches say (`unavailable`), never "next seq num 3".
    const inner = createMemoryObjectStore();
    const gated = createGatedObjectStore(inner);
    const a = await openService({ store: gated });
    let b: Fixture | undefined;
    try {
      await a.service.basins.create({ name: basin });
      await a.service.streams.create({ basin, name: "s" });
      gated.hold();
      const pending = a.service.records.append(basin, "s", {
        records: [record("x"), fenceRecord("t-lost"), record("y")],
      });
      const stale = a.service.records.append(basin, "s", { records: records(1), matchSeqNum: 0 });
      const wrongToken = a.service.records.append(basin, "s", {
        records: records(1),
        fencingToken: "t-other",
      });
      // Today's answer would be a 412 with next seq num 3 / token "t-lost": neither is durable.
      assert.equal(await stateAfter(stale, 50), "pending");
      assert.equal(await stateAfter(wrongToken, 0), "pending");
      b = await openService({ store: inner });
      gated.release();
      await rejectsWithCode(pending, "unavailable");
      await rejectsWithCode(stale, "unavailable");
      await rejectsWithCode(wrongToken, "unavailable");
      // The newer writer's log holds none of it: a 412 saying 3 would have been false.
      assert.deepEqual(await b.service.records.checkTail(basin, "s"), { seqNum: 0, timestamp: 0 });
      await rejectsWithCondition(
        b.service.records.append(basin, "s", { records: records(1), fencingToken: "t-lost" }),
        { kind: "fencing_token_mismatch", currentToken: "" },
      );
    } finally {
      gated.release();
      await a.service.close();
      await b?.service.close();
    }
  });

  it("checks matchSeqNum against the pipelined next seq num", async () => {
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        const { records: recordService } = fixture.service;
        store.hold();
        const first = recordService.append(basin, fixture.stream, {
          records: records(3),
          matchSeqNum: 0,
        });
        const second = recordService.append(basin, fixture.stream, {
          records: records(2),
          matchSeqNum: 3,
        });
        const stale = recordService.append(basin, fixture.stream, {
          records: records(1),
          matchSeqNum: 3,
        });
        const ahead = recordService.append(basin, fixture.stream, {
          records: records(1),
          matchSeqNum: 6,
        });
        // The mismatches were judged on pipelined state (next seq num 5), which is not durable
        // yet: their rejections wait for it, so that they never state what may be lost.
        assert.equal(await stateAfter(stale, 50), "pending");
        assert.equal(await stateAfter(ahead, 0), "pending");
        assert.deepEqual(await recordService.checkTail(basin, fixture.stream), {
          seqNum: 0,
          timestamp: 0,
        });
        store.release();
        await rejectsWithCondition(stale, { kind: "seq_num_mismatch", nextSeqNum: 5 });
        await rejectsWithCondition(ahead, { kind: "seq_num_mismatch", nextSeqNum: 5 });
        const [ackFirst, ackSecond] = await Promise.all([first, second]);
        assert.equal(ackFirst.start.seqNum, 0);
        assert.equal(ackSecond.start.seqNum, 3);
        assert.equal(ackSecond.end.seqNum, 5);
        // A rejected append takes no seq num.
        const next = await recordService.append(basin, fixture.stream, {
          records: records(1),
          matchSeqNum: 5,
        });
        assert.equal(next.start.seqNum, 5);
      },
      { store },
    );
  });

  it("checks the fencing token before matchSeqNum and reports the current token", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      await recordService.append(basin, fixture.stream, { records: [fenceRecord("owner-1")] });
      await rejectsWithCondition(
        recordService.append(basin, fixture.stream, {
          records: records(1),
          fencingToken: "intruder",
          matchSeqNum: 99,
        }),
        { kind: "fencing_token_mismatch", currentToken: "owner-1" },
      );
      await rejectsWithCondition(
        recordService.append(basin, fixture.stream, {
          records: records(1),
          fencingToken: "owner-1",
          matchSeqNum: 99,
        }),
        { kind: "seq_num_mismatch", nextSeqNum: 1 },
      );
    });
  });

  it("matches the initial empty token, and an append without a token ignores fencing", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      const ack = await recordService.append(basin, fixture.stream, {
        records: records(1),
        fencingToken: "",
      });
      assert.equal(ack.start.seqNum, 0);
      await rejectsWithCondition(
        recordService.append(basin, fixture.stream, { records: records(1), fencingToken: "x" }),
        { kind: "fencing_token_mismatch", currentToken: "" },
      );
      await recordService.append(basin, fixture.stream, { records: [fenceRecord("t")] });
      const unfenced = await recordService.append(basin, fixture.stream, { records: records(1) });
      assert.equal(unfenced.start.seqNum, 2);
    });
  });

  it("applies a fence to following batches, not to its own batch's check", async () => {
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        const { records: recordService } = fixture.service;
        store.hold();
        // The batch carrying fence "t1" is checked against the token before it ("").
        const fence1 = recordService.append(basin, fixture.stream, {
          records: [record("before"), fenceRecord("t1"), record("after")],
          fencingToken: "",
        });
        // Pipelined: the next batch already sees "t1", though the fence is not durable.
        const withT1 = recordService.append(basin, fixture.stream, {
          records: records(1),
          fencingToken: "t1",
        });
        const withOld = recordService.append(basin, fixture.stream, {
          records: records(1),
          fencingToken: "",
        });
        const fence2 = recordService.append(basin, fixture.stream, {
          records: [fenceRecord("t2")],
          fencingToken: "t1",
        });
        const stillT1 = recordService.append(basin, fixture.stream, {
          records: records(1),
          fencingToken: "t1",
        });
        // Their rejections wait until the fences they report are durable.
        assert.equal(await stateAfter(withOld, 50), "pending");
        store.release();
        await rejectsWithCondition(withOld, { kind: "fencing_token_mismatch", currentToken: "t1" });
        await rejectsWithCondition(stillT1, { kind: "fencing_token_mismatch", currentToken: "t2" });
        await Promise.all([fence1, withT1, fence2]);
        const t2 = await recordService.append(basin, fixture.stream, {
          records: records(1),
          fencingToken: "t2",
        });
        assert.equal(t2.start.seqNum, 5);
      },
      { store },
    );
  });

  it("resets the token to the empty string with an empty fence", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      await recordService.append(basin, fixture.stream, { records: [fenceRecord("abc")] });
      await recordService.append(basin, fixture.stream, {
        records: [fenceRecord("")],
        fencingToken: "abc",
      });
      await rejectsWithCondition(
        recordService.append(basin, fixture.stream, { records: records(1), fencingToken: "abc" }),
        { kind: "fencing_token_mismatch", currentToken: "" },
      );
      const ack = await recordService.append(basin, fixture.stream, {
        records: records(1),
        fencingToken: "",
      });
      assert.equal(ack.start.seqNum, 2);
    });
  });

  it("stores command records as records that take seq nums", async () => {
    await withStream(undefined, async (fixture) => {
      await fixture.service.records.append(basin, fixture.stream, {
        records: [record("x"), fenceRecord("tok"), trimRecord(0)],
      });
      const read = await readAll(fixture);
      assert.equal(read.length, 3);
      assert.deepEqual(read[1]!.headers, [commandHeader("fence")]);
      assert.deepEqual(read[1]!.body, bytesOf("tok"));
      assert.deepEqual(read[2]!.headers, [commandHeader("trim")]);
      assert.deepEqual(read[2]!.body, encodeTrimBody(0n));
    });
  });
});

describe("trim", () => {
  it("hides records below the trim point once durable, and eventually drops them from the cache", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      // Five entries of two records: [0, 2) … [8, 10), each in its own segment.
      for (let i = 0; i < 5; i++) {
        await recordService.append(basin, fixture.stream, { records: records(2) });
      }
      const ack = await recordService.append(basin, fixture.stream, { records: [trimRecord(5)] });
      assert.equal(ack.start.seqNum, 10);
      const read = await readAll(fixture);
      assert.deepEqual(
        read.map((r) => r.seqNum),
        [5, 6, 7, 8, 9, 10],
      );
      // A read starting in the trimmed range begins at the first surviving record.
      assert.equal((await readAll(fixture, 2))[0]?.seqNum, 5);
      assert.equal((await readAll(fixture, 7))[0]?.seqNum, 7);
      const streamId = streamIdOf(fixture.service, fixture.stream);
      // Entries wholly below the trim point go, with their segment files; [4, 6) straddles it.
      await eventually(async () => (await cachedEntryStarts(fixture.kv, streamId))[0] === 4);
      assert.deepEqual(await cachedEntryStarts(fixture.kv, streamId), [4, 6, 8, 10]);
      assert.equal(fixture.service.storage.stats.filesDeleted, 2);
      // The tail does not move back.
      assert.equal((await recordService.checkTail(basin, fixture.stream)).seqNum, 11);
    });
  });

  it("clamps the trim point to the trim record's seq num + 1", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      await recordService.append(basin, fixture.stream, { records: records(3) });
      await recordService.append(basin, fixture.stream, { records: [trimRecord(2n ** 64n - 1n)] });
      assert.deepEqual(await readAll(fixture), []);
      assert.equal((await recordService.checkTail(basin, fixture.stream)).seqNum, 4);
      await recordService.append(basin, fixture.stream, { records: records(2, "later") });
      assert.deepEqual(
        (await readAll(fixture)).map((r) => r.seqNum),
        [4, 5],
      );
    });
  });

  it("clamps a trim inside a batch to its own position, not the batch's end", async () => {
    await withStream(undefined, async (fixture) => {
      await fixture.service.records.append(basin, fixture.stream, {
        records: [record("a"), trimRecord(100), record("b"), record("c")],
      });
      assert.deepEqual(
        (await readAll(fixture)).map((r) => r.seqNum),
        [2, 3],
      );
    });
  });

  it("only moves the trim point forward", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      await recordService.append(basin, fixture.stream, { records: records(8) });
      await recordService.append(basin, fixture.stream, { records: [trimRecord(6)] });
      await recordService.append(basin, fixture.stream, { records: [trimRecord(2)] });
      assert.deepEqual(
        (await readAll(fixture)).map((r) => r.seqNum),
        [6, 7, 8, 9],
      );
    });
  });
});

describe("timestamps", () => {
  it("client-prefer uses a client timestamp and arrival time when it is missing", async () => {
    const clock = createSettableClock(1_000_000);
    await withStream(
      { timestamping: { mode: "client-prefer" } },
      async (fixture) => {
        const ack = await fixture.service.records.append(basin, fixture.stream, {
          records: [record("a", { timestamp: 0 }), record("b", { timestamp: 500 }), record("c")],
        });
        assert.deepEqual(
          (await readAll(fixture)).map((r) => r.timestamp),
          [0, 500, 1_000_000],
        );
        assert.deepEqual(ack.start, { seqNum: 0, timestamp: 0 });
        assert.deepEqual(ack.end, { seqNum: 3, timestamp: 1_000_000 });
      },
      { clock },
    );
  });

  it("client-require rejects a batch with any missing timestamp and appends nothing", async () => {
    const clock = createSettableClock(1_000_000);
    await withStream(
      { timestamping: { mode: "client-require" } },
      async (fixture) => {
        await rejectsWithCode(
          fixture.service.records.append(basin, fixture.stream, {
            records: [record("a", { timestamp: 5 }), record("b")],
          }),
          "invalid",
          "record timestamp was required but was missing",
        );
        assert.deepEqual(await fixture.service.records.checkTail(basin, fixture.stream), {
          seqNum: 0,
          timestamp: 0,
        });
        const ack = await fixture.service.records.append(basin, fixture.stream, {
          records: [record("a", { timestamp: 5 }), record("b", { timestamp: 7 })],
        });
        assert.deepEqual(ack.start, { seqNum: 0, timestamp: 5 });
        assert.deepEqual(ack.end, { seqNum: 2, timestamp: 7 });
      },
      { clock },
    );
  });

  it("a client-require stream can be deleted: its terminal trim is the server's record", async () => {
    await withStream({ timestamping: { mode: "client-require" } }, async (fixture) => {
      await fixture.service.records.append(basin, fixture.stream, {
        records: [record("a", { timestamp: 5 })],
      });
      await fixture.service.streams.delete(basin, fixture.stream);
      await rejectsWithCode(
        fixture.service.records.append(basin, fixture.stream, {
          records: [record("b", { timestamp: 6 })],
        }),
        "stream_deletion_pending",
      );
    });
  });

  it("arrival ignores client timestamps", async () => {
    const clock = createSettableClock(2_000_000);
    await withStream(
      { timestamping: { mode: "arrival" } },
      async (fixture) => {
        await fixture.service.records.append(basin, fixture.stream, {
          records: [record("a", { timestamp: 5 }), record("b")],
        });
        assert.deepEqual(
          (await readAll(fixture)).map((r) => r.timestamp),
          [2_000_000, 2_000_000],
        );
      },
      { clock },
    );
  });

  it("caps future timestamps at now unless uncapped", async () => {
    const clock = createSettableClock(1_000);
    await withStream(
      undefined,
      async (fixture) => {
        await fixture.service.records.append(basin, fixture.stream, {
          records: [record("future", { timestamp: 5_000 })],
        });
        assert.equal((await readAll(fixture))[0]!.timestamp, 1_000);
        await fixture.service.streams.create({
          basin,
          name: "uncapped",
          config: { timestamping: { uncapped: true } },
        });
        await fixture.service.records.append(basin, "uncapped", {
          records: [record("future", { timestamp: 5_000 }), record("now")],
        });
        // The missing timestamp (now = 1000) is raised to the running max.
        assert.deepEqual(
          (await readAll({ ...fixture, stream: "uncapped" })).map((r) => r.timestamp),
          [5_000, 5_000],
        );
      },
      { clock },
    );
  });

  it("raises timestamps to the running max, within a batch, across batches and clock steps back", async () => {
    const clock = createSettableClock(10_000);
    await withStream(
      undefined,
      async (fixture) => {
        const { records: recordService } = fixture.service;
        await recordService.append(basin, fixture.stream, {
          records: [
            record("a", { timestamp: 100 }),
            record("b", { timestamp: 50 }),
            record("c", { timestamp: 100 }),
          ],
        });
        await recordService.append(basin, fixture.stream, {
          records: [record("d", { timestamp: 20 })],
        });
        await recordService.append(basin, fixture.stream, { records: [record("e")] });
        clock.setNowMs(9_000);
        const ack = await recordService.append(basin, fixture.stream, { records: [record("f")] });
        assert.deepEqual(
          (await readAll(fixture)).map((r) => r.timestamp),
          [100, 100, 100, 100, 10_000, 10_000],
        );
        assert.deepEqual(ack.end, { seqNum: 6, timestamp: 10_000 });
      },
      { clock },
    );
  });

  it("raises pipelined batches' timestamps against each other before either is durable", async () => {
    const store = createGatedObjectStore();
    const clock = createSettableClock(10_000);
    await withStream(
      undefined,
      async (fixture) => {
        store.hold();
        const a = fixture.service.records.append(basin, fixture.stream, {
          records: [record("a", { timestamp: 900 })],
        });
        const b = fixture.service.records.append(basin, fixture.stream, {
          records: [record("b", { timestamp: 300 })],
        });
        await new Promise((resolve) => setTimeout(resolve, 5));
        store.release();
        const [, ackB] = await Promise.all([a, b]);
        assert.deepEqual(ackB.start, { seqNum: 1, timestamp: 900 });
      },
      { store, clock },
    );
  });

  it("applies a timestamping reconfiguration to the next append", async () => {
    const clock = createSettableClock(50_000);
    await withStream(
      undefined,
      async (fixture) => {
        await fixture.service.records.append(basin, fixture.stream, { records: [record("a")] });
        await fixture.service.streams.reconfigure(basin, fixture.stream, {
          timestamping: { mode: "client-require" },
        });
        await rejectsWithCode(
          fixture.service.records.append(basin, fixture.stream, { records: [record("b")] }),
          "invalid",
          "record timestamp was required but was missing",
        );
      },
      { clock },
    );
  });
});

describe("append validation", () => {
  const cases: { name: string; input: () => AppendInput }[] = [
    { name: "no records", input: () => ({ records: [] }) },
    { name: "1001 records", input: () => ({ records: records(recordBatchCountMax + 1) }) },
    {
      name: "more than 1 MiB metered",
      input: () => ({ records: [record(new Uint8Array(recordBatchBytesMax - 8 + 1))] }),
    },
    {
      name: "more than 1 MiB metered across records",
      input: () => ({
        records: [
          record(new Uint8Array(recordBatchBytesMax / 2)),
          record(new Uint8Array(recordBatchBytesMax / 2)),
        ],
      }),
    },
    {
      name: "an empty header name mixed with others",
      input: () => ({
        records: [
          record("x", {
            headers: [
              ["", "fence"],
              ["k", "v"],
            ],
          }),
        ],
      }),
    },
    {
      name: "an empty header name in a record with two empty names",
      input: () => ({
        records: [
          record("x", {
            headers: [
              ["", "fence"],
              ["", "trim"],
            ],
          }),
        ],
      }),
    },
    {
      name: "an unknown command",
      input: () => ({ records: [record("x", { headers: [["", "compact"]] })] }),
    },
    {
      name: "an empty command name",
      input: () => ({ records: [record("x", { headers: [["", ""]] })] }),
    },
    {
      name: "a fence token over 36 bytes",
      input: () => ({ records: [fenceRecord("f".repeat(37))] }),
    },
    {
      name: "a fence token over 36 UTF-8 bytes (multibyte)",
      input: () => ({ records: [fenceRecord("é".repeat(19))] }),
    },
    {
      name: "a fence token that is not UTF-8",
      input: () => ({ records: [fenceRecord(new Uint8Array([0xff]))] }),
    },
    {
      name: "a trim body of 7 bytes",
      input: () => ({ records: [{ headers: [commandHeader("trim")], body: new Uint8Array(7) }] }),
    },
    {
      name: "a trim body of 9 bytes",
      input: () => ({ records: [{ headers: [commandHeader("trim")], body: new Uint8Array(9) }] }),
    },
    {
      name: "a fencingToken over 36 bytes",
      input: () => ({ records: records(1), fencingToken: "t".repeat(37) }),
    },
    { name: "a negative matchSeqNum", input: () => ({ records: records(1), matchSeqNum: -1 }) },
    { name: "a negative timestamp", input: () => ({ records: [record("x", { timestamp: -1 })] }) },
  ];

  it("rejects invalid batches with 422 invalid and assigns them no seq num", async () => {
    await withStream(undefined, async (fixture) => {
      for (const { name, input } of cases) {
        await assert.rejects(
          fixture.service.records.append(basin, fixture.stream, input()),
          (error: unknown) => {
            assert.ok(
              error instanceof S2Error,
              `${name}: expected an S2Error, got ${String(error)}`,
            );
            assert.equal(error.code, "invalid", `${name}: ${error.message}`);
            return true;
          },
        );
      }
      const ack = await fixture.service.records.append(basin, fixture.stream, {
        records: records(1),
      });
      assert.equal(ack.start.seqNum, 0);
    });
  });

  it("accepts batches exactly at the limits", async () => {
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      const full = await recordService.append(basin, fixture.stream, {
        records: records(recordBatchCountMax),
      });
      assert.equal(full.end.seqNum, recordBatchCountMax);
      const big = await recordService.append(basin, fixture.stream, {
        records: [record(new Uint8Array(recordBatchBytesMax - 8))],
      });
      assert.equal(big.end.seqNum - big.start.seqNum, 1);
      const withHeader = await recordService.append(basin, fixture.stream, {
        records: [
          record(new Uint8Array(recordBatchBytesMax - 8 - 2 - 2), { headers: [["k", "v"]] }),
        ],
      });
      assert.equal(withHeader.end.seqNum - withHeader.start.seqNum, 1);
      await recordService.append(basin, fixture.stream, {
        records: [fenceRecord("f".repeat(36)), fenceRecord("")],
      });
      const read = await recordService.read(basin, fixture.stream, {
        startSeqNum: recordBatchCountMax,
        countMax: 1,
        bytesMax: recordBatchBytesMax,
      });
      assert.equal(read[0]!.body.length, recordBatchBytesMax - 8);
    });
  });
});

describe("reads", () => {
  const sample: AppendRecord[] = [
    record("first", {
      headers: [
        ["k", "v"],
        ["k", "v"],
        ["a", ""],
      ],
    }),
    record(new Uint8Array([0, 255, 1, 254])),
    record(""),
    {
      headers: [{ name: new Uint8Array([0xff, 0x00]), value: new Uint8Array([1, 2, 3]) }],
      body: new Uint8Array(300).fill(7),
    },
    record("last", { headers: [["z", "y"]] }),
  ];

  it("returns exactly the durable records with identical bytes", async () => {
    const clock = createSettableClock(123_456);
    await withStream(
      undefined,
      async (fixture) => {
        await fixture.service.records.append(basin, fixture.stream, { records: sample });
        const read = await readAll(fixture);
        assert.deepEqual(
          read,
          sample.map((r, i) => ({
            seqNum: i,
            timestamp: 123_456,
            headers: r.headers.map((h) => ({
              name: new Uint8Array(h.name),
              value: new Uint8Array(h.value),
            })),
            body: new Uint8Array(r.body),
          })),
        );
        assert.deepEqual(await readAll(fixture, 5), []);
        assert.deepEqual(await readAll(fixture, 500), []);
      },
      { clock },
    );
  });

  it("respects count and bytes limits without splitting records", async () => {
    await withStream(undefined, async (fixture) => {
      // Metered sizes: 8 + body, so 10, 11, 12, 13, 14 bytes.
      await fixture.service.records.append(basin, fixture.stream, {
        records: [record("aa"), record("bbb"), record("cccc"), record("ddddd"), record("eeeeee")],
      });
      const read = (startSeqNum: number, countMax: number, bytesMax: number) =>
        fixture.service.records
          .read(basin, fixture.stream, { startSeqNum, countMax, bytesMax })
          .then((got) => got.map((r) => r.seqNum));
      assert.deepEqual(await read(0, 2, recordBatchBytesMax), [0, 1]);
      assert.deepEqual(await read(1, 3, recordBatchBytesMax), [1, 2, 3]);
      assert.deepEqual(await read(0, 0, recordBatchBytesMax), []);
      assert.deepEqual(await read(0, 1000, 21), [0, 1]);
      assert.deepEqual(await read(0, 1000, 20), [0]);
      assert.deepEqual(await read(0, 1000, 9), []);
      assert.deepEqual(await read(0, 1000, 0), []);
      assert.deepEqual(await read(2, 1000, 12 + 13), [2, 3]);
      // A record too large for the remaining budget ends the read: nothing after it is returned.
      assert.deepEqual(await read(0, 1000, 10 + 11 + 5), [0, 1]);
      assert.deepEqual(await read(0, 2, 10), [0]);
    });
  });

  it("reads a long stream in pages by seq num", async () => {
    await withStream(undefined, async (fixture) => {
      for (let i = 0; i < 3; i++) {
        await fixture.service.records.append(basin, fixture.stream, {
          records: records(1000, `p${i}-`),
        });
      }
      const seen: number[] = [];
      let next = 0;
      for (;;) {
        const page = await fixture.service.records.read(basin, fixture.stream, {
          startSeqNum: next,
          countMax: 700,
          bytesMax: recordBatchBytesMax,
        });
        if (page.length === 0) break;
        seen.push(...page.map((r) => r.seqNum));
        next = page.at(-1)!.seqNum + 1;
      }
      assert.equal(seen.length, 3000);
      assert.ok(seen.every((seqNum, i) => seqNum === i));
    });
  });
});

describe("followers", () => {
  it("receive only durable batches, in order, each with the tail after it", async () => {
    const store = createGatedObjectStore();
    const clock = createSettableClock(7_000);
    await withStream(
      undefined,
      async (fixture) => {
        const { records: recordService } = fixture.service;
        await recordService.append(basin, fixture.stream, { records: records(2, "old") });
        const { tail, follower } = await recordService.follow(basin, fixture.stream);
        assert.deepEqual(tail, { seqNum: 2, timestamp: 7_000 });
        store.hold();
        const append = recordService.append(basin, fixture.stream, { records: records(3, "new") });
        const next = follower.next();
        assert.equal(await stateAfter(next, 20), "pending");
        store.release();
        await append;
        const first = await next;
        assert.ok(!("end" in first));
        assert.deepEqual(
          first.records.map((r) => r.seqNum),
          [2, 3, 4],
        );
        assert.deepEqual(bodiesOf(first.records), ["new0", "new1", "new2"]);
        assert.deepEqual(first.tail, { seqNum: 5, timestamp: 7_000 });
        clock.setNowMs(8_000);
        await recordService.append(basin, fixture.stream, { records: [record("x")] });
        await recordService.append(basin, fixture.stream, {
          records: [fenceRecord("f"), record("y")],
        });
        const second = await follower.next();
        const third = await follower.next();
        assert.ok(!("end" in second) && !("end" in third));
        assert.deepEqual(second.tail, { seqNum: 6, timestamp: 8_000 });
        assert.deepEqual(
          third.records.map((r) => r.seqNum),
          [6, 7],
        );
        assert.deepEqual(third.tail, { seqNum: 8, timestamp: 8_000 });
        // What followers saw is exactly what a read returns.
        assert.deepEqual(
          [...first.records, ...second.records, ...third.records],
          await readAll(fixture, 2),
        );
        follower.close();
        assert.deepEqual(await follower.next(), { end: "closed" });
      },
      { store, clock },
    );
  });

  it("delivers pipelined batches of one flush as separate batches in seq num order", async () => {
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        const { follower } = await fixture.service.records.follow(basin, fixture.stream);
        store.hold();
        const appends = [1, 2, 3].map((n) =>
          fixture.service.records.append(basin, fixture.stream, { records: records(n) }),
        );
        await new Promise((resolve) => setTimeout(resolve, 5));
        store.release();
        await Promise.all(appends);
        const batches: SequencedRecord[][] = [];
        for (let i = 0; i < 3; i++) {
          const batch = await follower.next();
          assert.ok(!("end" in batch));
          batches.push([...batch.records]);
          assert.deepEqual(batch.tail.seqNum, batch.records.at(-1)!.seqNum + 1);
        }
        assert.deepEqual(
          batches.map((batch) => batch.map((r) => r.seqNum)),
          [[0], [1, 2], [3, 4, 5]],
        );
        follower.close();
      },
      { store },
    );
  });

  it(`end with "lagged" once more than ${followerLagBatchesMax} read batches are waiting`, async () => {
    // Batches of just over half a read batch: no two of them make one read batch.
    const batchRecords = readBatchCountMax / 2 + 1;
    await withStream(undefined, async (fixture) => {
      const { records: recordService } = fixture.service;
      const { follower: keepingUp } = await recordService.follow(basin, fixture.stream);
      const { follower: lagging } = await recordService.follow(basin, fixture.stream);
      for (let i = 0; i < followerLagBatchesMax; i++) {
        await recordService.append(basin, fixture.stream, { records: records(batchRecords) });
      }
      for (let i = 0; i < followerLagBatchesMax; i++) {
        const batch = await keepingUp.next();
        assert.ok(!("end" in batch));
        assert.equal(batch.records[0]!.seqNum, i * batchRecords);
      }
      await recordService.append(basin, fixture.stream, { records: records(batchRecords) });
      assert.deepEqual(await lagging.next(), { end: "lagged" });
      const batch = await keepingUp.next();
      assert.ok(!("end" in batch));
      assert.equal(batch.records[0]!.seqNum, followerLagBatchesMax * batchRecords);
      keepingUp.close();
    });
  });

  it(`keep a follower that has not yet run when one flush holds more than ${followerLagBatchesMax} small batches`, async () => {
    // A pipelined writer of one record per batch puts many batches in one flush, and the flush
    // makes them durable in one synchronous pass: counted one by one, they cut off every follower.
    const batchCount = 4 * followerLagBatchesMax;
    const store = createGatedObjectStore();
    await withStream(
      undefined,
      async (fixture) => {
        const { follower } = await fixture.service.records.follow(basin, fixture.stream);
        store.hold();
        const appends = Array.from({ length: batchCount }, () =>
          fixture.service.records.append(basin, fixture.stream, { records: records(1) }),
        );
        await new Promise((resolve) => setTimeout(resolve, 5));
        store.release();
        await Promise.all(appends);
        for (let i = 0; i < batchCount; i++) {
          const batch = await follower.next();
          assert.ok(!("end" in batch), `batch ${i}: ${JSON.stringify(batch)}`);
          assert.deepEqual(
            batch.records.map((r) => r.seqNum),
            [i],
          );
          assert.equal(batch.tail.seqNum, i + 1);
        }
        follower.close();
      },
      { store },
    );
  });

  it('end with "closed" when the service closes', async () => {
    const fixture = await openService();
    await fixture.service.basins.create({ name: basin });
    await fixture.service.streams.create({ basin, name: "s" });
    const { follower } = await fixture.service.records.follow(basin, "s");
    const next = follower.next();
    await fixture.service.close();
    assert.deepEqual(await next, { end: "closed" });
  });
});

describe("buffer ownership", () => {
  it("keeps what was sequenced when the caller reuses its buffers before the batch is durable", async () => {
    const store = createGatedObjectStore();
    const kv = createMemoryKvStore();
    const clock = createSettableClock(startNowMs);
    const first = await openService({ store, kv, clock });
    try {
      await first.service.basins.create({ name: basin });
      await first.service.streams.create({ basin, name: "s" });
      const { follower } = await first.service.records.follow(basin, "s");
      const token = bytesOf("aaa");
      const body = bytesOf("original");
      store.hold();
      const append = first.service.records.append(basin, "s", {
        records: [fenceRecord(token), record(body)],
      });
      await new Promise((resolve) => setImmediate(resolve));
      token.set(bytesOf("bbb"));
      body.set(bytesOf("mutated!"));
      store.release();
      await append;
      const batch = await follower.next();
      assert.ok(!("end" in batch));
      assert.deepEqual(bodiesOf(batch.records), ["aaa", "original"]);
      assert.deepEqual(batch.records, await readAll({ ...first, stream: "s" }));
      assert.equal(
        first.service.storage.state.tailOf(streamIdOf(first.service, "s")).fencingToken,
        "aaa",
      );
      follower.close();
    } finally {
      await first.service.close();
    }
    // The cache's copy of the tail agrees with the segment too.
    const second = await openService({ store, kv, clock });
    try {
      const ack = await second.service.records.append(basin, "s", {
        records: records(1),
        fencingToken: "aaa",
      });
      assert.equal(ack.start.seqNum, 2);
    } finally {
      await second.service.close();
    }
  });
});

describe("recovery", () => {
  async function buildHistory(
    fixture: Fixture & { stream: string },
    clock: SettableClock,
  ): Promise<void> {
    const { records: recordService } = fixture.service;
    await recordService.append(basin, fixture.stream, {
      records: [record("a", { headers: [["h", "1"]] }), record("b", { timestamp: 5 })],
    });
    clock.setNowMs(startNowMs + 10);
    await recordService.append(basin, fixture.stream, { records: [fenceRecord("owner")] });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        recordService.append(basin, fixture.stream, {
          records: records(i + 1, `c${i}-`),
          fencingToken: "owner",
        }),
      ),
    );
    await recordService.append(basin, fixture.stream, { records: [trimRecord(3)] });
    await fixture.service.streams.create({ basin, name: "other" });
    await recordService.append(basin, "other", { records: records(4, "o") });
  }

  for (const cache of ["fresh", "kept"] as const) {
    it(`gives identical records, tails and pipelined state after a reopen (${cache} cache)`, async () => {
      const store = createMemoryObjectStore();
      const kv = createMemoryKvStore();
      const clock = createSettableClock(startNowMs);
      const first = await openService({ store, kv, clock });
      await first.service.basins.create({ name: basin });
      await first.service.streams.create({ basin, name: "s" });
      await buildHistory({ ...first, stream: "s" }, clock);
      const before = {
        s: await readAll({ ...first, stream: "s" }),
        other: await readAll({ ...first, stream: "other" }),
        tailS: await first.service.records.checkTail(basin, "s"),
        tailOther: await first.service.records.checkTail(basin, "other"),
      };
      await first.service.close();

      const second = await openService({
        store,
        kv: cache === "fresh" ? createMemoryKvStore() : kv,
        clock,
      });
      try {
        assert.deepEqual(await readAll({ ...second, stream: "s" }), before.s);
        assert.deepEqual(await readAll({ ...second, stream: "other" }), before.other);
        assert.deepEqual(await second.service.records.checkTail(basin, "s"), before.tailS);
        assert.deepEqual(await second.service.records.checkTail(basin, "other"), before.tailOther);
        assert.equal(before.s[0]!.seqNum, 3, "the trim survived");
        // The fencing token, next seq num and last timestamp survived too.
        await rejectsWithCondition(
          second.service.records.append(basin, "s", { records: records(1), fencingToken: "" }),
          { kind: "fencing_token_mismatch", currentToken: "owner" },
        );
        await rejectsWithCondition(
          second.service.records.append(basin, "s", { records: records(1), matchSeqNum: 0 }),
          { kind: "seq_num_mismatch", nextSeqNum: before.tailS.seqNum },
        );
        clock.setNowMs(startNowMs - 1_000);
        const ack = await second.service.records.append(basin, "s", {
          records: records(1),
          fencingToken: "owner",
          matchSeqNum: before.tailS.seqNum,
        });
        assert.deepEqual(ack.start, {
          seqNum: before.tailS.seqNum,
          timestamp: before.tailS.timestamp,
        });
      } finally {
        await second.service.close();
      }
    });
  }

  it("acks every append in flight when the service closes, and they survive a reopen", async () => {
    const store = createMemoryObjectStore();
    const first = await openService({ store });
    await first.service.basins.create({ name: basin });
    await first.service.streams.create({ basin, name: "s" });
    const appends = Array.from({ length: 50 }, () =>
      first.service.records.append(basin, "s", { records: records(2) }),
    );
    // Let the appends be admitted and sequenced, then close while they are in flight.
    await new Promise((resolve) => setImmediate(resolve));
    const closing = first.service.close();
    const acks: AppendAck[] = await Promise.all(appends);
    await closing;
    assert.equal(acks.at(-1)!.end.seqNum, 100);
    const second = await openService({ store });
    try {
      assert.deepEqual(await second.service.records.checkTail(basin, "s"), acks.at(-1)!.tail);
      assert.equal((await readAll({ ...second, stream: "s" })).length, 100);
    } finally {
      await second.service.close();
    }
  });

  it("never serves records that were staged in the cache but not durable when the writer died", async () => {
    const inner = createMemoryObjectStore();
    const store = createGatedObjectStore(inner);
    const kv = createMemoryKvStore();
    const old = await openService({ store, kv });
    let newer: Fixture | undefined;
    try {
      await old.service.basins.create({ name: basin });
      await old.service.streams.create({ basin, name: "s" });
      await old.service.records.append(basin, "s", { records: records(3, "durable") });
      store.hold();
      const lost = old.service.records.append(basin, "s", { records: records(4, "lost") });
      const lostOutcome = lost.then(
        () => "acked",
        (error: unknown) => error,
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
      // A newer writer takes over the same cache (a restart) while the old one's PUT hangs.
      newer = await openService({ store: inner, kv });
      store.release();
      const outcome = await lostOutcome;
      assert.ok(outcome instanceof S2Error && outcome.code === "unavailable");
      assert.deepEqual(bodiesOf(await readAll({ ...newer, stream: "s" })), [
        "durable0",
        "durable1",
        "durable2",
      ]);
      assert.equal((await newer.service.records.checkTail(basin, "s")).seqNum, 3);
      const ack = await newer.service.records.append(basin, "s", { records: records(1, "new") });
      assert.equal(ack.start.seqNum, 3);
      assert.deepEqual(bodiesOf(await readAll({ ...newer, stream: "s" }, 3)), ["new0"]);
    } finally {
      await old.service.close();
      await newer?.service.close();
    }
  });

  it("fails appends with unavailable and ends followers once a newer writer fences it", async () => {
    const store = createMemoryObjectStore();
    const old = await openService({ store });
    let newer: Fixture | undefined;
    try {
      await old.service.basins.create({ name: basin });
      await old.service.streams.create({ basin, name: "s" });
      const acked = await old.service.records.append(basin, "s", { records: records(2) });
      const { follower } = await old.service.records.follow(basin, "s");
      newer = await openService({ store });
      await rejectsWithCode(
        old.service.records.append(basin, "s", { records: records(1) }),
        "unavailable",
      );
      await rejectsWithCode(
        old.service.records.append(basin, "s", { records: records(1) }),
        "unavailable",
      );
      const end = await follower.next();
      assert.ok("end" in end && end.end instanceof S2Error && end.end.code === "unavailable");
      // Only what the old writer acked is in the newer writer's history.
      assert.deepEqual(await newer.service.records.checkTail(basin, "s"), acked.tail);
    } finally {
      await old.service.close();
      await newer?.service.close();
    }
  });

  it("fails an append after close with a retryable S2Error", async () => {
    const fixture = await openService();
    await fixture.service.basins.create({ name: basin });
    await fixture.service.streams.create({ basin, name: "s" });
    await fixture.service.records.append(basin, "s", { records: records(1) });
    await fixture.service.close();
    await rejectsWithCode(
      fixture.service.records.append(basin, "s", { records: records(1) }),
      "unavailable",
    );
  });
});
