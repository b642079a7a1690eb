/**
 * Opens the object store and the LevelDB cache that a server process runs on, from its flags:
 * `--bucket`/`--path` (S3 or compatible; endpoint from `AWS_ENDPOINT_URL_S3`), `--local-root`
 * (a directory), or neither (memory: nothing survives a restart); `--cache-dir` (a fresh temp
 * directory by default). A corrupt cache is wiped: recovery rebuilds it from object storage.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFsSegmentFiles, type SegmentFiles } from "./cache/segment-files.js";
import { destroyLevelKvStore, KvCorruptError, openLevelKvStore } from "./kv/level.js";
import type { KvStore } from "./kv/kv-store.js";
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

/** The object store the flags select. */
export function openObjectStore(
  choice: ObjectStoreChoice,
  env: NodeJS.ProcessEnv = process.env,
): ObjectStore {
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
 * segment files in `segments/` under it (docs/design/storage.md "The local cache"). A corrupt
 * LevelDB is wiped with the whole directory, segment files included.
 */
export async function openCache(
  cacheDir: string | undefined,
): Promise<{ kv: KvStore; segmentFiles: SegmentFiles; path: string; wiped: boolean }> {
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
  const segmentFiles = await openFsSegmentFiles({ dir: join(path, "segments") });
  return { kv, segmentFiles, path, wiped };
}
