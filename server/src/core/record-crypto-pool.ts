/**
 * A small, bounded pool of worker threads that run record encryption jobs
 * (`record-crypto-job.ts`) off the event loop (issue 12: no request blocks the loop for more than
 * 10 ms; a 1 MiB AEGIS-256 batch takes 15–26 ms). `record-encryption.ts` decides which batches come
 * here; callers only see `encryptBatch` and `decryptBatch`.
 *
 * Invariants and bounds:
 * - At most `workersMax` workers, started on demand, each running one job at a time; jobs start
 *   in the order they were queued (results may come back in any order; callers that need an order
 *   keep it themselves, as the streamer does).
 * - Every job is one batch (≤ 1,000 records, asserted; an append batch or a read batch, whose
 *   content encodings are ~1 MiB), so it holds a worker for tens of ms at most. Queued jobs hold
 *   at most `queueBytesMax` envelope bytes: `run` refuses a job beyond that (undefined), and the
 *   caller runs it on the loop.
 * - A job's envelopes (and its copy of the key) are transferred to its worker, the envelopes back,
 *   never copied; only its spans and associated data (42 bytes a record) are.
 * - A worker is referenced only while it runs a job: an idle pool never keeps the process alive.
 *   `close` lets queued and running jobs finish, refuses new ones, then terminates the workers.
 *
 * Fault model: a worker that throws or exits (a bug, or no memory for a thread) rejects its job
 * with `RecordCryptoWorkerError` and is replaced by the next job; the job's buffers are lost with
 * it, so the caller redoes the batch on the loop from its records. A worker that fails before
 * finishing any job marks the pool unusable (for instance the worker module cannot load), after
 * which `run` refuses every job rather than starting a thread per batch.
 */
import { Worker } from "node:worker_threads";
import { assert } from "./assert.js";
import {
  recordBatchCountMax,
  recordCryptoQueueBytesMax,
  recordCryptoWorkersMax,
} from "./limits.js";
import {
  type RecordCryptoJob,
  type RecordCryptoResult,
  recordCryptoJobCount,
  recordCryptoJobTransfers,
} from "./record-crypto-job.js";

/** A worker of the pool failed while it held a job; the job's buffers went with it. */
export class RecordCryptoWorkerError extends Error {
  override readonly name = "RecordCryptoWorkerError";
}

export interface RecordCryptoPoolOptions {
  /** Workers at most (default `recordCryptoWorkersMax`); at least 1. */
  readonly workersMax?: number | undefined;
  /** Envelope bytes of queued jobs at most (default `recordCryptoQueueBytesMax`). */
  readonly queueBytesMax?: number | undefined;
  /** Told once, with the cause, if the pool becomes unusable (the operator's log). */
  readonly log?: ((line: string) => void) | undefined;
  /**
   * The workers' module (default `record-crypto-worker`): tests give a failing one.
   * @internal
   */
  readonly workerUrl?: URL | undefined;
}

interface Task {
  readonly job: RecordCryptoJob;
  readonly bytes: number;
  readonly resolve: (result: RecordCryptoResult) => void;
  readonly reject: (error: unknown) => void;
}

interface Slot {
  readonly worker: Worker;
  task: Task | undefined;
  jobsDone: number;
}

// The worker module beside this one: `.ts` when run from the sources (with tsx, see
// `loaderExecArgv`), `.js` in the build.
const workerUrl = new URL(
  `./record-crypto-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`,
  import.meta.url,
);

/** Options that register module loaders (`--import tsx` when run from the sources). */
const loaderOptions = new Set(["--import", "--require", "-r", "--loader", "--experimental-loader"]);

/**
 * The parent's module loader options and nothing else, for the workers: by default a worker
 * inherits all of `process.execArgv`, and some options fail there (a worker of `node --input-type
 * =module -e …` cannot load a file: ERR_INPUT_TYPE_NOT_ALLOWED).
 * @internal
 */
export function loaderExecArgv(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const option = execArgv[i]!;
    const equals = option.indexOf("=");
    if (!loaderOptions.has(equals === -1 ? option : option.slice(0, equals))) continue;
    if (equals !== -1) {
      kept.push(option);
    } else if (i + 1 < execArgv.length) {
      kept.push(option, execArgv[i + 1]!);
      i += 1;
    }
  }
  return kept;
}

export class RecordCryptoPool {
  private readonly workersMax: number;
  private readonly queueBytesMax: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private queuedBytes = 0;
  private isClosing = false;
  private isBroken = false;
  private onIdle: (() => void) | undefined;

  constructor(private readonly options: RecordCryptoPoolOptions = {}) {
    this.workersMax = options.workersMax ?? recordCryptoWorkersMax;
    this.queueBytesMax = options.queueBytesMax ?? recordCryptoQueueBytesMax;
    assert(Number.isInteger(this.workersMax) && this.workersMax >= 1, "a pool has a worker");
    assert(this.queueBytesMax >= 0, "a queue bound is a size");
  }

  /** Workers started and alive (tests, metrics). */
  get workerCount(): number {
    return this.slots.length;
  }

  /**
   * Runs `job` in a worker and resolves with its result. Undefined when the pool takes no more
   * jobs (closing, unusable, or its queue full): the caller then runs the job itself. Rejects with
   * `RecordCryptoWorkerError` when the worker fails.
   */
  run(job: RecordCryptoJob): Promise<RecordCryptoResult> | undefined {
    assert(recordCryptoJobCount(job) <= recordBatchCountMax, "a job is one batch");
    if (this.isClosing || this.isBroken) return undefined;
    const bytes = job.envelopes.length;
    // A queue with nothing waiting takes any job (one batch): a bound of zero still uses workers.
    if (this.queue.length > 0 && this.queuedBytes + bytes > this.queueBytesMax) return undefined;
    return new Promise<RecordCryptoResult>((resolve, reject) => {
      this.queue.push({ job, bytes, resolve, reject });
      this.queuedBytes += bytes;
      this.dispatch();
    });
  }

  /**
   * Refuses new jobs, waits for the queued and running ones, then terminates the workers. The
   * server calls it when it closes (`Service.close`).
   */
  async close(): Promise<void> {
    this.isClosing = true;
    if (this.queue.length > 0 || this.slots.some((slot) => slot.task !== undefined)) {
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
      });
    }
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
    this.slots.length = 0;
  }

  /** Hands queued jobs to idle workers, starting workers up to the bound. */
  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((candidate) => candidate.task === undefined);
      if (slot === undefined) {
        if (this.slots.length >= this.workersMax) return;
        slot = this.startWorker();
      }
      const task = this.queue.shift()!;
      this.queuedBytes -= task.bytes;
      slot.task = task;
      slot.worker.ref();
      slot.worker.postMessage(task.job, recordCryptoJobTransfers(task.job));
    }
  }

  private startWorker(): Slot {
    const worker = new Worker(this.options.workerUrl ?? workerUrl, {
      execArgv: loaderExecArgv(process.execArgv),
    });
    worker.unref();
    const slot: Slot = { worker, task: undefined, jobsDone: 0 };
    worker.on("message", (result: RecordCryptoResult) => {
      const task = slot.task;
      assert(task !== undefined, "a worker answers only the job it was given");
      slot.task = undefined;
      slot.jobsDone += 1;
      worker.unref();
      task.resolve(result);
      this.dispatch();
      this.noteIfIdle();
    });
    const fail = (cause: unknown): void => {
      const index = this.slots.indexOf(slot);
      if (index === -1) return; // 'error' is followed by 'exit'; reported once.
      this.slots.splice(index, 1);
      if (slot.jobsDone === 0 && !this.isBroken && !this.isClosing) {
        this.isBroken = true;
        this.options.log?.(
          `record crypto workers unusable, encrypting on the event loop: ${String(cause)}`,
        );
      }
      const task = slot.task;
      slot.task = undefined;
      task?.reject(new RecordCryptoWorkerError("record crypto worker failed", { cause }));
      if (this.isBroken) this.refuseQueued();
      else this.dispatch();
      this.noteIfIdle();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`worker exited. code=\`${code}\``)));
    this.slots.push(slot);
    return slot;
  }

  /** An unusable pool hands its queued jobs back: their callers run them on the loop. */
  private refuseQueued(): void {
    for (const task of this.queue.splice(0)) {
      task.reject(new RecordCryptoWorkerError("record crypto pool unusable"));
    }
    this.queuedBytes = 0;
  }

  private noteIfIdle(): void {
    if (this.onIdle === undefined || this.queue.length > 0) return;
    if (this.slots.some((slot) => slot.task !== undefined)) return;
    const onIdle = this.onIdle;
    this.onIdle = undefined;
    onIdle();
  }
}
