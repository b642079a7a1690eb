/**
 * The clock is injected so that tests and the simulator can drive time. `nowMs` is wall-clock time
 * (record timestamps); `monotonicMs` measures durations (latency, timeouts) and never goes back.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  nowMs(): number;
  /** Milliseconds from an arbitrary origin; never decreases. */
  monotonicMs(): number;
  /** Calls `fn` after `delayMs`; returns a cancel function. */
  setTimer(delayMs: number, fn: () => void): () => void;
  /** Resolves after `delayMs`. */
  sleep(delayMs: number): Promise<void>;
}

/** The real clock. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimer(delayMs, fn) {
    // setTimeout(0) waits at least 1 ms; work that is already due should not.
    if (delayMs <= 0) {
      const immediate = setImmediate(fn);
      return () => clearImmediate(immediate);
    }
    const handle = setTimeout(fn, delayMs);
    return () => clearTimeout(handle);
  },
  sleep: (delayMs) => new Promise((resolve) => setTimeout(resolve, delayMs)),
};

/**
 * Settles like `promise`, or with "timeout" once `timeoutMs` has passed first (an infinite
 * timeout never fires). The operation behind `promise` goes on either way: callers that retry
 * must be ready for it to complete late.
 */
export function orTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  clock: Clock,
): Promise<T | "timeout"> {
  return new Promise((resolve, reject) => {
    const cancel = Number.isFinite(timeoutMs)
      ? clock.setTimer(timeoutMs, () => resolve("timeout"))
      : () => {};
    promise.then(
      (value) => {
        cancel();
        resolve(value);
      },
      (error: unknown) => {
        cancel();
        reject(error);
      },
    );
  });
}
