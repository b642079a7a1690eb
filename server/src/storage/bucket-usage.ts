/**
 * What the bucket holds, by kind, kept exact between GC listings (docs/design/bottomless.md
 * "Which objects a pass looks at"): the storage's object store is wrapped (`track`) so that each
 * object it creates is recorded with its size and each key it deletes is forgotten; a GC listing
 * replaces a kind's record with what it found. GC passes that do not list learn the size of what
 * they delete here, and the bucket gauges read the totals.
 *
 * Invariants:
 * - `objects` and `bytes` of a kind are the count and sum of its recorded sizes.
 * - A listing replaces the record of its kind, except objects created while it ran (the listing
 *   may have missed them; only GC deletes, and never while it lists).
 *
 * Fault model: a create whose answer was lost, and objects other writers create, are not
 * recorded until the next listing; a create that failed may still have applied, or apply later
 * (a timed-out request the store goes on with): its key is kept as uncertain for
 * `uncertainKeepMs`, and GC passes that do not list delete it when it is garbage; a delete that
 * failed forgets nothing (it may have applied in part: the next pass deletes those keys again,
 * and the next listing settles the record).
 * Memory: one entry per object of the bucket (ids as numbers for `wal/` and `chunks/`).
 */
import {
  checkpointPrefix,
  chunkPrefix,
  manifestPrefix,
  parseObjectId,
  walPrefix,
} from "./object-keys.js";
import { bodyBytes, type ObjectStore } from "./object-store/object-store.js";
import { type Clock, systemClock } from "../core/clock.js";

/**
 * How long a key whose create failed stays a GC candidate: past any request the store could
 * still be applying, and as long as the interval between listings, which find it afterwards.
 */
export const uncertainKeepMs = 10 * 60_000;

/** Uncertain keys kept at most (a bound while creates keep failing; the oldest go first). */
const uncertainKeysMax = 10_000;

export type BucketKind = "wal" | "chunks" | "checkpoints" | "manifests";

/** Objects and bytes of one kind. */
export interface BucketKindUsage {
  readonly objects: number;
  readonly bytes: number;
}

const prefixes: Record<BucketKind, string> = {
  wal: walPrefix,
  chunks: chunkPrefix,
  checkpoints: checkpointPrefix,
  manifests: manifestPrefix,
};

export const bucketKinds: readonly BucketKind[] = ["wal", "chunks", "checkpoints", "manifests"];

/** The kind of a key (by its prefix), or undefined for a key of none. */
export function bucketKindOf(key: string): BucketKind | undefined {
  return bucketKinds.find((kind) => key.startsWith(prefixes[kind]));
}

/** The prefix the objects of a kind are listed by. */
export function bucketPrefixOf(kind: BucketKind): string {
  return prefixes[kind];
}

interface KindRecord {
  /** Size by id (`wal/`, `chunks/`) or by key (the others). */
  readonly sizes: Map<number | string, number>;
  bytes: number;
  /** Set while a listing of this kind runs: what was created meanwhile. */
  createdDuringListing: Set<number | string> | undefined;
}

export class BucketUsage {
  /** Keys whose create failed (it may have applied, or may yet), with when, oldest first. */
  private readonly uncertain = new Map<string, number>();

  constructor(private readonly clock: Clock = systemClock) {}

  private readonly kinds = new Map<BucketKind, KindRecord>(
    bucketKinds.map((kind) => [
      kind,
      { sizes: new Map(), bytes: 0, createdDuringListing: undefined },
    ]),
  );

  /** The store, recording what it creates and forgetting what it deletes. */
  track(store: ObjectStore): ObjectStore {
    return {
      get: (key, range) => store.get(key, range),
      putIfAbsent: async (key, bytes) => {
        let outcome: "created" | "exists";
        try {
          outcome = await store.putIfAbsent(key, bytes);
        } catch (error) {
          this.noteUncertain(key);
          throw error;
        }
        // "exists" is someone's object (or ours with a lost answer): the next listing says.
        if (outcome === "created") this.noteCreated(key, bodyBytes(bytes));
        return outcome;
      },
      list: (prefix, options) => store.list(prefix, options),
      delete: async (keys) => {
        await store.delete(keys);
        for (const key of keys) this.noteDeleted(key);
      },
      close: () => store.close(),
    };
  }

  /** Keys whose create failed within `uncertainKeepMs`: they may exist unrecorded. */
  uncertainKeys(): string[] {
    const horizonMs = this.clock.monotonicMs() - uncertainKeepMs;
    for (const [key, atMs] of this.uncertain) {
      if (atMs >= horizonMs) break;
      this.uncertain.delete(key);
    }
    return [...this.uncertain.keys()];
  }

  private noteUncertain(key: string): void {
    this.uncertain.delete(key);
    this.uncertain.set(key, this.clock.monotonicMs());
    if (this.uncertain.size > uncertainKeysMax) {
      this.uncertain.delete(this.uncertain.keys().next().value!);
    }
  }

  /** The recorded size of an object; undefined when it is not recorded. */
  sizeOf(key: string): number | undefined {
    const kind = bucketKindOf(key);
    if (kind === undefined) return undefined;
    const entry = entryOf(kind, key);
    return entry === undefined ? undefined : this.record(kind).sizes.get(entry);
  }

  usage(kind: BucketKind): BucketKindUsage {
    const record = this.record(kind);
    return { objects: record.sizes.size, bytes: record.bytes };
  }

  /** Starts a listing of `kind`: creates from now on survive `finishListing`. */
  startListing(kind: BucketKind): void {
    this.record(kind).createdDuringListing = new Set();
  }

  /** Replaces the record of `kind` with a listing started by `startListing`. */
  finishListing(kind: BucketKind, objects: readonly { key: string; size: number }[]): void {
    const record = this.record(kind);
    const created = record.createdDuringListing;
    record.createdDuringListing = undefined;
    const kept = new Map<number | string, number>();
    for (const entry of created ?? []) {
      const size = record.sizes.get(entry);
      if (size !== undefined) kept.set(entry, size);
    }
    record.sizes.clear();
    record.bytes = 0;
    for (const object of objects) {
      const entry = entryOf(kind, object.key);
      if (entry !== undefined) this.set(record, entry, object.size);
    }
    for (const [entry, size] of kept) this.set(record, entry, size);
  }

  /** Forgets a listing that failed: the record stays as it was. */
  abandonListing(kind: BucketKind): void {
    this.record(kind).createdDuringListing = undefined;
  }

  private noteCreated(key: string, size: number): void {
    const kind = bucketKindOf(key);
    if (kind === undefined) return;
    const entry = entryOf(kind, key);
    if (entry === undefined) return;
    const record = this.record(kind);
    this.set(record, entry, size);
    record.createdDuringListing?.add(entry);
  }

  private noteDeleted(key: string): void {
    const kind = bucketKindOf(key);
    if (kind === undefined) return;
    const entry = entryOf(kind, key);
    if (entry === undefined) return;
    const record = this.record(kind);
    const size = record.sizes.get(entry);
    if (size === undefined) return;
    record.sizes.delete(entry);
    record.bytes -= size;
  }

  private set(record: KindRecord, entry: number | string, size: number): void {
    record.bytes += size - (record.sizes.get(entry) ?? 0);
    record.sizes.set(entry, size);
  }

  private record(kind: BucketKind): KindRecord {
    return this.kinds.get(kind)!;
  }
}

/** How a key is recorded: its id for `wal/` and `chunks/`, the key itself otherwise. */
function entryOf(kind: BucketKind, key: string): number | string | undefined {
  if (kind === "wal" || kind === "chunks") return parseObjectId(prefixes[kind], key);
  return key;
}
