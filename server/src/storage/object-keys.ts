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
