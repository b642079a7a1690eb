/**
 * Query-string parameters as S2 lite reads them (axum `Query` over serde_urlencoded; S2-API.md
 * §3.3): every failure is 400 `bad_query`. A parameter given twice is an error (serde's "duplicate
 * field"), unknown parameters are ignored, `+` and percent escapes are decoded by
 * `URLSearchParams` as form decoding does. Integers follow Rust's `u64::from_str` (decimal digits,
 * an optional leading `+`, at most 2^64 - 1), booleans Rust's `bool::from_str` (`true`/`false`).
 */
import { S2Error } from "../../core/errors.js";
import type { ListNameField } from "../../core/names.js";
import type { ListOptions } from "../../service/list.js";

const u64Max = (1n << 64n) - 1n;
const u64Syntax = /^\+?[0-9]+$/;

/** 400 `bad_query` naming the parameter. */
export function badQuery(name: string, reason: string): S2Error {
  return new S2Error("bad_query", `invalid query parameter: ${reason}. name=\`${name}\``);
}

/** The single value of `name`, or `undefined` if absent; given twice is 400 `bad_query`. */
export function queryString(query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw badQuery(name, "duplicate parameter");
  return values[0];
}

/** A u64 parameter, exact. */
export function queryU64BigInt(query: URLSearchParams, name: string): bigint | undefined {
  const text = queryString(query, name);
  if (text === undefined) return undefined;
  if (!u64Syntax.test(text)) throw badQuery(name, "expected an unsigned integer");
  const value = BigInt(text);
  if (value > u64Max) throw badQuery(name, "number too large to fit in target type");
  return value;
}

/**
 * A u64 parameter as a number. Values above 2^53 - 1 saturate to `Number.MAX_SAFE_INTEGER`,
 * which keeps every comparison against safe seq nums, timestamps and limits the same; a caller
 * that needs the exact value uses `queryU64BigInt`.
 */
export function queryU64(query: URLSearchParams, name: string): number | undefined {
  const value = queryU64BigInt(query, name);
  if (value === undefined) return undefined;
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

/** A boolean parameter: exactly `true` or `false`. */
export function queryBool(query: URLSearchParams, name: string): boolean | undefined {
  const text = queryString(query, name);
  if (text === undefined) return undefined;
  if (text === "true") return true;
  if (text === "false") return false;
  throw badQuery(name, "expected `true` or `false`");
}

/**
 * The `prefix`, `start_after` and `limit` of a listing (S2-API.md §6.4), with `validate` being
 * the name-prefix validator of the listed resource (`names.ts`). The limit is passed on as given
 * (0 or over 1000 becomes 1000 in the service, as lite does).
 */
export function listQueryOf(
  query: URLSearchParams,
  validate: (value: string, field: ListNameField) => string | undefined,
): ListOptions {
  const prefix = queryString(query, "prefix");
  const startAfter = queryString(query, "start_after");
  for (const [name, value] of [
    ["prefix", prefix],
    ["start_after", startAfter],
  ] as const) {
    if (value === undefined) continue;
    const reason = validate(value, name);
    if (reason !== undefined) throw badQuery(name, reason);
  }
  return { prefix, startAfter, limit: queryU64(query, "limit") };
}
