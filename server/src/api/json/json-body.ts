/**
 * JSON request bodies and typed reading of their fields, with S2 lite's error split (S2-API.md
 * §3.3, §11.27): anything that goes wrong while *extracting* a body (missing or non-JSON
 * `Content-Type`, too large, invalid UTF-8, syntax, a field of the wrong type, a field-level rule
 * that serde checks while deserializing) is 400 `bad_json`; semantic validation that runs after
 * parsing is the caller's, as 422 `invalid`. Unknown fields are ignored, as serde does.
 *
 * The field readers mirror serde's shapes: `readOptional` is `Option<T>` (absent or `null` → not
 * set), `readPatch` is S2's `Maybe<Option<T>>` (absent → keep, `null` → reset, value → set), and
 * `readNonNull` is `#[serde(default)] T` / `Maybe<T>` (absent → not set, `null` → 400).
 *
 * Numbers: bodies are parsed with `JSON.parse`, so integers above 2^53 arrive rounded. `readU64`
 * accepts any non-negative integer and leaves the safe-range check to the caller's validation
 * (the domain validators in `core/config.ts` answer 422), `readSafeU64` does that check itself.
 * Deviation from lite: a float literal with an integral value (`5.0`, `5e0`) is accepted as an
 * integer, where serde rejects it (400).
 */
import { S2Error } from "../../core/errors.js";
import { readBody } from "../http/body.js";
import { type ApiRequest, mediaTypeOf } from "../http/request-context.js";

/** A parsed JSON object, read through the helpers below. */
export type JsonObject = { readonly [key: string]: unknown };

/** serde_json's nesting limit: deeper documents are rejected (400), never overflow our stack. */
export const jsonDepthMax = 128;

/** Axum's message for a missing or non-JSON `Content-Type` (lite passes it through). */
const missingJsonContentTypeMessage = "Expected request with `Content-Type: application/json`";

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether a media type (lowercased, no parameters) is JSON: `application/json` or `application/*+json`. */
export function isJsonMediaType(mediaType: string | undefined): boolean {
  if (mediaType === undefined) return false;
  const slash = mediaType.indexOf("/");
  if (slash === -1 || mediaType.slice(0, slash) !== "application") return false;
  const subtype = mediaType.slice(slash + 1);
  return subtype === "json" || (subtype.endsWith("+json") && subtype.length > "+json".length);
}

/** Whether the request's `Content-Type` is JSON (S2-API.md §3.1). */
export function hasJsonContentType(request: ApiRequest): boolean {
  return isJsonMediaType(mediaTypeOf(contentTypeOf(request)));
}

function contentTypeOf(request: ApiRequest): string | undefined {
  const value = request.headers["content-type"];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Reads a required JSON body (lite's `Json<T>`: POST and PATCH bodies, JSON appends). A missing or
 * non-JSON `Content-Type` is 400 `bad_json`, and so is a body over `bytesMax`.
 */
export async function readJsonBody(request: ApiRequest, bytesMax?: number): Promise<unknown> {
  if (!hasJsonContentType(request)) throw new S2Error("bad_json", missingJsonContentTypeMessage);
  return parseJsonBytes(await readBody(request, "bad_json", bytesMax));
}

/**
 * Reads an optional JSON body (lite's `JsonOpt<T>`, the two ensure routes; S2-API.md §11.31):
 * `undefined` when the request has no `Content-Type` (the body is not read) or its body is empty;
 * a `Content-Type` that is present but not JSON is 400 `bad_json`; otherwise the parsed body.
 */
export async function readOptionalJsonBody(
  request: ApiRequest,
  bytesMax?: number,
): Promise<unknown> {
  if (contentTypeOf(request) === undefined) return undefined;
  if (!hasJsonContentType(request)) throw new S2Error("bad_json", missingJsonContentTypeMessage);
  const bytes = await readBody(request, "bad_json", bytesMax);
  if (bytes.length === 0) return undefined;
  return parseJsonBytes(bytes);
}

/**
 * Parses a JSON document from UTF-8 bytes as serde_json would accept it: valid UTF-8, no byte
 * order mark, no lone surrogate escapes (`"\ud800"`), at most `jsonDepthMax` levels of nesting.
 * Any failure is 400 `bad_json`.
 */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch (error) {
    throw new S2Error("bad_json", "invalid json body: not valid UTF-8", { cause: error });
  }
  return parseJsonText(text);
}

/** `parseJsonBytes` for a string (already decoded). */
export function parseJsonText(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new S2Error("bad_json", `invalid json body: ${reason}`, { cause: error });
  }
  // Escapes are the only way to a lone surrogate (the decoder rejects encoded ones).
  checkJsonValue(value, 0, text.includes("\\u"));
  return value;
}

const loneSurrogate = /\p{Surrogate}/u;

function checkJsonValue(value: unknown, depth: number, mayHaveSurrogates: boolean): void {
  if (typeof value === "string") {
    if (mayHaveSurrogates && loneSurrogate.test(value)) {
      throw new S2Error("bad_json", "invalid json body: lone surrogate in string");
    }
    return;
  }
  if (typeof value !== "object" || value === null) return;
  if (depth >= jsonDepthMax) {
    throw new S2Error(
      "bad_json",
      `invalid json body: nested too deeply. depth_max=\`${jsonDepthMax}\``,
    );
  }
  if (Array.isArray(value)) {
    for (const item of value) checkJsonValue(item, depth + 1, mayHaveSurrogates);
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (mayHaveSurrogates && loneSurrogate.test(key)) {
      throw new S2Error("bad_json", "invalid json body: lone surrogate in object key");
    }
    checkJsonValue(item, depth + 1, mayHaveSurrogates);
  }
}

// Field reading.

/** The path of `key` inside the field at `parent` (`""` is the document root). */
export function fieldPath(parent: string, key: string): string {
  return parent === "" ? key : `${parent}.${key}`;
}

/** 400 `bad_json` for a field of the wrong shape; `field` is its path, e.g. `config.timestamping`. */
export function jsonFieldError(field: string, expected: string): S2Error {
  return new S2Error(
    "bad_json",
    `invalid json body: expected ${expected}. field=\`${field === "" ? "(root)" : field}\``,
  );
}

/** 400 `bad_json` for a field that has the right type but breaks a rule serde checks (a name). */
export function jsonFieldInvalid(field: string, reason: string): S2Error {
  return new S2Error("bad_json", `invalid json body: ${reason}. field=\`${field}\``);
}

/** A plain object (not an array, not `null`). */
export function readObject(value: unknown, field: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw jsonFieldError(field, "an object");
  }
  return value as JsonObject;
}

export function readArray(value: unknown, field: string): readonly unknown[] {
  if (!Array.isArray(value)) throw jsonFieldError(field, "an array");
  return value;
}

export function readString(value: unknown, field: string): string {
  if (typeof value !== "string") throw jsonFieldError(field, "a string");
  return value;
}

/** S2's limit on a location name (common/src/caps.rs `MAX_LOCATION_NAME_LEN`). */
const locationNameLengthMax = 64;

/** A `LocationName`: 1 to 64 ASCII letters, digits, `:`, `-` or `.` (else 400 `bad_json`). */
export function readLocationName(value: unknown, field: string): string {
  const name = readString(value, field);
  if (name.length === 0 || name.length > locationNameLengthMax || !/^[A-Za-z0-9:.-]+$/.test(name)) {
    throw jsonFieldError(
      field,
      `1 to ${locationNameLengthMax} ASCII letters, digits, ":", "-" or "."`,
    );
  }
  return name;
}

export function readBoolean(value: unknown, field: string): boolean {
  if (typeof value !== "boolean") throw jsonFieldError(field, "a boolean");
  return value;
}

/**
 * A u64: a non-negative integer. Values above 2^53 - 1 are returned as they were rounded by
 * `JSON.parse`; the caller's validation rejects them (422), since JS numbers cannot hold them.
 */
export function readU64(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw jsonFieldError(field, "a non-negative integer");
  }
  return value + 0; // -0 becomes 0.
}

/** `readU64`, and 422 `invalid` when the value does not fit a safe integer. */
export function readSafeU64(value: unknown, field: string): number {
  const number = readU64(value, field);
  if (!Number.isSafeInteger(number)) {
    throw new S2Error(
      "invalid",
      `${field} must be an integer between 0 and ${Number.MAX_SAFE_INTEGER}`,
    );
  }
  return number;
}

/** A string from a closed set; `expected` lists it for the message, e.g. `"a" or "b"`. */
export function readEnum<T extends string>(
  value: unknown,
  field: string,
  isMember: (value: unknown) => value is T,
  expected: string,
): T {
  if (!isMember(value)) throw jsonFieldError(field, `one of ${expected}`);
  return value;
}

/** A reader of one field's value; `field` is its path for messages. */
export type FieldReader<T> = (value: unknown, field: string) => T;

/** serde `Option<T>`: an absent or `null` field is `undefined`, anything else must read as `T`. */
export function readOptional<T>(
  object: JsonObject,
  key: string,
  parent: string,
  read: FieldReader<T>,
): T | undefined {
  const value = Object.hasOwn(object, key) ? object[key] : undefined;
  if (value === undefined || value === null) return undefined;
  return read(value, fieldPath(parent, key));
}

/**
 * S2's `Maybe<Option<T>>` (PATCH bodies, S2-API.md §4.2): absent is `undefined` (keep), `null`
 * is `null` (reset), anything else must read as `T` (set).
 */
export function readPatch<T>(
  object: JsonObject,
  key: string,
  parent: string,
  read: FieldReader<T>,
): T | null | undefined {
  if (!Object.hasOwn(object, key)) return undefined;
  const value = object[key];
  if (value === null) return null;
  return read(value, fieldPath(parent, key));
}

/**
 * serde `#[serde(default)] T` and S2's `Maybe<T>`: absent is `undefined` (the caller's default),
 * `null` is 400 `bad_json` like any other wrong type, anything else must read as `T`.
 */
export function readNonNull<T>(
  object: JsonObject,
  key: string,
  parent: string,
  read: FieldReader<T>,
): T | undefined {
  if (!Object.hasOwn(object, key)) return undefined;
  return read(object[key], fieldPath(parent, key));
}

/** A required field: absent is 400 `bad_json` ("missing field"), `null` must read as `T`. */
export function readRequired<T>(
  object: JsonObject,
  key: string,
  parent: string,
  read: FieldReader<T>,
): T {
  const field = fieldPath(parent, key);
  if (!Object.hasOwn(object, key)) {
    throw new S2Error("bad_json", `invalid json body: missing field. field=\`${field}\``);
  }
  return read(object[key], field);
}

/** An RFC 3339 timestamp for control-plane objects (`created_at`, `deleted_at`; §3.3), in UTC. */
export function rfc3339FromMs(ms: number): string {
  return new Date(ms).toISOString();
}
