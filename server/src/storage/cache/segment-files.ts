/**
 * The segment files of the local cache (docs/design/storage.md "The local cache"): one file per
 * durable WAL segment that holds records, named by its WAL id, holding exactly the bytes of
 * `wal/<id>`. Written once, read by byte range, unlinked when no index row points into it.
 *
 * Two implementations: a directory (`<cache-dir>/segments`, production) and memory (tests and the
 * default of an engine opened without a cache directory).
 *
 * Fault model: nothing is fsynced. A process crash keeps every completed write (the page cache
 * survives); a machine crash or a damaged disk may leave a file missing, short or with wrong
 * bytes. Readers never trust the bytes: every entry read is checked against its CRC32C, and a
 * miss falls back to the bucket (`segment-cache.ts`).
 */
import { mkdir, open, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface SegmentFiles {
  /** Writes the whole file, replacing one a crash may have left (same id, same bytes). */
  write(walId: number, bytes: Uint8Array): Promise<void>;
  /** `length` bytes at `offset`, or `undefined` when the file is missing or shorter. */
  read(walId: number, offset: number, length: number): Promise<Uint8Array | undefined>;
  /** Unlinks the file; a missing file is not an error. */
  delete(walId: number): Promise<void>;
  /** The WAL ids of every file present, in no particular order. */
  list(): Promise<number[]>;
  /** Unlinks every file (the cache is being rebuilt). */
  clear(): Promise<void>;
}

const idDigits = 20;

function fileNameOf(walId: number): string {
  return String(walId).padStart(idDigits, "0");
}

function walIdOf(fileName: string): number | undefined {
  if (fileName.length !== idDigits || !/^\d+$/.test(fileName)) return undefined;
  const id = Number(fileName);
  return Number.isSafeInteger(id) ? id : undefined;
}

function isNotFound(error: unknown): boolean {
  return typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT";
}

/** Segment files in `dir` (created if missing). Other names in the directory are ignored. */
export async function openFsSegmentFiles(options: { readonly dir: string }): Promise<SegmentFiles> {
  const { dir } = options;
  await mkdir(dir, { recursive: true });
  const pathOf = (walId: number): string => join(dir, fileNameOf(walId));
  return {
    async write(walId, bytes) {
      // One sequential write; no fsync (see the module header).
      await writeFile(pathOf(walId), bytes);
    },
    async read(walId, offset, length) {
      let handle: Awaited<ReturnType<typeof open>>;
      try {
        handle = await open(pathOf(walId), "r");
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
      try {
        const out = new Uint8Array(length);
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(out, filled, length - filled, offset + filled);
          if (bytesRead === 0) return undefined;
          filled += bytesRead;
        }
        return out;
      } finally {
        await handle.close();
      }
    },
    async delete(walId) {
      await rm(pathOf(walId), { force: true });
    },
    async list() {
      const ids: number[] = [];
      for (const name of await readdir(dir)) {
        const id = walIdOf(name);
        if (id !== undefined) ids.push(id);
      }
      return ids;
    },
    async clear() {
      for (const name of await readdir(dir)) {
        if (walIdOf(name) !== undefined) await rm(join(dir, name), { force: true });
      }
    },
  };
}

/** Segment files in memory: nothing survives the process. */
export function createMemorySegmentFiles(): SegmentFiles {
  const files = new Map<number, Uint8Array>();
  return {
    async write(walId, bytes) {
      files.set(walId, bytes.slice());
    },
    async read(walId, offset, length) {
      const bytes = files.get(walId);
      if (bytes === undefined || offset + length > bytes.length) return undefined;
      return bytes.slice(offset, offset + length);
    },
    async delete(walId) {
      files.delete(walId);
    },
    async list() {
      return [...files.keys()];
    },
    async clear() {
      files.clear();
    },
  };
}
