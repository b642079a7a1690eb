/**
 * A cache directory whose disk can be made full, for tests of the degraded cache on every
 * machine (the tmpfs test needs root). Failure injection only: the stores behind it are the real
 * memory KV and memory segment files. While `full`, writes fail as they do on a full disk: a KV
 * write with classic-level's `LEVEL_IO_ERROR` (its message naming ENOSPC), a file write with
 * Node's `ENOSPC`; a KV whose write failed keeps failing until it is reopened (LevelDB's sticky
 * background error). Reads keep working, as LevelDB's and the page cache's do. With `failOpen`
 * too, `open` fails like classic-level's (`Database failed to open`, caused by the I/O error).
 * `failDeletes` makes unlinks fail with EIO (a failing disk).
 */
import type { CacheDisk, OpenedCache } from "../../src/storage/cache/cache-guard.js";
import {
  createMemorySegmentFiles,
  type SegmentFiles,
} from "../../src/storage/cache/segment-files.js";
import type { KvStore } from "../../src/storage/kv/kv-store.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";

export interface FaultyCacheDisk extends CacheDisk {
  /** Writes fail with ENOSPC while true; the probe fails too. */
  full: boolean;
  /** While `full`, opening the database fails too (a restart on a full disk). */
  failOpen: boolean;
  /** Unlinks fail with EIO while true (a failing disk; a full one still unlinks). */
  failDeletes: boolean;
  /** Make writes fail with this error instead (a fault that is not the disk's). */
  otherError: Error | undefined;
  /** Opens so far. */
  readonly opens: number;
}

function levelIoError(): Error {
  return Object.assign(new Error("IO error: /cache/000003.log: No space left on device"), {
    code: "LEVEL_IO_ERROR",
  });
}

function enospc(path: string): Error {
  return Object.assign(new Error(`ENOSPC: no space left on device, open '${path}'`), {
    code: "ENOSPC",
    errno: -28,
  });
}

export function createFaultyCacheDisk(): FaultyCacheDisk {
  let kv = createMemoryKvStore();
  let segmentFiles = createMemorySegmentFiles();
  let chunkFiles = createMemorySegmentFiles();
  let opens = 0;
  const disk: FaultyCacheDisk = {
    path: "/faulty-cache",
    full: false,
    failOpen: false,
    failDeletes: false,
    otherError: undefined,
    get opens() {
      return opens;
    },
    async open(): Promise<OpenedCache> {
      if (disk.full && disk.failOpen) {
        throw new Error("Database failed to open", { cause: levelIoError() });
      }
      opens += 1;
      return {
        kv: faultyKv(kv),
        segmentFiles: faultyFiles(segmentFiles, "segments"),
        chunkFiles: faultyFiles(chunkFiles, "chunks"),
        wiped: false,
      };
    },
    async probe() {
      if (disk.full) throw enospc("/faulty-cache/.tributary-probe");
    },
    async wipe() {
      kv = createMemoryKvStore();
      segmentFiles = createMemorySegmentFiles();
      chunkFiles = createMemorySegmentFiles();
    },
  };

  function writeError(): Error | undefined {
    if (disk.otherError !== undefined) return disk.otherError;
    return disk.full ? levelIoError() : undefined;
  }

  function faultyKv(inner: KvStore): KvStore {
    let broken: Error | undefined;
    const check = (): void => {
      broken ??= writeError();
      if (broken !== undefined) throw broken;
    };
    return {
      get: (key) => inner.get(key),
      getMany: (keys) => inner.getMany(keys),
      entries: (range) => inner.entries(range),
      snapshot: () => inner.snapshot(),
      async write(ops, options) {
        check();
        await inner.write(ops, options);
      },
      async clear(range) {
        check();
        await inner.clear(range);
      },
      // The backing store outlives a close (it is the disk), so a reopen finds the rows.
      close: async () => {},
    };
  }

  function faultyFiles(inner: SegmentFiles, dir: string): SegmentFiles {
    return {
      ...inner,
      async write(id, bytes) {
        if (disk.otherError !== undefined) throw disk.otherError;
        if (disk.full) throw enospc(`/faulty-cache/${dir}/${id}`);
        await inner.write(id, bytes);
      },
      read: (id, offset, length) => inner.read(id, offset, length),
      readRanges: (id, ranges) => inner.readRanges(id, ranges),
      async delete(id) {
        if (disk.failDeletes) {
          throw Object.assign(new Error(`EIO: i/o error, unlink '/faulty-cache/${dir}/${id}'`), {
            code: "EIO",
          });
        }
        await inner.delete(id);
      },
      list: () => inner.list(),
      sizes: () => inner.sizes(),
      clear: () => inner.clear(),
    };
  }
  return disk;
}
