/**
 * A read request as HTTP carries it (S2-API.md §5.4, §5.7, §3.1): the query (`seq_num`,
 * `timestamp`, `tail_offset`, `clamp`, `count`, `bytes`, `until`, `wait`), the response mode
 * chosen by `Content-Type` / `Accept`, `S2-Format` and `Last-Event-ID`, and lite's adjustments:
 * unary caps and SSE resumption.
 *
 * Lite checks in this order, and so do callers: the query (400 `bad_query`), the headers (400
 * `bad_header`), then the start (more than one of `seq_num`/`timestamp`/`tail_offset` is 422).
 * u64 query values above `Number.MAX_SAFE_INTEGER` saturate, which keeps every comparison with
 * safe seq nums, timestamps and limits the same (`until` saturates just above, at 2^53, so that
 * it still admits a record whose timestamp is 2^53 - 1).
 */
import { invalid, S2Error } from "../../core/errors.js";
import {
  recordBatchBytesMax,
  recordBatchCountMax,
  unaryReadWaitSecsMax,
} from "../../core/limits.js";
import type { ReadRequest, ReadStart } from "../../service/read-session.js";
import { parseRecordFormat, type RecordFormat } from "../convert/records-json.js";
import { badQuery, queryBool, queryU64, queryU64BigInt } from "./query.js";
import { type ApiRequest, headerOf, mediaTypeOf } from "./request-context.js";

/** The read parameters of the query string, parsed but not yet combined (S2-API.md §5.4). */
export interface ReadQuery {
  readonly seqNum?: number | undefined;
  readonly timestamp?: number | undefined;
  readonly tailOffset?: number | undefined;
  readonly clamp?: boolean | undefined;
  readonly count?: number | undefined;
  readonly bytes?: number | undefined;
  readonly until?: number | undefined;
  readonly waitSecs?: number | undefined;
}

const u32Max = 2n ** 32n - 1n;
const untilSaturated = Number.MAX_SAFE_INTEGER + 1;

/** Parses the read query; malformed values (and repeated parameters) are 400 `bad_query`. */
export function parseReadQuery(query: URLSearchParams): ReadQuery {
  const until = queryU64BigInt(query, "until");
  const wait = queryU64BigInt(query, "wait");
  if (wait !== undefined && wait > u32Max) {
    throw badQuery("wait", "number too large to fit in target type");
  }
  return {
    seqNum: queryU64(query, "seq_num"),
    timestamp: queryU64(query, "timestamp"),
    tailOffset: queryU64(query, "tail_offset"),
    clamp: queryBool(query, "clamp"),
    count: queryU64(query, "count"),
    bytes: queryU64(query, "bytes"),
    until:
      until === undefined
        ? undefined
        : until > BigInt(Number.MAX_SAFE_INTEGER)
          ? untilSaturated
          : Number(until),
    waitSecs: wait === undefined ? undefined : Number(wait),
  };
}

/**
 * The `ReadRequest` of a parsed query: at most one start (else 422 `invalid`); none means
 * `tail_offset=0`, the tail (S2-API.md §11.1).
 */
export function readRequestOf(query: ReadQuery): ReadRequest {
  const starts: ReadStart[] = [];
  if (query.seqNum !== undefined) starts.push({ kind: "seqNum", seqNum: query.seqNum });
  if (query.timestamp !== undefined) {
    starts.push({ kind: "timestamp", timestamp: query.timestamp });
  }
  if (query.tailOffset !== undefined) {
    starts.push({ kind: "tailOffset", tailOffset: query.tailOffset });
  }
  if (starts.length > 1) {
    throw invalid("only one of seq_num, timestamp, or tail_offset can be provided");
  }
  return {
    start: starts[0] ?? { kind: "tailOffset", tailOffset: 0 },
    clamp: query.clamp ?? false,
    count: query.count,
    bytes: query.bytes,
    until: query.until,
    waitSecs: query.waitSecs,
  };
}

/**
 * Lite's unary caps (S2-API.md §5.4): `count` and `bytes` at most 1000 / 1 MiB, also when absent
 * (so a unary read is always bounded and follows only with `wait > 0`), `wait` at most 60 s.
 */
export function unaryReadRequest(request: ReadRequest): ReadRequest {
  return {
    ...request,
    count: Math.min(request.count ?? recordBatchCountMax, recordBatchCountMax),
    bytes: Math.min(request.bytes ?? recordBatchBytesMax, recordBatchBytesMax),
    waitSecs:
      request.waitSecs === undefined ? undefined : Math.min(request.waitSecs, unaryReadWaitSecsMax),
  };
}

// Media types (S2-API.md §3.1).

/** `application/protobuf` or `application/x-protobuf` (a lowercased media type). */
export function isProtobufMediaType(mediaType: string | undefined): boolean {
  return mediaType === "application/protobuf" || mediaType === "application/x-protobuf";
}

/** `s2s/proto`: an S2S session (S2-API.md §5.8). */
export function isS2sMediaType(mediaType: string | undefined): boolean {
  return mediaType === "s2s/proto";
}

/** The lowercased media type of `Content-Type`. */
export function contentTypeOf(request: ApiRequest): string | undefined {
  return mediaTypeOf(headerOf(request, "content-type"));
}

/** The lowercased first media type of `Accept` (lite looks at no other). */
export function firstAcceptOf(request: ApiRequest): string | undefined {
  return mediaTypeOf(headerOf(request, "accept"));
}

// SSE resumption (S2-API.md §5.7).

/** An SSE event id: the last seq num sent and the records and metered bytes sent so far. */
export interface LastEventId {
  readonly seqNum: number;
  readonly count: number;
  readonly bytes: number;
}

const u64Syntax = /^\+?[0-9]+$/;
const u64Max = 2n ** 64n - 1n;

/**
 * Parses `Last-Event-ID: <seq_num>,<count>,<bytes>` as lite does (three u64s; anything else,
 * extra fields included, is 400 `bad_header`). Values above 2^53 - 1 saturate.
 */
export function parseLastEventId(value: string): LastEventId {
  const parts = value.split(",");
  const names = ["seq_num", "count", "bytes"] as const;
  if (parts.length !== names.length) {
    throw new S2Error(
      "bad_header",
      `invalid header \`last-event-id\`: expected \`<seq_num>,<count>,<bytes>\`. value=\`${value}\``,
    );
  }
  const numbers = parts.map((part, i) => {
    if (!u64Syntax.test(part) || BigInt(part) > u64Max) {
      throw new S2Error(
        "bad_header",
        `invalid header \`last-event-id\`: invalid ${names[i]}. value=\`${value}\``,
      );
    }
    const number = BigInt(part);
    return number > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(number);
  });
  return { seqNum: numbers[0]!, count: numbers[1]!, bytes: numbers[2]! };
}

/** The id of an SSE batch event. */
export function formatLastEventId(id: LastEventId): string {
  return `${id.seqNum},${id.count},${id.bytes}`;
}

/**
 * A read resumed after `lastEventId` (lite's `apply_last_event_id`): it starts at `seq_num + 1`
 * whatever the query said (keeping `clamp`), and the query's `count`/`bytes` limits, when given,
 * shrink by what was already sent (saturating at 0).
 */
export function resumedReadRequest(request: ReadRequest, lastEventId: LastEventId): ReadRequest {
  return {
    ...request,
    start: {
      kind: "seqNum",
      seqNum: Math.min(lastEventId.seqNum + 1, Number.MAX_SAFE_INTEGER),
    },
    count: request.count === undefined ? undefined : Math.max(0, request.count - lastEventId.count),
    bytes: request.bytes === undefined ? undefined : Math.max(0, request.bytes - lastEventId.bytes),
  };
}

// Mode.

/** How a read answers (S2-API.md §5.4 "Response mode selection"). */
export type ReadMode =
  | { readonly kind: "s2s" }
  | {
      readonly kind: "sse";
      readonly format: RecordFormat;
      readonly lastEventId: LastEventId | undefined;
    }
  | { readonly kind: "unary"; readonly format: RecordFormat; readonly protobuf: boolean };

/**
 * The mode of a read, as lite's `ReadRequest` extractor decides it: `Content-Type: s2s/proto` is
 * an S2S session (no other header is looked at); else `S2-Format` is parsed, then a first `Accept`
 * of `text/event-stream` is SSE (with `Last-Event-ID`), else a unary read, protobuf when the first
 * `Accept` is protobuf. Invalid `S2-Format` or `Last-Event-ID` is 400 `bad_header`.
 */
export function readModeOf(request: ApiRequest): ReadMode {
  if (isS2sMediaType(contentTypeOf(request))) return { kind: "s2s" };
  const format = parseRecordFormat(headerOf(request, "s2-format"));
  const accept = firstAcceptOf(request);
  if (accept === "text/event-stream") {
    const lastEventId = headerOf(request, "last-event-id");
    return {
      kind: "sse",
      format,
      lastEventId: lastEventId === undefined ? undefined : parseLastEventId(lastEventId),
    };
  }
  return { kind: "unary", format, protobuf: isProtobufMediaType(accept) };
}
