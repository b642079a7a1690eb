/**
 * The object-store seam. Object storage is the source of truth: every durable byte lives in an
 * object written once with `putIfAbsent` and never modified. A conditional-write conflict is a
 * return value ("exists"), not an exception; any thrown error means the outcome is unknown (the
 * write may or may not have applied) and the caller resolves it by reading the key back.
 *
 * Implementations: memory.ts, local-fs.ts, s3.ts; faulty.ts wraps any of them with injected
 * faults. test/conformance/object-store.ts holds the one suite all of them pass.
 */
import { joinBytes } from "../../core/bytes.js";

/**
 * An object's bytes for `putIfAbsent`: one buffer, or parts written back to back (a segment's
 * header and its entries' payloads, as views of the record batches they were encoded into, so
 * that the largest object the write path makes is never copied whole; storage.md "Segment
 * format"). Parts are immutable while the put runs, late attempts included.
 */
export type ObjectBody = Uint8Array | readonly Uint8Array[];

/** The byte length of `body`. */
export function bodyBytes(body: ObjectBody): number {
  if (body instanceof Uint8Array) return body.length;
  let bytes = 0;
  for (const part of body) bytes += part.length;
  return bytes;
}

/** `body` as one buffer (parts copied into a new one; one buffer as it is). */
export function bodyAsBuffer(body: ObjectBody): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (body.length === 1) return body[0]!;
  return bodyCopy(body);
}

/**
 * A copy of `body` in a new plain `Uint8Array` (not a Node `Buffer`, whose `slice` is a view:
 * stores that keep bytes hand out copies made with `slice`).
 */
export function bodyCopy(body: ObjectBody): Uint8Array {
  // `new Uint8Array(view)` copies whatever the view is; a Buffer's `slice` would not.
  return body instanceof Uint8Array ? new Uint8Array(body) : joinBytes(body);
}

/** A byte range: `start` inclusive, `end` exclusive. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** One listed object. */
export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
}

/** One page of a listing, in ascending byte-wise key order. */
export interface ObjectListPage {
  readonly objects: readonly ObjectInfo[];
  /** True when more keys match after the last one returned. */
  readonly isTruncated: boolean;
}

export interface ObjectListOptions {
  /** Only keys strictly greater than this. */
  readonly startAfter?: string | undefined;
  /** At most this many keys (capped at `objectListPageMax`). */
  readonly limit?: number | undefined;
}

export interface ObjectStore {
  /**
   * The object's bytes, or the bytes in `range` (clipped to the object's size; empty when the
   * range starts at or past the end). `undefined` when the key does not exist.
   */
  get(key: string, range?: ByteRange): Promise<Uint8Array | undefined>;
  /** Creates the object unless the key exists. Never overwrites. */
  putIfAbsent(key: string, body: ObjectBody): Promise<"created" | "exists">;
  /** One page of keys starting with `prefix`. */
  list(prefix: string, options?: ObjectListOptions): Promise<ObjectListPage>;
  /**
   * Deletes the keys (at most `objectDeleteBatchMax`, in one request where the store has a batch
   * call); deleting a missing key succeeds. A throw means any subset may have been deleted.
   */
  delete(keys: readonly string[]): Promise<void>;
  /** Releases connections and handles. */
  close(): Promise<void>;
}

/** Every key starting with `prefix` with `startAfter` applied, across pages. */
export async function listAll(
  store: ObjectStore,
  prefix: string,
  startAfter?: string,
): Promise<ObjectInfo[]> {
  const all: ObjectInfo[] = [];
  let after = startAfter;
  for (;;) {
    const page = await store.list(prefix, { startAfter: after });
    all.push(...page.objects);
    const last = page.objects.at(-1);
    if (!page.isTruncated || last === undefined) return all;
    after = last.key;
  }
}
