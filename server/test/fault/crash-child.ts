/**
 * The process that `crash.test.ts` kills: it opens the engine on a real object store (a local
 * directory or S3) and a LevelDB cache, prints an image of every stream as recovered, then appends
 * pipelined batches of self-describing records to many streams until it is SIGKILLed, printing
 * one JSON line per ack (only once the ack resolved) and the durable tails it reads.
 *
 * Crash points: `TRIBUTARY_FAILPOINTS` (read by core/failpoints.ts) for the flusher's own points,
 * and `--crash-point put.before-apply|put.after-apply --crash-at N` for the Nth WAL PUT, through
 * the faulty store's hooks (before the write reaches the store / after it was applied but before
 * the PUT returns). `--crash-point recovery.get --crash-at N` kills it once recovery has downloaded
 * the Nth whole WAL segment (mid-replay). With `--mode verify` it prints the images and exits 0.
 *
 * Usage: node --import tsx crash-child.ts --store local-fs --local-root DIR | --store s3
 *   --endpoint URL --bucket B; --cache-dir DIR --streams N --run-id ID --round R --seed S
 */
import { parseArgs } from "node:util";
import { systemClock } from "../../src/core/clock.js";
import { createSeededRandom, systemRandom } from "../../src/core/random.js";
import { Service } from "../../src/service/service.js";
import { createFaultyObjectStore, type FaultHooks } from "../../src/storage/object-store/faulty.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { openCache } from "../../src/storage/open-stores.js";
import { openChildStore } from "../support/child-store.js";
import {
  type ChildLine,
  crashBasin,
  crashStreamName,
  hashRecords,
  imageOfStream,
  makeBatch,
  recordIdentity,
} from "../support/crash-records.js";

const { values: args } = parseArgs({
  options: {
    store: { type: "string" },
    "local-root": { type: "string" },
    endpoint: { type: "string" },
    bucket: { type: "string" },
    "cache-dir": { type: "string" },
    streams: { type: "string", default: "20" },
    "run-id": { type: "string" },
    round: { type: "string", default: "0" },
    seed: { type: "string", default: "1" },
    mode: { type: "string", default: "run" },
    "crash-point": { type: "string" },
    "crash-at": { type: "string" },
    "flush-interval-ms": { type: "string", default: "3" },
    inflight: { type: "string", default: "2" },
    "batch-size-max": { type: "string", default: "10" },
    "pace-ms": { type: "string", default: "0" },
    "lifetime-ms": { type: "string", default: "60000" },
  },
  strict: true,
});

function print(line: ChildLine): void {
  // Synchronous on Linux pipes: a line is in the pipe before the next statement runs.
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function die(message: string, code: number): never {
  try {
    print({ type: "error", message });
  } catch {
    // The parent is gone.
  }
  process.stderr.write(`crash-child: ${message}\n`);
  process.exit(code);
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

process.on("uncaughtException", (error) => die(`uncaught: ${describe(error)}`, 70));
process.on("unhandledRejection", (error) => die(`unhandled rejection: ${describe(error)}`, 70));
// A parent that died closes the pipe: stop rather than append forever.
process.stdout.on("error", () => process.exit(1));

function required(name: keyof typeof args): string {
  const value = args[name];
  if (typeof value !== "string" || value === "") die(`--${name} is required`, 2);
  return value;
}

const runId = required("run-id");
const round = Number(args.round);
const streamCount = Number(args.streams);
const inflightPerStream = Number(args.inflight);
const batchSizeMax = Number(args["batch-size-max"]);
const paceMs = Number(args["pace-ms"]);
const mode = args.mode;
if (mode !== "run" && mode !== "verify") die(`bad --mode ${mode}`, 2);

setTimeout(
  () => die("lifetime exceeded (the parent never killed this child)", 3),
  Number(args["lifetime-ms"]),
).unref();

function openStore(): ObjectStore {
  return openChildStore(required, (message) => die(message, 2));
}

/** Kills this process once the Nth whole WAL segment was downloaded (recovery's replay). */
function withReplayCrash(inner: ObjectStore): ObjectStore {
  if (args["crash-point"] !== "recovery.get") return inner;
  let remaining = Number(required("crash-at"));
  return {
    async get(key, range) {
      const bytes = await inner.get(key, range);
      if (key.startsWith("wal/") && range === undefined && --remaining === 0) {
        process.kill(process.pid, "SIGKILL");
      }
      return bytes;
    },
    putIfAbsent: (key, bytes) => inner.putIfAbsent(key, bytes),
    list: (prefix, options) => inner.list(prefix, options),
    delete: (keys) => inner.delete(keys),
    close: () => inner.close(),
  };
}

/** Kills this process on the Nth WAL PUT, before it reaches the store or after it applied. */
function crashHooks(): FaultHooks {
  const point = args["crash-point"];
  if (point === undefined || point === "recovery.get") return {};
  let remaining = Number(required("crash-at"));
  const hit = (key: string): void => {
    if (!key.startsWith("wal/")) return;
    remaining -= 1;
    if (remaining === 0) process.kill(process.pid, "SIGKILL");
  };
  if (point === "put.before-apply") return { beforePut: hit };
  if (point === "put.after-apply") return { afterPutApplied: hit };
  return die(`bad --crash-point ${point}`, 2);
}

const streams = Array.from({ length: streamCount }, (_, i) => crashStreamName(i));

print({ type: "opening" });
const store = createFaultyObjectStore(withReplayCrash(openStore()), {
  random: systemRandom,
  clock: systemClock,
  hooks: crashHooks(),
});
const cache = await openCache(required("cache-dir"));
print({ type: "cache", wiped: cache.wiped });
const service = await Service.open({
  store,
  kv: cache.kv,
  segmentFiles: cache.segmentFiles,
  clock: systemClock,
  random: systemRandom,
  flushIntervalMs: Number(args["flush-interval-ms"]),
  onFenced: (error) => die(`fenced: ${error.message}`, 75),
  onFatal: (error) => die(`fatal: ${describe(error)}`, 70),
});
const stats = service.storage.stats;
print({
  type: "open",
  epoch: service.storage.writerEpoch,
  replayedSegments: stats.replayedSegments,
  cacheResetReason: stats.cacheResetReason ?? null,
});

for (const stream of streams) {
  print({ type: "image", ...(await imageOfStream(service, runId, stream)) });
}

if (mode === "verify") {
  await service.close();
  await cache.kv.close();
  await store.close();
  print({ type: "ready" });
  process.exit(0);
}

await service.basins.ensure({
  name: crashBasin,
  config: {
    defaultStreamConfig: null,
    streamCipher: null,
    createStreamOnAppend: true,
    createStreamOnRead: false,
  },
});
print({ type: "ready" });

const random = createSeededRandom(Number(args.seed) * 1_000 + round);
const nextBatch = streams.map(() => 0);

async function appendForever(streamIndex: number): Promise<never> {
  const stream = streams[streamIndex]!;
  for (;;) {
    const batchId = `${round}.${streamIndex}.${nextBatch[streamIndex]!++}`;
    const size = 1 + Math.floor(random.float() * batchSizeMax);
    const records = makeBatch(runId, batchId, size);
    const hash = hashRecords(records);
    const ack = await service.records.append(crashBasin, stream, { records });
    print({ type: "ack", stream, batchId, start: ack.start.seqNum, end: ack.end.seqNum, hash });
    if (paceMs > 0) await systemClock.sleep(random.float() * 2 * paceMs);
  }
}

async function printTailsForever(): Promise<never> {
  for (;;) {
    await systemClock.sleep(25);
    for (const stream of streams) {
      try {
        const { seqNum } = await service.records.checkTail(crashBasin, stream);
        let last: { batchId: string; index: number } | null = null;
        if (seqNum > 0) {
          const [record] = await service.records.read(crashBasin, stream, {
            startSeqNum: seqNum - 1,
            countMax: 1,
            bytesMax: 1 << 20,
          });
          if (record?.seqNum !== seqNum - 1) die(`no record below the tail ${seqNum}`, 1);
          last = recordIdentity(record) ?? null;
          if (last === null) die(`a foreign record below the tail ${seqNum}`, 1);
        }
        print({ type: "tail", stream, seqNum, last });
      } catch (error) {
        // Streams are created by their first append.
        if ((error as { code?: unknown }).code !== "stream_not_found") throw error;
      }
    }
  }
}

const loops: Promise<never>[] = [printTailsForever()];
for (let i = 0; i < streams.length; i++) {
  for (let k = 0; k < inflightPerStream; k++) loops.push(appendForever(i));
}
try {
  await Promise.race(loops);
} catch (error) {
  die(`append loop failed: ${describe(error)}`, 1);
}
