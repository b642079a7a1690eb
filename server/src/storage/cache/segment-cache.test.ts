// Goal: the segment-file cache finds the entry covering any seq num, never serves bytes that fail
// their CRC (a damaged or missing file is read from the bucket instead, and what fails both is an
// error), and frees segment files exactly when no index row points into them. Method: segments
// built with the real format, committed through `SegmentCache` to a memory KV and to memory or
// directory segment files, then damaged, trimmed and swept; plus engine-level checks of a restart
// with the cache kept and of reads while a cache commit is held back.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { systemClock } from "../../core/clock.js";
import { S2Error } from "../../core/errors.js";
import { meteredBytesOfBatch } from "../../core/records.js";
import { systemRandom } from "../../core/random.js";
import { Service } from "../../service/service.js";
import {
  decodeSegmentEntryKey,
  decodeSegmentEntryValue,
  encodeSegmentEntryKey,
  encodeSegmentRefsKey,
  KeyType,
  keyTypeRange,
} from "../kv/keys.js";
import { createMemoryKvStore } from "../kv/memory.js";
import { chunkKey, walKey } from "../object-keys.js";
import { createMemoryObjectStore } from "../object-store/memory.js";
import type { ObjectStore } from "../object-store/object-store.js";
import { openCache } from "../open-stores.js";
import {
  decodeSegment,
  encodeSegment,
  encodedSegmentOf,
  type SegmentEntryInput,
} from "../segment/format.js";
import { type DecodedRecord, encodeRecord } from "../segment/record-codec.js";
import {
  CacheReadError,
  type ChunkToSwitch,
  type RowsAhead,
  SegmentCache,
} from "./segment-cache.js";
import {
  createMemorySegmentFiles,
  openFsSegmentFiles,
  type SegmentFiles,
} from "./segment-files.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The body of record `seqNum` of a stream in these tests. */
function bodyOf(streamId: number, seqNum: number): Uint8Array {
  return encoder.encode(`s${streamId}-${seqNum}`);
}

/** The metered bytes of stream 1's records below `seqNum` (headerless: 8 + body each). */
function meteredOfStream1Below(seqNum: number): number {
  let bytes = 0;
  for (let i = 0; i < seqNum; i++) bytes += 8 + bodyOf(1, i).length;
  return bytes;
}

function recordsEntry(streamId: number, firstSeqNum: number, count: number): SegmentEntryInput {
  return {
    kind: "records",
    streamId,
    firstSeqNum,
    encodedRecords: Array.from({ length: count }, (_, i) =>
      encodeRecord({
        timestamp: firstSeqNum + i,
        headers: [],
        body: bodyOf(streamId, firstSeqNum + i),
      }),
    ),
  };
}

interface Fixture {
  readonly store: ObjectStore;
  readonly files: SegmentFiles;
  readonly cache: SegmentCache;
  readonly kv: ReturnType<typeof createMemoryKvStore>;
  /** Uploads a segment to the store and commits it to the cache, every records entry indexed. */
  commit(walId: number, entries: readonly SegmentEntryInput[]): Promise<void>;
  /** The body texts `readEntries` yields from `startSeqNum`, per entry, as "first:texts". */
  read(streamId: number, startSeqNum: number, endSeqNum?: number): Promise<string[]>;
}

function makeFixture(files: SegmentFiles = createMemorySegmentFiles()): Fixture {
  const store = createMemoryObjectStore();
  const kv = createMemoryKvStore();
  const cache = new SegmentCache(kv, files, store, systemClock);
  /** Each stream's metered bytes so far, as the metrics ledger keeps them (`apply.ts`). */
  const meteredTotals = new Map<number, number>();
  return {
    store,
    files,
    cache,
    kv,
    async commit(walId, inputs) {
      const bytes = encodeSegment({
        walId,
        writerEpoch: 1,
        writeId: new Uint8Array(16).fill(walId),
        entries: inputs,
      });
      assert.equal(await store.putIfAbsent(walKey(walId), bytes), "created");
      const { entries } = decodeSegment(bytes);
      const meteredBytesBefore = entries.map((entry) => {
        if (entry.kind !== "records") return 0;
        const before = meteredTotals.get(entry.streamId) ?? 0;
        meteredTotals.set(entry.streamId, before + meteredBytesOfBatch(entry.records));
        return before;
      });
      await cache.commitSegment({
        walId,
        bytes: encodedSegmentOf(bytes),
        entries,
        isIndexed: entries.map((entry) => entry.kind === "records"),
        meteredBytesBefore,
        ops: [],
      });
    },
    async read(streamId, startSeqNum, endSeqNum = 1_000) {
      const out: string[] = [];
      await cache.readEntries({
        streamId,
        startSeqNum,
        endSeqNum,
        visit: (firstSeqNum: number, records: readonly DecodedRecord[]) => {
          out.push(`${firstSeqNum}:${records.map((r) => decoder.decode(r.body)).join(",")}`);
          return true;
        },
      });
      return out;
    },
  };
}

/** Stream 1: [0,3) in wal 5, [3,5) in wal 6, [5,6) in wal 7; stream 2: [0,2) in wal 6. */
async function threeSegments(fixture: Fixture): Promise<void> {
  await fixture.commit(5, [
    recordsEntry(1, 0, 3),
    { kind: "control", payload: encoder.encode("{}") },
  ]);
  await fixture.commit(6, [recordsEntry(2, 0, 2), recordsEntry(1, 3, 2)]);
  await fixture.commit(7, [recordsEntry(1, 5, 1)]);
}

async function rowStarts(fixture: Fixture, streamId: number): Promise<number[]> {
  const starts: number[] = [];
  for await (const [key] of fixture.kv.entries(keyTypeRange(KeyType.SegmentEntry))) {
    const row = decodeSegmentEntryKey(key);
    if (row.streamId === streamId) starts.push(row.firstSeqNum);
  }
  return starts;
}

describe("segment cache: reading runs ahead", () => {
  it("visits in order with misses fetched side by side, and stops early when asked", async () => {
    // Goal: `runsAhead` (compaction's read-ahead) changes how many bucket reads are in flight,
    // never what is visited or in which order. Twelve one-entry segments of stream 1, their files
    // gone: every entry is a miss served by a range GET that the store holds until released.
    const fixture = makeFixture();
    for (let walId = 1; walId <= 12; walId++) {
      await fixture.commit(walId, [recordsEntry(1, (walId - 1) * 2, 2)]);
      await fixture.files.delete(walId);
    }
    let inFlight = 0;
    let inFlightMax = 0;
    const inner = fixture.store;
    const slowStore: ObjectStore = {
      ...inner,
      async get(key, range) {
        inFlight += 1;
        inFlightMax = Math.max(inFlightMax, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight -= 1;
        return inner.get(key, range);
      },
    };
    const cache = new SegmentCache(fixture.kv, fixture.files, slowStore, systemClock);
    const readWith = async (runsAhead: number, stopAfter = Infinity): Promise<number[]> => {
      const starts: number[] = [];
      await cache.readEntries({
        streamId: 1,
        startSeqNum: 0,
        endSeqNum: 1_000,
        runsAhead,
        visit: (firstSeqNum) => {
          starts.push(firstSeqNum);
          return starts.length < stopAfter;
        },
      });
      return starts;
    };
    const all = Array.from({ length: 12 }, (_, i) => i * 2);
    assert.deepEqual(await readWith(1), all);
    assert.equal(inFlightMax, 1, "one run at a time by default");
    inFlightMax = 0;
    assert.deepEqual(await readWith(4), all);
    assert.equal(inFlightMax, 4, "four misses in flight");
    // Stops after three entries: the runs read ahead are dropped (their outcomes never awaited).
    assert.deepEqual(await readWith(6, 3), [0, 2, 4]);
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
});

describe("segment cache: listing rows", () => {
  it("lists rows in pages and looks back only when no row starts at the read's start", async () => {
    // Goal: a read's rows come in pages of a few rows (not one iterator over the rest of the
    // stream, which LevelDB fills 1,000 rows at a time), and a read from a row's start, as a
    // catch-up read that goes on after an entry does, opens no reverse iterator. Method: 60
    // entries of 2 records in 3 segments, read through a KV store that counts its iterators.
    const fixture = makeFixture();
    for (let walId = 1; walId <= 3; walId++) {
      await fixture.commit(
        walId,
        Array.from({ length: 20 }, (_, i) => recordsEntry(1, ((walId - 1) * 20 + i) * 2, 2)),
      );
    }
    await fixture.commit(4, [recordsEntry(2, 0, 2)]);
    const listed: { isReverse: boolean; limit: number | undefined }[] = [];
    const kv = fixture.kv;
    const countingKv: typeof kv = {
      ...kv,
      entries(range) {
        listed.push({ isReverse: range.reverse === true, limit: range.limit });
        return kv.entries(range);
      },
    };
    const cache = new SegmentCache(countingKv, fixture.files, fixture.store, systemClock);
    const read = async (startSeqNum: number, endSeqNum = 1_000, stopAfter = Infinity) => {
      listed.length = 0;
      const starts: number[] = [];
      await cache.readEntries({
        streamId: 1,
        startSeqNum,
        endSeqNum,
        visit: (firstSeqNum, records) => {
          assert.equal(records.length, 2);
          starts.push(firstSeqNum);
          return starts.length < stopAfter;
        },
      });
      return starts;
    };
    const rowsFrom = (first: number, last = 118): number[] =>
      Array.from({ length: (last - first) / 2 + 1 }, (_, i) => first + 2 * i);

    assert.deepEqual(await read(0), rowsFrom(0));
    assert.ok(listed.every((page) => !page.isReverse && page.limit !== undefined));
    assert.ok(listed.length >= 4 && listed.length <= 6, `pages: ${listed.length}`);

    // From a row's start: no look back; from inside a row, one.
    assert.deepEqual(await read(40, 1_000, 3), [40, 42, 44]);
    assert.equal(listed.filter((page) => page.isReverse).length, 0);
    assert.deepEqual(await read(41, 1_000, 3), [40, 42, 44]);
    assert.equal(listed.filter((page) => page.isReverse).length, 1);
    // Inside the last row, past every row's start; and at a bounded end.
    assert.deepEqual(await read(119), [118]);
    assert.deepEqual(await read(10, 15), [10, 12, 14]);
    // Stream 2's rows follow stream 1's in the index and are never listed for it.
    assert.deepEqual(await read(200), []);
  });

  it("a read that goes on where the last one stopped starts from the rows it listed ahead", async () => {
    // Goal: the rows a read listed past its stop (`RowsAhead`) stand for the next read's first
    // page, and only while the index has lost no row since (a trim here). Method: as above.
    const fixture = makeFixture();
    await fixture.commit(
      1,
      Array.from({ length: 40 }, (_, i) => recordsEntry(1, i * 2, 2)),
    );
    let listings = 0;
    const kv = fixture.kv;
    const countingKv: typeof kv = {
      ...kv,
      entries(range) {
        listings += 1;
        return kv.entries(range);
      },
    };
    const cache = new SegmentCache(countingKv, fixture.files, fixture.store, systemClock);
    const read = async (startSeqNum: number, rowsAhead: RowsAhead | undefined, rows: number) => {
      listings = 0;
      const starts: number[] = [];
      const next = await cache.readEntries({
        streamId: 1,
        startSeqNum,
        endSeqNum: 1_000,
        rowsAhead,
        visit: (firstSeqNum) => {
          starts.push(firstSeqNum);
          return starts.length < rows;
        },
      });
      return { starts, next, listings };
    };
    const first = await read(0, undefined, 2);
    assert.deepEqual(first.starts, [0, 2]);
    assert.ok(first.next !== undefined);
    // Carried: the next read starts from the rows carried (these one-record entries share a file,
    // so its run goes on gathering rows past them: one page, not the four from its start).
    const second = await read(4, first.next, 1);
    assert.deepEqual(second.starts, [4]);
    const uncarried = await read(4, undefined, 1);
    assert.deepEqual(uncarried.starts, [4]);
    assert.ok(second.listings < uncarried.listings, `${second.listings} < ${uncarried.listings}`);
    // A carried list that does not start at the read's start is not used.
    const elsewhere = await read(20, second.next, 1);
    assert.deepEqual(elsewhere.starts, [20]);
    assert.equal(elsewhere.listings, 1);
    // Past its rows, the reader lists from after the last one carried, in doubling pages.
    let ahead = elsewhere.next;
    const seen: number[] = [];
    for (let start = 22; start < 80; start += 2) {
      const { starts, next } = await read(start, ahead, 1);
      seen.push(...starts);
      ahead = next;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 29 }, (_, i) => 22 + 2 * i),
    );
    // A trim drops rows: what was listed before it is not used after it.
    const beforeTrim = await read(0, undefined, 1);
    await cache.dropRowsBelow(1, 4);
    const afterTrim = await read(2, beforeTrim.next, 1);
    assert.ok(afterTrim.listings >= 1, "listed again");
    assert.deepEqual(afterTrim.starts, [4]);
  });
});

describe("segment cache: index lookup", () => {
  it("finds the entry covering a seq num and reads on in order", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    assert.deepEqual(await fixture.read(1, 0), ["0:s1-0,s1-1,s1-2", "3:s1-3,s1-4", "5:s1-5"]);
    // A start inside an entry finds that entry (seek ≤), not the next one.
    assert.deepEqual(await fixture.read(1, 4), ["3:s1-3,s1-4", "5:s1-5"]);
    assert.deepEqual(await fixture.read(1, 2, 4), ["0:s1-0,s1-1,s1-2", "3:s1-3,s1-4"]);
    assert.deepEqual(await fixture.read(1, 6), [], "nothing at or past the end");
    assert.deepEqual(await fixture.read(2, 1), ["0:s2-0,s2-1"], "streams do not mix");
    assert.deepEqual(await fixture.read(3, 0), []);
    assert.equal(fixture.cache.stats.entryMisses, 0);
    assert.equal(fixture.cache.stats.filesWritten, 3);
  });

  it("writes no file for a segment without records entries", async () => {
    const fixture = makeFixture();
    await fixture.commit(1, [{ kind: "control", payload: encoder.encode("{}") }]);
    assert.deepEqual(await fixture.files.list(), []);
    assert.equal(await fixture.kv.get(encodeSegmentRefsKey(1)), undefined);
  });
});

describe("segment cache: damaged and missing files", () => {
  it("serves the right bytes from the bucket when a file fails its CRC", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    // Flip one byte inside stream 1's first entry, in the cached copy only.
    const bytes = (await fixture.files.read(5, 0, 10_000)) ?? (await fixture.store.get(walKey(5)))!;
    const damaged = bytes.slice();
    damaged[damaged.length - 12]! ^= 0x40;
    await fixture.files.write(5, damaged);
    assert.deepEqual(await fixture.read(1, 0, 3), ["0:s1-0,s1-1,s1-2"]);
    assert.equal(fixture.cache.stats.entryMisses, 1, "one miss, served by a range GET");
  });

  it("serves a missing or truncated file from the bucket", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    await fixture.files.delete(6);
    const whole = (await fixture.store.get(walKey(7)))!;
    await fixture.files.write(7, whole.subarray(0, whole.length - 20));
    assert.deepEqual(await fixture.read(1, 0), ["0:s1-0,s1-1,s1-2", "3:s1-3,s1-4", "5:s1-5"]);
    assert.equal(fixture.cache.stats.entryMisses, 2);
  });

  it("fails with a clear error, never wrong bytes, when the bucket's copy is bad too", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    await fixture.files.delete(7);
    await fixture.store.delete([walKey(7)]);
    await assert.rejects(
      fixture.read(1, 5),
      (error: unknown) =>
        error instanceof CacheReadError && /object=`wal\/00000000000000000007`/.test(error.message),
    );
  });
});

describe("segment cache: trim and deletion", () => {
  it("knows the exact metered bytes below any trim point, at a row's start or inside it", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    // Stream 1's rows start at 0, 3 and 5; every seq num of [0, 6] is answered exactly.
    for (let seqNum = 0; seqNum <= 6; seqNum++) {
      assert.equal(
        await fixture.cache.meteredBytesBelow(1, seqNum),
        meteredOfStream1Below(seqNum),
        `below ${seqNum}`,
      );
    }
    // After the trim's rows are dropped, the row covering the trim point still answers it; a
    // trim to the tail drops every row, and then nothing is indexed to answer from.
    await fixture.cache.dropRowsBelow(1, 4);
    assert.equal(await fixture.cache.meteredBytesBelow(1, 4), meteredOfStream1Below(4));
    await fixture.cache.dropRowsBelow(1, 6);
    assert.equal(await fixture.cache.meteredBytesBelow(1, 6), undefined);
    assert.equal(await fixture.cache.meteredBytesBelow(9, 0), undefined, "an unknown stream");
  });

  it("drops entries wholly below a trim point and unlinks files no entry points into", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    await fixture.cache.dropRowsBelow(1, 4);
    // [0,3) goes (file 5 had only it); [3,5) straddles 4 and stays.
    assert.deepEqual(await rowStarts(fixture, 1), [3, 5]);
    assert.deepEqual((await fixture.files.list()).sort(), [6, 7]);
    assert.equal(fixture.cache.stats.filesDeleted, 1);
    await fixture.cache.dropRowsBelow(1, 6);
    assert.deepEqual(await rowStarts(fixture, 1), []);
    // File 6 still holds stream 2's entry; file 7 is freed.
    assert.deepEqual((await fixture.files.list()).sort(), [6]);
    assert.deepEqual(await fixture.read(2, 0), ["0:s2-0,s2-1"]);
    await fixture.cache.dropStream(2);
    assert.deepEqual(await fixture.files.list(), []);
    for await (const _ of fixture.kv.entries(keyTypeRange(KeyType.SegmentRefs))) {
      assert.fail("no reference count is left");
    }
  });

  it("drops a stream with more entries than one batch holds", async () => {
    const fixture = makeFixture();
    // 5,000 one-record entries of one stream in ten segments.
    for (let walId = 0; walId < 10; walId++) {
      await fixture.commit(
        walId,
        Array.from({ length: 500 }, (_, i) => recordsEntry(9, walId * 500 + i, 1)),
      );
    }
    await fixture.cache.dropRowsBelow(9, 4_600);
    assert.equal((await rowStarts(fixture, 9)).length, 400);
    assert.deepEqual(await fixture.files.list(), [9]);
    await fixture.cache.dropStream(9);
    assert.deepEqual(await fixture.files.list(), []);
  });

  it("sweeps files that no reference count names (a crash before the unlink)", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    await fixture.files.write(42, new Uint8Array(100));
    await fixture.cache.sweepOrphanFiles();
    assert.deepEqual((await fixture.files.list()).sort(), [5, 6, 7]);
  });
});

describe("segment cache: one file read per run of entries", () => {
  /** Stream 1: 600 one-record entries in each of wal 1..3, each after an entry of stream 2. */
  async function manyEntries(fixture: Fixture): Promise<string[]> {
    const expected: string[] = [];
    for (let walId = 1; walId <= 3; walId++) {
      const inputs: SegmentEntryInput[] = [];
      for (let i = 0; i < 600; i++) {
        const seqNum = (walId - 1) * 600 + i;
        inputs.push(recordsEntry(2, seqNum, 1), recordsEntry(1, seqNum, 1));
        expected.push(`${seqNum}:s1-${seqNum}`);
      }
      await fixture.commit(walId, inputs);
    }
    return expected;
  }

  /** Files in `dir` that count the calls that open a file. */
  async function countingFiles(dir: string) {
    const inner = await openFsSegmentFiles({ dir });
    const opens = { read: 0, readRanges: 0 };
    const files: SegmentFiles = {
      ...inner,
      read(walId, offset, length) {
        opens.read += 1;
        return inner.read(walId, offset, length);
      },
      readRanges(walId, ranges) {
        opens.readRanges += 1;
        return inner.readRanges(walId, ranges);
      },
    };
    return { files, opens };
  }

  it("reads many entries of one file with one open and returns each entry's records", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tributary-cache-runs-"));
    try {
      const { files, opens } = await countingFiles(dir);
      const fixture = makeFixture(files);
      const expected = await manyEntries(fixture);
      assert.deepEqual(await fixture.read(1, 0, 10_000), expected);
      assert.equal(opens.readRanges, 3, "one open per file, not one per entry");
      assert.equal(opens.read, 0);
      assert.equal(fixture.cache.stats.entryHits, 1_800);
      assert.equal(fixture.cache.stats.entryMisses, 0);
      // A start inside the second file and an end inside the third.
      assert.deepEqual(await fixture.read(1, 700, 1_300), expected.slice(700, 1_300));
      // A visitor that stops early gets exactly the entries it asked for, in order.
      const seen: number[] = [];
      await fixture.cache.readEntries({
        streamId: 1,
        startSeqNum: 590,
        endSeqNum: 10_000,
        visit: (firstSeqNum) => {
          seen.push(firstSeqNum);
          return seen.length < 20;
        },
      });
      assert.deepEqual(
        seen,
        Array.from({ length: 20 }, (_, i) => 590 + i),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves only the damaged entries of a file read at once from the bucket", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tributary-cache-runs-damaged-"));
    try {
      const { files } = await countingFiles(dir);
      const fixture = makeFixture(files);
      const expected = await manyEntries(fixture);
      const locationOf = async (seqNum: number) =>
        decodeSegmentEntryValue((await fixture.kv.get(encodeSegmentEntryKey(1, seqNum)))!);
      // wal 1: one byte flipped inside the entry of seq num 300 (it fails its CRC); wal 2: cut
      // at the entry of seq num 900 (it and every entry after it are short); wal 3: missing.
      const first = (await fixture.store.get(walKey(1)))!.slice();
      first[(await locationOf(300)).offset + 2]! ^= 0x40;
      await writeFile(path.join(dir, "00000000000000000001"), first);
      await truncate(path.join(dir, "00000000000000000002"), (await locationOf(900)).offset + 1);
      await files.delete(3);
      assert.deepEqual(await fixture.read(1, 0, 10_000), expected);
      const { entryHits, entryMisses } = fixture.cache.stats;
      assert.equal(entryMisses, 1 + 300 + 600, "the damaged, the cut and the missing entries");
      assert.equal(entryHits, 599 + 300, "every other entry comes from its file");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("segment files in a directory", () => {
  it("reads by range, reports short and missing files, lists and deletes", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tributary-segment-files-"));
    try {
      const files = await openFsSegmentFiles({ dir });
      await files.write(3, encoder.encode("0123456789"));
      assert.equal(decoder.decode((await files.read(3, 2, 5))!), "23456");
      assert.equal(await files.read(3, 8, 5), undefined, "short");
      assert.equal(await files.read(4, 0, 1), undefined, "missing");
      await writeFile(path.join(dir, "not-a-segment"), "x");
      assert.deepEqual(await files.list(), [3]);
      await truncate(path.join(dir, "00000000000000000003"), 4);
      assert.equal(await files.read(3, 2, 5), undefined, "truncated");
      await files.delete(3);
      await files.delete(3);
      assert.deepEqual(await files.list(), []);
      const fixture = makeFixture(files);
      await threeSegments(fixture);
      assert.deepEqual(await fixture.read(1, 4), ["3:s1-3,s1-4", "5:s1-5"]);
      await files.clear();
      assert.deepEqual(await files.list(), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads many ranges of a file at once: any order, near and far, short and missing", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tributary-segment-ranges-"));
    try {
      const files = await openFsSegmentFiles({ dir });
      // 300 KiB whose byte i is i mod 251, so every slice is checkable.
      const bytes = Uint8Array.from({ length: 300 << 10 }, (_, i) => i % 251);
      await files.write(1, bytes);
      const ranges = [
        { offset: 200_000, length: 1_000 }, // far from the others: its own pread
        { offset: 10, length: 5 },
        { offset: 15, length: 100 }, // adjacent to the one before
        { offset: 12, length: 8 }, // overlapping
        { offset: 307_000, length: 200 }, // ends past the end of the file
        { offset: 40_000, length: 3 }, // near: one span with the first ones
      ];
      const read = await files.readRanges(1, ranges);
      assert.equal(read.length, ranges.length);
      ranges.forEach(({ offset, length }, i) => {
        if (offset + length > bytes.length) {
          assert.equal(read[i], undefined, "past the end");
        } else {
          assert.deepEqual(read[i], bytes.subarray(offset, offset + length), `range ${i}`);
        }
      });
      assert.deepEqual(await files.readRanges(1, []), []);
      assert.deepEqual(await files.readRanges(2, ranges.slice(0, 2)), [undefined, undefined]);
      await truncate(path.join(dir, "00000000000000000001"), 100_000);
      const cut = await files.readRanges(1, ranges);
      assert.deepEqual(cut[1], bytes.subarray(10, 15), "before the cut: whole");
      assert.deepEqual(cut[5], bytes.subarray(40_000, 40_003));
      assert.equal(cut[0], undefined, "past the cut");
      // The memory implementation answers the same.
      const memory = createMemorySegmentFiles();
      await memory.write(1, bytes);
      assert.deepEqual(
        (await memory.readRanges(1, ranges)).map((r) => r?.length),
        read.map((r) => r?.length),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("segment cache in the engine", () => {
  const basin = "cache-basin";

  async function openService(
    store: ObjectStore,
    cache: Awaited<ReturnType<typeof openCache>>,
  ): Promise<Service> {
    return Service.open({
      store,
      kv: cache.kv,
      segmentFiles: cache.segmentFiles,
      clock: systemClock,
      random: systemRandom,
      flushIntervalMs: 1,
    });
  }

  it("serves records from the kept segment files after a restart", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tributary-cache-restart-"));
    const store = createMemoryObjectStore();
    try {
      const first = await openCache(dir);
      const service = await openService(store, first);
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "s" });
      for (let i = 0; i < 4; i++) {
        await service.records.append(basin, "s", {
          records: [{ headers: [], body: encoder.encode(`r${i}`) }],
        });
      }
      await service.close();
      await first.kv.close();

      const second = await openCache(dir);
      const reopened = await openService(store, second);
      try {
        assert.equal(reopened.storage.stats.replayedSegments, 0, "the cache is current");
        assert.equal((await second.segmentFiles.list()).length, 4, "one file per records segment");
        const records = await reopened.records.read(basin, "s", {
          startSeqNum: 1,
          countMax: 10,
          bytesMax: 1 << 20,
        });
        assert.deepEqual(
          records.map((r) => decoder.decode(r.body)),
          ["r1", "r2", "r3"],
        );
        assert.equal(reopened.storage.stats.entryHits, 3);
        assert.equal(reopened.storage.stats.entryMisses, 0);

        // Damage on the local disk: a flipped bit in one file, another file gone. The same
        // bytes are served, from the bucket, and counted as misses.
        const [firstFile, secondFile] = (await second.segmentFiles.list()).sort((a, b) => a - b);
        const firstPath = path.join(dir, "segments", String(firstFile).padStart(20, "0"));
        const damaged = await readFile(firstPath);
        damaged[damaged.length - 6]! ^= 0x01;
        await writeFile(firstPath, damaged);
        await second.segmentFiles.delete(secondFile!);
        const again = await reopened.records.read(basin, "s", {
          startSeqNum: 0,
          countMax: 10,
          bytesMax: 1 << 20,
        });
        assert.deepEqual(
          again.map((r) => decoder.decode(r.body)),
          ["r0", "r1", "r2", "r3"],
        );
        assert.equal(reopened.storage.stats.entryMisses, 2);

        // The bucket's copy gone as well: the read fails with the retryable `storage` error.
        await store.delete([walKey(secondFile!)]);
        await assert.rejects(
          reopened.records.read(basin, "s", { startSeqNum: 0, countMax: 10, bytesMax: 1 << 20 }),
          (error: unknown) => error instanceof S2Error && error.code === "storage",
        );
      } finally {
        await reopened.close();
        await second.kv.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves durable records from memory while their cache commit is held back", async () => {
    const inner = createMemorySegmentFiles();
    let release: () => void = () => {};
    let held = 0;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const files: SegmentFiles = {
      ...inner,
      async write(walId, bytes) {
        held += 1;
        await gate;
        await inner.write(walId, bytes);
      },
    };
    const service = await Service.open({
      store: createMemoryObjectStore(),
      kv: createMemoryKvStore(),
      segmentFiles: files,
      clock: systemClock,
      random: systemRandom,
      flushIntervalMs: 1,
    });
    try {
      await service.basins.create({ name: basin });
      await service.streams.create({ basin, name: "s" });
      const acks = [];
      for (let i = 0; i < 3; i++) {
        acks.push(
          await service.records.append(basin, "s", {
            records: [
              { headers: [], body: encoder.encode(`a${i}`) },
              { headers: [], body: encoder.encode(`b${i}`) },
            ],
          }),
        );
      }
      assert.ok(held >= 1, "the first cache commit is held");
      const read = async (startSeqNum: number) =>
        (
          await service.records.read(basin, "s", { startSeqNum, countMax: 10, bytesMax: 1 << 20 })
        ).map((r) => `${r.seqNum}:${decoder.decode(r.body)}`);
      const expected = ["1:b0", "2:a1", "3:b1", "4:a2", "5:b2"];
      assert.deepEqual(await read(1), expected, "acked records are readable before the commit");
      release();
      await service.storage.cacheCommitted();
      assert.deepEqual(await read(1), expected, "and from the cache after it");
      assert.ok(service.storage.stats.entryHits >= 3);
    } finally {
      release();
      await service.close();
    }
  });
});

describe("segment cache: chunks and the bound", () => {
  /** A chunk of stream 1 holding [first, first + count) as one entry, uploaded to the store. */
  async function chunkOf(
    fixture: Fixture,
    chunkId: number,
    first: number,
    count: number,
  ): Promise<ChunkToSwitch> {
    const bytes = encodeSegment({
      walId: chunkId,
      writerEpoch: 1,
      writeId: new Uint8Array(16).fill(9),
      entries: [recordsEntry(1, first, count)],
    });
    assert.equal(await fixture.store.putIfAbsent(chunkKey(chunkId), bytes), "created");
    return { chunkId, bytes, meteredBytesBefore: [meteredOfStream1Below(first)] };
  }

  it("switches rows to a chunk, reads it, and evicts chunks before WAL segments", async () => {
    const walFiles = createMemorySegmentFiles();
    const chunkFiles = createMemorySegmentFiles();
    const fixture = makeFixture(walFiles);
    // A cache over the fixture's store and index, with chunk files and a bound.
    const bounded = new SegmentCache(fixture.kv, walFiles, fixture.store, systemClock, {
      chunkFiles,
      fileBytesMax: 1 << 20,
    });
    await threeSegments(fixture);
    const rowsOfStream1: Uint8Array[] = [];
    for await (const [key] of fixture.kv.entries(keyTypeRange(KeyType.SegmentEntry))) {
      if (decodeSegmentEntryKey(key).streamId === 1) rowsOfStream1.push(key);
    }
    const chunk = await chunkOf(fixture, 2 ** 32, 0, 6);
    await bounded.writeChunkFiles([chunk]);
    await bounded.switchToChunks({
      streamId: 1,
      replacedKeys: rowsOfStream1,
      chunks: [chunk],
      trimPoint: 0,
    });
    assert.deepEqual(await rowStarts(fixture, 1), [0], "one chunk row replaces three WAL rows");
    assert.equal(await bounded.meteredBytesBelow(1, 4), meteredOfStream1Below(4), "in the chunk");
    assert.deepEqual(await rowStarts(fixture, 2), [0], "the other stream's row is untouched");
    assert.deepEqual(await fixture.read(1, 2), ["0:s1-0,s1-1,s1-2,s1-3,s1-4,s1-5"]);
    // WAL 5 and 7 held only stream 1's rows: their references are gone, and so are their files.
    assert.deepEqual((await walFiles.list()).sort(), [6]);
    assert.deepEqual(await chunkFiles.list(), [2 ** 32]);

    // Over the bound, the chunk goes first although the WAL file is older.
    const tight = new SegmentCache(fixture.kv, walFiles, fixture.store, systemClock, {
      chunkFiles,
      fileBytesMax: (await walFiles.sizes())[0]!.bytes,
    });
    await tight.loadFileSizes();
    assert.deepEqual(await chunkFiles.list(), [], "the chunk file was evicted");
    assert.deepEqual(await walFiles.list(), [6], "the WAL file stays");
    assert.ok(tight.stats.fileBytes <= tight.stats.fileBytesMax);
    // A read of the evicted chunk downloads it back (read-ahead) and serves it.
    const reader = new SegmentCache(fixture.kv, walFiles, fixture.store, systemClock, {
      chunkFiles,
    });
    const texts: string[] = [];
    await reader.readEntries({
      streamId: 1,
      startSeqNum: 0,
      endSeqNum: 6,
      visit: (_first, records) => {
        texts.push(...records.map((record) => decoder.decode(record.body)));
        return true;
      },
    });
    assert.deepEqual(texts, ["s1-0", "s1-1", "s1-2", "s1-3", "s1-4", "s1-5"]);
    assert.equal(reader.stats.chunkDownloads, 1);
    assert.deepEqual(await chunkFiles.list(), [2 ** 32]);
  });
});

describe("segment cache: detached files (a degraded cache)", () => {
  it("writes and reads no file while detached, lowers its bound, and uses new files once attached", async () => {
    const fixture = makeFixture();
    await threeSegments(fixture);
    const { cache, files } = fixture;
    const heldBytes = cache.stats.fileBytes;
    assert.ok(heldBytes > 0);
    cache.detachFiles((bytes) => Math.floor(bytes / 2));
    assert.equal(cache.isFilesDetached, true);
    assert.equal(cache.stats.fileBytes, 0, "no file is counted while detached");
    assert.equal(cache.stats.fileBytesMax, Math.floor(heldBytes / 2), "the bound is lowered");
    assert.throws(() => cache.detachFiles((bytes) => bytes), /once per fault/);
    // Every entry comes from the bucket, the files left on disk untouched.
    const hits = cache.stats.entryHits;
    assert.deepEqual(await fixture.read(1, 0), ["0:s1-0,s1-1,s1-2", "3:s1-3,s1-4", "5:s1-5"]);
    assert.equal(cache.stats.entryHits, hits, "no entry read from a file");
    const written = cache.stats.filesWritten;
    await fixture.commit(8, [recordsEntry(1, 6, 1)]);
    assert.equal(cache.stats.filesWritten, written, "no file written");
    assert.deepEqual((await files.list()).sort(), [5, 6, 7], "nothing unlinked or added");

    const fresh = createMemorySegmentFiles();
    cache.attachFiles(fresh, createMemorySegmentFiles());
    assert.equal(cache.isFilesDetached, false);
    await fixture.commit(9, [recordsEntry(1, 7, 1)]);
    assert.deepEqual(await fresh.list(), [9], "files are written to the attached directory");
    assert.deepEqual(
      (await fixture.read(1, 6)).map((entry) => entry.split(":")[0]),
      ["6", "7"],
      "rows committed while detached read back (from the bucket) after the attach",
    );
  });
});
