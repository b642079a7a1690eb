/**
 * The read algorithm shared by unary reads, SSE and S2S read sessions (S2-API.md §5.4, §11.1–3,
 * §11.11–15): start resolution with clamp and the 416 rules, catch-up from the cache in batches of
 * ≤ 1000 records / 1 MiB, the `count`/`bytes`/`until` limits (records are never split), then
 * following the tail: a heartbeat at once, each durable batch with its `tail`, a heartbeat after a
 * random 5–15 s of silence, and the `wait` deadline re-armed by every batch. A follower that
 * lags is cut off by the streamer; the session then catches up from the cache and follows again.
 *
 * Invariants: records are emitted in seq-num order without gaps other than trimmed ones, each at
 * most once; only durable records are ever emitted; a batch is non-empty.
 */
import { type Clock, orTimeout } from "../core/clock.js";
import { invalid, ReadUnwritten, S2Error } from "../core/errors.js";
import {
  heartbeatDelayMsMax,
  heartbeatDelayMsMin,
  readBatchBytesMax,
  readBatchCountMax,
} from "../core/limits.js";
import type { Random } from "../core/random.js";
import {
  meteredBytes,
  type SeqNum,
  type SequencedRecord,
  type StreamPosition,
} from "../core/records.js";
import type { ReadAhead } from "../storage/storage.js";
import type { Follower, Streamer } from "../streamer/streamer.js";
import { noteUnaryReadSession } from "./metrics.js";

/** Where a read starts (S2-API.md §5.4); none given means `tailOffset: 0`. */
export type ReadStart =
  | { readonly kind: "seqNum"; readonly seqNum: SeqNum }
  | { readonly kind: "timestamp"; readonly timestamp: number }
  | { readonly kind: "tailOffset"; readonly tailOffset: number };

export interface ReadRequest {
  readonly start: ReadStart;
  readonly clamp: boolean;
  /** Max records; undefined = unbounded. */
  readonly count?: number | undefined;
  /** Max metered bytes; undefined = unbounded. */
  readonly bytes?: number | undefined;
  /** Exclusive timestamp upper bound. */
  readonly until?: number | undefined;
  /** Seconds to wait for new records at the tail; undefined = the default of §5.4. */
  readonly waitSecs?: number | undefined;
}

export type ReadEvent =
  | {
      readonly kind: "batch";
      readonly records: readonly SequencedRecord[];
      readonly tail?: StreamPosition;
    }
  | { readonly kind: "heartbeat"; readonly tail: StreamPosition };

export interface ReadSessionDeps {
  readonly clock: Clock;
  readonly random: Random;
  /** Overrides the 5–15 s heartbeat delay (tests). */
  readonly heartbeatDelayMs?: (() => number) | undefined;
  /**
   * Turns records as stored into records as emitted: the decryption of an encrypted stream
   * (S2-API.md §6.7). Absent = records are emitted as stored.
   */
  readonly decrypt?: RecordDecryptor | undefined;
}

/**
 * How a session decrypts an encrypted stream's records: a batch at a time, which may run off the
 * event loop (`core/record-encryption.ts` `decryptBatch`), so a read batch never stalls the loop.
 */
export interface RecordDecryptor {
  /**
   * A stored record's metered size, as its plaintext's, without the key
   * (`storedMeteredBytes`): decryption fails (`storage`) for a record whose plaintext differs.
   */
  meteredBytesOf(stored: SequencedRecord): number;
  /** The records decrypted, in order; rejects with the first failing record's error. */
  decryptBatch(stored: readonly SequencedRecord[]): Promise<SequencedRecord[]>;
}

/** Checks that need no stream (S2-API.md §11.25: rejected before lookup and auto-create). */
export function validateReadRequest(request: ReadRequest): void {
  const { start, until } = request;
  if (start.kind === "timestamp" && until !== undefined && until <= start.timestamp) {
    throw invalid("`until` must be greater than the `timestamp` start");
  }
}

/**
 * Resolves the start against the durable tail and returns the session's events. Throws
 * `ReadUnwritten` (416) when the start is beyond the tail (unless clamped) or at the tail of a
 * read that cannot follow, before anything is emitted.
 */
export async function openReadSession(
  streamer: Streamer,
  request: ReadRequest,
  deps: ReadSessionDeps,
): Promise<AsyncGenerator<ReadEvent, void, undefined>> {
  validateReadRequest(request);
  const tail = streamer.tail;
  const isUnbounded =
    request.count === undefined && request.bytes === undefined && request.until === undefined;
  const waitMs =
    request.waitSecs !== undefined
      ? request.waitSecs * 1000
      : isUnbounded
        ? Number.POSITIVE_INFINITY
        : 0;
  const mayFollow = isUnbounded || waitMs > 0;

  let startSeqNum: SeqNum;
  const { start } = request;
  switch (start.kind) {
    case "seqNum":
      if (start.seqNum > tail.seqNum && !request.clamp) throw new ReadUnwritten(tail);
      startSeqNum = Math.min(start.seqNum, tail.seqNum);
      break;
    case "tailOffset":
      startSeqNum = Math.max(0, tail.seqNum - start.tailOffset);
      break;
    case "timestamp":
      if (start.timestamp > tail.timestamp && !request.clamp) throw new ReadUnwritten(tail);
      startSeqNum =
        start.timestamp > tail.timestamp
          ? tail.seqNum
          : await firstSeqNumAtOrAfter(streamer, start.timestamp, tail.seqNum);
      break;
  }
  if (start.kind !== "timestamp" && startSeqNum === tail.seqNum && !mayFollow)
    throw new ReadUnwritten(tail);
  return readEvents(streamer, request, startSeqNum, waitMs, mayFollow, deps);
}

/** The first seq num whose record has `timestamp ≥ target` (timestamps never decrease). */
async function firstSeqNumAtOrAfter(
  streamer: Streamer,
  target: number,
  tailSeqNum: SeqNum,
): Promise<SeqNum> {
  // Binary search over [trim point, tail): timestamps never decrease along a stream, so the
  // first record at or after `target` is found in O(log n) single-record reads. A record found
  // past `mid` (a concurrent trim) narrows the range just the same.
  let low = streamer.trimPoint;
  let high = tailSeqNum;
  while (low < high) {
    const mid = low + Math.floor((high - low) / 2);
    const [record] = await streamer.read({
      startSeqNum: mid,
      countMax: 1,
      bytesMax: readBatchBytesMax,
    });
    if (record === undefined || record.seqNum >= high) {
      high = mid;
    } else if (record.timestamp >= target) {
      high = record.seqNum;
    } else {
      low = record.seqNum + 1;
    }
  }
  return low;
}

/** A timer may fire a hair early; a deadline this close counts as reached (no last heartbeat). */
const deadlineSlackMs = 1;

async function* readEvents(
  streamer: Streamer,
  request: ReadRequest,
  startSeqNum: SeqNum,
  waitMs: number,
  mayFollow: boolean,
  deps: ReadSessionDeps,
): AsyncGenerator<ReadEvent, void, undefined> {
  let remainingCount = request.count ?? Number.POSITIVE_INFINITY;
  let remainingBytes = request.bytes ?? Number.POSITIVE_INFINITY;
  const until = request.until ?? Number.POSITIVE_INFINITY;
  let cursor = startSeqNum;
  const heartbeatDelayMs =
    deps.heartbeatDelayMs ??
    (() => heartbeatDelayMsMin + deps.random.float() * (heartbeatDelayMsMax - heartbeatDelayMsMin));
  const decryptor = deps.decrypt;

  /**
   * The records of `stored` from the cursor that the session looks at, decrypted: up to the first
   * that the limits or `until` stop at, included (they apply to the plaintext). They are judged on
   * what a stored record says in clear (its timestamp, and its metered size, which decryption
   * checks), so the batch decrypted is exactly the records that decrypting one by one reached,
   * and the first of them that fails decides the error, as it did.
   */
  const decryptReached = async (
    stored: readonly SequencedRecord[],
  ): Promise<readonly SequencedRecord[]> => {
    const fromCursor = stored.filter((record) => record.seqNum >= cursor);
    if (decryptor === undefined) return fromCursor;
    let reached = fromCursor.length;
    let count = remainingCount;
    let bytes = remainingBytes;
    for (let i = 0; i < fromCursor.length; i++) {
      const record = fromCursor[i]!;
      const recordBytes = decryptor.meteredBytesOf(record);
      if (count <= 0 || recordBytes > bytes || record.timestamp >= until) {
        reached = i + 1;
        break;
      }
      count -= 1;
      bytes -= recordBytes;
    }
    return decryptor.decryptBatch(fromCursor.slice(0, reached));
  };

  /** Cuts a batch at the limits; `ended` when a limit or `until` stops the read. */
  const admit = async (
    stored: readonly SequencedRecord[],
  ): Promise<{ taken: SequencedRecord[]; ended: boolean }> => {
    const records = await decryptReached(stored);
    const taken: SequencedRecord[] = [];
    for (const record of records) {
      const bytes = meteredBytes(record);
      if (remainingCount <= 0 || bytes > remainingBytes || record.timestamp >= until)
        return { taken, ended: true };
      taken.push(record);
      remainingCount -= 1;
      remainingBytes -= bytes;
      cursor = record.seqNum + 1;
    }
    return { taken, ended: remainingCount <= 0 };
  };

  if (remainingCount <= 0 || remainingBytes <= 0) return;
  let follower: Follower | undefined;
  /**
   * The rest of the entry the last catch-up batch ended in (at most one entry, ≤ 1 MiB metered),
   * served by the next batch instead of being read again; dropped before following.
   */
  let ahead: ReadAhead | undefined;
  try {
    for (;;) {
      // Catch up from the cache until the durable tail.
      for (;;) {
        const tailSeqNum = streamer.tail.seqNum;
        if (cursor >= tailSeqNum) break;
        const countMax = Math.min(readBatchCountMax, remainingCount);
        const bytesMax = Math.min(readBatchBytesMax, remainingBytes);
        const read = await streamer.readAhead({ startSeqNum: cursor, countMax, bytesMax, ahead });
        const records = read.records;
        ahead = read.ahead;
        const { taken, ended } = await admit(records);
        if (taken.length > 0) yield { kind: "batch", records: taken };
        if (ended) return;
        const isBudgetBound = bytesMax < readBatchBytesMax;
        if (
          (records.length === 0 || isBudgetBound) &&
          records.length < countMax &&
          cursor < tailSeqNum
        ) {
          // The cache stopped early: either the next record exceeds the remaining byte budget
          // (the read is over; records are never split), or the rest up to the tail is trimmed.
          // A batch cut by the 1 MiB batch cap needs no probe: the next loop reads on.
          const [next] = await streamer.read({
            startSeqNum: cursor,
            countMax: 1,
            bytesMax: readBatchBytesMax,
          });
          if (next === undefined) cursor = tailSeqNum;
          else {
            const [record] =
              decryptor === undefined ? [next] : await decryptor.decryptBatch([next]);
            if (meteredBytes(record!) > remainingBytes) return;
          }
        }
      }
      if (!mayFollow) return;
      ahead = undefined;

      // Follow: subscribe at the tail without yielding in between, so no batch falls in a gap.
      if (cursor < streamer.tail.seqNum) continue;
      follower = streamer.follow();
      yield { kind: "heartbeat", tail: streamer.tail };
      let deadlineMs = deps.clock.monotonicMs() + waitMs;
      let lagged = false;
      // A `next()` outlives a heartbeat timeout: dropping it would drop the batch it receives.
      let pending: ReturnType<Follower["next"]> | undefined;
      for (;;) {
        const untilDeadlineMs = deadlineMs - deps.clock.monotonicMs();
        if (untilDeadlineMs < deadlineSlackMs) return;
        pending ??= follower.next();
        const next = await orTimeout(
          pending,
          Math.min(heartbeatDelayMs(), untilDeadlineMs),
          deps.clock,
        );
        if (next !== "timeout") pending = undefined;
        if (next === "timeout") {
          if (deadlineMs - deps.clock.monotonicMs() < deadlineSlackMs) return;
          yield { kind: "heartbeat", tail: streamer.tail };
          continue;
        }
        if ("end" in next) {
          if (next.end === "lagged") {
            lagged = true;
            break;
          }
          if (next.end === "closed") return;
          throw next.end;
        }
        const { taken, ended } = await admit(next.records);
        if (taken.length > 0) {
          yield { kind: "batch", records: taken, tail: next.tail };
          deadlineMs = deps.clock.monotonicMs() + waitMs;
        }
        if (ended) return;
      }
      follower.close();
      follower = undefined;
      if (!lagged) return;
    }
  } finally {
    follower?.close();
  }
}

/** Whether a thrown value ends a session with an error frame/event (vs. a bug). */
export function isSessionError(error: unknown): error is S2Error {
  return error instanceof S2Error;
}

/**
 * Drains a unary read as lite's `merge_read_session` does: every catch-up batch (the unary caps
 * keep them within one response); at the first heartbeat, stop if there are records (the read
 * reached the tail), else long-poll: stop after the first live batch, or when the session ends
 * (`wait` expired). `tail` is the last batch's, so only a live batch contributes one. `next`
 * pulls the next event, or answers undefined once the client has gone; then so does this.
 */
export async function collectUnaryRead(
  session: AsyncGenerator<ReadEvent, void, undefined>,
  next: () => Promise<IteratorResult<ReadEvent, void> | undefined>,
): Promise<{ records: SequencedRecord[]; tail?: StreamPosition } | undefined> {
  noteUnaryReadSession(session);
  const records: SequencedRecord[] = [];
  let tail: StreamPosition | undefined;
  let isLongPolling = false;
  try {
    for (;;) {
      const result = await next();
      if (result === undefined) return undefined;
      if (result.done === true) break;
      const event = result.value;
      if (event.kind === "batch") {
        records.push(...event.records);
        tail = event.tail;
        if (isLongPolling) break;
      } else {
        if (records.length > 0) break;
        isLongPolling = true;
      }
    }
  } finally {
    session.return(undefined).catch(() => {});
  }
  return tail === undefined ? { records } : { records, tail };
}
