/**
 * Shared by the crash test (`test/fault/crash.test.ts`) and its child process
 * (`test/fault/crash-child.ts`): the self-describing records the child appends, the line protocol
 * it prints, and the summary ("image") of a stream as read back, which the parent checks against
 * every ack, tail and earlier image.
 *
 * Every record carries headers naming its run, batch, index in the batch and batch size, and a
 * body derived from those alone, so whoever reads a record can tell whether its bytes are right
 * without any other knowledge.
 */
import { createHash } from "node:crypto";
import type { AppendRecord, Header, SequencedRecord } from "../../src/core/records.js";
import type { Service } from "../../src/service/service.js";

/** The basin the crash child writes to (created with create-on-append). */
export const crashBasin = "crash-test-basin";

/** The name of stream `index`. */
export function crashStreamName(index: number): string {
  return `s-${index}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const headerNames = {
  run: "crash-run",
  batch: "crash-batch",
  index: "crash-index",
  size: "crash-size",
} as const;

/** FNV-1a over the UTF-16 code units of `text`: a cheap deterministic seed. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** xorshift32 stepped from `seed` (never 0). */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/**
 * The body of record `index` of batch `batchId`: its length and bytes follow from the ids alone.
 * Mostly small, sometimes up to 4 KiB, sometimes empty.
 */
export function expectedBody(runId: string, batchId: string, index: number): Uint8Array {
  const next = xorshift(fnv1a(`${runId}/${batchId}/${index}`));
  const kind = next() % 100;
  const length = kind < 5 ? 0 : kind < 70 ? next() % 64 : kind < 95 ? next() % 1024 : next() % 4097;
  const words = new Uint32Array(Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return new Uint8Array(words.buffer, 0, length);
}

/** The records of one batch of `size` records. */
export function makeBatch(runId: string, batchId: string, size: number): AppendRecord[] {
  const records: AppendRecord[] = [];
  for (let index = 0; index < size; index++) {
    records.push({
      headers: [
        { name: encoder.encode(headerNames.run), value: encoder.encode(runId) },
        { name: encoder.encode(headerNames.batch), value: encoder.encode(batchId) },
        { name: encoder.encode(headerNames.index), value: encoder.encode(String(index)) },
        { name: encoder.encode(headerNames.size), value: encoder.encode(String(size)) },
      ],
      body: expectedBody(runId, batchId, index),
    });
  }
  return records;
}

/** A digest of records' headers and bodies, in order (16 hex digits). */
export function hashRecords(
  records: readonly { readonly headers: readonly Header[]; readonly body: Uint8Array }[],
): string {
  const hash = createHash("sha256");
  const length = new DataView(new ArrayBuffer(4));
  const lengthBytes = new Uint8Array(length.buffer);
  const put = (bytes: Uint8Array): void => {
    length.setUint32(0, bytes.length);
    hash.update(lengthBytes);
    hash.update(bytes);
  };
  for (const record of records) {
    length.setUint32(0, record.headers.length);
    hash.update(lengthBytes);
    for (const header of record.headers) {
      put(header.name);
      put(header.value);
    }
    put(record.body);
  }
  return hash.digest("hex").slice(0, 16);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** One batch as found in a stream: `[batchId, start seq num, record count, hash]`. */
export type ImageBatch = readonly [batchId: string, start: number, count: number, hash: string];

/** A stream as read back from seq num 0. */
export interface StreamImage {
  readonly stream: string;
  /** The durable tail (checkTail). */
  readonly tail: number;
  /** Whether the stream exists. */
  readonly exists: boolean;
  readonly batches: readonly ImageBatch[];
  /** Every violation found while reading: gaps, torn or repeated batches, wrong bytes. */
  readonly errors: readonly string[];
}

interface ParsedRecord {
  readonly runId: string;
  readonly batchId: string;
  readonly index: number;
  readonly size: number;
}

function parseHeaders(record: SequencedRecord): ParsedRecord | string {
  const names = Object.values(headerNames);
  if (record.headers.length !== names.length) return `has ${record.headers.length} headers`;
  const values: string[] = [];
  for (let i = 0; i < names.length; i++) {
    const header = record.headers[i]!;
    if (decoder.decode(header.name) !== names[i]) return `header ${i} is not ${names[i]}`;
    values.push(decoder.decode(header.value));
  }
  const index = Number(values[2]);
  const size = Number(values[3]);
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) {
    return `bad index/size headers ${values[2]}/${values[3]}`;
  }
  return { runId: values[0]!, batchId: values[1]!, index, size };
}

/** The batch and index a record claims to be, or undefined if its headers are not ours. */
export function recordIdentity(
  record: SequencedRecord,
): { readonly batchId: string; readonly index: number } | undefined {
  const parsed = parseHeaders(record);
  return typeof parsed === "string" ? undefined : { batchId: parsed.batchId, index: parsed.index };
}

/**
 * Summarizes a stream's records, read from seq num 0, checking on the way that seq nums are
 * dense from 0 up to `tail`, that each batch is whole and contiguous (and appears once), that
 * every record belongs to `runId` and has exactly the bytes its ids imply.
 */
export function summarizeStream(
  runId: string,
  stream: string,
  tail: number,
  records: readonly SequencedRecord[],
): StreamImage {
  const errors: string[] = [];
  const batches: ImageBatch[] = [];
  const seen = new Set<string>();
  const error = (message: string): void => {
    if (errors.length < 20) errors.push(`${stream}: ${message}`);
  };
  if (records.length !== tail) error(`read ${records.length} records but the tail is ${tail}`);
  const parsedRecords = records.map(parseHeaders);
  let i = 0;
  while (i < records.length) {
    const first = records[i]!;
    if (first.seqNum !== i) {
      error(`record ${i} has seq num ${first.seqNum} (not dense from 0)`);
      break;
    }
    const parsed = parsedRecords[i]!;
    if (typeof parsed === "string") {
      error(`record ${first.seqNum} ${parsed}`);
      i++;
      continue;
    }
    const { batchId, size } = parsed;
    if (parsed.runId !== runId) error(`record ${first.seqNum} is of run ${parsed.runId}`);
    if (seen.has(batchId)) error(`batch ${batchId} appears twice (again at ${first.seqNum})`);
    seen.add(batchId);
    if (parsed.index !== 0) error(`batch ${batchId} starts at index ${parsed.index}, seq ${i}`);
    const start = i;
    let count = 0;
    while (i < records.length) {
      const record = records[i]!;
      const current = parsedRecords[i]!;
      if (typeof current === "string" || current.batchId !== batchId) break;
      if (record.seqNum !== i) error(`record ${i} has seq num ${record.seqNum} (not dense)`);
      if (current.index !== parsed.index + count || current.size !== size) {
        error(`batch ${batchId} record ${current.index}/${current.size} at seq ${record.seqNum}`);
      }
      if (!sameBytes(record.body, expectedBody(runId, batchId, current.index))) {
        error(`batch ${batchId} record ${current.index} at seq ${record.seqNum}: wrong body`);
      }
      count++;
      i++;
    }
    if (count !== size) {
      error(`batch ${batchId} is torn: ${count} of ${size} records at seq ${start}`);
    }
    batches.push([batchId, start, count, hashRecords(records.slice(start, start + count))]);
  }
  return { stream, tail, exists: true, batches, errors };
}

/** Reads a stream whole and summarizes it; a missing stream is an empty image. */
export async function imageOfStream(
  service: Service,
  runId: string,
  stream: string,
): Promise<StreamImage> {
  let tail: number;
  try {
    tail = (await service.records.checkTail(crashBasin, stream)).seqNum;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "stream_not_found" || code === "basin_not_found") {
      return { stream, tail: 0, exists: false, batches: [], errors: [] };
    }
    throw error;
  }
  const records: SequencedRecord[] = [];
  for (;;) {
    const batch = await service.records.read(crashBasin, stream, {
      startSeqNum: records.length === 0 ? 0 : records.at(-1)!.seqNum + 1,
      countMax: 1000,
      bytesMax: 1 << 20,
    });
    if (batch.length === 0) break;
    records.push(...batch);
  }
  return summarizeStream(runId, stream, tail, records);
}

/** The lines the child prints on stdout, one JSON object each. */
export type ChildLine =
  | { readonly type: "opening" }
  | { readonly type: "cache"; readonly wiped: boolean }
  | {
      readonly type: "open";
      readonly epoch: number;
      readonly replayedSegments: number;
      readonly cacheResetReason: string | null;
    }
  | ({ readonly type: "image" } & StreamImage)
  | { readonly type: "ready" }
  | {
      readonly type: "ack";
      readonly stream: string;
      readonly batchId: string;
      readonly start: number;
      readonly end: number;
      readonly hash: string;
    }
  | {
      readonly type: "tail";
      readonly stream: string;
      readonly seqNum: number;
      /** The record just below the tail, as read then (null when the tail is 0). */
      readonly last: { readonly batchId: string; readonly index: number } | null;
    }
  | { readonly type: "error"; readonly message: string };
