/**
 * The one place where errors become wire shapes (S2-API.md §7.1): the JSON body of an HTTP error
 * response, the payload of an S2S terminal frame, the data of an SSE `error` event, and the
 * `ConnectError` of a Connect, gRPC or gRPC-web call (`renderConnectError`). Everything
 * else throws `S2Error`. An error that is not an `S2Error` is a bug or an unexpected failure: it is
 * rendered as 500 `other` (side effects unknown) and logged. Assertions are never rendered: they
 * crash the process.
 */
import { Code, ConnectError, encodeBinaryHeader } from "@connectrpc/connect";
import { connectErrorMetadata } from "@tributary/protocol";
import { AssertionError } from "../core/assert.js";
import {
  AppendConditionFailed,
  type ConnectCode,
  errorInfoOf,
  ReadUnwritten,
  S2Error,
} from "../core/errors.js";

/** A rendered error: HTTP status and JSON body. */
export interface RenderedError {
  readonly status: number;
  readonly body: unknown;
  /** The S2 error code, for logs and Connect metadata. */
  readonly code: string;
}

/** Logs unexpected failures; replaced in tests. */
export let logUnexpectedError = (error: unknown): void => {
  process.stderr.write(
    `tributary: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
};

/** Installs the logger for unexpected errors (tests silence it). */
export function setUnexpectedErrorLogger(logger: (error: unknown) => void): void {
  logUnexpectedError = logger;
}

/** The status and body `error` renders as. */
export function renderError(error: unknown): RenderedError {
  if (error instanceof AssertionError) throw error;
  if (!(error instanceof S2Error)) {
    logUnexpectedError(error);
    return { status: 500, code: "other", body: { code: "other", message: "internal error" } };
  }
  const status = errorInfoOf(error).http;
  if (error instanceof AppendConditionFailed) {
    const { condition } = error;
    const body =
      condition.kind === "fencing_token_mismatch"
        ? { fencing_token_mismatch: condition.currentToken }
        : { seq_num_mismatch: condition.nextSeqNum };
    return { status, code: error.code, body };
  }
  if (error instanceof ReadUnwritten) {
    return {
      status,
      code: error.code,
      body: { tail: { seq_num: error.tail.seqNum, timestamp: error.tail.timestamp } },
    };
  }
  return { status, code: error.code, body: { code: error.code, message: error.message } };
}

const encoder = new TextEncoder();

/** The payload of an S2S terminal frame: u16 status + the JSON body (S2-API.md §5.8). */
export function renderErrorTerminalPayload(error: unknown): Uint8Array {
  const { status, body } = renderError(error);
  const json = encoder.encode(JSON.stringify(body));
  const payload = new Uint8Array(2 + json.length);
  new DataView(payload.buffer).setUint16(0, status);
  payload.set(json, 2);
  return payload;
}

/** An SSE `error` event carrying the JSON body (S2-API.md §5.7). */
export function renderErrorSseEvent(error: unknown): string {
  const { body } = renderError(error);
  return `event: error\ndata: ${JSON.stringify(body)}\n\n`;
}

/** Connect codes by wire name (connectrpc.com/docs/protocol#error-codes). */
const connectCodeOf = {
  aborted: Code.Aborted,
  already_exists: Code.AlreadyExists,
  canceled: Code.Canceled,
  data_loss: Code.DataLoss,
  deadline_exceeded: Code.DeadlineExceeded,
  failed_precondition: Code.FailedPrecondition,
  internal: Code.Internal,
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  out_of_range: Code.OutOfRange,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  unavailable: Code.Unavailable,
  unimplemented: Code.Unimplemented,
  unknown: Code.Unknown,
} as const satisfies Record<ConnectCode, Code>;

/** Error metadata keys, the protocol package's (clients read them back). */
export { connectErrorMetadata };

/**
 * The `ConnectError` a Connect, gRPC or gRPC-web call fails with: the Connect code of the error
 * table (`errorInfoOf`), the S2 code in `s2-error-code` metadata, and for 412 and 416 what their
 * JSON bodies carry as metadata too. A `ConnectError` raised by the protocol layer (a malformed
 * message, a wrong content type, a cancelled call) is already a wire shape and is returned as is.
 */
export function renderConnectError(error: unknown): ConnectError {
  if (error instanceof AssertionError) throw error;
  if (error instanceof ConnectError) return error;
  const { code } = renderError(error);
  const metadata = new Headers({ [connectErrorMetadata.code]: code });
  if (!(error instanceof S2Error)) {
    return new ConnectError("internal error", Code.Unknown, metadata);
  }
  if (error instanceof AppendConditionFailed) {
    const { condition } = error;
    if (condition.kind === "fencing_token_mismatch") {
      metadata.set(
        connectErrorMetadata.fencingTokenMismatch,
        encodeBinaryHeader(condition.currentToken),
      );
    } else {
      metadata.set(connectErrorMetadata.seqNumMismatch, String(condition.nextSeqNum));
    }
  } else if (error instanceof ReadUnwritten) {
    metadata.set(connectErrorMetadata.tailSeqNum, String(error.tail.seqNum));
    metadata.set(connectErrorMetadata.tailTimestamp, String(error.tail.timestamp));
  }
  const connectCode = connectCodeOf[errorInfoOf(error).connect];
  return new ConnectError(error.message, connectCode, metadata, undefined, error);
}
