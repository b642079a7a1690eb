// Goal: the flusher never builds a segment that `decodeSegmentHeader` would reject, whatever
// `segmentBytesTarget` is configured to, and refuses an entry that cannot fit any segment; and a
// flusher that stops with a PUT unanswered says the outcome is unknown (it may have landed), while
// entries never sent are plainly not durable. Method: a real Flusher on the memory object store
// (with a target above `segmentBytesMax`; or wrapped so that a PUT lands and never answers);
// every uploaded segment is read back and decoded.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssertionError } from "../../core/assert.js";
import { systemClock } from "../../core/clock.js";
import { segmentBytesMax } from "../../core/limits.js";
import { systemRandom } from "../../core/random.js";
import { walKey, walPrefix } from "../object-keys.js";
import { createMemoryObjectStore } from "../object-store/memory.js";
import { listAll } from "../object-store/object-store.js";
import { decodeSegment } from "../segment/format.js";
import type { ObjectStore } from "../object-store/object-store.js";
import { type DurableSegment, FencedError, Flusher, OutcomeUnknownError } from "./flusher.js";

describe("flusher", () => {
  it("cuts segments at segmentBytesMax even when the target is larger", async () => {
    const store = createMemoryObjectStore();
    const durable: DurableSegment[] = [];
    const flusher = new Flusher({
      store,
      clock: systemClock,
      random: systemRandom,
      writerEpoch: 1,
      firstWalId: 1,
      flushIntervalMs: 1_000,
      segmentBytesTarget: 4 * segmentBytesMax,
      putTimeoutMs: 10_000,
      onSegmentDurable: (segment) => durable.push(segment),
      onFenced: () => assert.fail("not fenced"),
    });
    try {
      const entryBytes = 1 << 20;
      const count = Math.ceil((2 * segmentBytesMax) / entryBytes);
      const submitted = Array.from({ length: count }, (_, i) =>
        flusher.submit({ kind: "control", payload: new Uint8Array(entryBytes).fill(i % 256) }),
      );
      await flusher.flushNow();
      await Promise.all(submitted);
      assert.ok(durable.length >= 3, `${durable.length} segments`);
      let entries = 0;
      for (const object of await listAll(store, walPrefix)) {
        const bytes = await store.get(object.key);
        assert.ok(bytes !== undefined && bytes.length <= segmentBytesMax, `${bytes?.length}`);
        entries += decodeSegment(bytes).entries.length;
      }
      assert.equal(entries, count);
      // An entry that no segment could hold is a producer's bug: refused, never uploaded.
      assert.throws(
        () => flusher.submit({ kind: "control", payload: new Uint8Array(segmentBytesMax) }),
        AssertionError,
      );
    } finally {
      await flusher.close();
    }
  });

  it("fails the entries of an unanswered PUT as outcome unknown when it stops, the rest as fenced", async () => {
    const inner = createMemoryObjectStore();
    let putsLanded = 0;
    // Every PUT lands in the store, and its answer never comes (a lost response, again and again).
    const store: ObjectStore = {
      ...inner,
      putIfAbsent: async (key, bytes) => {
        await inner.putIfAbsent(key, bytes);
        putsLanded += 1;
        return new Promise<never>(() => {});
      },
    };
    const flusher = new Flusher({
      store,
      clock: systemClock,
      random: systemRandom,
      writerEpoch: 1,
      firstWalId: 1,
      flushIntervalMs: 1,
      segmentBytesTarget: 1 << 20,
      putTimeoutMs: 20,
      onSegmentDurable: () => assert.fail("nothing is acknowledged"),
      onFenced: () => {},
    });
    const sent = flusher.submit({ kind: "control", payload: new Uint8Array([1]) });
    sent.catch(() => {});
    while (putsLanded === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // One PUT in flight at a time: this one waits for the next segment, never sent.
    const waiting = flusher.submit({ kind: "control", payload: new Uint8Array([2]) });
    waiting.catch(() => {});
    flusher.fence("a newer writer claimed the manifest");
    await assert.rejects(sent, OutcomeUnknownError);
    await assert.rejects(waiting, FencedError);
    // It had landed indeed: the outcome was unknown to the writer, not to the bucket.
    const landed = await inner.get(walKey(1));
    assert.ok(landed !== undefined && decodeSegment(landed).entries.length === 1);
  });
});
