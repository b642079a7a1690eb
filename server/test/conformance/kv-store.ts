// Goal: one behavioural contract for every KvStore implementation (memory, LevelDB), so that the
// simulator's memory store behaves like production. Method: node:test cases run against a fresh
// store from `create()`, checking results against a simple sorted-array model (Buffer.compare as
// the reference order), including exhaustive range-bound combinations and a fast-check model test.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import fc from "fast-check";
import type { KvOp, KvRange, KvStore } from "../../src/storage/kv/kv-store.js";

/** What `create()` returns: a fresh, empty, open store and how to dispose of its resources. */
export interface KvStoreFixture {
  readonly kv: KvStore;
  /** Removes whatever the store left behind (its directory); called after `kv.close()`. */
  cleanup(): Promise<void>;
  /**
   * Opens the same database again after the suite has closed `kv`, for the persistence tests.
   * Omitted by implementations that do not persist across a close (memory).
   */
  reopen?: () => Promise<KvStore>;
}

/** Options for {@link runKvStoreSuite}. */
export interface KvStoreSuiteOptions {
  /** Names the implementation in test output. */
  readonly name: string;
  /** A fresh, empty store per test. */
  readonly create: () => Promise<KvStoreFixture>;
}

type Entry = readonly [Uint8Array, Uint8Array];

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const hex = (key: Uint8Array | undefined): string =>
  key === undefined ? "-" : `[${Buffer.from(key).toString("hex")}]`;
const compare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);

function put(key: Uint8Array, value: Uint8Array): KvOp {
  return { type: "put", key, value };
}

function del(key: Uint8Array): KvOp {
  return { type: "del", key };
}

async function collect(kv: KvStore, range: KvRange = {}): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const entry of kv.entries(range)) out.push(entry);
  return out;
}

async function collectKeys(kv: KvStore, range: KvRange = {}): Promise<Uint8Array[]> {
  return (await collect(kv, range)).map(([key]) => key);
}

/** The reference semantics of a range over a sorted list of keys (see `KvRange`). */
function modelSelect(sortedKeys: readonly Uint8Array[], range: KvRange): Uint8Array[] {
  const selected = sortedKeys.filter((key) => {
    if (range.gte !== undefined) {
      if (compare(key, range.gte) < 0) return false;
    } else if (range.gt !== undefined && compare(key, range.gt) <= 0) {
      return false;
    }
    if (range.lte !== undefined) {
      if (compare(key, range.lte) > 0) return false;
    } else if (range.lt !== undefined && compare(key, range.lt) >= 0) {
      return false;
    }
    return true;
  });
  if (range.reverse === true) selected.reverse();
  return range.limit === undefined ? selected : selected.slice(0, range.limit);
}

/** A model store: a Map keyed by hex, sorted on demand. */
class Model {
  readonly #map = new Map<string, Entry>();

  apply(ops: readonly KvOp[]): void {
    for (const op of ops) {
      const id = Buffer.from(op.key).toString("hex");
      if (op.type === "put") this.#map.set(id, [op.key.slice(), op.value.slice()]);
      else this.#map.delete(id);
    }
  }

  sortedKeys(): Uint8Array[] {
    return [...this.#map.values()].map(([key]) => key).sort(compare);
  }

  select(range: KvRange): Entry[] {
    return modelSelect(this.sortedKeys(), range).map(
      (key) => this.#map.get(Buffer.from(key).toString("hex"))!,
    );
  }

  clear(range: KvRange): void {
    this.apply(modelSelect(this.sortedKeys(), range).map(del));
  }
}

function describeRange(range: KvRange): string {
  const parts: string[] = [];
  if (range.gt !== undefined) parts.push(`gt=${hex(range.gt)}`);
  if (range.gte !== undefined) parts.push(`gte=${hex(range.gte)}`);
  if (range.lt !== undefined) parts.push(`lt=${hex(range.lt)}`);
  if (range.lte !== undefined) parts.push(`lte=${hex(range.lte)}`);
  if (range.reverse !== undefined) parts.push(`reverse=${range.reverse}`);
  if (range.limit !== undefined) parts.push(`limit=${range.limit}`);
  return `{${parts.join(" ")}}`;
}

/** Keys that exercise byte-wise order: 0x00, 0xff, 0x7f/0x80 (signedness), prefixes, lengths. */
const orderingKeys: readonly Uint8Array[] = [
  bytes(),
  bytes(0x00),
  bytes(0x00, 0x00),
  bytes(0x00, 0x01),
  bytes(0x00, 0xff),
  bytes(0x01),
  bytes(0x01, 0x00),
  bytes(0x01, 0x02, 0x03, 0x04, 0x05),
  bytes(0x7f),
  bytes(0x80),
  bytes(0xfe, 0xff),
  bytes(0xff),
  bytes(0xff, 0x00),
  bytes(0xff, 0xff),
  bytes(0xff, 0xff, 0xff),
];

/** Deterministic pseudo-random bytes (xorshift32), so that large values are not compressible. */
function patternBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function u32Key(n: number): Uint8Array {
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, n);
  return key;
}

/**
 * Registers the KvStore conformance tests for one implementation. Each test gets a fresh store
 * from `create()`; the suite closes it and then calls `cleanup()`.
 */
export function runKvStoreSuite(options: KvStoreSuiteOptions): void {
  const { name, create } = options;

  describe(`KvStore conformance: ${name}`, () => {
    let fixture: KvStoreFixture;
    let kv: KvStore;

    beforeEach(async () => {
      fixture = await create();
      kv = fixture.kv;
    });

    afterEach(async () => {
      await kv.close();
      await fixture.cleanup();
    });

    describe("get, put, del", () => {
      it("get of a missing key is undefined", async () => {
        assert.equal(await kv.get(bytes(1, 2, 3)), undefined);
      });

      it("put then get returns the value; del removes it; del of a missing key is a no-op", async () => {
        await kv.write([put(bytes(1), bytes(10, 11))]);
        assert.deepEqual(await kv.get(bytes(1)), bytes(10, 11));
        await kv.write([put(bytes(1), bytes(12))]);
        assert.deepEqual(await kv.get(bytes(1)), bytes(12), "put overwrites");
        await kv.write([del(bytes(1))]);
        assert.equal(await kv.get(bytes(1)), undefined);
        await kv.write([del(bytes(9))]);
        assert.deepEqual(await collect(kv), []);
      });

      it("getMany returns each key's value in the keys' order, undefined where missing", async () => {
        await kv.write([
          put(bytes(1), bytes(10)),
          put(bytes(3), bytes(30)),
          put(bytes(), bytes(0)),
        ]);
        const values = await kv.getMany([bytes(3), bytes(2), bytes(1), bytes(3), bytes()]);
        assert.deepEqual(values, [bytes(30), undefined, bytes(10), bytes(30), bytes(0)]);
        for (const value of values) {
          if (value !== undefined) assert.equal(Buffer.isBuffer(value), false, "plain Uint8Array");
        }
        assert.deepEqual(await kv.getMany([]), []);
      });

      it("allows the empty key and empty values", async () => {
        await kv.write([put(bytes(), bytes(1)), put(bytes(2), bytes())]);
        assert.deepEqual(await kv.get(bytes()), bytes(1));
        assert.deepEqual(await kv.get(bytes(2)), bytes());
        assert.deepEqual(await collect(kv), [
          [bytes(), bytes(1)],
          [bytes(2), bytes()],
        ]);
      });

      it("returns plain Uint8Arrays (not Buffers, whose slice() does not copy)", async () => {
        await kv.write([put(bytes(1), bytes(2))]);
        const value = await kv.get(bytes(1));
        assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype);
        const [[key, iterated]] = (await collect(kv)) as [Entry];
        assert.equal(Object.getPrototypeOf(key), Uint8Array.prototype);
        assert.equal(Object.getPrototypeOf(iterated), Uint8Array.prototype);
      });

      it("copies bytes: reusing a buffer after write() is issued changes nothing stored", async () => {
        const key = bytes(5, 5);
        const value = bytes(6, 6, 6);
        const written = kv.write([put(key, value)]);
        key.fill(0);
        value.fill(0);
        await written;
        assert.deepEqual(await kv.get(bytes(5, 5)), bytes(6, 6, 6));
        assert.equal(await kv.get(bytes(0, 0)), undefined);

        const read = (await kv.get(bytes(5, 5)))!;
        read.fill(7);
        assert.deepEqual(await kv.get(bytes(5, 5)), bytes(6, 6, 6));
      });

      it("accepts sync writes", async () => {
        await kv.write([put(bytes(1), bytes(1))], { sync: true });
        await kv.write([put(bytes(2), bytes(2))], { sync: false });
        await kv.write([put(bytes(3), bytes(3))], {});
        assert.deepEqual(await collectKeys(kv), [bytes(1), bytes(2), bytes(3)]);
      });

      it("an empty write is a no-op", async () => {
        await kv.write([]);
        await kv.write([], { sync: true });
        assert.deepEqual(await collect(kv), []);
      });
    });

    describe("batches", () => {
      it("apply their ops in order", async () => {
        await kv.write([put(bytes(1), bytes(1)), del(bytes(1))]);
        assert.equal(await kv.get(bytes(1)), undefined, "put then del: absent");

        await kv.write([put(bytes(2), bytes(1))]);
        await kv.write([del(bytes(2)), put(bytes(2), bytes(2))]);
        assert.deepEqual(await kv.get(bytes(2)), bytes(2), "del then put: present");

        await kv.write([put(bytes(3), bytes(1)), put(bytes(3), bytes(2)), put(bytes(3), bytes(3))]);
        assert.deepEqual(await kv.get(bytes(3)), bytes(3), "the last put wins");

        await kv.write([
          del(bytes(4)),
          put(bytes(4), bytes(4)),
          del(bytes(4)),
          put(bytes(4), bytes(5)),
        ]);
        assert.deepEqual(await kv.get(bytes(4)), bytes(5));
      });

      it("are seen by readers all at once or not at all", async () => {
        const keyCount = 200;
        const ops = Array.from({ length: keyCount }, (_, i) => put(u32Key(i), bytes(i & 0xff)));
        const written = kv.write(ops);
        const counts = await Promise.all(
          Array.from({ length: 8 }, async (_, i) => {
            for (let turn = 0; turn < i; turn++) await new Promise((r) => setImmediate(r));
            return (await collect(kv)).length;
          }),
        );
        await written;
        for (const count of counts) assert.ok(count === 0 || count === keyCount, `saw ${count}`);
        assert.equal((await collect(kv)).length, keyCount);
      });

      it("awaited writes apply in the order issued", async () => {
        for (let i = 0; i < 50; i++) await kv.write([put(bytes(1), bytes(i))]);
        assert.deepEqual(await kv.get(bytes(1)), bytes(49));
      });
    });

    describe("ordering", () => {
      it("orders keys byte-wise (unsigned, shorter prefix first), forward and reverse", async () => {
        const shuffled = [...orderingKeys].reverse();
        shuffled.push(...shuffled.splice(0, 5));
        await kv.write(shuffled.map((key, i) => put(key, bytes(i))));
        const expected = [...orderingKeys].sort(compare);
        assert.deepEqual(expected, orderingKeys, "the fixture list is itself sorted");
        assert.deepEqual(await collectKeys(kv), expected);
        assert.deepEqual(await collectKeys(kv, { reverse: true }), [...expected].reverse());
        for (const key of orderingKeys) assert.notEqual(await kv.get(key), undefined, hex(key));
      });

      it("honours every combination of range bounds, reverse and limit", async () => {
        await kv.write(orderingKeys.map((key, i) => put(key, bytes(i))));
        const model = new Model();
        model.apply(orderingKeys.map((key, i) => put(key, bytes(i))));

        // Present keys, absent keys between them, and keys before and after everything.
        const bounds = [
          bytes(),
          bytes(0x00, 0x00),
          bytes(0x00, 0x00, 0x05),
          bytes(0x01, 0x02),
          bytes(0x7f),
          bytes(0x80, 0x00),
          bytes(0xff),
          bytes(0xff, 0xff, 0xff, 0xff),
        ];
        type Lower = Pick<KvRange, "gt" | "gte">;
        type Upper = Pick<KvRange, "lt" | "lte">;
        const lowers: Lower[] = [
          {},
          ...bounds.flatMap((b): Lower[] => [{ gt: b }, { gte: b }]),
          // Both given: gte takes precedence over gt (classic-level).
          { gt: bytes(0x7f), gte: bytes(0x00) },
          { gt: bytes(0x00), gte: bytes(0x80, 0x00) },
        ];
        const uppers: Upper[] = [
          {},
          ...bounds.flatMap((b): Upper[] => [{ lt: b }, { lte: b }]),
          // Both given: lte takes precedence over lt.
          { lt: bytes(0x01), lte: bytes(0xff) },
          { lt: bytes(0xff), lte: bytes(0x00, 0x01) },
        ];
        const limits = [undefined, 0, 1, 3, 1000];
        let checked = 0;
        for (const lower of lowers) {
          for (const upper of uppers) {
            for (const reverse of [undefined, false, true]) {
              for (const limit of limits) {
                const range: KvRange = {
                  ...lower,
                  ...upper,
                  ...(reverse === undefined ? {} : { reverse }),
                  ...(limit === undefined ? {} : { limit }),
                };
                const actual = (await collectKeys(kv, range)).map(hex);
                const expected = model.select(range).map(([key]) => hex(key));
                assert.deepEqual(actual, expected, describeRange(range));
                checked++;
              }
            }
          }
        }
        assert.equal(checked, lowers.length * uppers.length * 3 * limits.length);
      });

      it("yields the values that belong to the keys", async () => {
        await kv.write(orderingKeys.map((key, i) => put(key, bytes(i, i))));
        const entries = await collect(kv, { gte: bytes(0x01), lt: bytes(0xff, 0xff) });
        for (const [key, value] of entries) {
          const i = orderingKeys.findIndex((k) => compare(k, key) === 0);
          assert.deepEqual(value, bytes(i, i), hex(key));
        }
        assert.equal(entries.length, 8);
      });
    });

    describe("iteration", () => {
      it("sees a snapshot taken when it starts, whatever is written meanwhile", async () => {
        await kv.write([1, 2, 3, 4, 5].map((i) => put(bytes(i), bytes(i))));
        const seen: Entry[] = [];
        for await (const entry of kv.entries({})) {
          seen.push(entry);
          if (seen.length === 1) {
            await kv.write([
              put(bytes(2, 5), bytes(99)),
              del(bytes(4)),
              put(bytes(5), bytes(55)),
              del(bytes(1)),
            ]);
            await kv.clear({ gte: bytes(3), lt: bytes(4) });
          }
        }
        assert.deepEqual(
          seen,
          [1, 2, 3, 4, 5].map((i) => [bytes(i), bytes(i)]),
        );
        assert.deepEqual(await collect(kv), [
          [bytes(2), bytes(2)],
          [bytes(2, 5), bytes(99)],
          [bytes(5), bytes(55)],
        ]);
      });

      it("an explicit snapshot() shows the store as it was when taken, to every entries()", async () => {
        await kv.write([1, 2, 3].map((i) => put(bytes(i), bytes(i))));
        const snapshot = kv.snapshot();
        try {
          // Written after the snapshot, before any iteration of it starts.
          await kv.write([put(bytes(2), bytes(22)), del(bytes(3)), put(bytes(4), bytes(4))]);
          await kv.clear({ lt: bytes(2) });
          const read = async (range: KvRange): Promise<Entry[]> => {
            const out: Entry[] = [];
            for await (const entry of snapshot.entries(range)) out.push(entry);
            return out;
          };
          assert.deepEqual(
            await read({}),
            [1, 2, 3].map((i) => [bytes(i), bytes(i)]),
          );
          assert.deepEqual(await read({ gte: bytes(2), reverse: true }), [
            [bytes(3), bytes(3)],
            [bytes(2), bytes(2)],
          ]);
          assert.deepEqual(await collect(kv), [
            [bytes(2), bytes(22)],
            [bytes(4), bytes(4)],
          ]);
        } finally {
          await snapshot.close();
        }
      });

      it("takes its snapshot at the first next(), not when entries() is called", async () => {
        await kv.write([put(bytes(1), bytes(1))]);
        const iterable = kv.entries({});
        await kv.write([put(bytes(2), bytes(2))]);
        const iterator = iterable[Symbol.asyncIterator]();
        const first = await iterator.next();
        await kv.write([put(bytes(3), bytes(3))]);
        const rest: Entry[] = [];
        for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) {
          rest.push(r.value);
        }
        assert.deepEqual(first.value, [bytes(1), bytes(1)]);
        assert.deepEqual(rest, [[bytes(2), bytes(2)]]);
      });

      it("can be iterated again, each time from a fresh snapshot", async () => {
        await kv.write([put(bytes(1), bytes(1))]);
        const iterable = kv.entries({});
        assert.equal((await collectAll(iterable)).length, 1);
        await kv.write([put(bytes(2), bytes(2))]);
        assert.equal((await collectAll(iterable)).length, 2);
      });

      it("closes on an early break, after which close() resolves", {
        timeout: 30_000,
      }, async () => {
        await kv.write(Array.from({ length: 500 }, (_, i) => put(u32Key(i), patternBytes(100, i))));
        for (let round = 0; round < 50; round++) {
          let count = 0;
          for await (const _ of kv.entries({ reverse: round % 2 === 1 })) {
            if (++count === 1 + (round % 3)) break;
          }
          assert.equal(count, 1 + (round % 3));
        }
        // A thrown exception inside the loop closes it too.
        await assert.rejects(async () => {
          for await (const _ of kv.entries({})) throw new Error("consumer failed");
        }, /consumer failed/);
        await kv.write([put(bytes(9), bytes(9))]);
        await kv.close();
      });

      it("an iterator returned before its first next() holds nothing open", async () => {
        await kv.write([put(bytes(1), bytes(1))]);
        const iterator = kv.entries({})[Symbol.asyncIterator]();
        const result = await iterator.return?.(undefined);
        assert.equal(result?.done, true);
        await kv.close();
      });

      it("close() during an iteration resolves, and the iteration then rejects", async () => {
        await kv.write(Array.from({ length: 100 }, (_, i) => put(u32Key(i), bytes(i))));
        const iterator = kv.entries({})[Symbol.asyncIterator]();
        assert.equal((await iterator.next()).done, false);
        await kv.close();
        await assert.rejects(async () => {
          // A native iterator may have buffered a few entries; it must fail before the end.
          for (let i = 0; i < 100; i++) if ((await iterator.next()).done === true) return;
        });
      });

      it("operations after close() reject", async () => {
        await kv.write([put(bytes(1), bytes(1))]);
        await kv.close();
        await assert.rejects(kv.get(bytes(1)));
        await assert.rejects(kv.write([put(bytes(2), bytes(2))]));
        await assert.rejects(kv.clear({}));
        await assert.rejects(collect(kv));
        await kv.close(); // Idempotent.
      });
    });

    describe("clear", () => {
      const keys = Array.from({ length: 20 }, (_, i) => bytes(i * 10));

      async function checkClear(range: KvRange, initialKeys = keys): Promise<void> {
        await kv.clear({});
        assert.deepEqual(await collect(kv), []);
        await kv.write(initialKeys.map((key) => put(key, key)));
        const model = new Model();
        model.apply(initialKeys.map((key) => put(key, key)));
        await kv.clear(range);
        model.clear(range);
        assert.deepEqual(
          (await collectKeys(kv)).map(hex),
          model.sortedKeys().map(hex),
          describeRange(range),
        );
      }

      it("deletes exactly the keys in the range", async () => {
        await checkClear({ gte: bytes(30), lt: bytes(70) });
        await checkClear({ gt: bytes(30), lte: bytes(70) });
        await checkClear({ gt: bytes(35), lt: bytes(36) });
        await checkClear({ lt: bytes(50) });
        await checkClear({ gte: bytes(150) });
        await checkClear({ gte: bytes(70), lt: bytes(30) });
      });

      it("honours limit, from the high end when reverse", async () => {
        await checkClear({ limit: 3 });
        await checkClear({ limit: 3, reverse: true });
        await checkClear({ gte: bytes(50), limit: 2, reverse: true });
        await checkClear({ limit: 0 });
      });

      it("deletes the empty key like any other", { timeout: 30_000 }, async () => {
        // classic-level 3.0.0 skips a clear chunk whose keys total zero bytes: level.ts works
        // around it, and these cases pin the workaround.
        const few = [bytes(), bytes(1), bytes(2)];
        const many = [bytes(), ...Array.from({ length: 3000 }, (_, i) => patternBytes(10, i + 1))];
        await checkClear({}, [bytes()]);
        await checkClear({ limit: 1 }, few);
        await checkClear({ limit: 2 }, few);
        await checkClear({ lt: bytes(1) }, few);
        await checkClear({ lte: bytes() }, few);
        await checkClear({ lt: bytes() }, few);
        await checkClear({ gt: bytes() }, few);
        await checkClear({ gte: bytes(), lt: bytes(0) }, few);
        await checkClear({ reverse: true }, few);
        await checkClear({ reverse: true, limit: 2 }, few);
        await checkClear({ reverse: true, limit: 3 }, few);
        await checkClear({ reverse: true, limit: 1, lte: bytes(0) }, few);
        await checkClear({ reverse: true }, many);
        await checkClear({}, many);
        await checkClear({ reverse: true, limit: 3000 }, many);
        await checkClear({ reverse: true, limit: 3001 }, many);
      });

      it("with no bounds deletes everything", async () => {
        await kv.write(orderingKeys.map((key) => put(key, key)));
        await kv.clear({});
        assert.deepEqual(await collect(kv), []);
        assert.equal(await kv.get(bytes()), undefined);
      });
    });

    describe("size", () => {
      it("stores 1 MiB values", { timeout: 60_000 }, async () => {
        const big = patternBytes(1 << 20, 7);
        await kv.write([put(bytes(1), big)]);
        assert.deepEqual(await kv.get(bytes(1)), big);
        const several = [2, 3, 4, 5].map((i) => patternBytes(1 << 20, i));
        await kv.write(
          several.map((value, i) => put(bytes(i + 2), value)),
          { sync: true },
        );
        const entries = await collect(kv);
        assert.equal(entries.length, 5);
        assert.deepEqual(entries[0]?.[1], big);
        for (let i = 0; i < 4; i++) assert.deepEqual(entries[i + 1]?.[1], several[i]);
      });

      it("holds 10k keys in order", { timeout: 60_000 }, async () => {
        const keyCount = 10_000;
        for (let start = 0; start < keyCount; start += 1000) {
          const ops = Array.from({ length: 1000 }, (_, i) =>
            put(u32Key(start + i), u32Key(~(start + i))),
          );
          await kv.write(ops);
        }
        const keys = await collectKeys(kv);
        assert.equal(keys.length, keyCount);
        for (let i = 0; i < keyCount; i++) assert.deepEqual(keys[i], u32Key(i));
        assert.deepEqual(
          await collectKeys(kv, { reverse: true, limit: 3 }),
          [9999, 9998, 9997].map(u32Key),
        );
        // Unbounded listings cross the stores' pages (64, then 1,000 rows in LevelDB) whole.
        const reversed = await collectKeys(kv, { reverse: true, gte: u32Key(17) });
        assert.equal(reversed.length, keyCount - 17);
        for (let i = 0; i < reversed.length; i++)
          assert.deepEqual(reversed[i], u32Key(keyCount - 1 - i));
        const snapshot = kv.snapshot();
        try {
          await kv.write([put(u32Key(keyCount), u32Key(0))]);
          let listed = 0;
          for await (const [key] of snapshot.entries({ gte: u32Key(63) })) {
            assert.deepEqual(key, u32Key(63 + listed));
            listed += 1;
          }
          assert.equal(listed, keyCount - 63, "the snapshot's rows, none written after it");
        } finally {
          await snapshot.close();
        }
        await kv.write([{ type: "del", key: u32Key(keyCount) }]);
        assert.deepEqual(await kv.get(u32Key(1234)), u32Key(~1234));
        assert.equal((await collect(kv, { gte: u32Key(2500), lt: u32Key(7500) })).length, 5000);
        await kv.clear({ gte: u32Key(5000) });
        assert.equal((await collect(kv)).length, 5000);
        assert.equal(await kv.get(u32Key(5000)), undefined);
      });
    });

    describe("model", () => {
      it("agrees with a sorted-map model over random op sequences", {
        timeout: 120_000,
      }, async () => {
        const keyArb = fc
          .uint8Array({ maxLength: 3 })
          .map((key) => key.map((b) => [0x00, 0x01, 0x7f, 0x80, 0xff][b % 5]!));
        const rangeArb = fc.record(
          {
            gt: keyArb,
            gte: keyArb,
            lt: keyArb,
            lte: keyArb,
            reverse: fc.boolean(),
            limit: fc.nat(6),
          },
          { requiredKeys: [] },
        );
        const commandArb = fc.oneof(
          fc.record({
            type: fc.constant("write" as const),
            ops: fc.array(
              fc.oneof(
                fc.record({
                  type: fc.constant("put" as const),
                  key: keyArb,
                  value: fc.uint8Array({ maxLength: 4 }),
                }),
                fc.record({ type: fc.constant("del" as const), key: keyArb }),
              ),
              { maxLength: 5 },
            ),
          }),
          fc.record({ type: fc.constant("clear" as const), range: rangeArb }),
          fc.record({ type: fc.constant("read" as const), range: rangeArb }),
        );
        await fc.assert(
          fc.asyncProperty(fc.array(commandArb, { maxLength: 20 }), async (commands) => {
            await kv.clear({});
            assert.deepEqual(await collect(kv), []);
            const model = new Model();
            for (const command of commands) {
              if (command.type === "write") {
                await kv.write(command.ops);
                model.apply(command.ops);
              } else if (command.type === "clear") {
                await kv.clear(command.range);
                model.clear(command.range);
              } else {
                assert.deepEqual(await collect(kv, command.range), model.select(command.range));
              }
            }
            assert.deepEqual(await collect(kv), model.select({}));
            for (const key of model.sortedKeys()) assert.notEqual(await kv.get(key), undefined);
          }),
          { numRuns: 100 },
        );
      });
    });

    describe("persistence", () => {
      it("keeps data across close and reopen", async (t) => {
        if (fixture.reopen === undefined) {
          t.skip(`${name} does not persist across close`);
          return;
        }
        await kv.write(
          orderingKeys.map((key, i) => put(key, bytes(i))),
          { sync: true },
        );
        await kv.write([put(bytes(0x42), patternBytes(1 << 20, 3))]);
        await kv.write([del(bytes(0x80))]);
        await kv.clear({ gte: bytes(0xff) });
        const before = await collect(kv);
        await kv.close();
        kv = await fixture.reopen();
        assert.deepEqual(await collect(kv), before);
        assert.equal(await kv.get(bytes(0x80)), undefined);
        assert.deepEqual(await kv.get(bytes(0x42)), patternBytes(1 << 20, 3));
        await kv.write([put(bytes(0x43), bytes(1))]);
        assert.deepEqual(await kv.get(bytes(0x43)), bytes(1));
      });
    });
  });
}

async function collectAll(iterable: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const entry of iterable) out.push(entry);
  return out;
}
