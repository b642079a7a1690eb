/**
 * A clock for tests whose wall time is set by the test (timestamps, retention, metrics buckets),
 * while monotonic time, timers and sleeps stay real so that the code under test still runs.
 */
import type { Clock } from "../../src/core/clock.js";

export interface SettableClock extends Clock {
  setNowMs(nowMs: number): void;
}

export function createSettableClock(initialMs: number): SettableClock {
  let nowMs = initialMs;
  return {
    nowMs: () => nowMs,
    monotonicMs: () => performance.now(),
    setTimer(delayMs, fn) {
      const handle = setTimeout(fn, delayMs);
      return () => clearTimeout(handle);
    },
    sleep: (delayMs) => new Promise((resolve) => setTimeout(resolve, delayMs)),
    setNowMs(value) {
      nowMs = value;
    },
  };
}
