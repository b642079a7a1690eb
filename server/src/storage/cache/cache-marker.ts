/**
 * The cache marker: the LevelDB row that says which WAL segment the cache holds entirely, so
 * recovery knows where to resume and whether the cache belongs to this bucket's history
 * (docs/design/storage.md "Recovery", docs/design/bottomless.md "Recovery").
 */
import { cacheMarkerKey, decodeJsonValue, encodeJsonValue } from "../kv/keys.js";
import type { KvOp, KvStore } from "../kv/kv-store.js";

/** The cache marker: the last WAL segment the cache holds entirely. */
export interface CacheMarker {
  readonly walId: number;
  readonly writeId: string;
  readonly writerEpoch: number;
  /**
   * One past the highest stream id the WAL ever assigned, removed streams included: the cache no
   * longer holds removed streams, and ids must never be reused.
   */
  readonly nextStreamId: number;
  /** The cache layout (`cacheLayout`); a cache of another layout is rebuilt. */
  readonly layout: number;
}

/**
 * The cache layout version: 2 = segment files indexed per records entry (1, unnamed in markers,
 * staged every record in LevelDB).
 */
export const cacheLayout = 2;

export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** The cache ops that record `segment` as the last one the cache holds. */
export function cacheMarkerOp(marker: Omit<CacheMarker, "layout">): KvOp {
  const value: CacheMarker = { ...marker, layout: cacheLayout };
  return { type: "put", key: cacheMarkerKey, value: encodeJsonValue(value) };
}

export async function readMarker(kv: KvStore): Promise<CacheMarker | undefined> {
  const bytes = await kv.get(cacheMarkerKey);
  if (bytes === undefined) return undefined;
  let value: Partial<CacheMarker> | null;
  try {
    value = decodeJsonValue(bytes) as Partial<CacheMarker> | null;
  } catch {
    return undefined;
  }
  if (
    value === null ||
    !Number.isSafeInteger(value.walId) ||
    typeof value.writeId !== "string" ||
    !Number.isSafeInteger(value.writerEpoch) ||
    !Number.isSafeInteger(value.nextStreamId)
  ) {
    return undefined;
  }
  // A marker without a layout is from layout 1 (records staged in LevelDB).
  return { ...(value as CacheMarker), layout: value.layout ?? 1 };
}
