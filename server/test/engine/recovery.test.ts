// Goal: recovery converges on what the bucket holds whatever the LevelDB cache is: current, stale,
// missing, corrupt, from another bucket, or left by a writer whose last appends never became durable.
// Method: Services on a memory or local-directory object store with a real LevelDB cache in a temp
// directory, restarted on each kind of cache, compared with a fresh Service that rebuilds
// everything from the bucket alone, and the cache's own keys and segment files inspected after
// recovery.
import assert from "node:assert/strict";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { systemClock } from "../../src/core/clock.js";
import { AppendConditionFailed, S2Error } from "../../src/core/errors.js";
import { recordBatchCountMax } from "../../src/core/limits.js";
import { createSeededRandom } from "../../src/core/random.js";
import { commandHeader, encodeTrimBody, type SequencedRecord } from "../../src/core/records.js";
import type { Service } from "../../src/service/service.js";
import type { SegmentFiles } from "../../src/storage/cache/segment-files.js";
import {
  cacheMarkerKey,
  decodeJsonValue,
  decodeSegmentEntryKey,
  decodeSegmentEntryValue,
  decodeSegmentRefsKey,
  decodeSegmentRefsValue,
  encodeJsonValue,
  encodeStreamKey,
  KeyType,
  keyTypeRange,
} from "../../src/storage/kv/keys.js";
import type { KvStore } from "../../src/storage/kv/kv-store.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";
import { createFaultyObjectStore } from "../../src/storage/object-store/faulty.js";
import { createLocalFsObjectStore } from "../../src/storage/object-store/local-fs.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { openCache } from "../../src/storage/open-stores.js";
import { ensureTestBasin, openTestService, testBasin } from "../support/engine.js";
import {
  AppendLog,
  assertServesLogs,
  assertWalDense,
  streamIdOf,
  waitUntil,
  walIdsOf,
  widOf,
  within,
} from "../support/fault-workload.js";

const streams = ["s-0", "s-1", "s-2"];
const waitMs = 20_000;
const encoder = new TextEncoder();

type StoreKind = "memory" | "local-fs";

/** A Service with its LevelDB cache; closed once, by `closeBoth` or by the fixture's cleanup. */
interface Opened {
  readonly service: Service;
  readonly kv: KvStore;
  readonly segmentFiles: SegmentFiles;
  readonly wiped: boolean;
  isClosed: boolean;
}

/** A temp directory with the caches (and, for local-fs, the bucket) of one test. */
interface Fixture {
  readonly store: ObjectStore;
  cacheDir(name: string): string;
  /** Opens a Service on `store` with the LevelDB cache at `dir` (wiped by `openCache` if corrupt). */
  open(dir: string, store?: ObjectStore): Promise<Opened>;
  /** Closes whatever a failed test left open, then removes the directory. */
  cleanup(): Promise<void>;
}

async function createFixture(kind: StoreKind): Promise<Fixture> {
  const root = await mkdtemp(path.join(tmpdir(), "tributary-recovery-"));
  return makeFixture(kind, root, "objects");
}

function makeFixture(kind: StoreKind, root: string, bucketName: string): Fixture {
  const store =
    kind === "memory"
      ? createMemoryObjectStore()
      : createLocalFsObjectStore({ root: path.join(root, bucketName) });
  const opened: Opened[] = [];
  return {
    store,
    cacheDir: (name) => path.join(root, `cache-${name}`),
    async open(dir, on = store) {
      const { kv, segmentFiles, wiped } = await openCache(dir);
      try {
        const service = await within(
          openTestService({ store: on, kv, segmentFiles }),
          waitMs,
          `open ${dir}`,
        );
        const entry: Opened = { service, kv, segmentFiles, wiped, isClosed: false };
        opened.push(entry);
        return entry;
      } catch (error) {
        await kv.close();
        throw error;
      }
    },
    async cleanup() {
      for (const entry of opened) {
        if (!entry.isClosed) await closeBoth(entry).catch(() => {});
      }
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function closeBoth(opened: Opened): Promise<void> {
  if (opened.isClosed) return;
  opened.isClosed = true;
  await within(opened.service.close(), waitMs, "service closes");
  await opened.kv.close();
}

/** Appends `rounds` rounds of one batch per stream, each round awaited (about a segment each). */
async function appendRounds(
  service: Service,
  log: AppendLog,
  rounds: number,
  names: readonly string[] = streams,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const stream of names) log.submit(service, stream, 1 + (round % 3));
    await log.settle(waitMs, `${log.tag} round ${round}`);
  }
  for (const batch of log.all()) assert.ok(batch.ack, `${log.tag}: every append acked`);
}

async function createStreams(service: Service, names: readonly string[] = streams): Promise<void> {
  await ensureTestBasin(service);
  for (const name of names) await service.streams.create({ basin: testBasin, name });
}

async function readAllOf(service: Service, basin: string, stream: string) {
  const all: SequencedRecord[] = [];
  for (;;) {
    const batch = await service.records.read(basin, stream, {
      startSeqNum: all.length === 0 ? 0 : all.at(-1)!.seqNum + 1,
      countMax: recordBatchCountMax,
      bytesMax: 1 << 20,
    });
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** Everything a client can observe of the service, plus the stream ids and next stream id. */
async function imageOf(service: Service): Promise<unknown> {
  const basins = [];
  for (const basin of service.basins.list({}).items) {
    const streamImages = [];
    for (const info of service.streams.list(basin.name, {}).items) {
      const streamId = service.storage.state.streams.get(
        `${basin.name}\u0000${info.name}`,
      )?.streamId;
      if (info.deletedAtMs !== null) {
        streamImages.push({ ...info, streamId });
        continue;
      }
      const records = await readAllOf(service, basin.name, info.name);
      streamImages.push({
        ...info,
        streamId,
        config: service.streams.getConfig(basin.name, info.name),
        tail: await service.records.checkTail(basin.name, info.name),
        records: records.map((record) => ({
          seqNum: record.seqNum,
          timestamp: record.timestamp,
          headers: record.headers.map((h) => [hex(h.name), hex(h.value)]),
          body: hex(record.body),
        })),
      });
    }
    basins.push({ ...basin, config: service.basins.getConfig(basin.name), streams: streamImages });
  }
  return { basins, nextStreamId: service.storage.state.nextStreamId };
}

/** The image of the bucket alone: a Service on a fresh memory cache (it adds a fence segment). */
async function bucketImage(store: ObjectStore): Promise<unknown> {
  const truth = await within(
    openTestService({ store, kv: createMemoryKvStore() }),
    waitMs,
    "truth",
  );
  try {
    return await imageOf(truth);
  } finally {
    await truth.close();
  }
}

/**
 * The cache holds exactly the durable records: per live stream, index rows that are contiguous,
 * cover [trim point, tail) and nothing wholly below the trim point or past the tail (a reader sent
 * to the cache below a tail finds its record); no row of a removed stream; reference counts that
 * match the rows; a segment file for every count and no other file.
 */
async function assertCacheHoldsDurableRecords(opened: Opened, context: string): Promise<void> {
  const { kv, service, segmentFiles } = opened;
  // Cache commits run off the ack path: an acked append may not be committed yet.
  await service.storage.cacheCommitted();
  const state = service.storage.state;
  const rowsByStream = new Map<number, { firstSeqNum: number; endSeqNum: number }[]>();
  const refsByWalId = new Map<string, number>();
  for await (const [key, value] of kv.entries(keyTypeRange(KeyType.SegmentEntry))) {
    const { streamId, firstSeqNum } = decodeSegmentEntryKey(key);
    const location = decodeSegmentEntryValue(value);
    assert.ok(state.streamsById.has(streamId), `${context}: cached entry of removed ${streamId}`);
    const rows = rowsByStream.get(streamId) ?? [];
    rows.push({ firstSeqNum, endSeqNum: firstSeqNum + location.recordCount });
    rowsByStream.set(streamId, rows);
    const refKey = `${location.source}:${location.objectId}`;
    refsByWalId.set(refKey, (refsByWalId.get(refKey) ?? 0) + 1);
  }
  for await (const [key] of kv.entries(keyTypeRange(KeyType.Record))) {
    assert.fail(`${context}: a record staged in LevelDB: ${Buffer.from(key).toString("hex")}`);
  }
  for (const streamId of state.streamsById.keys()) {
    const tail = state.tailOf(streamId);
    const rows = rowsByStream.get(streamId) ?? [];
    if (tail.nextSeqNum === tail.trimPoint) {
      assert.deepEqual(rows, [], `${context}: nothing cached for an empty stream ${streamId}`);
      continue;
    }
    assert.ok(rows.length > 0, `${context}: stream ${streamId} has cached entries`);
    assert.ok(
      rows[0]!.firstSeqNum <= tail.trimPoint && rows[0]!.endSeqNum > tail.trimPoint,
      `${context}: stream ${streamId}'s first entry covers its trim point ${tail.trimPoint}`,
    );
    for (let i = 1; i < rows.length; i++) {
      assert.equal(rows[i]!.firstSeqNum, rows[i - 1]!.endSeqNum, `${context}: contiguous`);
    }
    assert.equal(rows.at(-1)!.endSeqNum, tail.nextSeqNum, `${context}: entries end at the tail`);
  }
  const refs = new Map<string, number>();
  for (const type of [KeyType.SegmentRefs, KeyType.ChunkRefs]) {
    for await (const [key, value] of kv.entries(keyTypeRange(type))) {
      const { source, objectId } = decodeSegmentRefsKey(key);
      refs.set(`${source}:${objectId}`, decodeSegmentRefsValue(value));
    }
  }
  assert.deepEqual(
    [...refs].sort((a, b) => a[0].localeCompare(b[0])),
    [...refsByWalId].sort((a, b) => a[0].localeCompare(b[0])),
    `${context}: reference counts match the index rows`,
  );
  assert.deepEqual(
    (await segmentFiles.list()).sort((a, b) => a - b),
    [...refs.keys()]
      .filter((key) => key.startsWith("wal:"))
      .map((key) => Number(key.slice(4)))
      .sort((a, b) => a - b),
    `${context}: one segment file per referenced segment, no orphan`,
  );
}

/** Creates the streams and appends a few rounds (several segments) with the cache at `cache`. */
async function writeHistory(fixture: Fixture, cache: string, seed: number): Promise<AppendLog[]> {
  const opened = await fixture.open(cache);
  const log = new AppendLog(`h${seed}`, createSeededRandom(seed));
  try {
    await createStreams(opened.service);
    await appendRounds(opened.service, log, 4);
  } finally {
    await closeBoth(opened);
  }
  return [log];
}

/** Checks a recovered service against the logs, the cache keys and the bucket's own image. */
/**
 * The process that later "dies" (is abandoned, not closed): a service on a faulty wrapper of the
 * fixture's store with its cache at `cacheDir("a")`, the log of its durable history (seeded
 * `seed + 1`), and the fatal errors it reports.
 */
async function openAbandonable(fixture: Fixture, seed: number) {
  const store = createFaultyObjectStore(fixture.store, {
    random: createSeededRandom(seed),
    clock: systemClock,
  });
  const fatal: unknown[] = [];
  const cache = await openCache(fixture.cacheDir("a"));
  const service = await openTestService({
    store,
    kv: cache.kv,
    segmentFiles: cache.segmentFiles,
    onFatal: (error) => fatal.push(error),
  });
  const durableLog = new AppendLog("durable", createSeededRandom(seed + 1));
  return { store, fatal, kv: cache.kv, service, durableLog };
}

async function assertConverged(
  fixture: Fixture,
  opened: Opened,
  logs: readonly AppendLog[],
  context: string,
): Promise<void> {
  await assertServesLogs({ service: opened.service, logs, streams, context, allAcked: true });
  await assertCacheHoldsDurableRecords(opened, context);
  const image = await imageOf(opened.service);
  await closeBoth(opened);
  assert.deepEqual(image, await bucketImage(fixture.store), `${context}: same as the bucket`);
  await assertWalDense(fixture.store, context);
}

for (const kind of ["memory", "local-fs"] as const) {
  describe(`recovery on the ${kind} store with a LevelDB cache`, () => {
    it("a current cache replays nothing", async () => {
      const fixture = await createFixture(kind);
      try {
        const logs = await writeHistory(fixture, fixture.cacheDir("a"), 1);
        const opened = await fixture.open(fixture.cacheDir("a"));
        const { replayedSegments, cacheResetReason } = opened.service.storage.stats;
        assert.equal(opened.wiped, false);
        assert.equal(cacheResetReason, undefined, "the cache is kept");
        assert.equal(replayedSegments, 0, "nothing to replay");
        await assertConverged(fixture, opened, logs, "current cache");
      } finally {
        await fixture.cleanup();
      }
    });

    it("a stale cache replays the missing suffix", async () => {
      const fixture = await createFixture(kind);
      try {
        const logs = await writeHistory(fixture, fixture.cacheDir("a"), 2);
        // Time T: the cache as it was, set aside.
        await cp(fixture.cacheDir("a"), fixture.cacheDir("stale"), { recursive: true });
        const segmentsAtT = (await walIdsOf(fixture.store)).length;
        const later = await fixture.open(fixture.cacheDir("a"));
        const laterLog = new AppendLog("later", createSeededRandom(22));
        try {
          await later.service.streams.create({ basin: testBasin, name: "s-new" });
          await appendRounds(later.service, laterLog, 3, [...streams, "s-new"]);
        } finally {
          await closeBoth(later);
        }
        const segmentsNow = (await walIdsOf(fixture.store)).length;

        const opened = await fixture.open(fixture.cacheDir("stale"));
        const { replayedSegments, cacheResetReason } = opened.service.storage.stats;
        assert.equal(cacheResetReason, undefined, "a stale cache of this bucket is kept");
        assert.equal(replayedSegments, segmentsNow - segmentsAtT, "exactly the missing suffix");
        await assertServesLogs({
          service: opened.service,
          logs: [laterLog],
          streams: ["s-new"],
          context: "stale cache, new stream",
          allAcked: true,
        });
        await assertConverged(fixture, opened, [...logs, laterLog], "stale cache");
      } finally {
        await fixture.cleanup();
      }
    });

    it("a missing cache replays everything", async () => {
      const fixture = await createFixture(kind);
      try {
        const logs = await writeHistory(fixture, fixture.cacheDir("a"), 3);
        const segments = (await walIdsOf(fixture.store)).length;
        const opened = await fixture.open(fixture.cacheDir("fresh"));
        assert.equal(opened.service.storage.stats.cacheResetReason, undefined);
        assert.equal(opened.service.storage.stats.replayedSegments, segments, "every segment");
        await assertConverged(fixture, opened, logs, "missing cache");
      } finally {
        await fixture.cleanup();
      }
    });

    it("a corrupt cache (garbage in CURRENT) is wiped and rebuilt", async () => {
      const fixture = await createFixture(kind);
      try {
        const logs = await writeHistory(fixture, fixture.cacheDir("a"), 4);
        const segments = (await walIdsOf(fixture.store)).length;
        await writeFile(path.join(fixture.cacheDir("a"), "CURRENT"), "\u0000garbage");
        const opened = await fixture.open(fixture.cacheDir("a"));
        assert.equal(opened.wiped, true, "openCache wiped the cache");
        assert.equal(opened.service.storage.stats.replayedSegments, segments, "every segment");
        await assertConverged(fixture, opened, logs, "corrupt cache");
      } finally {
        await fixture.cleanup();
      }
    });

    it("a cache whose metadata does not parse is rebuilt", async () => {
      const fixture = await createFixture(kind);
      try {
        const logs = await writeHistory(fixture, fixture.cacheDir("a"), 5);
        const { kv } = await openCache(fixture.cacheDir("a"));
        // A stream's metadata that is not JSON: what a flipped bit looks like.
        const key = encodeStreamKey(testBasin, "s-0");
        await kv.write([{ type: "put", key, value: encoder.encode("{not json") }]);
        await kv.close();
        const opened = await fixture.open(fixture.cacheDir("a"));
        assert.match(String(opened.service.storage.stats.cacheResetReason), /unreadable/);
        await assertConverged(fixture, opened, logs, "unparsable cache");
      } finally {
        await fixture.cleanup();
      }
    });

    it("a cache of the previous layout (records staged in LevelDB) is rebuilt", async () => {
      const fixture = await createFixture(kind);
      try {
        const logs = await writeHistory(fixture, fixture.cacheDir("a"), 25);
        const { kv } = await openCache(fixture.cacheDir("a"));
        // What a layout-1 cache holds: a marker without `layout`, and a staged record row.
        const marker = decodeJsonValue((await kv.get(cacheMarkerKey))!) as Record<string, unknown>;
        delete marker["layout"];
        await kv.write([
          { type: "put", key: cacheMarkerKey, value: encodeJsonValue(marker) },
          {
            type: "put",
            key: new Uint8Array(17).fill(0).fill(KeyType.Record, 0, 1),
            value: encoder.encode("old"),
          },
        ]);
        await kv.close();
        const opened = await fixture.open(fixture.cacheDir("a"));
        assert.match(String(opened.service.storage.stats.cacheResetReason), /another layout/);
        await assertConverged(fixture, opened, logs, "previous layout");
      } finally {
        await fixture.cleanup();
      }
    });

    for (const other of ["shorter", "longer"] as const) {
      it(`a cache of another bucket (${other} history) is reset`, async () => {
        const fixture = await createFixture(kind);
        const root = await mkdtemp(path.join(tmpdir(), "tributary-recovery-other-"));
        const otherFixture = makeFixture(kind, root, "other-objects");
        try {
          // The cache's bucket: the same stream names, one stream only it has, and its own bytes.
          const opened0 = await fixture.open(fixture.cacheDir("a"));
          const firstLog = new AppendLog("first", createSeededRandom(6));
          try {
            await createStreams(opened0.service, [...streams, "only-first"]);
            await appendRounds(opened0.service, firstLog, 4, [...streams, "only-first"]);
          } finally {
            await closeBoth(opened0);
          }
          // The other bucket: streams created in another order (other ids), other records.
          const otherLog = new AppendLog("other", createSeededRandom(7));
          const writer = await openTestService({ store: otherFixture.store });
          try {
            await createStreams(writer, [...streams].reverse());
            await appendRounds(writer, otherLog, other === "shorter" ? 1 : 12);
          } finally {
            await writer.close();
          }
          const opened = await fixture.open(fixture.cacheDir("a"), otherFixture.store);
          const reason = opened.service.storage.stats.cacheResetReason;
          assert.match(
            String(reason),
            other === "shorter" ? /missing segment/ : /another history/,
            "the cache is recognized as another bucket's",
          );
          assert.equal(
            opened.service.streams.list(testBasin, {}).items.some((s) => s.name === "only-first"),
            false,
            "nothing of the other bucket shows",
          );
          await assertConverged(otherFixture, opened, [otherLog], `another bucket (${other})`);
        } finally {
          await fixture.cleanup();
          await otherFixture.cleanup();
        }
      });
    }

    it("appends never durable leave nothing in the cache, and their seq nums are reused", async () => {
      const fixture = await createFixture(kind);
      const {
        store,
        fatal,
        kv: kv1,
        service: abandoned,
        durableLog,
      } = await openAbandonable(fixture, 8);
      try {
        await createStreams(abandoned);
        await appendRounds(abandoned, durableLog, 2);
        const tails = new Map(
          streams.map((stream) => [
            stream,
            abandoned.storage.state.tailOf(streamIdOf(abandoned, stream)),
          ]),
        );

        // The store stops answering: appends are sequenced and held in memory, never durable.
        store.setStalled(true);
        const stagedLog = new AppendLog("staged", createSeededRandom(10)); // never durable
        for (const stream of streams) {
          stagedLog.submit(abandoned, stream, 3);
          stagedLog.submit(abandoned, stream, 2);
        }
        const putAttemptsBefore = abandoned.storage.stats.putAttempts;
        await waitUntil(
          () => abandoned.storage.stats.putAttempts > putAttemptsBefore,
          waitMs,
          "the appends are being uploaded",
        );
        assert.ok(
          stagedLog.all().every((batch) => batch.ack === undefined && batch.error === undefined),
        );
        // The process dies: the Service is abandoned (not closed), its cache handle released,
        // once the cache commits of what was durable are written (they run off the ack path).
        await abandoned.storage.cacheCommitted();
        await kv1.close();

        const reopened = await fixture.open(fixture.cacheDir("a"));
        const { service } = reopened;
        assert.equal(service.storage.stats.cacheResetReason, undefined, "the cache is kept");
        assert.equal(service.storage.stats.replayedSegments, 0, "nothing new in the bucket");
        for (const stream of streams) {
          const durable = tails.get(stream)!;
          assert.deepEqual(
            service.storage.state.tailOf(streamIdOf(service, stream)),
            durable,
            `${stream}: the tail is the durable one`,
          );
          assert.equal(
            (await service.records.checkTail(testBasin, stream)).seqNum,
            durable.nextSeqNum,
          );
        }
        await assertServesLogs({
          service,
          logs: [durableLog],
          streams,
          context: "after the crash",
          allAcked: true,
        });
        await assertCacheHoldsDurableRecords(reopened, "after the crash");

        // New appends take the staged records' seq nums, with their own content.
        const newLog = new AppendLog("new", createSeededRandom(11));
        for (const stream of streams) newLog.submit(service, stream, 4);
        await newLog.settle(waitMs, "new appends");
        for (const batch of newLog.all()) {
          assert.equal(batch.ack?.start.seqNum, tails.get(batch.stream)!.nextSeqNum);
        }
        await assertServesLogs({
          service,
          logs: [durableLog, newLog],
          streams,
          context: "new appends",
        });

        // The old process's upload finally goes through: its id is taken, so it is fenced and
        // its appends fail; nothing of it becomes visible.
        store.setStalled(false);
        await waitUntil(
          () => abandoned.storage.health === "fenced",
          waitMs,
          "the zombie is fenced",
        );
        await stagedLog.settle(waitMs, "staged appends fail");
        for (const batch of stagedLog.all()) {
          assert.equal(batch.ack, undefined, "a staged append is never acked");
          assert.ok(batch.error instanceof S2Error && batch.error.code === "unavailable");
        }
        assert.deepEqual(fatal, [], "the abandoned service never wrote to its closed cache");
        await assertServesLogs({
          service,
          logs: [durableLog, newLog, stagedLog],
          streams,
          context: "after the zombie",
        });
        for (const stream of streams) {
          const records = await readAllOf(service, testBasin, stream);
          assert.ok(
            records.every((record) => !String(widOf(record)).startsWith("staged/")),
            `${stream}: no staged record is readable`,
          );
        }
        await assertConverged(fixture, reopened, [durableLog, newLog], "staged records");
      } finally {
        store.setStalled(false);
        await within(abandoned.close(), waitMs, "the abandoned service closes");
        await fixture.cleanup();
      }
    });

    it("segments that landed past a PUT that never did are dead: never served, after any restart", async () => {
      const fixture = await createFixture(kind);
      const { store, kv: kv1, service: abandoned, durableLog } = await openAbandonable(fixture, 21);
      let holeKey: string | undefined;
      let isHoleFailing = true;
      try {
        await createStreams(abandoned);
        await appendRounds(abandoned, durableLog, 2);
        // From now on the first WAL PUT never lands (until disarmed); the window goes on past it
        // (docs/design/storage.md "The PUT window").
        const landed: string[] = [];
        store.setHooks({ afterPutApplied: (key) => void landed.push(key) });
        store.setFaults({
          decide: ({ op, key }) => {
            if (op !== "putIfAbsent" || !key.startsWith("wal/")) return undefined;
            holeKey ??= key;
            return key === holeKey && isHoleFailing ? "failBeforeApply" : undefined;
          },
        });
        // Each round is ~390 KiB: more than walPipelinedFlushBytesMin, so a segment of it starts
        // while the hole's PUT is still being retried.
        const deadLog = new AppendLog("dead", createSeededRandom(22));
        for (let round = 0; round < 3; round++) {
          for (const stream of streams)
            deadLog.submit(abandoned, stream, 8, { bodyBytesMax: 32 << 10 });
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
        await waitUntil(
          () => landed.some((key) => holeKey !== undefined && key > holeKey),
          waitMs,
          "a segment past the hole lands",
        );
        assert.ok(
          deadLog.all().every((batch) => batch.ack === undefined),
          "nothing past the hole is acked",
        );
        // The process dies.
        await abandoned.storage.cacheCommitted();
        await kv1.close();

        const check = async (
          service: Service,
          logs: readonly AppendLog[],
          context: string,
        ): Promise<void> => {
          await assertServesLogs({ service, logs, streams, context, allAcked: true });
          for (const stream of streams) {
            const records = await readAllOf(service, testBasin, stream);
            assert.ok(
              records.every((record) => !String(widOf(record)).startsWith("dead/")),
              `${context}: ${stream}: no record of a dead segment is readable`,
            );
          }
        };
        // With the cache kept: replayed up to the hole, fenced in it, the rest tombstoned.
        const kept = await fixture.open(fixture.cacheDir("a"));
        await check(kept.service, [durableLog], "cache kept");
        const newLog = new AppendLog("new", createSeededRandom(23));
        for (const stream of streams) newLog.submit(kept.service, stream, 3);
        await newLog.settle(waitMs, "appends after the restart");
        await closeBoth(kept);
        // With the cache wiped: the dead segments are read, and skipped by their epoch.
        const wiped = await fixture.open(fixture.cacheDir("b"));
        assert.ok(wiped.service.storage.stats.deadSegments > 0, "dead segments skipped");
        await check(wiped.service, [durableLog, newLog], "cache wiped");
        await assertConverged(fixture, wiped, [durableLog, newLog], "dead segments");

        // The old process's hole PUT finally answers: the id is the new writer's fence, so
        // everything at or past it is dead, and nothing of it is ever acked.
        isHoleFailing = false;
        await deadLog.settle(waitMs, "the dead appends fail");
        for (const batch of deadLog.all()) {
          assert.equal(batch.ack, undefined, "a dead append is never acked");
          assert.ok(
            batch.error instanceof S2Error &&
              ["unavailable", "append_outcome_unknown"].includes(batch.error.code),
            `${batch.error}`,
          );
        }
      } finally {
        isHoleFailing = false;
        await within(abandoned.close(), waitMs, "the abandoned service closes");
        await fixture.cleanup();
      }
    });

    it("a segment that landed but was never acked is durable after the restart", async (t) => {
      const fixture = await createFixture(kind);
      const {
        store,
        fatal,
        kv: kv1,
        service: abandoned,
        durableLog,
      } = await openAbandonable(fixture, 13);
      let releasePut: () => void = () => {};
      try {
        await createStreams(abandoned);
        await appendRounds(abandoned, durableLog, 2);
        const tails = new Map(
          streams.map((stream) => [
            stream,
            abandoned.storage.state.tailOf(streamIdOf(abandoned, stream)).nextSeqNum,
          ]),
        );

        // The next PUT reaches the bucket, but its answer never comes back: the process dies
        // with the segment durable and nothing acked.
        let landed = 0;
        const held = new Promise<void>((resolve) => {
          releasePut = resolve;
        });
        store.setHooks({
          afterPutApplied: async () => {
            landed += 1;
            await held;
          },
        });
        const unackedLog = new AppendLog("unacked", createSeededRandom(15));
        for (const stream of streams) unackedLog.submit(abandoned, stream, 3);
        await waitUntil(() => landed > 0, waitMs, "the segment lands");
        assert.ok(unackedLog.all().every((batch) => batch.ack === undefined));
        await abandoned.storage.cacheCommitted();
        await kv1.close();

        const reopened = await fixture.open(fixture.cacheDir("a"));
        const { service } = reopened;
        assert.equal(service.storage.stats.replayedSegments, 1, "the landed segment is replayed");
        for (const stream of streams) {
          assert.equal(
            (await service.records.checkTail(testBasin, stream)).seqNum,
            tails.get(stream)! + 3,
            `${stream}: the unacked records are durable`,
          );
        }
        // Unacked records are allowed to be there; here they all are, whole, with their bytes.
        const served = await assertServesLogs({
          service,
          logs: [durableLog, unackedLog],
          streams,
          context: "after the crash",
        });
        for (const stream of streams) {
          const wids = served
            .get(stream)!
            .slice(tails.get(stream)!)
            .map((r) => widOf(r));
          assert.deepEqual(
            wids,
            [0, 1, 2].map((i) => `unacked/${stream}/0/${i}`),
          );
        }

        // The old process's answer finally arrives: it acks what the new one serves, at the same
        // seq nums, and is fenced at its next upload or manifest poll.
        releasePut();
        await unackedLog.settle(waitMs, "the old acks arrive");
        for (const batch of unackedLog.all()) {
          assert.equal(batch.ack?.start.seqNum, tails.get(batch.stream), "acked where it landed");
        }
        await waitUntil(
          () => abandoned.storage.health === "fenced",
          waitMs,
          "the old one is fenced",
        );
        // Its cache commit of that segment hit the closed cache: the fatal path, as it should.
        t.diagnostic(`cache failures of the abandoned service: ${fatal.length}`);
        await assertConverged(fixture, reopened, [durableLog, unackedLog], "landed unacked");
      } finally {
        releasePut();
        await within(abandoned.close(), waitMs, "the abandoned service closes");
        await fixture.cleanup();
      }
    });

    it("deletions and trims stay applied with a current, a stale and a missing cache", async () => {
      const fixture = await createFixture(kind);
      const doomedBasin = "doomed-basin";
      try {
        const first = await fixture.open(fixture.cacheDir("a"));
        const log = new AppendLog("d", createSeededRandom(12));
        try {
          await createStreams(first.service, ["keep", "gone"]);
          await first.service.basins.create({ name: doomedBasin });
          await first.service.streams.create({ basin: doomedBasin, name: "d-0" });
          await appendRounds(first.service, log, 3, ["keep", "gone"]);
          await first.service.records.append(doomedBasin, "d-0", {
            records: [{ headers: [], body: encoder.encode("doomed") }],
          });
        } finally {
          await closeBoth(first);
        }
        // The stale cache knows the stream, the basin and the untrimmed records.
        await cp(fixture.cacheDir("a"), fixture.cacheDir("stale"), { recursive: true });

        const second = await fixture.open(fixture.cacheDir("a"));
        let nextStreamId: number;
        let keepTail: number;
        try {
          const { service } = second;
          const keepLength = (await readAllOf(service, testBasin, "keep")).length;
          assert.ok(keepLength > 5);
          await service.records.append(testBasin, "keep", {
            records: [
              { headers: [commandHeader("trim")], body: encodeTrimBody(4n) },
              { headers: [commandHeader("fence")], body: encoder.encode("token-1") },
            ],
          });
          await service.streams.delete(testBasin, "gone");
          await service.basins.delete(doomedBasin);
          await waitUntil(
            () =>
              service.streams.list(testBasin, {}).items.every((s) => s.name !== "gone") &&
              service.basins.list({}).items.every((b) => b.name !== doomedBasin),
            waitMs,
            "the stream and the basin are removed",
          );
          nextStreamId = service.storage.state.nextStreamId;
          keepTail = (await service.records.checkTail(testBasin, "keep")).seqNum;
          assert.equal(keepTail, keepLength + 2);
        } finally {
          await closeBoth(second);
        }

        const variants = [
          { name: "current", dir: fixture.cacheDir("a") },
          { name: "stale", dir: fixture.cacheDir("stale") },
          { name: "missing", dir: fixture.cacheDir("fresh") },
        ];
        const images: unknown[] = [];
        for (const variant of variants) {
          const context = `${variant.name} cache`;
          const opened = await fixture.open(variant.dir);
          const { service } = opened;
          try {
            if (variant.name === "current") {
              assert.equal(service.storage.stats.replayedSegments, 0, `${context}: no replay`);
            } else {
              assert.ok(service.storage.stats.replayedSegments > 0, `${context}: replays`);
            }
            assert.deepEqual(
              service.basins.list({}).items.map((b) => b.name),
              [testBasin],
              `${context}: the deleted basin stays deleted`,
            );
            assert.throws(
              () => service.basins.getConfig(doomedBasin),
              (error: unknown) => error instanceof S2Error && error.code === "basin_not_found",
            );
            assert.deepEqual(
              service.streams.list(testBasin, {}).items.map((s) => s.name),
              ["keep"],
              `${context}: the deleted stream stays deleted`,
            );
            await assert.rejects(
              service.records.read(testBasin, "gone", {
                startSeqNum: 0,
                countMax: 1,
                bytesMax: 1 << 20,
              }),
              (error: unknown) => error instanceof S2Error && error.code === "stream_not_found",
            );
            const keep = await readAllOf(service, testBasin, "keep");
            assert.equal(keep[0]?.seqNum, 4, `${context}: the trim stays applied`);
            assert.equal(keep.at(-1)?.seqNum, keepTail - 1);
            assert.equal((await service.records.checkTail(testBasin, "keep")).seqNum, keepTail);
            // The fence command's token stays in force.
            await assert.rejects(
              service.records.append(testBasin, "keep", {
                records: [{ headers: [], body: encoder.encode("x") }],
                fencingToken: "wrong",
              }),
              (error: unknown) => error instanceof AppendConditionFailed,
            );
            assert.equal(
              service.storage.state.nextStreamId,
              nextStreamId,
              `${context}: stream ids are never reused`,
            );
            await assertCacheHoldsDurableRecords(opened, context);
            images.push(await imageOf(service));
          } finally {
            await closeBoth(opened);
          }
        }
        const truth = await bucketImage(fixture.store);
        for (const [i, image] of images.entries()) {
          assert.deepEqual(image, truth, `${variants[i]!.name} cache: same as the bucket`);
        }

        // Names freed by removal are reusable, with new ids and nothing of the old records.
        const last = await fixture.open(fixture.cacheDir("a"));
        try {
          const { service } = last;
          await service.streams.create({ basin: testBasin, name: "gone" });
          await service.basins.create({ name: doomedBasin });
          await service.streams.create({ basin: doomedBasin, name: "d-0" });
          assert.ok(streamIdOf(service, "gone") >= nextStreamId, "a new id for the new stream");
          assert.deepEqual(await readAllOf(service, testBasin, "gone"), []);
          assert.deepEqual(await readAllOf(service, doomedBasin, "d-0"), []);
          await service.records.append(testBasin, "keep", {
            records: [{ headers: [], body: encoder.encode("fenced in") }],
            fencingToken: "token-1",
          });
          await assertCacheHoldsDurableRecords(last, "after re-creation");
        } finally {
          await closeBoth(last);
        }
      } finally {
        await fixture.cleanup();
      }
    });
  });
}
