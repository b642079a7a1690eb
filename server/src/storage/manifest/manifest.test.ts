// Goal: a checkpoint commits only through a manifest version that is still the newest and of the
// committing writer's epoch; a newer writer, before or after, makes it "fenced"; a lost answer of
// our own is recognized. Method: manifests written on a memory store, races staged by hand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { systemRandom } from "../../core/random.js";
import { manifestKey } from "../object-keys.js";
import { createMemoryObjectStore } from "../object-store/memory.js";
import type { ObjectStore } from "../object-store/object-store.js";
import { claimManifest, commitCheckpointManifest, readNewestManifest } from "./manifest.js";

const checkpoint = (walId: number) => ({ key: `checkpoints/${walId}`, walId, writeId: "ab" });
const now = () => 1_000;

describe("checkpoint commits through the manifest", () => {
  it("writes the next version with the writer's epoch and raises walStartId", async () => {
    const store = createMemoryObjectStore();
    const ours = await claimManifest(store, now, systemRandom);
    const committed = await commitCheckpointManifest(store, ours, checkpoint(41), 2_000);
    assert.notEqual(committed, "fenced");
    assert.deepEqual(await readNewestManifest(store), committed);
    if (committed === "fenced") return;
    assert.equal(committed.version, ours.version + 1);
    assert.equal(committed.writerEpoch, ours.writerEpoch);
    assert.equal(committed.walStartId, 42);
    // A writer that starts next claims past it and keeps the checkpoint.
    const next = await claimManifest(store, now, systemRandom);
    assert.equal(next.writerEpoch, ours.writerEpoch + 1);
    assert.deepEqual(next.checkpoint, checkpoint(41));
  });

  it("is fenced when a newer writer claimed a version first", async () => {
    const store = createMemoryObjectStore();
    const old = await claimManifest(store, now, systemRandom);
    await claimManifest(store, now, systemRandom); // the newer writer
    assert.equal(await commitCheckpointManifest(store, old, checkpoint(7), 2_000), "fenced");
    assert.equal((await readNewestManifest(store))?.checkpoint, undefined, "nothing committed");
  });

  it("is fenced when its PUT re-creates a version a newer writer's GC deleted", async () => {
    const store = createMemoryObjectStore();
    const old = await claimManifest(store, now, systemRandom); // v1
    await claimManifest(store, now, systemRandom); // v2, newer epoch
    await claimManifest(store, now, systemRandom); // v3
    await store.delete([manifestKey(2)]); // GC of the newer writer removed an old version
    // The zombie's view: it believes v1 is newest and writes v2, which lands ("created").
    const stale = { ...old };
    let listCalls = 0;
    const result = await commitCheckpointManifest(
      {
        ...store,
        get: (key, range) => store.get(key, range),
        list: async (prefix, options) =>
          // Its first listing raced the newer writer's claims: it saw only v1.
          listCalls++ === 0 ? { objects: [], isTruncated: false } : store.list(prefix, options),
        putIfAbsent: (key, bytes) => store.putIfAbsent(key, bytes),
        delete: (keys) => store.delete(keys),
        close: () => store.close(),
      },
      stale,
      checkpoint(9),
      2_000,
    );
    assert.equal(result, "fenced");
  });

  it("recognizes an earlier attempt of its own whose answer was lost", async () => {
    const store = createMemoryObjectStore();
    const ours = await claimManifest(store, now, systemRandom);
    const first = await commitCheckpointManifest(store, ours, checkpoint(5), 2_000);
    assert.notEqual(first, "fenced");
    // The caller never saw `first` (lost answer) and commits a newer checkpoint on `ours`.
    const second = await commitCheckpointManifest(store, ours, checkpoint(8), 3_000);
    assert.notEqual(second, "fenced");
    if (first === "fenced" || second === "fenced") return;
    assert.equal(second.version, first.version + 1, "built on our own earlier version");
    assert.deepEqual((await readNewestManifest(store))?.checkpoint, checkpoint(8));
  });

  it("two writers claiming together on a store whose create-if-absent races get two epochs", async () => {
    const inner = createMemoryObjectStore();
    // Check, then write, with a gap between: both claims see the version free, both write (the
    // last one stays), both are told "created", as moto was seen to do under load. (A write that
    // lands after the other's read-back still slips through: the WAL fence catches that one.)
    const racy: ObjectStore = {
      ...inner,
      async putIfAbsent(key, bytes) {
        const existed = await inner.get(key);
        await sleep(20);
        if (existed !== undefined) return "exists";
        await inner.delete([key]);
        await inner.putIfAbsent(key, bytes);
        await sleep(20); // the answers leave after both writes
        return "created";
      },
    };
    const claims = await Promise.all([
      claimManifest(racy, now, systemRandom),
      claimManifest(racy, now, systemRandom),
    ]);
    assert.notEqual(claims[0].writerEpoch, claims[1].writerEpoch, "one epoch per writer");
    assert.deepEqual(claims.map((claim) => claim.version).sort(), [1, 2]);
  });
});
