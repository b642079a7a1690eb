/**
 * Object keys in the bucket (docs/design/storage.md "Objects in the bucket"). Ids are 20-digit
 * zero-padded decimals so that lexical order is numeric order.
 */
import { assert } from "../core/assert.js";

export const manifestPrefix = "manifest/";
export const walPrefix = "wal/";
const idDigits = 20;

export function formatObjectId(id: number): string {
  assert(Number.isSafeInteger(id) && id >= 0, `object id out of range: ${id}`);
  return String(id).padStart(idDigits, "0");
}

/** The id in `<prefix><20 digits>`, or undefined for a key of another shape. */
export function parseObjectId(prefix: string, key: string): number | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const digits = key.slice(prefix.length);
  if (digits.length !== idDigits || !/^[0-9]+$/.test(digits)) return undefined;
  const id = Number(digits);
  return Number.isSafeInteger(id) ? id : undefined;
}

export function manifestKey(version: number): string {
  return manifestPrefix + formatObjectId(version);
}

export function walKey(id: number): string {
  return walPrefix + formatObjectId(id);
}

export const chunkPrefix = "chunks/";
export const checkpointPrefix = "checkpoints/";

/** A chunk of one stream's records (docs/design/bottomless.md "Objects in the bucket"). */
export function chunkKey(chunkId: number): string {
  return chunkPrefix + formatObjectId(chunkId);
}

/**
 * Chunk ids carry the writer epoch in their high bits (`epoch × 2³² + n`), so writers never
 * collide and a successor never reuses a crashed writer's ids.
 */
export function chunkIdOf(writerEpoch: number, n: number): number {
  assert(n >= 0 && n < chunkIdsPerEpoch, `chunk counter out of range: ${n}`);
  const id = writerEpoch * chunkIdsPerEpoch + n;
  assert(Number.isSafeInteger(id), `chunk id out of range: epoch ${writerEpoch}`);
  return id;
}

export const chunkIdsPerEpoch = 0x1_0000_0000;

/**
 * A part of checkpoints (bottomless.md "Incremental checkpoints"): the rows of a base or a delta.
 * Part ids are `epoch × 2³² + n` like chunk ids (`chunkIdOf`'s rule): never reused, by anyone.
 */
export const checkpointPartPrefix = `${checkpointPrefix}parts/`;

export function checkpointPartKey(partId: number): string {
  return checkpointPartPrefix + formatObjectId(partId);
}

/** A checkpoint taken at WAL id `walId`; the suffix makes every attempt's key unique. */
export function checkpointKey(walId: number, suffixHex: string): string {
  assert(/^[0-9a-f]{16}$/.test(suffixHex), "checkpoint key suffix is 16 hex digits");
  return `${checkpointPrefix}${formatObjectId(walId)}-${suffixHex}`;
}
