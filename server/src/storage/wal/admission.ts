/**
 * Admission control for the write path: a FIFO semaphore over metered bytes that are accepted but
 * not yet durable and cached. Appends wait here rather than grow memory (back-pressure, as
 * s2-lite's `--append-inflight-bytes`). FIFO, so that a session's batches keep their order: a
 * small batch never overtakes a large one that is waiting.
 */
import { assert } from "../../core/assert.js";

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class Admission {
  private inflightBytes = 0;
  private readonly waiters: Waiter[] = [];
  private closedError: unknown;

  constructor(readonly capacityBytes: number) {
    assert(capacityBytes > 0, "admission capacity must be positive");
  }

  /** Bytes admitted and not yet released. */
  get inflight(): number {
    return this.inflightBytes;
  }

  /** Number of appends waiting for admission. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves once `bytes` fit. A request larger than the capacity is admitted alone (when nothing
   * else is in flight), so that the capacity never deadlocks a valid batch.
   */
  acquire(bytes: number): Promise<void> {
    assert(bytes >= 0, "admission bytes must be non-negative");
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.inflightBytes += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  /** Returns bytes acquired earlier and admits waiters in order. */
  release(bytes: number): void {
    assert(bytes >= 0 && bytes <= this.inflightBytes, "released more than acquired");
    this.inflightBytes -= bytes;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const waiter = this.waiters.shift()!;
      this.inflightBytes += waiter.bytes;
      waiter.resolve();
    }
  }

  /** Fails every waiter and every later acquire with `error`. */
  close(error: unknown): void {
    this.closedError = error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  private fits(bytes: number): boolean {
    return this.inflightBytes === 0 || this.inflightBytes + bytes <= this.capacityBytes;
  }
}
