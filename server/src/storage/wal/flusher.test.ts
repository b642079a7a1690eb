// Goal: the flusher never builds a segment that `decodeSegmentHeader` would reject, whatever
// `segmentBytesTarget` is configured to, and refuses an entry that cannot fit any segment; a
// flusher that stops with a PUT unanswered says the outcome is unknown (it may have landed), while
// entries never sent are plainly not durable; and its PUT window (docs/design/storage.md "The PUT
// window") keeps at most `walPutsInFlightMax` PUTs in flight, releases segments in WAL order
// whatever order they land in, and, fenced at an id, acks what landed before it and fails what
// lies past it as dead. Method: a real Flusher on the memory object store (with a target above
// `segmentBytesMax`; or wrapped so that a PUT lands and never answers, or answers when told);
// every uploaded segment is read back and decoded.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssertionError } from "../../core/assert.js";
import { systemClock } from "../../core/clock.js";
import { segmentBytesMax, walPutsInFlightMax } from "../../core/limits.js";
import { systemRandom } from "../../core/random.js";
import { walKey, walPrefix } from "../object-keys.js";
import { createMemoryObjectStore } from "../object-store/memory.js";
import { listAll } from "../object-store/object-store.js";
import { decodeSegment, encodeSegment } from "../segment/format.js";
import type { ObjectStore } from "../object-store/object-store.js";
import {
  type DurableSegment,
  FencedError,
  Flusher,
  type FlusherOptions,
  OutcomeUnknownError,
} from "./flusher.js";

/** A flusher of epoch 1 from WAL id 1, flushing every millisecond, with `options` over these. */
function flusherOn(store: ObjectStore, options: Partial<FlusherOptions>): Flusher {
  return new Flusher({
    store,
    clock: systemClock,
    random: systemRandom,
    writerEpoch: 1,
    firstWalId: 1,
    flushIntervalMs: 1,
    segmentBytesTarget: 1 << 20,
    putTimeoutMs: 10_000,
    onSegmentDurable: () => {},
    onFenced: () => {},
    ...options,
  });
}

describe("flusher", () => {
  it("cuts segments at segmentBytesMax even when the target is larger", async () => {
    const store = createMemoryObjectStore();
    const durable: DurableSegment[] = [];
    const flusher = flusherOn(store, {
      flushIntervalMs: 1_000,
      segmentBytesTarget: 4 * segmentBytesMax,
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
    const flusher = flusherOn(store, {
      segmentBytesTarget: 1 << 20,
      putTimeoutMs: 20,
      onSegmentDurable: () => assert.fail("nothing is acknowledged"),
    });
    const sent = flusher.submit({ kind: "control", payload: new Uint8Array([1]) });
    sent.catch(() => {});
    while (putsLanded === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // Submitted and fenced in the same tick: still pending, never sent.
    const waiting = flusher.submit({ kind: "control", payload: new Uint8Array([2]) });
    waiting.catch(() => {});
    flusher.fence("a newer writer claimed the manifest");
    await assert.rejects(sent, OutcomeUnknownError);
    await assert.rejects(waiting, FencedError);
    // It had landed indeed: the outcome was unknown to the writer, not to the bucket.
    const landed = await inner.get(walKey(1));
    assert.ok(landed !== undefined && decodeSegment(landed).entries.length === 1);
  });

  /** A memory store whose WAL PUTs land only when `answer(walId)` is called. */
  function gatedStore() {
    const inner = createMemoryObjectStore();
    const gates = new Map<number, () => void>();
    let inFlightMax = 0;
    const store: ObjectStore = {
      ...inner,
      putIfAbsent: async (key, bytes) => {
        const walId = Number(key.slice(key.lastIndexOf("/") + 1));
        await new Promise<void>((resolve) => gates.set(walId, resolve));
        inFlightMax = Math.max(inFlightMax, gates.size);
        gates.delete(walId);
        return inner.putIfAbsent(key, bytes);
      },
    };
    return {
      inner,
      store,
      gates,
      inFlightMax: () => Math.max(inFlightMax, gates.size),
      answer(walId: number): void {
        const gate = gates.get(walId);
        assert.ok(gate !== undefined, `a PUT of ${walId} is waiting`);
        gate();
      },
    };
  }

  async function until(check: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(check(), what);
  }

  function windowFlusher(store: ObjectStore, durable: number[], onFenced = () => {}) {
    return flusherOn(store, {
      // Every entry below fills a segment: each submission is a segment of its own, at once.
      segmentBytesTarget: 1,
      onSegmentDurable: (segment) => durable.push(segment.walId),
      onFenced,
    });
  }

  it("keeps at most walPutsInFlightMax PUTs in flight and releases segments in WAL order", async () => {
    const gated = gatedStore();
    const durable: number[] = [];
    const flusher = windowFlusher(gated.store, durable);
    const resolved: number[] = [];
    const count = walPutsInFlightMax + 2;
    const submitted = Array.from({ length: count }, (_, i) =>
      flusher.submit({ kind: "control", payload: new Uint8Array([i]) }).then(() => {
        resolved.push(i + 1);
      }),
    );
    await until(() => gated.gates.size === walPutsInFlightMax, "the window fills");
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(gated.gates.size, walPutsInFlightMax, "no PUT past the window");
    // The later ones land first: nothing is durable until the first one has landed too.
    for (let walId = walPutsInFlightMax; walId >= 2; walId--) gated.answer(walId);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(durable, []);
    assert.deepEqual(resolved, []);
    gated.answer(1);
    await until(() => durable.length === walPutsInFlightMax, "the window's segments are released");
    for (let walId = walPutsInFlightMax + 1; walId <= count; walId++) {
      await until(() => gated.gates.has(walId), `the PUT of ${walId} starts`);
      gated.answer(walId);
    }
    await Promise.all(submitted);
    const ids = Array.from({ length: count }, (_, i) => i + 1);
    assert.deepEqual(durable, ids, "released once each, in WAL order");
    assert.deepEqual(resolved, ids, "submitters resolved in order");
    assert.equal(gated.inFlightMax(), walPutsInFlightMax);
    await flusher.close();
  });

  it("fenced at an id: acks what lands before it, fails what lies at or past it as fenced", async () => {
    const gated = gatedStore();
    // A newer writer (epoch 2) holds id 3.
    await gated.inner.putIfAbsent(
      walKey(3),
      encodeSegment({ walId: 3, writerEpoch: 2, writeId: new Uint8Array(16).fill(9), entries: [] }),
    );
    const durable: number[] = [];
    let fenced = 0;
    const flusher = windowFlusher(gated.store, durable, () => {
      fenced += 1;
    });
    const results = Array.from({ length: walPutsInFlightMax }, (_, i) =>
      flusher.submit({ kind: "control", payload: new Uint8Array([i]) }).then(
        () => "durable",
        (error: unknown) => (error as Error).name,
      ),
    );
    await until(() => gated.gates.size === walPutsInFlightMax, "the window fills");
    gated.answer(3); // "exists", foreign, newer: fenced at 3
    gated.answer(4); // lands, but past the fence: dead
    await until(() => fenced === 1, "fenced");
    // Entries submitted now are refused; 1 and 2 are still being answered.
    await assert.rejects(
      flusher.submit({ kind: "control", payload: new Uint8Array([9]) }),
      FencedError,
    );
    gated.answer(2);
    gated.answer(1);
    assert.deepEqual(await Promise.all(results), [
      "durable",
      "durable",
      "FencedError",
      "FencedError",
    ]);
    assert.deepEqual(durable, [1, 2]);
  });
});
