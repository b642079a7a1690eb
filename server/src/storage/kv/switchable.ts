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

/**
 * Keys a change record holds at most (ours; ~150 B each): jobs that keep failing while appends go
 * on would otherwise grow it by a key per append for as long. Past it, the next checkpoint is a
 * base, which a delta of that many rows is close to anyway.
 */
export const changedKeysMax = 200_000;

/** The keys written since the last `take` (bottomless.md "Incremental checkpoints"). */
export interface TakenChanges {
  /** Keys by their one-char-per-byte string. */
  readonly keys: ReadonlyMap<string, Uint8Array>;
  /** False when something changed rows without naming them (a clear, a switch of target). */
  readonly isComplete: boolean;
}

/**
 * Records the keys that writes touch, those `isTracked` accepts: each batch when it is issued
 * and again once it has applied, so that the set taken at a snapshot (synchronously, between two
 * writes) names every key whose value differs from the previous snapshot's, also for a batch in
 * flight across that snapshot.
 */
export class ChangedKeys {
  private keys = new Map<string, Uint8Array>();
  private isComplete = true;

  constructor(
    private readonly isTracked: (key: Uint8Array) => boolean,
    private readonly keysMax = changedKeysMax,
  ) {}

  note(ops: readonly KvOp[]): void {
    // Past the bound the record is dropped: the next checkpoint writes a base instead.
    if (!this.isComplete) return;
    for (const op of ops) {
      if (!this.isTracked(op.key)) continue;
      this.keys.set(keyString(op.key), op.key);
    }
    if (this.keys.size > this.keysMax) {
      this.keys = new Map();
      this.isComplete = false;
    }
  }

  /** Rows changed without their keys: the next take is incomplete. */
  invalidate(): void {
    this.isComplete = false;
  }

  /** The keys recorded since the last take; recording starts afresh (complete). */
  take(): TakenChanges {
    const taken = { keys: this.keys, isComplete: this.isComplete };
    this.keys = new Map();
    this.isComplete = true;
    return taken;
  }

  /** Puts back what a take returned, for a checkpoint that was not committed. */
  restore(taken: TakenChanges): void {
    if (!taken.isComplete || this.keys.size + taken.keys.size > this.keysMax) {
      this.keys = new Map();
      this.isComplete = false;
      return;
    }
    if (!this.isComplete) return;
    for (const [name, key] of taken.keys) this.keys.set(name, key);
  }
}

/** A key as a map key (one char per byte): the change record's and the checkpoint merge's. */
export function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

export class SwitchableKvStore implements KvStore {
  private changes: ChangedKeys | undefined;

  constructor(private current: KvStore) {}

  /** Starts recording the keys that later writes touch, those `isTracked` accepts. */
  recordChanges(isTracked: (key: Uint8Array) => boolean): ChangedKeys {
    this.changes = new ChangedKeys(isTracked);
    return this.changes;
  }

  /** The store operations go to now. */
  get target(): KvStore {
    return this.current;
  }

  /** Sends every later operation to `next`. */
  switchTo(next: KvStore): void {
    this.current = next;
    // The new target was filled outside this store's writes.
    this.changes?.invalidate();
  }

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.current.get(key);
  }

  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.current.getMany(keys);
  }

  write(ops: readonly KvOp[], options?: { readonly sync?: boolean }): Promise<void> {
    const changes = this.changes;
    if (changes === undefined) return this.current.write(ops, options);
    changes.note(ops);
    return this.current.write(ops, options).then(() => changes.note(ops));
  }

  entries(range: KvRange): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
    return this.current.entries(range);
  }

  snapshot(): KvSnapshot {
    return this.current.snapshot();
  }

  clear(range: KvRange): Promise<void> {
    this.changes?.invalidate();
    return this.current.clear(range).then(() => this.changes?.invalidate());
  }

  close(): Promise<void> {
    return this.current.close();
  }
}
