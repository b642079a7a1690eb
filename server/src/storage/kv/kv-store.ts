/**
 * The key-value seam behind the write-ahead cache. LevelDB (classic-level) in production; a
 * memory implementation for tests and the simulator, since a native LevelDB cannot be made
 * deterministic. The cache is never the source of truth: whatever it holds can be rebuilt from
 * object storage, so a failed or corrupt KV store is handled by wiping and rebuilding it.
 *
 * Keys and values are bytes compared byte-wise (lexicographically, unsigned).
 */

export type KvOp =
  | { readonly type: "put"; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: "del"; readonly key: Uint8Array };

/** A key range; bounds are optional and combine as in LevelDB. */
export interface KvRange {
  readonly gt?: Uint8Array;
  readonly gte?: Uint8Array;
  readonly lt?: Uint8Array;
  readonly lte?: Uint8Array;
  readonly reverse?: boolean;
  /** At most this many entries. */
  readonly limit?: number;
}

/** A read-only view of a store at one moment (`KvStore.snapshot`). */
export interface KvSnapshot {
  /** Entries in `range` as they were when the snapshot was taken, in key order. */
  entries(range: KvRange): AsyncIterable<readonly [Uint8Array, Uint8Array]>;
  close(): Promise<void>;
}

export interface KvStore {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /**
   * The values of `keys`, in their order, in one call: a caller holding the commit chain reads
   * many reference counts at once instead of paying a round trip each.
   */
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /** Applies all ops atomically, in order. `sync` waits for the OS to persist them. */
  write(ops: readonly KvOp[], options?: { readonly sync?: boolean }): Promise<void>;
  /** Entries in `range`, in key order (reverse if asked). */
  entries(range: KvRange): AsyncIterable<readonly [Uint8Array, Uint8Array]>;
  /**
   * A consistent view of the store as it is now, taken synchronously: whatever is written later
   * is invisible to its `entries`. Lets a caller that must see the state between two writes (the
   * checkpoint's snapshot, on the commit chain) take the view there and read it afterwards.
   * Close it when done (it pins old data).
   */
  snapshot(): KvSnapshot;
  /** Deletes every key in `range`. */
  clear(range: KvRange): Promise<void>;
  close(): Promise<void>;
}
