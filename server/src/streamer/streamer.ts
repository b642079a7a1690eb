/**
 * One Streamer per active stream (S2 lite's `streamer`): it owns the stream's pipelined state
 * (next seq num, last timestamp, fencing token, trim point, including appends accepted but not yet
 * durable), assigns seq nums and timestamps synchronously, holds each reply until its batch is
 * durable, and fans durable batches out to followers.
 *
 * Invariants:
 * - Seq nums are dense from 0 and assigned in acceptance order; an assigned seq num is either made
 *   durable or the server stops (storage never gives up on a segment), so no rollback exists.
 * - Conditions (`fencingToken` first, then `matchSeqNum`) are checked against pipelined state, and
 *   a rejection decided there is released only once every batch sequenced before it is durable;
 *   if those are lost, the client gets their error instead (docs/design/storage.md "Replies
 *   ordered by durability"). No reply states a fact that is not durable.
 * - A batch sent by a producer is judged on the producer's pipelined state before any condition:
 *   a resend of one of its last `producerAckWindow` batches writes nothing and is answered with
 *   that batch's ack once it is durable (docs/design/producers.md); its seq advances only when a
 *   new batch is sequenced, and the durable apply asserts the same order.
 * - Timestamps never decrease along the stream.
 * - Batches reach storage in seq-num order. A batch of an encrypted stream is sealed after it is
 *   sequenced (its seq nums and timestamps are bound into its ciphertext), possibly in a worker
 *   thread, so sealings may end out of order; each batch is handed to storage only after the one
 *   before it. Acks follow durability, which follows that order.
 * - Followers only ever see durable records, in order, each batch once.
 */
import { assert } from "../core/assert.js";
import type { Clock } from "../core/clock.js";
import type { EncryptionAlgorithm, StreamConfig } from "../core/config.js";
import { AppendConditionFailed, S2Error, streamDeletionPending } from "../core/errors.js";
import {
  followerLagBatchesMax,
  producerAckWindow,
  producerIdleMs,
  producersPerStreamMax,
  readBatchBytesMax,
  readBatchCountMax,
} from "../core/limits.js";
import type { RecordCryptoPool } from "../core/record-crypto-pool.js";
import {
  checkEncryptedSeqNums,
  encryptBatch,
  requireEncryptionKey,
  storedMeteredBytes,
} from "../core/record-encryption.js";
import {
  type AppendAck,
  type AppendInput,
  type AppendRecord,
  commandValueOf,
  meteredBytesOfBatch,
  type RecordContent,
  type SeqNum,
  type SequencedRecord,
  type StreamPosition,
} from "../core/records.js";
import { advanceTail, type StreamTail } from "../storage/durable-state.js";
import { type DecodedRecord, encodeRecordBatch } from "../storage/segment/record-codec.js";
import { CacheReadError } from "../storage/cache/segment-cache.js";
import type { ReadAhead, Storage } from "../storage/storage.js";
import { FencedError, FlusherClosedError, OutcomeUnknownError } from "../storage/wal/flusher.js";
import { validateAppendBatch, validateAppendInput } from "./append-validation.js";

/** A durable batch as followers receive it: the records and the tail right after them. */
export interface FollowedBatch {
  readonly records: readonly SequencedRecord[];
  readonly tail: StreamPosition;
}

/** Why a follow ended. */
export type FollowEnd = "lagged" | "closed" | S2Error;

/**
 * A live subscription to a stream's durable batches. Bounded: a follower more than
 * `followerLagBatchesMax` read batches behind is ended with "lagged" (it resumes from storage by
 * seq num), so a slow reader never grows the server's memory.
 *
 * Lag is measured in read batches (runs of queued batches of at most `readBatchCountMax` records
 * and `readBatchBytesMax` metered bytes), not in appended batches: one flush makes all of its
 * batches durable in one synchronous pass, and a pipelined writer of one small record per batch
 * puts dozens of them in one flush. Counted one by one, such a flush cut off every follower before
 * it could run, and each then chased the tail from storage, no faster than the writer and so
 * seconds behind it for good (S3 mode, 10 MiB/s of 8 KiB batches). Batches are delivered unmerged.
 */
export class Follower {
  private readonly queue: { readonly batch: FollowedBatch; readonly run: number }[] = [];
  /** The run of the last queued batch, and its size so far. */
  private run = 0;
  private runRecords = 0;
  private runBytes = 0;
  private ended: FollowEnd | undefined;
  /** Consumers waiting in `next()`; normally one, but concurrent calls must not hang. */
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly unsubscribe: (follower: Follower) => void) {}

  /** The next batch, or why following ended. */
  async next(): Promise<FollowedBatch | { end: FollowEnd }> {
    for (;;) {
      const queued = this.queue.shift();
      if (queued !== undefined) return queued.batch;
      if (this.ended !== undefined) return { end: this.ended };
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
      });
    }
  }

  /** Stops following. */
  close(): void {
    this.end("closed");
  }

  /** @internal `bytes`: the batch's metered size. */
  push(batch: FollowedBatch, bytes: number): void {
    if (this.ended !== undefined) return;
    const recordCount = batch.records.length;
    const first = this.queue[0];
    if (
      first === undefined ||
      this.runRecords + recordCount > readBatchCountMax ||
      this.runBytes + bytes > readBatchBytesMax
    ) {
      this.run += 1;
      this.runRecords = 0;
      this.runBytes = 0;
    }
    if (first !== undefined && this.run - first.run >= followerLagBatchesMax) {
      this.queue.length = 0;
      this.end("lagged");
      return;
    }
    this.runRecords += recordCount;
    this.runBytes += bytes;
    this.queue.push({ batch, run: this.run });
    this.signal();
  }

  /** @internal */
  end(reason: FollowEnd): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.unsubscribe(this);
    this.signal();
  }

  private signal(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/**
 * One append's view of its append session (S2 lite's `SessionHandle`): the first append of the
 * session that is rejected before it is sequenced (validation, a condition, deletion) poisons it,
 * and every later append of the session is then rejected before it is sequenced. Sessions submit
 * inputs pipelined, without waiting for earlier outcomes, so this is what guarantees that no input
 * after a failed one is applied (S2-API.md §5.8). Reading `isPoisoned` says whether an append
 * submitted before this one failed; setting it reports this one's failure (the append pipeline,
 * `service/append-session.ts`, keeps the submission order, so earlier appends are not affected).
 */
export interface AppendSessionHandle {
  isPoisoned: boolean;
}

/** What `Streamer.append` takes besides the batch. */
export interface AppendOptions {
  readonly encryptionKey?: Uint8Array | undefined;
  /** The producer that sends the batch, for idempotent resends (docs/design/producers.md). */
  readonly producer?: AppendProducer | undefined;
}

/** Acks answered to a producer's resend: nothing was written (metering skips them). */
const resendAcks = new WeakSet<AppendAck>();

/** Whether `ack` answered a producer's resend, which wrote nothing. */
export function isResendAck(ack: AppendAck): boolean {
  return resendAcks.has(ack);
}

/** 409 `producer_out_of_sequence`: the seq is not the one expected. */
function producerOutOfSequence(
  producerId: string,
  seq: number,
  expected: number,
  why: string,
): S2Error {
  return new S2Error(
    "producer_out_of_sequence",
    `producer \`${producerId}\` sent seq ${seq}, expected ${expected}: ${why}`,
  );
}

/** The producer fields of an append (docs/design/producers.md). */
export interface AppendProducer {
  readonly producerId: string;
  readonly epoch: number;
  readonly seq: number;
}

/** A new batch sequenced, or the positions of the first attempt a producer's resend repeats. */
type Judged = { readonly batch: SequencedBatch } | { readonly resendOf: Promise<BatchPositions> };

/** A batch with its seq nums and timestamps assigned, and its records as they will be stored. */
interface SequencedBatch {
  readonly firstSeqNum: SeqNum;
  readonly count: number;
  readonly firstTimestamp: number;
  readonly lastTimestamp: number;
  /** Ready for a plaintext stream; once sealed for an encrypted one. */
  readonly records: DecodedRecord[] | Promise<DecodedRecord[]>;
}

/** A batch's positions as its ack states them (the tail is taken when the ack is answered). */
interface BatchPositions {
  readonly start: StreamPosition;
  readonly end: StreamPosition;
}

/**
 * A producer's pipelined state: the durable one plus batches accepted and not yet durable. Each
 * window slot settles with its batch's positions once the batch is durable (or fails with the
 * error that lost it).
 */
interface PipelinedProducer {
  epoch: number;
  nextSeq: number;
  /** When its newest batch was sequenced (server wall time), for idle expiry. */
  lastAppendedAtMs: number;
  readonly window: { readonly seq: number; readonly positions: Promise<BatchPositions> }[];
}

/** The rejection of an append whose session failed on an earlier input (never rendered). */
export function appendSessionPoisoned(): S2Error {
  return new S2Error("invalid", "an earlier append of this session failed");
}

export interface StreamerOptions {
  readonly storage: Storage;
  readonly clock: Clock;
  readonly streamId: number;
  readonly config: StreamConfig;
  /**
   * The stream's cipher, fixed at its creation (S2-API.md §6.7); null or absent = plaintext. With
   * a cipher, records other than commands are encrypted before they are encoded, so the cache and
   * the WAL only ever hold ciphertext (`core/record-encryption.ts`).
   */
  readonly cipher?: EncryptionAlgorithm | null | undefined;
  /** Where large batches of an encrypted stream are sealed; absent = on the event loop. */
  readonly recordCrypto?: RecordCryptoPool | undefined;
}

/**
 * Maps storage failures to the API's errors: fenced or closed writers are retryable
 * (`unavailable`: the append was not applied); a writer that stopped with the append's PUT
 * unanswered is `append_outcome_unknown` (it may have been); records the cache and the bucket
 * both failed to produce are the retryable `storage` error.
 */
export function toS2Error(error: unknown): unknown {
  if (error instanceof CacheReadError) {
    return new S2Error("storage", "records could not be read", { cause: error });
  }
  if (error instanceof FencedError) {
    return new S2Error("unavailable", "server fenced by a newer writer", { cause: error });
  }
  if (error instanceof FlusherClosedError) {
    return new S2Error("unavailable", "server shutting down", { cause: error });
  }
  if (error instanceof OutcomeUnknownError) {
    return new S2Error(
      "append_outcome_unknown",
      "the server stopped before it knew whether the append was durable: it may or may not have been applied",
      { cause: error },
    );
  }
  return error;
}

/**
 * Records as a segment holds them: views into their encoded bytes, not the caller's buffers, so
 * that followers and the durable state see what the segment holds even if the caller reuses its
 * buffers after the append.
 */
function toStored(contents: readonly RecordContent[]): DecodedRecord[] {
  // One buffer for the batch, not one per record (at 512 B, ~50,000 backing stores a second).
  return encodeRecordBatch(contents);
}

export class Streamer {
  readonly streamId: number;
  readonly cipher: EncryptionAlgorithm | null;
  private config: StreamConfig;
  private pipelined: StreamTail;
  /**
   * Settles when the last batch sequenced so far is durable (or rejects when it is lost): since
   * batches become durable in order and a stopped flusher fails all it holds, it stands for every
   * batch before it too. A rejection judged on `pipelined` waits for it.
   */
  private pipelinedDurable: Promise<void> = Promise.resolve();
  /**
   * Settles once the last batch sequenced so far has been handed to storage (rejects if its
   * sealing failed): the next batch of an encrypted stream waits for it (see the header).
   */
  private handedOff: Promise<void> = Promise.resolve();
  /** The seq num that the next batch handed to storage must start at. */
  private handOffSeqNum: SeqNum;
  private deleting = false;
  private readonly followers = new Set<Follower>();
  /**
   * Producers that appended since this streamer was built (the rest are as durable), and those
   * it expired (`expired`: the durable state may still hold them until the expiry is applied).
   */
  private readonly producers = new Map<string, PipelinedProducer | "expired">();
  /** Calls of `append` and `beginDeletion` not yet answered (admission waits included). */
  private callsInProgress = 0;
  /** When a call last started or ended, or a follower last subscribed (monotonic ms). */
  private lastActiveMs: number;

  constructor(private readonly options: StreamerOptions) {
    this.streamId = options.streamId;
    this.cipher = options.cipher ?? null;
    this.config = options.config;
    this.pipelined = options.storage.state.tailOf(options.streamId);
    this.handOffSeqNum = this.pipelined.nextSeqNum;
    this.lastActiveMs = options.clock.monotonicMs();
  }

  /**
   * Whether this streamer holds nothing its durable state does not (no call in progress, so no
   * batch pipelined beyond the durable tail; no follower; not being deleted) and has been idle
   * for `idleMs`: then it may be dropped, and a new one built from the durable state is the same.
   */
  isDormant(idleMs: number): boolean {
    if (this.callsInProgress > 0 || this.followers.size > 0 || this.deleting) return false;
    if (this.options.clock.monotonicMs() - this.lastActiveMs < idleMs) return false;
    const durable = this.options.storage.state.tailOf(this.streamId);
    // Every call has been answered, and an ack or a rejection is answered only once the batches
    // sequenced before it are durable; so nothing is pipelined beyond the durable tail, unless
    // storage stopped under a batch (fenced, closed), when it is never durable.
    assert(
      this.pipelined.nextSeqNum === durable.nextSeqNum || this.options.storage.health !== "ready",
      `an idle streamer's pipelined tail is durable: stream ${this.streamId} pipelined ${this.pipelined.nextSeqNum} durable ${durable.nextSeqNum}`,
    );
    return this.options.storage.health === "ready";
  }

  /** Moves a producer's pipelined state past a batch just sequenced (judged new). */
  private acceptProducerBatch(
    producer: AppendProducer,
    appendedAtMs: number,
    positions: Promise<BatchPositions>,
  ): void {
    positions.catch(() => {}); // seen by a resend that awaits it
    const state = this.pipelinedProducer(producer.producerId);
    if (state === undefined || producer.epoch > state.epoch) {
      assert(producer.seq === 0, "a producer's first batch of an epoch has seq 0");
      this.producers.set(producer.producerId, {
        epoch: producer.epoch,
        nextSeq: 1,
        lastAppendedAtMs: appendedAtMs,
        window: [{ seq: 0, positions }],
      });
      return;
    }
    assert(
      producer.epoch === state.epoch && producer.seq === state.nextSeq,
      "a new producer batch continues its epoch at the next seq",
    );
    state.nextSeq += 1;
    state.lastAppendedAtMs = appendedAtMs;
    state.window.push({ seq: producer.seq, positions });
    if (state.window.length > producerAckWindow) state.window.shift();
  }

  /**
   * Forgets the producers whose newest batch was sequenced before `cutoffMs` (the background
   * pass calls it): dropped from the pipelined state and expired in the WAL in one synchronous
   * step, so a batch of such a producer sequenced after it is judged as a first batch, and is
   * applied after the expiry. Resolves when the expiries are durable.
   */
  expireIdleProducers(cutoffMs: number): Promise<void> {
    return this.tracked(async () => {
      const durable = this.options.storage.state.producers.get(this.streamId);
      const ids = new Set([...(durable?.keys() ?? []), ...this.producers.keys()]);
      const expiries: Promise<void>[] = [];
      for (const producerId of ids) {
        const state = this.pipelinedProducer(producerId);
        if (state === undefined || state.lastAppendedAtMs > cutoffMs) continue;
        this.producers.set(producerId, "expired");
        expiries.push(
          this.options.storage.submitControl({
            op: "producer.expire",
            streamId: this.streamId,
            producerId,
            appendedAtMsAtMost: state.lastAppendedAtMs,
          }),
        );
      }
      await Promise.all(expiries);
    });
  }

  /** Counts a call in progress for `isDormant`. */
  private async tracked<T>(call: () => Promise<T>): Promise<T> {
    this.callsInProgress += 1;
    this.lastActiveMs = this.options.clock.monotonicMs();
    try {
      return await call();
    } finally {
      this.callsInProgress -= 1;
      this.lastActiveMs = this.options.clock.monotonicMs();
    }
  }

  /** The durable tail: the next seq num and the last durable record's timestamp. */
  get tail(): StreamPosition {
    const tail = this.options.storage.state.tailOf(this.streamId);
    return { seqNum: tail.nextSeqNum, timestamp: tail.lastTimestamp };
  }

  /** The seq num below which records are trimmed (durable). */
  get trimPoint(): SeqNum {
    return this.options.storage.state.tailOf(this.streamId).trimPoint;
  }

  /** The next seq num to be assigned, counting appends not yet durable. */
  get pipelinedNextSeqNum(): SeqNum {
    return this.pipelined.nextSeqNum;
  }

  /** Applies a reconfiguration; it governs appends from now on. */
  setConfig(config: StreamConfig): void {
    this.config = config;
  }

  /**
   * Appends a batch and resolves with its ack once it is durable (S2-API.md §5.3). Waits for
   * admission first (back-pressure); conditions are then checked and seq nums assigned without
   * yielding, so concurrent appends are ordered by their admission. An encrypted stream requires
   * `options.encryptionKey` (else 400 `bad_header`, before anything happens).
   */
  append(
    input: AppendInput,
    session?: AppendSessionHandle,
    options: AppendOptions = {},
  ): Promise<AppendAck> {
    return this.tracked(() => this.appendNow(input, session, options));
  }

  private async appendNow(
    input: AppendInput,
    session: AppendSessionHandle | undefined,
    options: AppendOptions,
  ): Promise<AppendAck> {
    let bytes: number;
    let encryptionKey: Uint8Array | undefined;
    try {
      if (session?.isPoisoned) throw appendSessionPoisoned();
      if (this.deleting) throw streamDeletionPending();
      if (this.cipher !== null) {
        encryptionKey = requireEncryptionKey(this.cipher, options.encryptionKey);
      }
      bytes = validateAppendInput(input, this.config);
      await this.admit(bytes);
    } catch (error) {
      if (session !== undefined) session.isPoisoned = true;
      throw error;
    }
    let judged: Judged;
    // Taken with the pipelined state that the checks below read, before anything can yield.
    const judgedOn = this.pipelinedDurable;
    try {
      if (session?.isPoisoned) throw appendSessionPoisoned();
      if (this.deleting) throw streamDeletionPending();
      judged = this.judge(input, options, encryptionKey);
    } catch (error) {
      this.options.storage.releaseAdmission(bytes);
      if (session !== undefined) session.isPoisoned = true;
      // The rejection may report pipelined state (the next seq num, the token): say it only once
      // that state is durable, or say why it never will be.
      try {
        await judgedOn;
      } catch (lost) {
        throw toS2Error(lost);
      }
      throw error;
    }
    if ("batch" in judged) return this.submit(judged.batch, bytes, options.producer);
    // Nothing is written: the first attempt's ack, once its batch is durable (or its error).
    this.options.storage.releaseAdmission(bytes);
    let positions: BatchPositions;
    try {
      positions = await judged.resendOf;
    } catch (lost) {
      if (session !== undefined) session.isPoisoned = true;
      throw toS2Error(lost);
    }
    const ack = { ...positions, tail: this.tail };
    resendAcks.add(ack);
    return ack;
  }

  /**
   * The synchronous part of an append, on pipelined state: a producer's resend is recognized
   * before any condition (the first attempt was judged); otherwise the conditions are checked
   * and the batch sequenced. Throws the rejection, if any.
   */
  private judge(
    input: AppendInput,
    options: AppendOptions,
    encryptionKey: Uint8Array | undefined,
  ): Judged {
    const resendOf =
      options.producer === undefined ? undefined : this.judgeProducer(options.producer);
    if (resendOf !== undefined) return { resendOf };
    const { fencingToken, nextSeqNum } = this.pipelined;
    if (input.fencingToken !== undefined && input.fencingToken !== fencingToken) {
      throw new AppendConditionFailed({
        kind: "fencing_token_mismatch",
        currentToken: fencingToken,
      });
    }
    if (input.matchSeqNum !== undefined && input.matchSeqNum !== nextSeqNum) {
      throw new AppendConditionFailed({ kind: "seq_num_mismatch", nextSeqNum });
    }
    if (this.cipher !== null) checkEncryptedSeqNums(this.cipher, nextSeqNum, input.records);
    return { batch: this.sequence(input.records, encryptionKey) };
  }

  /**
   * Judges a producer's batch on its pipelined state (docs/design/producers.md, the table):
   * undefined for a new batch (the caller sequences it; `submit` records it), the first attempt's
   * positions for a resend within the window, else a 409 that says why.
   */
  private judgeProducer(producer: AppendProducer): Promise<BatchPositions> | undefined {
    const { producerId, epoch, seq } = producer;
    const state = this.pipelinedProducer(producerId);
    if (state === undefined || epoch > state.epoch) {
      if (seq !== 0) {
        throw producerOutOfSequence(producerId, seq, 0, "a producer's first batch of an epoch");
      }
      if (state === undefined && this.producerCount() >= producersPerStreamMax) {
        throw new S2Error(
          "producer_limit",
          `the stream has ${producersPerStreamMax} producers; one more is accepted once some are idle for ${producerIdleMs / 86_400_000} days`,
        );
      }
      return undefined;
    }
    if (epoch < state.epoch) {
      throw new S2Error(
        "producer_fenced",
        `producer \`${producerId}\` epoch ${epoch} is older than its current epoch ${state.epoch}`,
      );
    }
    if (seq === state.nextSeq) return undefined;
    if (seq > state.nextSeq) {
      throw producerOutOfSequence(producerId, seq, state.nextSeq, "a batch in between is missing");
    }
    const slot = state.window.find((entry) => entry.seq === seq);
    if (slot === undefined) {
      throw new S2Error(
        "producer_seq_too_old",
        `producer \`${producerId}\` seq ${seq} was applied earlier; its ack is no longer kept (the last ${producerAckWindow} are)`,
      );
    }
    return slot.positions;
  }

  /** Producers with state on this stream, pipelined ones included, expired ones not. */
  private producerCount(): number {
    const ids = new Set(this.options.storage.state.producers.get(this.streamId)?.keys() ?? []);
    for (const [producerId, state] of this.producers) {
      if (state === "expired") ids.delete(producerId);
      else ids.add(producerId);
    }
    return ids.size;
  }

  /** A producer's pipelined state, built from its durable one on first use. */
  private pipelinedProducer(producerId: string): PipelinedProducer | undefined {
    const known = this.producers.get(producerId);
    if (known === "expired") return undefined;
    if (known !== undefined) return known;
    const durable = this.options.storage.state.producerOf(this.streamId, producerId);
    if (durable === undefined) return undefined;
    const state: PipelinedProducer = {
      epoch: durable.epoch,
      nextSeq: durable.nextSeq,
      lastAppendedAtMs: durable.window.at(-1)?.appendedAtMs ?? 0,
      window: durable.window.map((batch) => ({
        seq: batch.seq,
        positions: Promise.resolve({
          start: { seqNum: batch.firstSeqNum, timestamp: batch.firstTimestamp },
          end: { seqNum: batch.firstSeqNum + batch.recordCount, timestamp: batch.lastTimestamp },
        }),
      })),
    };
    this.producers.set(producerId, state);
    return state;
  }

  /**
   * Marks the stream as being deleted and appends the terminal trim (S2-API.md §6.5): no append
   * is accepted afterwards. Resolves when the trim is durable.
   */
  beginDeletion(): Promise<void> {
    return this.tracked(() => this.beginDeletionNow());
  }

  private async beginDeletionNow(): Promise<void> {
    if (this.deleting) return;
    this.deleting = true;
    const terminalTrim: AppendRecord = {
      headers: [{ name: new Uint8Array(0), value: new TextEncoder().encode("trim") }],
      body: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    };
    // The server's own record, stamped on arrival: the stream's timestamping mode binds clients
    // (a client-require stream could otherwise never be deleted).
    const bytes = validateAppendBatch({ records: [terminalTrim] });
    await this.admit(bytes);
    await this.submit(this.sequence([terminalTrim]), bytes);
  }

  /** Ends every follower with `reason` (stream removed, server fenced or closing). */
  endFollowers(reason: FollowEnd): void {
    for (const follower of [...this.followers]) follower.end(reason);
  }

  /**
   * Durable records from `startSeqNum` (raised to the trim point), bounded by count and metered
   * bytes; never past the durable tail. Records of an encrypted stream are returned as stored
   * (ciphertext) and metered as their plaintext; readers decrypt them with their own key.
   */
  async read(options: {
    readonly startSeqNum: SeqNum;
    readonly countMax: number;
    readonly bytesMax: number;
  }): Promise<SequencedRecord[]> {
    try {
      return await this.readStored(options);
    } catch (error) {
      throw toS2Error(error);
    }
  }

  /**
   * `read` for a reader that goes on where it ends (a catch-up read session): also returns the
   * records read past the batch (`ahead`), which the reader passes to its next read
   * (`Storage.readRecordsAhead`), so that no entry is read twice.
   */
  async readAhead(options: {
    readonly startSeqNum: SeqNum;
    readonly countMax: number;
    readonly bytesMax: number;
    readonly ahead: ReadAhead | undefined;
  }): Promise<{ readonly records: SequencedRecord[]; readonly ahead: ReadAhead | undefined }> {
    try {
      return await this.options.storage.readRecordsAhead(this.readOptions(options));
    } catch (error) {
      throw toS2Error(error);
    }
  }

  private readStored(options: {
    readonly startSeqNum: SeqNum;
    readonly countMax: number;
    readonly bytesMax: number;
  }): Promise<SequencedRecord[]> {
    return this.options.storage.readRecords(this.readOptions(options));
  }

  private readOptions<T extends { readonly startSeqNum: SeqNum }>(
    options: T,
  ): T & {
    streamId: number;
    endSeqNum: SeqNum;
    meteredBytesOf: ((record: DecodedRecord) => number) | undefined;
  } {
    return {
      ...options,
      streamId: this.streamId,
      endSeqNum: this.tail.seqNum,
      // Encrypted records are metered as their plaintext, read from their envelope.
      meteredBytesOf: this.cipher === null ? undefined : storedMeteredBytes,
    };
  }

  /**
   * Subscribes to durable batches from now on. Callers read up to `tail` first and then follow;
   * since both happen without yielding between `tail` and `follow`, no batch falls in between.
   * Batches of an encrypted stream carry the records as stored (ciphertext).
   */
  follow(): Follower {
    const follower = new Follower((f) => {
      this.followers.delete(f);
      this.lastActiveMs = this.options.clock.monotonicMs();
    });
    this.followers.add(follower);
    this.lastActiveMs = this.options.clock.monotonicMs();
    return follower;
  }

  /** @internal Called by the service, in WAL order, for each durable batch of this stream. */
  onDurable(firstSeqNum: SeqNum, records: readonly DecodedRecord[]): void {
    if (this.followers.size === 0) return;
    const sequenced: SequencedRecord[] = records.map((record, i) => ({
      seqNum: firstSeqNum + i,
      timestamp: record.timestamp,
      headers: record.headers,
      body: record.body,
    }));
    const last = sequenced.at(-1);
    assert(last !== undefined, "a durable batch has records");
    const batch: FollowedBatch = {
      records: sequenced,
      tail: { seqNum: last.seqNum + 1, timestamp: last.timestamp },
    };
    // Metered once for every follower (each counts its lag in read batches of bytes).
    const bytes = meteredBytesOfBatch(sequenced);
    for (const follower of [...this.followers]) follower.push(batch, bytes);
  }

  private async admit(bytes: number): Promise<void> {
    try {
      await this.options.storage.admit(bytes);
    } catch (error) {
      // Admission fails only once storage has stopped: fenced (FencedError) or closed
      // (FlusherClosedError); both are the retryable `unavailable`.
      const mapped = toS2Error(error);
      if (mapped instanceof S2Error) throw mapped;
      throw new S2Error("unavailable", "server shutting down", { cause: error });
    }
  }

  /**
   * Assigns timestamps and advances the pipelined state; never yields. The records of an encrypted
   * stream are then sealed (their seq nums and timestamps are inputs of the associated data, so
   * only now), off the loop when the batch is large (`encryptBatch`); their contents are copied
   * before this returns, so the caller's buffers are free again. Commands stay plaintext (S2-API.md
   * §6.7): `advanceTail` and recovery read them.
   */
  private sequence(input: readonly AppendRecord[], encryptionKey?: Uint8Array): SequencedBatch {
    const { mode, uncapped } = this.config.timestamping;
    const nowMs = this.options.clock.nowMs();
    const firstSeqNum = this.pipelined.nextSeqNum;
    let maxTimestamp = this.pipelined.lastTimestamp;
    const contents: RecordContent[] = input.map((record) => {
      let timestamp =
        mode === "arrival" || record.timestamp === undefined ? nowMs : record.timestamp;
      if (!uncapped && timestamp > nowMs) timestamp = nowMs;
      if (timestamp < maxTimestamp) timestamp = maxTimestamp;
      maxTimestamp = timestamp;
      return { timestamp, headers: record.headers, body: record.body };
    });
    // Sealing keeps timestamps and leaves commands as they are: the plaintext gives the same tail.
    this.pipelined = advanceTail(this.pipelined, firstSeqNum, contents);
    const batch = {
      firstSeqNum,
      count: contents.length,
      firstTimestamp: contents[0]!.timestamp,
      lastTimestamp: contents.at(-1)!.timestamp,
    };
    if (this.cipher === null) return { ...batch, records: toStored(contents) };
    if (contents.every((content) => commandValueOf(content) !== undefined)) {
      return { ...batch, records: Promise.resolve(toStored(contents)) };
    }
    assert(encryptionKey !== undefined, "append requires the key of an encrypted stream");
    const sealing = encryptBatch(
      this.cipher,
      encryptionKey,
      contents,
      { streamId: this.streamId, firstSeqNum },
      { pool: this.options.recordCrypto },
    );
    return { ...batch, records: sealing.then(toStored) };
  }

  private async submit(
    batch: SequencedBatch,
    bytes: number,
    producer?: AppendProducer,
  ): Promise<AppendAck> {
    const { firstSeqNum, count } = batch;
    assert(
      firstSeqNum + count === this.pipelined.nextSeqNum,
      "the batch submitted is the last one sequenced",
    );
    const appendedAtMs = this.options.clock.nowMs();
    const durable = this.handOff(
      batch,
      bytes,
      producer === undefined ? undefined : { ...producer, appendedAtMs },
    );
    this.pipelinedDurable = durable;
    const start = { seqNum: firstSeqNum, timestamp: batch.firstTimestamp };
    const end = { seqNum: firstSeqNum + count, timestamp: batch.lastTimestamp };
    if (producer !== undefined)
      this.acceptProducerBatch(
        producer,
        appendedAtMs,
        durable.then(() => ({ start, end })),
      );
    try {
      await durable;
    } catch (error) {
      throw toS2Error(error);
    }
    const tail = this.tail;
    assert(tail.seqNum >= end.seqNum, "an ack is released only once its batch is durable");
    return { start, end, tail };
  }

  /**
   * Hands a sequenced batch to storage, in seq-num order (see the header): a plaintext stream's at
   * once; an encrypted stream's once it is sealed and the batch before it is handed over.
   * Resolves when the batch is durable. A sealing that fails is a bug (sealing has no other
   * failure): its seq nums would never be durable, so the process stops, as on a fatal storage
   * error, and this batch and every later one reject.
   */
  private handOff(
    batch: SequencedBatch,
    admittedBytes: number,
    producer: (AppendProducer & { readonly appendedAtMs: number }) | undefined,
  ): Promise<void> {
    const { firstSeqNum, count } = batch;
    const submit = (records: DecodedRecord[]): Promise<void> => {
      assert(firstSeqNum === this.handOffSeqNum, "batches reach storage in seq-num order");
      assert(records.length === count, "a sealed batch keeps its records");
      this.handOffSeqNum = firstSeqNum + count;
      const streamId = this.streamId;
      return this.options.storage.submitRecords({
        streamId,
        firstSeqNum,
        records,
        admittedBytes,
        producer,
      });
    };
    if (Array.isArray(batch.records)) return submit(batch.records);
    batch.records.catch((error: unknown) => {
      queueMicrotask(() => {
        throw error;
      });
    });
    let durable: Promise<void> | undefined;
    const handedOff = Promise.all([batch.records, this.handedOff]).then(([records]) => {
      durable = submit(records);
    });
    this.handedOff = handedOff;
    return handedOff.then(() => durable!);
  }
}
