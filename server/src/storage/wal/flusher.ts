/**
 * The flusher: group commit of every pending entry of every stream into one segment per flush,
 * uploaded create-if-absent at the next sequential WAL id (docs/design/storage.md "The write
 * path").
 *
 * Invariants (docs/design/storage.md "The PUT window"):
 * - Segments get the ids `firstWalId, firstWalId + 1, …` in the order they are built, with no
 *   gaps; at most `walPutsInFlightMax` of them are unreleased at once, so no PUT ever goes past
 *   `h + walPutsInFlightMax − 1`, where `h` is the first id not yet known to be ours.
 * - A segment is released (durable) only once it and every segment before it are known to be
 *   ours: `onSegmentDurable` sees each segment once, in WAL order, before any of its submitters
 *   is resolved; entries become durable in submission order.
 * - Nothing is resolved unless its segment, and every one before it, is in object storage with
 *   our write id.
 *
 * Fault model: a PUT may throw (before or after applying), hang (timed out after
 * `putTimeoutMs`) or apply late, and PUTs answer in any order. Every such outcome is retried at
 * the same key with the same bytes; "exists" is resolved by reading the object back. A foreign
 * write id means a newer writer took the id: the flusher is fenced and stops. When it stops,
 * unreleased segments fail with `OutcomeUnknownError` if they were sent before the fenced id (they
 * may be in the newer writer's history), with `FencedError` at or past it (dead: never durable),
 * and with the stop's error if they were never sent.
 */
import { assert } from "../../core/assert.js";
import { type Clock, orTimeout } from "../../core/clock.js";
import { failpoint } from "../../core/failpoints.js";
import {
  segmentBytesMax,
  segmentPutRetryDelayMsMax,
  segmentPutRetryDelayMsMin,
  segmentPutTimeoutDoublingsMax,
  walPipelinedFlushBytesMin,
  walPutsInFlightMax,
} from "../../core/limits.js";
import type { Random } from "../../core/random.js";
import { walKey } from "../object-keys.js";
import type { ObjectStore } from "../object-store/object-store.js";
import {
  decodeSegmentHeader,
  encodedSegmentBytes,
  type EncodedSegment,
  encodeSegmentParts,
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
  /** The segment exactly as uploaded, in its parts (the local cache keeps these bytes). */
  readonly encoded: EncodedSegment;
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

/** A segment built and being PUT (or landed, waiting for the ones before it). */
interface InFlightSegment {
  readonly walId: number;
  readonly writeId: Uint8Array;
  readonly encoded: EncodedSegment;
  readonly taken: readonly PendingEntry[];
  /** Its first PUT attempt has been sent (it may land from now on). */
  sent: boolean;
  /** Known to be ours in the bucket. */
  landed: boolean;
  /** Settles (never rejects) once its PUT loop is over. */
  done: Promise<void>;
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
  /** Unreleased segments in WAL order: the window. */
  private readonly inFlight: InFlightSegment[] = [];
  private failure: Error | undefined;
  /**
   * Set once a newer writer is known, until `stop`: why, and the lowest of our ids it was found
   * to hold (+∞ when it was learnt from the manifests). Nothing new is built meanwhile; the
   * segments before `fencedAt` are still being answered (`settleFence`).
   */
  private fencing: { readonly reason: string; fencedAt: number } | undefined;
  private cancelFenceTimer: (() => void) | undefined;
  /** Resolves once `stop` ran. */
  private readonly stopped: Promise<void>;
  private resolveStopped: () => void = () => {};

  constructor(private readonly options: FlusherOptions) {
    this.nextWalId = options.firstWalId;
    this.stopped = new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  /** The id the next segment will be uploaded to. */
  get nextSegmentId(): number {
    return this.nextWalId;
  }

  /** Segments being PUT or waiting for the ones before them (tests, metrics). */
  get segmentsInFlight(): number {
    return this.inFlight.length;
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
    if (this.fencing !== undefined) return Promise.reject(new FencedError(this.fencing.reason));
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
    while (this.inFlight.length > 0 || this.pending.length > 0) {
      if (this.failure !== undefined) return;
      if (this.fencing !== undefined) return this.stopped;
      while (this.pending.length > 0 && this.inFlight.length < walPutsInFlightMax) {
        this.startSegment();
      }
      await this.inFlight[0]?.done;
    }
  }

  /**
   * A newer writer exists: `walId` is our id it was found holding, when that is how it was found
   * (else it was seen in the manifests). Takes nothing new, fails what is pending, tells the host,
   * and stops once the segments it can still judge are answered (`settleFence`).
   */
  fence(reason: string, walId?: number): void {
    if (this.failure !== undefined) return;
    const fencedAt = walId ?? Number.POSITIVE_INFINITY;
    if (this.fencing !== undefined) {
      this.fencing.fencedAt = Math.min(this.fencing.fencedAt, fencedAt);
    } else {
      this.fencing = { reason, fencedAt };
      this.cancelTimer?.();
      this.cancelTimer = undefined;
      const error = new FencedError(reason);
      for (const pending of this.pending.splice(0)) pending.reject(error);
      this.pendingBytes = 0;
      this.options.onFenced(error);
    }
    this.settleFence();
  }

  /** Flushes what is pending, then stops; later submits fail. */
  async close(): Promise<void> {
    await this.flushNow();
    if (this.failure === undefined) this.stop(new FlusherClosedError("flusher closed"));
  }

  /**
   * Fails everything not released. A segment sent before the fenced id may have landed and be in
   * the newer writer's history: its outcome is unknown. One at or past the fenced id is dead (the
   * newer writer's epoch comes before it). One never sent, and every pending entry, gets `error`.
   */
  private stop(error: Error, fencedWalId?: number): void {
    this.failure = error;
    this.resolveStopped();
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.cancelFenceTimer?.();
    this.cancelFenceTimer = undefined;
    for (const segment of this.inFlight.splice(0)) {
      const isDead = fencedWalId !== undefined && segment.walId >= fencedWalId;
      const failure =
        segment.sent && !isDead
          ? new OutcomeUnknownError(
              `the writer stopped while a segment PUT was unanswered or waiting for an earlier one. walId=\`${segment.walId}\``,
              { cause: error },
            )
          : error;
      for (const pending of segment.taken) pending.reject(failure);
    }
    for (const pending of this.pending.splice(0)) pending.reject(error);
    this.pendingBytes = 0;
  }

  /**
   * Arms the flush timer: at most one flush per interval, sooner when a segment's worth waits;
   * never more than `walPutsInFlightMax` segments unreleased.
   */
  private schedule(): void {
    if (!this.canStartSegment()) return;
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
      if (!this.canStartSegment()) return;
      this.startSegment();
      this.schedule();
    });
  }

  /**
   * Whether a segment may start now: something pending, room in the window, and, while PUTs are
   * in flight, at least `walPipelinedFlushBytesMin` pending (or a full segment); below that the
   * next flush waits for a PUT to end, as with one PUT at a time.
   */
  private canStartSegment(): boolean {
    if (this.failure !== undefined || this.fencing !== undefined) return false;
    if (this.pending.length === 0 || this.inFlight.length >= walPutsInFlightMax) return false;
    if (this.inFlight.length === 0) return true;
    const bytesMin = Math.min(walPipelinedFlushBytesMin, this.options.segmentBytesTarget);
    return this.pendingBytes >= bytesMin;
  }

  /**
   * Takes pending entries up to the target size (at least one) into the next segment and starts
   * its PUT; the segment is released once it and every one before it have landed.
   */
  private startSegment(): void {
    const { clock, random, writerEpoch, segmentBytesTarget } = this.options;
    assert(this.inFlight.length < walPutsInFlightMax, "the window has room");
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
    this.nextWalId = walId + 1;
    const writeId = random.bytes(writeIdBytes);
    const encoded = encodeSegmentParts({
      walId,
      writerEpoch,
      writeId,
      entries: taken.flatMap((p) => p.inputs),
    });
    const last = this.inFlight.at(-1);
    assert(last === undefined || last.walId === walId - 1, "the window's ids are consecutive");
    const segment: InFlightSegment = {
      walId,
      writeId,
      encoded,
      taken,
      sent: false,
      landed: false,
      done: Promise.resolve(),
    };
    this.inFlight.push(segment);
    segment.done = this.putSegment(segment).then((outcome) => {
      if (outcome === "ok") {
        segment.landed = true;
        this.releaseLanded();
      } else if (outcome === "fenced") {
        this.fence(`wal id taken by another writer. walId=\`${walId}\``, walId);
      }
      // "stopped" and "unknown": `stop` already failed the segment.
      if (this.fencing !== undefined) this.settleFence();
      this.schedule();
    });
  }

  /**
   * Judges the window once a newer writer is known. Where it fenced, at `f`, every id below `f`
   * was in its history (it fences at the first id it finds missing), so each id from our head up
   * to `fencedAt` that it did not hold is ours or will be: its fence lies at or past `fencedAt`.
   * Hence our segments before `fencedAt` that land are durable (released, acked, in order), and
   * those at or past it are dead. The ones before it get `putTimeoutMs` to be answered; what is
   * still unanswered then is unknown (`stop`).
   */
  private settleFence(): void {
    const fencing = this.fencing;
    assert(fencing !== undefined, "settling a fence that was found");
    if (this.failure !== undefined) return;
    this.releaseLanded();
    const error = new FencedError(fencing.reason);
    if (this.inFlight.every((segment) => segment.walId >= fencing.fencedAt)) {
      this.stop(error, fencing.fencedAt);
      return;
    }
    this.cancelFenceTimer ??= this.options.clock.setTimer(this.options.putTimeoutMs, () => {
      this.cancelFenceTimer = undefined;
      this.stop(error, fencing.fencedAt);
    });
  }

  /** Releases the window's head while it has landed: durable, in WAL order. */
  private releaseLanded(): void {
    while (
      this.failure === undefined &&
      this.inFlight[0]?.landed === true &&
      this.inFlight[0].walId < (this.fencing?.fencedAt ?? Number.POSITIVE_INFINITY)
    ) {
      const segment = this.inFlight.shift()!;
      failpoint("flush.after-put");
      this.stats.segmentsUploaded += 1;
      this.stats.bytesUploaded += segment.encoded.byteLength;
      this.options.onSegmentDurable({
        walId: segment.walId,
        writeId: segment.writeId,
        writerEpoch: this.options.writerEpoch,
        entries: segment.taken.flatMap((pending) => pending.entries),
        encoded: segment.encoded,
      });
      for (const pending of segment.taken) pending.resolve();
    }
  }

  /**
   * PUTs a segment until it is known to be ours ("ok"), someone else's ("fenced"), or the flusher
   * stopped meanwhile: before any attempt ("stopped": not sent) or after one that got no clear
   * answer ("unknown": it may have landed). Retries every error and timeout with backoff.
   */
  private async putSegment(
    segment: InFlightSegment,
  ): Promise<"ok" | "fenced" | "stopped" | "unknown"> {
    const { clock, random, store, putTimeoutMs } = this.options;
    const key = walKey(segment.walId);
    const bytes = segment.encoded.parts;
    const { writeId } = segment;
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
      segment.sent = true;
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
        const found = decodeSegmentHeader(header);
        if (sameBytes(found.writeId, writeId)) return "ok";
        // Our start tombstoned every id an earlier writer could still reach: a foreign segment
        // here can only be a newer writer's.
        assert(
          found.writerEpoch > this.options.writerEpoch,
          `a segment of an older writer past our fence: ${key} epoch ${found.writerEpoch}`,
        );
        return "fenced";
      } catch (error) {
        // Not a segment of ours, whatever it is: the id is taken.
        if (error instanceof SegmentFormatError) return "fenced";
        throw error;
      }
    }
  }
}
