/**
 * Which failures a client may retry (the transient ones of the error table) and the backoff
 * between attempts. Only side-effect-free calls are retried.
 */
import { Code, ConnectError } from "@connectrpc/connect";

const retryableCodes: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Aborted,
  Code.Internal,
  Code.Unknown,
  Code.ResourceExhausted,
]);

/** Whether an error is transient: the connection dropped, the server restarted or was busy. */
export function isRetryable(error: unknown): boolean {
  return retryableCodes.has(ConnectError.from(error).code);
}

/** Backoff settings for retries. */
export interface RetryOptions {
  /** The first delay in milliseconds (default 100); it doubles after each failure. */
  readonly initialBackoffMs?: number;
  /** The largest delay in milliseconds (default 2000). */
  readonly maxBackoffMs?: number;
  /** Give up after this many consecutive failures (default 30). */
  readonly maxAttempts?: number;
}

/** The delay before retry number `attempt` (1-based), with ±20 % jitter. */
export function backoffMs(attempt: number, options: RetryOptions = {}): number {
  const initial = options.initialBackoffMs ?? 100;
  const max = options.maxBackoffMs ?? 2000;
  const base = Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
  return base * (0.8 + 0.4 * Math.random());
}
