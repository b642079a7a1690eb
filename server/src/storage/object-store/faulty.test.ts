// Goal: each injected fault does exactly what faulty.ts promises (applied or not, when it
// throws, when a late write lands), and a seed replays the same faults. Method: wrap the memory
// store, drive time with a manual clock, and compare what callers saw with the inner store.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssertionError } from "../../core/assert.js";
import type { Clock } from "../../core/clock.js";
import { createSeededRandom } from "../../core/random.js";
import { runObjectStoreSuite } from "../../../test/conformance/object-store.js";
import { ObjectStoreError } from "./errors.js";
import {
  createFaultyObjectStore,
  type FaultKind,
  type FaultSettings,
  type FaultyObjectStore,
  InjectedFault,
} from "./faulty.js";
import { createMemoryObjectStore } from "./memory.js";

/** A clock that only moves when told to, firing due timers in order. */
interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing timers and letting their continuations run. */
  advance(ms: number): Promise<void>;
}

function createManualClock(): ManualClock {
  let nowMs = 0;
  let nextTimerId = 0;
  const timers = new Map<number, { atMs: number; fn: () => void }>();
  const clock: ManualClock = {
    nowMs: () => nowMs,
    monotonicMs: () => nowMs,
    setTimer(delayMs, fn) {
      const id = nextTimerId++;
      timers.set(id, { atMs: nowMs + delayMs, fn });
      return () => timers.delete(id);
    },
    sleep: (delayMs) => new Promise((resolve) => clock.setTimer(delayMs, resolve)),
    async advance(ms) {
      const targetMs = nowMs + ms;
      for (;;) {
        await settle();
        let dueId: number | undefined;
        let due: { atMs: number; fn: () => void } | undefined;
        for (const [id, timer] of timers) {
          if (timer.atMs <= targetMs && (due === undefined || timer.atMs < due.atMs)) {
            dueId = id;
            due = timer;
          }
        }
        if (dueId === undefined || due === undefined) break;
        timers.delete(dueId);
        nowMs = due.atMs;
        due.fn();
      }
      nowMs = targetMs;
      await settle();
    },
  };
  return clock;
}

/** Lets every pending promise continuation run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Tracks a promise so a test can ask whether it has settled without awaiting it. */
function track<T>(promise: Promise<T>): {
  readonly isSettled: boolean;
  readonly promise: Promise<T>;
} {
  const state = { isSettled: false, promise };
  promise.then(
    () => {
      state.isSettled = true;
    },
    () => {
      state.isSettled = true;
    },
  );
  return state;
}

function setup(
  faults: FaultSettings = {},
  seed = 1,
): {
  faulty: FaultyObjectStore;
  clock: ManualClock;
} {
  const clock = createManualClock();
  const inner = createMemoryObjectStore();
  const faulty = createFaultyObjectStore(inner, {
    random: createSeededRandom(seed),
    clock,
    faults,
  });
  return { faulty, clock };
}

const bytes = new TextEncoder().encode("payload");

async function assertInjected(promise: Promise<unknown>, kind: FaultKind): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof InjectedFault, `expected InjectedFault, got ${String(error)}`);
    assert.ok(error instanceof ObjectStoreError, "an injected fault is a store error");
    assert.equal(error.kind, kind);
    return true;
  });
}

describe("faulty object store", () => {
  it("passes every call through when no fault is set", async () => {
    const { faulty } = setup();
    assert.equal(await faulty.putIfAbsent("k", bytes), "created");
    assert.equal(await faulty.putIfAbsent("k", bytes), "exists");
    assert.deepEqual(await faulty.get("k"), bytes);
    assert.deepEqual((await faulty.list("")).objects, [{ key: "k", size: bytes.length }]);
    await faulty.delete(["k"]);
    assert.equal(await faulty.get("k"), undefined);
    const counters = faulty.counters();
    assert.deepEqual(counters.calls, { get: 2, putIfAbsent: 2, list: 1, delete: 1 });
    assert.equal(counters.putsApplied, 1);
    assert.deepEqual(Object.values(counters.faults), [0, 0, 0, 0, 0]);
  });

  it("fail-before-apply throws and writes nothing", async () => {
    const { faulty } = setup({ probabilities: { failBeforeApply: 1 } });
    const hookCalls: string[] = [];
    faulty.setHooks({
      beforePut: (key) => void hookCalls.push(`before ${key}`),
      afterPutApplied: (key) => void hookCalls.push(`after ${key}`),
    });
    await assertInjected(faulty.putIfAbsent("k", bytes), "failBeforeApply");
    assert.equal(await faulty.inner.get("k"), undefined);
    assert.deepEqual(hookCalls, []);
    assert.equal(faulty.counters().putsApplied, 0);
    assert.equal(faulty.counters().faults.failBeforeApply, 1);
  });

  it("fail-after-apply throws but leaves the object written", async () => {
    const { faulty } = setup({ probabilities: { failAfterApply: 1 } });
    const hookCalls: string[] = [];
    faulty.setHooks({
      beforePut: (key) => void hookCalls.push(`before ${key}`),
      afterPutApplied: (key) => void hookCalls.push(`after ${key}`),
    });
    await assertInjected(faulty.putIfAbsent("k", bytes), "failAfterApply");
    assert.deepEqual(await faulty.inner.get("k"), bytes);
    assert.deepEqual(hookCalls, ["before k", "after k"]);
    assert.equal(faulty.counters().putsApplied, 1);
    // A delete is applied too, then reported as failed.
    await assertInjected(faulty.delete(["k"]), "failAfterApply");
    assert.equal(await faulty.inner.get("k"), undefined);
  });

  it("fail-after-apply on a batch delete applies a non-empty prefix of it, varying by seed", async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    const leftCounts = new Set<number>();
    for (let seed = 1; seed <= 20; seed++) {
      const { faulty } = setup({ probabilities: { failAfterApply: 1 } }, seed);
      for (const key of keys) await faulty.inner.putIfAbsent(key, bytes);
      await assertInjected(faulty.delete(keys), "failAfterApply");
      const left = (await faulty.inner.list("")).objects.map((object) => object.key);
      assert.ok(left.length < keys.length, "at least the first key is deleted");
      assert.deepEqual(left, keys.slice(keys.length - left.length), "what is left is a suffix");
      leftCounts.add(left.length);
    }
    assert.ok(leftCounts.size > 2, `the prefix varies: ${[...leftCounts].join(", ")}`);
  });

  it("timeout hangs for timeoutMs, then throws without applying", async () => {
    const { faulty, clock } = setup({ probabilities: { timeout: 1 }, timeoutMs: 1000 });
    const put = track(faulty.putIfAbsent("k", bytes));
    await clock.advance(999);
    assert.equal(put.isSettled, false);
    await clock.advance(1);
    await assertInjected(put.promise, "timeout");
    assert.equal(await faulty.inner.get("k"), undefined);
    assert.equal(faulty.counters().putsApplied, 0);
  });

  it("late success throws at once and applies the write after the delay", async () => {
    const { faulty, clock } = setup({
      probabilities: { lateSuccess: 1 },
      lateSuccessDelayMs: { min: 500, max: 500 },
    });
    const mutable = bytes.slice();
    await assertInjected(faulty.putIfAbsent("k", mutable), "lateSuccess");
    // The caller may reuse its buffer once the call has failed; the late write must not see it.
    mutable.fill(0);
    await clock.advance(499);
    assert.equal(await faulty.inner.get("k"), undefined);
    assert.equal(faulty.counters().putsApplied, 0);
    await clock.advance(1);
    await faulty.whenLateOpsSettled();
    assert.deepEqual(await faulty.inner.get("k"), bytes);
    assert.equal(faulty.counters().putsApplied, 1);
  });

  it("close cancels late operations that have not run", async () => {
    const { faulty, clock } = setup({
      probabilities: { lateSuccess: 1 },
      lateSuccessDelayMs: { min: 500, max: 500 },
    });
    await assertInjected(faulty.putIfAbsent("k", bytes), "lateSuccess");
    await faulty.close();
    await faulty.whenLateOpsSettled();
    await clock.advance(1000);
    assert.equal(await faulty.inner.get("k"), undefined);
  });

  it("adds latency drawn from the range before each call", async () => {
    const { faulty, clock } = setup({ latencyMs: { min: 50, max: 50 } });
    const put = track(faulty.putIfAbsent("k", bytes));
    await clock.advance(49);
    assert.equal(put.isSettled, false);
    assert.equal(await faulty.inner.get("k"), undefined);
    await clock.advance(1);
    assert.equal(await put.promise, "created");
  });

  it("torn list omits a non-empty suffix and claims the listing is complete", async () => {
    const { faulty } = setup();
    const keys = Array.from({ length: 10 }, (_, i) => `t/${i}`);
    for (const key of keys) await faulty.putIfAbsent(key, bytes);
    faulty.setFaults({ probabilities: { tornList: 1 } });
    const lengths = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const page = await faulty.list("t/", { limit: 5 });
      assert.equal(page.isTruncated, false);
      assert.ok(page.objects.length < 5);
      assert.deepEqual(
        page.objects.map((object) => object.key),
        keys.slice(0, page.objects.length),
      );
      lengths.add(page.objects.length);
    }
    assert.ok(lengths.size > 1, "the kept length varies");
    assert.deepEqual(await faulty.list("none/"), { objects: [], isTruncated: false });
    // tornList is ignored by the other ops.
    assert.deepEqual(await faulty.get("t/0"), bytes);
  });

  it("a stall holds every call until it is released", async () => {
    const { faulty } = setup();
    await faulty.inner.putIfAbsent("g", bytes);
    faulty.setStalled(true);
    assert.equal(faulty.isStalled, true);
    const put = track(faulty.putIfAbsent("k", bytes));
    const get = track(faulty.get("g"));
    await settle();
    await settle();
    assert.equal(put.isSettled, false);
    assert.equal(get.isSettled, false);
    assert.equal(await faulty.inner.get("k"), undefined);
    assert.deepEqual(faulty.counters().calls, { get: 1, putIfAbsent: 1, list: 0, delete: 0 });
    faulty.setStalled(false);
    assert.equal(await put.promise, "created");
    assert.deepEqual(await get.promise, bytes);
  });

  it("uses per-op probabilities in place of the shared ones", async () => {
    const { faulty } = setup({
      probabilities: { failBeforeApply: 1 },
      probabilitiesByOp: { putIfAbsent: {} },
    });
    assert.equal(await faulty.putIfAbsent("k", bytes), "created");
    await assertInjected(faulty.get("k"), "failBeforeApply");
  });

  it("lets a decide function pick the fault per call", async () => {
    const { faulty } = setup({
      decide: (call) =>
        call.op === "putIfAbsent" && call.callIndex === 2 ? "failBeforeApply" : undefined,
    });
    assert.equal(await faulty.putIfAbsent("a", bytes), "created");
    assert.equal(await faulty.putIfAbsent("b", bytes), "created");
    await assertInjected(faulty.putIfAbsent("c", bytes), "failBeforeApply");
    assert.equal(await faulty.putIfAbsent("d", bytes), "created");
  });

  it("changes faults at runtime", async () => {
    const { faulty } = setup({ probabilities: { failBeforeApply: 1 } });
    await assertInjected(faulty.putIfAbsent("k", bytes), "failBeforeApply");
    faulty.setFaults({});
    assert.equal(await faulty.putIfAbsent("k", bytes), "created");
  });

  it("calls afterPutApplied only when the put created the object", async () => {
    const { faulty } = setup();
    const applied: string[] = [];
    faulty.setHooks({ afterPutApplied: (key) => void applied.push(key) });
    await faulty.putIfAbsent("k", bytes);
    await faulty.putIfAbsent("k", bytes);
    assert.deepEqual(applied, ["k"]);
    assert.equal(faulty.counters().putsApplied, 1);
  });

  it("rejects probabilities that are out of range or sum past 1", () => {
    const { faulty } = setup();
    assert.throws(() => faulty.setFaults({ probabilities: { timeout: 1.5 } }), AssertionError);
    assert.throws(
      () => faulty.setFaults({ probabilities: { failBeforeApply: 0.6, failAfterApply: 0.6 } }),
      AssertionError,
    );
  });

  it("replays the same fault sequence from the same seed", async () => {
    const run = async (seed: number): Promise<string[]> => {
      const { faulty, clock } = setup(
        {
          probabilities: { failBeforeApply: 0.2, failAfterApply: 0.2, lateSuccess: 0.1 },
          probabilitiesByOp: { list: { tornList: 0.5 } },
          latencyMs: { min: 0, max: 10 },
          lateSuccessDelayMs: { min: 0, max: 100 },
        },
        seed,
      );
      const events: string[] = [];
      const record = async (label: string, op: () => Promise<unknown>): Promise<void> => {
        const result = track(op());
        await clock.advance(10);
        try {
          events.push(`${label} ${JSON.stringify(await result.promise)}`);
        } catch (error) {
          events.push(`${label} ${error instanceof InjectedFault ? error.kind : String(error)}`);
        }
      };
      for (let i = 0; i < 100; i++) {
        await record(`put ${i}`, () => faulty.putIfAbsent(`k/${i % 20}`, bytes));
        if (i % 10 === 9) {
          await record(`list ${i}`, async () => (await faulty.list("k/")).objects.length);
        }
      }
      await clock.advance(100);
      await faulty.whenLateOpsSettled();
      events.push(`applied ${faulty.counters().putsApplied}`);
      return events;
    };
    const first = await run(7);
    assert.deepEqual(await run(7), first);
    assert.notDeepEqual(await run(8), first);
    const kinds = new Set(first.map((event) => event.split(" ").at(-1)));
    for (const kind of ["failBeforeApply", "failAfterApply", "lateSuccess", '"created"']) {
      assert.ok(kinds.has(kind), `the schedule exercises ${kind}`);
    }
  });
});

runObjectStoreSuite({
  name: "faulty (no faults) over memory",
  create: async () => {
    const { faulty } = setup();
    return { store: faulty, cleanup: () => faulty.close() };
  },
});
