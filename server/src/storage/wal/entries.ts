/**
 * Control-plane operations carried in WAL control entries. They are full records ("put" the whole
 * basin or stream as it now is, or "remove" it), so replaying a WAL applies them without needing
 * the previous state, and replaying one twice changes nothing.
 *
 * Configs are kept as the JSON produced by core/config.ts's encoders: storage stores and replays
 * them but never interprets them.
 */
import type { MetricsDelta } from "../metrics-ledger.js";

/** A basin as stored. */
export interface BasinRecord {
  readonly name: string;
  /** `encodeBasinConfig` output. */
  readonly config: unknown;
  readonly createdAtMs: number;
  /** Set once deletion was requested; the basin is removed when its streams are gone. */
  readonly deletedAtMs: number | null;
  /** Idempotency key of the create request (hash of request token and config), if any. */
  readonly createKey: string | null;
}

/** A stream as stored. `streamId` is unique for the life of the bucket and never reused. */
export interface StreamRecord {
  readonly basin: string;
  readonly name: string;
  readonly streamId: number;
  /** `encodeStreamConfig` output: the fully resolved config. */
  readonly config: unknown;
  readonly cipher: string | null;
  readonly createdAtMs: number;
  readonly deletedAtMs: number | null;
  readonly createKey: string | null;
}

/**
 * An access token as stored (docs/design/auth.md): never its secret, only the secret's SHA-256.
 * `scope` is `core/access-scope.ts`'s `AccessScope` as JSON; storage never interprets it.
 */
export interface AccessTokenRecord {
  readonly id: string;
  /** Hex SHA-256 of the secret; lookups go by it. */
  readonly secretHash: string;
  readonly scope: unknown;
  /** Null: never expires. */
  readonly expiresAtMs: number | null;
  readonly autoPrefixStreams: boolean;
  readonly createdAtMs: number;
}

export type ControlOp =
  | { readonly op: "basin.put"; readonly basin: BasinRecord }
  | { readonly op: "basin.remove"; readonly name: string }
  | { readonly op: "stream.put"; readonly stream: StreamRecord }
  | {
      readonly op: "stream.remove";
      readonly basin: string;
      readonly name: string;
      readonly streamId: number;
    }
  /**
   * Retention: records below `trimPoint` expired. Unlike a trim command it takes no seq num, so
   * expiry never changes a stream's positions.
   */
  | { readonly op: "stream.expire"; readonly streamId: number; readonly trimPoint: number }
  /** An access token issued (the whole record) or revoked. */
  | { readonly op: "token.put"; readonly token: AccessTokenRecord }
  | { readonly op: "token.remove"; readonly id: string }
  /** Metrics deltas of one recorder flush (docs/design/metrics.md), folded into the ledger. */
  | ({ readonly op: "metrics.add" } & MetricsDelta)
  /**
   * The records entry just before it, in the same segment, was appended by a producer
   * (docs/design/producers.md): its id, epoch and seq, and the batch's ack positions.
   */
  | ({ readonly op: "producer.put" } & ProducerBatch)
  /**
   * A producer idle on a stream since `appendedAtMsAtMost` is forgotten (its newest batch was
   * appended then or before; a newer one keeps it).
   */
  | {
      readonly op: "producer.expire";
      readonly streamId: number;
      readonly producerId: string;
      readonly appendedAtMsAtMost: number;
    };

/** One producer's batch as the WAL and the producer state keep it. */
export interface ProducerBatch {
  readonly streamId: number;
  readonly producerId: string;
  readonly epoch: number;
  readonly seq: number;
  /** The batch's first seq num and timestamp, and its last record's timestamp. */
  readonly firstSeqNum: number;
  readonly recordCount: number;
  readonly firstTimestamp: number;
  readonly lastTimestamp: number;
  /** The server's wall time when the batch was sequenced (idle expiry measures from it). */
  readonly appendedAtMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a control operation as a control entry payload. */
export function encodeControlOp(op: ControlOp): Uint8Array {
  return encoder.encode(JSON.stringify(op));
}

/** Raised for a control payload that does not parse: a writer bug or corruption past the CRC. */
export class ControlOpDecodeError extends Error {
  override readonly name = "ControlOpDecodeError";
}

function isRecordLike(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** Decodes a control entry payload, checking the fields replay relies on. */
export function decodeControlOp(payload: Uint8Array): ControlOp {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch (error) {
    throw new ControlOpDecodeError("control entry is not JSON", { cause: error });
  }
  if (!isRecordLike(value)) throw new ControlOpDecodeError("control entry is not an object");
  switch (value["op"]) {
    case "basin.put":
      if (isRecordLike(value["basin"]) && typeof value["basin"]["name"] === "string") {
        return value as unknown as ControlOp;
      }
      break;
    case "basin.remove":
      if (typeof value["name"] === "string") return value as unknown as ControlOp;
      break;
    case "stream.put": {
      const stream = value["stream"];
      if (
        isRecordLike(stream) &&
        typeof stream["basin"] === "string" &&
        typeof stream["name"] === "string" &&
        Number.isSafeInteger(stream["streamId"])
      ) {
        return value as unknown as ControlOp;
      }
      break;
    }
    case "stream.expire":
      if (Number.isSafeInteger(value["streamId"]) && Number.isSafeInteger(value["trimPoint"])) {
        return value as unknown as ControlOp;
      }
      break;
    case "token.put": {
      const token = value["token"];
      if (
        isRecordLike(token) &&
        typeof token["id"] === "string" &&
        typeof token["secretHash"] === "string"
      ) {
        return value as unknown as ControlOp;
      }
      break;
    }
    case "token.remove":
      if (typeof value["id"] === "string") return value as unknown as ControlOp;
      break;
    case "metrics.add":
      if (
        Number.isSafeInteger(value["atSec"]) &&
        Array.isArray(value["counters"]) &&
        Array.isArray(value["gauges"])
      ) {
        return value as unknown as ControlOp;
      }
      break;
    case "producer.put":
      if (
        Number.isSafeInteger(value["streamId"]) &&
        typeof value["producerId"] === "string" &&
        Number.isSafeInteger(value["epoch"]) &&
        Number.isSafeInteger(value["seq"]) &&
        Number.isSafeInteger(value["firstSeqNum"]) &&
        Number.isSafeInteger(value["recordCount"]) &&
        Number.isSafeInteger(value["firstTimestamp"]) &&
        Number.isSafeInteger(value["lastTimestamp"]) &&
        Number.isSafeInteger(value["appendedAtMs"])
      ) {
        return value as unknown as ControlOp;
      }
      break;
    case "producer.expire":
      if (
        Number.isSafeInteger(value["streamId"]) &&
        typeof value["producerId"] === "string" &&
        Number.isSafeInteger(value["appendedAtMsAtMost"])
      ) {
        return value as unknown as ControlOp;
      }
      break;
    case "stream.remove":
      if (
        typeof value["basin"] === "string" &&
        typeof value["name"] === "string" &&
        Number.isSafeInteger(value["streamId"])
      ) {
        return value as unknown as ControlOp;
      }
      break;
  }
  throw new ControlOpDecodeError(`malformed control entry. op=\`${String(value["op"])}\``);
}
