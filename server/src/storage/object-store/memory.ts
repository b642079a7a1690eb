/**
 * An in-memory object store: the emulator used when neither `--bucket` nor `--local-root` is
 * given, and the fast backing store for unit tests and the simulator. Nothing survives a restart.
 *
 * Invariants: it behaves like S3 with conditional writes (keys are arbitrary strings, listing is
 * in ascending UTF-8 byte order, a key may be both an object and a prefix of others), and bytes
 * are copied in and out so that no caller can alias, and so mutate, a stored object.
 *
 * Fault model: none; every operation applies atomically and at once. Wrap it in `faulty.ts` for
 * failures.
 */
import { assert } from "../../core/assert.js";
import { objectDeleteBatchMax, objectListPageMax } from "../../core/limits.js";
import {
  bodyCopy,
  type ByteRange,
  type ObjectBody,
  type ObjectInfo,
  type ObjectListOptions,
  type ObjectListPage,
  type ObjectStore,
} from "./object-store.js";

/** Creates an empty in-memory object store. */
export function createMemoryObjectStore(): ObjectStore {
  const objects = new Map<string, Uint8Array>();

  return {
    async get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
      const bytes = objects.get(key);
      if (bytes === undefined) return undefined;
      if (range === undefined) return bytes.slice();
      assertRange(range);
      const start = Math.min(range.start, bytes.length);
      const end = Math.min(range.end, bytes.length);
      return start < end ? bytes.slice(start, end) : new Uint8Array(0);
    },

    async putIfAbsent(key: string, body: ObjectBody): Promise<"created" | "exists"> {
      if (objects.has(key)) return "exists";
      // A copy of its own: the caller's buffers are the caller's.
      objects.set(key, bodyCopy(body));
      return "created";
    },

    async list(prefix: string, options?: ObjectListOptions): Promise<ObjectListPage> {
      const limit = listLimit(options?.limit);
      const startAfter = options?.startAfter;
      const matches: string[] = [];
      for (const key of objects.keys()) {
        if (!key.startsWith(prefix)) continue;
        if (startAfter !== undefined && compareKeys(key, startAfter) <= 0) continue;
        matches.push(key);
      }
      // Sorting every call is O(n log n) per page; fine for an emulator holding test data.
      matches.sort(compareKeys);
      const objectsPage: ObjectInfo[] = matches.slice(0, limit).map((key) => ({
        key,
        size: objects.get(key)?.length ?? 0,
      }));
      return { objects: objectsPage, isTruncated: matches.length > limit };
    },

    async delete(keys: readonly string[]): Promise<void> {
      assert(keys.length <= objectDeleteBatchMax, "too many keys in one delete");
      for (const key of keys) objects.delete(key);
    },

    async close(): Promise<void> {},
  };
}

/**
 * Byte-wise comparison of the UTF-8 encodings, which is S3's listing order. JS's `<` compares
 * UTF-16 code units, which disagrees for characters above U+FFFF versus U+E000–U+FFFF.
 */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** A negative or fractional range is a caller bug, not a storage condition. */
function assertRange(range: ByteRange): void {
  assert(Number.isSafeInteger(range.start) && range.start >= 0, "range start is invalid");
  assert(Number.isSafeInteger(range.end) && range.end >= 0, "range end is invalid");
}

function listLimit(limit: number | undefined): number {
  if (limit === undefined) return objectListPageMax;
  assert(Number.isSafeInteger(limit) && limit >= 1, "list limit must be a positive integer");
  return Math.min(limit, objectListPageMax);
}
