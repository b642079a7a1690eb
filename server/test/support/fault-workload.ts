/**
 * Shared by the fault, fencing and recovery tests: bounded waits, a log of appends of
 * self-identifying records (what was submitted, what was acked, what failed), producers that keep
 * appending to several streams concurrently, a store wrapper that witnesses what is really in the
 * bucket, and the check of a bucket's records against the log.
 *
 * Every record carries one header `wid` = `<tag>/<stream>/<batch>/<index>`, so whoever reads a
 * record back can tell which submitted batch it came from; bodies are seeded random bytes of
 * varied length and are kept in the log to be compared byte for byte.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { Random } from "../../src/core/random.js";
import type { AppendAck, AppendRecord, SequencedRecord } from "../../src/core/records.js";
import type { Service } from "../../src/service/service.js";
import { streamMapKey } from "../../src/storage/durable-state.js";
import {
  bodyAsBuffer,
  listAll,
  type ObjectStore,
} from "../../src/storage/object-store/object-store.js";
import { parseObjectId, walPrefix } from "../../src/storage/object-keys.js";
import { decodeSegment } from "../../src/storage/segment/format.js";
import { readAll, testBasin } from "./engine.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const widHeader = encoder.encode("wid");

/** Rejects with a message naming `what` unless `promise` settles within `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every few ms until it holds; fails after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(5);
  }
}

/** One submitted append and how it ended. */
export interface SubmittedBatch {
  readonly stream: string;
  /** Position in the stream's submission order. */
  readonly index: number;
  readonly records: readonly AppendRecord[];
  /** Set when the append resolved. */
  ack: AppendAck | undefined;
  /** Set when the append rejected. */
  error: unknown;
  /** Resolves (never rejects) when the append settled. */
  readonly settled: Promise<void>;
}

/** The identity header value of a record read back, or undefined if it has none. */
export function widOf(record: {
  readonly headers: readonly { name: Uint8Array; value: Uint8Array }[];
}): string | undefined {
  const header = record.headers.find((h) => Buffer.from(h.name).equals(widHeader));
  return header === undefined ? undefined : decoder.decode(header.value);
}

/** Every append a test submitted, by stream, in submission order. */
export class AppendLog {
  readonly batches = new Map<string, SubmittedBatch[]>();
  private readonly byWid = new Map<string, { batch: SubmittedBatch; index: number }>();

  constructor(
    /** Distinguishes this log's records from any other writer's. */
    readonly tag: string,
    private readonly random: Random,
  ) {}

  /** Records of `count` (identity header, random body of 0–`bodyBytesMax` bytes). */
  makeRecords(stream: string, batchIndex: number, count: number, bodyBytesMax = 600) {
    return Array.from({ length: count }, (_, i): AppendRecord => {
      const wid = `${this.tag}/${stream}/${batchIndex}/${i}`;
      const length = Math.floor(this.random.float() * (bodyBytesMax + 1));
      const body = this.random.bytes(length);
      return { headers: [{ name: widHeader, value: encoder.encode(wid) }], body };
    });
  }

  /**
   * Submits one batch of `count` records through `append` (by default `service.records.append`)
   * and tracks how it ends; `onAck` runs synchronously when the ack arrives.
   */
  submit(
    service: Service,
    stream: string,
    count: number,
    options: {
      bodyBytesMax?: number;
      onAck?: (batch: SubmittedBatch, ack: AppendAck) => void;
    } = {},
  ): SubmittedBatch {
    const list = this.batches.get(stream) ?? [];
    this.batches.set(stream, list);
    const index = list.length;
    const records = this.makeRecords(stream, index, count, options.bodyBytesMax);
    const promise = service.records.append(testBasin, stream, { records });
    const batch: SubmittedBatch = {
      stream,
      index,
      records,
      ack: undefined,
      error: undefined,
      settled: promise.then(
        (ack) => {
          batch.ack = ack;
          options.onAck?.(batch, ack);
        },
        (error: unknown) => {
          batch.error = error;
        },
      ),
    };
    list.push(batch);
    records.forEach((_, i) => {
      this.byWid.set(`${this.tag}/${stream}/${index}/${i}`, { batch, index: i });
    });
    return batch;
  }

  /** Every batch of every stream. */
  all(): SubmittedBatch[] {
    return [...this.batches.values()].flat();
  }

  /** Waits (bounded) until every submitted append settled. */
  async settle(timeoutMs: number, what: string): Promise<void> {
    await within(
      Promise.all(this.all().map((batch) => batch.settled)),
      timeoutMs,
      `appends settle: ${what}`,
    );
  }

  /** Which submitted record a read-back record is, if it is one of this log's. */
  lookup(wid: string): { batch: SubmittedBatch; index: number } | undefined {
    return this.byWid.get(wid);
  }
}

/**
 * Keeps appending to every stream until `durationMs` passed (see `minBatches`): `inflightPerStream` producers per
 * stream, each submitting a batch of 1–`batchRecordsMax` records and awaiting it before the next.
 * Stops a producer at its first rejected append. Returns when the producers stopped issuing (the
 * last appends may still be in flight: call `log.settle`).
 */
export async function runProducers(options: {
  readonly service: Service;
  readonly log: AppendLog;
  readonly streams: readonly string[];
  readonly durationMs: number;
  readonly inflightPerStream: number;
  readonly random: Random;
  readonly batchRecordsMax?: number;
  readonly bodyBytesMax?: number;
  readonly onAck?: (batch: SubmittedBatch, ack: AppendAck) => void;
  /** Stops early when it returns true. */
  readonly shouldStop?: () => boolean;
  /**
   * Goes on past `durationMs` until the log holds this many batches (a slow machine or a slow
   * fault still gets a real workload), but never past `durationMs` × 10.
   */
  readonly minBatches?: number;
}): Promise<void> {
  const { service, log, streams, random } = options;
  const startMs = Date.now();
  const isDone = (): boolean => {
    const elapsedMs = Date.now() - startMs;
    if (elapsedMs >= 10 * options.durationMs) return true;
    return elapsedMs >= options.durationMs && log.all().length >= (options.minBatches ?? 0);
  };
  const batchRecordsMax = options.batchRecordsMax ?? 5;
  const producer = async (stream: string): Promise<void> => {
    while (!isDone() && options.shouldStop?.() !== true) {
      const count = 1 + Math.floor(random.float() * batchRecordsMax);
      const batch = log.submit(service, stream, count, {
        ...(options.bodyBytesMax !== undefined && { bodyBytesMax: options.bodyBytesMax }),
        ...(options.onAck !== undefined && { onAck: options.onAck }),
      });
      await batch.settled;
      if (batch.error !== undefined) return;
    }
  };
  const producers: Promise<void>[] = [];
  for (const stream of streams) {
    for (let i = 0; i < options.inflightPerStream; i++) producers.push(producer(stream));
  }
  // Producers end once done unless an append hangs; the caller's settle bounds that.
  const stopWaiting = new AbortController();
  await Promise.race([
    Promise.all(producers),
    sleep(10 * options.durationMs + 100, undefined, { signal: stopWaiting.signal }).catch(() => {}),
  ]);
  stopWaiting.abort();
}

/** The stream id of a stream of the test basin (durable view). */
export function streamIdOf(service: Service, stream: string): number {
  const record = service.storage.state.streams.get(streamMapKey(testBasin, stream));
  assert.ok(record !== undefined, `stream ${stream} exists`);
  return record.streamId;
}

/**
 * An object store that passes everything to `inner` and, whenever a WAL segment is created in
 * it, notes the end of each stream's records in that segment: the truth of what is durable at
 * that instant, to check acks against as they arrive.
 */
export interface WitnessStore extends ObjectStore {
  /** One past the highest seq num of `streamId` in any segment created so far (0 if none). */
  durableEnd(streamId: number): number;
  /** Number of WAL segments created so far. */
  readonly segmentsCreated: number;
}

export function createWitnessStore(inner: ObjectStore): WitnessStore {
  const ends = new Map<number, number>();
  let segmentsCreated = 0;
  return {
    get: (key, range) => inner.get(key, range),
    list: (prefix, listOptions) => inner.list(prefix, listOptions),
    delete: (keys) => inner.delete(keys),
    close: () => inner.close(),
    async putIfAbsent(key, bytes) {
      // Decode before the write: the caller may reuse its buffer once the put settled.
      const segment = key.startsWith(walPrefix) ? decodeSegment(bodyAsBuffer(bytes)) : undefined;
      const outcome = await inner.putIfAbsent(key, bytes);
      if (outcome === "created" && segment !== undefined) {
        segmentsCreated += 1;
        for (const entry of segment.entries) {
          if (entry.kind !== "records") continue;
          const end = entry.firstSeqNum + entry.records.length;
          ends.set(entry.streamId, Math.max(ends.get(entry.streamId) ?? 0, end));
        }
      }
      return outcome;
    },
    durableEnd: (streamId) => ends.get(streamId) ?? 0,
    get segmentsCreated() {
      return segmentsCreated;
    },
  };
}

/** The ids of the WAL segments in `store`, in order. */
export async function walIdsOf(store: ObjectStore): Promise<number[]> {
  const objects = await listAll(store, walPrefix);
  return objects.map((object) => {
    const id = parseObjectId(walPrefix, object.key);
    assert.ok(id !== undefined, `a wal key has an id: ${object.key}`);
    return id;
  });
}

/** Asserts that the WAL holds ids 0, 1, …, n − 1; returns n. */
export async function assertWalDense(store: ObjectStore, context: string): Promise<number> {
  const ids = await walIdsOf(store);
  assert.deepEqual(
    ids,
    ids.map((_, i) => i),
    `wal ids are dense from 0 (${context})`,
  );
  return ids.length;
}

function sameRecord(read: SequencedRecord, submitted: AppendRecord): boolean {
  if (!Buffer.from(read.body).equals(Buffer.from(submitted.body))) return false;
  if (read.headers.length !== submitted.headers.length) return false;
  return read.headers.every(
    (header, i) =>
      Buffer.from(header.name).equals(Buffer.from(submitted.headers[i]!.name)) &&
      Buffer.from(header.value).equals(Buffer.from(submitted.headers[i]!.value)),
  );
}

/**
 * Checks what `service` serves against the logs of every writer that appended to its streams:
 * - seq nums are dense from 0 and the tail is one past the last record;
 * - every record is a submitted one (of some log), each at most once, in each batch's order;
 * - every acked batch is there whole, at exactly its acked seq nums, with identical bytes, and its
 *   ack was consistent (`end − start` = its size, `tail ≥ end`);
 * - with `allAcked`, every submitted batch was acked, in submission order (each log's acks of a
 *   stream are contiguous).
 * Returns the records read, by stream.
 */
export async function assertServesLogs(options: {
  readonly service: Service;
  readonly logs: readonly AppendLog[];
  readonly streams: readonly string[];
  readonly context: string;
  readonly allAcked?: boolean;
}): Promise<Map<string, SequencedRecord[]>> {
  const { service, logs, context } = options;
  const out = new Map<string, SequencedRecord[]>();
  for (const stream of options.streams) {
    const records = await readAll(service, stream);
    out.set(stream, records);
    const tail = await service.records.checkTail(testBasin, stream);
    assert.equal(tail.seqNum, records.length, `${context}: tail of ${stream} follows its records`);
    const seen = new Set<string>();
    for (let seqNum = 0; seqNum < records.length; seqNum++) {
      const record = records[seqNum]!;
      assert.equal(record.seqNum, seqNum, `${context}: seq nums of ${stream} are dense`);
      const wid = widOf(record);
      assert.ok(wid !== undefined, `${context}: ${stream}@${seqNum} is a submitted record`);
      assert.ok(!seen.has(wid), `${context}: ${stream}@${seqNum} (${wid}) appears once`);
      seen.add(wid);
      const found = logs.map((log) => log.lookup(wid)).find((hit) => hit !== undefined);
      assert.ok(found !== undefined, `${context}: ${stream}@${seqNum} (${wid}) was submitted`);
      assert.equal(found.batch.stream, stream, `${context}: ${wid} is in its own stream`);
      assert.ok(
        sameRecord(record, found.batch.records[found.index]!),
        `${context}: ${stream}@${seqNum} (${wid}) has the submitted bytes`,
      );
      // A batch is atomic: its records are consecutive, starting with its first.
      if (found.index > 0) {
        const previous = records[seqNum - 1];
        assert.equal(
          previous === undefined ? undefined : widOf(previous),
          wid.replace(/\/\d+$/, `/${found.index - 1}`),
          `${context}: ${wid} follows the previous record of its batch`,
        );
      }
      if (found.index === found.batch.records.length - 1) continue;
      assert.ok(
        seqNum + 1 < records.length,
        `${context}: batch of ${wid} is whole (${found.batch.records.length} records)`,
      );
    }
    for (const log of logs) {
      const batches = log.batches.get(stream) ?? [];
      // With `allAcked`, a log's acks of a stream are contiguous from its first one.
      let expectedStart: number | undefined =
        options.allAcked === true ? batches[0]?.ack?.start.seqNum : undefined;
      for (const batch of batches) {
        const what = `${context}: ${log.tag} ${stream} batch ${batch.index}`;
        if (options.allAcked === true) {
          assert.equal(batch.error, undefined, `${what} was not rejected`);
          assert.ok(batch.ack !== undefined, `${what} was acked`);
        }
        const ack = batch.ack;
        if (ack === undefined) continue;
        if (expectedStart !== undefined) {
          assert.equal(ack.start.seqNum, expectedStart, `${what}: acks follow submission order`);
          expectedStart += batch.records.length;
        }
        assert.equal(ack.end.seqNum - ack.start.seqNum, batch.records.length, `${what}: ack size`);
        assert.ok(ack.tail.seqNum >= ack.end.seqNum, `${what}: ack tail ≥ end`);
        for (let i = 0; i < batch.records.length; i++) {
          const read = records[ack.start.seqNum + i];
          assert.ok(read !== undefined, `${what}: acked record ${i} is present`);
          assert.ok(
            sameRecord(read, batch.records[i]!),
            `${what}: acked record ${i} is at seq num ${ack.start.seqNum + i} with its bytes`,
          );
        }
      }
    }
  }
  return out;
}
