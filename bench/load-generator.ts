/**
 * The load generator of the comparison bench (bench/peers-bench.ts): one producer and three
 * measurements that drive every system through the same narrow seam, `BenchStream` (append one
 * batch, read back from the first record), so that Tributary, Redis Streams and NATS JetStream see
 * exactly the same records, batches and pacing.
 *
 * Records are submitted one at a time to a `LingerProducer`, which batches them as the S2 SDK's
 * producer does (`BatchTransform`: a batch is sent 5 ms after its first record, or at once when it
 * reaches 1,000 records or 1 MiB of metered bytes) and keeps at most `inflightBytesMax` of batches
 * unacknowledged. The k-th record appended to a stream is `pool[k % pool.length]`; the pool is a
 * prime number of random bodies, so a lost, repeated or reordered batch shifts every later record
 * off its body and the read-back that compares every record's bytes sees it.
 */
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { mib, percentile, randomBodies, runPaced, sortedCopy } from "./support.js";

/** The SDK producer's defaults (`BatchTransform`), used for every system. */
export const lingerMs = 5;
export const batchRecordsMax = 1000;
export const batchBytesMax = mib;
/** Unacknowledged batch bytes of the max-throughput part (the API bench's session bound). */
export const inflightBytesMax = 16 * mib;
/** An S2 record's metered size without headers: its body and 8 bytes. */
const recordOverheadBytes = 8;
/** A read-back that has not finished after this long has failed. */
const readTimeoutMs = 300_000;

/** One stream of a system under test, as the load generator sees it. */
export interface BenchStream {
  /** Appends `bodies` as one batch, in order; resolves when the system acknowledges it. */
  append(bodies: readonly Buffer[]): Promise<void>;
  /** Reads the first `count` records in order, passing each body to `onRecord`. */
  read(count: number, onRecord: (body: Uint8Array) => void): Promise<void>;
  close(): Promise<void>;
}

/** The bodies appended to one stream, prepared before timing (see the module header). */
export interface BodyPool {
  readonly recordBytes: number;
  readonly bodies: readonly Buffer[];
}

/** A prime number of random bodies of `recordBytes` each, about 16 MiB in all. */
export function createBodyPool(recordBytes: number): BodyPool {
  let count = Math.max(2, Math.floor((16 * mib) / recordBytes));
  while (!isPrime(count)) count--;
  const bodies = randomBodies(count, recordBytes).map((body) =>
    Buffer.from(body.buffer, body.byteOffset, body.byteLength),
  );
  return { recordBytes, bodies };
}

function isPrime(n: number): boolean {
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return n >= 2;
}

/** What the producer reports of each acknowledged batch. */
export interface AckedBatch {
  /** When each record was submitted to the producer, `performance.now()` ms. */
  readonly submitMs: readonly number[];
  readonly sentMs: number;
  readonly ackMs: number;
  readonly bodyBytes: number;
}

/**
 * Batches records like the SDK's producer (see the module header) and appends each batch to a
 * `BenchStream`, all in flight at once up to `inflightBytesMax`.
 */
export class LingerProducer {
  private bodies: Buffer[] = [];
  private submitMs: number[] = [];
  private batchBytes = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private inflightBytes = 0;
  private inflightBatches = 0;
  private roomWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  errors = 0;
  firstError: unknown;

  constructor(
    private readonly stream: BenchStream,
    private readonly options: {
      readonly inflightBytesMax: number;
      readonly onAck: (batch: AckedBatch) => void;
    },
  ) {}

  /** Adds a record; returns whether there is room for more (else await `whenRoom`). */
  submit(body: Buffer, atMs: number): boolean {
    const bytes = body.length + recordOverheadBytes;
    if (this.bodies.length === 0) this.startLinger();
    if (this.bodies.length + 1 > batchRecordsMax || this.batchBytes + bytes > batchBytesMax) {
      this.flush();
      this.startLinger();
    }
    this.bodies.push(body);
    this.submitMs.push(atMs);
    this.batchBytes += bytes;
    if (this.bodies.length >= batchRecordsMax || this.batchBytes >= batchBytesMax) this.flush();
    return this.hasRoom();
  }

  /** Resolves once the unacknowledged bytes are under the bound again. */
  whenRoom(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Sends the partial batch and resolves once every batch sent has been answered. */
  drain(): Promise<void> {
    this.flush();
    if (this.inflightBatches === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private hasRoom(): boolean {
    return this.inflightBytes + this.batchBytes < this.options.inflightBytesMax;
  }

  private startLinger(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => this.flush(), lingerMs);
  }

  private flush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.bodies.length === 0) return;
    const bodies = this.bodies;
    const submitMs = this.submitMs;
    const bytes = this.batchBytes;
    const bodyBytes = bytes - bodies.length * recordOverheadBytes;
    this.bodies = [];
    this.submitMs = [];
    this.batchBytes = 0;
    this.inflightBytes += bytes;
    this.inflightBatches++;
    const sentMs = performance.now();
    this.stream.append(bodies).then(
      () => {
        this.options.onAck({ submitMs, sentMs, ackMs: performance.now(), bodyBytes });
        this.settle(bytes);
      },
      (error: unknown) => {
        if (this.errors++ === 0) this.firstError = error;
        this.settle(bytes);
      },
    );
  }

  private settle(bytes: number): void {
    this.inflightBytes -= bytes;
    this.inflightBatches--;
    if (this.hasRoom()) for (const wake of this.roomWaiters.splice(0)) wake();
    if (this.inflightBatches === 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }
}

/** The measured window of a part: a warm-up, then `seconds` measured. */
export interface Window {
  readonly warmupSeconds: number;
  readonly seconds: number;
}

/** What both append parts take: the stream, its bodies, the window and callbacks at its edges. */
export interface AppendPartOptions {
  readonly stream: BenchStream;
  readonly pool: BodyPool;
  readonly window: Window;
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
}

/** Figures of the batches acknowledged in a window. */
export interface BatchFigures {
  /** Record body bytes acknowledged in the window, per second. */
  readonly mibPerSec: number;
  readonly batchesPerSec: number;
  /** Batch sent → acknowledged, ms: the system's own share of the latency. */
  readonly batchAckP50: number;
  readonly batchAckP99: number;
  readonly errors: number;
  readonly firstError: unknown;
}

/**
 * One append part's clock (`performance.now()` ms: its start, and the measured window's edges)
 * and its tally of the batches acknowledged in that window.
 */
class AppendPart {
  readonly t0Ms = performance.now();
  readonly windowStartMs: number;
  readonly windowEndMs: number;
  private readonly batchAcks: number[] = [];
  private bodyBytes = 0;

  constructor(private readonly window: Window) {
    this.windowStartMs = this.t0Ms + window.warmupSeconds * 1000;
    this.windowEndMs = this.windowStartMs + window.seconds * 1000;
  }

  isInWindow(atMs: number): boolean {
    return atMs >= this.windowStartMs && atMs < this.windowEndMs;
  }

  countBatch(batch: AckedBatch, bodyBytes: number): void {
    this.batchAcks.push(batch.ackMs - batch.sentMs);
    this.bodyBytes += bodyBytes;
  }

  figures(producer: LingerProducer): BatchFigures {
    const sorted = sortedCopy(this.batchAcks);
    return {
      mibPerSec: this.bodyBytes / mib / this.window.seconds,
      batchesPerSec: this.batchAcks.length / this.window.seconds,
      batchAckP50: percentile(sorted, 50),
      batchAckP99: percentile(sorted, 99),
      errors: producer.errors,
      firstError: producer.firstError,
    };
  }
}

export interface PacedResult extends BatchFigures {
  readonly records: number;
  /** Record submitted to the producer → its batch acknowledged (linger included), ms. */
  readonly ackP50: number;
  readonly ackP99: number;
  readonly ackMax: number;
}

/**
 * Ack latency at a paced rate: `ratePerSec` records submitted on a fixed schedule without waiting
 * for acks (no in-flight bound, as a steady producer does); latencies of the records submitted in
 * the measured window.
 */
export async function runPacedAppends(
  options: AppendPartOptions & { readonly ratePerSec: number },
): Promise<PacedResult> {
  const { pool } = options;
  const part = new AppendPart(options.window);
  const acks: number[] = [];
  const producer = new LingerProducer(options.stream, {
    inflightBytesMax: Number.POSITIVE_INFINITY,
    onAck: (batch) => {
      let inWindow = 0;
      for (const at of batch.submitMs) {
        if (!part.isInWindow(at)) continue;
        acks.push(batch.ackMs - at);
        inWindow++;
      }
      if (inWindow > 0) part.countBatch(batch, inWindow * pool.recordBytes);
    },
  });
  const issued = await runPaced({
    t0Ms: part.t0Ms,
    ratePerSec: options.ratePerSec,
    windowStartMs: part.windowStartMs,
    windowEndMs: part.windowEndMs,
    issue: (i) => void producer.submit(pool.bodies[i % pool.bodies.length]!, performance.now()),
    onWindowStart: options.onWindowStart,
    onWindowEnd: options.onWindowEnd,
  });
  await producer.drain();
  const sorted = sortedCopy(acks);
  return {
    ...part.figures(producer),
    records: issued,
    ackP50: percentile(sorted, 50),
    ackP99: percentile(sorted, 99),
    ackMax: percentile(sorted, 100),
  };
}

export interface ThroughputResult extends BatchFigures {
  /** Records appended in all (warm-up included): what the read-back expects. */
  readonly records: number;
}

/**
 * Max throughput of one stream: records submitted as fast as the producer takes them (batches
 * fill before the linger ends), `inflightBytesMax` of batches unacknowledged; the figure counts
 * the body bytes acknowledged within the measured window.
 */
export async function runMaxAppends(options: AppendPartOptions): Promise<ThroughputResult> {
  const { pool } = options;
  const part = new AppendPart(options.window);
  const producer = new LingerProducer(options.stream, {
    inflightBytesMax,
    onAck: (batch) => {
      if (part.isInWindow(batch.ackMs)) part.countBatch(batch, batch.bodyBytes);
    },
  });
  const edges = [
    setTimeout(() => options.onWindowStart?.(), part.windowStartMs - part.t0Ms),
    setTimeout(() => options.onWindowEnd?.(), part.windowEndMs - part.t0Ms),
  ];
  let submitted = 0;
  try {
    while (producer.errors === 0) {
      const now = performance.now();
      if (now >= part.windowEndMs) break;
      // A bounded burst, then the event loop runs (acks, timers) whether or not there is room.
      let hasRoom = true;
      for (let k = 0; k < 256 && hasRoom; k++) {
        hasRoom = producer.submit(pool.bodies[submitted++ % pool.bodies.length]!, now);
      }
      if (hasRoom) await yieldToLoop();
      else await producer.whenRoom();
    }
    await producer.drain();
  } finally {
    for (const timer of edges) clearTimeout(timer);
  }
  return { ...part.figures(producer), records: submitted };
}

export interface ReadBackResult {
  readonly records: number;
  readonly bodyMiB: number;
  readonly seconds: number;
  readonly mibPerSec: number;
  /** Records whose bytes differ from what was appended at their position. */
  readonly mismatched: number;
  /** Whether every one of the expected records came back with the bytes appended. */
  readonly isVerified: boolean;
}

/**
 * Reads the first `count` records of a stream back in one pass and compares each one's bytes with
 * the body appended at its position; the rate counts body bytes over the whole pass.
 */
export async function readBack(options: {
  readonly stream: BenchStream;
  readonly pool: BodyPool;
  readonly count: number;
}): Promise<ReadBackResult> {
  const { pool, count } = options;
  let records = 0;
  let bytes = 0;
  let mismatched = 0;
  const startMs = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      options.stream.read(count, (body) => {
        const expected = pool.bodies[records % pool.bodies.length]!;
        if (!expected.equals(body)) mismatched++;
        records++;
        bytes += body.length;
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`read-back timed out. records=\`${records}\``)),
          readTimeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - startMs) / 1000;
  return {
    records,
    bodyMiB: bytes / mib,
    seconds,
    mibPerSec: bytes / mib / seconds,
    mismatched,
    isVerified: records === count && mismatched === 0,
  };
}
