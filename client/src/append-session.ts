/**
 * A pipelined append session over the bidirectional `AppendSession` RPC: submits are batched
 * (linger, max records and bytes), the unacknowledged bytes are bounded (`submit` waits when the
 * bound is reached), acks arrive in submit order, and `flush()` is a durability barrier. The
 * first failure ends the session and fails every pending submit; appends are not retried.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  type AppendAck,
  type AppendRecord,
  AppendInputSchema,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import {
  type AppendSessionRequest,
  AppendSessionRequestSchema,
  ProducerSchema,
  type StreamService,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { AsyncQueue } from "./async-queue.js";
import {
  maxBatchBytes,
  maxBatchRecords,
  meteredBytes,
  type RecordInput,
  toAppendRecord,
} from "./records.js";

/** Settings of an append session. */
export interface AppendSessionOptions {
  readonly basin: string;
  readonly stream: string;
  /** How long a batch waits for more submits before it is sent, in ms (default 5; 0 = none). */
  readonly lingerMs?: number;
  /** At most this many records in one batch (default and maximum 1000). */
  readonly maxBatchRecords?: number;
  /** At most this many metered bytes in one batch (default and maximum 1 MiB). */
  readonly maxBatchBytes?: number;
  /** `submit` waits while this many metered bytes are unacknowledged (default 5 MiB). */
  readonly maxUnackedBytes?: number;
  /** The 32-byte key of an encrypted stream. */
  readonly encryptionKey?: Uint8Array;
  /**
   * The idempotent producer the session sends as (docs/design/producers.md): by default a new
   * random id per session, epoch 0, from seq 0, so that a resent batch is never written twice
   * (the browsers' unary sessions resend an append that failed ambiguously); `false` sends none.
   */
  readonly producer?: SessionProducer | false;
  /** Aborts the session. */
  readonly signal?: AbortSignal;
}

/** A producer id, its epoch, and the seq of the session's first batch. */
export interface SessionProducer {
  readonly id: string;
  readonly epoch: number;
  readonly seq: bigint;
}

/** A producer id no other session will pick: 128 random bits. */
export function randomProducerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `tb-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/** Conditions of one submit. */
export interface SubmitOptions {
  /** Append only if the stream's next seq num is this one (the submit starts its own batch). */
  readonly matchSeqNum?: bigint;
  /** Append only if the stream's fencing token is this one. */
  readonly fencingToken?: string;
}

/** The acknowledgement of one submit. */
export interface SubmitAck {
  /** The seq num of the submit's first record. */
  readonly startSeqNum: bigint;
  /** One past the seq num of the submit's last record. */
  readonly endSeqNum: bigint;
  /** The ack of the whole batch the submit went in (timestamps, durable tail). */
  readonly batchAck: AppendAck;
}

/** A submit accepted by the session; its ack comes later. */
export interface SubmitTicket {
  /** The number of records submitted. */
  readonly count: number;
  /** The metered bytes submitted. */
  readonly bytes: number;
  /** Resolves once the records are durable; rejects if the session fails first. */
  ack(): Promise<SubmitAck>;
}

interface Entry {
  readonly records: AppendRecord[];
  readonly bytes: number;
  readonly options: SubmitOptions;
  readonly index: number;
  resolve(ack: SubmitAck): void;
  reject(error: unknown): void;
}

interface Batch {
  readonly entries: Entry[];
  records: number;
  bytes: number;
}

/** Thrown by submits after the session was closed or failed. */
export class AppendSessionClosedError extends Error {
  override readonly name = "AppendSessionClosedError";
}

/** A pipelined append session to one stream. Create it with `client.appendSession(...)`. */
export class AppendSession {
  private readonly lingerMs: number;
  private readonly maxRecords: number;
  private readonly maxBytes: number;
  private readonly maxUnackedBytes: number;
  private readonly requests = new AsyncQueue<AppendSessionRequest>();
  private readonly abort = new AbortController();
  private open: Batch | undefined;
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly inflight: Batch[] = [];
  private unackedBytes = 0;
  private capacityWaiters: (() => void)[] = [];
  private admission: Promise<void> = Promise.resolve();
  private submitted = 0;
  private settled = 0;
  private flushWaiters: { target: number; resolve(): void; reject(error: unknown): void }[] = [];
  private sentFirst = false;
  private reader: Promise<void> | undefined;
  private failure: unknown;
  private closing = false;

  constructor(
    private readonly client: Client<typeof StreamService>,
    private readonly options: AppendSessionOptions,
  ) {
    this.lingerMs = options.lingerMs ?? 5;
    this.maxRecords = Math.min(options.maxBatchRecords ?? maxBatchRecords, maxBatchRecords);
    this.maxBytes = Math.min(options.maxBatchBytes ?? maxBatchBytes, maxBatchBytes);
    this.maxUnackedBytes = options.maxUnackedBytes ?? 5 * 1024 * 1024;
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.fail(signal.reason);
      else signal.addEventListener("abort", () => this.fail(signal.reason), { once: true });
    }
  }

  /** Metered bytes submitted but not yet acknowledged. */
  get unacknowledgedBytes(): number {
    return this.unackedBytes;
  }

  /**
   * Submits records to be appended atomically, in order after every earlier submit. Resolves once
   * the session accepted them, which waits while the unacknowledged bytes are at their bound
   * (back-pressure); the ticket's `ack()` resolves once they are durable.
   */
  async submit(
    records: readonly RecordInput[],
    options: SubmitOptions = {},
  ): Promise<SubmitTicket> {
    if (this.closing) throw new AppendSessionClosedError("the append session is closed");
    this.throwIfFailed();
    const messages = records.map(toAppendRecord);
    const bytes = messages.reduce((sum, record) => sum + meteredBytes(record), 0);
    if (messages.length === 0) throw new RangeError("a submit needs at least one record");
    if (messages.length > this.maxRecords || bytes > this.maxBytes) {
      throw new RangeError(
        `a submit of ${messages.length} records and ${bytes} bytes exceeds the batch limits ` +
          `(${this.maxRecords} records, ${this.maxBytes} bytes)`,
      );
    }
    const index = this.submitted++;
    let resolveAck!: (ack: SubmitAck) => void;
    let rejectAck!: (error: unknown) => void;
    const ackPromise = new Promise<SubmitAck>((resolve, reject) => {
      resolveAck = resolve;
      rejectAck = reject;
    });
    // Observed through `ack()`; a caller that ignores it must not crash the process.
    ackPromise.catch(() => {});
    const entry: Entry = {
      records: messages,
      bytes,
      options,
      index,
      resolve: resolveAck,
      reject: rejectAck,
    };
    // Admission in submit order: each submit waits for the one before it, then for capacity.
    const admitted = this.admission.then(() => this.waitForCapacity(bytes));
    this.admission = admitted.catch(() => {});
    try {
      await admitted;
      this.throwIfFailed();
    } catch (error) {
      this.settle(entry, error);
      throw error;
    }
    this.unackedBytes += bytes;
    this.enqueue(entry);
    return { count: messages.length, bytes, ack: () => ackPromise };
  }

  /** Submits records and waits for their ack (no pipelining across calls). */
  async append(records: readonly RecordInput[], options: SubmitOptions = {}): Promise<SubmitAck> {
    return (await this.submit(records, options)).ack();
  }

  /** Resolves once everything submitted before this call is durable; rejects if the session failed. */
  flush(): Promise<void> {
    const target = this.submitted;
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.settled >= target) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => {
      this.flushWaiters.push({ target, resolve, reject });
    });
    this.sealOpen();
    return done;
  }

  /** Flushes, then ends the session. Later submits throw. */
  async close(): Promise<void> {
    if (this.closing) {
      await this.reader;
      return;
    }
    const flushed = this.flush();
    this.closing = true;
    try {
      await flushed;
    } finally {
      this.requests.end();
      await this.reader;
    }
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private waitForCapacity(bytes: number): Promise<void> {
    const fits = (): boolean =>
      this.failure !== undefined ||
      this.unackedBytes === 0 ||
      this.unackedBytes + bytes <= this.maxUnackedBytes;
    if (fits()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (fits()) resolve();
        else this.capacityWaiters.push(check);
      };
      this.capacityWaiters.push(check);
    });
  }

  private wakeCapacity(): void {
    const waiters = this.capacityWaiters;
    this.capacityWaiters = [];
    for (const waiter of waiters) waiter();
  }

  private enqueue(entry: Entry): void {
    const open = this.open;
    const startsOwnBatch = entry.options.matchSeqNum !== undefined;
    if (
      open !== undefined &&
      (startsOwnBatch ||
        open.records + entry.records.length > this.maxRecords ||
        open.bytes + entry.bytes > this.maxBytes ||
        open.entries[0]?.options.fencingToken !== entry.options.fencingToken)
    ) {
      this.sealOpen();
    }
    if (this.open === undefined) {
      this.open = { entries: [], records: 0, bytes: 0 };
      if (this.lingerMs > 0) this.lingerTimer = setTimeout(() => this.sealOpen(), this.lingerMs);
    }
    const batch = this.open;
    batch.entries.push(entry);
    batch.records += entry.records.length;
    batch.bytes += entry.bytes;
    const flushPending = this.flushWaiters.some((waiter) => waiter.target > entry.index);
    if (this.lingerMs <= 0 || flushPending || this.closing) this.sealOpen();
  }

  private sealOpen(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const batch = this.open;
    this.open = undefined;
    if (batch === undefined || batch.entries.length === 0) return;
    const first = batch.entries[0]!.options;
    const input = create(AppendInputSchema, {
      records: batch.entries.flatMap((entry) => entry.records),
      ...(first.matchSeqNum !== undefined && { matchSeqNum: first.matchSeqNum }),
      ...(first.fencingToken !== undefined && { fencingToken: first.fencingToken }),
    });
    const request = create(AppendSessionRequestSchema, { input });
    if (!this.sentFirst) {
      this.sentFirst = true;
      request.basin = this.options.basin;
      request.stream = this.options.stream;
      if (this.options.encryptionKey !== undefined) {
        request.encryptionKey = this.options.encryptionKey;
      }
      const producer =
        this.options.producer ?? ({ id: randomProducerId(), epoch: 0, seq: 0n } as const);
      if (producer !== false) request.producer = create(ProducerSchema, producer);
      this.reader = this.readAcks();
    }
    this.inflight.push(batch);
    this.requests.push(request);
  }

  private async readAcks(): Promise<void> {
    try {
      const responses = this.client.appendSession(this.requests, { signal: this.abort.signal });
      for await (const response of responses) {
        const batch = this.inflight.shift();
        const ack = response.ack;
        if (batch === undefined || ack === undefined) {
          throw new Error("the server sent an acknowledgement for no submitted batch");
        }
        let seqNum = ack.start?.seqNum ?? 0n;
        for (const entry of batch.entries) {
          const end = seqNum + BigInt(entry.records.length);
          entry.resolve({ startSeqNum: seqNum, endSeqNum: end, batchAck: ack });
          seqNum = end;
          this.settle(entry, undefined);
        }
        this.unackedBytes -= batch.bytes;
        this.wakeCapacity();
      }
      if (this.inflight.length > 0 || this.open !== undefined) {
        throw new AppendSessionClosedError("the append session ended before every ack");
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private settle(entry: Entry, error: unknown): void {
    if (error !== undefined) entry.reject(error);
    this.settled += 1;
    const ready = this.flushWaiters.filter((waiter) => waiter.target <= this.settled);
    if (ready.length === 0) return;
    this.flushWaiters = this.flushWaiters.filter((waiter) => waiter.target > this.settled);
    for (const waiter of ready) {
      if (this.failure !== undefined) waiter.reject(this.failure);
      else waiter.resolve();
    }
  }

  /** Ends the session with an error: every pending submit and flush rejects with it. */
  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error ?? new AppendSessionClosedError("the append session failed");
    clearTimeout(this.lingerTimer);
    const pending = [
      ...this.inflight.flatMap((batch) => batch.entries),
      ...(this.open?.entries ?? []),
    ];
    this.inflight.length = 0;
    this.open = undefined;
    for (const entry of pending) this.settle(entry, this.failure);
    for (const waiter of this.flushWaiters) waiter.reject(this.failure);
    this.flushWaiters = [];
    this.wakeCapacity();
    this.requests.end();
    this.abort.abort(this.failure);
  }
}
