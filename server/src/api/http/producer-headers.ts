/**
 * The idempotent-producer headers of an append (docs/design/producers.md), ours and optional:
 * `tributary-producer-id` (1–64 printable ASCII bytes), `tributary-producer-epoch` (u32) and
 * `tributary-producer-seq` (an unsigned decimal): all three or none, else 400 `bad_header`. On
 * a REST append the seq is the batch's; on the request that opens an S2S append session it is the
 * first batch's, one more for each following batch.
 */
import { S2Error } from "../../core/errors.js";
import { producerIdBytesMax } from "../../core/limits.js";
import type { AppendProducer } from "../../streamer/streamer.js";
import { type ApiRequest, headerOf } from "./request-context.js";

export const producerIdHeader = "tributary-producer-id";
export const producerEpochHeader = "tributary-producer-epoch";
export const producerSeqHeader = "tributary-producer-seq";

const epochMax = 2 ** 32 - 1;

/** The producer of an append request, or undefined when it names none. */
export function producerOf(request: ApiRequest): AppendProducer | undefined {
  const producerId = headerOf(request, producerIdHeader);
  const epoch = headerOf(request, producerEpochHeader);
  const seq = headerOf(request, producerSeqHeader);
  if (producerId === undefined && epoch === undefined && seq === undefined) return undefined;
  if (producerId === undefined || epoch === undefined || seq === undefined) {
    throw new S2Error(
      "bad_header",
      `${producerIdHeader}, ${producerEpochHeader} and ${producerSeqHeader} go together`,
    );
  }
  return checkedProducer(producerId, parseUnsigned(epoch), parseUnsigned(seq), "bad_header");
}

/** A decimal header value, NaN when it is not one. */
function parseUnsigned(text: string): number {
  return /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
}

/**
 * A producer's fields, checked (id 1–64 printable ASCII, epoch u32, seq a safe unsigned integer),
 * else an error with `code`: `bad_header` for the REST headers, `invalid` for RPC fields.
 */
export function checkedProducer(
  producerId: string,
  epoch: number,
  seq: number,
  code: "bad_header" | "invalid",
): AppendProducer {
  if (
    producerId.length === 0 ||
    producerId.length > producerIdBytesMax ||
    !/^[\x20-\x7e]+$/.test(producerId)
  ) {
    throw new S2Error(
      code,
      `the producer id must be 1 to ${producerIdBytesMax} printable ASCII characters`,
    );
  }
  if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > epochMax) {
    throw new S2Error(code, `the producer epoch must be an unsigned integer up to ${epochMax}`);
  }
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new S2Error(code, "the producer seq must be an unsigned integer below 2^53");
  }
  return { producerId, epoch, seq };
}
