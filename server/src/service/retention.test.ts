// Goal: retention by age expires old records without moving positions, and delete-on-empty deletes
// idle empty streams, both surviving a restart. Method: a Service on memory stores with a clock
// that tests move forward, and passes of the retention task run on demand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Clock, systemClock } from "../core/clock.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import {
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  textsOf,
} from "../../test/support/engine.js";

/** The system clock shifted by an offset the test controls. */
function shiftedClock(): Clock & { shiftMs: number } {
  const clock = {
    shiftMs: 0,
    nowMs: () => systemClock.nowMs() + clock.shiftMs,
    monotonicMs: () => systemClock.monotonicMs(),
    setTimer: systemClock.setTimer,
    sleep: systemClock.sleep,
  };
  return clock;
}

const encoder = new TextEncoder();

describe("retention and delete-on-empty", () => {
  it("expires records older than the retention age, keeping seq nums and the tail", async () => {
    const clock = shiftedClock();
    const store = createMemoryObjectStore();
    const service = await openTestService({ store, clock, backgroundTaskIntervalMs: 3_600_000 });
    await ensureTestBasin(service);
    await service.streams.create({
      basin: testBasin,
      name: "aged",
      config: { retentionPolicy: { kind: "age", ageSecs: 60 } },
    });
    const nowMs = clock.nowMs();
    await service.records.append(testBasin, "aged", {
      records: [
        { timestamp: nowMs - 120_000, headers: [], body: encoder.encode("old-1") },
        { timestamp: nowMs - 90_000, headers: [], body: encoder.encode("old-2") },
        { headers: [], body: encoder.encode("new") },
      ],
    });
    await service.retention.runOnce();
    const records = await readAll(service, "aged");
    assert.deepEqual(textsOf(records), ["new"]);
    assert.equal(records[0]!.seqNum, 2, "positions do not move");
    assert.equal(
      (await service.records.checkTail(testBasin, "aged")).seqNum,
      3,
      "the tail never regresses",
    );

    clock.shiftMs = 120_000;
    await service.retention.runOnce();
    assert.deepEqual(await readAll(service, "aged"), []);
    assert.equal((await service.records.checkTail(testBasin, "aged")).seqNum, 3);
    await service.close();

    const reopened = await openTestService({ store, clock, backgroundTaskIntervalMs: 3_600_000 });
    assert.deepEqual(await readAll(reopened, "aged"), [], "expiry is durable");
    const ack = await reopened.records.append(testBasin, "aged", {
      records: [{ headers: [], body: encoder.encode("x") }],
    });
    assert.equal(ack.start.seqNum, 3);
    await reopened.close();
  });

  it("keeps records of streams with infinite retention", async () => {
    const clock = shiftedClock();
    const service = await openTestService({
      store: createMemoryObjectStore(),
      clock,
      backgroundTaskIntervalMs: 3_600_000,
    });
    await ensureTestBasin(service);
    await service.streams.create({
      basin: testBasin,
      name: "forever",
      config: { retentionPolicy: { kind: "infinite" } },
    });
    await service.records.append(testBasin, "forever", {
      records: [{ timestamp: 1, headers: [], body: encoder.encode("ancient") }],
    });
    clock.shiftMs = 10 * 365 * 24 * 3_600_000;
    await service.retention.runOnce();
    assert.deepEqual(textsOf(await readAll(service, "forever")), ["ancient"]);
    await service.close();
  });

  it("deletes an empty stream idle for min_age, and not before", async () => {
    const clock = shiftedClock();
    const service = await openTestService({
      store: createMemoryObjectStore(),
      clock,
      backgroundTaskIntervalMs: 3_600_000,
    });
    await ensureTestBasin(service);
    await service.streams.create({
      basin: testBasin,
      name: "doe",
      config: { deleteOnEmpty: { minAgeSecs: 30 } },
    });
    await service.retention.runOnce();
    assert.ok(service.streams.list(testBasin, { prefix: "doe" }).items.length === 1, "young: kept");

    clock.shiftMs = 31_000;
    await service.retention.runOnce();
    const listed = service.streams.list(testBasin, { prefix: "doe" }).items;
    assert.ok(listed.length === 0 || listed[0]!.deletedAtMs !== null, "idle and empty: deleted");
    await service.close();
  });

  it("keeps a stream with delete-on-empty while it has records", async () => {
    const clock = shiftedClock();
    const service = await openTestService({
      store: createMemoryObjectStore(),
      clock,
      backgroundTaskIntervalMs: 3_600_000,
    });
    await ensureTestBasin(service);
    await service.streams.create({
      basin: testBasin,
      name: "busy",
      config: { deleteOnEmpty: { minAgeSecs: 30 }, retentionPolicy: { kind: "infinite" } },
    });
    await service.records.append(testBasin, "busy", {
      records: [{ headers: [], body: encoder.encode("x") }],
    });
    clock.shiftMs = 3_600_000;
    await service.retention.runOnce();
    const listed = service.streams.list(testBasin, { prefix: "busy" }).items;
    assert.equal(listed[0]?.deletedAtMs, null);
    await service.close();
  });
});
