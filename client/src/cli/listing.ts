/**
 * What the listings (list-basins, list-streams, ls) share: their flags, `--limit`, the page size
 * they ask for, and how they print timestamps.
 */
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { type ParsedArgs, stringFlag, UsageError } from "./args.js";

/** ISO 8601 text of a timestamp, or `-`. */
export function isoOf(timestamp: Timestamp | undefined): string {
  return timestamp === undefined ? "-" : timestampDate(timestamp).toISOString();
}

/** The largest page a listing asks for (S2's list limit). */
export const listPageSizeMax = 1000;

/** A list's `--limit`: a positive count. */
export function limitOf(args: ParsedArgs): number | undefined {
  const text = stringFlag(args, "limit");
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new UsageError("--limit must be a positive integer");
  }
  return Number(text);
}

/** Flags shared by the listings. */
export const listFlags = {
  prefix: { type: "string" },
  "start-after": { type: "string" },
  limit: { type: "string", short: "n" },
} as const;
