/**
 * An object store on the local filesystem (`--local-root DIR`), with S3's semantics: any key,
 * create-if-absent, listing in UTF-8 byte order.
 *
 * Layout: key `a/b/c` is the file `DIR/a%/b%/c`. Each `/`-separated segment becomes a path
 * component; directories get a trailing `%`, so that `a` (a file) and `a/b` (under the
 * directory `a%`) can both exist, as they can in S3 (stream names may contain `/`). In segments,
 * `%` is written `%25` and NUL `%00`; the segments ``, `.` and `..` are written `%empty`, `%2E`
 * and `%2E%2E`. Hence a `%` in an encoded name is always followed by `25`, `00`, `2E` or
 * `empty`, except for the trailing one of a directory and for temp files (`%tmp-<random>`), and
 * the three kinds of name never collide. Names that are none of these (files someone else put
 * in the root) are ignored. The filesystem must be case-sensitive, like S3 keys, and support
 * hard links (not FAT or some network mounts); a segment is limited to the filesystem's name
 * length (255 bytes on most), failing the put beyond it.
 *
 * Invariants:
 * - An object appears whole or not at all, and never changes once it exists. `putIfAbsent`
 *   writes a uniquely named temp file in the target directory, fsyncs it, and `link()`s it to the
 *   final name. `link` fails with EEXIST when the name exists, which makes create-if-absent atomic
 *   across threads and processes (`rename` would silently overwrite). The temp name is then
 *   unlinked and the directory fsynced before "created" is returned, so an acknowledged object
 *   survives a power loss. The first put into a directory in this process also fsyncs its
 *   ancestors, because a directory created by `mkdir` (ours or a crashed peer's) is not durable
 *   until its parent is.
 * - Listing is in ascending UTF-8 byte order. Every key under directory `d%` starts with `d/`, and
 *   no file's key segment contains `/`, so ordering a directory's entries by their decoded key
 *   (with `/` appended for directories) and walking depth-first yields exactly that order, and a
 *   page stops reading once it has `limit + 1` keys.
 * - Directories emptied by `delete` are left in place: removing them would race with a
 *   concurrent put into them.
 *
 * Fault model: any thrown error means the outcome is unknown, as for every store. A crash
 * between `link` and the directory fsync can lose an object whose put never returned, which is
 * allowed; a temp file left behind is never listed or read.
 */
import { randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { type FileHandle, link, mkdir, open, readdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { assert } from "../../core/assert.js";
import { objectDeleteBatchMax, objectListPageMax } from "../../core/limits.js";
import { ObjectStoreError } from "./errors.js";
import type {
  ByteRange,
  ObjectBody,
  ObjectInfo,
  ObjectListOptions,
  ObjectListPage,
  ObjectStore,
} from "./object-store.js";
import { writeBody } from "./write-body.js";

/** Options of `createLocalFsObjectStore`. */
export interface LocalFsObjectStoreOptions {
  /** The directory holding the objects; created on the first put. */
  readonly root: string;
}

/** Marks directory names, and starts the escapes in segments. */
const escapeChar = "%";
/** Temp files start with this, which no encoded segment does. */
const tempNamePrefix = "%tmp-";
/** Random bytes in a temp name: unique across processes writing into the same root. */
const tempNameRandomBytes = 12;
/**
 * Directories whose ancestors this process has fsynced. Bounded so that a store with very many
 * directories does not grow without limit; forgetting one only costs a repeated fsync.
 */
const durableDirsCachedMax = 10_000;

/** Creates a store keeping each object in a file under `options.root`. */
export function createLocalFsObjectStore(options: LocalFsObjectStoreOptions): ObjectStore {
  const root = path.resolve(options.root);
  const durableDirs = new Set<string>();

  function pathOf(key: string): string {
    const segments = key.split("/");
    const fileName = encodeSegment(segments.pop() ?? "");
    return path.join(
      root,
      ...segments.map((segment) => encodeSegment(segment) + escapeChar),
      fileName,
    );
  }

  /** Persists `dir`'s own entry and those of its ancestors up to and including `root`'s. */
  async function syncAncestorsOnce(dir: string): Promise<void> {
    if (durableDirs.has(dir)) return;
    let child = dir;
    for (;;) {
      const parent = path.dirname(child);
      if (parent === child) break;
      await syncDir(parent);
      if (child === root) break;
      child = parent;
    }
    if (durableDirs.size >= durableDirsCachedMax) durableDirs.clear();
    durableDirs.add(dir);
  }

  return {
    async get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
      if (range !== undefined) assertRange(range);
      let handle: FileHandle;
      try {
        handle = await open(pathOf(key), "r");
      } catch (error) {
        if (errorCode(error) === "ENOENT") return undefined;
        throw new ObjectStoreError(`local-fs get failed. key=\`${key}\``, { cause: error });
      }
      try {
        const size = (await handle.stat()).size;
        const start = range === undefined ? 0 : Math.min(range.start, size);
        const end = range === undefined ? size : Math.min(range.end, size);
        if (start >= end) return new Uint8Array(0);
        return await readFully(handle, start, end - start);
      } catch (error) {
        throw new ObjectStoreError(`local-fs get failed. key=\`${key}\``, { cause: error });
      } finally {
        await handle.close();
      }
    },

    async putIfAbsent(key: string, bytes: ObjectBody): Promise<"created" | "exists"> {
      const finalPath = pathOf(key);
      const dir = path.dirname(finalPath);
      const tempPath = path.join(
        dir,
        tempNamePrefix + randomBytes(tempNameRandomBytes).toString("hex"),
      );
      let isTempPresent = false;
      try {
        await writeDurableFile(tempPath, bytes);
        isTempPresent = true;
        let outcome: "created" | "exists" = "created";
        try {
          await link(tempPath, finalPath);
        } catch (error) {
          if (errorCode(error) !== "EEXIST") throw error;
          outcome = "exists";
        }
        await unlink(tempPath);
        isTempPresent = false;
        // Also on "exists": the object may be a crashed put's whose link is not durable yet.
        await syncDir(dir);
        await syncAncestorsOnce(dir);
        return outcome;
      } catch (error) {
        throw new ObjectStoreError(`local-fs put failed. key=\`${key}\``, { cause: error });
      } finally {
        // Best effort: a temp file that stays behind is never listed and never read.
        if (isTempPresent) await unlink(tempPath).catch(() => {});
      }
    },

    async list(prefix: string, options?: ObjectListOptions): Promise<ObjectListPage> {
      const limit = listLimit(options?.limit);
      const startAfter = options?.startAfter;
      const isWanted = (key: string): boolean =>
        key.startsWith(prefix) && (startAfter === undefined || compareKeys(key, startAfter) > 0);
      // Descend into a directory only if some key under it can match: it lies on the prefix's
      // path, and not all of its keys sort at or before `startAfter`.
      const isWorthWalking = (dirKey: string): boolean =>
        (dirKey.startsWith(prefix) || prefix.startsWith(dirKey)) &&
        (startAfter === undefined ||
          compareKeys(dirKey, startAfter) > 0 ||
          startAfter.startsWith(dirKey));

      const found: ObjectInfo[] = [];
      try {
        for await (const info of walkInKeyOrder(root, "", { isWanted, isWorthWalking })) {
          found.push(info);
          if (found.length > limit) break;
        }
      } catch (error) {
        throw new ObjectStoreError(`local-fs list failed. prefix=\`${prefix}\``, { cause: error });
      }
      return { objects: found.slice(0, limit), isTruncated: found.length > limit };
    },

    async delete(keys: readonly string[]): Promise<void> {
      assert(keys.length <= objectDeleteBatchMax, "too many keys in one delete");
      const dirs = new Set<string>();
      for (const key of keys) {
        const filePath = pathOf(key);
        try {
          await unlink(filePath);
          dirs.add(path.dirname(filePath));
        } catch (error) {
          if (errorCode(error) === "ENOENT") continue;
          throw new ObjectStoreError(`local-fs delete failed. key=\`${key}\``, { cause: error });
        }
      }
      // Without this a deleted object could reappear after a power loss; one fsync per directory.
      for (const dir of dirs) {
        try {
          await syncDir(dir);
        } catch (error) {
          throw new ObjectStoreError(`local-fs delete failed. dir=\`${dir}\``, { cause: error });
        }
      }
    },

    async close(): Promise<void> {},
  };
}

interface WalkFilter {
  isWanted(key: string): boolean;
  isWorthWalking(dirKey: string): boolean;
}

/**
 * Yields the objects under `dirPath` (whose keys start with `keyPrefix`) in ascending byte-wise
 * key order; see the module header for why sorting each directory by decoded key suffices.
 */
async function* walkInKeyOrder(
  dirPath: string,
  keyPrefix: string,
  filter: WalkFilter,
): AsyncGenerator<ObjectInfo> {
  let entries: Dirent[];
  try {
    entries = await readdir(dirPath, { withFileTypes: true });
  } catch (error) {
    if (errorCode(error) === "ENOENT") return;
    throw error;
  }
  const children: { name: string; key: string; isDirectory: boolean; sortKey: Buffer }[] = [];
  for (const entry of entries) {
    const isDirectory = entry.isDirectory();
    if (!isDirectory && !entry.isFile()) continue;
    const encoded = isDirectory ? stripDirectoryMark(entry.name) : entry.name;
    const segment = encoded === undefined ? undefined : decodeSegment(encoded);
    // Temp files and anything we did not write do not decode.
    if (segment === undefined) continue;
    const key = keyPrefix + segment + (isDirectory ? "/" : "");
    children.push({ name: entry.name, key, isDirectory, sortKey: Buffer.from(key, "utf8") });
  }
  children.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
  for (const child of children) {
    const childPath = path.join(dirPath, child.name);
    if (child.isDirectory) {
      if (filter.isWorthWalking(child.key)) yield* walkInKeyOrder(childPath, child.key, filter);
      continue;
    }
    if (!filter.isWanted(child.key)) continue;
    try {
      yield { key: child.key, size: (await stat(childPath)).size };
    } catch (error) {
      // Deleted between readdir and stat: it is simply not part of this listing.
      if (errorCode(error) !== "ENOENT") throw error;
    }
  }
}

/** The file name of one key segment; see the module header. */
function encodeSegment(segment: string): string {
  if (segment === "") return "%empty";
  if (segment === ".") return "%2E";
  if (segment === "..") return "%2E%2E";
  return segment.replaceAll("%", "%25").replaceAll("\u0000", "%00");
}

/** The key segment of a file name, or undefined when `encodeSegment` cannot have made it. */
function decodeSegment(name: string): string | undefined {
  if (name === "%empty") return "";
  if (name === "%2E") return ".";
  if (name === "%2E%2E") return "..";
  // Every `%` in an encoded name starts an escape, so the two passes cannot misread each other.
  const segment = name.replaceAll("%00", "\u0000").replaceAll("%25", "%");
  return encodeSegment(segment) === name ? segment : undefined;
}

function stripDirectoryMark(name: string): string | undefined {
  return name.endsWith(escapeChar) ? name.slice(0, -escapeChar.length) : undefined;
}

/** Creates `filePath` (which must not exist) with `body`, fsynced, making directories. */
async function writeDurableFile(filePath: string, body: ObjectBody): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(filePath, "wx");
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
    // The directories' durability is seen to by the caller's ancestor fsync.
    await mkdir(path.dirname(filePath), { recursive: true });
    handle = await open(filePath, "wx");
  }
  try {
    await writeBody(handle, body);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads exactly `length` bytes at `position`; objects are immutable, so a short file is bad. */
async function readFully(
  handle: FileHandle,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(out, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      throw new Error(`object file ended early. expected=\`${length}\` read=\`${filled}\``);
    }
    filled += bytesRead;
  }
  return out;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}

/** Byte-wise comparison of the UTF-8 encodings, which is S3's listing order. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** A negative or fractional range is a caller bug, not a storage condition. */
function assertRange(range: ByteRange): void {
  assert(Number.isSafeInteger(range.start) && range.start >= 0, "range start is invalid");
  assert(Number.isSafeInteger(range.end) && range.end >= 0, "range end is invalid");
}

function listLimit(limit: number | undefined): number {
  if (limit === undefined) return objectListPageMax;
  assert(Number.isSafeInteger(limit) && limit >= 1, "list limit must be a positive integer");
  return Math.min(limit, objectListPageMax);
}
