// Goal: the garbage collector's choice of target. It collects against the newest committed
// checkpoint at least the grace period old, and keeps finding one under a steady stream of
// checkpoints however often they come: the bound on the checkpoints it remembers must drop new
// ones, never the old ones about to come of age.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Clock, systemClock } from "../core/clock.js";
import { BucketUsage } from "./bucket-usage.js";
import { type CommittedCheckpoint, GarbageCollector } from "./gc.js";
import type { Manifest } from "./manifest/manifest.js";
import { manifestKey, walKey } from "./object-keys.js";
import { createMemoryObjectStore } from "./object-store/memory.js";
import type { ObjectStore } from "./object-store/object-store.js";

const graceMs = 10 * 60_000;

function setup(): {
  gc: GarbageCollector;
  store: ReturnType<typeof createMemoryObjectStore>;
  /** The store as the storage sees it (recorded by the GC's usage). */
  tracked: ObjectStore;
  /** Keys whose next create applies and then fails (a timed-out request that landed). */
  failAfterApply: Set<string>;
  /** Moves both clocks to `ms` (wall time where `setWall` moved it, plus the difference). */
  setNow(ms: number): void;
  /** Sets the wall clock alone, as an operator or NTP would. */
  setWall(ms: number): void;
} {
  let nowMs = 0;
  let wallOffsetMs = 0;
  const clock: Clock = {
    ...systemClock,
    nowMs: () => nowMs + wallOffsetMs,
    monotonicMs: () => nowMs,
  };
  const usage = new BucketUsage();
  const store = createMemoryObjectStore();
  const failAfterApply = new Set<string>();
  const tracked = usage.track({
    ...store,
    putIfAbsent: async (key, bytes) => {
      const outcome = await store.putIfAbsent(key, bytes);
      if (failAfterApply.delete(key)) throw new Error("timed out");
      return outcome;
    },
  });
  const manifest: Manifest = { version: 1, writerEpoch: 1, walStartId: 0, createdAtMs: 0 };
  const gc = new GarbageCollector({
    store: tracked,
    clock,
    graceMs,
    manifest: () => manifest,
    isReady: () => true,
    usage,
    listingIntervalMs: 60 * 60_000,
    // Every candidate loop pauses at every step: the sliced paths give the same answers.
    sliceMs: 0,
  });
  return {
    gc,
    store,
    tracked,
    failAfterApply,
    setNow: (ms) => {
      nowMs = ms;
    },
    setWall: (ms) => {
      wallOffsetMs = ms - nowMs;
    },
  };
}

/** The `n`th checkpoint: WAL ids up to `walId` (`n` by default) applied, none referenced. */
function checkpoint(n: number, committedAtMs: number, walId = n): CommittedCheckpoint {
  return {
    key: `checkpoints/${String(walId).padStart(20, "0")}-${n}`,
    manifestVersion: n + 1,
    walId,
    chunkIdBound: 0,
    committedAtMs,
    references: { walIds: new Set(), chunkIds: new Set(), fenceWalIds: new Set() },
  };
}

describe("GarbageCollector", () => {
  it("collects under checkpoints every 6 s against a 10 min grace period", async () => {
    const { gc, store, setNow } = setup();
    for (let id = 1; id <= 200; id++) await store.putIfAbsent(walKey(id), new Uint8Array(8));
    // 100 checkpoints, one every 6 s (10 MiB/s against 64 MiB checkpoints): more than GC keeps.
    for (let n = 1; n <= 100; n++) {
      setNow(n * 6_000);
      gc.addCommitted(checkpoint(n, n * 6_000));
      assert.equal(gc.isDue, false, "nothing is past the grace period yet");
    }
    setNow(6_000 + graceMs);
    assert.equal(gc.isDue, true, "the first checkpoint comes of age");
    assert.equal(await gc.collect(), true);
    assert.equal(await store.get(walKey(1)), undefined, "WAL id 1 is garbage of checkpoint 1");
    assert.ok((await store.get(walKey(2))) !== undefined, "WAL id 2 is not garbage of it");
    // Later checkpoints come of age in turn: the collector always has one to move to.
    setNow(100 * 6_000 + graceMs);
    assert.equal(gc.isDue, true);
    assert.equal(await gc.collect(), true);
    assert.ok((await store.get(walKey(30))) === undefined, "past checkpoint 30 by now");
    assert.equal(gc.stats.passes, 2);
    assert.equal(gc.stats.listingPasses, 1, "the second pass took the difference");
  });

  it("measures the grace period and the listing interval on the monotonic clock", async () => {
    // A wall clock set forward must not cut the grace short (a reader of an older checkpoint
    // could lose its objects), nor one set back hold GC off for as long.
    const { gc, store, setNow, setWall } = setup();
    for (let id = 1; id <= 3; id++) await store.putIfAbsent(walKey(id), new Uint8Array(8));
    gc.addCommitted(checkpoint(1, 0));
    setWall(Date.UTC(2030, 0, 1));
    setNow(graceMs - 1);
    assert.equal(gc.isDue, false, "a wall clock years ahead does not age the checkpoint");
    assert.equal(await gc.collect(), false);
    assert.ok((await store.get(walKey(1))) !== undefined);
    setWall(0);
    setNow(graceMs);
    assert.equal(gc.isDue, true, "a wall clock set back does not hold it off");
    assert.equal(await gc.collect(), true);
    assert.equal(await store.get(walKey(1)), undefined);
    gc.addCommitted(checkpoint(2, graceMs));
    setWall(Date.UTC(2030, 0, 1));
    setNow(2 * graceMs);
    assert.equal(await gc.collect(), true);
    assert.equal(gc.stats.listingPasses, 1, "the wall clock's jump is not a listing interval");
  });

  it("keeps the checkpoint that the bucket's newest manifest names, committed with a lost answer", async () => {
    // A job's manifest PUT applied but its request failed: the job counts as failed, GC never
    // heard of its checkpoint, which shares the target's WAL id; the manifest names it.
    const { gc, store, setNow } = setup();
    const target = checkpoint(1, 0, 7);
    const lost = { ...checkpoint(2, 0, 7), manifestVersion: 3 };
    for (const c of [target, lost]) await store.putIfAbsent(c.key, new Uint8Array(4));
    const encoder = new TextEncoder();
    const named = { version: 3, writerEpoch: 1, walStartId: 8, createdAtMs: 0 };
    await store.putIfAbsent(
      manifestKey(3),
      encoder.encode(
        JSON.stringify({ ...named, checkpoint: { key: lost.key, walId: 7, writeId: "ab" } }),
      ),
    );
    gc.addCommitted(target);
    setNow(graceMs);
    assert.equal(await gc.collect(), true);
    assert.ok((await store.get(lost.key)) !== undefined, "the newest manifest's checkpoint stays");
  });

  it("never deletes a committed checkpoint newer than its target, remembered or not", async () => {
    // Jobs that compact or trim without new WAL commit checkpoints at the same WAL id. Once the
    // remembered list is full, the newest is dropped from it; its object must still outlive any
    // older target, as "checkpoints other than the target and newer ones" says.
    const { gc, store, setNow } = setup();
    const committed: CommittedCheckpoint[] = [];
    for (let n = 1; n <= 10; n++) {
      const c = checkpoint(n, n <= 7 ? 0 : graceMs, n <= 6 ? n : 7);
      await store.putIfAbsent(c.key, new Uint8Array(4));
      committed.push(c);
      gc.addCommitted(c);
    }
    // Checkpoints 7-10 share WAL id 7; 8 and 9 were dropped from the remembered list.
    setNow(graceMs);
    assert.equal(await gc.collect(), true, "checkpoint 7 is the target");
    for (const c of committed.slice(0, 6)) {
      assert.equal(await store.get(c.key), undefined, `older than the target: ${c.key}`);
    }
    for (const c of committed.slice(6)) {
      assert.ok((await store.get(c.key)) !== undefined, `the target or newer: ${c.key}`);
    }
  });

  it("deletes an object whose create failed and applied after the pass that would have taken it", async () => {
    // A PUT that timed out may land later (the store goes on with it). No checkpoint difference
    // names it once its id is below the marks, so the failed create is remembered instead.
    const { gc, store, tracked, failAfterApply, setNow } = setup();
    gc.addCommitted(checkpoint(5, 0));
    setNow(graceMs);
    assert.equal(await gc.collect(), true, "the first pass (a listing)");
    failAfterApply.add(walKey(3));
    await assert.rejects(tracked.putIfAbsent(walKey(3), new Uint8Array(8)), /timed out/);
    assert.ok((await store.get(walKey(3))) !== undefined, "the object landed anyway");
    gc.addCommitted(checkpoint(6, graceMs));
    setNow(2 * graceMs);
    assert.equal(await gc.collect(), true);
    assert.equal(gc.stats.listingPasses, 1, "a difference pass");
    assert.equal(await store.get(walKey(3)), undefined, "the late object is collected");
  });
});
