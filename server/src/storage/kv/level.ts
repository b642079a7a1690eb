/**
 * The production `KvStore`: LevelDB through classic-level, holding the write-ahead cache in one
 * directory. The cache is never the source of truth (object storage is), so the answer to a
 * damaged database is to wipe the directory (`destroyLevelKvStore`) and rebuild.
 *
 * Invariants:
 * - Keys and values are plain `Uint8Array`s both ways. classic-level's `view` encoding hands out
 *   Node `Buffer`s, whose `slice()` shares memory instead of copying; they are re-wrapped (without
 *   copying) so that callers see the same type as from the memory store.
 * - One `write` is one LevelDB `WriteBatch`: atomic, applied in op order.
 * - An iteration reads from LevelDB's implicit snapshot, taken when it starts (its first
 *   `next()`, which `for await` makes at once), and its native iterator is closed when it ends,
 *   throws, or the consumer breaks out. `close()` closes iterators that are still open; their next
 *   step rejects.
 *
 * Ordering: classic-level runs every operation on the libuv thread pool, so writes issued without
 * awaiting the previous one may be applied in any order (measured on a 2-core machine: of 2,000
 * pairs of unawaited single-put batches to one key, 1 to 2% kept the first value; with eight
 * batches per key, 14 to 27% ended on a value other than the last issued). A caller that needs
 * write B to follow write A must await A before issuing B, or put both in one `write`. An
 * iteration's snapshot includes the writes that have resolved; writes still in flight may or may
 * not be in it.
 *
 * Fault model (LevelDB's):
 * - A process crash loses nothing that was written. A machine crash can lose a suffix of the
 *   writes made since the last `sync: true` write; a synced write and everything before it
 *   survive. A batch is never torn. `clear()` is never synced and is not atomic: classic-level
 *   deletes the range in batches of about 16 KiB of keys.
 * - Corruption that LevelDB reports (a bad CURRENT or MANIFEST, a missing table file, a damaged
 *   block found while reading) is thrown as `KvCorruptError`, at open or from the operation that
 *   found it. An open that fails because CURRENT names a missing file is classified the same way.
 * - Corruption that LevelDB does not report: classic-level does not verify block checksums on
 *   reads, so a flipped bit inside a table's data can come back as wrong bytes without an error;
 *   and at open, damaged records in the log are skipped silently (paranoid checks are off), so
 *   recently written entries can vanish. Callers check their own invariants (checksums, dense
 *   sequence numbers) on what they read back, and fall back to object storage.
 * - The directory is locked while open: a second open of the same path, in this or another
 *   process, fails with classic-level's `LEVEL_LOCKED` error, which is not a `KvCorruptError`
 *   (wiping a live database would be wrong).
 */

import { rm } from "node:fs/promises";
import { ClassicLevel } from "classic-level";
import { assert } from "../../core/assert.js";
import type { KvOp, KvRange, KvStore } from "./kv-store.js";

/**
 * The database at `path` is damaged. Its contents cannot be trusted: the caller should close
 * it if open, remove it with `destroyLevelKvStore`, and rebuild the cache from object storage.
 * The message is lowercase with the path last; LevelDB's error is the `cause`.
 */
export class KvCorruptError extends Error {
  override readonly name: string = "KvCorruptError";

  constructor(
    /** The database directory. */
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(`kv store is corrupt. path=\`${path}\``, options);
  }
}

/** Options for {@link openLevelKvStore}. */
export interface LevelKvStoreOptions {
  /** The database directory; created (with its parents) if missing. */
  readonly path: string;
}

const emptyKey = new Uint8Array(0);

/** LevelDB memtable size (default 4 MiB); two can exist at once. Tuned by `make bench`. */
const levelWriteBufferBytes = 64 << 20;
/** LevelDB table file size (default 2 MiB). */
const levelTableFileBytes = 32 << 20;

/** classic-level reads `limit` as a C++ int32: a larger value wraps around. */
const levelLimitMax = 0x7fffffff;

/**
 * A range with a `limit` up to this is listed with one `nextv` call (classic-level's own batch
 * when it iterates row by row is 1,000 rows).
 */
const pageRowsMax = 1000;

/** The first page of an unbounded listing (many stop within a few rows), then `pageRowsMax`. */
const firstPageRows = 64;

type LevelRange = {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  reverse?: boolean;
  limit?: number;
};

function toLevelRange(range: KvRange): LevelRange {
  const { limit } = range;
  assert(
    limit === undefined || limit === Infinity || (Number.isInteger(limit) && limit >= 0),
    "kv range limit is not a non-negative integer",
  );
  // Only the defined fields, and no `limit` beyond int32: classic-level would wrap it (a limit of
  // 2^32 yields nothing), whereas a limit that large cannot bind anyway.
  const out: LevelRange = {};
  if (range.gt !== undefined) out.gt = range.gt;
  if (range.gte !== undefined) out.gte = range.gte;
  if (range.lt !== undefined) out.lt = range.lt;
  if (range.lte !== undefined) out.lte = range.lte;
  if (range.reverse !== undefined) out.reverse = range.reverse;
  if (limit !== undefined && limit <= levelLimitMax) out.limit = limit;
  return out;
}

/** A plain `Uint8Array` over the same memory as `bytes` (which classic-level makes a `Buffer`). */
function toView(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function errorCodeOf(error: unknown): unknown {
  return typeof error === "object" && error !== null && "code" in error ? error.code : undefined;
}

/** The error and its causes, outermost first (abstract-level wraps open failures). */
function errorChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    chain.push(current);
    current = typeof current === "object" && "cause" in current ? current.cause : undefined;
  }
  return chain;
}

function isCorruption(error: unknown): boolean {
  return errorChain(error).some((e) => errorCodeOf(e) === "LEVEL_CORRUPTION");
}

/**
 * At open, LevelDB reports a CURRENT file that names a missing MANIFEST as an I/O error
 * ("No such file or directory"). The directory itself exists (classic-level creates it first),
 * so a missing file means a damaged database.
 */
function isCorruptionAtOpen(error: unknown): boolean {
  return (
    isCorruption(error) ||
    errorChain(error).some(
      (e) =>
        errorCodeOf(e) === "LEVEL_IO_ERROR" &&
        e instanceof Error &&
        e.message.includes("No such file or directory"),
    )
  );
}

/**
 * Opens (creating if missing) the LevelDB database at `path`.
 *
 * @throws KvCorruptError when LevelDB finds the database damaged; the caller wipes it with
 *   `destroyLevelKvStore` and rebuilds. Other failures (for example `LEVEL_LOCKED` when the
 *   directory is already open) are rethrown as classic-level reported them.
 */
export async function openLevelKvStore(options: LevelKvStoreOptions): Promise<KvStore> {
  const { path } = options;
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
    keyEncoding: "view",
    valueEncoding: "view",
  });
  const tuning = {
    // Record bodies are mostly incompressible or already compressed by clients; snappy would
    // spend the write path's CPU for little (make bench: the cache is the write bottleneck).
    compression: false,
    // A larger memtable means fewer, larger level-0 tables and fewer write stalls under load.
    writeBufferSize: levelWriteBufferBytes,
    maxFileSize: levelTableFileBytes,
  };
  try {
    await db.open({ createIfMissing: true, ...tuning });
  } catch (error) {
    if (isCorruptionAtOpen(error)) throw new KvCorruptError(path, { cause: error });
    throw error;
  }

  const rethrow = (error: unknown): never => {
    if (isCorruption(error)) throw new KvCorruptError(path, { cause: error });
    throw error;
  };

  /**
   * Whether clearing `range` should delete the empty key. classic-level 3.0.0's clear deletes in
   * chunks and skips a chunk whose keys total zero bytes, so an empty key alone in its chunk (the
   * only key in the range, `limit: 1`, or the last chunk of a reverse clear) survives; `clear`
   * deletes it separately when this says so. The empty key sorts first, so it is cleared when it
   * is in the bounds, unless `limit` stops short of it: at once when `limit` is 0, and in a
   * reverse clear when the range holds more than `limit` keys (counted here, at most `limit`).
   */
  async function clearsEmptyKey(range: LevelRange): Promise<boolean> {
    const isInBounds =
      (range.gte !== undefined ? range.gte.length === 0 : range.gt === undefined) &&
      (range.lte !== undefined || range.lt === undefined || range.lt.length > 0);
    if (!isInBounds || range.limit === 0) return false;
    if (range.limit === undefined || range.reverse !== true) return true;
    for await (const key of db.keys(range)) if (key.length === 0) return true;
    return false;
  }

  async function* iterate(
    range: LevelRange,
    snapshot?: ReturnType<typeof db.snapshot>,
  ): AsyncGenerator<readonly [Uint8Array, Uint8Array]> {
    try {
      const iterator = db.iterator(snapshot === undefined ? range : { ...range, snapshot });
      try {
        // Breaking out of these loops (the consumer stopped early) closes the native iterator.
        if (range.limit !== undefined && range.limit <= pageRowsMax) {
          // A bounded listing is fetched in one native call: `next()` would make two (one row,
          // then the rest), each a round trip through the thread pool.
          for (const [key, value] of await iterator.nextv(range.limit)) {
            yield [toView(key), toView(value)] as const;
          }
        } else {
          // Pages of rows: iterating with `next()` costs a promise and classic-level's bookkeeping
          // per row (450 ms of 40 s in a profile of compaction's scans). The first page is small,
          // as consumers often stop within a few rows.
          for (let size = firstPageRows; ; size = pageRowsMax) {
            const page = await iterator.nextv(size);
            if (page.length === 0) break;
            for (const [key, value] of page) yield [toView(key), toView(value)] as const;
          }
        }
      } finally {
        await iterator.close();
      }
    } catch (error) {
      rethrow(error);
    }
  }

  return {
    async get(key) {
      try {
        const value = await db.get(key);
        return value === undefined ? undefined : toView(value);
      } catch (error) {
        return rethrow(error);
      }
    },

    async getMany(keys) {
      if (keys.length === 0) return [];
      try {
        const values = await db.getMany([...keys]);
        return values.map((value) => (value === undefined ? undefined : toView(value)));
      } catch (error) {
        return rethrow(error);
      }
    },

    async write(ops: readonly KvOp[], writeOptions) {
      // abstract-level copies the bytes synchronously, so the caller may reuse its buffers as
      // soon as this returns a promise. An empty batch is a no-op and does not sync.
      const batch = ops.map((op) =>
        op.type === "put"
          ? { type: "put" as const, key: op.key, value: op.value }
          : { type: "del" as const, key: op.key },
      );
      try {
        await db.batch(batch, { sync: writeOptions?.sync === true });
      } catch (error) {
        rethrow(error);
      }
    },

    entries(range) {
      const levelRange = toLevelRange(range);
      return { [Symbol.asyncIterator]: () => iterate(levelRange) };
    },

    snapshot() {
      const snapshot = db.snapshot();
      return {
        entries(range) {
          const levelRange = toLevelRange(range);
          return { [Symbol.asyncIterator]: () => iterate(levelRange, snapshot) };
        },
        async close() {
          await snapshot.close();
        },
      };
    },

    async clear(range) {
      const levelRange = toLevelRange(range);
      try {
        const isEmptyKeyCleared = await clearsEmptyKey(levelRange);
        await db.clear(levelRange);
        if (isEmptyKeyCleared) await db.batch([{ type: "del", key: emptyKey }]);
      } catch (error) {
        rethrow(error);
      }
    },

    async close() {
      await db.close();
    },
  };
}

/**
 * Removes the database directory at `path` and everything in it; a missing directory is fine.
 * The database must not be open (in this process, LevelDB would keep its lock on the path until
 * the old handle closes, and a reopen would fail with `LEVEL_LOCKED`).
 */
export async function destroyLevelKvStore(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
