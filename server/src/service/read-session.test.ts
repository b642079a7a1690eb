// Goal: the read algorithm resolves starts, limits and following as S2 does (S2-API.md §5.4, §11).
// Method: a Service on memory stores; sessions are drained and their events compared exactly.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ReadUnwritten, S2Error } from "../core/errors.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import {
  appendText,
  ensureTestBasin,
  openTestService,
  testBasin,
} from "../../test/support/engine.js";
import type { ReadEvent, ReadRequest } from "./read-session.js";
import type { Service } from "./service.js";

const decoder = new TextDecoder();

async function drain(
  service: Service,
  stream: string,
  request: ReadRequest,
  stopAfter = Number.POSITIVE_INFINITY,
): Promise<ReadEvent[]> {
  const session = await service.records.openReadSession(testBasin, stream, request, {
    heartbeatDelayMs: () => 20,
  });
  const events: ReadEvent[] = [];
  for await (const event of session) {
    events.push(event);
    if (events.length >= stopAfter) break;
  }
  return events;
}

function seqNumsOf(events: readonly ReadEvent[]): number[] {
  return events.flatMap((event) =>
    event.kind === "batch" ? event.records.map((record) => record.seqNum) : [],
  );
}

describe("read sessions", () => {
  let service: Service;
  before(async () => {
    service = await openTestService({ store: createMemoryObjectStore() });
    await ensureTestBasin(service);
    for (let i = 0; i < 10; i++) await appendText(service, "ten", [`r${i}`]);
    await service.streams.create({ basin: testBasin, name: "empty" });
  });
  after(() => service.close());

  it("starts at the tail by default, so a bounded read without wait is 416 with the tail", async () => {
    await assert.rejects(
      drain(service, "ten", {
        start: { kind: "tailOffset", tailOffset: 0 },
        clamp: false,
        count: 5,
      }),
      (error) => error instanceof ReadUnwritten && error.tail.seqNum === 10,
    );
  });

  it("416s an empty stream read from 0, even with clamp", async () => {
    await assert.rejects(
      drain(service, "empty", { start: { kind: "seqNum", seqNum: 0 }, clamp: true, count: 1 }),
      (error) =>
        error instanceof ReadUnwritten && error.tail.seqNum === 0 && error.tail.timestamp === 0,
    );
  });

  it("416s a start beyond the tail unless clamped", async () => {
    await assert.rejects(
      drain(service, "ten", { start: { kind: "seqNum", seqNum: 11 }, clamp: false, count: 1 }),
      ReadUnwritten,
    );
    const events = await drain(service, "ten", {
      start: { kind: "seqNum", seqNum: 11 },
      clamp: true,
      waitSecs: 0.05,
    });
    assert.ok(events.length >= 1 && events.every((event) => event.kind === "heartbeat"));
  });

  it("reads counts and tail offsets exactly, with no tail on catch-up batches", async () => {
    const events = await drain(service, "ten", {
      start: { kind: "seqNum", seqNum: 2 },
      clamp: false,
      count: 3,
    });
    assert.deepEqual(seqNumsOf(events), [2, 3, 4]);
    assert.ok(events.every((event) => event.kind === "batch" && event.tail === undefined));
    const fromOffset = await drain(service, "ten", {
      start: { kind: "tailOffset", tailOffset: 4 },
      clamp: false,
      count: 100,
    });
    assert.deepEqual(seqNumsOf(fromOffset), [6, 7, 8, 9]);
    const saturated = await drain(service, "ten", {
      start: { kind: "tailOffset", tailOffset: 400 },
      clamp: false,
      count: 2,
    });
    assert.deepEqual(seqNumsOf(saturated), [0, 1]);
  });

  it("never splits a record at the byte limit", async () => {
    // Each record is 8 + 2 bytes metered.
    const events = await drain(service, "ten", {
      start: { kind: "seqNum", seqNum: 0 },
      clamp: false,
      bytes: 25,
    });
    assert.deepEqual(seqNumsOf(events), [0, 1]);
    await assert.doesNotReject(async () => {
      const none = await drain(service, "ten", {
        start: { kind: "seqNum", seqNum: 0 },
        clamp: false,
        bytes: 5,
      });
      assert.deepEqual(seqNumsOf(none), []);
    });
  });

  it("stops at `until` and resolves timestamp starts to the first record at or after", async () => {
    const all = await drain(service, "ten", {
      start: { kind: "seqNum", seqNum: 0 },
      clamp: false,
      count: 100,
    });
    const records = all.flatMap((event) => (event.kind === "batch" ? event.records : []));
    const pivot = records[5]!;
    const fromTimestamp = await drain(service, "ten", {
      start: { kind: "timestamp", timestamp: pivot.timestamp },
      clamp: false,
      count: 100,
    });
    assert.equal(
      seqNumsOf(fromTimestamp)[0],
      records.find((record) => record.timestamp >= pivot.timestamp)!.seqNum,
    );
    const untilPivot = await drain(service, "ten", {
      start: { kind: "seqNum", seqNum: 0 },
      clamp: false,
      until: pivot.timestamp,
    });
    assert.ok(
      seqNumsOf(untilPivot).every((seqNum) => records[seqNum]!.timestamp < pivot.timestamp),
    );
    await assert.rejects(
      drain(service, "ten", {
        start: { kind: "timestamp", timestamp: 100 },
        clamp: false,
        until: 100,
      }),
      (error) => error instanceof S2Error && error.code === "invalid",
    );
  });

  it("finds timestamp starts by binary search, with runs of equal timestamps", async () => {
    await service.streams.create({ basin: testBasin, name: "stamps" });
    // Non-decreasing client timestamps with runs of equal values: 0,0,0,10,10,10,20,…
    const timestamps = Array.from({ length: 300 }, (_, i) => 1_000 + 10 * Math.floor(i / 3));
    for (let i = 0; i < timestamps.length; i += 100) {
      await service.records.append(testBasin, "stamps", {
        records: timestamps
          .slice(i, i + 100)
          .map((timestamp) => ({ timestamp, headers: [], body: new Uint8Array([1]) })),
      });
    }
    const expectedStart = (target: number): number => {
      const index = timestamps.findIndex((timestamp) => timestamp >= target);
      return index === -1 ? timestamps.length : index;
    };
    for (const target of [0, 1_000, 1_001, 1_010, 1_455, 1_989, 1_990]) {
      const events = await drain(service, "stamps", {
        start: { kind: "timestamp", timestamp: target },
        clamp: false,
        count: 1,
      });
      const first = seqNumsOf(events)[0] ?? timestamps.length;
      assert.equal(first, expectedStart(target), `target ${target}`);
    }
  });

  it("follows the tail: a heartbeat first, then each durable batch with its tail", async () => {
    await service.streams.create({ basin: testBasin, name: "live" });
    const session = await service.records.openReadSession(
      testBasin,
      "live",
      { start: { kind: "tailOffset", tailOffset: 0 }, clamp: false },
      { heartbeatDelayMs: () => 10_000 },
    );
    const first = await session.next();
    assert.deepEqual(first.value, { kind: "heartbeat", tail: { seqNum: 0, timestamp: 0 } });
    const ack = await appendText(service, "live", ["a", "b"]);
    const second = await session.next();
    assert.equal(second.value?.kind, "batch");
    assert.ok(second.value?.kind === "batch");
    assert.deepEqual(
      second.value.records.map((record) => decoder.decode(record.body)),
      ["a", "b"],
    );
    assert.deepEqual(second.value.tail, { seqNum: 2, timestamp: ack.end.timestamp });
    await session.return();
  });

  it("ends when `wait` expires at the tail, with heartbeats meanwhile", async () => {
    const events = await drain(service, "ten", {
      start: { kind: "seqNum", seqNum: 8 },
      clamp: false,
      // 25 heartbeat delays: two of them fire even when a loaded machine runs timers late.
      waitSecs: 0.5,
    });
    assert.deepEqual(seqNumsOf(events), [8, 9]);
    assert.ok(events.filter((event) => event.kind === "heartbeat").length >= 2);
  });

  it("catches up transparently after lagging behind, without gaps or duplicates", async () => {
    await service.streams.create({ basin: testBasin, name: "lag" });
    const session = await service.records.openReadSession(
      testBasin,
      "lag",
      { start: { kind: "seqNum", seqNum: 0 }, clamp: true, count: 200, waitSecs: 10 },
      { heartbeatDelayMs: () => 10_000 },
    );
    // Reach the tail and start following, then fall far behind.
    assert.equal((await session.next()).value?.kind, "heartbeat");
    const acks = [];
    for (let i = 0; i < 60; i++) acks.push(appendText(service, "lag", [`l${i}`]));
    await Promise.all(acks);
    const seen: number[] = [];
    for await (const event of session) {
      if (event.kind === "batch") seen.push(...event.records.map((record) => record.seqNum));
      if (seen.length >= 60) break;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 60 }, (_, i) => i),
    );
  });
  it("reads every cache entry once in a catch-up, carrying a cut entry to the next batch", async () => {
    // Entries of ~400 KiB (one append of 100 records of 4 KiB each): a 1 MiB batch ends inside
    // one, whose rest the next batch serves from what was read (`Storage.readRecordsAhead`).
    await service.streams.create({ basin: testBasin, name: "entries" });
    const body = (seqNum: number): Uint8Array => new Uint8Array(4096).fill(seqNum % 251);
    const appends = 7;
    const perAppend = 100;
    for (let a = 0; a < appends; a++) {
      await service.records.append(testBasin, "entries", {
        records: Array.from({ length: perAppend }, (_, i) => ({
          headers: [],
          body: body(a * perAppend + i),
        })),
      });
    }
    await service.storage.cacheCommitted();
    const hitsBefore = service.storage.stats.entryHits;
    const events = await drain(service, "entries", {
      start: { kind: "seqNum", seqNum: 0 },
      clamp: false,
      count: appends * perAppend,
    });
    const hits = service.storage.stats.entryHits - hitsBefore;
    assert.equal(hits, appends, "each entry read from the cache once");
    assert.deepEqual(
      seqNumsOf(events),
      Array.from({ length: appends * perAppend }, (_, i) => i),
    );
    for (const event of events) {
      assert.equal(event.kind, "batch");
      if (event.kind !== "batch") continue;
      const bytes = event.records.reduce((sum, record) => sum + 8 + record.body.length, 0);
      assert.ok(bytes <= 1 << 20, `a batch holds at most 1 MiB. bytes=${bytes}`);
      for (const record of event.records) assert.deepEqual(record.body, body(record.seqNum));
    }
    // Full batches: 700 records of 4,104 metered bytes are 3 batches of ≤ 255 records.
    assert.equal(events.length, 3);
    // From inside an entry, to a count limit inside another.
    const middle = await drain(service, "entries", {
      start: { kind: "seqNum", seqNum: 150 },
      clamp: false,
      count: 333,
    });
    assert.deepEqual(
      seqNumsOf(middle),
      Array.from({ length: 333 }, (_, i) => 150 + i),
    );
  });
});
