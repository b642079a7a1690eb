/**
 * The segment files of the local cache (docs/design/storage.md "The local cache"): one file per
 * durable WAL segment that holds records, named by its WAL id, holding exactly the bytes of
 * `wal/<id>`. Written once, read by byte ranges, unlinked when no index row points into it.
 *
 * Read handles are pooled (`FileHandles`): compaction and catch-up reads take a few KiB from
 * each of many files, and an open and a close cost ~115 µs of CPU per read, three times the read
 * itself. Invariant: a pooled handle is never used after its file was written or deleted through
 * this module (both drop it first), so a read sees the file as it is now; a handle in use is
 * closed only after its last user is done; idle handles close within `handleIdleMs`.
 *
 * Two implementations: a directory (`<cache-dir>/segments`, production) and memory (tests and the
 * default of an engine opened without a cache directory).
 *
 * Fault model: nothing is fsynced. A process crash keeps every completed write (the page cache
 * survives); a machine crash or a damaged disk may leave a file missing, short or with wrong
 * bytes. Readers never trust the bytes: every entry read is checked against its CRC32C, and a
 * miss falls back to the bucket (`segment-cache.ts`).
 */
import { type FileHandle, mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { bodyCopy, type ObjectBody } from "../object-store/object-store.js";
import { writeBody } from "../object-store/write-body.js";

export interface SegmentFiles {
  /** Writes the whole file, replacing one a crash may have left (same id, same bytes). */
  write(walId: number, body: ObjectBody): Promise<void>;
  /** `length` bytes at `offset`, or `undefined` when the file is missing or shorter. */
  read(walId: number, offset: number, length: number): Promise<Uint8Array | undefined>;
  /**
   * The bytes of each range, in the order given, from one open of the file; a range is
   * `undefined` when the file is missing or ends before the range does.
   */
  readRanges(
    walId: number,
    ranges: readonly ByteRange[],
  ): Promise<readonly (Uint8Array | undefined)[]>;
  /** Unlinks the file; a missing file is not an error. */
  delete(walId: number): Promise<void>;
  /** The WAL ids of every file present, in no particular order. */
  list(): Promise<number[]>;
  /**
   * Every file present with its size in bytes, oldest use first as far as the files tell (their
   * modification times): the cache's size bound starts from this at open.
   */
  sizes(): Promise<{ id: number; bytes: number }[]>;
  /** Unlinks every file (the cache is being rebuilt). */
  clear(): Promise<void>;
}

/** A byte range of a segment file. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

const idDigits = 20;

/**
 * Ranges of one `readRanges` call that lie at most this far apart are read with one pread of the
 * span covering both: the entries of one stream in a segment are usually adjacent or separated by
 * other streams' small entries, and one larger pread is cheaper than several small ones. Farther
 * ranges get a pread each, so a read never pulls in much more than it needs.
 */
const rangeGapBytesMax = 64 << 10;

/**
 * A span grows by further ranges only while it stays within this (a single range may exceed it):
 * it bounds the buffer of one pread whatever the ranges asked for. One read batch (1 MiB).
 */
const spanBytesMax = 1 << 20;

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

/**
 * Open read handles kept per directory (file descriptors; Node raises the soft limit to the hard
 * one at start, and LevelDB keeps up to 1,000 of its own). Compaction reads one entry per stream
 * from every WAL file of its backlog, stream after stream: with 64 handles a backlog of 400 files
 * reopened each of them for every stream (measured at 100 streams and 200 MiB of backlog: 39–44
 * ms of CPU per MiB compacted with 64 handles, 33–34 with 512). 512 holds a backlog of 256 MiB
 * of 0.5 MiB segments.
 */
export const segmentFileHandlesMax = 512;
/** A pooled handle unused for this long is closed (a cache nobody reads holds no descriptor). */
const handleIdleMs = 1_000;

interface PooledHandle {
  /** Resolves to the handle, or undefined when the file is missing. */
  readonly opened: Promise<FileHandle | undefined>;
  users: number;
  lastUsedMs: number;
  /** Dropped from the pool (written, deleted, evicted): closed once its last user is done. */
  dropped: boolean;
  closed: boolean;
}

/** The read handles of one directory's files (see the module header). */
class FileHandles {
  private readonly pool = new Map<number, PooledHandle>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly pathOf: (walId: number) => string) {}

  /** Runs `use` with a handle on the file, or with undefined when it is missing. */
  async with<T>(walId: number, use: (handle: FileHandle | undefined) => Promise<T>): Promise<T> {
    let pooled = this.pool.get(walId);
    if (pooled !== undefined) {
      // Most recently used last: the map's order is the eviction order (no sort per read).
      this.pool.delete(walId);
      this.pool.set(walId, pooled);
    } else {
      pooled = {
        opened: open(this.pathOf(walId), "r").catch((error: unknown) => {
          if (isNotFound(error)) return undefined;
          throw error;
        }),
        users: 0,
        lastUsedMs: 0,
        dropped: false,
        closed: false,
      };
      this.pool.set(walId, pooled);
      this.sweeper ??= setInterval(() => this.evictIdle(0, handleIdleMs), handleIdleMs).unref();
    }
    // In use from here on, so the eviction below never picks it.
    pooled.users += 1;
    if (this.pool.size > segmentFileHandlesMax) this.evictIdle(segmentFileHandlesMax);
    try {
      const handle = await pooled.opened.catch(() => undefined);
      // A missing file or a failed open is not kept: the next read looks again.
      if (handle === undefined) {
        this.drop(walId, pooled);
        await pooled.opened; // rethrows a failed open (ENOENT resolved to undefined)
      }
      return await use(handle);
    } finally {
      pooled.users -= 1;
      pooled.lastUsedMs = performance.now();
      if (pooled.dropped) this.closeIfUnused(pooled);
    }
  }

  /** Drops the file's handle before the file changes (write, delete). */
  forget(walId: number): void {
    const pooled = this.pool.get(walId);
    if (pooled !== undefined) this.drop(walId, pooled);
  }

  forgetAll(): void {
    for (const [walId, pooled] of [...this.pool]) this.drop(walId, pooled);
  }

  /**
   * Drops unused handles, least recently used first (the map's order), until at most `keep`
   * remain; with `idleMs`, every unused one idle that long.
   */
  private evictIdle(keep: number, idleMs?: number): void {
    const nowMs = performance.now();
    for (const [walId, pooled] of [...this.pool]) {
      if (idleMs === undefined) {
        if (this.pool.size <= keep) break;
      } else if (nowMs - pooled.lastUsedMs < idleMs && pooled.users === 0) {
        break; // the rest were used later still
      }
      if (pooled.users === 0) this.drop(walId, pooled);
    }
    if (this.pool.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private drop(walId: number, pooled: PooledHandle): void {
    if (this.pool.get(walId) === pooled) this.pool.delete(walId);
    pooled.dropped = true;
    this.closeIfUnused(pooled);
  }

  private closeIfUnused(pooled: PooledHandle): void {
    if (pooled.users > 0 || pooled.closed) return;
    pooled.closed = true;
    void pooled.opened
      .then(
        (handle) => handle?.close(),
        () => {},
      )
      .catch(() => {});
  }
}

/**
 * Reads `ranges` of a file on `handle`: ranges sorted by offset are grouped into spans whose gaps
 * are at most `rangeGapBytesMax`, one pread per span, then sliced (no copy).
 */
async function readRangesOf(
  handle: FileHandle | undefined,
  ranges: readonly ByteRange[],
): Promise<(Uint8Array | undefined)[]> {
  const out: (Uint8Array | undefined)[] = ranges.map(() => undefined);
  if (ranges.length === 0 || handle === undefined) return out;
  const order = ranges.map((_, i) => i).sort((a, b) => ranges[a]!.offset - ranges[b]!.offset);
  let first = 0;
  while (first < order.length) {
    const start = ranges[order[first]!]!.offset;
    let end = start + ranges[order[first]!]!.length;
    let last = first;
    while (
      last + 1 < order.length &&
      ranges[order[last + 1]!]!.offset - end <= rangeGapBytesMax &&
      ranges[order[last + 1]!]!.offset + ranges[order[last + 1]!]!.length - start <= spanBytesMax
    ) {
      last += 1;
      const range = ranges[order[last]!]!;
      end = Math.max(end, range.offset + range.length);
    }
    // Not zero-filled (the catch-up read path reads every served byte through here): only
    // ranges wholly inside the `filled` prefix are handed out, so no stale byte escapes.
    const span = new Uint8Array(Buffer.allocUnsafeSlow(end - start).buffer, 0, end - start);
    let filled = 0;
    while (filled < span.length) {
      const { bytesRead } = await handle.read(span, filled, span.length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    for (let k = first; k <= last; k++) {
      const i = order[k]!;
      const range = ranges[i]!;
      const from = range.offset - start;
      // A range past the end of a short file stays undefined; the ranges before it are whole.
      if (from + range.length <= filled) out[i] = span.subarray(from, from + range.length);
    }
    // The file ends inside this span: every later range lies past its end.
    if (filled < span.length) break;
    first = last + 1;
  }
  return out;
}

/** Segment files in `dir` (created if missing). Other names in the directory are ignored. */
export async function openFsSegmentFiles(options: { readonly dir: string }): Promise<SegmentFiles> {
  const { dir } = options;
  await mkdir(dir, { recursive: true });
  const pathOf = (walId: number): string => join(dir, fileNameOf(walId));
  const handles = new FileHandles(pathOf);
  return {
    async write(walId, body) {
      handles.forget(walId);
      // Sequential writes; no fsync (see the module header).
      const handle = await open(pathOf(walId), "w");
      try {
        await writeBody(handle, body);
      } finally {
        await handle.close();
      }
    },
    async read(walId, offset, length) {
      const [bytes] = await handles.with(walId, (handle) =>
        readRangesOf(handle, [{ offset, length }]),
      );
      return bytes;
    },
    readRanges(walId, ranges) {
      return handles.with(walId, (handle) => readRangesOf(handle, ranges));
    },
    async delete(walId) {
      handles.forget(walId);
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
    async sizes() {
      const found: { id: number; bytes: number; mtimeMs: number }[] = [];
      for (const name of await readdir(dir)) {
        const id = walIdOf(name);
        if (id === undefined) continue;
        try {
          const info = await stat(join(dir, name));
          found.push({ id, bytes: info.size, mtimeMs: info.mtimeMs });
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
      found.sort((a, b) => a.mtimeMs - b.mtimeMs);
      return found.map(({ id, bytes }) => ({ id, bytes }));
    },
    async clear() {
      handles.forgetAll();
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
    async write(walId, body) {
      // A copy of its own: the caller's buffers are the caller's.
      files.set(walId, bodyCopy(body));
    },
    async read(walId, offset, length) {
      const bytes = files.get(walId);
      if (bytes === undefined || offset + length > bytes.length) return undefined;
      return bytes.slice(offset, offset + length);
    },
    async readRanges(walId, ranges) {
      const bytes = files.get(walId);
      return ranges.map(({ offset, length }) =>
        bytes === undefined || offset + length > bytes.length
          ? undefined
          : bytes.slice(offset, offset + length),
      );
    },
    async delete(walId) {
      files.delete(walId);
    },
    async list() {
      return [...files.keys()];
    },
    async sizes() {
      return [...files].map(([id, bytes]) => ({ id, bytes: bytes.length }));
    },
    async clear() {
      files.clear();
    },
  };
}
