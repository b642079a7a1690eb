/**
 * The storage engine: object store (truth) + LevelDB cache + flusher, opened through recovery.
 * Upper layers submit records and control operations and are answered when they are durable; they
 * read durable metadata and tails from `state` and records from the cache.
 *
 * Invariants:
 * - `state` only ever reflects segments that are in object storage.
 * - Records are staged in the cache when submitted and are in the cache before they count as
 *   durable, so a reader sent to the cache for seq nums below a durable tail finds them.
 * - Admission bytes are returned only after the segment's cache commit, so memory held for
 *   accepted-but-uncommitted appends is bounded by `appendInflightBytesMax`.
 *
 * Fault model: object-store faults are absorbed by the flusher's retries; being fenced fails
 * everything pending with `FencedError`; a cache (LevelDB) write failure is fatal (`onFatal`),
 * since the restart path rebuilds the cache from object storage.
 */
import type { Clock } from "../core/clock.js";
import {
  appendInflightBytesMax,
  flushIntervalMsDefault,
  manifestPollIntervalMs,
  segmentBytesTarget,
  segmentPutTimeoutMs,
} from "../core/limits.js";
import type { Random } from "../core/random.js";
import { meteredBytes, type SeqNum, type SequencedRecord } from "../core/records.js";
import type { AppliedEffects, DurableState } from "./durable-state.js";
import { decodeRecordKey, encodeRecordKey } from "./kv/keys.js";
import type { KvOp, KvStore } from "./kv/kv-store.js";
import { type Manifest, readNewestManifest } from "./manifest/manifest.js";
import type { ObjectStore } from "./object-store/object-store.js";
import { cacheMarkerOp, hexOf, recover } from "./recovery.js";
import type { SegmentEntry } from "./segment/format.js";
import { decodeRecord, type DecodedRecord } from "./segment/record-codec.js";
import { Admission } from "./wal/admission.js";
import { type ControlOp, encodeControlOp } from "./wal/entries.js";
import {
  type DurableSegment,
  type FencedError,
  Flusher,
  FlusherClosedError,
  type FlusherStats,
} from "./wal/flusher.js";

export interface StorageOptions {
  readonly store: ObjectStore;
  readonly kv: KvStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly flushIntervalMs?: number;
  readonly segmentBytesTarget?: number;
  readonly appendInflightBytesMax?: number;
  readonly putTimeoutMs?: number;
  readonly manifestPollIntervalMs?: number;
  /** Called once if a newer writer fences this one. */
  readonly onFenced?: (error: FencedError) => void;
  /** Called on an unrecoverable local failure (the cache); the default rethrows asynchronously. */
  readonly onFatal?: (error: unknown) => void;
}

export type StorageHealth = "ready" | "fenced" | "closed";

/** Durable records of one stream delivered to listeners when their segment is durable. */
export interface DurableRecords {
  readonly streamId: number;
  readonly firstSeqNum: SeqNum;
  readonly records: readonly DecodedRecord[];
}

export interface StorageStats extends FlusherStats {
  readonly inflightBytes: number;
  readonly admissionWaiting: number;
  readonly replayedSegments: number;
  readonly cacheResetReason: string | undefined;
}

function defaultOnFatal(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

export class Storage {
  private healthState: StorageHealth = "ready";
  private readonly admittedBytesByEntry = new WeakMap<SegmentEntry, number>();
  private readonly durableListeners = new Set<(segment: DurableSegment) => void>();
  private commitChain: Promise<void> = Promise.resolve();
  private cancelManifestPoll: (() => void) | undefined;

  private constructor(
    private readonly options: StorageOptions,
    readonly state: DurableState,
    readonly manifest: Manifest,
    private readonly admission: Admission,
    private readonly flusher: Flusher,
    private readonly recovery: { replayedSegments: number; cacheResetReason: string | undefined },
  ) {}

  /** Recovers from object storage and the cache, fences older writers, and starts flushing. */
  static async open(options: StorageOptions): Promise<Storage> {
    const recovered = await recover(options);
    const admission = new Admission(options.appendInflightBytesMax ?? appendInflightBytesMax);
    let storage: Storage | undefined;
    const flusher = new Flusher({
      store: options.store,
      clock: options.clock,
      random: options.random,
      writerEpoch: recovered.manifest.writerEpoch,
      firstWalId: recovered.firstWalId,
      flushIntervalMs: options.flushIntervalMs ?? flushIntervalMsDefault,
      segmentBytesTarget: options.segmentBytesTarget ?? segmentBytesTarget,
      putTimeoutMs: options.putTimeoutMs ?? segmentPutTimeoutMs,
      onSegmentDurable: (segment) => storage!.onSegmentDurable(segment),
      onFenced: (error) => storage!.onFenced(error),
    });
    storage = new Storage(
      options,
      recovered.state,
      recovered.manifest,
      admission,
      flusher,
      recovered,
    );
    storage.pollManifest();
    return storage;
  }

  get health(): StorageHealth {
    return this.healthState;
  }

  get writerEpoch(): number {
    return this.manifest.writerEpoch;
  }

  get stats(): StorageStats {
    return {
      ...this.flusher.stats,
      inflightBytes: this.admission.inflight,
      admissionWaiting: this.admission.waiting,
      replayedSegments: this.recovery.replayedSegments,
      cacheResetReason: this.recovery.cacheResetReason,
    };
  }

  /** Waits until `bytes` more may be in flight (back-pressure). */
  admit(bytes: number): Promise<void> {
    return this.admission.acquire(bytes);
  }

  /** Returns admitted bytes of an append that was rejected before it was submitted. */
  releaseAdmission(bytes: number): void {
    this.admission.release(bytes);
  }

  /**
   * Stages one stream's sequenced records in the cache and submits them; resolves when durable.
   * `admittedBytes` (from `admit`) are released after the segment's cache commit.
   */
  submitRecords(options: {
    readonly streamId: number;
    readonly firstSeqNum: SeqNum;
    readonly records: readonly DecodedRecord[];
    readonly admittedBytes: number;
  }): Promise<void> {
    const { streamId, firstSeqNum, records } = options;
    const entry: SegmentEntry = { kind: "records", streamId, firstSeqNum, records };
    this.admittedBytesByEntry.set(entry, options.admittedBytes);
    const ops: KvOp[] = records.map((record, i) => ({
      type: "put",
      key: encodeRecordKey(streamId, firstSeqNum + i),
      value: record.encoded,
    }));
    // A staging failure must also keep the entry from counting as durable (readers would be sent
    // to a cache without its records), whatever `onFatal` does.
    const staged = this.options.kv.write(ops).catch((error: unknown) => {
      this.fatal(error);
      throw error;
    });
    return this.flusher.submit(entry, staged);
  }

  /** Submits a control-plane operation; resolves when durable (and applied to `state`). */
  submitControl(op: ControlOp): Promise<void> {
    return this.flusher.submit({ kind: "control", payload: encodeControlOp(op) });
  }

  /** Subscribes to durable segments (called synchronously, in WAL order, before acks). */
  onDurable(listener: (segment: DurableSegment) => void): () => void {
    this.durableListeners.add(listener);
    return () => this.durableListeners.delete(listener);
  }

  /**
   * Durable records of a stream from the cache, from `startSeqNum` (raised to the trim point)
   * below `endSeqNum`, at most `countMax` records and `bytesMax` metered bytes; a record is never
   * split, so a record larger than the remaining budget ends the read.
   */
  async readRecords(options: {
    readonly streamId: number;
    readonly startSeqNum: SeqNum;
    readonly endSeqNum: SeqNum;
    readonly countMax: number;
    readonly bytesMax: number;
    /** How a stored record is metered against `bytesMax`; `meteredBytes` by default. */
    readonly meteredBytesOf?: ((record: DecodedRecord) => number) | undefined;
  }): Promise<SequencedRecord[]> {
    const { streamId, countMax, bytesMax } = options;
    const meteredBytesOf = options.meteredBytesOf ?? meteredBytes;
    const tail = this.state.tailOf(streamId);
    const startSeqNum = Math.max(options.startSeqNum, tail.trimPoint);
    const endSeqNum = Math.min(options.endSeqNum, tail.nextSeqNum);
    const records: SequencedRecord[] = [];
    if (startSeqNum >= endSeqNum || countMax <= 0) return records;
    let bytes = 0;
    const range = {
      gte: encodeRecordKey(streamId, startSeqNum),
      lt: encodeRecordKey(streamId, endSeqNum),
      limit: countMax,
    };
    for await (const [key, value] of this.options.kv.entries(range)) {
      const { seqNum } = decodeRecordKey(key);
      const decoded = decodeRecord(value);
      const recordBytes = meteredBytesOf(decoded);
      if (bytes + recordBytes > bytesMax) break;
      bytes += recordBytes;
      records.push({
        seqNum,
        timestamp: decoded.timestamp,
        headers: decoded.headers,
        body: decoded.body,
      });
    }
    return records;
  }

  /** Flushes everything submitted so far (tests and shutdown). */
  flushNow(): Promise<void> {
    return this.flusher.flushNow();
  }

  /** Flushes, waits for the cache commits, and stops. The stores are the caller's to close. */
  async close(): Promise<void> {
    if (this.healthState === "ready") this.healthState = "closed";
    this.cancelManifestPoll?.();
    await this.flusher.close();
    this.admission.close(new FlusherClosedError("storage closed"));
    await this.commitChain;
  }

  private onSegmentDurable(segment: DurableSegment): void {
    const effects: AppliedEffects = { trimmed: [], removedStreamIds: [] };
    const ops: KvOp[] = [];
    let admittedBytes = 0;
    for (const entry of segment.entries) {
      ops.push(...this.state.applyEntry(entry, effects, false));
      admittedBytes += this.admittedBytesByEntry.get(entry) ?? 0;
    }
    ops.push(
      cacheMarkerOp({
        walId: segment.walId,
        writeId: hexOf(segment.writeId),
        writerEpoch: segment.writerEpoch,
        nextStreamId: this.state.nextStreamId,
      }),
    );
    for (const listener of this.durableListeners) listener(segment);
    const { kv } = this.options;
    this.commitChain = this.commitChain
      .then(async () => {
        await kv.write(ops);
        for (const { streamId, trimPoint } of effects.trimmed) {
          await kv.clear({
            gte: encodeRecordKey(streamId, 0),
            lt: encodeRecordKey(streamId, trimPoint),
          });
        }
        for (const streamId of effects.removedStreamIds) {
          await kv.clear({
            gte: encodeRecordKey(streamId, 0),
            lt: encodeRecordKey(streamId + 1, 0),
          });
        }
      })
      .catch((error: unknown) => this.fatal(error))
      .finally(() => this.admission.release(admittedBytes));
  }

  private onFenced(error: FencedError): void {
    this.healthState = "fenced";
    this.cancelManifestPoll?.();
    this.admission.close(error);
    this.options.onFenced?.(error);
  }

  /** An idle writer learns of a newer one from the manifests (a busy one from its next PUT). */
  private pollManifest(): void {
    const intervalMs = this.options.manifestPollIntervalMs ?? manifestPollIntervalMs;
    const tick = (): void => {
      this.cancelManifestPoll = undefined;
      readNewestManifest(this.options.store, this.manifest.version)
        .then((newer) => {
          if (newer !== undefined && newer.writerEpoch > this.manifest.writerEpoch) {
            this.flusher.fence(`a newer writer started. epoch=\`${newer.writerEpoch}\``);
          }
        })
        .catch(() => {
          // A failed poll is retried at the next tick; fencing is still caught by the WAL claim.
        })
        .finally(() => {
          if (this.healthState === "ready")
            this.cancelManifestPoll = this.options.clock.setTimer(intervalMs, tick);
        });
    };
    this.cancelManifestPoll = this.options.clock.setTimer(intervalMs, tick);
  }

  private fatal(error: unknown): void {
    (this.options.onFatal ?? defaultOnFatal)(error);
  }
}
