/**
 * The cap on open streaming sessions of every kind together (S2S append and read, SSE, RPC append
 * and read): a session takes a slot before it starts, and one over `sessionsMax` is refused with
 * 429 `rate_limited` (retryable, without side effects) as an ordinary error response, before its
 * 200 (issue 14: nothing bounded the sessions a server holds). A slot is released when its
 * session ends, however it ends.
 */
import { assert } from "../core/assert.js";
import { S2Error } from "../core/errors.js";

export class SessionSlots {
  private openCount = 0;

  constructor(private readonly sessionsMax: number) {
    assert(sessionsMax >= 1, `at least one session must be admissible. max=\`${sessionsMax}\``);
  }

  /** Runs `serve` in a slot; throws 429 `rate_limited` when every slot is taken. */
  async serve<T>(serve: () => Promise<T>): Promise<T> {
    const release = this.acquire();
    try {
      return await serve();
    } finally {
      release();
    }
  }

  /** `serve` for a session served as an async generator (the RPC sessions). */
  async *serveStream<T>(serve: () => AsyncGenerator<T, void, undefined>): AsyncGenerator<T, void> {
    const release = this.acquire();
    try {
      yield* serve();
    } finally {
      release();
    }
  }

  /** Takes a slot and returns its release (idempotent); throws 429 when none is free. */
  acquire(): () => void {
    if (this.openCount >= this.sessionsMax) {
      throw new S2Error(
        "rate_limited",
        `too many open sessions on this server. max=\`${this.sessionsMax}\``,
      );
    }
    this.openCount++;
    let isReleased = false;
    return () => {
      if (isReleased) return;
      isReleased = true;
      this.openCount--;
      assert(this.openCount >= 0, "a session slot is released once");
    };
  }
}
