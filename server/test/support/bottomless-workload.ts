/**
 * Shared by the bottomless crash and fault tests (`test/fault/bottomless-*.test.ts`): a workload
 * of appends, trims and stream deletions whose record bodies follow from their ids alone, what the
 * tests learn from acknowledgements (`Ledger`), and the checks run after every restart: acked
 * untrimmed records read back byte for byte at their seq nums, trimmed and deleted records never
 * come back (neither in reads nor, once collected, in any object's bytes), and every object the
 * newest manifest's checkpoint references exists.
 */
import assert from "node:assert/strict";
import { commandHeader, encodeTrimBody } from "../../src/core/records.js";
import { systemClock } from "../../src/core/clock.js";
import { systemRandom } from "../../src/core/random.js";
import { Service, type ServiceOptions } from "../../src/service/service.js";
import type { openCache } from "../../src/storage/open-stores.js";
import { readCheckpoint, referencesOf } from "../../src/storage/checkpoint.js";
import { readNewestManifest } from "../../src/storage/manifest/manifest.js";
import { chunkKey, walKey } from "../../src/storage/object-keys.js";
import { listAll, type ObjectStore } from "../../src/storage/object-store/object-store.js";
import { appendText, readAll, testBasin } from "./engine.js";

/** Streams appended to in every iteration and never trimmed. */
export const keptStreams = ["keep-0", "keep-1", "keep-2"] as const;
/** The stream that is trimmed at a batch boundary every other iteration. */
export const trimmedStream = "trimmed";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The marker every body of `stream` starts with (`«` never occurs in names or ids). */
export function bodyPrefix(runId: string, stream: string, batchId?: string): string {
  return `«${runId}|${stream}|${batchId === undefined ? "" : `${batchId}|`}`;
}

/** The body of record `index` of batch `batchId` of `stream`; its length varies with the ids. */
export function bodyOf(runId: string, stream: string, batchId: string, index: number): string {
  const pad = 24 + ((batchId.length * 131 + index * 37) % 400);
  return `${bodyPrefix(runId, stream, batchId)}${index}»${"x".repeat(pad)}`;
}

export function batchBodies(runId: string, stream: string, batchId: string, count: number) {
  return Array.from({ length: count }, (_, i) => bodyOf(runId, stream, batchId, i));
}

/** What one acknowledgement, trim or deletion told the writer. */
export type WorkloadEvent =
  | {
      readonly type: "ack";
      readonly stream: string;
      readonly batchId: string;
      readonly start: number;
      readonly end: number;
    }
  | { readonly type: "trim"; readonly stream: string; readonly point: number }
  | { readonly type: "deleted"; readonly stream: string };

/** Everything acknowledged so far, which every later restart must honour. */
export class Ledger {
  readonly acks = new Map<string, Extract<WorkloadEvent, { type: "ack" }>[]>();
  /** The highest acknowledged trim point per stream. */
  readonly trims = new Map<string, number>();
  readonly deleted = new Set<string>();
  ackCount = 0;

  constructor(readonly runId: string) {}

  add(event: WorkloadEvent): void {
    if (event.type === "ack") {
      const list = this.acks.get(event.stream) ?? [];
      list.push(event);
      this.acks.set(event.stream, list);
      this.ackCount += 1;
    } else if (event.type === "trim") {
      this.trims.set(event.stream, Math.max(event.point, this.trims.get(event.stream) ?? 0));
    } else {
      this.deleted.add(event.stream);
    }
  }

  /** Body prefixes of records that must be gone: deleted streams, batches wholly trimmed. */
  goneNeedles(): string[] {
    const needles = [...this.deleted].map((stream) => bodyPrefix(this.runId, stream));
    for (const [stream, point] of this.trims) {
      for (const ack of this.acks.get(stream) ?? []) {
        if (ack.end <= point) needles.push(bodyPrefix(this.runId, stream, ack.batchId));
      }
    }
    return needles;
  }
}

/**
 * One iteration of the workload: a batch per kept stream, a batch on the trimmed stream (trimmed
 * at that batch's start every other iteration), and every third iteration a stream created,
 * appended to and deleted. Reports each acknowledgement as soon as it resolves.
 */
export async function runIteration(
  service: Service,
  runId: string,
  iteration: string,
  index: number,
  report: (event: WorkloadEvent) => void,
): Promise<void> {
  const append = async (stream: string, batchId: string, count: number) => {
    const ack = await appendText(service, stream, batchBodies(runId, stream, batchId, count));
    const event = {
      type: "ack",
      stream,
      batchId,
      start: ack.start.seqNum,
      end: ack.end.seqNum,
    } as const;
    report(event);
    return event;
  };
  const work: Promise<unknown>[] = keptStreams.map((stream, i) =>
    append(stream, `${iteration}.${i}`, 1 + ((index * 7 + i * 3) % 9)),
  );
  work.push(
    (async () => {
      const ack = await append(trimmedStream, iteration, 2 + (index % 5));
      if (index % 2 === 1) {
        await service.records.append(testBasin, trimmedStream, {
          records: [{ headers: [commandHeader("trim")], body: encodeTrimBody(BigInt(ack.start)) }],
        });
        report({ type: "trim", stream: trimmedStream, point: ack.start });
      }
    })(),
  );
  if (index % 3 === 2) {
    work.push(
      (async () => {
        const stream = `gone-${iteration}`;
        await append(stream, `${iteration}.a`, 4);
        await append(stream, `${iteration}.b`, 3);
        await service.streams.delete(testBasin, stream);
        await waitRemoved(service, stream);
        report({ type: "deleted", stream });
      })(),
    );
  }
  await Promise.all(work);
}

/** Waits until a deleted stream's removal has run (it runs in the background). */
export async function waitRemoved(service: Service, stream: string): Promise<void> {
  const key = `${testBasin}\u0000${stream}`;
  for (let i = 0; i < 1000 && service.storage.state.streams.has(key); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(service.storage.state.streams.has(key), false, `stream ${stream} is removed`);
}

/**
 * Checks what `service` serves against the ledger: every acked record at or past its stream's
 * trim point reads back with its exact body at its seq num, seq nums are dense, nothing below
 * an acked trim point is served, and deleted streams are gone. Returns problems (empty if none).
 */
export async function checkServes(service: Service, ledger: Ledger): Promise<string[]> {
  const problems: string[] = [];
  for (const [stream, acks] of ledger.acks) {
    if (ledger.deleted.has(stream)) continue;
    const records = await readAll(service, stream);
    const first = records[0]?.seqNum ?? 0;
    for (let i = 1; i < records.length; i++) {
      if (records[i]!.seqNum !== first + i) {
        problems.push(`${stream}: seq nums not dense at ${records[i]!.seqNum}`);
        break;
      }
    }
    const ackedTrim = ledger.trims.get(stream) ?? 0;
    if (records.length > 0 && first < ackedTrim) {
      problems.push(`${stream}: seq ${first} served below the acked trim point ${ackedTrim}`);
    }
    for (const ack of acks) {
      for (let seqNum = Math.max(ack.start, first); seqNum < ack.end; seqNum++) {
        const record = records[seqNum - first];
        const expected = bodyOf(ledger.runId, stream, ack.batchId, seqNum - ack.start);
        const found = record === undefined ? undefined : decoder.decode(record.body);
        if (record === undefined || record.seqNum !== seqNum || found !== expected) {
          problems.push(
            `${stream}: acked seq ${seqNum} (batch ${ack.batchId}) reads ` +
              (found === undefined ? "nothing" : `\`${found.slice(0, 60)}\``),
          );
          break;
        }
      }
      if (problems.length > 20) return problems;
    }
  }
  for (const stream of ledger.deleted) {
    if (service.storage.state.streams.has(`${testBasin}\u0000${stream}`)) {
      problems.push(`deleted stream ${stream} exists again`);
    }
  }
  return problems;
}

/**
 * Every object the newest manifest's checkpoint references (its index's WAL segments and chunks,
 * and the fence segments) exists. Returns the number of references checked.
 */
export async function checkCheckpointReferences(store: ObjectStore): Promise<number> {
  const manifest = await readNewestManifest(store);
  if (manifest?.checkpoint === undefined) return 0;
  const checkpoint = await readCheckpoint(manifest.checkpoint.key, (key) => store.get(key));
  assert.equal(checkpoint.header.walId, manifest.checkpoint.walId);
  const references = await referencesOf(checkpoint.rows);
  const keys = new Set((await listAll(store, "")).map((object) => object.key));
  const wanted = [
    ...[...references.walIds, ...references.fenceWalIds].map(walKey),
    ...[...references.chunkIds].map(chunkKey),
    ...(checkpoint.header.parts ?? []).map((part) => part.key),
  ];
  const missing = wanted.filter((key) => !keys.has(key));
  assert.deepEqual(missing, [], `objects the checkpoint ${manifest.checkpoint.key} references`);
  return wanted.length + 1;
}

/** Keys of objects whose bytes contain one of `needles`, with the needle found. */
export async function objectsContaining(
  store: ObjectStore,
  needles: readonly string[],
): Promise<string[]> {
  const encoded = needles.map((needle) => Buffer.from(encoder.encode(needle)));
  const found: string[] = [];
  for (const { key } of await listAll(store, "")) {
    const bytes = await store.get(key);
    if (bytes === undefined) continue;
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const hit = encoded.findIndex((needle) => buffer.includes(needle));
    if (hit >= 0) found.push(`${key} holds ${needles[hit]}`);
  }
  return found;
}

/**
 * Opens the engine as the crash child and its verifier do: 2 ms flushes, a zero grace period,
 * jobs only when asked (`runMaintenanceNow`), on the LevelDB cache `cache`.
 */
export function openBottomlessService(options: {
  readonly store: ObjectStore;
  readonly cache: Awaited<ReturnType<typeof openCache>>;
  readonly cacheBytesMax: number;
  readonly onFenced?: ServiceOptions["onFenced"];
  readonly onFatal?: ServiceOptions["onFatal"];
}): Promise<Service> {
  const { store, cache } = options;
  return Service.open({
    store,
    kv: cache.kv,
    segmentFiles: cache.segmentFiles,
    clock: systemClock,
    random: systemRandom,
    flushIntervalMs: 2,
    manifestPollIntervalMs: 50,
    bottomless: {
      chunkFiles: cache.chunkFiles,
      cacheBytesMax: options.cacheBytesMax,
      gcGraceMs: 0,
      // Jobs run when asked (`runMaintenanceNow`), not on a timer.
      checkpointIntervalMs: 3_600_000,
    },
    onFenced: options.onFenced,
    onFatal: options.onFatal,
  });
}
