// Goal: both KvStore implementations pass the shared conformance suite, the LevelDB store turns
// on-disk damage into KvCorruptError, and the memory store's crash() loses exactly the unsynced
// writes. Method: run runKvStoreSuite for memory and for LevelDB in temporary directories, then
// damage real LevelDB files (CURRENT, MANIFEST, tables, log) and drive crash() directly.

import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { KvOp, KvStore } from "../../src/storage/kv/kv-store.js";
import {
  destroyLevelKvStore,
  KvCorruptError,
  openLevelKvStore,
} from "../../src/storage/kv/level.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";
import { runKvStoreSuite } from "./kv-store.js";

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const put = (key: Uint8Array, value: Uint8Array): KvOp => ({ type: "put", key, value });

async function keysOf(kv: KvStore): Promise<number[][]> {
  const out: number[][] = [];
  for await (const [key] of kv.entries({})) out.push([...key]);
  return out;
}

runKvStoreSuite({
  name: "memory",
  create: async () => ({ kv: createMemoryKvStore(), cleanup: async () => {} }),
});

runKvStoreSuite({
  name: "level",
  create: async () => {
    const path = await mkdtemp(join(tmpdir(), "tributary-kv-"));
    return {
      kv: await openLevelKvStore({ path }),
      cleanup: () => destroyLevelKvStore(path),
      reopen: () => openLevelKvStore({ path }),
    };
  },
});

describe("level KvStore: damage and locking", () => {
  let path: string;

  beforeEach(async () => {
    path = await mkdtemp(join(tmpdir(), "tributary-kv-"));
  });

  afterEach(async () => {
    await destroyLevelKvStore(path);
  });

  /** Writes `count` keys of 1000 bytes each; `compact` moves them from the log into a table. */
  async function populate(count: number, compact: boolean): Promise<string[]> {
    const kv = await openLevelKvStore({ path });
    for (let i = 0; i < count; i += 100) {
      const ops = Array.from({ length: 100 }, (_, j) =>
        put(bytes((i + j) >> 8, (i + j) & 0xff), new Uint8Array(1000).fill((i + j) & 0xff)),
      );
      await kv.write(ops);
    }
    await kv.close();
    if (compact) {
      // Reopening replays the log into a level-0 table (LevelDB recovery), so no log holds data.
      const reopened = await openLevelKvStore({ path });
      await reopened.close();
    }
    return readdir(path);
  }

  async function fileEndingWith(suffix: string): Promise<string> {
    const name = (await readdir(path)).find((f) => f.endsWith(suffix));
    assert.ok(name !== undefined, `no *${suffix} in ${(await readdir(path)).join(", ")}`);
    return join(path, name);
  }

  async function assertOpenIsCorrupt(): Promise<void> {
    await assert.rejects(openLevelKvStore({ path }), (error: unknown) => {
      assert.ok(error instanceof KvCorruptError, String(error));
      assert.equal(error.path, path);
      assert.ok(error.cause !== undefined);
      return true;
    });
  }

  it("reports a garbage CURRENT file as KvCorruptError; destroy and reopen recovers", async () => {
    await populate(200, false);
    await writeFile(join(path, "CURRENT"), "garbage without a newline");
    await assertOpenIsCorrupt();
    await destroyLevelKvStore(path);
    const kv = await openLevelKvStore({ path });
    assert.deepEqual(await keysOf(kv), []);
    await kv.write([put(bytes(1), bytes(1))], { sync: true });
    assert.deepEqual(await keysOf(kv), [[1]]);
    await kv.close();
  });

  it("reports a CURRENT that names a missing MANIFEST as KvCorruptError", async () => {
    await populate(200, false);
    await writeFile(join(path, "CURRENT"), "MANIFEST-999999\n");
    await assertOpenIsCorrupt();
  });

  it("reports a garbage MANIFEST as KvCorruptError", async () => {
    await populate(200, false);
    const name = (await readdir(path)).find((f) => f.startsWith("MANIFEST-"));
    assert.ok(name !== undefined);
    await writeFile(join(path, name), Buffer.alloc(4096, 0x5a));
    await assertOpenIsCorrupt();
  });

  it("reports a missing table file as KvCorruptError", async () => {
    await populate(2000, true);
    await rm(await fileEndingWith(".ldb"));
    await assertOpenIsCorrupt();
  });

  it("opens with a damaged table and reports the damage as KvCorruptError when read", async () => {
    await populate(2000, true);
    const table = await fileEndingWith(".ldb");
    const content = await readFile(table);
    content.fill(0x33, 100, 5000); // Overwrites block contents and block trailers.
    await writeFile(table, content);
    const kv = await openLevelKvStore({ path });
    await assert.rejects(keysOf(kv), KvCorruptError);
    await kv.close();
  });

  it("silently drops damaged log records at open (LevelDB paranoid checks are off)", async () => {
    // Not a property we want, but the one LevelDB has: pinned so that a change is noticed.
    await populate(200, false);
    const log = await fileEndingWith(".log");
    assert.ok((await stat(log)).size > 50_000);
    const content = await readFile(log);
    content.fill(0x33, 1000, 50_000);
    await writeFile(log, content);
    const kv = await openLevelKvStore({ path });
    const keys = await keysOf(kv);
    assert.ok(keys.length > 0 && keys.length < 200, `kept ${keys.length} of 200`);
    for await (const [key, value] of kv.entries({})) {
      assert.deepEqual(value, new Uint8Array(1000).fill(key[1]!), "survivors are intact");
    }
    await kv.close();
  });

  it("refuses a second open of a live database, and not as KvCorruptError", async () => {
    const kv = await openLevelKvStore({ path });
    await assert.rejects(openLevelKvStore({ path }), (error: unknown) => {
      assert.ok(!(error instanceof KvCorruptError));
      assert.match(JSON.stringify(error, Object.getOwnPropertyNames(error)), /LEVEL_LOCKED/);
      return true;
    });
    await kv.close();
  });

  it("destroyLevelKvStore accepts a missing directory", async () => {
    await destroyLevelKvStore(join(path, "never-created"));
  });
});

describe("memory KvStore: crash()", () => {
  it("reverts the writes after the last synced write and keeps the rest", async () => {
    const kv = createMemoryKvStore();
    await kv.write([put(bytes(1), bytes(1))]);
    await kv.write([put(bytes(2), bytes(2))], { sync: true }); // Also makes key 1 durable.
    await kv.write([put(bytes(3), bytes(3)), put(bytes(1), bytes(11))]);
    await kv.write([{ type: "del", key: bytes(2) }]);
    assert.equal(kv.unsyncedWriteCount, 2);
    kv.crash();
    assert.equal(kv.unsyncedWriteCount, 0);
    assert.deepEqual(await keysOf(kv), [[1], [2]]);
    assert.deepEqual(await kv.get(bytes(1)), bytes(1));
    assert.deepEqual(await kv.get(bytes(2)), bytes(2));
  });

  it("keeps a prefix of the unsynced writes when asked, never part of a batch", async () => {
    const kv = createMemoryKvStore();
    await kv.write([put(bytes(1), bytes(1))], { sync: true });
    await kv.write([put(bytes(2), bytes(2))]);
    await kv.write([put(bytes(3), bytes(3)), put(bytes(4), bytes(4))]);
    await kv.write([put(bytes(5), bytes(5))]);
    kv.crash({ keepUnsyncedWrites: 2 });
    assert.deepEqual(await keysOf(kv), [[1], [2], [3], [4]]);
    // What survived a crash is durable: a second crash keeps it.
    kv.crash();
    assert.deepEqual(await keysOf(kv), [[1], [2], [3], [4]]);
  });

  it("loses nothing on a process crash (keepUnsyncedWrites: Infinity)", async () => {
    const kv = createMemoryKvStore();
    await kv.write([put(bytes(1), bytes(1))]);
    await kv.clear({ gte: bytes(1) });
    await kv.write([put(bytes(2), bytes(2))]);
    kv.crash({ keepUnsyncedWrites: Infinity });
    assert.deepEqual(await keysOf(kv), [[2]]);
  });

  it("treats clear() as an unsynced write", async () => {
    const kv = createMemoryKvStore();
    await kv.write([put(bytes(1), bytes(1)), put(bytes(2), bytes(2))], { sync: true });
    await kv.clear({});
    assert.deepEqual(await keysOf(kv), []);
    kv.crash();
    assert.deepEqual(await keysOf(kv), [[1], [2]]);
  });

  it("replays a kept clear with the bounds it was given, even if the caller reused them", async () => {
    const kv = createMemoryKvStore();
    await kv.write(
      [1, 2, 3, 4].map((i) => put(bytes(i), bytes(i))),
      { sync: true },
    );
    const bound = bytes(3);
    await kv.clear({ gte: bound });
    bound[0] = 1;
    await kv.write([put(bytes(9), bytes(9))]);
    kv.crash({ keepUnsyncedWrites: 1 });
    assert.deepEqual(await keysOf(kv), [[1], [2]]);
  });

  it("leaves the store open, even after close(), and kills iterations from before", async () => {
    const kv = createMemoryKvStore();
    await kv.write([put(bytes(1), bytes(1)), put(bytes(2), bytes(2))], { sync: true });
    const iterator = kv.entries({})[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).done, false);
    kv.crash();
    await assert.rejects(iterator.next());
    await kv.close();
    await assert.rejects(kv.get(bytes(1)));
    kv.crash();
    assert.deepEqual(await kv.get(bytes(1)), bytes(1));
  });

  it("starts empty and a crash of an empty store is empty", async () => {
    const kv = createMemoryKvStore();
    kv.crash();
    assert.deepEqual(await keysOf(kv), []);
    await kv.write([put(bytes(1), bytes(1))]);
    kv.crash();
    assert.deepEqual(await keysOf(kv), []);
  });
});
