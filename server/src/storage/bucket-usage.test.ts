// Goal: the bucket's usage by kind stays what a listing would show, without listing: creates are
// recorded with their size, deletes forget, a listing replaces a kind's record but keeps what was
// created while it ran, and a failed call records nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BucketUsage, bucketKindOf } from "./bucket-usage.js";
import { chunkKey, manifestKey, walKey } from "./object-keys.js";
import { createMemoryObjectStore } from "./object-store/memory.js";
import { listAll, type ObjectStore } from "./object-store/object-store.js";

const bytes = (n: number): Uint8Array => new Uint8Array(n);

describe("BucketUsage", () => {
  it("records what the tracked store creates and forgets what it deletes", async () => {
    const usage = new BucketUsage();
    const store = usage.track(createMemoryObjectStore());
    assert.equal(await store.putIfAbsent(walKey(1), bytes(100)), "created");
    assert.equal(await store.putIfAbsent(walKey(2), bytes(50)), "created");
    assert.equal(await store.putIfAbsent(chunkKey(9), bytes(1000)), "created");
    assert.equal(await store.putIfAbsent(manifestKey(3), bytes(7)), "created");
    // Someone's object: not ours to record (the next listing says what it is).
    assert.equal(await store.putIfAbsent(walKey(2), bytes(999)), "exists");
    assert.deepEqual(usage.usage("wal"), { objects: 2, bytes: 150 });
    assert.deepEqual(usage.usage("chunks"), { objects: 1, bytes: 1000 });
    assert.deepEqual(usage.usage("manifests"), { objects: 1, bytes: 7 });
    assert.equal(usage.sizeOf(walKey(2)), 50);
    await store.delete([walKey(2), walKey(404)]);
    assert.deepEqual(usage.usage("wal"), { objects: 1, bytes: 100 });
    assert.equal(usage.sizeOf(walKey(2)), undefined);
    assert.equal(bucketKindOf("elsewhere/1"), undefined);
  });

  it("a listing replaces a kind's record, keeping what was created while it ran", async () => {
    const inner = createMemoryObjectStore();
    await inner.putIfAbsent(walKey(1), bytes(10)); // created behind the tracker's back
    const usage = new BucketUsage();
    const store = usage.track(inner);
    await store.putIfAbsent(walKey(2), bytes(20));
    await inner.delete([walKey(2)]); // deleted behind its back
    usage.startListing("wal");
    const listed = await listAll(inner, "wal/");
    await store.putIfAbsent(walKey(3), bytes(30)); // after the listing's answer
    usage.finishListing("wal", listed);
    assert.deepEqual(usage.usage("wal"), { objects: 2, bytes: 40 });
    assert.equal(usage.sizeOf(walKey(1)), 10);
    assert.equal(usage.sizeOf(walKey(2)), undefined);
    assert.equal(usage.sizeOf(walKey(3)), 30);
    // A listing that failed leaves the record as it was.
    usage.startListing("wal");
    usage.abandonListing("wal");
    assert.deepEqual(usage.usage("wal"), { objects: 2, bytes: 40 });
  });

  it("a failed create or delete records nothing", async () => {
    const inner = createMemoryObjectStore();
    let failing = false;
    const flaky: ObjectStore = {
      ...inner,
      putIfAbsent: async (key, value) => {
        if (failing) throw new Error("injected");
        return inner.putIfAbsent(key, value);
      },
      delete: async (keys) => {
        if (failing) throw new Error("injected");
        return inner.delete(keys);
      },
    };
    const usage = new BucketUsage();
    const store = usage.track(flaky);
    await store.putIfAbsent(chunkKey(1), bytes(5));
    failing = true;
    await assert.rejects(store.putIfAbsent(chunkKey(2), bytes(6)));
    await assert.rejects(store.delete([chunkKey(1)]));
    assert.deepEqual(usage.usage("chunks"), { objects: 1, bytes: 5 });
  });
});
