// Goal: an append is acknowledged only after its segment is uploaded, every flush is one PUT for
// any number of streams, and admission bounds what waits in memory. Method: the engine in-process
// on a memory object store wrapped to count PUTs or stall them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { systemClock } from "../../src/core/clock.js";
import { createSeededRandom } from "../../src/core/random.js";
import { createFaultyObjectStore } from "../../src/storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import { listAll } from "../../src/storage/object-store/object-store.js";
import {
  appendText,
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  textsOf,
} from "../support/engine.js";

function faultyMemoryStore() {
  return createFaultyObjectStore(createMemoryObjectStore(), {
    random: createSeededRandom(1),
    clock: systemClock,
  });
}

describe("write path", () => {
  for (const streamCount of [1, 1000]) {
    it(`uploads one segment per flush with ${streamCount} active stream(s)`, async () => {
      const store = faultyMemoryStore();
      // A flush interval far beyond the test: only flushNow() flushes.
      const service = await openTestService({ store, flushIntervalMs: 10_000 });
      // Submit everything before flushing by hand; each create resolves when its flush is durable.
      const basin = ensureTestBasin(service);
      await service.storage.flushNow();
      await basin;
      const creates = Array.from({ length: streamCount }, (_, i) =>
        service.streams.create({ basin: testBasin, name: `s-${i}` }),
      );
      await service.storage.flushNow();
      await Promise.all(creates);
      const putsBefore = store.counters().calls.putIfAbsent;
      const segmentsBefore = (await listAll(store.inner, "wal/")).length;

      const acks = Array.from({ length: streamCount }, (_, i) =>
        appendText(service, `s-${i}`, [`r-${i}`]),
      );
      // Appends reach the flusher after a few microtasks (lookup, admission); let them all arrive.
      await new Promise((resolve) => setImmediate(resolve));
      await service.storage.flushNow();
      const settled = await Promise.all(acks);

      assert.equal(
        store.counters().calls.putIfAbsent - putsBefore,
        1,
        "exactly one PUT for the flush",
      );
      assert.equal(
        (await listAll(store.inner, "wal/")).length - segmentsBefore,
        1,
        "exactly one new segment",
      );
      for (const ack of settled) {
        assert.deepEqual([ack.start.seqNum, ack.end.seqNum], [0, 1]);
      }
      await service.close();
    });
  }

  it("acknowledges only after the segment PUT succeeded, and readers see nothing before", async () => {
    const store = faultyMemoryStore();
    const service = await openTestService({ store });
    await ensureTestBasin(service);
    await appendText(service, "s", ["first"]);

    store.setStalled(true);
    let acked = false;
    const ack = appendText(service, "s", ["second"]).then((value) => {
      acked = true;
      return value;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(acked, false, "no ack while the upload is stalled");
    assert.deepEqual(
      textsOf(await readAll(service, "s")),
      ["first"],
      "readers see only durable records",
    );
    assert.equal((await service.records.checkTail(testBasin, "s")).seqNum, 1);

    store.setStalled(false);
    const value = await ack;
    assert.equal(value.start.seqNum, 1);
    assert.deepEqual(textsOf(await readAll(service, "s")), ["first", "second"]);
    await service.close();
  });

  it("bounds accepted-but-not-durable bytes by admission while the store is stalled", async () => {
    const store = faultyMemoryStore();
    const inflightMax = 256 * 1024;
    const service = await openTestService({ store, appendInflightBytesMax: inflightMax });
    await ensureTestBasin(service);
    await appendText(service, "s", ["warm-up"]);
    store.setStalled(true);

    const body = "x".repeat(16 * 1024);
    const acks = Array.from({ length: 100 }, () => appendText(service, "s", [body]));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stats = service.storage.stats;
    assert.ok(
      stats.inflightBytes <= inflightMax,
      `inflight ${stats.inflightBytes} ≤ ${inflightMax}`,
    );
    assert.ok(stats.admissionWaiting > 0, "later appends wait for admission");

    store.setStalled(false);
    const settled = await Promise.all(acks);
    assert.deepEqual(
      settled.map((ack) => ack.start.seqNum),
      settled.map((_, i) => i + 1),
      "admission keeps submission order",
    );
    assert.equal((await readAll(service, "s")).length, 101);
    await service.close();
  });

  it("keeps acks in order and seq nums dense across many streams and concurrent appends", async () => {
    const service = await openTestService({ store: createMemoryObjectStore() });
    await ensureTestBasin(service);
    const acksByStream = new Map<string, Promise<{ start: { seqNum: number } }>[]>();
    for (let i = 0; i < 400; i++) {
      const stream = `s-${i % 7}`;
      const list = acksByStream.get(stream) ?? [];
      list.push(
        appendText(service, stream, [`${stream}:${list.length}`, `${stream}:${list.length}b`]),
      );
      acksByStream.set(stream, list);
    }
    for (const [stream, acks] of acksByStream) {
      const settled = await Promise.all(acks);
      assert.deepEqual(
        settled.map((ack) => ack.start.seqNum),
        settled.map((_, i) => 2 * i),
      );
      const records = await readAll(service, stream);
      assert.deepEqual(
        records.map((record) => record.seqNum),
        records.map((_, i) => i),
      );
      assert.equal(records.length, acks.length * 2);
    }
    await service.close();
  });
});
