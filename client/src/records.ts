/**
 * Record inputs as the client accepts them, their conversion to `s2.v1.AppendRecord`, and the S2
 * metered size that batching limits and back-pressure are counted in.
 */
import { create } from "@bufbuild/protobuf";
import {
  headerMeteredOverheadBytes,
  recordBatchBytesMax,
  recordBatchCountMax,
  recordMeteredOverheadBytes,
} from "@tributary/protocol";
import { type AppendRecord, AppendRecordSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";

/** Bytes or text; text is encoded as UTF-8. */
export type Bytes = Uint8Array | string;

/** A record to append. */
export interface RecordInput {
  /** The body; empty when absent. */
  readonly body?: Bytes;
  /** Headers as `[name, value]` pairs. */
  readonly headers?: readonly (readonly [Bytes, Bytes])[];
  /** The client's timestamp in milliseconds, used according to the stream's timestamping mode. */
  readonly timestamp?: bigint;
}

/** At most this many records in one batch. */
export const maxBatchRecords = recordBatchCountMax;
/** At most this many metered bytes in one batch (1 MiB). */
export const maxBatchBytes = recordBatchBytesMax;

const encoder = new TextEncoder();

function bytesOf(value: Bytes | undefined): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  return typeof value === "string" ? encoder.encode(value) : value;
}

/** Converts a record input to its protobuf message. */
export function toAppendRecord(input: RecordInput): AppendRecord {
  return create(AppendRecordSchema, {
    body: bytesOf(input.body),
    headers: (input.headers ?? []).map(([name, value]) => ({
      name: bytesOf(name),
      value: bytesOf(value),
    })),
    ...(input.timestamp !== undefined && { timestamp: input.timestamp }),
  });
}

/** The metered size of a record: 8 + 2 per header + the lengths of names, values and body. */
export function meteredBytes(record: AppendRecord): number {
  let size =
    recordMeteredOverheadBytes +
    headerMeteredOverheadBytes * record.headers.length +
    record.body.length;
  for (const header of record.headers) size += header.name.length + header.value.length;
  return size;
}
