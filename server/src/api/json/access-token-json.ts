/**
 * Access tokens in JSON (S2-API.md §4.4, openapi `AccessTokenInfo`, `AccessTokenScope`,
 * `ResourceSet`, `PermittedOperationGroups`): the issue request parsed into the domain scope, and
 * `AccessTokenInfo` rendered for listings. Shape errors are 400 `bad_json` like every body (an id
 * out of 1..=96 bytes included: S2 checks it while deserializing); scope rules are the service's.
 */
import type { AccessScope, ReadWritePermissions, ResourceSet } from "../../core/access-scope.js";
import { isOperation, type Operation, type OperationLevel } from "../../core/operations.js";
import { type AccessTokenInfo, validateAccessTokenId } from "../../service/access-tokens.js";
import {
  fieldPath,
  jsonFieldError,
  jsonFieldInvalid,
  readArray,
  readBoolean,
  readEnum,
  readNonNull,
  readObject,
  readOptional,
  readRequired,
  readString,
  rfc3339FromMs,
} from "./json-body.js";

/** The issue request (`AccessTokenInfo` as a request body). */
export interface IssueAccessTokenJson {
  readonly id: string;
  readonly scope: AccessScope;
  /** Undefined: the issuer's expiry. */
  readonly expiresAtMs: number | undefined;
  readonly autoPrefixStreams: boolean;
}

const rfc3339Syntax =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 timestamp in epoch ms. `Date.parse` alone is not enough: it rolls an impossible date
 * over (`2026-02-30` is March 2, `24:00` the next day), so every field is range-checked by
 * rebuilding the date from it. A leap second (`:60`) is refused, as `Date` cannot hold it.
 */
function readTimestampMs(value: unknown, field: string): number {
  const text = readString(value, field);
  const match = rfc3339Syntax.exec(text);
  const ms = match === null ? Number.NaN : Date.parse(text);
  if (match === null || !Number.isFinite(ms)) throw jsonFieldError(field, "an RFC 3339 timestamp");
  const [year, month, day, hour, minute, second, , offsetHour, offsetMinute] = match
    .slice(1)
    .map((part) => (part === undefined || part.startsWith(".") ? 0 : Number(part)));
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  const local = new Date(0);
  local.setUTCFullYear(year!, month! - 1, day!);
  local.setUTCHours(hour!, minute!, second!);
  const isRealTime =
    local.getUTCFullYear() === year &&
    local.getUTCMonth() === month! - 1 &&
    local.getUTCDate() === day &&
    local.getUTCHours() === hour &&
    local.getUTCMinutes() === minute &&
    local.getUTCSeconds() === second &&
    offsetHour! <= 23 &&
    offsetMinute! <= 59;
  if (!isRealTime) throw jsonFieldError(field, "an RFC 3339 timestamp");
  return ms;
}

/** An access token id, 1..=96 bytes without NUL. */
export function readAccessTokenId(value: unknown, field: string): string {
  const id = readString(value, field);
  const reason = validateAccessTokenId(id);
  if (reason !== undefined) throw jsonFieldInvalid(field, reason);
  return id;
}

function readResourceSet(value: unknown, field: string): ResourceSet {
  const object = readObject(value, field);
  const exact = readOptional(object, "exact", field, readString);
  const prefix = readOptional(object, "prefix", field, readString);
  if ((exact === undefined) === (prefix === undefined)) {
    throw jsonFieldError(field, "exactly one of `exact` or `prefix`");
  }
  return exact !== undefined ? { exact } : { prefix: prefix ?? "" };
}

function readPermissions(value: unknown, field: string): ReadWritePermissions {
  const object = readObject(value, field);
  return {
    read: readNonNull(object, "read", field, readBoolean) ?? false,
    write: readNonNull(object, "write", field, readBoolean) ?? false,
  };
}

const levels: readonly OperationLevel[] = ["account", "basin", "stream"];

function readOperationGroups(value: unknown, field: string): AccessScope["opGroups"] {
  const object = readObject(value, field);
  const groups = {} as Record<OperationLevel, ReadWritePermissions | null>;
  for (const level of levels) {
    groups[level] = readOptional(object, level, field, readPermissions) ?? null;
  }
  return groups;
}

const isOperationName = (value: unknown): value is Operation =>
  typeof value === "string" && isOperation(value);

function readOperations(value: unknown, field: string): Operation[] {
  const operations = readArray(value, field).map((item, i) =>
    readEnum(item, fieldPath(field, String(i)), isOperationName, "the S2 operation names"),
  );
  return [...new Set(operations)];
}

/** `AccessTokenScope`: absent or null resource sets match nothing. */
export function parseAccessScope(value: unknown, field: string): AccessScope {
  const object = readObject(value, field);
  return {
    basins: readOptional(object, "basins", field, readResourceSet) ?? null,
    streams: readOptional(object, "streams", field, readResourceSet) ?? null,
    accessTokens: readOptional(object, "access_tokens", field, readResourceSet) ?? null,
    opGroups: readOptional(object, "op_groups", field, readOperationGroups) ?? null,
    ops: readOptional(object, "ops", field, readOperations) ?? [],
  };
}

/** The body of `POST /v1/access-tokens`. */
export function parseIssueAccessToken(value: unknown): IssueAccessTokenJson {
  const object = readObject(value, "");
  return {
    id: readRequired(object, "id", "", readAccessTokenId),
    scope: readRequired(object, "scope", "", parseAccessScope),
    expiresAtMs: readOptional(object, "expires_at", "", readTimestampMs),
    autoPrefixStreams: readOptional(object, "auto_prefix_streams", "", readBoolean) ?? false,
  };
}

function renderPermissions(permissions: ReadWritePermissions | null) {
  return permissions === null ? null : { read: permissions.read, write: permissions.write };
}

/** `AccessTokenInfo` as listed: every field present, `null` where unset (as lite renders). */
export function renderAccessTokenInfo(info: AccessTokenInfo) {
  const { scope } = info;
  return {
    id: info.id,
    expires_at: info.expiresAtMs === null ? null : rfc3339FromMs(info.expiresAtMs),
    auto_prefix_streams: info.autoPrefixStreams,
    scope: {
      basins: scope.basins,
      streams: scope.streams,
      access_tokens: scope.accessTokens,
      op_groups:
        scope.opGroups === null
          ? null
          : {
              account: renderPermissions(scope.opGroups.account),
              basin: renderPermissions(scope.opGroups.basin),
              stream: renderPermissions(scope.opGroups.stream),
            },
      ops: [...scope.ops],
    },
  };
}
