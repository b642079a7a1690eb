/**
 * Records as the engine sees them: bytes only (S2-Format decoding happens in `api/`). Sequence
 * numbers and timestamps are u64 on the wire; the API converts them once to JS numbers, rejecting
 * values above `Number.MAX_SAFE_INTEGER` (2^53 − 1), so the engine never handles `bigint`.
 */
import { headerMeteredOverheadBytes, recordMeteredOverheadBytes } from "./limits.js";

/** A sequence number: a non-negative safe integer (see the module comment). */
export type SeqNum = number;

/** A record header. Names and values are arbitrary bytes; duplicates and order are kept. */
export interface Header {
  readonly name: Uint8Array;
  readonly value: Uint8Array;
}

/** A record as a client submits it. */
export interface AppendRecord {
  /** Client timestamp (ms); its use depends on the stream's timestamping mode. */
  readonly timestamp?: number | undefined;
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}

/** A batch to append atomically (S2 `AppendInput`). */
export interface AppendInput {
  readonly records: readonly AppendRecord[];
  readonly matchSeqNum?: SeqNum | undefined;
  readonly fencingToken?: string | undefined;
}

/**
 * A record's content with its timestamp, as it is stored: what the segment codec encodes and what
 * record encryption seals (the timestamp stays in clear).
 */
export interface RecordContent {
  readonly timestamp: number;
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}

/** A record with its assigned position. */
export interface SequencedRecord {
  readonly seqNum: SeqNum;
  readonly timestamp: number;
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}

/** A position in a stream. As a tail: the next seq num and the last record's timestamp. */
export interface StreamPosition {
  readonly seqNum: SeqNum;
  readonly timestamp: number;
}

/** The acknowledgement of a durable append (S2-API.md §5.3). */
export interface AppendAck {
  readonly start: StreamPosition;
  readonly end: StreamPosition;
  readonly tail: StreamPosition;
}

/** S2's metered size: 8 + 2 × headers + Σ(name + value) + body (S2-API.md §5.1). */
export function meteredBytes(record: {
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}): number {
  let bytes = recordMeteredOverheadBytes + record.body.length;
  for (const header of record.headers) {
    bytes += headerMeteredOverheadBytes + header.name.length + header.value.length;
  }
  return bytes;
}

/** The metered size of a batch. */
export function meteredBytesOfBatch(
  records: readonly { readonly headers: readonly Header[]; readonly body: Uint8Array }[],
): number {
  let bytes = 0;
  for (const record of records) bytes += meteredBytes(record);
  return bytes;
}

/** The commands a record can carry (S2-API.md §5.2). */
export type CommandName = "fence" | "trim";

/**
 * A record is a command iff it has exactly one header and that header's name is empty; the
 * header's value names the command. Returns the raw value so callers can reject unknown names.
 */
export function commandValueOf(record: {
  readonly headers: readonly Header[];
}): Uint8Array | undefined {
  if (record.headers.length !== 1) return undefined;
  const header = record.headers[0]!;
  return header.name.length === 0 ? header.value : undefined;
}

const textEncoder = new TextEncoder();

/** Builds a command record's single header. */
export function commandHeader(name: CommandName): Header {
  return { name: new Uint8Array(0), value: textEncoder.encode(name) };
}

/** The body of a trim command: the trim point as a big-endian u64. */
export function encodeTrimBody(trimPoint: bigint): Uint8Array {
  const body = new Uint8Array(8);
  new DataView(body.buffer).setBigUint64(0, trimPoint);
  return body;
}
