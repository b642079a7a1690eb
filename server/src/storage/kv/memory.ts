/**
 * An in-memory `KvStore` for unit tests and the simulator, where a native LevelDB cannot be made
 * deterministic. It follows the LevelDB semantics that `level.ts` exposes, so that one
 * conformance suite (test/conformance/kv-store.ts) passes against both.
 *
 * Invariants:
 * - Keys are kept in a sorted array, ordered byte-wise (unsigned, a shorter prefix first), with no
 *   duplicates; `values[i]` belongs to `keys[i]`.
 * - The store owns its bytes: keys and values are copied on the way in and out, so a caller that
 *   reuses a buffer cannot change stored data.
 * - A write applies all its ops, in order, before `write()` returns: writes take effect in
 *   the order they are issued (LevelDB may reorder writes that are issued without awaiting; this
 *   store never does, so it cannot reproduce that hazard).
 * - An iteration sees a snapshot taken when it starts (its first `next()`, which `for await`
 *   makes at once), like LevelDB's implicit iterator snapshot. Snapshots are copy-on-write: the
 *   arrays an iterator holds are never mutated; the next write copies them first.
 *
 * Fault model: `crash()` simulates a machine crash followed by a restart. Writes made with
 * `sync: true` survive, and so does everything written before them; of the writes since the last
 * synced one, only a prefix (by default none) survives, as in LevelDB, whose log loses its
 * unwritten tail. A batch is never torn (LevelDB checksums each log record). `clear()` is never synced (as in
 * classic-level) and counts as a single unsynced write here, whereas classic-level splits a large
 * clear into several batches that a crash could separate.
 */

import { assert } from "../../core/assert.js";
import type { KvOp, KvRange, KvStore } from "./kv-store.js";

/** A memory `KvStore` that can also simulate a machine crash (see the module header). */
export interface MemoryKvStore extends KvStore {
  /**
   * Simulates a machine crash and restart: reverts the writes (including clears) made since the
   * last `sync: true` write, except the first `keepUnsyncedWrites` of them, and leaves the store
   * open as a freshly reopened database, even if it had been closed. A process crash without a
   * machine crash loses nothing: pass `keepUnsyncedWrites: Infinity`. Iterations started before
   * the crash reject on their next step. Whatever survives counts as synced afterwards (LevelDB
   * rewrites its recovered log into a table at open).
   */
  crash(options?: { readonly keepUnsyncedWrites?: number }): void;
  /** How many writes (and clears) a crash could lose now. */
  readonly unsyncedWriteCount: number;
}

interface State {
  keys: Uint8Array[];
  values: Uint8Array[];
  /** Set once an iterator or the durable image holds these arrays: the next write copies them. */
  isShared: boolean;
}

type UnsyncedWrite =
  | { readonly type: "ops"; readonly ops: readonly KvOp[] }
  | { readonly type: "clear"; readonly range: KvRange };

/** Byte-wise comparison (unsigned lexicographic; a proper prefix sorts first). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const diff = a[i]! - b[i]!;
    if (diff !== 0) return diff;
  }
  return a.length - b.length;
}

/** The first index whose key is `>= key` (or `> key` when `isStrict`). */
function lowerBound(keys: readonly Uint8Array[], key: Uint8Array, isStrict: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const cmp = compareBytes(keys[mid]!, key);
    if (cmp < 0 || (isStrict && cmp === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function assertRange(range: KvRange): void {
  const { limit } = range;
  assert(
    limit === undefined || limit === Infinity || (Number.isInteger(limit) && limit >= 0),
    "kv range limit is not a non-negative integer",
  );
}

/** A copy of `range` whose bounds the caller can no longer change (a clear is replayed later). */
function copyRange(range: KvRange): KvRange {
  const copied: { -readonly [K in keyof KvRange]: KvRange[K] } = {};
  if (range.gt !== undefined) copied.gt = range.gt.slice();
  if (range.gte !== undefined) copied.gte = range.gte.slice();
  if (range.lt !== undefined) copied.lt = range.lt.slice();
  if (range.lte !== undefined) copied.lte = range.lte.slice();
  if (range.reverse !== undefined) copied.reverse = range.reverse;
  if (range.limit !== undefined) copied.limit = range.limit;
  return copied;
}

/**
 * The indexes `[start, end)` of the keys in `range`, after `limit`. As in
 * classic-level, `gte` takes precedence over `gt` and `lte` over `lt` when both are given, and
 * `limit` counts from the end that iteration starts at (the high end when `reverse`).
 */
function selectRange(
  keys: readonly Uint8Array[],
  range: KvRange,
): { readonly start: number; readonly end: number } {
  assertRange(range);
  let start = 0;
  if (range.gte !== undefined) start = lowerBound(keys, range.gte, false);
  else if (range.gt !== undefined) start = lowerBound(keys, range.gt, true);
  let end = keys.length;
  if (range.lte !== undefined) end = lowerBound(keys, range.lte, true);
  else if (range.lt !== undefined) end = lowerBound(keys, range.lt, false);
  if (end <= start) return { start: 0, end: 0 };
  const limit = range.limit ?? Infinity;
  if (end - start > limit) {
    if (range.reverse === true) start = end - limit;
    else end = start + limit;
  }
  return { start, end };
}

/**
 * A fresh, empty memory store. Each call makes an independent store.
 *
 * @returns A `KvStore` with `crash()` for simulating machine crashes.
 */
export function createMemoryKvStore(): MemoryKvStore {
  let current: State = { keys: [], values: [], isShared: true };
  /** The image a machine crash falls back to: everything up to the last synced write. */
  let durable: State = current;
  let unsynced: UnsyncedWrite[] = [];
  let isClosed = false;
  /** Bumped by `close()` and `crash()`: iterations from an older epoch are dead. */
  let epoch = 0;

  const mutable = (): State => {
    if (current.isShared) {
      current = { keys: current.keys.slice(), values: current.values.slice(), isShared: false };
    }
    return current;
  };

  const applyOps = (ops: readonly KvOp[]): void => {
    const state = mutable();
    for (const op of ops) {
      const index = lowerBound(state.keys, op.key, false);
      const isPresent = index < state.keys.length && compareBytes(state.keys[index]!, op.key) === 0;
      if (op.type === "put") {
        if (isPresent) {
          state.values[index] = op.value;
        } else {
          state.keys.splice(index, 0, op.key);
          state.values.splice(index, 0, op.value);
        }
      } else if (isPresent) {
        state.keys.splice(index, 1);
        state.values.splice(index, 1);
      }
    }
  };

  const applyClear = (range: KvRange): void => {
    const { start, end } = selectRange(current.keys, range);
    if (start === end) return;
    const state = mutable();
    state.keys.splice(start, end - start);
    state.values.splice(start, end - start);
  };

  const markSynced = (): void => {
    current.isShared = true;
    durable = current;
    unsynced = [];
  };

  const checkOpen = (): void => {
    if (isClosed) throw new Error("kv store is closed");
  };

  /** Pins the current state: writes from now on copy it first (`mutable`). */
  const pin = (): State => {
    current.isShared = true;
    return current;
  };

  async function* iterate(
    range: KvRange,
    pinned?: { readonly state: State; readonly epoch: number },
  ): AsyncGenerator<readonly [Uint8Array, Uint8Array]> {
    checkOpen();
    const snapshot = pinned?.state ?? pin();
    const startEpoch = pinned?.epoch ?? epoch;
    if (epoch !== startEpoch) throw new Error("kv snapshot is closed: the store was closed");
    const { start, end } = selectRange(snapshot.keys, range);
    const isReverse = range.reverse === true;
    for (let n = 0; n < end - start; n++) {
      const index = isReverse ? end - 1 - n : start + n;
      const entry = [snapshot.keys[index]!.slice(), snapshot.values[index]!.slice()] as const;
      // Yield a turn to the event loop, as a native iterator would, so that concurrent writes
      // interleave with iteration in tests.
      await Promise.resolve();
      if (epoch !== startEpoch) throw new Error("kv iterator is closed: the store was closed");
      yield entry;
    }
  }

  return {
    async get(key) {
      checkOpen();
      const { keys, values } = current;
      const index = lowerBound(keys, key, false);
      if (index === keys.length || compareBytes(keys[index]!, key) !== 0) return undefined;
      return values[index]!.slice();
    },

    async getMany(keys) {
      checkOpen();
      const { keys: stored, values } = current;
      return keys.map((key) => {
        const index = lowerBound(stored, key, false);
        if (index === stored.length || compareBytes(stored[index]!, key) !== 0) return undefined;
        return values[index]!.slice();
      });
    },

    async write(ops, options) {
      checkOpen();
      // As in abstract-level, an empty batch is a no-op: it does not sync earlier writes.
      if (ops.length === 0) return;
      const copied: KvOp[] = ops.map((op) =>
        op.type === "put"
          ? { type: "put", key: op.key.slice(), value: op.value.slice() }
          : { type: "del", key: op.key.slice() },
      );
      applyOps(copied);
      if (options?.sync === true) markSynced();
      else unsynced.push({ type: "ops", ops: copied });
    },

    entries(range) {
      return { [Symbol.asyncIterator]: () => iterate(range) };
    },

    async clear(range) {
      checkOpen();
      assertRange(range);
      const copied = copyRange(range);
      applyClear(copied);
      unsynced.push({ type: "clear", range: copied });
    },

    snapshot() {
      checkOpen();
      const pinned = { state: pin(), epoch };
      let isOpen = true;
      return {
        entries(range) {
          if (!isOpen) throw new Error("kv snapshot is closed");
          return { [Symbol.asyncIterator]: () => iterate(range, pinned) };
        },
        async close() {
          isOpen = false;
        },
      };
    },

    async close() {
      isClosed = true;
      epoch++;
    },

    crash(options) {
      const kept = options?.keepUnsyncedWrites ?? 0;
      assert(kept >= 0, "keepUnsyncedWrites is negative");
      const survivors = unsynced.slice(0, kept);
      current = durable;
      for (const write of survivors) {
        if (write.type === "ops") applyOps(write.ops);
        else applyClear(write.range);
      }
      markSynced();
      isClosed = false;
      epoch++;
    },

    get unsyncedWriteCount() {
      return unsynced.length;
    },
  };
}
