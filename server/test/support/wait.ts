/**
 * Bounded waits for tests: every wait fails, naming what it waited for, instead of hanging the
 * run.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

/** How long a wait lasts unless told otherwise. */
export const waitTimeoutMsDefault = 10_000;

/** Resolves with `promise`, or fails naming `what` after `timeoutMs`. */
export async function within<T>(
  promise: Promise<T>,
  what: string,
  timeoutMs = waitTimeoutMsDefault,
): Promise<T> {
  const timeout = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(timeoutMs, undefined, { signal: timeout.signal }).then(() =>
        assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`),
      ),
    ]);
  } finally {
    timeout.abort();
  }
}

/** Polls `read` until it returns `expected`, or fails with the last value after `timeoutMs`. */
export async function until(
  read: () => number,
  expected: number,
  what: string,
  timeoutMs = waitTimeoutMsDefault,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  while (value !== expected) {
    if (Date.now() > deadline) {
      assert.fail(`${what}: still ${value} after ${timeoutMs} ms, expected ${expected}`);
    }
    await sleep(20);
    value = read();
  }
}
