/**
 * A `KvStore` that forwards to a target that can be replaced: the engine's cache index moves
 * from LevelDB to memory when the disk fails and back when it recovers
 * (docs/design/degraded-cache.md). Every user of the cache (segment cache, compaction,
 * checkpoint, recovery) holds this switch, never the target, so a switch reaches all of them.
 *
 * Invariant: the caller switches only between two writes (on the storage's commit chain, which
 * serializes every cache write), so no write is split between two targets. Reads already started
 * (an iteration, a snapshot) finish on the target they started on; the old target is not closed
 * by the switch.
 */
import type { KvOp, KvRange, KvSnapshot, KvStore } from "./kv-store.js";

export class SwitchableKvStore implements KvStore {
  constructor(private current: KvStore) {}

  /** The store operations go to now. */
  get target(): KvStore {
    return this.current;
  }

  /** Sends every later operation to `next`. */
  switchTo(next: KvStore): void {
    this.current = next;
  }

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.current.get(key);
  }

  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.current.getMany(keys);
  }

  write(ops: readonly KvOp[], options?: { readonly sync?: boolean }): Promise<void> {
    return this.current.write(ops, options);
  }

  entries(range: KvRange): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
    return this.current.entries(range);
  }

  snapshot(): KvSnapshot {
    return this.current.snapshot();
  }

  clear(range: KvRange): Promise<void> {
    return this.current.clear(range);
  }

  close(): Promise<void> {
    return this.current.close();
  }
}
