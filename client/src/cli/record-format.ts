/**
 * Record formats of `append` (input) and `read` (output), as the S2 CLI names them: `text` (one
 * record per line, the body only), `json` (one object per line: `headers` as `[name, value]`
 * pairs, `body`, and on output `seq_num` and `timestamp`; text is UTF-8), `json-base64` (the same
 * with base64 bodies and headers), and `raw` (append: all of stdin is one record; read: bodies
 * back to back, so the pair round-trips bytes).
 */
import { createInterface } from "node:readline";
import type { SequencedRecord } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { maxBatchBytes, meteredBytes, type RecordInput, toAppendRecord } from "../records.js";

export const recordFormats = ["text", "json", "json-base64", "raw"] as const;
export type RecordFormat = (typeof recordFormats)[number];

/** Bad input to `append`: not a JSON record, or a record above the size limit. */
export class RecordInputError extends Error {
  override readonly name = "RecordInputError";
}

/** A record parsed from stdin, with where it came from for messages. */
export interface InputRecord {
  readonly record: RecordInput;
  /** The 1-based line it was on (1 for raw input). */
  readonly line: number;
  /** Its metered size. */
  readonly bytes: number;
}

const decoder = new TextDecoder();

function bytesOfField(value: unknown, base64: boolean, what: string): Uint8Array | string {
  if (typeof value !== "string") throw new RecordInputError(`${what} must be a string`);
  if (!base64) return value;
  const bytes = Buffer.from(value, "base64");
  // Node skips characters that are not base64; a lossless round trip shows there were none.
  if (bytes.toString("base64").replace(/=+$/, "") !== value.replace(/=+$/, "")) {
    throw new RecordInputError(`${what} is not base64`);
  }
  return bytes;
}

/** `[name, value]` pairs, also accepting `{name, value}` objects (the S2 CLI's older shape). */
function headersOf(value: unknown, base64: boolean): [Uint8Array | string, Uint8Array | string][] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RecordInputError("headers must be an array");
  return value.map((header: unknown) => {
    const [name, headerValue] = Array.isArray(header)
      ? header
      : typeof header === "object" && header !== null
        ? [(header as { name?: unknown }).name, (header as { value?: unknown }).value]
        : [];
    return [
      bytesOfField(name, base64, "a header name"),
      bytesOfField(headerValue, base64, "a header value"),
    ];
  });
}

/** A record from one line of `json` or `json-base64` input. */
export function parseJsonRecord(line: string, base64: boolean): RecordInput {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new RecordInputError(`not JSON: ${error instanceof Error ? error.message : error}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RecordInputError("a record must be a JSON object");
  }
  const { headers, body, timestamp } = value as Record<string, unknown>;
  if (timestamp !== undefined && (!Number.isSafeInteger(timestamp) || (timestamp as number) < 0)) {
    throw new RecordInputError("timestamp must be a non-negative integer (milliseconds)");
  }
  return {
    headers: headersOf(headers, base64),
    ...(body !== undefined && body !== null && { body: bytesOfField(body, base64, "body") }),
    ...(timestamp !== undefined && { timestamp: BigInt(timestamp as number) }),
  };
}

function checked(record: RecordInput, line: number): InputRecord {
  const bytes = meteredBytes(toAppendRecord(record));
  if (bytes > maxBatchBytes) {
    throw new RecordInputError(
      `line ${line}: the record is ${bytes} bytes, above the limit of ${maxBatchBytes}`,
    );
  }
  return { record, line, bytes };
}

/** Records read from `input` in `format`; blank lines are skipped in the JSON formats. */
export async function* readInputRecords(
  input: NodeJS.ReadableStream,
  format: Exclude<RecordFormat, "raw">,
): AsyncGenerator<InputRecord, void, undefined> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  for await (const text of lines) {
    line += 1;
    if (format === "text") {
      yield checked({ body: text }, line);
      continue;
    }
    if (text.trim() === "") continue;
    let record: RecordInput;
    try {
      record = parseJsonRecord(text, format === "json-base64");
    } catch (error) {
      if (error instanceof RecordInputError) {
        throw new RecordInputError(`line ${line}: ${error.message}`);
      }
      throw error;
    }
    yield checked(record, line);
  }
}

/** All of `input` as one record; none when it is empty. */
export async function readRawRecord(input: NodeJS.ReadableStream): Promise<InputRecord[]> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    // Stop early rather than buffer an unbounded stdin that can never be one record.
    if (size > maxBatchBytes) {
      throw new RecordInputError(`the record is above the limit of ${maxBatchBytes} bytes`);
    }
    chunks.push(buffer);
  }
  if (size === 0) return [];
  return [checked({ body: Buffer.concat(chunks) }, 1)];
}

/** A command record (fence, trim): one header with an empty name; its value is the command. */
export function commandOf(record: SequencedRecord): string | undefined {
  const [header, ...rest] = record.headers;
  if (header === undefined || rest.length > 0 || header.name.length > 0) return undefined;
  return decoder.decode(header.value);
}

/** A one-line description of a command record, for the `text` format's notes on stderr. */
export function describeCommand(command: string, record: SequencedRecord): string {
  if (command === "trim" && record.body.length === 8) {
    const point = Buffer.from(record.body).readBigUInt64BE(0);
    return `seq num ${record.seqNum}: trim to ${point}`;
  }
  if (command === "fence") {
    return `seq num ${record.seqNum}: fence with token ${JSON.stringify(decoder.decode(record.body))}`;
  }
  return `seq num ${record.seqNum}: command ${JSON.stringify(command)}`;
}

/** The metered size of a read record (same rule as appends). */
export function sequencedRecordBytes(record: SequencedRecord): number {
  let size = 8 + 2 * record.headers.length + record.body.length;
  for (const header of record.headers) size += header.name.length + header.value.length;
  return size;
}

/** A read record as one output line (without the newline) in `json` or `json-base64`. */
export function formatJsonRecord(record: SequencedRecord, base64: boolean): string {
  const text = (bytes: Uint8Array): string =>
    base64 ? Buffer.from(bytes).toString("base64") : decoder.decode(bytes);
  return JSON.stringify({
    seq_num: Number(record.seqNum),
    timestamp: Number(record.timestamp),
    headers: record.headers.map((header) => [text(header.name), text(header.value)]),
    body: text(record.body),
  });
}
