/**
 * The one error table of Tributary (S2-API.md §7), shared by the server, which renders its errors
 * from it (`server/src/api/render-error.ts`), and by clients, which decide from it whether to
 * retry a failure (`client/src/retry.ts`). Pure data: no I/O, no dependency.
 */

/**
 * Every S2 error code (S2-API.md §7.2; wire strings of S2's `ErrorCode`, api/src/v1/error.rs),
 * and five of ours: `append_outcome_unknown` and the `producer_*` codes. Keep alphabetized.
 */
export type ErrorCode =
  | "access_token_not_found"
  | "append_outcome_unknown"
  | "authn"
  | "bad_frame"
  | "bad_header"
  | "bad_json"
  | "bad_path"
  | "bad_proto"
  | "bad_query"
  | "basin_deletion_pending"
  | "basin_not_found"
  | "client_hangup"
  | "decryption_failed"
  | "hot_server"
  | "invalid"
  | "not_implemented"
  | "other"
  | "permission_denied"
  | "producer_fenced"
  | "producer_limit"
  | "producer_out_of_sequence"
  | "producer_seq_too_old"
  | "quota_exhausted"
  | "rate_limited"
  | "request_timeout"
  | "resource_already_exists"
  | "server_draining"
  | "storage"
  | "stream_deletion_pending"
  | "stream_not_found"
  | "transaction_conflict"
  | "unavailable"
  | "upstream_timeout";

/**
 * A Connect error code by its wire name (connectrpc.com/docs/protocol#error-codes). We spell the
 * strings instead of importing connect-es's `Code` so that this package depends on no RPC
 * library; the server's `api/render-error.ts` maps them to `Code`.
 */
export type ConnectCode =
  | "aborted"
  | "already_exists"
  | "canceled"
  | "data_loss"
  | "deadline_exceeded"
  | "failed_precondition"
  | "internal"
  | "invalid_argument"
  | "not_found"
  | "out_of_range"
  | "permission_denied"
  | "resource_exhausted"
  | "unauthenticated"
  | "unavailable"
  | "unimplemented"
  | "unknown";

/** How an error is rendered and whether a client may retry it. */
export interface ErrorCodeInfo {
  /** HTTP status (S2 `ErrorCode::status`). */
  readonly http: number;
  /**
   * Connect code (ours). Chosen so that connect-es `codeToHttpStatus(connect) === http` whenever
   * some Connect code maps to that status; the exact S2 code travels in error metadata.
   */
  readonly connect: ConnectCode;
  /** Whether the SDKs consider a retry sensible (S2 `ErrorCode::is_retryable`). */
  readonly retryable: boolean;
  /**
   * Whether the server guarantees that nothing happened (S2 `ErrorCode::has_no_side_effects`).
   * When in doubt this is `false`: a client may only resend a non-idempotent request on `true`.
   */
  readonly noSideEffects: boolean;
}

/**
 * The error table (S2-API.md §7.2). HTTP, `retryable` and `noSideEffects` are S2's; `connect` is
 * ours (see `ErrorCodeInfo.connect`). Where no Connect code maps to S2's status (422, 499, 501,
 * 502, 504) we pick the closest meaning. `errors.test.ts` pins every row.
 */
export const errorCodeInfo = {
  access_token_not_found: {
    http: 404,
    connect: "not_found",
    retryable: false,
    noSideEffects: true,
  },
  // Ours, not S2's: an append whose outcome the server does not know (its writer stopped with the
  // segment PUT unanswered). 503 like `unavailable`, so S2's SDKs treat it as they treat that;
  // never `noSideEffects`: resend it only with `match_seq_num` (docs/design/storage.md).
  append_outcome_unknown: {
    http: 503,
    connect: "unavailable",
    retryable: true,
    noSideEffects: false,
  },
  authn: { http: 401, connect: "unauthenticated", retryable: false, noSideEffects: true },
  bad_frame: { http: 400, connect: "invalid_argument", retryable: false, noSideEffects: true },
  bad_header: { http: 400, connect: "invalid_argument", retryable: false, noSideEffects: true },
  bad_json: { http: 400, connect: "invalid_argument", retryable: false, noSideEffects: true },
  bad_path: { http: 400, connect: "invalid_argument", retryable: false, noSideEffects: true },
  bad_proto: { http: 400, connect: "invalid_argument", retryable: false, noSideEffects: true },
  bad_query: { http: 400, connect: "invalid_argument", retryable: false, noSideEffects: true },
  basin_deletion_pending: { http: 409, connect: "aborted", retryable: false, noSideEffects: true },
  basin_not_found: { http: 404, connect: "not_found", retryable: false, noSideEffects: true },
  client_hangup: { http: 499, connect: "canceled", retryable: false, noSideEffects: false },
  decryption_failed: {
    http: 400,
    connect: "invalid_argument",
    retryable: false,
    noSideEffects: true,
  },
  hot_server: { http: 502, connect: "unavailable", retryable: true, noSideEffects: true },
  invalid: { http: 422, connect: "invalid_argument", retryable: false, noSideEffects: true },
  not_implemented: { http: 501, connect: "unimplemented", retryable: false, noSideEffects: true },
  other: { http: 500, connect: "unknown", retryable: true, noSideEffects: false },
  permission_denied: {
    http: 403,
    connect: "permission_denied",
    retryable: false,
    noSideEffects: true,
  },
  // Ours, for idempotent producers (docs/design/producers.md): nothing was written; resending
  // the same batch cannot help, so not retryable.
  producer_fenced: { http: 409, connect: "aborted", retryable: false, noSideEffects: true },
  /** The stream has `producersPerStreamMax` producers; waiting for expiry is the only remedy. */
  producer_limit: { http: 409, connect: "aborted", retryable: false, noSideEffects: true },
  producer_out_of_sequence: {
    http: 409,
    connect: "aborted",
    retryable: false,
    noSideEffects: true,
  },
  /** The batch was applied earlier (a later seq of its epoch was accepted after it). */
  producer_seq_too_old: { http: 409, connect: "aborted", retryable: false, noSideEffects: true },
  // Not resource_exhausted: that maps to 429 and reads as "retry later"; S2 says 403, no retry.
  quota_exhausted: {
    http: 403,
    connect: "permission_denied",
    retryable: false,
    noSideEffects: true,
  },
  rate_limited: { http: 429, connect: "resource_exhausted", retryable: true, noSideEffects: true },
  request_timeout: {
    http: 408,
    connect: "deadline_exceeded",
    retryable: true,
    noSideEffects: false,
  },
  resource_already_exists: {
    http: 409,
    connect: "already_exists",
    retryable: false,
    noSideEffects: true,
  },
  server_draining: { http: 503, connect: "unavailable", retryable: true, noSideEffects: true },
  storage: { http: 500, connect: "internal", retryable: true, noSideEffects: false },
  stream_deletion_pending: { http: 409, connect: "aborted", retryable: false, noSideEffects: true },
  stream_not_found: { http: 404, connect: "not_found", retryable: false, noSideEffects: true },
  transaction_conflict: { http: 409, connect: "aborted", retryable: true, noSideEffects: true },
  unavailable: { http: 503, connect: "unavailable", retryable: true, noSideEffects: false },
  upstream_timeout: {
    http: 504,
    connect: "deadline_exceeded",
    retryable: true,
    noSideEffects: false,
  },
} as const satisfies Record<ErrorCode, ErrorCodeInfo>; // The compiler rejects a missing code.

/** Every error code, alphabetized (the keys of `errorCodeInfo`). */
export const errorCodes: readonly ErrorCode[] = Object.freeze(
  (Object.keys(errorCodeInfo) as ErrorCode[]).sort(),
);

/** Whether `value` is an S2 error code, e.g. one read back from Connect error metadata. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(errorCodeInfo, value);
}

/**
 * Which body an error renders as (S2-API.md §7.1): the standard `{code, message}`, the 412
 * append-condition body, or the 416 `{tail}` body.
 */
export type ErrorBodyKind = "error_info" | "append_condition_failed" | "unwritten";

/**
 * Status and Connect code of the two errors whose body is not `{code, message}`. S2 has no error
 * code for them (lite returns them outside its `ErrorCode`); their flags match their S2Error
 * `code`, "invalid": the request was rejected before anything happened and resending it unchanged
 * fails again.
 */
export const errorBodyInfo = {
  append_condition_failed: {
    http: 412,
    connect: "failed_precondition",
    retryable: false,
    noSideEffects: true,
  },
  unwritten: { http: 416, connect: "out_of_range", retryable: false, noSideEffects: true },
} as const satisfies Record<Exclude<ErrorBodyKind, "error_info">, ErrorCodeInfo>;
