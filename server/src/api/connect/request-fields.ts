/**
 * Fields shared by the `tributary.v1` requests, checked once here: list options, request tokens,
 * encryption keys and producers. A field that breaks a rule is 422 `invalid` (lite reports the same rules as
 * `bad_header`/`bad_query` on REST, where they travel in headers and query strings).
 */
import type { HandlerContext } from "@connectrpc/connect";
import { invalid } from "../../core/errors.js";
import { validateRequestToken } from "../../core/names.js";
import { parseEncryptionKey } from "../../core/record-encryption.js";
import type { ListOptions } from "../../service/list.js";
import type { AppendProducer } from "../../streamer/streamer.js";
import type { Producer } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { checkedProducer } from "../http/producer-headers.js";

/** Bytes of an AES-256 / AEGIS-256 key (S2-API.md §6.7). */
const encryptionKeyBytes = 32;

/** `ListOptions` of a list request; `validateName` checks `prefix` and `start_after`. */
export function listOptionsOf(
  request: {
    readonly prefix: string;
    readonly startAfter: string;
    readonly limit?: number | undefined;
  },
  validateName: (value: string, field: "prefix" | "start_after") => string | undefined,
): ListOptions {
  const reason =
    validateName(request.prefix, "prefix") ?? validateName(request.startAfter, "start_after");
  if (reason !== undefined) throw invalid(reason);
  return {
    prefix: request.prefix,
    startAfter: request.startAfter,
    ...(request.limit !== undefined && { limit: request.limit }),
  };
}

/** The request token of a create (REST `S2-Request-Token`); empty means none. */
export function requestTokenFieldOf(token: string): string | undefined {
  if (token === "") return undefined;
  const reason = validateRequestToken(token);
  if (reason !== undefined) throw invalid(`invalid request_token: ${reason}`);
  return token;
}

/**
 * The encryption key of an append or read: the `encryption_key` field (32 raw bytes), else the
 * `s2-encryption-key` metadata parsed as REST parses the header; neither means none.
 */
export function encryptionKeyFieldOf(
  key: Uint8Array,
  context: HandlerContext,
): Uint8Array | undefined {
  if (key.length > 0) {
    if (key.length !== encryptionKeyBytes) {
      throw invalid(
        `invalid encryption_key: must be ${encryptionKeyBytes} bytes. bytes=\`${key.length}\``,
      );
    }
    return key;
  }
  const header = context.requestHeader.get("s2-encryption-key");
  return header === null ? undefined : parseEncryptionKey(header);
}

/** The producer of an append (REST `tributary-producer-*` headers); unset means none. */
export function producerFieldOf(producer: Producer | undefined): AppendProducer | undefined {
  if (producer === undefined) return undefined;
  const seq = producer.seq <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(producer.seq) : Number.NaN;
  return checkedProducer(producer.id, producer.epoch, seq, "invalid");
}
