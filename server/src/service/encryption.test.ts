// Goal: streams with a cipher keep S2's encryption promises (S2-API.md §3.1, §5.3, §6.7, §7.2):
// records round-trip under the client's key, a wrong key is `decryption_failed`, a missing key
// is `bad_header` before anything happens, plaintext streams ignore keys, commands stay plaintext
// and still work, metering is by plaintext size, and no plaintext reaches the object store or the
// cache. Method: a real Service on the memory object store and memory KV; the stores' bytes are
// scanned for marker strings, with plaintext streams as the positive control; the aes-256-gcm
// seq-num ceiling is exercised on a streamer whose storage stub starts near 2^32.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type EncryptionAlgorithm, systemStreamConfigDefaults } from "../core/config.js";
import { AppendConditionFailed, type ErrorCode, S2Error } from "../core/errors.js";
import { aes256GcmSeqNumMax, recordBatchBytesMax } from "../core/limits.js";
import {
  type AppendRecord,
  commandHeader,
  encodeTrimBody,
  meteredBytes,
  type SequencedRecord,
} from "../core/records.js";
import { advanceTail, emptyStreamTail, type StreamTail } from "../storage/durable-state.js";
import { createMemorySegmentFiles, type SegmentFiles } from "../storage/cache/segment-files.js";
import type { KvStore } from "../storage/kv/kv-store.js";
import { createMemoryKvStore } from "../storage/kv/memory.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import type { ObjectStore } from "../storage/object-store/object-store.js";
import type { DecodedRecord } from "../storage/segment/record-codec.js";
import type { Storage } from "../storage/storage.js";
import { Streamer } from "../streamer/streamer.js";
import { openTestService } from "../../test/support/engine.js";
import type { ReadEvent, ReadRequest } from "./read-session.js";
import type { Service } from "./service.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ciphers: readonly EncryptionAlgorithm[] = ["aegis-256", "aes-256-gcm"];
const basinOf = { "aegis-256": "enc-aegis-basin", "aes-256-gcm": "enc-gcm-basin" } as const;
const plainBasin = "enc-plain-basin";
const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff);
const otherKey = Uint8Array.from({ length: 32 }, (_, i) => (i * 11 + 5) & 0xff);

/** Segment files in memory that also keep what was written, so a test can scan every file. */
interface ScannableSegmentFiles extends SegmentFiles {
  /** The bytes of every file still present. */
  contents(): Promise<Uint8Array[]>;
}

function createScannableSegmentFiles(): ScannableSegmentFiles {
  const inner = createMemorySegmentFiles();
  const written = new Map<number, Uint8Array>();
  return {
    ...inner,
    write: (walId, bytes) => {
      written.set(walId, Buffer.concat(bytes instanceof Uint8Array ? [bytes] : [...bytes]));
      return inner.write(walId, bytes);
    },
    async contents() {
      return (await inner.list()).map((walId) => written.get(walId)!);
    },
  };
}

/** Opens a service with one basin per cipher and one plaintext basin, all auto-creating. */
async function openService(stores: { store?: ObjectStore; kv?: KvStore } = {}): Promise<{
  service: Service;
  store: ObjectStore;
  kv: KvStore;
  segmentFiles: ScannableSegmentFiles;
}> {
  const store = stores.store ?? createMemoryObjectStore();
  const kv = stores.kv ?? createMemoryKvStore();
  const segmentFiles = createScannableSegmentFiles();
  const service = await openTestService({ store, kv, segmentFiles });
  for (const [name, streamCipher] of [
    [basinOf["aegis-256"], "aegis-256"],
    [basinOf["aes-256-gcm"], "aes-256-gcm"],
    [plainBasin, null],
  ] as const) {
    await service.basins.ensure({
      name,
      config: {
        defaultStreamConfig: null,
        streamCipher,
        createStreamOnAppend: true,
        createStreamOnRead: true,
      },
    });
  }
  return { service, store, kv, segmentFiles };
}

async function withService(
  body: (
    service: Service,
    stores: { store: ObjectStore; kv: KvStore; segmentFiles: ScannableSegmentFiles },
  ) => Promise<void>,
): Promise<void> {
  const { service, store, kv, segmentFiles } = await openService();
  try {
    await body(service, { store, kv, segmentFiles });
  } finally {
    await service.close();
  }
}

function text(name: string, value: string): { name: Uint8Array; value: Uint8Array } {
  return { name: encoder.encode(name), value: encoder.encode(value) };
}

/** Records with headers (duplicates, empty values, binary bytes) and bodies (one empty). */
function sampleRecords(tag: string): AppendRecord[] {
  return [
    { headers: [text("kind", "greeting"), text("lang", "en")], body: encoder.encode(`hi ${tag}`) },
    { headers: [], body: new Uint8Array(0) },
    {
      headers: [text("dup", "1"), text("dup", "2"), text("empty", "")],
      body: Uint8Array.from([0, 255, 1, 254, 2]),
    },
    {
      headers: [{ name: Uint8Array.from([0xff, 0x00]), value: new Uint8Array(0) }],
      body: encoder.encode("x"),
    },
  ];
}

function sameRecords(actual: readonly SequencedRecord[], expected: readonly AppendRecord[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((record, i) => {
    const want = expected[i]!;
    assert.deepEqual(
      record.headers.map((h) => [[...h.name], [...h.value]]),
      want.headers.map((h) => [[...h.name], [...h.value]]),
    );
    assert.deepEqual([...record.body], [...want.body]);
  });
}

async function drain(
  service: Service,
  basin: string,
  stream: string,
  request: ReadRequest,
  encryptionKey?: Uint8Array,
): Promise<SequencedRecord[]> {
  const session = await service.records.openReadSession(basin, stream, request, {
    heartbeatDelayMs: () => 20,
    encryptionKey,
  });
  const records: SequencedRecord[] = [];
  for await (const event of session) if (event.kind === "batch") records.push(...event.records);
  return records;
}

const fromZero = (count: number): ReadRequest => ({
  start: { kind: "seqNum", seqNum: 0 },
  clamp: false,
  count,
});

async function rejectsWithCode(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

/** Every object's bytes and every cache key and value, concatenated per item. */
async function storedBytes(
  store: ObjectStore,
  kv: KvStore,
  segmentFiles: ScannableSegmentFiles,
): Promise<Buffer[]> {
  const items: Buffer[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list("", { startAfter });
    for (const object of page.objects) {
      const bytes = await store.get(object.key);
      if (bytes !== undefined) items.push(Buffer.from(bytes));
    }
    if (!page.isTruncated || page.objects.length === 0) break;
    startAfter = page.objects.at(-1)!.key;
  }
  for await (const [k, v] of kv.entries({})) {
    items.push(Buffer.from(k), Buffer.from(v));
  }
  for (const bytes of await segmentFiles.contents()) items.push(Buffer.from(bytes));
  return items;
}

function where(items: readonly Buffer[], marker: string): number {
  return items.filter((item) => item.includes(marker)).length;
}

describe("encrypted streams: round trips", () => {
  for (const cipher of ciphers) {
    it(`${cipher}: headers and bodies come back under the key (read session, read, follow)`, async () => {
      await withService(async (service) => {
        const basin = basinOf[cipher];
        const records = sampleRecords(cipher);
        const ack = await service.records.append(basin, "s", { records }, { encryptionKey: key });
        assert.deepEqual([ack.start.seqNum, ack.end.seqNum], [0, 4]);
        const read = await drain(service, basin, "s", fromZero(10), key);
        sameRecords(read, records);
        assert.deepEqual(
          read.map((r) => r.seqNum),
          [0, 1, 2, 3],
        );
        assert.equal(read[0]!.timestamp, ack.start.timestamp);
        const unary = await service.records.read(basin, "s", {
          startSeqNum: 1,
          countMax: 10,
          bytesMax: recordBatchBytesMax,
          encryptionKey: key,
        });
        sameRecords(unary, records.slice(1));

        // A live session follows new batches and decrypts them with its own key.
        const session = await service.records.openReadSession(
          basin,
          "s",
          { start: { kind: "seqNum", seqNum: 4 }, clamp: false },
          { heartbeatDelayMs: () => 20, encryptionKey: key },
        );
        const first = await session.next();
        assert.equal((first.value as ReadEvent).kind, "heartbeat");
        const live = sampleRecords("live");
        await service.records.append(basin, "s", { records: live }, { encryptionKey: key });
        for (;;) {
          const { value } = await session.next();
          const event = value as ReadEvent;
          if (event.kind === "heartbeat") continue;
          sameRecords(event.records, live);
          assert.equal(event.tail?.seqNum, 8);
          break;
        }
        await session.return(undefined);
      });
    });
  }

  it("reads by timestamp (timestamps stay in clear) and checks the tail without a key", async () => {
    await withService(async (service) => {
      const basin = basinOf["aegis-256"];
      const records: AppendRecord[] = [100, 200, 300].map((timestamp) => ({
        timestamp,
        headers: [],
        body: encoder.encode(`t${timestamp}`),
      }));
      await service.records.append(basin, "ts", { records }, { encryptionKey: key });
      const read = await drain(
        service,
        basin,
        "ts",
        { start: { kind: "timestamp", timestamp: 150 }, clamp: false, count: 5 },
        key,
      );
      assert.deepEqual(
        read.map((r) => decoder.decode(r.body)),
        ["t200", "t300"],
      );
      assert.deepEqual(await service.records.checkTail(basin, "ts"), {
        seqNum: 3,
        timestamp: 300,
      });
    });
  });

  it("survives a restart: recovery replays ciphertext, and the key still opens it", async () => {
    const { service, store } = await openService();
    const records = sampleRecords("restart");
    try {
      for (const cipher of ciphers) {
        await service.records.append(basinOf[cipher], "r", { records }, { encryptionKey: key });
      }
    } finally {
      await service.close();
    }
    const reopened = await openService({ store });
    try {
      for (const cipher of ciphers) {
        sameRecords(
          await drain(reopened.service, basinOf[cipher], "r", fromZero(10), key),
          records,
        );
      }
    } finally {
      await reopened.service.close();
    }
  });
});

describe("encrypted streams: keys", () => {
  for (const cipher of ciphers) {
    it(`${cipher}: a wrong key fails reads with decryption_failed`, async () => {
      await withService(async (service) => {
        const basin = basinOf[cipher];
        await service.records.append(
          basin,
          "s",
          { records: sampleRecords("k") },
          { encryptionKey: key },
        );
        await rejectsWithCode(
          drain(service, basin, "s", fromZero(10), otherKey),
          "decryption_failed",
        );
        await rejectsWithCode(
          service.records.read(basin, "s", {
            startSeqNum: 0,
            countMax: 10,
            bytesMax: recordBatchBytesMax,
            encryptionKey: otherKey,
          }),
          "decryption_failed",
        );
        // The right key still works: nothing was damaged.
        assert.equal((await drain(service, basin, "s", fromZero(10), key)).length, 4);
      });
    });

    it(`${cipher}: a missing key is bad_header for append and read, before anything happens`, async () => {
      await withService(async (service) => {
        const basin = basinOf[cipher];
        const message = new RegExp(`^missing encryption key for stream cipher '${cipher}'$`);
        // Auto-created by the append, which then fails: nothing is appended.
        await rejectsWithCode(
          service.records.append(basin, "s", { records: sampleRecords("m") }),
          "bad_header",
          message,
        );
        assert.deepEqual(await service.records.checkTail(basin, "s"), { seqNum: 0, timestamp: 0 });
        await rejectsWithCode(service.records.resolveForAppend(basin, "s"), "bad_header", message);
        // A read of the empty stream would be 416; the missing key is reported first.
        await rejectsWithCode(
          service.records.openReadSession(basin, "s", fromZero(1)),
          "bad_header",
          message,
        );
        await service.records.append(
          basin,
          "s",
          { records: sampleRecords("m") },
          { encryptionKey: key },
        );
        await rejectsWithCode(
          service.records.openReadSession(basin, "s", fromZero(1)),
          "bad_header",
          message,
        );
        await rejectsWithCode(
          service.records.read(basin, "s", {
            startSeqNum: 0,
            countMax: 1,
            bytesMax: recordBatchBytesMax,
          }),
          "bad_header",
        );
        // Command-only batches need the key too: the check is per stream, not per record.
        await rejectsWithCode(
          service.records.append(basin, "s", {
            records: [{ headers: [commandHeader("fence")], body: encoder.encode("t") }],
          }),
          "bad_header",
        );
        assert.equal((await service.records.checkTail(basin, "s")).seqNum, 4);
      });
    });
  }

  it("plaintext streams ignore a key, on append and on read", async () => {
    await withService(async (service) => {
      const records = sampleRecords("plain");
      await service.records.append(plainBasin, "p", { records }, { encryptionKey: key });
      sameRecords(await drain(service, plainBasin, "p", fromZero(10)), records);
      sameRecords(await drain(service, plainBasin, "p", fromZero(10), otherKey), records);
      await service.records.append(plainBasin, "p", { records });
      assert.equal((await drain(service, plainBasin, "p", fromZero(10), key)).length, 8);
    });
  });
});

describe("encrypted streams: pipelined appends sealed off the event loop", () => {
  for (const cipher of ciphers) {
    it(`${cipher}: keep their order, their acks and their contents`, async () => {
      await withService(async (service) => {
        const basin = basinOf[cipher];
        // Large batches (200 records of ~1 KiB) are sealed in a worker; small ones (one record)
        // on the loop, at once: each small one must still wait for the large one before it. A
        // fence command in between stays plaintext and takes effect in order.
        const batches: AppendRecord[][] = [];
        for (let i = 0; i < 12; i++) {
          const tag = `b${i}`;
          if (i === 7) {
            batches.push([{ headers: [commandHeader("fence")], body: encoder.encode("t1") }]);
          } else if (i % 2 === 0) {
            batches.push(
              Array.from({ length: 200 }, (_, j) => ({
                headers: [text("batch", tag)],
                body: new Uint8Array(1000).fill((i * 200 + j) & 0xff),
              })),
            );
          } else {
            batches.push([{ headers: [text("batch", tag)], body: encoder.encode(tag) }]);
          }
        }
        const acks = await Promise.all(
          batches.map((records, i) =>
            service.records.append(
              basin,
              "pipelined",
              { records, ...(i > 7 && { fencingToken: "t1" }) },
              { encryptionKey: key },
            ),
          ),
        );
        assert.ok(service.recordCryptoWorkers > 0, "large batches went to a worker");
        let next = 0;
        acks.forEach((ack, i) => {
          assert.equal(ack.start.seqNum, next, `batch ${i} starts where the one before ended`);
          next += batches[i]!.length;
          assert.equal(ack.end.seqNum, next);
        });
        const read = await drain(service, basin, "pipelined", fromZero(next), key);
        sameRecords(read, batches.flat());
      });
    });
  }
});

describe("encrypted streams: commands", () => {
  for (const cipher of ciphers) {
    it(`${cipher}: fence and trim stay plaintext and still govern the stream`, async () => {
      await withService(async (service, stores) => {
        const basin = basinOf[cipher];
        const append = (records: AppendRecord[], fencingToken?: string) =>
          service.records.append(basin, "c", { records, fencingToken }, { encryptionKey: key });
        await append(sampleRecords("c")); // 0..3
        const token = `fence-token-${cipher}`;
        await append([{ headers: [commandHeader("fence")], body: encoder.encode(token) }]); // 4
        await assert.rejects(append(sampleRecords("x"), "wrong"), AppendConditionFailed);
        await append(sampleRecords("d"), token); // 5..8
        await append([{ headers: [commandHeader("trim")], body: encodeTrimBody(2n) }], token); // 9

        const read = await drain(service, basin, "c", fromZero(100), key);
        assert.deepEqual(
          read.map((r) => r.seqNum),
          [2, 3, 4, 5, 6, 7, 8, 9],
          "records below the trim point are gone",
        );
        const fence = read.find((r) => r.seqNum === 4)!;
        assert.deepEqual(
          fence.headers.map((h) => decoder.decode(h.value)),
          ["fence"],
        );
        assert.equal(decoder.decode(fence.body), token);
        const trim = read.find((r) => r.seqNum === 9)!;
        assert.deepEqual([...trim.body], [...encodeTrimBody(2n)]);
        sameRecords(
          read.filter((r) => r.seqNum >= 5 && r.seqNum <= 8),
          sampleRecords("d"),
        );

        // The fencing token is a command's body: stored in clear (and in the stream's tail).
        await service.close();
        assert.ok(
          where(await storedBytes(stores.store, stores.kv, stores.segmentFiles), token) > 0,
        );
      });
    });
  }
});

describe("encrypted streams: metering by plaintext size (S2-API.md §6.7)", () => {
  for (const cipher of ciphers) {
    it(`${cipher}: a batch of exactly 1 MiB plaintext is accepted and read back whole`, async () => {
      await withService(async (service) => {
        const basin = basinOf[cipher];
        // One record of the maximum metered size: its envelope is larger than 1 MiB.
        const big: AppendRecord = {
          headers: [text("h", "v")],
          body: new Uint8Array(recordBatchBytesMax - 8 - 2 - 2).fill(7),
        };
        assert.equal(meteredBytes(big), recordBatchBytesMax);
        await service.records.append(basin, "big", { records: [big] }, { encryptionKey: key });
        const read = await drain(service, basin, "big", fromZero(1), key);
        sameRecords(read, [big]);
        const unary = await service.records.read(basin, "big", {
          startSeqNum: 0,
          countMax: 1,
          bytesMax: recordBatchBytesMax,
          encryptionKey: key,
        });
        sameRecords(unary, [big]);
      });
    });

    it(`${cipher}: a bytes limit counts plaintext metered sizes exactly`, async () => {
      await withService(async (service) => {
        const basin = basinOf[cipher];
        const records = Array.from({ length: 10 }, (_, i) => ({
          headers: [text("i", String(i))],
          body: new Uint8Array(100 + i),
        }));
        await service.records.append(basin, "m", { records }, { encryptionKey: key });
        const firstFour = records.slice(0, 4).reduce((sum, r) => sum + meteredBytes(r), 0);
        const exact = await drain(
          service,
          basin,
          "m",
          { start: { kind: "seqNum", seqNum: 0 }, clamp: false, bytes: firstFour },
          key,
        );
        assert.equal(exact.length, 4);
        const short = await drain(
          service,
          basin,
          "m",
          { start: { kind: "seqNum", seqNum: 0 }, clamp: false, bytes: firstFour - 1 },
          key,
        );
        assert.equal(short.length, 3);
      });
    });
  }
});

describe("encrypted streams: nothing in clear at rest", () => {
  it("finds no plaintext of an encrypted stream in any object or cache entry; finds a plaintext stream's", async () => {
    await withService(async (service, stores) => {
      const markerOf = (label: string) => `MARKER-${label}-Zq9xK2vW`;
      const withMarkers = (marker: string): AppendRecord[] => [
        {
          headers: [text(`name-${marker}`, `value-${marker}`)],
          body: encoder.encode(`body-${marker}`),
        },
        { headers: [], body: encoder.encode(marker.repeat(20)) },
      ];
      for (const cipher of ciphers) {
        const records = withMarkers(markerOf(cipher));
        for (let i = 0; i < 3; i++) {
          await service.records.append(
            basinOf[cipher],
            "secret",
            { records },
            { encryptionKey: key },
          );
        }
      }
      const plain = withMarkers(markerOf("plain"));
      await service.records.append(plainBasin, "open", { records: plain });

      // Close, so that every cache commit has happened, then scan both stores whole.
      await service.close();
      const items = await storedBytes(stores.store, stores.kv, stores.segmentFiles);
      const objectCount = (await stores.store.list("")).objects.length;
      assert.ok(
        objectCount >= 2 && items.length > objectCount,
        "scanned objects and cache entries",
      );
      for (const cipher of ciphers) {
        for (const part of ["name-", "value-", "body-", ""]) {
          assert.equal(where(items, `${part}${markerOf(cipher)}`), 0, `${cipher} ${part}`);
        }
      }
      // Positive control: the same scan finds the plaintext stream's records, in the WAL segment
      // (object store) and in the cache (segment files), in every field.
      for (const part of ["name-", "value-", "body-"]) {
        assert.ok(where(items, `${part}${markerOf("plain")}`) >= 2, part);
      }
      const files = (await stores.segmentFiles.contents()).map((bytes) => Buffer.from(bytes));
      assert.ok(where(files, markerOf("plain")) > 0, "the cache holds the plaintext stream");
      const objects: Buffer[] = [];
      for (const object of (await stores.store.list("")).objects) {
        objects.push(Buffer.from((await stores.store.get(object.key))!));
      }
      assert.ok(where(objects, markerOf("plain")) > 0, "the WAL holds the plaintext stream");
    });
  });
});

describe("aes-256-gcm seq-num ceiling (S2-API.md §5.3)", () => {
  /** Just enough storage for a streamer whose stream already holds `nextSeqNum` records. */
  function stubStorage(nextSeqNum: number): { storage: Storage; released: number[] } {
    let tail: StreamTail = { ...emptyStreamTail, nextSeqNum };
    const released: number[] = [];
    const storage = {
      state: { tailOf: () => tail },
      admit: async () => {},
      releaseAdmission: (bytes: number) => released.push(bytes),
      submitRecords: async (options: {
        firstSeqNum: number;
        records: readonly DecodedRecord[];
      }) => {
        tail = advanceTail(tail, options.firstSeqNum, options.records);
      },
    } as unknown as Storage;
    return { storage, released };
  }

  function streamerAt(cipher: EncryptionAlgorithm, nextSeqNum: number) {
    const stub = stubStorage(nextSeqNum);
    const streamer = new Streamer({
      storage: stub.storage,
      clock: {
        nowMs: () => 1_000,
        monotonicMs: () => performance.now(),
        setTimer: () => () => {},
        sleep: async () => {},
      },
      streamId: 1,
      config: systemStreamConfigDefaults,
      cipher,
    });
    return { streamer, ...stub };
  }

  const data: AppendRecord = { headers: [], body: encoder.encode("d") };
  const trim: AppendRecord = { headers: [commandHeader("trim")], body: encodeTrimBody(0n) };

  it("rejects a batch that would encrypt a record above 2^32 - 1, with no effect", async () => {
    const { streamer, released } = streamerAt("aes-256-gcm", aes256GcmSeqNumMax);
    await rejectsWithCode(
      streamer.append({ records: [data, data] }, undefined, { encryptionKey: key }),
      "invalid",
      /seq_num=`4294967296`/,
    );
    assert.equal(released.length, 1, "admission was returned");
    assert.equal(streamer.pipelinedNextSeqNum, aes256GcmSeqNumMax);
    const ack = await streamer.append({ records: [data] }, undefined, { encryptionKey: key });
    assert.equal(ack.start.seqNum, aes256GcmSeqNumMax);
    await rejectsWithCode(
      streamer.append({ records: [data] }, undefined, { encryptionKey: key }),
      "invalid",
    );
  });

  it("lets plaintext commands past the ceiling, and aegis-256 streams have none", async () => {
    const gcm = streamerAt("aes-256-gcm", aes256GcmSeqNumMax + 1);
    const ack = await gcm.streamer.append({ records: [trim] }, undefined, { encryptionKey: key });
    assert.equal(ack.start.seqNum, aes256GcmSeqNumMax + 1);
    const aegis = streamerAt("aegis-256", aes256GcmSeqNumMax);
    const ok = await aegis.streamer.append({ records: [data, data, data] }, undefined, {
      encryptionKey: key,
    });
    assert.equal(ok.end.seqNum, aes256GcmSeqNumMax + 3);
  });
});
