/**
 * Records in protobuf (`s2.v1`, S2-API.md §5.9), to and from the domain types of
 * `core/records.ts`: REST protobuf bodies (`application/protobuf`) and S2S frames use the same
 * messages. u64 fields (protobuf-es gives `bigint`) become JS numbers here, once: a value above
 * `Number.MAX_SAFE_INTEGER` is 422 `invalid`, so the engine never sees a `bigint` or a rounded
 * number. Batch rules (1..=1000 records, 1 MiB, headers, commands, fencing token length) are the
 * record service's, also 422, as lite's conversion from protobuf reports them.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type AppendAck as AppendAckMessage,
  AppendAckSchema,
  type AppendInput as AppendInputMessage,
  AppendInputSchema,
  type ReadBatch as ReadBatchMessage,
  ReadBatchSchema,
  type StreamPosition as StreamPositionMessage,
  StreamPositionSchema,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { assert } from "../../core/assert.js";
import { S2Error } from "../../core/errors.js";
import type {
  AppendAck,
  AppendInput,
  AppendRecord,
  SequencedRecord,
  StreamPosition,
} from "../../core/records.js";

const safeMax = BigInt(Number.MAX_SAFE_INTEGER);

/** A protobuf u64 as a number; 422 `invalid` above `Number.MAX_SAFE_INTEGER`. */
export function u64ToNumber(value: bigint, field: string): number {
  if (value > safeMax) {
    throw new S2Error(
      "invalid",
      `${field} must be at most ${Number.MAX_SAFE_INTEGER}. value=\`${value}\``,
    );
  }
  return Number(value);
}

/**
 * Decodes protobuf bytes as an `AppendInput` message; undecodable bytes are 400 with
 * `errorCode` (`bad_proto` for a REST body, `bad_frame` for an S2S frame). The append path decodes
 * with `decodeAppendInput` (`append-input-decoder.ts`); this protobuf-es route is its reference,
 * in that decoder's differential test.
 */
export function decodeAppendInputProto(
  bytes: Uint8Array,
  errorCode: "bad_proto" | "bad_frame",
): AppendInputMessage {
  try {
    return fromBinary(AppendInputSchema, bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new S2Error(errorCode, `invalid protobuf body: ${reason}`, { cause: error });
  }
}

/** The domain `AppendInput` of a decoded message (u64 range checked). */
export function appendInputFromProto(message: AppendInputMessage): AppendInput {
  const records = message.records.map((record, i): AppendRecord => {
    const headers = record.headers.map((header) => ({ name: header.name, value: header.value }));
    return record.timestamp === undefined
      ? { headers, body: record.body }
      : {
          timestamp: u64ToNumber(record.timestamp, `records[${i}].timestamp`),
          headers,
          body: record.body,
        };
  });
  return {
    records,
    ...(message.matchSeqNum !== undefined && {
      matchSeqNum: u64ToNumber(message.matchSeqNum, "match_seq_num"),
    }),
    ...(message.fencingToken !== undefined && { fencingToken: message.fencingToken }),
  };
}

function streamPositionToProto(position: StreamPosition): StreamPositionMessage {
  return create(StreamPositionSchema, {
    seqNum: BigInt(position.seqNum),
    timestamp: BigInt(position.timestamp),
  });
}

/** A `ReadBatch` message; a batch with no records and a tail is a heartbeat (S2S). */
export function readBatchToProto(batch: {
  readonly records: readonly SequencedRecord[];
  readonly tail?: StreamPosition | undefined;
}): ReadBatchMessage {
  return create(ReadBatchSchema, {
    records: batch.records.map((record) => ({
      seqNum: BigInt(record.seqNum),
      timestamp: BigInt(record.timestamp),
      headers: record.headers.map((header) => ({ name: header.name, value: header.value })),
      body: record.body,
    })),
    ...(batch.tail !== undefined && { tail: streamPositionToProto(batch.tail) }),
  });
}

/**
 * `readBatchToProto`, encoded: the bytes `toBinary(ReadBatchSchema, readBatchToProto(batch))`
 * gives, written by hand because this is the catch-up read path (REST protobuf reads, S2S read
 * frames). One pass sizes the message exactly, one writes it into a single buffer; the
 * protobuf-es route builds bigint messages and copies every body through its chunked writer.
 * Wire form (s2.v1): ReadBatch { records = 1 (SequencedRecord, each written, in order);
 * tail = 2 (StreamPosition, written when present, even if all zero) }; SequencedRecord
 * { seq_num = 1; timestamp = 2; headers = 3 (Header, each written, in order); body = 4 };
 * Header { name = 1; value = 2 }; StreamPosition { seq_num = 1; timestamp = 2 }. Scalars equal
 * to their default (0, empty bytes) are omitted (proto3), fields go in field-number order, as
 * protobuf-es writes them. Numbers are the domain's non-negative safe integers (≤ 2^53 − 1),
 * so varints are computed with arithmetic above 2^31 rather than 32-bit bit operations.
 *
 * @param headroomBytes Bytes left (zeroed) in front of the message in the returned buffer, so a
 *   caller can add its own framing in place (the S2S frame header) instead of copying the message
 *   into a second buffer. The message is `result.subarray(headroomBytes)`.
 */
export function encodeReadBatchProto(
  batch: {
    readonly records: readonly SequencedRecord[];
    readonly tail?: StreamPosition | undefined;
  },
  headroomBytes = 0,
): Uint8Array {
  const { chunks } = encodeReadBatchProtoChunks(batch, {
    headroomBytes,
    bodyBytesByReferenceMin: Number.POSITIVE_INFINITY,
  });
  assert(chunks.length === 1, "a batch with no body by reference is one buffer");
  return chunks[0]!;
}

/**
 * `encodeReadBatchProto` as chunks whose concatenation is its result, for a writer that gathers
 * them (an S2S read frame written with `writev`): the bodies of at least `bodyBytesByReferenceMin`
 * bytes are chunks of their own, views of the records' bytes (not copied), and everything else is
 * written into one new buffer, of which the other chunks are consecutive views. A catch-up read
 * then copies a large body once (into the socket) instead of twice, and allocates only the small
 * buffer. The first chunk starts with the `headroomBytes` (zeroed).
 *
 * @returns the chunks, never empty, and `messageBytes`, their total length less the headroom.
 */
export function encodeReadBatchProtoChunks(
  batch: {
    readonly records: readonly SequencedRecord[];
    readonly tail?: StreamPosition | undefined;
  },
  options: { readonly headroomBytes: number; readonly bodyBytesByReferenceMin: number },
): { readonly chunks: Uint8Array[]; readonly messageBytes: number } {
  const { records, tail } = batch;
  const { headroomBytes, bodyBytesByReferenceMin } = options;
  const recordSizes = new Array<number>(records.length);
  let size = 0;
  let referencedBytes = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as SequencedRecord;
    const recordSize = sequencedRecordSize(record);
    recordSizes[i] = recordSize;
    size += 1 + varintSize(recordSize) + recordSize;
    if (record.body.length >= bodyBytesByReferenceMin) referencedBytes += record.body.length;
  }
  const tailSize = tail === undefined ? 0 : streamPositionSize(tail);
  if (tail !== undefined) size += 1 + varintSize(tailSize) + tailSize;

  // Not zero-filled: every byte after the headroom is written below (the size check at the end).
  const outBytes = headroomBytes + size - referencedBytes;
  const out = new Uint8Array(Buffer.allocUnsafeSlow(outBytes).buffer, 0, outBytes);
  out.fill(0, 0, headroomBytes);
  const chunks: Uint8Array[] = [];
  /** Where the chunk of `out` being written starts. */
  let chunkStart = 0;
  let pos = headroomBytes;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as SequencedRecord;
    out[pos++] = 0x0a; // ReadBatch.records (1, length-delimited)
    pos = writeVarint(out, pos, recordSizes[i] as number);
    if (record.seqNum !== 0) {
      out[pos++] = 0x08; // SequencedRecord.seq_num (1, varint)
      pos = writeVarint(out, pos, record.seqNum);
    }
    if (record.timestamp !== 0) {
      out[pos++] = 0x10; // SequencedRecord.timestamp (2, varint)
      pos = writeVarint(out, pos, record.timestamp);
    }
    for (const header of record.headers) {
      out[pos++] = 0x1a; // SequencedRecord.headers (3, length-delimited)
      pos = writeVarint(out, pos, headerSize(header));
      if (header.name.length !== 0) pos = writeBytes(out, pos, 0x0a, header.name); // Header.name (1)
      if (header.value.length !== 0) pos = writeBytes(out, pos, 0x12, header.value); // Header.value (2)
    }
    const { body } = record;
    if (body.length >= bodyBytesByReferenceMin) {
      out[pos++] = 0x22; // body (4), its bytes a chunk of their own
      pos = writeVarint(out, pos, body.length);
      chunks.push(out.subarray(chunkStart, pos), body);
      chunkStart = pos;
    } else if (body.length !== 0) {
      pos = writeBytes(out, pos, 0x22, body); // body (4)
    }
  }
  if (tail !== undefined) {
    out[pos++] = 0x12; // ReadBatch.tail (2, length-delimited)
    pos = writeVarint(out, pos, tailSize);
    if (tail.seqNum !== 0) {
      out[pos++] = 0x08; // StreamPosition.seq_num (1, varint)
      pos = writeVarint(out, pos, tail.seqNum);
    }
    if (tail.timestamp !== 0) {
      out[pos++] = 0x10; // StreamPosition.timestamp (2, varint)
      pos = writeVarint(out, pos, tail.timestamp);
    }
  }
  if (pos !== outBytes) {
    throw new Error(`ReadBatch encoder wrote ${pos - headroomBytes} bytes, sized ${size}`);
  }
  if (chunkStart < pos || chunks.length === 0) chunks.push(out.subarray(chunkStart, pos));
  return { chunks, messageBytes: size };
}

/** The varint size of a non-negative safe integer (1..=8 bytes). */
function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  if (value < 0x800000000) return 5; // 2^35
  if (value < 0x40000000000) return 6; // 2^42
  if (value < 0x2000000000000) return 7; // 2^49
  return 8; // up to 2^56, beyond the safe integers
}

/** Writes a non-negative safe integer as a varint at `pos`; returns the position after it. */
function writeVarint(out: Uint8Array, pos: number, value: number): number {
  let v = value;
  // Above 2^31 bit operations would truncate to 32 bits: divide instead.
  while (v > 0x7fffffff) {
    out[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v > 0x7f) {
    out[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[pos++] = v;
  return pos;
}

/** Writes a one-byte tag, the length of `bytes` and `bytes`; returns the position after them. */
function writeBytes(out: Uint8Array, pos: number, tag: number, bytes: Uint8Array): number {
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes.length);
  out.set(bytes, pos);
  return pos + bytes.length;
}

/** The size of a length-delimited bytes field with a one-byte tag; 0 when empty (omitted). */
function bytesFieldSize(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

/** The size of a varint field with a one-byte tag; 0 when zero (omitted). */
function varintFieldSize(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

/** The encoded size of a `Header` message's content. */
function headerSize(header: { readonly name: Uint8Array; readonly value: Uint8Array }): number {
  return bytesFieldSize(header.name.length) + bytesFieldSize(header.value.length);
}

/** The encoded size of a `SequencedRecord` message's content. */
function sequencedRecordSize(record: SequencedRecord): number {
  let size =
    varintFieldSize(record.seqNum) +
    varintFieldSize(record.timestamp) +
    bytesFieldSize(record.body.length);
  for (const header of record.headers) {
    const content = headerSize(header);
    size += 1 + varintSize(content) + content;
  }
  return size;
}

/** The encoded size of a `StreamPosition` message's content. */
function streamPositionSize(position: StreamPosition): number {
  return varintFieldSize(position.seqNum) + varintFieldSize(position.timestamp);
}

/** An `AppendAck` message. */
export function appendAckToProto(ack: AppendAck): AppendAckMessage {
  return create(AppendAckSchema, {
    start: streamPositionToProto(ack.start),
    end: streamPositionToProto(ack.end),
    tail: streamPositionToProto(ack.tail),
  });
}

/** `appendAckToProto`, encoded. */
export function encodeAppendAckProto(ack: AppendAck): Uint8Array {
  return toBinary(AppendAckSchema, appendAckToProto(ack));
}
