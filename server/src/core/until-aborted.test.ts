// Goal: `untilAborted` settles like the step unless a signal aborts first, and a settled wait
// leaves nothing on the signals, which outlive it by a whole session: no listener, and no hold on
// the value it settled with (a `Promise.race` against a session-long promise kept every batch an
// S2S read session served until the session ended, issue 12). Method: many waits on long-lived
// signals, then the signals' listeners are counted and, after a full GC (exposed through V8's
// flag), the values of the settled waits are looked for through weak references.
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { untilAborted } from "./until-aborted.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("untilAborted", () => {
  it("settles like the step while no signal aborts", async () => {
    const signal = new AbortController().signal;
    assert.equal(await untilAborted(Promise.resolve(7), [signal]), 7);
    await assert.rejects(untilAborted(Promise.reject(new Error("step failed")), [signal]), {
      message: "step failed",
    });
  });

  it("rejects with the reason of the signal that aborts first, or that had aborted", async () => {
    const first = new AbortController();
    const second = new AbortController();
    const wait = untilAborted(new Promise(() => {}), [first.signal, second.signal]);
    second.abort(new Error("revoked"));
    first.abort(new Error("closed"));
    await assert.rejects(wait, { message: "revoked" });
    await assert.rejects(untilAborted(Promise.resolve(1), [first.signal]), { message: "closed" });
  });

  it("handles a step that fails after the abort (no unhandled rejection)", async () => {
    const controller = new AbortController();
    let failStep: (error: Error) => void = () => {};
    const step = new Promise<never>((_, reject) => {
      failStep = reject;
    });
    const wait = untilAborted(step, [controller.signal]);
    controller.abort(new Error("closed"));
    await assert.rejects(wait, { message: "closed" });
    let unhandled = 0;
    const onUnhandled = (): void => {
      unhandled += 1;
    };
    process.on("unhandledRejection", onUnhandled);
    failStep(new Error("late"));
    await nextTurn();
    await nextTurn();
    process.off("unhandledRejection", onUnhandled);
    assert.equal(unhandled, 0);
  });

  it("leaves no listener and keeps no settled value on signals that outlive the waits", async () => {
    const closed = new AbortController();
    const revoked = new AbortController();
    const waits = 200;
    const settled: WeakRef<object>[] = [];
    // In a function of its own, so that no variable of this frame still refers to the last value.
    const waitMany = async (): Promise<void> => {
      for (let i = 0; i < waits; i++) {
        const value = { batch: new Uint8Array(1024) };
        settled.push(new WeakRef(value));
        await untilAborted(Promise.resolve(value), [closed.signal, revoked.signal]);
      }
    };
    await waitMany();
    assert.equal(getEventListeners(closed.signal, "abort").length, 0);
    assert.equal(getEventListeners(revoked.signal, "abort").length, 0);
    // WeakRef targets are kept to the end of the job that made them: collect in a later one.
    await nextTurn();
    gc();
    const alive = settled.filter((ref) => ref.deref() !== undefined).length;
    assert.equal(alive, 0, `${alive} of ${waits} settled values are still reachable`);
    // The signals are still live (the session is not over): they are what must not hold them.
    assert.equal(closed.signal.aborted || revoked.signal.aborted, false);
  });
});
