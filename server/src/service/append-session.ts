/**
 * The append pipeline: one append session's inputs between the front end that decoded them and
 * the replies it sends back (S2-API.md §5.8; S2 lite's append session and `SessionHandle`). Every
 * front end appends through it: an S2S session (`api/s2s/append-session.ts`), the RPC
 * `AppendSession` (`api/connect/append-session.ts`), and REST and RPC unary appends, which are
 * sessions of one input (`appendOnce`). Front ends keep decoding, encoding, framing and their
 * transport's timeouts; everything below is the same for all of them.
 *
 * Each input is validated and metered once (`validateAppendBatch`), then submitted to the record
 * service at once, without waiting for earlier replies (pipelining), and its reply queued. Replies
 * (acks and rejections) leave the queue in submission order through `replies()`, each once the
 * streamer released it: the streamer answers an ack only once its batch is durable, and a
 * rejection only once the state it was judged on is (docs/design/storage.md "Replies ordered by
 * durability"); this queue only keeps the order.
 *
 * Invariants:
 * - Submission order is sequencing order is reply order: the record service sequences an input
 *   without yielding when its stream exists (and auto-creates in arrival order), and replies are
 *   taken from the head of the queue only.
 * - In flight: an input is charged its metered bytes, at least `appendSessionInputBytesMin`, from
 *   its submission until the transport has taken its reply (the consumer of `replies()` asked for
 *   the next). A front end submits only while `hasCapacity` (charged below
 *   `appendSessionInflightBytesMax`), so at most one input's charge lies past the bound.
 * - The first failure ends the session. An input rejected before it is sequenced poisons the
 *   session at once (`SessionPoisoning`), so no input submitted after it is sequenced; a failure met
 *   in the queue (a rejection, or a batch lost by storage) poisons it there too, and is the last
 *   reply: nothing after it is ever released. Inputs submitted before the failure keep their acks.
 * - A producer's seq: the first input's is the opening request's, each following input one more,
 *   counted at submission whether or not the input is applied (docs/design/producers.md).
 *
 * Fault model: a front end whose client went away calls `abandon()`: replies stop, and inputs
 * already submitted stay submitted (they may become durable, like a unary append whose client hung
 * up). A front end that cannot read more input (malformed, revoked token, stalled frame) calls
 * `endInput(error)`: the replies of inputs before it, then the error.
 */
import { AssertionError, assert } from "../core/assert.js";
import { appendSessionInflightBytesMax, appendSessionInputBytesMin } from "../core/limits.js";
import type { AppendAck, AppendInput } from "../core/records.js";
import { validateAppendBatch } from "../streamer/append-validation.js";
import type { AppendProducer, AppendSessionHandle } from "../streamer/streamer.js";
import type { RecordService } from "./records.js";

/**
 * Which appends of the session come after a failed one. Each append takes a view in submission
 * order; a view reads as poisoned when an append submitted before it failed before being
 * sequenced, so a failure never touches the appends submitted before it (they may still be
 * waiting for admission when it happens).
 *
 * @internal
 */
export class SessionPoisoning {
  private nextOrdinal = 0;
  /** The ordinal of the first failed append (none: infinity). */
  private poisonedAt = Number.POSITIVE_INFINITY;

  /** The view of the session's next append, which takes ordinal `ordinal`. */
  enter(): { readonly ordinal: number; readonly handle: AppendSessionHandle } {
    const ordinal = this.nextOrdinal++;
    const poisoning = this;
    const handle: AppendSessionHandle = {
      get isPoisoned(): boolean {
        return ordinal > poisoning.poisonedAt;
      },
      set isPoisoned(value: boolean) {
        assert(value, "a session is never unpoisoned");
        poisoning.poisonAt(ordinal);
      },
    };
    return { ordinal, handle };
  }

  /** The append of `ordinal` failed: every later one is poisoned. */
  poisonAt(ordinal: number): void {
    assert(ordinal < this.nextOrdinal, "only a submitted append fails");
    this.poisonedAt = Math.min(this.poisonedAt, ordinal);
  }

  /** The first failed append's ordinal, if any. */
  get firstFailed(): number | undefined {
    return Number.isFinite(this.poisonedAt) ? this.poisonedAt : undefined;
  }
}

/** What an append session writes to, from the request that opened it. */
export interface AppendSessionTarget {
  readonly basin: string;
  readonly stream: string;
  readonly encryptionKey?: Uint8Array | undefined;
  /** The session's producer, with its first input's seq (docs/design/producers.md). */
  readonly producer?: AppendProducer | undefined;
}

/** An ack as it leaves the queue, for the front end's own metrics. */
export interface ObservedAck {
  readonly recordCount: number;
  readonly meteredBytes: number;
  /** From the input's submission to its ack's release. */
  readonly latencyMs: number;
}

export interface AppendSessionOptions {
  /** Called for each ack as it leaves the queue (the Prometheus append counters). */
  readonly observeAck?: ((ack: ObservedAck) => void) | undefined;
}

/** A submitted input whose reply the transport has not taken yet. */
interface InflightInput {
  readonly ordinal: number;
  readonly outcome: Promise<{ readonly ack: AppendAck } | { readonly error: unknown }>;
  readonly recordCount: number;
  readonly meteredBytes: number;
  /** What the input holds of the in-flight bound. */
  readonly chargedBytes: number;
  readonly startMs: number;
}

/** One append session's pipeline; see the module header. */
export class AppendSession {
  private readonly poisoning = new SessionPoisoning();
  /** Submitted inputs whose reply the transport has not taken, in submission order. */
  private readonly inflight: InflightInput[] = [];
  private inflightChargedBytes = 0;
  /** No input after those submitted: the front end said so (`endInput`) or the session failed. */
  private isInputEndedFlag = false;
  /** Why the input ended early; the last reply, after those of the inputs before it. */
  private inputError: unknown;
  /** The queue met a failure: it was the last reply. */
  private hasFailed = false;
  /** The front end is gone: no reply is released any more. */
  private isAbandoned = false;
  private isReplying = false;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly records: Pick<RecordService, "append">,
    private readonly target: AppendSessionTarget,
    private readonly options: AppendSessionOptions = {},
  ) {}

  /** Whether another input may be submitted now: the in-flight bound, in charged bytes. */
  get hasCapacity(): boolean {
    return this.inflightChargedBytes < appendSessionInflightBytesMax;
  }

  /** Whether the session takes no more input (ended by the front end, failed or abandoned). */
  get isInputEnded(): boolean {
    return this.isInputEndedFlag || this.hasFailed || this.isAbandoned;
  }

  /** Settles once an input may be submitted, or once none will be taken any more. */
  async whenCapacity(): Promise<void> {
    while (!this.hasCapacity && !this.isInputEnded) await this.changed();
  }

  /**
   * Submits one decoded input, in order after those before it; never waits and never throws (a
   * rejection is the input's reply). An input submitted after the session failed is dropped: it
   * is never applied nor answered.
   */
  submit(input: AppendInput): void {
    assert(!this.isInputEndedFlag && !this.isAbandoned, "no input after the input's end");
    if (this.hasFailed) return;
    assert(this.hasCapacity, "an input is submitted only while the session has capacity");
    const { ordinal, handle } = this.poisoning.enter();
    const { basin, stream, encryptionKey } = this.target;
    const producer =
      this.target.producer === undefined
        ? undefined
        : { ...this.target.producer, seq: this.target.producer.seq + ordinal };
    let meteredBytes = 0;
    let reply: Promise<AppendAck>;
    try {
      meteredBytes = validateAppendBatch(input);
      reply = this.records.append(basin, stream, input, {
        session: handle,
        meteredSession: this,
        encryptionKey,
        producer,
      });
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      handle.isPoisoned = true;
      reply = Promise.reject(error);
    }
    const chargedBytes = Math.max(meteredBytes, appendSessionInputBytesMin);
    this.inflight.push({
      ordinal,
      outcome: reply.then(
        (ack) => ({ ack }),
        (error: unknown) => ({ error }),
      ),
      recordCount: input.records.length,
      meteredBytes,
      chargedBytes,
      startMs: performance.now(),
    });
    this.inflightChargedBytes += chargedBytes;
    this.wake();
  }

  /**
   * No input after those submitted. Without `error` the session ends once every reply is taken;
   * with one, it ends with `error` after the replies of the inputs before it, unless one of those
   * fails first. A later call only adds an error to an input that ended without one (a token
   * revoked while the last acks drain still ends the session with 401).
   */
  endInput(error?: unknown): void {
    if (this.isInputEndedFlag && (error === undefined || this.inputError !== undefined)) return;
    this.isInputEndedFlag = true;
    this.inputError = error;
    this.wake();
  }

  /** The front end is gone (its client disconnected): no more replies. */
  abandon(): void {
    this.isAbandoned = true;
    this.wake();
  }

  /**
   * The session's replies, one reader: each ack in submission order, once released; the
   * generator resumes after a `yield` only when the transport has taken that ack, which then
   * leaves the in-flight bound. Returns when the input ended without error and every ack was
   * taken, or when the session is abandoned; throws the failure that ended the session.
   */
  async *replies(): AsyncGenerator<AppendAck, void, undefined> {
    assert(!this.isReplying, "an append session has one reader of its replies");
    this.isReplying = true;
    for (;;) {
      if (this.isAbandoned) return;
      const head = this.inflight[0];
      if (head === undefined) {
        if (this.isInputEndedFlag) {
          if (this.inputError !== undefined) throw this.inputError;
          return;
        }
        await this.changed();
        continue;
      }
      const outcome = await head.outcome;
      if (this.isAbandoned) return;
      if ("error" in outcome) {
        const firstFailed = this.poisoning.firstFailed;
        assert(
          firstFailed === undefined || firstFailed >= head.ordinal,
          "the first failure in the queue is the one that poisoned the session",
        );
        this.poisoning.poisonAt(head.ordinal);
        this.hasFailed = true;
        this.wake();
        throw outcome.error;
      }
      this.options.observeAck?.({
        recordCount: head.recordCount,
        meteredBytes: head.meteredBytes,
        latencyMs: performance.now() - head.startMs,
      });
      yield outcome.ack;
      assert(this.inflight[0] === head, "replies leave the queue from its head only");
      this.inflight.shift();
      this.inflightChargedBytes -= head.chargedBytes;
      assert(this.inflightChargedBytes >= 0, "the in-flight charge never goes negative");
      this.wake();
    }
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}

/**
 * A unary append (REST, the RPC `Append`): a session of one input, so that it is validated,
 * metered, answered and observed exactly as a session's input is.
 */
export async function appendOnce(
  records: Pick<RecordService, "append">,
  target: AppendSessionTarget,
  input: AppendInput,
  options: AppendSessionOptions = {},
): Promise<AppendAck> {
  const session = new AppendSession(records, target, options);
  session.submit(input);
  session.endInput();
  for await (const ack of session.replies()) return ack;
  assert(false, "a session of one input without a failure has one ack");
}
