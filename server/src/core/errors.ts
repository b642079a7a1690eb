/**
 * The server's errors (S2-API.md §7). Everything below `api/` throws `S2Error`;
 * `api/render-error.ts` is the only code that turns one into a wire shape (JSON body, Connect
 * error, S2S terminal frame), taking the status and Connect code from `errorInfoOf`. The error
 * table itself is the protocol package's (`@tributary/protocol`), re-exported here.
 */
import {
  type ErrorBodyKind,
  type ErrorCode,
  type ErrorCodeInfo,
  errorBodyInfo,
  errorCodeInfo,
} from "@tributary/protocol";
import type { StreamPosition } from "./records.js";

export {
  type ConnectCode,
  type ErrorBodyKind,
  type ErrorCode,
  type ErrorCodeInfo,
  errorBodyInfo,
  errorCodeInfo,
  errorCodes,
  isErrorCode,
} from "@tributary/protocol";

/**
 * An error that the API renders for the client (S2-API.md §7). Messages follow slatedb's rules:
 * lowercase, variables last as key=`value`, the cause not repeated in the text.
 */
export class S2Error extends Error {
  override readonly name: string = "S2Error";
  /** Selects the wire body; only the subclasses below change it. */
  readonly bodyKind: ErrorBodyKind = "error_info";

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The condition an append failed on; the 412 body carries the stream's current value. */
export type AppendConditionFailure =
  | { readonly kind: "fencing_token_mismatch"; readonly currentToken: string }
  | { readonly kind: "seq_num_mismatch"; readonly nextSeqNum: number };

/**
 * An append's `fencing_token` or `match_seq_num` did not match (S2-API.md §5.3, §7.1): HTTP 412
 * with body `{"fencing_token_mismatch": token}` or `{"seq_num_mismatch": n}`, not `{code,
 * message}`. Its `code` is "invalid" (no retry, no side effects); render-error recognizes it by
 * `bodyKind` and takes status and Connect code from `errorBodyInfo`.
 */
export class AppendConditionFailed extends S2Error {
  override readonly name: string = "AppendConditionFailed";
  override readonly bodyKind = "append_condition_failed" as const;

  constructor(
    readonly condition: AppendConditionFailure,
    options?: { cause?: unknown },
  ) {
    super(
      "invalid",
      condition.kind === "fencing_token_mismatch"
        ? `append condition failed: fencing token mismatch. current_token=\`${condition.currentToken}\``
        : `append condition failed: seq num mismatch. next_seq_num=\`${condition.nextSeqNum}\``,
      options,
    );
  }
}

/**
 * A read would start at or beyond the tail and cannot wait (S2-API.md §5.4, §11.1–3): HTTP 416
 * with body `{"tail": {"seq_num", "timestamp"}}`. Its `code` is "invalid" like
 * `AppendConditionFailed`; render-error recognizes it by `bodyKind`.
 */
export class ReadUnwritten extends S2Error {
  override readonly name: string = "ReadUnwritten";
  override readonly bodyKind = "unwritten" as const;

  constructor(
    readonly tail: StreamPosition,
    options?: { cause?: unknown },
  ) {
    super(
      "invalid",
      `read start is at or beyond the tail. tail_seq_num=\`${tail.seqNum}\` tail_timestamp=\`${tail.timestamp}\``,
      options,
    );
  }
}

/** The status, Connect code and retry flags to render `error` with (honours `bodyKind`). */
export function errorInfoOf(error: S2Error): ErrorCodeInfo {
  return error.bodyKind === "error_info"
    ? errorCodeInfo[error.code]
    : errorBodyInfo[error.bodyKind];
}

// Lite's messages (S2-API.md §7.2), verbatim so clients and tests see what lite says.

/** 404 ``basin `X` not found``. */
export function basinNotFound(basin: string): S2Error {
  return new S2Error("basin_not_found", `basin \`${basin}\` not found`);
}

/** 404 ``stream `S` in basin `X` not found``. */
export function streamNotFound(at: { basin: string; stream: string }): S2Error {
  return new S2Error(
    "stream_not_found",
    `stream \`${at.stream}\` in basin \`${at.basin}\` not found`,
  );
}

/** 409 ``basin `X` already exists`` (create without a matching request token, §6.3). */
export function basinAlreadyExists(basin: string): S2Error {
  return new S2Error("resource_already_exists", `basin \`${basin}\` already exists`);
}

/** 409 ``stream `S` in basin `X` already exists`` (§6.3). */
export function streamAlreadyExists(at: { basin: string; stream: string }): S2Error {
  return new S2Error(
    "resource_already_exists",
    `stream \`${at.stream}\` in basin \`${at.basin}\` already exists`,
  );
}

/** 409 ``basin `X` is being deleted`` (§6.5). */
export function basinDeletionPending(basin: string): S2Error {
  return new S2Error("basin_deletion_pending", `basin \`${basin}\` is being deleted`);
}

/** 409 `stream deletion pending` (§6.5); lite names no stream in it. */
export function streamDeletionPending(): S2Error {
  return new S2Error("stream_deletion_pending", "stream deletion pending");
}

/** 409 transaction conflict between concurrent metadata changes; retryable (§6.7). */
export function transactionConflict(options?: { cause?: unknown }): S2Error {
  return new S2Error(
    "transaction_conflict",
    "transaction conflict occurred – this is usually retriable",
    options,
  );
}

/** 501 `Not implemented` (access tokens, metrics, locations; §7.2). */
export function notImplemented(): S2Error {
  return new S2Error("not_implemented", "Not implemented");
}

/** 422 `invalid` with a validation reason, e.g. one returned by `names.ts` or `config.ts`. */
export function invalid(reason: string): S2Error {
  return new S2Error("invalid", reason);
}
