/**
 * The flusher: group commit of every pending entry of every stream into one segment per flush,
 * uploaded create-if-absent at the next sequential WAL id (docs/design/storage.md "The write
 * path").
 *
 * Invariants:
 * - One PUT in flight at a time, at ids `firstWalId, firstWalId + 1, …` with no gaps: id n+1 is
 *   never attempted before id n is known to be ours.
 * - Entries become durable in submission order; `onSegmentDurable` sees each segment once, in WAL
 *   order, before any of its submitters is resolved.
 * - Nothing is resolved unless its segment is in object storage with our write id.
 *
 * Fault model: a PUT may throw (before or after applying), hang (timed out after
 * `putTimeoutMs`) or apply late. Every such outcome is retried at the same key with the same
 * bytes; "exists" is resolved by reading the object back. A foreign write id means a newer writer
 * took the id: the flusher is fenced, fails everything pending with `FencedError` and stops.
 * A flusher that stops while a PUT is unanswered fails that segment's entries with
 * `OutcomeUnknownError`: they may have landed.
 */
import { assert } from "../../core/assert.js";
import { type Clock, orTimeout } from "../../core/clock.js";
import { failpoint } from "../../core/failpoints.js";
import {
  segmentBytesMax,
  segmentPutRetryDelayMsMax,
  segmentPutRetryDelayMsMin,
  segmentPutTimeoutDoublingsMax,
} from "../../core/limits.js";
import type { Random } from "../../core/random.js";
import { walKey } from "../object-keys.js";
import type { ObjectStore } from "../object-store/object-store.js";
import {
  decodeSegmentHeader,
  encodedSegmentBytes,
  encodeSegment,
  type SegmentEntry,
  type SegmentEntryInput,
  SegmentFormatError,
  segmentHeaderBytes,
  writeIdBytes,
} from "../segment/format.js";

/** The writer has been fenced by a newer one: nothing pending was or will be acknowledged. */
export class FencedError extends Error {
  override readonly name = "FencedError";
}

/** The flusher was closed before the entry became durable. */
export class FlusherClosedError extends Error {
  override readonly name = "FlusherClosedError";
}

/**
 * The flusher stopped (fenced or closed) while the PUT of the entry's segment was unanswered: an
 * attempt that timed out or failed may still have landed, and a newer writer then replays it. So
 * the entry may or may not be durable; nobody here can say. Entries of a segment found taken by
 * another writer, or never sent, get `FencedError` / `FlusherClosedError`: they are not durable.
 */
export class OutcomeUnknownError extends Error {
  override readonly name = "OutcomeUnknownError";
}

/** A segment now in object storage. */
export interface DurableSegment {
  readonly walId: number;
  readonly writeId: Uint8Array;
  readonly writerEpoch: number;
  readonly entries: readonly SegmentEntry[];
  readonly bytes: number;
  /** The segment exactly as uploaded (the local cache keeps these bytes). */
  readonly encoded: Uint8Array;
}

export interface FlusherOptions {
  readonly store: ObjectStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly writerEpoch: number;
  /** The first WAL id this writer uploads to (the one after its fence segment). */
  readonly firstWalId: number;
  readonly flushIntervalMs: number;
  readonly segmentBytesTarget: number;
  readonly putTimeoutMs: number;
  /** Called synchronously per durable segment, in WAL order, before its submitters resolve. */
  readonly onSegmentDurable: (segment: DurableSegment) => void;
  /** Called once when the flusher finds it is fenced. */
  readonly onFenced: (error: FencedError) => void;
}

/** One submission: entries that go into the same segment, in order, or into none. */
interface PendingEntry {
  readonly entries: readonly SegmentEntry[];
  readonly inputs: readonly SegmentEntryInput[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Counters for metrics, benchmarks and the one-PUT-per-flush test. */
export interface FlusherStats {
  segmentsUploaded: number;
  putAttempts: number;
  putRetries: number;
  bytesUploaded: number;
  lastPutLatencyMs: number;
}

function toInput(entry: SegmentEntry): SegmentEntryInput {
  if (entry.kind === "control") return entry;
  return {
    kind: "records",
    streamId: entry.streamId,
    firstSeqNum: entry.firstSeqNum,
    encodedRecords: entry.records.map((record) => record.encoded),
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Flusher {
  readonly stats: FlusherStats = {
    segmentsUploaded: 0,
    putAttempts: 0,
    putRetries: 0,
    bytesUploaded: 0,
    lastPutLatencyMs: 0,
  };
  private readonly pending: PendingEntry[] = [];
  private pendingBytes = 0;
  private nextWalId: number;
  private lastFlushStartMs = Number.NEGATIVE_INFINITY;
  private cancelTimer: (() => void) | undefined;
  private isTimerImmediate = false;
  private flushing: Promise<void> | undefined;
  private failure: Error | undefined;

  constructor(private readonly options: FlusherOptions) {
    this.nextWalId = options.firstWalId;
  }

  /** The id the next segment will be uploaded to. */
  get nextSegmentId(): number {
    return this.nextWalId;
  }

  /** Whether the flusher is fenced or closed. */
  get isStopped(): boolean {
    return this.failure !== undefined;
  }

  /** Queues an entry for the next segment; resolves once that segment is durable. */
  submit(entry: SegmentEntry): Promise<void> {
    return this.submitAll([entry]);
  }

  /**
   * Queues entries that must be durable together (a producer's batch and its `producer.put`):
   * they go into one segment, in order, never split; resolves once it is durable.
   */
  submitAll(entries: readonly SegmentEntry[]): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    assert(entries.length > 0, "a submission holds at least one entry");
    const inputs = entries.map(toInput);
    const bytes = encodedSegmentBytes(inputs) - encodedSegmentBytes([]);
    // Every entry fits a segment on its own (producers bound their entries), so a segment the
    // decoder would reject is never built.
    assert(
      encodedSegmentBytes([]) + bytes <= segmentBytesMax,
      `entry larger than a segment. bytes=\`${bytes}\``,
    );
    return new Promise((resolve, reject) => {
      this.pending.push({ entries, inputs, bytes, resolve, reject });
      this.pendingBytes += bytes;
      this.schedule();
    });
  }

  /** Flushes everything pending now (tests, shutdown); resolves when it is durable. */
  async flushNow(): Promise<void> {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    while (this.flushing !== undefined || this.pending.length > 0) {
      if (this.failure !== undefined) return;
      if (this.flushing === undefined) this.flushing = this.flushOnce();
      await this.flushing;
    }
  }

  /** Marks the writer fenced (also used when a newer manifest is seen). */
  fence(reason: string): void {
    if (this.failure !== undefined) return;
    const error = new FencedError(reason);
    this.stop(error);
    this.options.onFenced(error);
  }

  /** Flushes what is pending, then stops; later submits fail. */
  async close(): Promise<void> {
    await this.flushNow();
    this.stop(new FlusherClosedError("flusher closed"));
  }

  private stop(error: Error): void {
    this.failure = error;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    for (const pending of this.pending.splice(0)) pending.reject(error);
    this.pendingBytes = 0;
  }

  /** Arms the flush timer: at most one flush per interval, sooner when a segment's worth waits. */
  private schedule(): void {
    if (this.flushing !== undefined || this.pending.length === 0 || this.failure !== undefined)
      return;
    const { clock, flushIntervalMs, segmentBytesTarget } = this.options;
    const isSegmentFull = this.pendingBytes >= segmentBytesTarget;
    if (this.cancelTimer !== undefined) {
      // An armed interval timer is brought forward once a segment's worth is pending.
      if (!isSegmentFull || this.isTimerImmediate) return;
      this.cancelTimer();
    }
    const dueMs = this.lastFlushStartMs + flushIntervalMs - clock.monotonicMs();
    const delayMs = isSegmentFull ? 0 : Math.max(0, dueMs);
    this.isTimerImmediate = delayMs === 0;
    this.cancelTimer = clock.setTimer(delayMs, () => {
      this.cancelTimer = undefined;
      if (this.flushing !== undefined) return;
      this.flushing = this.flushOnce();
    });
  }

  private async flushOnce(): Promise<void> {
    try {
      await this.flushSegment();
    } finally {
      this.flushing = undefined;
      this.schedule();
    }
  }

  /** Takes pending entries up to the target size (at least one), uploads them, releases them. */
  private async flushSegment(): Promise<void> {
    const { clock, random, writerEpoch, segmentBytesTarget } = this.options;
    this.lastFlushStartMs = clock.monotonicMs();
    failpoint("flush.before-build");
    const taken: PendingEntry[] = [];
    let takenBytes = 0;
    // The target is a soft cut; `segmentBytesMax` is hard whatever the target is configured to.
    const takenBytesMax = Math.min(segmentBytesTarget, segmentBytesMax - encodedSegmentBytes([]));
    while (this.pending.length > 0) {
      const next = this.pending[0]!;
      if (taken.length > 0 && takenBytes + next.bytes > takenBytesMax) break;
      taken.push(this.pending.shift()!);
      takenBytes += next.bytes;
      this.pendingBytes -= next.bytes;
    }
    if (taken.length === 0) return;

    const walId = this.nextWalId;
    const writeId = random.bytes(writeIdBytes);
    const bytes = encodeSegment({
      walId,
      writerEpoch,
      writeId,
      entries: taken.flatMap((p) => p.inputs),
    });
    const outcome = await this.putSegment(walKey(walId), bytes, writeId);
    if (outcome === "fenced") {
      const error = new FencedError(`wal id taken by another writer. walId=\`${walId}\``);
      for (const pending of taken) pending.reject(error);
      this.fence(error.message);
      return;
    }
    if (outcome === "stopped") {
      for (const pending of taken) pending.reject(this.failure);
      return;
    }
    if (outcome === "unknown") {
      const error = new OutcomeUnknownError(
        `the writer stopped while a segment PUT was unanswered. walId=\`${walId}\``,
        { cause: this.failure },
      );
      for (const pending of taken) pending.reject(error);
      return;
    }
    failpoint("flush.after-put");
    this.nextWalId = walId + 1;
    this.stats.segmentsUploaded += 1;
    this.stats.bytesUploaded += bytes.length;
    this.options.onSegmentDurable({
      walId,
      writeId,
      writerEpoch,
      entries: taken.flatMap((pending) => pending.entries),
      bytes: bytes.length,
      encoded: bytes,
    });
    for (const pending of taken) pending.resolve();
  }

  /**
   * PUTs a segment until it is known to be ours ("ok"), someone else's ("fenced"), or the flusher
   * stopped meanwhile: before any attempt ("stopped": not sent) or after one that got no clear
   * answer ("unknown": it may have landed). Retries every error and timeout with backoff.
   */
  private async putSegment(
    key: string,
    bytes: Uint8Array,
    writeId: Uint8Array,
  ): Promise<"ok" | "fenced" | "stopped" | "unknown"> {
    const { clock, random, store, putTimeoutMs } = this.options;
    let delayMs = segmentPutRetryDelayMsMin;
    for (let attempt = 0; ; attempt++) {
      if (this.failure !== undefined) return attempt === 0 ? "stopped" : "unknown";
      if (attempt > 0) {
        this.stats.putRetries += 1;
        await clock.sleep(delayMs * (0.5 + random.float()));
        delayMs = Math.min(delayMs * 2, segmentPutRetryDelayMsMax);
        if (this.failure !== undefined) return "unknown";
      }
      this.stats.putAttempts += 1;
      const startMs = clock.monotonicMs();
      // Each retry waits longer: a store slower than the timeout (a big segment on a slow link)
      // must still get a chance to answer, or a durable segment would never be acknowledged.
      const timeoutMs = putTimeoutMs * 2 ** Math.min(attempt, segmentPutTimeoutDoublingsMax);
      let result: "created" | "exists" | "timeout";
      try {
        result = await orTimeout(store.putIfAbsent(key, bytes), timeoutMs, clock);
      } catch {
        continue;
      }
      if (result === "timeout") continue;
      this.stats.lastPutLatencyMs = clock.monotonicMs() - startMs;
      if (result === "created") return "ok";
      let header: Uint8Array | undefined | "timeout";
      try {
        header = await orTimeout(
          store.get(key, { start: 0, end: segmentHeaderBytes }),
          timeoutMs,
          clock,
        );
      } catch {
        continue;
      }
      if (header === "timeout") continue;
      // "exists" then missing: only a GC could do that, and GC never deletes the WAL's head.
      assert(header !== undefined, `segment vanished after a conflicting put: ${key}`);
      try {
        return sameBytes(decodeSegmentHeader(header).writeId, writeId) ? "ok" : "fenced";
      } catch (error) {
        // Not a segment of ours, whatever it is: the id is taken.
        if (error instanceof SegmentFormatError) return "fenced";
        throw error;
      }
    }
  }
}
