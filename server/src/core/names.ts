/**
 * Name and token validation (S2-API.md §6.1) and the byte-wise order that listings use (§6.4).
 * Validators return a reason (lite's wording, S2 common/src/types/{basin,stream}.rs) or
 * `undefined`; the caller turns a reason into the right error (`bad_path`, `bad_query`,
 * `bad_header` or `invalid`, depending on where the value came from). Lengths count UTF-8 bytes.
 */
import { Buffer } from "node:buffer";
import {
  basinNameLengthMax,
  basinNameLengthMin,
  fencingTokenBytesMax,
  requestTokenBytesMax,
  streamNameLengthMax,
  streamNameLengthMin,
} from "./limits.js";

/** Which listing parameter a prefix validator checks; it only changes the message. */
export type ListNameField = "prefix" | "start_after";

/** The number of bytes `value` takes in UTF-8 (a lone surrogate counts as U+FFFD, 3 bytes). */
export function utf8ByteLength(value: string): number {
  return Buffer.byteLength(value, "utf8");
}

/**
 * Whether `value` has no lone surrogate, i.e. is representable in UTF-8. Rust strings cannot hold
 * one, so lite never sees such a name (its JSON parser rejects it); we reject it explicitly.
 */
export function isWellFormedUtf16(value: string): boolean {
  return !/\p{Surrogate}/u.test(value);
}

function isLowerAlnum(char: string): boolean {
  return (char >= "a" && char <= "z") || (char >= "0" && char <= "9");
}

function validateBasinNameString(value: string, field: "name" | ListNameField): string | undefined {
  const isPrefix = field !== "name";
  const bytes = utf8ByteLength(value);
  if (bytes > basinNameLengthMax) {
    return `basin ${field} must not exceed ${basinNameLengthMax} bytes in length`;
  }
  if (!isPrefix && bytes < basinNameLengthMin) {
    return `basin ${field} should be at least ${basinNameLengthMin} bytes in length`;
  }
  if (value.length === 0) return undefined;
  if (!isLowerAlnum(value[0]!)) {
    return `basin ${field} must begin with a lowercase letter or number`;
  }
  if (!isPrefix && !isLowerAlnum(value[value.length - 1]!)) {
    return `basin ${field} must end with a lowercase letter or number`;
  }
  if (!/^[a-z0-9-]*$/.test(value)) {
    return `basin ${field} must comprise lowercase letters, numbers, and hyphens`;
  }
  return undefined;
}

/**
 * Checks a basin name (§6.1): 8..=48 bytes of `a-z`, `0-9` and `-`, beginning and ending with a
 * letter or digit. Names are global per server and appear in object keys, hence the strict set.
 */
export function validateBasinName(name: string): string | undefined {
  return validateBasinNameString(name, "name");
}

/**
 * Checks a basin listing `prefix` or `start_after` (§6.1): ≤48 bytes, may be empty, same
 * charset as names, first char a letter or digit, and (unlike a name) may end with `-`.
 */
export function validateBasinNamePrefix(
  value: string,
  field: ListNameField = "prefix",
): string | undefined {
  return validateBasinNameString(value, field);
}

function validateStreamNameString(
  value: string,
  field: "name" | ListNameField,
): string | undefined {
  const isPrefix = field !== "name";
  if (!isPrefix && value.length < streamNameLengthMin) {
    return `stream ${field} must not be empty`;
  }
  if (!isPrefix && (value === "." || value === "..")) {
    return `stream ${field} must not be "." or ".."`;
  }
  if (utf8ByteLength(value) > streamNameLengthMax) {
    return `stream ${field} must not exceed ${streamNameLengthMax} bytes in length`;
  }
  if (!isWellFormedUtf16(value)) {
    return `stream ${field} must be valid UTF-8`;
  }
  return undefined;
}

/**
 * Checks a stream name (§6.1): 1..=512 bytes of UTF-8, not `.` or `..` (they would be ambiguous
 * as path segments); anything else is allowed, `/` included.
 */
export function validateStreamName(name: string): string | undefined {
  return validateStreamNameString(name, "name");
}

/** Checks a stream listing `prefix` or `start_after` (§6.1): ≤512 bytes; empty, `.`, `..` allowed. */
export function validateStreamNamePrefix(
  value: string,
  field: ListNameField = "prefix",
): string | undefined {
  return validateStreamNameString(value, field);
}

/**
 * Checks a fencing token (§5.2, §6.1): at most 36 UTF-8 bytes, so that a UUID fits. The empty
 * token is valid: it is the initial token of every stream.
 */
export function validateFencingToken(token: string): string | undefined {
  if (utf8ByteLength(token) > fencingTokenBytesMax) {
    return `fencing token must not exceed ${fencingTokenBytesMax} bytes in length`;
  }
  if (!isWellFormedUtf16(token)) return "fencing token must be valid UTF-8";
  return undefined;
}

/** Checks an `S2-Request-Token` (§6.1, §6.3): at most 36 UTF-8 bytes. */
export function validateRequestToken(token: string): string | undefined {
  if (utf8ByteLength(token) > requestTokenBytesMax) {
    return `request token must not exceed ${requestTokenBytesMax} bytes in length`;
  }
  if (!isWellFormedUtf16(token)) return "request token must be valid UTF-8";
  return undefined;
}

/**
 * Maps a UTF-16 code unit so that comparing mapped units orders strings like their UTF-8 bytes:
 * surrogates (code points ≥ U+10000) move above U+E000..U+FFFF, which they precede in UTF-16.
 */
function byteOrderKey(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/**
 * Compares two strings by their UTF-8 bytes (negative, zero or positive), the order of S2
 * listings (§6.4) and of our storage keys. JS `<` compares UTF-16 code units, which puts
 * U+10000..U+10FFFF before U+E000..U+FFFF; UTF-8 (= code point) order puts them after.
 */
export function compareBytewise(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return byteOrderKey(x) < byteOrderKey(y) ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
