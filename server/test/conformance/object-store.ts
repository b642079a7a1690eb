/**
 * The one behavioural suite every `ObjectStore` implementation passes (memory, local-fs, S3),
 * after hono's shared `runTest`. It pins the seam's contract: conditional creates, range
 * clipping, byte-wise listing order, pagination and deletes.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, it } from "node:test";
import { objectDeleteBatchMax, objectListPageMax } from "../../src/core/limits.js";
import { listAll, type ObjectStore } from "../../src/storage/object-store/object-store.js";

/** How `runObjectStoreSuite` gets a fresh, empty store for each test. */
export interface ObjectStoreSuiteOptions {
  /** Names the implementation in test output. */
  readonly name: string;
  /** A new empty store, and how to dispose of it and anything it left behind. */
  readonly create: () => Promise<{ store: ObjectStore; cleanup(): Promise<void> }>;
  /** When set, the whole suite is skipped with this reason (e.g. no S3 emulator). */
  readonly skip?: string | undefined;
  /**
   * Why concurrent creators of one key may both be told "created", when the implementation under
   * test does not make create-if-absent atomic (moto). Real S3 does; the engine does not rely on
   * it alone (claims are read back, docs/design/storage.md).
   */
  readonly racyCreate?: string | undefined;
}

/** Puts issued at once when a test needs many keys: enough to be quick, few enough for moto. */
const setupPutsConcurrencyMax = 16;

/** Registers the conformance tests for one implementation with `node:test`. */
export function runObjectStoreSuite(options: ObjectStoreSuiteOptions): void {
  describe(`ObjectStore conformance: ${options.name}`, { skip: options.skip ?? false }, () => {
    let store: ObjectStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      const created = await options.create();
      store = created.store;
      cleanup = () => created.cleanup();
    });

    afterEach(async () => {
      await cleanup();
    });

    it("returns undefined for a missing key, with or without a range", async () => {
      assert.equal(await store.get("missing"), undefined);
      assert.equal(await store.get("missing", { start: 0, end: 10 }), undefined);
      assert.equal(await store.get("missing", { start: 5, end: 5 }), undefined);
    });

    it("returns the bytes that were put, unaffected by later changes to either buffer", async () => {
      const bytes = bytesOf("hello, tributary");
      assert.equal(await store.putIfAbsent("greeting", bytes), "created");
      bytes.fill(0);
      const first = await store.get("greeting");
      assertBytes(first, bytesOf("hello, tributary"));
      first?.fill(0);
      assertBytes(await store.get("greeting"), bytesOf("hello, tributary"));
      // A Node Buffer too (its `slice` is a view, not a copy).
      const buffer = Buffer.from("a buffer");
      assert.equal(await store.putIfAbsent("buffer", buffer), "created");
      buffer.fill(0);
      assertBytes(await store.get("buffer"), bytesOf("a buffer"));
    });

    it("stores a body given in parts as their bytes back to back, whole and by range", async () => {
      // A segment's header, payload views and CRCs (`ObjectBody`): many parts, some empty, some
      // views into one larger buffer, past the 1,024 of one writev.
      const big = randomBytes(64 << 10);
      const parts: Uint8Array[] = [bytesOf("head"), new Uint8Array(0), big.subarray(100, 30_000)];
      for (let i = 0; i < 1_500; i++) parts.push(bytesOf(String(i % 10)));
      parts.push(big.subarray(40_000));
      const expected = Buffer.concat(parts);
      assert.equal(await store.putIfAbsent("parts", parts), "created");
      assert.equal(await store.putIfAbsent("parts", [bytesOf("other")]), "exists");
      assertBytes(await store.get("parts"), expected);
      assertBytes(
        await store.get("parts", { start: 29_000, end: 31_500 }),
        expected.subarray(29_000, 31_500),
      );
      const listed = await store.list("parts");
      assert.equal(listed.objects[0]?.size, expected.length);
    });

    it("creates once and then reports exists, keeping the original content", async () => {
      assert.equal(await store.putIfAbsent("once", bytesOf("first")), "created");
      assert.equal(await store.putIfAbsent("once", bytesOf("second")), "exists");
      assert.equal(await store.putIfAbsent("once", bytesOf("first")), "exists");
      assertBytes(await store.get("once"), bytesOf("first"));
    });

    it("lets exactly one of 10 concurrent creators of a key win", async () => {
      const racers = Array.from({ length: 10 }, (_, i) => bytesOf(`racer ${i}`));
      const outcomes = await Promise.all(racers.map((bytes) => store.putIfAbsent("race", bytes)));
      const created = outcomes.flatMap((outcome, i) => (outcome === "created" ? [i] : []));
      assert.equal(created.length + outcomes.filter((o) => o === "exists").length, 10);
      const stored = await store.get("race");
      if (options.racyCreate === undefined) {
        assert.equal(created.length, 1);
        assertBytes(stored, racers[created[0]!] ?? new Uint8Array(0));
        return;
      }
      // A racy store (`racyCreate`): still at least one winner, and the object holds the bytes
      // of a racer told "created", never of one told "exists".
      assert.ok(created.length >= 1, "someone created the key");
      assert.ok(
        created.some((i) => Buffer.compare(stored ?? new Uint8Array(0), racers[i]!) === 0),
        "the object holds a creator's bytes",
      );
    });

    it("reads byte ranges, clipped to the object", async () => {
      const bytes = Uint8Array.from({ length: 100 }, (_, i) => i);
      await store.putIfAbsent("ranged", bytes);
      assertBytes(await store.get("ranged", { start: 10, end: 20 }), bytes.slice(10, 20));
      assertBytes(await store.get("ranged", { start: 0, end: 1 }), bytes.slice(0, 1));
      assertBytes(await store.get("ranged", { start: 99, end: 100 }), bytes.slice(99));
      assertBytes(await store.get("ranged", { start: 90, end: 200 }), bytes.slice(90));
      assertBytes(await store.get("ranged", { start: 0, end: 100 }), bytes);
      assertBytes(await store.get("ranged", { start: 0, end: 1000 }), bytes);
    });

    it("returns an empty array for a range starting at or past the end, or an empty range", async () => {
      await store.putIfAbsent("ranged", new Uint8Array(100).fill(7));
      for (const range of [
        { start: 100, end: 110 },
        { start: 150, end: 160 },
        { start: 20, end: 20 },
        { start: 20, end: 10 },
      ]) {
        assertBytes(await store.get("ranged", range), new Uint8Array(0), JSON.stringify(range));
      }
    });

    it("stores and lists an empty object", async () => {
      assert.equal(await store.putIfAbsent("empty", new Uint8Array(0)), "created");
      assertBytes(await store.get("empty"), new Uint8Array(0));
      assertBytes(await store.get("empty", { start: 0, end: 10 }), new Uint8Array(0));
      assert.deepEqual((await store.list("empty")).objects, [{ key: "empty", size: 0 }]);
      assert.equal(await store.putIfAbsent("empty", bytesOf("x")), "exists");
    });

    it("round-trips a 5 MiB object, whole and by range", async () => {
      const bytes = new Uint8Array(randomBytes(5 << 20));
      assert.equal(await store.putIfAbsent("big/object", bytes), "created");
      assertBytes(await store.get("big/object"), bytes);
      const start = (2 << 20) + 123;
      const end = start + (1 << 20);
      assertBytes(await store.get("big/object", { start, end }), bytes.slice(start, end));
      assert.deepEqual((await store.list("big/")).objects, [{ key: "big/object", size: 5 << 20 }]);
    });

    it("handles keys with nested slashes", async () => {
      const key = "x/y/z/w/object";
      assert.equal(await store.putIfAbsent(key, bytesOf("deep")), "created");
      assertBytes(await store.get(key), bytesOf("deep"));
      assert.equal(await store.get("x/y/z/w"), undefined);
      assert.equal(await store.get("x/y"), undefined);
      for (const prefix of ["", "x", "x/", "x/y/z/", "x/y/z/w/obj"]) {
        assert.deepEqual(keysOf(await store.list(prefix)), [key], `prefix ${prefix}`);
      }
      assert.deepEqual(keysOf(await store.list("x/y/q")), []);
      assert.deepEqual(keysOf(await store.list("x/y/z/w/object/")), []);
    });

    it("stores a key that is also a prefix of other keys", async () => {
      // S2 stream names may contain "/", so a layout like `streams/<name>` produces these pairs.
      await putAll(store, ["s/a", "s/a/b", "s/a/b/c"]);
      assertBytes(await store.get("s/a"), bytesOf("s/a"));
      assertBytes(await store.get("s/a/b"), bytesOf("s/a/b"));
      assert.deepEqual(keysOf(await store.list("s/a")), ["s/a", "s/a/b", "s/a/b/c"]);
      assert.deepEqual(keysOf(await store.list("s/a/")), ["s/a/b", "s/a/b/c"]);
      await store.delete(["s/a/b"]);
      assert.deepEqual(keysOf(await store.list("s/")), ["s/a", "s/a/b/c"]);
    });

    it("stores keys with unusual segments and characters", async () => {
      // Empty, "." and ".." segments are plain key text in S3, not path steps.
      const keys = [
        "u/",
        "u/%",
        "u/%25",
        "u/%tmp-1",
        "u/.",
        "u/..",
        "u/../x",
        "u/./x",
        "u/.hidden",
        "u//x",
        "u/a b",
        "u/a+b",
        "u/x/",
        "u/x~y",
        "u/é",
      ];
      await putAll(store, keys);
      for (const key of keys) assertBytes(await store.get(key), bytesOf(key), key);
      assert.deepEqual(keysOf(await store.list("u/")), keys);
    });

    it("lists only keys with the prefix, with their sizes", async () => {
      await putAll(store, ["p/a", "p/b", "p/c/d", "pa", "q/a", "o"]);
      assert.deepEqual((await store.list("p/")).objects, [
        { key: "p/a", size: 3 },
        { key: "p/b", size: 3 },
        { key: "p/c/d", size: 5 },
      ]);
      assert.deepEqual(keysOf(await store.list("p")), ["p/a", "p/b", "p/c/d", "pa"]);
      assert.deepEqual(keysOf(await store.list("")), ["o", "p/a", "p/b", "p/c/d", "pa", "q/a"]);
      assert.deepEqual(keysOf(await store.list("r")), []);
      assert.equal((await store.list("p/")).isTruncated, false);
    });

    it("lists only keys after startAfter", async () => {
      await putAll(store, ["p/a", "p/b", "p/c/d", "p/c/e", "p/d"]);
      const after = async (startAfter: string): Promise<string[]> =>
        keysOf(await store.list("p/", { startAfter }));
      assert.deepEqual(await after("p/a"), ["p/b", "p/c/d", "p/c/e", "p/d"]);
      assert.deepEqual(await after("p/aa"), ["p/b", "p/c/d", "p/c/e", "p/d"]);
      assert.deepEqual(await after("p/c"), ["p/c/d", "p/c/e", "p/d"]);
      assert.deepEqual(await after("p/c/d"), ["p/c/e", "p/d"]);
      assert.deepEqual(await after("p/c/z"), ["p/d"]);
      assert.deepEqual(await after("a"), ["p/a", "p/b", "p/c/d", "p/c/e", "p/d"]);
      assert.deepEqual(await after("p/d"), []);
      assert.deepEqual(await after("z"), []);
    });

    it("pages with limit, isTruncated and startAfter continuation", async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `page/${String(i).padStart(5, "0")}`);
      await putAll(store, keys);
      const seen: string[] = [];
      const truncations: boolean[] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page = await store.list("page/", { startAfter, limit: 10 });
        assert.ok(page.objects.length <= 10);
        seen.push(...keysOf(page));
        truncations.push(page.isTruncated);
        const last = page.objects.at(-1);
        if (!page.isTruncated || last === undefined) break;
        startAfter = last.key;
      }
      assert.deepEqual(seen, keys);
      assert.deepEqual(truncations, [true, true, false]);
      const exact = await store.list("page/", { limit: 25 });
      assert.deepEqual([exact.objects.length, exact.isTruncated], [25, false]);
      const capped = await store.list("page/", { limit: objectListPageMax * 10 });
      assert.deepEqual([capped.objects.length, capped.isTruncated], [25, false]);
      const one = await store.list("page/", { startAfter: keys[23], limit: 1 });
      assert.deepEqual([keysOf(one), one.isTruncated], [[keys[24]], false]);
      assert.deepEqual(keysOf({ objects: await listAll(store, "page/") }), keys);
      assert.deepEqual(
        keysOf({ objects: await listAll(store, "page/", keys[19]) }),
        keys.slice(20),
      );
    });

    it("lists more keys than fit one page with listAll", async () => {
      const count = objectListPageMax + 5;
      const keys = Array.from({ length: count }, (_, i) => `many/${String(i).padStart(6, "0")}`);
      await putAll(store, keys);
      const first = await store.list("many/");
      assert.equal(first.objects.length, objectListPageMax);
      assert.equal(first.isTruncated, true);
      assert.deepEqual(keysOf({ objects: await listAll(store, "many/") }), keys);
    });

    it("lists in UTF-8 byte order", async () => {
      // "/" (0x2f) sorts after "-" (0x2d) and before "0" (0x30); U+E000 is EE 80 80 in UTF-8 and
      // sorts before U+1F600 (F0 9F 98 80), though JS string comparison orders them the other
      // way (surrogate 0xD83D < 0xE000).
      const expected = [
        "B",
        "a-b",
        "a/b",
        "a/b-c/d",
        "a/b/c",
        "a/b0",
        "a0",
        "ab",
        "n/00000000000000000009",
        "n/00000000000000000010",
        "n/00000000000000000100",
        "z\u{e000}",
        "z\u{1f600}",
      ];
      await putAll(store, [...expected].reverse());
      assert.deepEqual(keysOf(await store.list("")), expected);
      assert.deepEqual(keysOf({ objects: await listAll(store, "") }), expected);
      assert.deepEqual(keysOf(await store.list("a")), expected.slice(1, 8));
      assert.deepEqual(keysOf(await store.list("", { startAfter: "a/b" })), expected.slice(3));
      assert.deepEqual(keysOf(await store.list("", { startAfter: "a/b/" })), expected.slice(4));
      assert.deepEqual(keysOf(await store.list("", { startAfter: "z\u{e000}" })), ["z\u{1f600}"]);
      const paged: string[] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page = await store.list("", { startAfter, limit: 2 });
        paged.push(...keysOf(page));
        const last = page.objects.at(-1);
        if (!page.isTruncated || last === undefined) break;
        startAfter = last.key;
      }
      assert.deepEqual(paged, expected);
    });

    it("deletes, and deleting a missing key succeeds", async () => {
      await putAll(store, ["d/a", "d/b"]);
      await store.delete(["d/a"]);
      assert.equal(await store.get("d/a"), undefined);
      assert.deepEqual(keysOf(await store.list("d/")), ["d/b"]);
      await store.delete(["d/a"]);
      await store.delete(["never/existed"]);
      await store.delete([]);
      assert.equal(await store.putIfAbsent("d/a", bytesOf("again")), "created");
      assertBytes(await store.get("d/a"), bytesOf("again"));
    });

    it("deletes a batch of up to objectDeleteBatchMax keys at once, missing ones among them", async () => {
      // GC deletes in batches (one request each on S3): every key of the batch goes, a key that
      // was never there is no error, and keys outside the batch stay.
      const doomed = Array.from({ length: 1500 }, (_, i) => `m/${String(i).padStart(4, "0")}`);
      const kept = ["m/keep", "n/0000"];
      await putAll(store, [...doomed.slice(0, 1200), ...kept]);
      const first = doomed.slice(0, objectDeleteBatchMax);
      await store.delete([...first.slice(0, -1), "m/never"]);
      await store.delete(first.slice(-1));
      await store.delete(doomed.slice(objectDeleteBatchMax));
      assert.deepEqual(
        (await listAll(store, "")).map((object) => object.key),
        kept,
        "exactly the kept keys are left",
      );
      await assert.rejects(
        store.delete(Array.from({ length: objectDeleteBatchMax + 1 }, (_, i) => `m/${i}`)),
        /too many keys/,
      );
    });
  });
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function keysOf(page: { objects: readonly { key: string }[] }): string[] {
  return page.objects.map((object) => object.key);
}

/** Compares bytes without `deepEqual`, which is slow on megabytes and strict about Buffer. */
function assertBytes(actual: Uint8Array | undefined, expected: Uint8Array, message?: string): void {
  assert.ok(actual instanceof Uint8Array, message ?? "expected bytes, got undefined");
  assert.equal(actual.length, expected.length, message);
  assert.ok(Buffer.from(actual).equals(Buffer.from(expected)), message ?? "bytes differ");
}

/** Puts each key with its own name as content, a bounded number at a time. */
async function putAll(store: ObjectStore, keys: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) {
      const key = keys[i] ?? "";
      assert.equal(await store.putIfAbsent(key, bytesOf(key)), "created", key);
    }
  };
  await Promise.all(Array.from({ length: setupPutsConcurrencyMax }, worker));
}
