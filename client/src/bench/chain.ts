/**
 * The bench record format and its verification: every record carries one `bench` header holding
 * its index in the run, its send time and a hash chain value h_i = H(h_{i-1} || body_i), so that a
 * reader can prove it saw every record exactly once, in order and unaltered (the method of the S2
 * CLI's `bench`, with SHA-256 in place of xxh3 because node:crypto has it).
 *
 * Header value layout (32 bytes, big-endian): index u64 | send time µs u64 | hash 16 bytes.
 */
import { createHash } from "node:crypto";
import type { RecordInput } from "../records.js";

/** The name of the header that carries the bench fields. */
export const benchHeaderName = "bench";
/** Bytes of the truncated SHA-256 chain value: collisions are irrelevant at bench sizes. */
export const chainHashBytes = 16;
/** Bytes of the header value: index, send time, hash. */
export const benchHeaderValueBytes = 8 + 8 + chainHashBytes;
/**
 * Metered bytes a record spends outside its body: 8 + 2 per header + header name + value (the S2
 * metering rule of `records.ts`); a record of `recordBytes` metered bytes has this much less body.
 */
export const benchRecordOverheadBytes = 8 + 2 + benchHeaderName.length + benchHeaderValueBytes;

/** h_{-1}: the chain starts from zeros, so the first record's hash depends only on its body. */
export const chainSeed: Uint8Array = new Uint8Array(chainHashBytes);

const benchHeaderNameBytes = new TextEncoder().encode(benchHeaderName);

/** The fields of a bench header. */
export interface BenchHeader {
  /** The record's position in the run, from 0. */
  readonly index: number;
  /** When the writer created the record, in µs since the Unix epoch. */
  readonly sendTimeUs: number;
  /** h_index. */
  readonly hash: Uint8Array;
}

/** A record failed verification: the run's result cannot be trusted. */
export class BenchVerificationError extends Error {
  override readonly name = "BenchVerificationError";
}

/** The next chain value: H(previous || body), truncated. */
export function chainHash(previous: Uint8Array, body: Uint8Array): Uint8Array {
  const digest = createHash("sha256").update(previous).update(body).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, chainHashBytes);
}

export function encodeBenchHeader(header: BenchHeader): Uint8Array {
  const value = new Uint8Array(benchHeaderValueBytes);
  const view = new DataView(value.buffer);
  view.setBigUint64(0, BigInt(header.index));
  view.setBigUint64(8, BigInt(Math.max(0, Math.round(header.sendTimeUs))));
  value.set(header.hash.subarray(0, chainHashBytes), 16);
  return value;
}

/** Decodes a header value; throws `BenchVerificationError` when it has the wrong length. */
export function decodeBenchHeader(value: Uint8Array): BenchHeader {
  if (value.length !== benchHeaderValueBytes) {
    throw new BenchVerificationError(
      `bench header has ${value.length} bytes, expected ${benchHeaderValueBytes}`,
    );
  }
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return {
    index: Number(view.getBigUint64(0)),
    sendTimeUs: Number(view.getBigUint64(8)),
    hash: value.slice(16),
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Hex of a chain value, for reports and messages. */
export function hashHex(hash: Uint8Array): string {
  return Buffer.from(hash).toString("hex");
}

/** Extends the chain on the writer's side and builds each record. */
export class ChainWriter {
  private nextIndex = 0;
  private previous: Uint8Array = chainSeed;

  /** Records built so far. */
  get count(): number {
    return this.nextIndex;
  }

  /** The chain value of the last record built (the seed before the first). */
  get lastHash(): Uint8Array {
    return this.previous;
  }

  /** The next record of the chain, with `body` and a header stamped with `sendTimeUs`. */
  next(body: Uint8Array, sendTimeUs: number): RecordInput {
    const hash = chainHash(this.previous, body);
    const value = encodeBenchHeader({ index: this.nextIndex, sendTimeUs, hash });
    this.nextIndex += 1;
    this.previous = hash;
    return { body, headers: [[benchHeaderNameBytes, value]] };
  }
}

/** A record as a reader sees it (the fields of `s2.v1.SequencedRecord` that matter here). */
export interface ReadRecord {
  readonly seqNum: bigint;
  readonly headers: readonly { readonly name: Uint8Array; readonly value: Uint8Array }[];
  readonly body: Uint8Array;
}

/**
 * Replays the chain on the reader's side: each record must be the next index, at the seq num equal
 * to its index (the stream is fresh), with the expected body size and the hash its predecessor
 * and body imply. The first violation throws `BenchVerificationError`, naming the seq num.
 */
export class ChainVerifier {
  private nextIndex = 0;
  private previous: Uint8Array = chainSeed;

  constructor(private readonly bodyBytes: number) {}

  /** Records verified so far. */
  get count(): number {
    return this.nextIndex;
  }

  /** The chain value of the last verified record (the seed before the first). */
  get lastHash(): Uint8Array {
    return this.previous;
  }

  /** Verifies the next record and returns its header. */
  verify(record: ReadRecord): BenchHeader {
    const at = `seq_num=${record.seqNum}`;
    const headers = record.headers.filter((h) => equalBytes(h.name, benchHeaderNameBytes));
    if (headers.length !== 1) {
      throw new BenchVerificationError(
        `record has ${headers.length} bench headers, expected 1. ${at}`,
      );
    }
    const header = decodeBenchHeader(headers[0]!.value);
    if (header.index < this.nextIndex) {
      throw new BenchVerificationError(
        `duplicate or reordered record: index ${header.index} was already read, ` +
          `expected index ${this.nextIndex}. ${at}`,
      );
    }
    if (header.index > this.nextIndex) {
      throw new BenchVerificationError(
        `gap or reordered record: expected index ${this.nextIndex}, got ${header.index}. ${at}`,
      );
    }
    if (record.seqNum !== BigInt(header.index)) {
      throw new BenchVerificationError(
        `record index ${header.index} is at the wrong seq num. ${at}`,
      );
    }
    if (record.body.length !== this.bodyBytes) {
      throw new BenchVerificationError(
        `record body has ${record.body.length} bytes, expected ${this.bodyBytes}. ${at}`,
      );
    }
    const expected = chainHash(this.previous, record.body);
    if (!equalBytes(expected, header.hash)) {
      throw new BenchVerificationError(
        `hash chain broken: expected ${hashHex(expected)}, got ${hashHex(header.hash)}. ${at}`,
      );
    }
    this.nextIndex += 1;
    this.previous = expected;
    return header;
  }
}
