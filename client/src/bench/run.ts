/**
 * The measuring core of `tributary bench`, after the S2 CLI's `bench` (cli/src/bench.rs): on a
 * temporary stream, a rate-limited pipelined writer and a live reader from seq num 0 run at the
 * same time for the run's duration; after a delay, a catch-up reader reads everything again from
 * the start. Every record carries a hash-chained `bench` header (`chain.ts`) that both readers
 * verify, and the run fails unless both read exactly what was acknowledged. The temporary stream
 * (and the basin, if the run created it) is deleted afterwards, on failure and interruption too.
 *
 * Latencies: ack latency runs from a submit's admission by the append session (after any
 * back-pressure wait, as S2 measures it) to its ack; end-to-end latency runs from a record's
 * creation by the writer to its arrival at the live reader. Both ends share this process's clock.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { StorageClass } from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import type { StreamHandle, TributaryClient } from "../client.js";
import { maxBatchBytes, maxBatchRecords } from "../records.js";
import {
  BenchVerificationError,
  benchRecordOverheadBytes,
  ChainVerifier,
  ChainWriter,
  hashHex,
} from "./chain.js";
import { LatencyHistogram, type LatencyStats } from "./histogram.js";

const mib = 1024 * 1024;
/** The smallest record: room for the bench header and a body (the S2 CLI's lower bound). */
export const benchRecordBytesMin = 128;
/** The largest record: one record may fill a whole batch. */
export const benchRecordBytesMax = maxBatchBytes;
/** After the writer is done, the live reader must catch up within this long. */
const liveReadDrainTimeoutMs = 120_000;
/** The catch-up read must finish within this long (the S2 CLI's 5 minutes). */
const catchupReadTimeoutMs = 300_000;
/** Records outlive the run by this long, so a crashed run's stream still expires (S2: 1 h). */
const streamRetentionSlackSecs = 3600;
/** An empty temporary stream left behind is deleted after this long (S2 CLI: 60 s). */
const streamDeleteOnEmptyMinAgeSecs = 60;
/** The writer sleeps at least this long when no record is due yet (timer granularity). */
const writerSleepMsMin = 1;
/** Default period of progress callbacks. */
const progressIntervalMsDefault = 1000;

/** The storage classes `--storage-class` accepts. */
export type BenchStorageClass = "standard" | "express";

/** What to measure. */
export interface BenchSettings {
  readonly basin: string;
  /** Metered bytes per record, the bench header included. */
  readonly recordBytes: number;
  readonly targetMibps: number;
  readonly durationMs: number;
  readonly catchupDelayMs: number;
  /** The temporary stream's storage class; the basin default when absent. */
  readonly storageClass?: BenchStorageClass;
}

/** A phase of a run, in order. */
export type BenchPhase = "write" | "drain" | "catchup-delay" | "catchup";

/** A snapshot for the live progress line. */
export interface BenchProgress {
  readonly phase: BenchPhase;
  readonly elapsedMs: number;
  readonly ackedRecords: number;
  readonly ackedBytes: number;
  readonly readRecords: number;
  readonly catchupRecords: number;
}

export interface BenchOptions extends BenchSettings {
  readonly client: TributaryClient;
  /** Interrupts the run (Ctrl-C): it stops, cleans up and reports what it measured. */
  readonly signal?: AbortSignal;
  readonly progressIntervalMs?: number;
  readonly onProgress?: (progress: BenchProgress) => void;
  /** Lines about the run's setup and cleanup (stderr in the CLI). */
  readonly onLog?: (line: string) => void;
  /**
   * Runs once the temporary stream exists, before the writer starts.
   * @internal For tests only: lets a test append a foreign record to see the readers reject it.
   */
  readonly beforeWriteForTesting?: (stream: StreamHandle) => Promise<void>;
}

/** Throughput of one side of the run. */
export interface Throughput {
  readonly records: number;
  /** Metered bytes. */
  readonly bytes: number;
  readonly elapsedMs: number;
  readonly mibps: number;
  readonly recordsPerSec: number;
}

/** What a run measured. */
export interface BenchReport {
  readonly basin: string;
  readonly stream: string;
  /** The run created the basin (and deleted it afterwards). */
  readonly basinCreated: boolean;
  readonly settings: Omit<BenchSettings, "basin">;
  readonly write: Throughput;
  readonly read: Throughput;
  /** Absent when the run was interrupted before the catch-up read. */
  readonly catchup: Throughput | undefined;
  readonly ackLatencyMs: LatencyStats;
  readonly endToEndLatencyMs: LatencyStats;
  /**
   * CPU time of this (client) process, user + system, during the write phase (writer and live
   * reader together) and during the catch-up read: near the phase's wall time means the client,
   * not the server, set the pace.
   */
  readonly clientCpuMs: { readonly live: number; readonly catchup: number | undefined };
  /** Hex of the last chain value, the same for the writer and both readers. */
  readonly chainHash: string;
  /** Stopped early by the signal; counts and hashes were not compared. */
  readonly interrupted: boolean;
  readonly streamDeleted: boolean;
}

function throughputOf(records: number, bytes: number, elapsedMs: number): Throughput {
  const seconds = elapsedMs / 1000;
  return {
    records,
    bytes,
    elapsedMs,
    mibps: seconds > 0 ? bytes / mib / seconds : 0,
    recordsPerSec: seconds > 0 ? records / seconds : 0,
  };
}

/** Microseconds since the Unix epoch from the monotonic clock (anchored once per process). */
function nowUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

function isAbortOf(error: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (error === signal.reason || (error as Error)?.name === "AbortError");
}

/** Creates the basin if it does not exist; true if this call created it. */
async function ensureBasin(client: TributaryClient, basin: string): Promise<boolean> {
  try {
    await client.account.getBasinConfig({ basin });
    return false;
  } catch (error) {
    if (ConnectError.from(error).code !== Code.NotFound) throw error;
  }
  try {
    await client.account.createBasin({ basin });
    return true;
  } catch (error) {
    // Someone else created it in between: theirs to keep.
    if (ConnectError.from(error).code === Code.AlreadyExists) return false;
    throw error;
  }
}

const storageClassOf = {
  standard: StorageClass.STANDARD,
  express: StorageClass.EXPRESS,
} as const satisfies Record<BenchStorageClass, StorageClass>;

/** Counters shared by the run's tasks and read by the progress timer. */
interface RunState {
  phase: BenchPhase;
  ackedRecords: number;
  ackedBytes: number;
  readRecords: number;
  catchupRecords: number;
}

interface SideResult {
  readonly throughput: Throughput;
  readonly lastHash: Uint8Array;
}

/**
 * Runs the bench against `options.basin` and returns its report. Throws `BenchVerificationError`
 * on any mismatch, or the client's error; the temporary stream is deleted in every case.
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const { client, basin } = options;
  const log = options.onLog ?? (() => {});
  const basinCreated = await ensureBasin(client, basin);
  if (basinCreated) log(`created basin ${basin} (deleted after the run)`);
  const stream = `bench/${randomUUID()}`;
  let measured: Omit<BenchReport, "streamDeleted"> | undefined;
  let failure: unknown;
  let streamCreated = false;
  try {
    const retentionSecs =
      Math.ceil((options.durationMs + options.catchupDelayMs) / 1000) + streamRetentionSlackSecs;
    await client.basins.createStream({
      basin,
      stream,
      config: {
        ...(options.storageClass !== undefined && {
          storageClass: storageClassOf[options.storageClass],
        }),
        retentionPolicy: { policy: { case: "ageSecs", value: BigInt(retentionSecs) } },
        deleteOnEmpty: { minAgeSecs: BigInt(streamDeleteOnEmptyMinAgeSecs) },
      },
    });
    streamCreated = true;
    log(
      `created temporary stream s2://${basin}/${stream} ` +
        `(storage class: ${options.storageClass ?? "basin default"})`,
    );
    const handle = client.basin(basin).stream(stream);
    await options.beforeWriteForTesting?.(handle);
    measured = { ...(await measure(options, handle)), basin, stream, basinCreated };
  } catch (error) {
    failure = error;
  }
  let streamDeleted = false;
  if (streamCreated) {
    try {
      await client.basins.deleteStream({ basin, stream });
      streamDeleted = true;
      log(`deleted temporary stream s2://${basin}/${stream}`);
    } catch (error) {
      log(`could not delete temporary stream s2://${basin}/${stream}: ${String(error)}`);
    }
  }
  if (basinCreated) {
    try {
      await client.account.deleteBasin({ basin });
      log(`deleted basin ${basin}`);
    } catch (error) {
      log(`could not delete basin ${basin}: ${String(error)}`);
    }
  }
  if (failure !== undefined || measured === undefined) throw failure;
  return { ...measured, streamDeleted };
}

/** The measurement proper: write + live read, then the catch-up read. */
async function measure(
  options: BenchOptions,
  stream: StreamHandle,
): Promise<Omit<BenchReport, "streamDeleted" | "basin" | "stream" | "basinCreated">> {
  const { recordBytes } = options;
  const bodyBytes = recordBytes - benchRecordOverheadBytes;
  const signal = options.signal ?? new AbortController().signal;
  const state: RunState = {
    phase: "write",
    ackedRecords: 0,
    ackedBytes: 0,
    readRecords: 0,
    catchupRecords: 0,
  };
  const startMs = performance.now();
  const liveCpu = process.cpuUsage();
  const progress = setInterval(
    () => options.onProgress?.({ ...state, elapsedMs: performance.now() - startMs }),
    options.progressIntervalMs ?? progressIntervalMsDefault,
  );
  const ackLatency = new LatencyHistogram();
  const endToEndLatency = new LatencyHistogram();
  // Writing stops at the deadline, on interruption, or when the live reader fails.
  const stopWriting = new AbortController();
  const deadline = setTimeout(
    () => stopWriting.abort(new Error("duration elapsed")),
    options.durationMs,
  );
  const liveReadDone = new AbortController();
  const onInterrupt = (): void => stopWriting.abort(signal.reason);
  signal.addEventListener("abort", onInterrupt, { once: true });
  if (signal.aborted) onInterrupt();
  let writtenRecords: number | undefined;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    const writing = writeRecords({
      stream,
      recordBytes,
      bodyBytes,
      targetMibps: options.targetMibps,
      stop: stopWriting.signal,
      interrupt: signal,
      state,
      ackLatency,
    }).then(
      (result) => {
        writtenRecords = result.throughput.records;
        state.phase = "drain";
        if (state.readRecords >= writtenRecords) liveReadDone.abort(liveReadComplete);
        drainTimer = setTimeout(
          () =>
            liveReadDone.abort(
              new BenchVerificationError(
                `live read had ${state.readRecords} of ${writtenRecords} records ` +
                  `${liveReadDrainTimeoutMs} ms after the writer finished`,
              ),
            ),
          liveReadDrainTimeoutMs,
        );
        return result;
      },
      (error: unknown) => {
        liveReadDone.abort(error);
        throw error;
      },
    );
    const reading = readLive({
      stream,
      recordBytes,
      bodyBytes,
      done: liveReadDone.signal,
      signal,
      writtenRecords: () => writtenRecords,
      state,
      endToEndLatency,
    }).catch((error: unknown) => {
      stopWriting.abort(error);
      throw error;
    });
    const [written, read] = await Promise.allSettled([writing, reading]);
    clearTimeout(drainTimer);
    const interrupted = signal.aborted;
    // A reader's verification failure explains a writer's failure, not the other way round.
    if (read.status === "rejected") throw read.reason;
    if (written.status === "rejected") throw written.reason;
    const write = written.value;
    const live = read.value;
    const liveCpuMs = cpuMsSince(liveCpu);
    const report = {
      settings: settingsOf(options),
      write: write.throughput,
      read: live.throughput,
      ackLatencyMs: ackLatency.stats(1000),
      endToEndLatencyMs: endToEndLatency.stats(1000),
      chainHash: hashHex(write.lastHash),
    };
    const partial = { ...report, catchup: undefined, interrupted: true };
    const clientCpuMs = { live: liveCpuMs, catchup: undefined };
    if (interrupted) return { ...partial, clientCpuMs };
    compareWithWriter("live read", write, live);

    state.phase = "catchup-delay";
    try {
      await sleep(options.catchupDelayMs, undefined, { signal });
    } catch (error) {
      if (isAbortOf(error, signal)) return { ...partial, clientCpuMs };
      throw error;
    }
    state.phase = "catchup";
    let catchup: SideResult;
    const catchupCpu = process.cpuUsage();
    try {
      catchup = await readCatchup({ stream, recordBytes, bodyBytes, signal, state });
    } catch (error) {
      if (isAbortOf(error, signal)) return { ...partial, clientCpuMs };
      throw error;
    }
    compareWithWriter("catch-up read", write, catchup);
    return {
      ...report,
      catchup: catchup.throughput,
      clientCpuMs: { live: liveCpuMs, catchup: cpuMsSince(catchupCpu) },
      interrupted: false,
    };
  } finally {
    clearInterval(progress);
    clearTimeout(deadline);
    clearTimeout(drainTimer);
    signal.removeEventListener("abort", onInterrupt);
  }
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function settingsOf(options: BenchOptions): Omit<BenchSettings, "basin"> {
  return {
    recordBytes: options.recordBytes,
    targetMibps: options.targetMibps,
    durationMs: options.durationMs,
    catchupDelayMs: options.catchupDelayMs,
    ...(options.storageClass !== undefined && { storageClass: options.storageClass }),
  };
}

function compareWithWriter(what: string, write: SideResult, read: SideResult): void {
  if (read.throughput.records !== write.throughput.records) {
    throw new BenchVerificationError(
      `${what} record count mismatch: ${write.throughput.records} acknowledged, ` +
        `${read.throughput.records} read`,
    );
  }
  const expected = hashHex(write.lastHash);
  const actual = hashHex(read.lastHash);
  if (actual !== expected) {
    throw new BenchVerificationError(
      `${what} hash mismatch: writer ended at ${expected}, reader at ${actual}`,
    );
  }
}

interface WriteOptions {
  readonly stream: StreamHandle;
  readonly recordBytes: number;
  readonly bodyBytes: number;
  readonly targetMibps: number;
  readonly stop: AbortSignal;
  /** Ends the session at once, without waiting for acks: the stream is deleted right after. */
  readonly interrupt: AbortSignal;
  readonly state: RunState;
  readonly ackLatency: LatencyHistogram;
}

/**
 * Submits records at the target rate until `stop`, then closes the session (waiting for every
 * ack). The rate is time-based, as in the S2 CLI: records owed for the time elapsed go out in
 * one submit (at most one batch), so a stall is followed by a catch-up burst, not a lower rate.
 */
async function writeRecords(options: WriteOptions): Promise<SideResult> {
  const { recordBytes, bodyBytes, state, ackLatency, stop, interrupt } = options;
  // The CLI exits soon after Ctrl-C (cli/main.ts grants 2 s), and cleanup must fit in that.
  const session = options.stream.appendSession({ signal: interrupt });
  const chain = new ChainWriter();
  const targetBytesPerMs = (options.targetMibps * mib) / 1000;
  const recordsPerSubmitMax = Math.max(
    1,
    Math.min(maxBatchRecords, Math.floor(maxBatchBytes / recordBytes)),
  );
  const startMs = performance.now();
  let lastAckMs = startMs;
  let submittedBytes = 0;
  const result = (): SideResult => ({
    throughput: throughputOf(state.ackedRecords, state.ackedBytes, lastAckMs - startMs),
    lastHash: chain.lastHash,
  });
  // Bounded by the session's unacknowledged bytes: each entry is one submit in flight.
  const pendingAcks = new Set<Promise<void>>();
  try {
    while (!stop.aborted) {
      const owedBytes = targetBytesPerMs * (performance.now() - startMs) - submittedBytes;
      const due = Math.floor(owedBytes / recordBytes);
      if (due < 1) {
        const waitMs = Math.ceil((recordBytes - owedBytes) / targetBytesPerMs);
        await sleep(Math.max(writerSleepMsMin, waitMs), undefined, { signal: stop }).catch(
          () => {},
        );
        continue;
      }
      const count = Math.min(due, recordsPerSubmitMax);
      const sendTimeUs = nowUs();
      const records = [];
      for (let i = 0; i < count; i++) records.push(chain.next(randomBytes(bodyBytes), sendTimeUs));
      const ticket = await session.submit(records);
      const admittedMs = performance.now();
      submittedBytes += count * recordBytes;
      const acked = ticket.ack().then(() => {
        lastAckMs = performance.now();
        ackLatency.record((lastAckMs - admittedMs) * 1000, count);
        state.ackedRecords += count;
        state.ackedBytes += count * recordBytes;
        pendingAcks.delete(acked);
      });
      // The session fails as a whole: `close()` below throws; this only keeps it observed.
      acked.catch(() => {});
      pendingAcks.add(acked);
    }
    await session.close();
    await Promise.all(pendingAcks);
  } catch (error) {
    await session.close().catch(() => {});
    // Interrupted: what was acknowledged so far is the result (counts are not compared).
    if (interrupt.aborted) return result();
    throw error;
  }
  if (state.ackedRecords !== chain.count) {
    throw new Error(`${chain.count} records submitted but ${state.ackedRecords} acknowledged`);
  }
  return result();
}

/** The reason the live reader is stopped with once it read everything the writer wrote. */
const liveReadComplete = new Error("live read complete");

interface LiveReadOptions {
  readonly stream: StreamHandle;
  readonly recordBytes: number;
  readonly bodyBytes: number;
  /** Aborted with `liveReadComplete` when done, or with the error that ends the read. */
  readonly done: AbortSignal;
  /** The run's interruption. */
  readonly signal: AbortSignal;
  /** The number of records acknowledged, once the writer is done. */
  readonly writtenRecords: () => number | undefined;
  readonly state: RunState;
  readonly endToEndLatency: LatencyHistogram;
}

/** Follows the stream from seq num 0, verifying each record, until the writer's count. */
async function readLive(options: LiveReadOptions): Promise<SideResult> {
  const { recordBytes, state, done } = options;
  const verifier = new ChainVerifier(options.bodyBytes);
  const startMs = performance.now();
  let lastReadMs = startMs;
  const finish = (): SideResult => ({
    throughput: throughputOf(verifier.count, verifier.count * recordBytes, lastReadMs - startMs),
    lastHash: verifier.lastHash,
  });
  try {
    const signal = AbortSignal.any([done, options.signal]);
    for await (const record of options.stream.readSession({ startSeqNum: 0n, signal })) {
      const header = verifier.verify(record);
      options.endToEndLatency.record(nowUs() - header.sendTimeUs);
      lastReadMs = performance.now();
      state.readRecords = verifier.count;
      const written = options.writtenRecords();
      if (written !== undefined && verifier.count >= written) return finish();
    }
  } catch (error) {
    // Done, or interrupted: either way the read ends where it is.
    if (done.aborted && done.reason === liveReadComplete) return finish();
    if (options.signal.aborted) return finish();
    throw error;
  }
  throw new Error("the live read session ended unexpectedly");
}

interface CatchupReadOptions {
  readonly stream: StreamHandle;
  readonly recordBytes: number;
  readonly bodyBytes: number;
  readonly signal: AbortSignal;
  readonly state: RunState;
}

/** Reads the whole stream again from seq num 0 up to its tail, verifying each record. */
async function readCatchup(options: CatchupReadOptions): Promise<SideResult> {
  const { recordBytes, state } = options;
  const verifier = new ChainVerifier(options.bodyBytes);
  const timeout = AbortSignal.timeout(catchupReadTimeoutMs);
  const signal = AbortSignal.any([options.signal, timeout]);
  const startMs = performance.now();
  let lastReadMs = startMs;
  try {
    // `waitSecs: 0` ends the session at the tail instead of following it.
    for await (const record of options.stream.readSession({
      startSeqNum: 0n,
      waitSecs: 0,
      signal,
    })) {
      verifier.verify(record);
      lastReadMs = performance.now();
      state.catchupRecords = verifier.count;
    }
  } catch (error) {
    if (timeout.aborted && !options.signal.aborted) {
      throw new BenchVerificationError(
        `catch-up read timed out after ${catchupReadTimeoutMs} ms at ${verifier.count} records`,
      );
    }
    throw error;
  }
  return {
    throughput: throughputOf(verifier.count, verifier.count * recordBytes, lastReadMs - startMs),
    lastHash: verifier.lastHash,
  };
}
