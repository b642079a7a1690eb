/**
 * Records in JSON (S2-API.md §3.1 `S2-Format`, §4.1, §5.6): the `AppendInput` of a JSON append,
 * and the `SequencedRecord` / `ReadBatch` / `AppendAck` / `TailResponse` of JSON and SSE
 * responses, to and from the domain types of `core/records.ts` (bytes only).
 *
 * `S2-Format` says how header names, header values and bodies travel in JSON strings: `raw` (the
 * string's UTF-8 bytes; output decodes bytes as UTF-8 lossily, as lite's `utf8_chunks` does) or
 * `base64` (RFC 4648 with padding, strict: non-canonical input is 422). Lite also accepts the
 * aliases `json` and `json-binsafe` and trims the value.
 *
 * Errors follow lite's split (§3.3): the shape of the body (types, missing `records`, a header
 * that is not a pair of strings, a `fencing_token` over 36 bytes, which serde checks while
 * deserializing) is 400 `bad_json`, checked for the whole body before any record is decoded;
 * decoding (Base64) and semantic validation are 422 `invalid`. u64 fields become JS numbers once,
 * here: a value above `Number.MAX_SAFE_INTEGER` is 422 `invalid` (see `core/records.ts`).
 */
import { S2Error } from "../../core/errors.js";
import { fencingTokenBytesMax } from "../../core/limits.js";
import { utf8ByteLength } from "../../core/names.js";
import type {
  AppendAck,
  AppendInput,
  AppendRecord,
  Header,
  SequencedRecord,
  StreamPosition,
} from "../../core/records.js";
import {
  type JsonObject,
  jsonFieldError,
  jsonFieldInvalid,
  readArray,
  readNonNull,
  readObject,
  readOptional,
  readRequired,
  readString,
  readU64,
} from "../json/json-body.js";

/** How record bytes travel in JSON strings (`S2-Format`). */
export type RecordFormat = "raw" | "base64";

/**
 * The `S2-Format` header (S2-API.md §3.1): absent is `raw`; `raw`/`json` and
 * `base64`/`json-binsafe` after trimming; anything else (the empty string included) is 400
 * `bad_header`.
 */
export function parseRecordFormat(value: string | undefined): RecordFormat {
  if (value === undefined) return "raw";
  switch (value.trim()) {
    case "raw":
    case "json":
      return "raw";
    case "base64":
    case "json-binsafe":
      return "base64";
    default:
      throw new S2Error("bad_header", `invalid header \`s2-format\`. value=\`${value}\``);
  }
}

const textEncoder = new TextEncoder();
/** Lossy: invalid sequences become U+FFFD; a leading BOM is kept, as Rust's lossy decoding does. */
const lossyUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const base64Syntax = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict standard Base64 with padding (lite's `base64ct`): only the RFC 4648 alphabet, padding
 * required, and the unused bits of the last character zero (so every byte string has exactly one
 * encoding). Returns `undefined` for anything else.
 */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  if (!base64Syntax.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  // Buffer ignores non-zero trailing bits; re-encoding exposes them.
  if (bytes.toString("base64") !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Record bytes as a JSON string in `format`. */
export function encodeRecordBytes(bytes: Uint8Array, format: RecordFormat): string {
  if (format === "raw") return lossyUtf8.decode(bytes);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
}

/** A JSON string as record bytes in `format`; bad Base64 is 422 `invalid`. */
export function decodeRecordBytes(text: string, format: RecordFormat): Uint8Array {
  if (format === "raw") return textEncoder.encode(text);
  const bytes = decodeBase64Strict(text);
  if (bytes === undefined) throw new S2Error("invalid", "invalid Base64 encoding");
  return bytes;
}

// Append input.

interface AppendRecordStrings {
  readonly timestamp: number | undefined;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

const u64Limit = 2 ** 64;

/**
 * A u64 field: `readU64`, plus 400 for values that do not fit a u64 at all (serde's check). 2^64
 * itself passes: `JSON.parse` rounds 2^64 - 1 up to it.
 */
function readJsonU64(value: unknown, field: string): number {
  const number = readU64(value, field);
  if (number > u64Limit) throw jsonFieldError(field, "a u64");
  return number;
}

/** 422 unless `value` is a safe integer (values JSON.parse rounded are all ≥ 2^53). */
function checkSafe(value: number | undefined, field: string): void {
  if (value !== undefined && !Number.isSafeInteger(value)) {
    throw new S2Error(
      "invalid",
      `${field} must be at most ${Number.MAX_SAFE_INTEGER}. value=\`${value}\``,
    );
  }
}

function readHeaderPair(value: unknown, field: string): readonly [string, string] {
  const pair = readArray(value, field);
  if (pair.length !== 2) throw jsonFieldError(field, "a header as an array of 2 strings");
  return [readString(pair[0], `${field}[0]`), readString(pair[1], `${field}[1]`)];
}

function readAppendRecord(value: unknown, field: string): AppendRecordStrings {
  const object = readObject(value, field);
  const headers = readNonNull(object, "headers", field, (items, path) =>
    readArray(items, path).map((item, i) => readHeaderPair(item, `${path}[${i}]`)),
  );
  return {
    timestamp: readOptional(object, "timestamp", field, readJsonU64),
    headers: headers ?? [],
    body: readNonNull(object, "body", field, readString) ?? "",
  };
}

/**
 * A parsed JSON `AppendInput` body (S2-API.md §4.1) in `format`, as the domain input. Shape
 * errors are 400 `bad_json`; Base64 and out-of-range numbers are 422 `invalid`. Batch rules
 * (1..=1000 records, 1 MiB, headers, commands) are the record service's (`validateAppendBatch`).
 */
export function appendInputFromJson(body: unknown, format: RecordFormat): AppendInput {
  const object: JsonObject = readObject(body, "");
  const records = readRequired(object, "records", "", (value, field) =>
    readArray(value, field).map((item, i) => readAppendRecord(item, `${field}[${i}]`)),
  );
  const matchSeqNum = readOptional(object, "match_seq_num", "", readJsonU64);
  const fencingToken = readOptional(object, "fencing_token", "", (value, field) => {
    const token = readString(value, field);
    if (utf8ByteLength(token) > fencingTokenBytesMax) {
      throw jsonFieldInvalid(field, `fencing token must not exceed ${fencingTokenBytesMax} bytes`);
    }
    return token;
  });

  checkSafe(matchSeqNum, "match_seq_num");
  const decoded = records.map((record, i): AppendRecord => {
    checkSafe(record.timestamp, `records[${i}].timestamp`);
    const headers = record.headers.map(
      ([name, value]): Header => ({
        name: decodeRecordBytes(name, format),
        value: decodeRecordBytes(value, format),
      }),
    );
    return {
      ...(record.timestamp !== undefined && { timestamp: record.timestamp }),
      headers,
      body: decodeRecordBytes(record.body, format),
    };
  });
  return {
    records: decoded,
    ...(matchSeqNum !== undefined && { matchSeqNum }),
    ...(fencingToken !== undefined && { fencingToken }),
  };
}

// Responses.

/** `StreamPosition` JSON. */
export interface StreamPositionJson {
  readonly seq_num: number;
  readonly timestamp: number;
}

/** `SequencedRecord` JSON: `headers` and `body` are omitted when empty (S2-API.md §4.1). */
export interface SequencedRecordJson {
  readonly seq_num: number;
  readonly timestamp: number;
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: string;
}

/** `ReadBatch` JSON: `tail` only when present (S2-API.md §5.6). */
export interface ReadBatchJson {
  readonly records: readonly SequencedRecordJson[];
  readonly tail?: StreamPositionJson;
}

export function streamPositionToJson(position: StreamPosition): StreamPositionJson {
  return { seq_num: position.seqNum, timestamp: position.timestamp };
}

export function sequencedRecordToJson(
  record: SequencedRecord,
  format: RecordFormat,
): SequencedRecordJson {
  return {
    seq_num: record.seqNum,
    timestamp: record.timestamp,
    ...(record.headers.length > 0 && {
      headers: record.headers.map(
        (header) =>
          [
            encodeRecordBytes(header.name, format),
            encodeRecordBytes(header.value, format),
          ] as const,
      ),
    }),
    ...(record.body.length > 0 && { body: encodeRecordBytes(record.body, format) }),
  };
}

export function readBatchToJson(
  batch: { readonly records: readonly SequencedRecord[]; readonly tail?: StreamPosition },
  format: RecordFormat,
): ReadBatchJson {
  return {
    records: batch.records.map((record) => sequencedRecordToJson(record, format)),
    ...(batch.tail !== undefined && { tail: streamPositionToJson(batch.tail) }),
  };
}

export function appendAckToJson(ack: AppendAck): {
  readonly start: StreamPositionJson;
  readonly end: StreamPositionJson;
  readonly tail: StreamPositionJson;
} {
  return {
    start: streamPositionToJson(ack.start),
    end: streamPositionToJson(ack.end),
    tail: streamPositionToJson(ack.tail),
  };
}

/** `TailResponse` JSON (check tail, and the body of a 416). */
export function tailResponseToJson(tail: StreamPosition): { readonly tail: StreamPositionJson } {
  return { tail: streamPositionToJson(tail) };
}
