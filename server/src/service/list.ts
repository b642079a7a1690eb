/**
 * Listing shared by basins and streams (S2-API.md §6.4): byte-wise name order, `prefix`,
 * `startAfter` (strictly greater), `limit` (0 or over 1000 becomes 1000, as lite does), and
 * `hasMore` when at least one more name matches.
 */
import { listLimitMax } from "../core/limits.js";
import { compareBytewise } from "../core/names.js";

export interface ListOptions {
  readonly prefix?: string | undefined;
  readonly startAfter?: string | undefined;
  readonly limit?: number | undefined;
}

export interface ListPage<T> {
  readonly items: T[];
  readonly hasMore: boolean;
}

/** One page of `items` (in any order) by `nameOf`. */
export function listPage<T>(
  items: Iterable<T>,
  nameOf: (item: T) => string,
  options: ListOptions,
): ListPage<T> {
  const prefix = options.prefix ?? "";
  const startAfter = options.startAfter ?? "";
  const limit =
    options.limit === undefined || options.limit <= 0 || options.limit > listLimitMax
      ? listLimitMax
      : options.limit;
  const matching: T[] = [];
  for (const item of items) {
    const name = nameOf(item);
    if (name.startsWith(prefix) && compareBytewise(name, startAfter) > 0) matching.push(item);
  }
  matching.sort((a, b) => compareBytewise(nameOf(a), nameOf(b)));
  return { items: matching.slice(0, limit), hasMore: matching.length > limit };
}
