/**
 * The service root: opens the storage engine on an object store and a cache, and exposes the
 * basin, stream and record services that every front end (REST, S2S, Connect) calls.
 */
import type { Clock } from "../core/clock.js";
import type { Random } from "../core/random.js";
import type { CacheDisk } from "../storage/cache/cache-guard.js";
import type { SegmentFiles } from "../storage/cache/segment-files.js";
import type { KvStore } from "../storage/kv/kv-store.js";
import type { ObjectStore } from "../storage/object-store/object-store.js";
import { type BottomlessOptions, Storage, type StorageOptions } from "../storage/storage.js";
import type { FencedError } from "../storage/wal/flusher.js";
import { assert } from "../core/assert.js";
import { S2Error } from "../core/errors.js";
import { recordCryptoWorkersMax } from "../core/limits.js";
import { RecordCryptoPool } from "../core/record-crypto-pool.js";
import { AccessTokenService } from "./access-tokens.js";
import { BasinService } from "./basins.js";
import { Catalog } from "./catalog.js";
import { ServiceContext } from "./context.js";
import type { MetricsService } from "./metrics.js";
import { RecordService } from "./records.js";
import { RetentionTask } from "./retention.js";
import { StreamService } from "./streams.js";

export interface ServiceOptions {
  readonly store: ObjectStore;
  /** The cache index opened by the caller; or `cacheDisk` (exactly one of the two). */
  readonly kv?: KvStore | undefined;
  /** The segment files paired with `kv` (`openCache` opens both); memory by default. */
  readonly segmentFiles?: SegmentFiles | undefined;
  /** The cache directory, opened, probed and closed by the storage (degraded-cache.md). */
  readonly cacheDisk?: CacheDisk | undefined;
  /** One line per cache mode change, for the operator's log. */
  readonly log?: ((line: string) => void) | undefined;
  readonly clock: Clock;
  readonly random: Random;
  readonly flushIntervalMs?: number | undefined;
  readonly segmentBytesTarget?: number | undefined;
  readonly appendInflightBytesMax?: number | undefined;
  readonly putTimeoutMs?: number | undefined;
  readonly manifestPollIntervalMs?: number | undefined;
  readonly onFenced?: ((error: FencedError) => void) | undefined;
  readonly onFatal?: ((error: unknown) => void) | undefined;
  /** How often the metrics recorder flushes (default `metricsFlushIntervalMs`). */
  readonly metricsFlushIntervalMs?: number | undefined;
  /** Retention and delete-on-empty cadence (default `backgroundTaskIntervalMs`). */
  readonly backgroundTaskIntervalMs?: number | undefined;
  /** How long an idle streamer is kept (default `streamerIdleMs`; tests shorten it). */
  readonly streamerIdleMs?: number | undefined;
  /** Compaction, checkpoints, GC and the cache bound (storage defaults when absent). */
  readonly bottomless?: BottomlessOptions | undefined;
  /**
   * Worker threads that encrypt and decrypt large record batches off the event loop (default
   * `recordCryptoWorkersMax`, started on first use); 0 = all on the loop.
   */
  readonly recordCryptoWorkers?: number | undefined;
}

export class Service {
  readonly basins: BasinService;
  readonly streams: StreamService;
  readonly records: RecordService;
  readonly accessTokens: AccessTokenService;

  /** Retention and delete-on-empty; exposed so tests can run a pass on demand. */
  readonly retention: RetentionTask;

  private constructor(
    readonly storage: Storage,
    private readonly context: ServiceContext,
    backgroundTaskIntervalMs: number | undefined,
  ) {
    this.retention = new RetentionTask(context, backgroundTaskIntervalMs);
    this.basins = new BasinService(context);
    this.streams = new StreamService(context);
    this.records = new RecordService(context, this.streams);
    this.accessTokens = new AccessTokenService(storage, context.clock, context.metrics);
  }

  /** Recovers storage (fencing older writers) and resumes pending deletions. */
  static async open(options: ServiceOptions): Promise<Service> {
    let service: Service | undefined;
    const storageOptions: StorageOptions = {
      store: options.store,
      kv: options.kv,
      segmentFiles: options.segmentFiles,
      cacheDisk: options.cacheDisk,
      log: options.log,
      ...options.bottomless,
      clock: options.clock,
      random: options.random,
      ...(options.flushIntervalMs !== undefined && { flushIntervalMs: options.flushIntervalMs }),
      ...(options.segmentBytesTarget !== undefined && {
        segmentBytesTarget: options.segmentBytesTarget,
      }),
      ...(options.appendInflightBytesMax !== undefined && {
        appendInflightBytesMax: options.appendInflightBytesMax,
      }),
      ...(options.putTimeoutMs !== undefined && { putTimeoutMs: options.putTimeoutMs }),
      ...(options.manifestPollIntervalMs !== undefined && {
        manifestPollIntervalMs: options.manifestPollIntervalMs,
      }),
      ...(options.onFatal !== undefined && { onFatal: options.onFatal }),
      onFenced: (error) => {
        service?.context.endAllFollowers(
          new S2Error("unavailable", "server fenced by a newer writer", { cause: error }),
        );
        options.onFenced?.(error);
      },
    };
    const storage = await Storage.open(storageOptions);
    const workersMax = options.recordCryptoWorkers ?? recordCryptoWorkersMax;
    assert(Number.isInteger(workersMax) && workersMax >= 0, "record crypto workers is a count");
    const recordCrypto =
      workersMax === 0 ? undefined : new RecordCryptoPool({ workersMax, log: options.log });
    const context = new ServiceContext(
      storage,
      new Catalog(storage),
      options.clock,
      options.random,
      options.streamerIdleMs,
      recordCrypto,
    );
    service = new Service(storage, context, options.backgroundTaskIntervalMs);
    context.resumeDeletions();
    context.metrics.start(options.metricsFlushIntervalMs);
    service.retention.start();
    return service;
  }

  /** The metrics API: recorder and queries (docs/design/metrics.md). */
  get metrics(): MetricsService {
    return this.context.metrics;
  }

  /** Worker threads of the record crypto pool started and alive (tests). */
  get recordCryptoWorkers(): number {
    return this.context.recordCrypto?.workerCount ?? 0;
  }

  /** Streams with a live streamer (metrics). */
  get activeStreams(): number {
    return this.context.activeStreams;
  }

  /**
   * Flushes pending appends, ends followers, and stops storage and the record crypto workers.
   * Stores are the caller's.
   */
  async close(): Promise<void> {
    await this.retention.stop();
    // Batches being encrypted are handed to storage as they finish, before it flushes and stops;
    // work that comes later runs on the loop.
    await this.context.recordCrypto?.close();
    // Submitted now (synchronously), flushed by the storage close with everything else.
    const metricsStopped = this.context.metrics.stop();
    await this.storage.close();
    await metricsStopped;
    this.context.endAllFollowers("closed");
  }
}
