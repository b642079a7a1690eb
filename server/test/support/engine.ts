/**
 * Helpers for tests that run the engine in-process: open a Service on given stores (or on a real
 * LevelDB cache in a directory), append and read text records, read a whole stream back, and
 * serve it on a loopback port.
 */
import { type ApiServer, type ApiServerOptions, startApiServer } from "../../src/api/server.js";
import { systemClock } from "../../src/core/clock.js";
import { systemRandom } from "../../src/core/random.js";
import type { AppendAck, SequencedRecord } from "../../src/core/records.js";
import { Service, type ServiceOptions } from "../../src/service/service.js";
import type { SegmentFiles } from "../../src/storage/cache/segment-files.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";
import type { KvStore } from "../../src/storage/kv/kv-store.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { openCache } from "../../src/storage/open-stores.js";
import type { BottomlessOptions } from "../../src/storage/storage.js";

export const testBasin = "test-basin";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Opens a Service with test defaults (1 ms flush, fast manifest polling). */
export function openTestService(
  options: { store: ObjectStore; kv?: KvStore } & Partial<Omit<ServiceOptions, "store" | "kv">>,
): Promise<Service> {
  return Service.open({
    clock: systemClock,
    random: systemRandom,
    flushIntervalMs: 1,
    manifestPollIntervalMs: 50,
    ...options,
    // A storage that opens its own cache directory takes no `kv`.
    kv: options.cacheDisk !== undefined ? undefined : (options.kv ?? createMemoryKvStore()),
  });
}

/** A Service on a real cache (LevelDB, segment and chunk files) in a directory. */
export interface CachedNode {
  readonly service: Service;
  readonly kv: KvStore;
  /** Closes the Service, then the cache (the directory stays: the caller's). */
  close(): Promise<void>;
}

/**
 * Opens a Service on `store` with its cache in `dir`, as `tributary serve --cache-dir` does; the
 * cache is closed again if the Service fails to open. `service` options go to `Service.open`
 * (system clock and randomness unless given); `wrapSegmentFiles` wraps the WAL's cache files (to
 * count or fail reads).
 */
export async function openCachedNode(options: {
  readonly store: ObjectStore;
  readonly dir: string;
  readonly bottomless?: BottomlessOptions;
  readonly service?: Partial<Omit<ServiceOptions, "store" | "kv" | "segmentFiles" | "bottomless">>;
  readonly wrapSegmentFiles?: (files: SegmentFiles) => SegmentFiles;
}): Promise<CachedNode> {
  const cache = await openCache(options.dir);
  let service: Service;
  try {
    service = await Service.open({
      clock: systemClock,
      random: systemRandom,
      ...options.service,
      store: options.store,
      kv: cache.kv,
      segmentFiles: options.wrapSegmentFiles?.(cache.segmentFiles) ?? cache.segmentFiles,
      bottomless: { ...options.bottomless, chunkFiles: cache.chunkFiles },
    });
  } catch (error) {
    await cache.kv.close();
    throw error;
  }
  return {
    service,
    kv: cache.kv,
    async close() {
      try {
        await service.close();
      } finally {
        // Also when the service's close throws: the test's next open of this directory needs
        // LevelDB's lock released.
        await cache.kv.close();
      }
    },
  };
}

/** Creates the test basin (with create-on-append) unless it exists. */
export async function ensureTestBasin(service: Service): Promise<void> {
  await service.basins.ensure({
    name: testBasin,
    config: {
      defaultStreamConfig: null,
      streamCipher: null,
      createStreamOnAppend: true,
      createStreamOnRead: false,
    },
  });
}

/** Appends one batch of text records to a stream of the test basin. */
export function appendText(
  service: Service,
  stream: string,
  texts: readonly string[],
): Promise<AppendAck> {
  return service.records.append(testBasin, stream, {
    records: texts.map((text) => ({ headers: [], body: encoder.encode(text) })),
  });
}

/** Every durable record of a stream, from seq num 0. */
export async function readAll(service: Service, stream: string): Promise<SequencedRecord[]> {
  const all: SequencedRecord[] = [];
  for (;;) {
    const batch = await service.records.read(testBasin, stream, {
      startSeqNum: all.length === 0 ? 0 : all.at(-1)!.seqNum + 1,
      countMax: 1000,
      bytesMax: 1 << 20,
    });
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

/** The bodies of records as text. */
export function textsOf(records: readonly SequencedRecord[]): string[] {
  return records.map((record) => decoder.decode(record.body));
}

/** The API server on a free loopback port, no CORS, over `service` (`options` over these). */
export function startLoopbackApi(
  service: Service,
  options: Omit<Partial<ApiServerOptions>, "service"> = {},
): Promise<ApiServer> {
  return startApiServer({ service, port: 0, host: "127.0.0.1", cors: false, ...options });
}
