/**
 * The process that `bottomless-crash.test.ts` kills: it opens the engine with compaction,
 * checkpoints and GC (zero grace period) on a real object store (a local directory or S3) and a
 * LevelDB cache, then runs iterations of the shared workload (appends, trims, stream deletions),
 * each followed by one maintenance job, printing one JSON line per acknowledgement, trim,
 * deletion and job, until a failpoint (`TRIBUTARY_FAILPOINTS`, read by core/failpoints.ts)
 * SIGKILLs it. It exits 0 with a `done` line if no failpoint fired within `--iterations`.
 *
 * Usage: node --import tsx bottomless-crash-child.ts --store local-fs --local-root DIR | --store s3
 *   --endpoint URL --bucket B; --cache-dir DIR --run-id ID --round R
 */
import { parseArgs } from "node:util";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { openCache } from "../../src/storage/open-stores.js";
import { openChildStore } from "../support/child-store.js";
import {
  openBottomlessService,
  runIteration,
  type WorkloadEvent,
} from "../support/bottomless-workload.js";
import { ensureTestBasin } from "../support/engine.js";

const { values: args } = parseArgs({
  options: {
    store: { type: "string" },
    "local-root": { type: "string" },
    endpoint: { type: "string" },
    bucket: { type: "string" },
    "cache-dir": { type: "string" },
    "run-id": { type: "string" },
    round: { type: "string", default: "0" },
    iterations: { type: "string", default: "40" },
    "cache-bytes-max": { type: "string", default: "65536" },
    "lifetime-ms": { type: "string", default: "40000" },
  },
  strict: true,
});

type Line =
  | WorkloadEvent
  | { type: "open"; epoch: number; loadedCheckpoint: boolean; cacheResetReason: string | null }
  | { type: "job"; iteration: number; checkpoints: number; deleted: number; chunks: number }
  | { type: "done" }
  | { type: "error"; message: string };

function print(line: Line): void {
  // Synchronous on Linux pipes: a line is in the pipe before the next statement runs.
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function die(message: string, code: number): never {
  try {
    print({ type: "error", message });
  } catch {
    // The parent is gone.
  }
  process.stderr.write(`bottomless-crash-child: ${message}\n`);
  process.exit(code);
}

const describe = (error: unknown): string =>
  error instanceof Error ? (error.stack ?? error.message) : String(error);

process.on("uncaughtException", (error) => die(`uncaught: ${describe(error)}`, 70));
process.on("unhandledRejection", (error) => die(`unhandled rejection: ${describe(error)}`, 70));
process.stdout.on("error", () => process.exit(1));
setTimeout(() => die("lifetime exceeded", 3), Number(args["lifetime-ms"])).unref();

function required(name: keyof typeof args): string {
  const value = args[name];
  if (typeof value !== "string" || value === "") die(`--${name} is required`, 2);
  return value;
}

function openStore(): ObjectStore {
  return openChildStore(required, (message) => die(message, 2));
}

const runId = required("run-id");
const round = required("round");
const store = openStore();
const cache = await openCache(required("cache-dir"));
const service = await openBottomlessService({
  store,
  cache,
  cacheBytesMax: Number(args["cache-bytes-max"]),
  onFenced: (error) => die(`fenced: ${error.message}`, 75),
  onFatal: (error) => die(`fatal: ${describe(error)}`, 70),
});
const { stats } = service.storage;
print({
  type: "open",
  epoch: service.storage.writerEpoch,
  loadedCheckpoint: stats.loadedCheckpoint,
  cacheResetReason: stats.cacheResetReason ?? null,
});
await ensureTestBasin(service);

for (let index = 0; index < Number(args.iterations); index++) {
  await runIteration(service, runId, `${round}.${index}`, index, print);
  await service.storage.runMaintenanceNow();
  const maintenance = service.storage.stats.maintenance!;
  print({
    type: "job",
    iteration: index,
    checkpoints: maintenance.checkpointsCommitted,
    deleted: maintenance.gcObjectsDeleted,
    chunks: maintenance.chunksWritten,
  });
}
print({ type: "done" });
await service.close();
await cache.kv.close();
await store.close();
process.exit(0);
