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
} from "../../../../gen/s2/v1/s2_pb.js";
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
 * `errorCode` (`bad_proto` for a REST body, `bad_frame` for an S2S frame).
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

/** `readBatchToProto`, encoded. */
export function encodeReadBatchProto(batch: {
  readonly records: readonly SequencedRecord[];
  readonly tail?: StreamPosition | undefined;
}): Uint8Array {
  return toBinary(ReadBatchSchema, readBatchToProto(batch));
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
