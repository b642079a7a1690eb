/**
 * A compaction read window (docs/design/bottomless.md "How a job reads the WAL"): the bytes of
 * many entries spread over many WAL objects, read object by object, each object once, instead of
 * once per stream. A WAL object holds the entries of every stream that appended during its flush,
 * so a stream-by-stream read costs one pread or range GET per entry. `getRangesInSpans`, the
 * window's way to the bucket, also serves readers' evicted WAL entries (`SegmentCache`).
 *
 * Invariants:
 * - The window holds bytes, never rows: a reader looks a row's bytes up by the row's exact
 *   location (object, offset, length), so a row the index no longer has is simply not asked for.
 * - Objects are immutable and their ids never reused: bytes read at a location are that
 *   location's bytes whenever they were read. They are not trusted all the same: the reader checks
 *   each entry's CRC32C when it decodes it (`SegmentCache.readEntry`).
 *
 * Fault model: a file read or a GET that fails leaves its entries out of the window (the reader
 * then reads them the usual way, with its retries); reading a window never throws for I/O.
 */
import { assert } from "../../core/assert.js";
import type { SegmentEntryLocation } from "../kv/keys.js";
import type { ByteRange } from "./segment-files.js";

/**
 * Missing ranges of one object at most this far apart are fetched with one ranged GET of the
 * span covering both: on moto a request costs ~12 ms, about what 1.5 MiB of transfer does, and
 * S3's first byte takes tens of ms; a larger gap costs more in bytes than a second request.
 */
export const windowGetGapBytesMax = 1 << 20;

/** Objects of one window read at once (each one pread or one GET at a time). */
const windowObjectsConcurrency = 8;

/** How a window reads: the cache's files and the bucket, as the cache reads them. */
export interface WindowSource {
  /** The bytes of each range from the cache file, `undefined` where the file lacks them. */
  readFile(
    objectId: number,
    ranges: readonly ByteRange[],
  ): Promise<readonly (Uint8Array | undefined)[]>;
  /** The bytes in `[start, end)` of the object from the bucket. */
  getRange(objectId: number, start: number, end: number): Promise<Uint8Array | undefined>;
}

/** The entries a window read, by location. */
export class WindowBytes {
  /** Entry bytes by object id, then by offset in the object, and whether a GET brought them. */
  private readonly byObject = new Map<
    number,
    Map<number, { readonly bytes: Uint8Array; readonly isFromBucket: boolean }>
  >();
  /** Entry bytes held (what the window costs in memory, spans' gaps aside). */
  bytes = 0;
  /** Objects read from the cache file, and ranged GETs made, for the stats. */
  fileReads = 0;
  gets = 0;

  /** The bytes at `location`, if the window read them (WAL locations only). */
  get(location: SegmentEntryLocation): Uint8Array | undefined {
    return this.entryAt(location)?.bytes;
  }

  /** Whether the bytes at `location` came from the bucket (a cache miss), not a cache file. */
  isFromBucket(location: SegmentEntryLocation): boolean {
    return this.entryAt(location)?.isFromBucket === true;
  }

  private entryAt(
    location: SegmentEntryLocation,
  ): { readonly bytes: Uint8Array; readonly isFromBucket: boolean } | undefined {
    if (location.source !== "wal") return undefined;
    const entry = this.byObject.get(location.objectId)?.get(location.offset);
    return entry?.bytes.length === location.length ? entry : undefined;
  }

  /** Drops the window's bytes (a reader may still hold those it took). */
  clear(): void {
    this.byObject.clear();
    this.bytes = 0;
  }

  set(objectId: number, offset: number, bytes: Uint8Array, isFromBucket: boolean): void {
    let entries = this.byObject.get(objectId);
    if (entries === undefined) {
      entries = new Map();
      this.byObject.set(objectId, entries);
    }
    entries.set(offset, { bytes, isFromBucket });
    this.bytes += bytes.length;
  }
}

/**
 * Reads the entries at `locations` (WAL locations), each object once: its file first, then what
 * the file lacks with one ranged GET per span of nearby ranges.
 */
export async function readWindow(
  locations: readonly SegmentEntryLocation[],
  source: WindowSource,
): Promise<WindowBytes> {
  const window = new WindowBytes();
  const byObject = new Map<number, ByteRange[]>();
  for (const location of locations) {
    assert(location.source === "wal", "a read window holds WAL entries");
    let ranges = byObject.get(location.objectId);
    if (ranges === undefined) {
      ranges = [];
      byObject.set(location.objectId, ranges);
    }
    ranges.push({ offset: location.offset, length: location.length });
  }
  const objects = [...byObject].sort(([a], [b]) => a - b);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < objects.length) {
      const [objectId, ranges] = objects[next++]!;
      ranges.sort((a, b) => a.offset - b.offset);
      await readObject(window, source, objectId, ranges);
    }
  };
  await Promise.all(Array.from({ length: windowObjectsConcurrency }, worker));
  return window;
}

async function readObject(
  window: WindowBytes,
  source: WindowSource,
  objectId: number,
  ranges: readonly ByteRange[],
): Promise<void> {
  let fromFile: readonly (Uint8Array | undefined)[];
  try {
    fromFile = await source.readFile(objectId, ranges);
    window.fileReads += 1;
  } catch {
    fromFile = [];
  }
  const missing: ByteRange[] = [];
  ranges.forEach((range, i) => {
    const bytes = fromFile[i];
    if (bytes !== undefined && bytes.length === range.length) {
      window.set(objectId, range.offset, bytes, false);
    } else {
      missing.push(range);
    }
  });
  const fetched = await getRangesInSpans(missing, (start, end) => {
    window.gets += 1;
    return source.getRange(objectId, start, end);
  });
  missing.forEach(({ offset }, i) => {
    const bytes = fetched[i];
    if (bytes !== undefined) window.set(objectId, offset, bytes, true);
  });
}

/**
 * The bytes of each of an object's `ranges` (sorted by offset) from the bucket: one ranged GET per
 * span of ranges at most `windowGetGapBytesMax` apart. A range is `undefined` where its GET failed
 * or the object ended before it; never throws for I/O.
 */
export async function getRangesInSpans(
  ranges: readonly ByteRange[],
  getRange: (start: number, end: number) => Promise<Uint8Array | undefined>,
): Promise<(Uint8Array | undefined)[]> {
  const out: (Uint8Array | undefined)[] = ranges.map(() => undefined);
  let first = 0;
  while (first < ranges.length) {
    let last = first;
    let end = ranges[first]!.offset + ranges[first]!.length;
    while (last + 1 < ranges.length && ranges[last + 1]!.offset - end <= windowGetGapBytesMax) {
      last += 1;
      assert(ranges[last]!.offset >= ranges[last - 1]!.offset, "ranges sorted by offset");
      end = Math.max(end, ranges[last]!.offset + ranges[last]!.length);
    }
    const start = ranges[first]!.offset;
    let span: Uint8Array | undefined;
    try {
      span = await getRange(start, end);
    } catch {
      span = undefined;
    }
    for (let k = first; span !== undefined && k <= last; k++) {
      const { offset, length } = ranges[k]!;
      const from = offset - start;
      if (from + length <= span.length) out[k] = span.subarray(from, from + length);
    }
    first = last + 1;
  }
  return out;
}
