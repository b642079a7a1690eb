// Goal: streams touched once give their streamers back after `streamerIdleMs` idle (issue 12), and
// a stream whose streamer was retired goes on exactly where it was: next seq num, fencing token,
// trim point; a streamer with an append in flight, a follower, or a deletion in progress is never
// retired. Method: a real Service on the memory store (a stalling wrapper for the in-flight case)
// with a 20 ms idle time; background passes are run by hand (`retention.runOnce`).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { systemClock } from "../core/clock.js";
import { AppendConditionFailed } from "../core/errors.js";
import { createSeededRandom } from "../core/random.js";
import { commandHeader, encodeTrimBody } from "../core/records.js";
import { createFaultyObjectStore } from "../storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import {
  appendText,
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  textsOf,
} from "../../test/support/engine.js";

const idleMs = 20;
const encoder = new TextEncoder();

describe("dormant streamers", () => {
  it("are retired after the idle time, and their streams go on where they were", async () => {
    const service = await openTestService({
      store: createMemoryObjectStore(),
      streamerIdleMs: idleMs,
    });
    try {
      await ensureTestBasin(service);
      const streams = Array.from({ length: 200 }, (_, i) => `s-${i}`);
      for (const stream of streams) await appendText(service, stream, ["a", "b"]);
      // One stream fenced, one trimmed: state a new streamer must take from the durable state.
      await service.records.append(testBasin, "s-0", {
        records: [{ headers: [commandHeader("fence")], body: encoder.encode("token-1") }],
      });
      await service.records.append(testBasin, "s-1", {
        records: [{ headers: [commandHeader("trim")], body: encodeTrimBody(1n) }],
      });
      assert.equal(service.activeStreams, 200);
      // Streams touched within the idle time keep their streamers.
      await appendText(service, "s-199", ["c"]);
      await service.retention.runOnce();
      assert.ok(service.activeStreams >= 1, "the stream just touched keeps its streamer");
      await sleep(idleMs + 10);
      await service.retention.runOnce();
      assert.equal(service.activeStreams, 0, "every streamer retired");

      // A new streamer continues each stream: conditions see the durable next seq num and token.
      for (const stream of streams.slice(2, -1)) {
        const ack = await service.records.append(testBasin, stream, {
          records: [{ headers: [], body: encoder.encode("c") }],
          matchSeqNum: 2,
        });
        assert.equal(ack.start.seqNum, 2, stream);
      }
      await assert.rejects(
        service.records.append(testBasin, "s-0", {
          records: [{ headers: [], body: encoder.encode("c") }],
          fencingToken: "wrong",
        }),
        (error: unknown) => error instanceof AppendConditionFailed,
      );
      const fenced = await service.records.append(testBasin, "s-0", {
        records: [{ headers: [], body: encoder.encode("c") }],
        fencingToken: "token-1",
      });
      assert.equal(fenced.start.seqNum, 3);
      // Trimmed below 1: "b" and the trim command record itself (its body the trim point).
      const trimmed = await readAll(service, "s-1");
      assert.deepEqual(
        trimmed.map((record) => record.seqNum),
        [1, 2],
      );
      assert.equal(textsOf(trimmed)[0], "b");
    } finally {
      await service.close();
    }
  });

  it("are not retired with an append in flight, a follower, or a deletion pending", async () => {
    const store = createFaultyObjectStore(createMemoryObjectStore(), {
      random: createSeededRandom(1),
      clock: systemClock,
    });
    const service = await openTestService({ store, streamerIdleMs: idleMs });
    try {
      await ensureTestBasin(service);
      await appendText(service, "writing", ["a"]);
      await appendText(service, "followed", ["a"]);
      const follow = await service.records.openReadSession(testBasin, "followed", {
        start: { kind: "seqNum", seqNum: 1 },
        clamp: false,
      });
      const nextEvent = follow.next();

      store.setStalled(true);
      const inFlight = appendText(service, "writing", ["b"]);
      await sleep(idleMs + 10);
      await service.retention.runOnce();
      assert.equal(service.activeStreams, 2, "the writing and the followed stream keep theirs");

      store.setStalled(false);
      const ack = await inFlight;
      assert.equal(ack.start.seqNum, 1);
      await appendText(service, "followed", ["b"]);
      // The follower gets the batch (after any heartbeat).
      let event = await nextEvent;
      while (event.done !== true && event.value.kind !== "batch") event = await follow.next();
      assert.ok(event.done !== true && event.value.kind === "batch", "the follower got the batch");
      await follow.return(undefined);
      await sleep(idleMs + 10);
      await service.retention.runOnce();
      assert.equal(service.activeStreams, 0, "both retire once idle");
      assert.deepEqual(textsOf(await readAll(service, "writing")), ["a", "b"]);
    } finally {
      store.setStalled(false);
      await service.close();
    }
  });
});
