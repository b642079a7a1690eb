/**
 * Assertions for invariants that only a bug can break. Corrupt state crashes the process, and
 * recovery (rebuilding from object storage) is the restart path. User input is validated with
 * `S2Error("invalid")`, never asserted. Never catch an `AssertionError`.
 */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

/** Throws `AssertionError` unless `condition` holds. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Closes every `switch` over a union: the compiler rejects a missing case. */
export function assertNever(value: never, message = "unexpected value"): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}
