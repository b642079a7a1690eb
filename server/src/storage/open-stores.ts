/**
 * Opens the object store and the LevelDB cache that a server process runs on, from its flags:
 * `--bucket`/`--path` (S3 or compatible; endpoint from `AWS_ENDPOINT_URL_S3`), `--local-root`
 * (a directory), or neither (memory: nothing survives a restart); `--cache-dir` (a fresh temp
 * directory by default). A corrupt cache is wiped: recovery rebuilds it from object storage. A
 * cache directory on a failing disk is the storage's to handle (`createCacheDisk`: it opens,
 * probes and wipes the directory; docs/design/degraded-cache.md).
 *
 * Test hook: `TRIBUTARY_STORE_FAULTS` (JSON `FaultSettings` of `object-store/faulty.ts` plus a
 * `seed`) wraps the store in the faulty store, so that tests of the real server process (the
 * history checker) run under store errors, lost answers, late writes and latency, as
 * `TRIBUTARY_FAILPOINTS` lets them kill it at named points. Never set in production.
 */
import { mkdir, mkdtemp, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  cacheDiskFreeBytesMin,
  cacheDiskFreeShareMin,
  cacheDiskProbeBytes,
} from "../core/limits.js";
import { type CacheDisk, wipeDirectory } from "./cache/cache-guard.js";
import { openFsSegmentFiles, type SegmentFiles } from "./cache/segment-files.js";
import { destroyLevelKvStore, KvCorruptError, openLevelKvStore } from "./kv/level.js";
import type { KvStore } from "./kv/kv-store.js";
import { systemClock } from "../core/clock.js";
import { createSeededRandom } from "../core/random.js";
import { createFaultyObjectStore, type FaultSettings } from "./object-store/faulty.js";
import { createLocalFsObjectStore } from "./object-store/local-fs.js";
import { createMemoryObjectStore } from "./object-store/memory.js";
import type { ObjectStore } from "./object-store/object-store.js";
import { createS3ObjectStore } from "./object-store/s3.js";

export interface ObjectStoreChoice {
  readonly bucket?: string | undefined;
  readonly path?: string | undefined;
  readonly localRoot?: string | undefined;
}

/** Which mode the flags select, for logs. */
export function describeObjectStore(choice: ObjectStoreChoice): string {
  if (choice.bucket !== undefined) return `s3://${choice.bucket}/${choice.path ?? ""}`;
  if (choice.localRoot !== undefined) return `local directory ${choice.localRoot}`;
  return "memory (nothing survives a restart)";
}

/** The object store the flags select (under `TRIBUTARY_STORE_FAULTS` when it is set). */
export function openObjectStore(
  choice: ObjectStoreChoice,
  env: NodeJS.ProcessEnv = process.env,
): ObjectStore {
  const store = openChosenStore(choice, env);
  const faults = env["TRIBUTARY_STORE_FAULTS"];
  if (faults === undefined || faults === "") return store;
  const { seed, ...settings } = JSON.parse(faults) as FaultSettings & { seed?: number };
  return createFaultyObjectStore(store, {
    random: createSeededRandom(seed ?? 1),
    clock: systemClock,
    faults: settings,
  });
}

function openChosenStore(choice: ObjectStoreChoice, env: NodeJS.ProcessEnv): ObjectStore {
  if (choice.bucket !== undefined) {
    const endpoint = env["AWS_ENDPOINT_URL_S3"] ?? env["AWS_ENDPOINT_URL"];
    return createS3ObjectStore({
      bucket: choice.bucket,
      prefix: choice.path,
      endpoint,
      region:
        env["AWS_REGION"] ??
        env["AWS_DEFAULT_REGION"] ??
        (endpoint !== undefined ? "us-east-1" : undefined),
    });
  }
  if (choice.localRoot !== undefined) return createLocalFsObjectStore({ root: choice.localRoot });
  return createMemoryObjectStore();
}

/**
 * Opens the cache at `cacheDir` (a temp dir if absent): LevelDB in the directory itself and the
 * segment files in `segments/` and chunk files in `chunks/` under it (docs/design/storage.md "The
 * local cache", docs/design/bottomless.md "The bounded cache"). A corrupt
 * LevelDB is wiped with the whole directory, segment files included.
 */
export async function openCache(cacheDir: string | undefined): Promise<{
  kv: KvStore;
  segmentFiles: SegmentFiles;
  chunkFiles: SegmentFiles;
  path: string;
  wiped: boolean;
}> {
  const path = cacheDir ?? (await mkdtemp(join(tmpdir(), "tributary-cache-")));
  let kv: KvStore;
  let wiped = false;
  try {
    kv = await openLevelKvStore({ path });
  } catch (error) {
    if (!(error instanceof KvCorruptError)) throw error;
    await destroyLevelKvStore(path);
    kv = await openLevelKvStore({ path });
    wiped = true;
  }
  try {
    const segmentFiles = await openFsSegmentFiles({ dir: join(path, "segments") });
    const chunkFiles = await openFsSegmentFiles({ dir: join(path, "chunks") });
    return { kv, segmentFiles, chunkFiles, path, wiped };
  } catch (error) {
    // A full disk can refuse the directories: release LevelDB's lock, or no reopen could take it.
    await kv.close().catch(() => {});
    throw error;
  }
}

/** The probe file a degraded cache writes and unlinks (LevelDB ignores names it did not make). */
const probeFileName = ".tributary-probe";

/**
 * The cache directory at `cacheDir` (a fresh temp dir if absent) as the storage opens, probes and
 * wipes it. The probe passes when the filesystem has at least `cacheDiskFreeBytesMin` free (or
 * `cacheDiskFreeShareMin` of its size, if less) and a probe file can be written and unlinked; it
 * rejects with an `ENOSPC` error naming the figures otherwise, or with the write's own error.
 */
export async function createCacheDisk(cacheDir: string | undefined): Promise<CacheDisk> {
  const path = cacheDir ?? (await mkdtemp(join(tmpdir(), "tributary-cache-")));
  return {
    path,
    open: () => openCache(path),
    async probe() {
      await mkdir(path, { recursive: true });
      const { bavail, bsize, blocks } = await statfs(path);
      const freeBytes = bavail * bsize;
      const neededBytes = Math.min(cacheDiskFreeBytesMin, blocks * bsize * cacheDiskFreeShareMin);
      if (freeBytes < neededBytes) {
        throw Object.assign(
          new Error(
            `too little free space. freeBytes=\`${freeBytes}\` neededBytes=\`${neededBytes}\``,
          ),
          { code: "ENOSPC" },
        );
      }
      const probePath = join(path, probeFileName);
      await writeFile(probePath, new Uint8Array(cacheDiskProbeBytes));
      await rm(probePath, { force: true });
    },
    wipe: () => wipeDirectory(path),
  };
}

/**
 * Parses a `--cache-size` value: a byte count, or a number with a `KiB`, `MiB` or `GiB` suffix.
 * Returns undefined for anything else.
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(|B|KiB|MiB|GiB|TiB)$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { "": 1, B: 1, KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30, TiB: 2 ** 40 }[match[2]!]!;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
