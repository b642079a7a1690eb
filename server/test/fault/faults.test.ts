// Goal: errors, timeouts, late success and latency of the object store delay acks but never produce
// a wrong ack or a lost record, and memory stays bounded under a stalled store. Method: the engine
// in-process on a memory store behind the seeded faulty wrapper, concurrent appends of
// self-identifying records to several streams, each ack checked against what the bucket held at
// that instant, then a fresh Service on the true store (`store.inner`) checked against every ack.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from "node:timers/promises";
import v8 from "node:v8";
import vm from "node:vm";
import { systemClock } from "../../src/core/clock.js";
import { walPutsInFlightMax } from "../../src/core/limits.js";
import { createSeededRandom } from "../../src/core/random.js";
import type { AppendAck, AppendRecord } from "../../src/core/records.js";
import type { Service } from "../../src/service/service.js";
import { createMemorySegmentFiles } from "../../src/storage/cache/segment-files.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";
import {
  createFaultyObjectStore,
  type FaultKind,
  type FaultSettings,
  type FaultyObjectStore,
} from "../../src/storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { walKey } from "../../src/storage/object-keys.js";
import { decodeSegment, type Segment } from "../../src/storage/segment/format.js";
import { ensureTestBasin, openTestService, readAll, testBasin } from "../support/engine.js";
import {
  AppendLog,
  assertServesLogs,
  assertWalDense,
  createWitnessStore,
  runProducers,
  type SubmittedBatch,
  streamIdOf,
  type WitnessStore,
  walIdsOf,
  widOf,
  within,
} from "../support/fault-workload.js";

// TRIBUTARY_FAULT_SEED=<n> replays a run's fault decisions (timing is real, so a replay is close,
// not exact); every assertion message names the seed. TRIBUTARY_SOAK=1 runs longer.
const isSoak = process.env["TRIBUTARY_SOAK"] === "1";
const baseSeed = Number(process.env["TRIBUTARY_FAULT_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
const workloadMs = isSoak ? 10_000 : 700;
/** At most this many workload rounds while waiting for every expected fault kind. */
const workloadRoundsMax = 10;
const streams = ["s-0", "s-1", "s-2", "s-3"];
const settleTimeoutMs = 45_000;
const encoder = new TextEncoder();

interface Scenario {
  readonly name: string;
  readonly faults: FaultSettings;
  /** Fault kinds that must have been injected for the scenario to mean anything. */
  readonly expectKinds: readonly FaultKind[];
  readonly putTimeoutMs?: number;
}

const scenarios: readonly Scenario[] = [
  {
    name: "puts fail before applying (30%)",
    faults: { probabilitiesByOp: { putIfAbsent: { failBeforeApply: 0.3 } } },
    expectKinds: ["failBeforeApply"],
  },
  {
    name: "puts apply, then throw (30%: the ambiguous case)",
    faults: { probabilitiesByOp: { putIfAbsent: { failAfterApply: 0.3 } } },
    expectKinds: ["failAfterApply"],
  },
  {
    name: "puts and read-backs time out (caller timeout 100 ms, fault hangs 300 ms)",
    putTimeoutMs: 100,
    faults: {
      probabilitiesByOp: {
        putIfAbsent: { timeout: 0.2, failAfterApply: 0.2 },
        get: { timeout: 0.3 },
      },
      timeoutMs: 300,
    },
    expectKinds: ["timeout"],
  },
  {
    name: "puts throw at once and apply later (30%)",
    faults: {
      probabilitiesByOp: { putIfAbsent: { lateSuccess: 0.3 } },
      lateSuccessDelayMs: { min: 0, max: 150 },
    },
    expectKinds: ["lateSuccess"],
  },
  {
    name: "every call is 5–30 ms late",
    faults: { latencyMs: { min: 5, max: 30 } },
    expectKinds: [],
  },
  {
    name: "ambiguous puts whose read-backs and listings fail",
    faults: {
      probabilitiesByOp: {
        putIfAbsent: { failAfterApply: 0.3, lateSuccess: 0.1 },
        get: { failBeforeApply: 0.3, failAfterApply: 0.1, lateSuccess: 0.1 },
        list: { failBeforeApply: 0.3, tornList: 0.3 },
      },
      lateSuccessDelayMs: { min: 0, max: 100 },
    },
    expectKinds: ["failAfterApply", "failBeforeApply", "tornList"],
  },
  {
    name: "a mix of everything",
    putTimeoutMs: 100,
    faults: {
      probabilities: {
        failBeforeApply: 0.1,
        failAfterApply: 0.1,
        timeout: 0.05,
        lateSuccess: 0.1,
        tornList: 0.1,
      },
      latencyMs: { min: 0, max: 20 },
      timeoutMs: 250,
      lateSuccessDelayMs: { min: 0, max: 300 },
    },
    expectKinds: ["failBeforeApply", "failAfterApply", "lateSuccess"],
  },
];

/** A faulty store over a witnessed memory store: `store.inner` is the truth. */
function faultyStore(seed: number): FaultyObjectStore & { readonly inner: WitnessStore } {
  const witness = createWitnessStore(createMemoryObjectStore());
  const store = createFaultyObjectStore(witness, {
    random: createSeededRandom(seed),
    clock: systemClock,
  });
  return store as FaultyObjectStore & { readonly inner: WitnessStore };
}

/**
 * Checks each ack the moment it arrives: the bucket already holds its records (the witness saw a
 * segment with them created) and its tail covers it. Violations are collected, not thrown, so
 * they are reported with the seed.
 */
function ackChecker(service: Service, witness: WitnessStore, violations: string[]) {
  return (batch: SubmittedBatch, ack: AppendAck): void => {
    const durableEnd = witness.durableEnd(streamIdOf(service, batch.stream));
    if (durableEnd < ack.end.seqNum) {
      violations.push(
        `${batch.stream} batch ${batch.index} acked [${ack.start.seqNum}, ${ack.end.seqNum}) ` +
          `while the bucket held only up to ${durableEnd}`,
      );
    }
    if (ack.tail.seqNum < ack.end.seqNum) {
      violations.push(`${batch.stream} batch ${batch.index}: ack tail below its end`);
    }
  };
}

async function createStreams(service: Service): Promise<void> {
  await ensureTestBasin(service);
  for (const name of streams) await service.streams.create({ basin: testBasin, name });
}

/** The decoded WAL segments of `store` from id `firstId` on. */
async function segmentsFrom(store: ObjectStore, firstId: number): Promise<Segment[]> {
  const segments: Segment[] = [];
  for (const id of await walIdsOf(store)) {
    if (id < firstId) continue;
    const bytes = await store.get(walKey(id));
    assert.ok(bytes !== undefined, `wal/${id} is readable`);
    segments.push(decodeSegment(bytes));
  }
  return segments;
}

/** Opens a fresh Service on the truth with a fresh cache and checks it serves every log. */
async function assertBucketHolds(
  store: FaultyObjectStore,
  logs: readonly AppendLog[],
  context: string,
): Promise<void> {
  await within(store.whenLateOpsSettled(), 10_000, `${context}: late ops settle`);
  await assertWalDense(store.inner, context);
  const fresh = await within(
    openTestService({ store: store.inner, kv: createMemoryKvStore() }),
    10_000,
    `${context}: fresh service opens`,
  );
  try {
    await assertServesLogs({ service: fresh, logs, streams, context, allAcked: true });
  } finally {
    await fresh.close();
  }
}

describe(`faults (base seed ${baseSeed})`, () => {
  scenarios.forEach((scenario, scenarioIndex) => {
    it(scenario.name, async () => {
      const seed = baseSeed + scenarioIndex;
      const context = `seed=${seed} scenario="${scenario.name}"`;
      const store = faultyStore(seed);
      const service = await openTestService({
        store,
        manifestPollIntervalMs: 20,
        ...(scenario.putTimeoutMs !== undefined && { putTimeoutMs: scenario.putTimeoutMs }),
      });
      const violations: string[] = [];
      const log = new AppendLog("w", createSeededRandom(seed ^ 0x5eed));
      try {
        await createStreams(service);
        store.setFaults(scenario.faults);
        // Faults are drawn at random per call: keep the workload going (bounded) until every kind
        // the scenario is about was injected at least once, so the scenario is never vacuous.
        const isMissingKind = (): boolean =>
          scenario.expectKinds.some((kind) => store.counters().faults[kind] === 0);
        for (
          let round = 0;
          round === 0 || (isMissingKind() && round < workloadRoundsMax);
          round++
        ) {
          await runProducers({
            service,
            log,
            streams,
            durationMs: workloadMs,
            inflightPerStream: 3,
            minBatches: 60,
            random: createSeededRandom((seed ^ 0xabc) + round),
            onAck: ackChecker(service, store.inner, violations),
          });
        }
        await log.settle(settleTimeoutMs, context);
        assert.deepEqual(violations, [], `${context}: acks only of durable records`);
        for (const kind of scenario.expectKinds) {
          assert.ok(store.counters().faults[kind] > 0, `${context}: some ${kind} was injected`);
        }
        // Not vacuous: at least two appends per producer, however slow the faults made it.
        assert.ok(log.all().length >= 24, `${context}: the workload appended`);
        // The faulted writer's own view, with the faults still on.
        await assertServesLogs({ service, logs: [log], streams, context, allAcked: true });
      } finally {
        await within(service.close(), settleTimeoutMs, `${context}: close under faults`);
      }
      await assertBucketHolds(store, [log], context);
      await store.inner.close();
    });
  });

  it("restarts under faults converge on the bucket, with a fresh and with a current cache", async (t) => {
    const seed = baseSeed + scenarios.length;
    const context = `seed=${seed} scenario="restarts under faults"`;
    const store = faultyStore(seed);
    const mix = scenarios.at(-1)!;
    const random = createSeededRandom(seed ^ 0xabc);
    const logs: AppendLog[] = [];
    const kv = createMemoryKvStore();
    const segmentFiles = createMemorySegmentFiles();
    // Rounds: the first creates the streams; the second starts on a fresh cache (replays
    // everything under faults); the third reuses the second's cache (replays nothing new).
    for (let round = 0; round < 3; round++) {
      const roundContext = `${context} round=${round}`;
      const walBefore = (await walIdsOf(store.inner)).length;
      const service = await within(
        openTestService({
          store,
          kv: round === 0 ? createMemoryKvStore() : kv,
          segmentFiles: round === 0 ? createMemorySegmentFiles() : segmentFiles,
          putTimeoutMs: 100,
          manifestPollIntervalMs: 20,
        }),
        settleTimeoutMs,
        `${roundContext}: open under faults`,
      );
      const violations: string[] = [];
      const log = new AppendLog(`r${round}`, createSeededRandom(seed + round));
      logs.push(log);
      try {
        if (round === 0) {
          await createStreams(service);
          store.setFaults(mix.faults);
        }
        if (round === 2) {
          // A current cache replays nothing but this writer's own fence attempts, when one whose
          // answer was lost (the fault) landed and the next attempt found the id taken; after its
          // fence come its tombstones (docs/design/storage.md "The PUT window"), never replayed.
          const fences = await segmentsFrom(store.inner, walBefore);
          for (const fence of fences) {
            assert.equal(fence.header.writerEpoch, service.storage.writerEpoch, roundContext);
            assert.equal(fence.entries.length, 0, `${roundContext}: only fences are new`);
          }
          assert.equal(
            service.storage.stats.replayedSegments,
            fences.length - walPutsInFlightMax,
            `${roundContext}: a current cache replays only its own orphaned fences`,
          );
          t.diagnostic(
            `${roundContext}: ${fences.length - walPutsInFlightMax} orphaned fence(s) replayed`,
          );
        }
        // Everything acked before is served, under faults, before more is appended.
        if (round > 0) {
          const earlier = logs.slice(0, -1);
          await assertServesLogs({
            service,
            logs: earlier,
            streams,
            context: roundContext,
            allAcked: true,
          });
        }
        await runProducers({
          service,
          log,
          streams,
          durationMs: workloadMs / 2,
          inflightPerStream: 2,
          random,
          onAck: ackChecker(service, store.inner, violations),
        });
        await log.settle(settleTimeoutMs, roundContext);
        assert.deepEqual(violations, [], `${roundContext}: acks only of durable records`);
        for (const batch of log.all()) {
          assert.equal(batch.error, undefined, `${roundContext}: no append rejected`);
        }
      } finally {
        await within(service.close(), settleTimeoutMs, `${roundContext}: close under faults`);
      }
      // Faults stay on between rounds: calls still in flight keep the settings they started with.
    }
    await assertBucketHolds(store, logs, context);
    await store.inner.close();
  });

  it("acks once durable even when every store call outlasts the put timeout", async () => {
    const seed = baseSeed + scenarios.length + 2;
    const context = `seed=${seed} scenario="slower than the put timeout"`;
    const store = faultyStore(seed);
    const service = await openTestService({ store, putTimeoutMs: 100 });
    try {
      await createStreams(service);
      store.setFaults({ latencyMs: { min: 150, max: 200 } });
      const ack = service.records.append(testBasin, "s-0", {
        records: [{ headers: [], body: encoder.encode("slow") }],
      });
      ack.catch(() => {});
      await within(ack, 3_000, `${context}: the append acks`);
    } finally {
      store.setFaults({});
      await within(service.close(), settleTimeoutMs, `${context}: close`);
      await store.inner.close();
    }
  });

  it("a stalled store bounds accepted bytes and memory, acks nothing, then acks everything", async (t) => {
    const seed = baseSeed + scenarios.length + 1;
    const context = `seed=${seed} scenario="stalled store"`;
    const gc = exposeGc();
    const store = faultyStore(seed);
    const inflightMax = 4 << 20;
    const service = await openTestService({ store, appendInflightBytesMax: inflightMax });
    const body = new Uint8Array(64 << 10).fill(0x5a);
    const acks: { stream: string; index: number; ack: Promise<AppendAck> }[] = [];
    let ackedWhileStalled = 0;
    let maxInflight = 0;
    let maxWaiting = 0;
    try {
      await createStreams(service);
      await service.records.append(testBasin, "s-0", { records: [{ headers: [], body }] });

      const before = memoryNow(gc);
      store.setStalled(true);
      // Push hard for about a second: appends are issued without waiting for any ack, far more
      // than admission lets in (then the stall goes on to the second's end, sampled). The body
      // buffer is shared, so the test itself holds little.
      const deadline = Date.now() + 1_000;
      const issuedMax = 2_400;
      const perStreamIndex = new Map<string, number>();
      while (Date.now() < deadline) {
        for (let i = 0; i < 40 && acks.length < issuedMax; i++) {
          const stream = streams[acks.length % streams.length]!;
          const index = perStreamIndex.get(stream) ?? 0;
          perStreamIndex.set(stream, index + 1);
          const record: AppendRecord = {
            headers: [{ name: encoder.encode("wid"), value: encoder.encode(`${stream}/${index}`) }],
            body,
          };
          const ack = service.records.append(testBasin, stream, { records: [record] });
          ack.then(
            () => {
              if (store.isStalled) ackedWhileStalled += 1;
            },
            () => {},
          );
          acks.push({ stream, index, ack });
        }
        const stats = service.storage.stats;
        maxInflight = Math.max(maxInflight, stats.inflightBytes);
        maxWaiting = Math.max(maxWaiting, stats.admissionWaiting);
        if (acks.length < issuedMax) await yieldToEventLoop();
        else await sleep(5);
      }
      maxInflight = Math.max(maxInflight, service.storage.stats.inflightBytes);
      const after = memoryNow(gc);
      const growth = after.bytes - before.bytes;
      const pushedBytes = acks.length * body.length;

      assert.ok(
        maxInflight <= inflightMax,
        `${context}: inflight ${maxInflight} ≤ cap ${inflightMax}`,
      );
      assert.ok(maxWaiting > 100, `${context}: appends wait for admission (${maxWaiting})`);
      assert.equal(ackedWhileStalled, 0, `${context}: no ack while stalled`);
      // Accepted bytes are held a few times over (the appended records, the segment being
      // uploaded, then kept for its cache commit); everything else waits unencoded.
      const growthMax = 3 * inflightMax + (48 << 20);
      assert.ok(
        pushedBytes > 2 * growthMax,
        `${context}: pushed ${pushedBytes} bytes, far more than the memory bound ${growthMax}`,
      );
      t.diagnostic(`${after.what} grew by ${growth} bytes; pushed ${pushedBytes} bytes`);
      assert.ok(
        growth < growthMax,
        `${context}: ${after.what} grew by ${growth} bytes while stalled, pushed ${pushedBytes}`,
      );
      assert.ok(growth < inflightMax + (256 << 20), `${context}: well under cap + 256 MiB`);

      store.setStalled(false);
      const settled = await within(
        Promise.all(acks.map((entry) => entry.ack)),
        settleTimeoutMs,
        `${context}: every stalled append acks`,
      );
      for (const stream of streams) {
        const records = await readAll(service, stream);
        const mine = acks.map((entry, i) => ({ ...entry, value: settled[i]! }));
        const ofStream = mine.filter((entry) => entry.stream === stream);
        const offset = stream === "s-0" ? 1 : 0;
        assert.equal(records.length, ofStream.length + offset, `${context}: ${stream} length`);
        for (const entry of ofStream) {
          const seqNum = entry.index + offset;
          assert.equal(entry.value.start.seqNum, seqNum, `${context}: ${stream} acks in order`);
          const record = records[seqNum]!;
          assert.equal(
            widOf(record),
            `${stream}/${entry.index}`,
            `${context}: ${stream}@${seqNum}`,
          );
          assert.ok(Buffer.from(record.body).equals(body), `${context}: ${stream}@${seqNum} body`);
        }
      }
    } finally {
      store.setStalled(false);
      await within(service.close(), settleTimeoutMs, `${context}: close`);
    }
    await assertWalDense(store.inner, context);
    await store.inner.close();
  });
});

/**
 * `global.gc`, exposed from within this file (V8 accepts the flag at run time; a fresh context
 * then sees `gc`), or undefined where that fails.
 */
function exposeGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing !== undefined) return existing;
  try {
    v8.setFlagsFromString("--expose-gc");
    return vm.runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

/**
 * Memory in use: JS heap plus buffers outside it (record bytes live in ArrayBuffers) after a full
 * GC, or the RSS when GC cannot be forced.
 */
function memoryNow(gc: (() => void) | undefined): { bytes: number; what: string } {
  if (gc === undefined) return { bytes: process.memoryUsage().rss, what: "rss" };
  gc();
  gc();
  const usage = process.memoryUsage();
  return { bytes: usage.heapUsed + usage.external, what: "heapUsed + external" };
}
