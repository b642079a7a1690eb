// Goal: a SIGKILL at every step of compaction, checkpointing, GC and checkpoint loading, followed
// by a restart with the cache kept, deleted or corrupted, loses no acknowledged untrimmed record,
// brings back nothing trimmed or deleted, and leaves every object the newest checkpoint names.
// Method: bottomless-crash-child.ts runs appends, trims, deletions and maintenance jobs on a local
// directory (or S3 on moto) until a named failpoint kills it; copies of the bucket and cache are
// then mutated and reopened in-process, checked, compacted again and scanned byte by byte.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cp, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { createLocalFsObjectStore } from "../../src/storage/object-store/local-fs.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { createS3ObjectStore } from "../../src/storage/object-store/s3.js";
import { openCache } from "../../src/storage/open-stores.js";
import {
  checkCheckpointReferences,
  checkServes,
  Ledger,
  objectsContaining,
  openBottomlessService,
  type WorkloadEvent,
} from "../support/bottomless-workload.js";
import { createTestBucket, s3TestClientConfig, s3TestEndpoint } from "../support/moto.js";

const childScript = fileURLToPath(new URL("./bottomless-crash-child.ts", import.meta.url));
const childTimeoutMs = 30_000;

type ChildLine =
  | WorkloadEvent
  | { type: "open"; epoch: number; loadedCheckpoint: boolean; cacheResetReason: string | null }
  | { type: "job"; iteration: number; checkpoints: number; deleted: number; chunks: number }
  | { type: "done" }
  | { type: "error"; message: string };

/** Kept, deleted, LevelDB's CURRENT overwritten, or every cached segment and chunk file garbage. */
type CacheAction = "keep" | "delete" | "corrupt-leveldb" | "corrupt-files";
const cacheActions: readonly CacheAction[] = ["keep", "delete", "corrupt-leveldb", "corrupt-files"];

const liveChildren = new Set<ChildProcess>();
const tempDirs: string[] = [];
after(async () => {
  for (const child of liveChildren) child.kill("SIGKILL");
  await Promise.all(tempDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `tributary-bottomless-crash-${label}-`));
  tempDirs.push(dir);
  return dir;
}

/** Runs the child to its end (a failpoint's SIGKILL, or `done`); returns its lines and exit. */
async function runChild(
  storeArgs: readonly string[],
  options: { cacheDir: string; runId: string; round: number; failpoints: string },
): Promise<{
  lines: ChildLine[];
  signal: NodeJS.Signals | null;
  code: number | null;
  log: string;
}> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      childScript,
      ...storeArgs,
      "--cache-dir",
      options.cacheDir,
      "--run-id",
      options.runId,
      "--round",
      String(options.round),
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TRIBUTARY_FAILPOINTS: options.failpoints },
    },
  );
  liveChildren.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), childTimeoutMs);
  const { code, signal } = await new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  clearTimeout(timer);
  liveChildren.delete(child);
  // A line cut by the kill never reached the parent as a whole: dropped.
  const lines = stdout
    .split("\n")
    .slice(0, -1)
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as ChildLine);
  const log = `failpoints=${options.failpoints} exit=${code}/${signal} stderr=\`${stderr}\``;
  return { lines, signal, code, log };
}

async function mutateCache(cacheDir: string, action: CacheAction): Promise<string> {
  if (action === "keep") return "kept";
  if (action === "delete") {
    await rm(cacheDir, { recursive: true, force: true });
    return "deleted";
  }
  if (action === "corrupt-leveldb") {
    const current = path.join(cacheDir, "CURRENT");
    if (!(await stat(current).catch(() => undefined))) return "no CURRENT";
    await writeFile(current, "not a manifest name\u0000\u00ff");
    return "CURRENT overwritten";
  }
  let files = 0;
  for (const sub of ["segments", "chunks"]) {
    const dir = path.join(cacheDir, sub);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const file = path.join(dir, name);
      const { size } = await stat(file);
      await writeFile(file, Buffer.alloc(size, 0x5a));
      files += 1;
    }
  }
  return `${files} cache files overwritten with garbage`;
}

interface StoreKind {
  readonly label: string;
  readonly childArgs: readonly string[];
  open(): ObjectStore;
}

/** Opens the engine in-process as a restarted server would, with the same bottomless settings. */
async function openVerifier(store: ObjectStore, cacheDir: string) {
  const cache = await openCache(cacheDir);
  const service = await openBottomlessService({ store, cache, cacheBytesMax: 65536 });

  return {
    service,
    wiped: cache.wiped,
    async close() {
      await service.close();
      await cache.kv.close();
    },
  };
}

/**
 * The restart after a crash: references of the newest checkpoint checked as the crash left
 * them, then the engine reopened on the cache, checked against the ledger, a maintenance job run,
 * checked again, and the bucket scanned for bytes of trimmed or deleted records.
 */
async function checkRestart(
  t: TestContext,
  store: ObjectStore,
  cacheDir: string,
  ledger: Ledger,
  context: string,
): Promise<void> {
  const references = await checkCheckpointReferences(store);
  const node = await openVerifier(store, cacheDir);
  try {
    const stats = node.service.storage.stats;
    assert.deepEqual(await checkServes(node.service, ledger), [], `${context}: after restart`);
    await node.service.storage.runMaintenanceNow();
    assert.deepEqual(await checkServes(node.service, ledger), [], `${context}: after a job`);
    await checkCheckpointReferences(store);
    assert.deepEqual(
      await objectsContaining(store, ledger.goneNeedles()),
      [],
      `${context}: no byte of a trimmed or deleted record is left after a job`,
    );
    t.diagnostic(
      `${context}: ${references} references ok; restart ` +
        `${stats.loadedCheckpoint ? "loaded the checkpoint" : "resumed the cache"}` +
        (stats.cacheResetReason !== undefined ? ` (reset: ${stats.cacheResetReason})` : "") +
        (node.wiped ? " (LevelDB wiped)" : "") +
        `, replayed ${stats.replayedSegments}`,
    );
  } finally {
    await node.close();
  }
}

/** A failpoint and the hit (counted from the child's start) that kills the child. */
interface CrashCase {
  readonly point: string;
  readonly at: number;
}

const crashCases: readonly CrashCase[] = [
  { point: "compaction.after-chunk-upload", at: 9 },
  { point: "compaction.before-index-switch", at: 11 },
  { point: "checkpoint.before-upload", at: 3 },
  // Its part is uploaded, the checkpoint naming it is not (bottomless.md "Incremental checkpoints").
  { point: "checkpoint.after-part-upload", at: 3 },
  { point: "checkpoint.after-upload", at: 3 },
  { point: "checkpoint.after-commit", at: 3 },
  // GC deletes in batches, one per key kind: the second batch is inside the first pass.
  { point: "gc.after-delete", at: 2 },
  { point: "recovery.checkpoint-load", at: 1 },
];

/**
 * Runs the child until `crash` kills it (for the recovery point: a first child is killed after a
 * commit, the cache is deleted, and a second child dies loading the checkpoint), then checks a
 * restart for each cache action on its own copy of the bucket and the cache.
 */
async function runCrashCase(
  t: TestContext,
  kind: StoreKind,
  root: string,
  crash: CrashCase,
  actions: readonly CacheAction[],
  copyBucket: ((to: string) => Promise<ObjectStore>) | undefined,
): Promise<void> {
  const runId = `${kind.label}-${crash.point}`;
  const ledger = new Ledger(runId);
  const cacheDir = path.join(root, "cache");
  const absorb = (run: Awaited<ReturnType<typeof runChild>>, where: string): void => {
    const errors = run.lines.filter((line) => line.type === "error");
    assert.deepEqual(errors, [], `${where}: ${run.log}`);
    assert.equal(run.signal, "SIGKILL", `${where}: the failpoint killed the child: ${run.log}`);
    for (const line of run.lines) {
      if (line.type === "ack" || line.type === "trim" || line.type === "deleted") ledger.add(line);
    }
  };
  if (crash.point === "recovery.checkpoint-load") {
    const first = await runChild(kind.childArgs, {
      cacheDir,
      runId,
      round: 0,
      failpoints: "checkpoint.after-commit=kill@4",
    });
    absorb(first, `${runId} first child`);
    await rm(cacheDir, { recursive: true, force: true });
    const second = await runChild(kind.childArgs, {
      cacheDir,
      runId,
      round: 1,
      failpoints: `recovery.checkpoint-load=kill@${crash.at}`,
    });
    absorb(second, `${runId} second child`);
    assert.equal(
      second.lines.some((line) => line.type === "open"),
      false,
      `${runId}: the second child died in recovery`,
    );
  } else {
    const run = await runChild(kind.childArgs, {
      cacheDir,
      runId,
      round: 0,
      failpoints: `${crash.point}=kill@${crash.at}`,
    });
    absorb(run, runId);
    const jobs = run.lines.filter((line) => line.type === "job");
    t.diagnostic(`${runId}: killed after ${jobs.length} jobs, ${ledger.ackCount} acks`);
  }
  assert.ok(ledger.ackCount > 0, `${runId}: the child acknowledged appends`);
  for (const action of actions) {
    let store: ObjectStore;
    let copyCache: string;
    if (copyBucket !== undefined) {
      const copy = path.join(root, `restart-${action}`);
      copyCache = path.join(copy, "cache");
      await cp(cacheDir, copyCache, { recursive: true }).catch((error: unknown) => {
        if ((error as { code?: string }).code !== "ENOENT") throw error;
      });
      store = await copyBucket(path.join(copy, "bucket"));
    } else {
      copyCache = cacheDir;
      store = kind.open();
    }
    const note = await mutateCache(copyCache, action);
    try {
      await checkRestart(t, store, copyCache, ledger, `${runId} cache ${note}`);
    } finally {
      await store.close();
    }
  }
}

describe("bottomless crashes", { timeout: 120_000 }, () => {
  it("local-fs: SIGKILL at every compaction, checkpoint, GC and load step; every cache action", async (t) => {
    for (const crash of crashCases) {
      const root = await tempDir("local");
      const bucket = path.join(root, "bucket");
      const kind: StoreKind = {
        label: "local-fs",
        childArgs: ["--store", "local-fs", "--local-root", bucket],
        open: () => createLocalFsObjectStore({ root: bucket }),
      };
      await runCrashCase(t, kind, root, crash, cacheActions, async (to) => {
        await cp(bucket, to, { recursive: true });
        return createLocalFsObjectStore({ root: to });
      });
      await rm(root, { recursive: true, force: true });
    }
  });

  it("s3 (moto): SIGKILL after a chunk upload, after a checkpoint upload and mid-GC", async (t) => {
    const endpoint = await s3TestEndpoint();
    const config = s3TestClientConfig(endpoint);
    const cases: [CrashCase, CacheAction][] = [
      [{ point: "compaction.after-chunk-upload", at: 7 }, "delete"],
      [{ point: "checkpoint.after-upload", at: 2 }, "keep"],
      [{ point: "gc.after-delete", at: 3 }, "corrupt-files"],
    ];
    for (const [crash, action] of cases) {
      const bucket = await createTestBucket(endpoint);
      const root = await tempDir("s3");
      const kind: StoreKind = {
        label: "s3",
        childArgs: ["--store", "s3", "--endpoint", endpoint, "--bucket", bucket],
        open: () =>
          createS3ObjectStore({
            bucket,
            endpoint,
            region: config.region,
            forcePathStyle: config.forcePathStyle,
            credentials: config.credentials,
          }),
      };
      await runCrashCase(t, kind, root, crash, [action], undefined);
      await rm(root, { recursive: true, force: true });
    }
  });
});
