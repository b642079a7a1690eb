/**
 * When the client retries a failed call, and the backoff between attempts.
 *
 * A failure is retried only when the server's one error table (`errorCodeInfo` of @tributary/protocol, S2's
 * `ErrorCode::{is_retryable, has_no_side_effects}`) says it is `retryable`, *and* resending cannot
 * apply the request twice: the call is side-effect-free or idempotent, or the failure guarantees
 * that nothing happened (`noSideEffects`). The S2 code comes from the `s2-error-code` metadata the
 * server puts on every error (`renderConnectError`); a failure without one (a refused or reset
 * connection, a proxy's 502, a failed `fetch`) is a transport-level `unavailable`: retryable, side
 * effects unknown.
 *
 * Appends: an append is resent when the failure says no side effect happened (e.g.
 * `rate_limited`, `server_draining`), or when it carries `matchSeqNum` or a producer. The
 * condition makes a duplicate impossible: if the first attempt was applied after all, the resend
 * fails with FAILED_PRECONDITION and `s2-seq-num-mismatch` = its end, instead of appending the
 * records a second time; a producer's resend is answered with the first attempt's ack
 * (docs/design/producers.md). This is the S2 SDKs' `noSideEffects` append policy; their default policy `all`
 * (resend everything) can duplicate records and is not offered.
 *
 * Only unary calls are retried (`createRetryingTransport`). Streaming calls pass through: the read
 * session resumes by itself at the next seq num, and an append session fails as a whole.
 */
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ContextValues,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { DescMessage, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import {
  connectErrorMetadata,
  type ErrorCode,
  errorCodeInfo,
  isErrorCode,
} from "@tributary/protocol";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";

/** The metadata key of the S2 error code (`connectErrorMetadata.code` of @tributary/protocol). */
export const s2ErrorCodeMetadataKey = connectErrorMetadata.code;

/** Attempts of one unary call, the first included (S2 SDKs: 3; ours also spans a quick restart). */
export const unaryAttemptsMaxDefault = 5;
/** The first backoff; it doubles after each failed attempt (S2 SDKs: 100 ms). */
export const backoffInitialMsDefault = 100;
/** The largest backoff (S2 SDKs: 1 s; ours lets a read session wait out a restart). */
export const backoffMaxMsDefault = 2000;
/** Each backoff is scaled by a random factor in [1 - this, 1 + this], so clients spread out. */
export const backoffJitterRatio = 0.2;

/**
 * Connect codes that a failure without an S2 code has when the transport failed rather than the
 * server answering: connect-node maps a refused connection to UNAVAILABLE, a reset one to ABORTED,
 * other socket and HTTP/2 errors to INTERNAL; connect-web maps a failed `fetch` to UNKNOWN; a
 * gateway's 502/503/504 and 429 read as UNAVAILABLE and RESOURCE_EXHAUSTED; a per-attempt
 * `timeoutMs` is DEADLINE_EXCEEDED; a server that dies mid-call resets its HTTP/2 streams with
 * CANCEL, which connect-node reports as CANCELED. A call canceled by its own `AbortSignal` also
 * fails with CANCELED: callers check their signal first (`createRetryingTransport` does). Other
 * codes without an S2 code come from the protocol layer (a malformed request, an unknown method)
 * and are final.
 */
const transportFailureCodes: ReadonlySet<Code> = new Set([
  Code.Canceled,
  Code.Unavailable,
  Code.Aborted,
  Code.Internal,
  Code.Unknown,
  Code.ResourceExhausted,
  Code.DeadlineExceeded,
]);

/**
 * The S2 error code of a failure: the `s2-error-code` metadata, or `unavailable` for a
 * transport-level failure without one; `undefined` when the failure is neither.
 */
export function s2ErrorCodeOf(error: unknown): ErrorCode | undefined {
  const connectError = ConnectError.from(error);
  const code = connectError.metadata.get(s2ErrorCodeMetadataKey);
  if (code !== null) return isErrorCode(code) ? code : undefined;
  return transportFailureCodes.has(connectError.code) ? "unavailable" : undefined;
}

/** Whether the error table calls a failure transient (S2 `ErrorCode::is_retryable`). */
export function isRetryable(error: unknown): boolean {
  const code = s2ErrorCodeOf(error);
  return code !== undefined && errorCodeInfo[code].retryable;
}

/** Whether the error table guarantees that the failed call changed nothing. */
export function hasNoSideEffects(error: unknown): boolean {
  const code = s2ErrorCodeOf(error);
  return code !== undefined && errorCodeInfo[code].noSideEffects;
}

/**
 * Whether sending `input` to `method` twice has the effect of sending it once: methods the proto
 * declares `NO_SIDE_EFFECTS` (gets, lists, check tail, read) or `IDEMPOTENT` (ensure,
 * reconfigure, delete), creates with a request token (a resend answers NOOP), and appends with
 * `matchSeqNum` (a resend of an applied append fails its condition instead of duplicating) or a
 * producer (a resend of an applied append gets its first ack).
 */
export function isIdempotentRequest<I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
): boolean {
  if (method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN) return true;
  const fields = input as { readonly requestToken?: string; readonly input?: unknown };
  if (
    (method as DescMethodUnary) === AccountService.method.createBasin ||
    (method as DescMethodUnary) === BasinService.method.createStream
  ) {
    return (fields.requestToken ?? "") !== "";
  }
  if ((method as DescMethodUnary) === StreamService.method.append) {
    const appendInput = fields.input as { readonly matchSeqNum?: bigint } | undefined;
    const { producer } = input as { readonly producer?: unknown };
    return appendInput?.matchSeqNum !== undefined || producer !== undefined;
  }
  return false;
}

/** Whether a unary call that failed with `error` may be sent again (see the module comment). */
export function isRetrySafe<I extends DescMessage, O extends DescMessage>(call: {
  readonly method: DescMethodUnary<I, O>;
  readonly input: MessageInitShape<I>;
  readonly error: unknown;
}): boolean {
  const code = s2ErrorCodeOf(call.error);
  if (code === undefined) return false;
  const { retryable, noSideEffects } = errorCodeInfo[code];
  return retryable && (noSideEffects || isIdempotentRequest(call.method, call.input));
}

/** Backoff settings for retries. */
export interface RetryOptions {
  /** The first delay in milliseconds (default 100); it doubles after each failure. */
  readonly initialBackoffMs?: number;
  /** The largest delay in milliseconds (default 2000). */
  readonly maxBackoffMs?: number;
  /**
   * Give up after this many consecutive failures (default: 5 attempts of a unary call; a read
   * session tolerates 30 failed reconnects).
   */
  readonly maxAttempts?: number;
}

/** The delay before retry number `attempt` (1-based), with jitter (`backoffJitterRatio`). */
export function backoffMs(attempt: number, options: RetryOptions = {}): number {
  const initial = options.initialBackoffMs ?? backoffInitialMsDefault;
  const max = options.maxBackoffMs ?? backoffMaxMsDefault;
  const base = Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
  return base * (1 - backoffJitterRatio + 2 * backoffJitterRatio * Math.random());
}

/** The error a call aborted by `signal` fails with, as connect-es reports an aborted call. */
function abortedError(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? "the call was aborted", Code.Canceled);
}

/** Waits `ms`, or rejects as soon as `signal` aborts. */
function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Wraps a transport so that its unary calls are retried when `isRetrySafe`, at most
 * `maxAttempts` attempts with exponential backoff and jitter, and never after the call's
 * `AbortSignal` fired. The last failure surfaces unchanged (code and metadata). A call's
 * `timeoutMs` bounds each attempt; its signal bounds the whole call. Streaming calls pass through.
 */
export function createRetryingTransport(
  transport: Transport,
  options: RetryOptions = {},
): Transport {
  const attemptsMax = options.maxAttempts ?? unaryAttemptsMaxDefault;
  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: Parameters<Transport["unary"]>[3],
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await transport.unary(method, signal, timeoutMs, header, input, contextValues);
        } catch (error) {
          if (signal?.aborted || attempt >= attemptsMax || !isRetrySafe({ method, input, error }))
            throw error;
          await sleepUnlessAborted(backoffMs(attempt, options), signal);
        }
      }
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}
