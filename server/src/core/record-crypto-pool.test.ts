// Goal: a batch encrypted or decrypted in a worker of the pool is the same, byte for byte and
// error for error, as the same batch done on the event loop, and the loop keeps running while a
// worker does a 1 MiB AEGIS-256 batch. Method: real worker threads (no stand-ins), a counting
// nonce source so that both paths seal identical bytes, tampered records, a 1 ms interval timer
// whose ticks are counted while batches run, a worker module that fails to load, and a child
// process that must exit with the pool still open (idle workers never keep a process alive).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { EncryptionAlgorithm } from "./config.js";
import { S2Error } from "./errors.js";
import { recordCryptoInlineRecordsMax, recordBatchBytesMax } from "./limits.js";
import type { RecordCryptoJob } from "./record-crypto-job.js";
import { loaderExecArgv, RecordCryptoPool } from "./record-crypto-pool.js";
import { decryptBatch, decryptRecord, encryptBatch, encryptRecord } from "./record-encryption.js";
import { commandHeader, encodeTrimBody, type RecordContent, type SeqNum } from "./records.js";

const ciphers: readonly EncryptionAlgorithm[] = ["aegis-256", "aes-256-gcm"];
const encoder = new TextEncoder();
const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
const streamId = 42;
const firstSeqNum = 1_000;

const pool = new RecordCryptoPool();
after(() => pool.close());

/** A nonce source that counts: two runs from a fresh one seal the same bytes. */
function countingNonces(): (nonce: Uint8Array) => void {
  let counter = 0;
  return (nonce) => {
    counter += 1;
    nonce.fill(0);
    new DataView(nonce.buffer, nonce.byteOffset).setUint32(0, counter);
  };
}

/** Deterministic bytes of any length (no CSPRNG needed for contents). */
function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 17) & 0xff;
  return out;
}

/**
 * Mixed sizes around the ciphers' 16-byte blocks, empty bodies, headers, a command record kept in
 * plaintext, and one 200 KiB record: more records and bytes than stay on the loop.
 */
function mixedBatch(): RecordContent[] {
  const sizes = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4096, 200 << 10];
  const records: RecordContent[] = [];
  for (let i = 0; i < 40; i++) {
    const headers =
      i % 3 === 0
        ? [{ name: encoder.encode(`h${i}`), value: bytesOf(i % 5, i) }]
        : i % 7 === 0
          ? [
              { name: encoder.encode("a"), value: new Uint8Array(0) },
              { name: encoder.encode("b"), value: bytesOf(3, i) },
            ]
          : [];
    records.push({ timestamp: 5_000 + i, headers, body: bytesOf(sizes[i % sizes.length]!, i) });
  }
  records[10] = { timestamp: 5_010, headers: [commandHeader("trim")], body: encodeTrimBody(3n) };
  return records;
}

function sequenced(records: readonly RecordContent[]): (RecordContent & { seqNum: SeqNum })[] {
  return records.map((record, i) => ({ ...record, seqNum: firstSeqNum + i }));
}

function sameBytes(actual: RecordContent, expected: RecordContent, what: string): void {
  assert.equal(actual.timestamp, expected.timestamp, what);
  assert.equal(actual.headers.length, expected.headers.length, what);
  actual.headers.forEach((header, i) => {
    assert.deepEqual(Buffer.from(header.name), Buffer.from(expected.headers[i]!.name), what);
    assert.deepEqual(Buffer.from(header.value), Buffer.from(expected.headers[i]!.value), what);
  });
  assert.deepEqual(Buffer.from(actual.body), Buffer.from(expected.body), what);
}

/** The rejection of `promise`, which must reject. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected a throw");
}

describe("record batches off the event loop equal the inline ones", () => {
  const records = mixedBatch();
  assert.ok(records.length > recordCryptoInlineRecordsMax, "the batch is worth a worker");

  for (const cipher of ciphers) {
    it(`${cipher}: sealed byte for byte alike, opened to the plaintext alike`, async () => {
      const position = { streamId, firstSeqNum };
      const inline = await encryptBatch(cipher, key, records, position, {
        fillNonce: countingNonces(),
      });
      const offLoop = await encryptBatch(cipher, key, records, position, {
        pool,
        fillNonce: countingNonces(),
      });
      assert.ok(pool.workerCount > 0, "the batch went to a worker");
      assert.equal(offLoop.length, records.length);
      offLoop.forEach((stored, i) => {
        sameBytes(stored, inline[i]!, `record ${i}`);
      });
      assert.equal(offLoop[10], records[10], "the command record is kept as it is");

      // Opened off the loop, on the loop in a batch, and one by one: the same records.
      const stored = sequenced(offLoop);
      const opened = await decryptBatch(cipher, key, streamId, stored, { pool });
      const openedInline = await decryptBatch(cipher, key, streamId, stored);
      opened.forEach((record, i) => {
        sameBytes(record, records[i]!, `record ${i}`);
        sameBytes(record, openedInline[i]!, `record ${i}`);
        const one = decryptRecord(cipher, key, stored[i]!, { streamId, seqNum: firstSeqNum + i });
        sameBytes(record, one, `record ${i}`);
        assert.equal(record.seqNum, firstSeqNum + i);
      });
    });

    it(`${cipher}: records sealed one by one open in a worker`, async () => {
      const stored = sequenced(
        records.map((record, i) =>
          encryptRecord(cipher, key, record, { streamId, seqNum: firstSeqNum + i }),
        ),
      );
      const opened = await decryptBatch(cipher, key, streamId, stored, { pool });
      opened.forEach((record, i) => {
        sameBytes(record, records[i]!, `record ${i}`);
      });
    });

    it(`${cipher}: a tampered record fails the same way off the loop and on it`, async () => {
      const stored = sequenced(
        await encryptBatch(cipher, key, records, { streamId, firstSeqNum }, { pool }),
      );
      const tampered: (RecordContent & { seqNum: SeqNum })[] = stored.map((record) => ({
        ...record,
        body: new Uint8Array(record.body),
      }));
      tampered[25]!.body[tampered[25]!.body.length - 20]! ^= 0x01; // a ciphertext byte
      tampered[31]!.body[0] = 9; // no envelope: would be `storage`, but comes later
      const offLoop = await rejectionOf(decryptBatch(cipher, key, streamId, tampered, { pool }));
      const inline = await rejectionOf(decryptBatch(cipher, key, streamId, tampered));
      const one = thrownBy(() =>
        decryptRecord(cipher, key, tampered[25]!, { streamId, seqNum: firstSeqNum + 25 }),
      );
      for (const error of [offLoop, inline, one]) {
        assert.ok(error instanceof S2Error, String(error));
        assert.equal(error.code, "decryption_failed");
        assert.equal(error.message, (one as S2Error).message);
      }
      assert.match((offLoop as S2Error).message, /seq_num=`1025`/);

      // The envelope error, once it comes first; and a wrong key.
      tampered[25] = stored[25]!;
      const corrupt = await rejectionOf(decryptBatch(cipher, key, streamId, tampered, { pool }));
      assert.ok(corrupt instanceof S2Error && corrupt.code === "storage", String(corrupt));
      assert.match(corrupt.message, /seq_num=`1031`/);
      const wrongKey = new Uint8Array(32).fill(9);
      const wrong = await rejectionOf(decryptBatch(cipher, wrongKey, streamId, stored, { pool }));
      assert.ok(wrong instanceof S2Error && wrong.code === "decryption_failed", String(wrong));
      assert.match(wrong.message, /seq_num=`1000`/);
    });
  }

  it("leaves the caller's buffers as they were (the job works on its own copy)", async () => {
    const before = records.map((record) => Buffer.from(record.body));
    const keyBefore = Buffer.from(key);
    const stored = sequenced(
      await encryptBatch("aegis-256", key, records, { streamId, firstSeqNum }, { pool }),
    );
    const storedBefore = stored.map((record) => Buffer.from(record.body));
    await decryptBatch("aegis-256", key, streamId, stored, { pool });
    records.forEach((record, i) => {
      assert.deepEqual(Buffer.from(record.body), before[i]);
    });
    stored.forEach((record, i) => {
      assert.deepEqual(Buffer.from(record.body), storedBefore[i]);
    });
    assert.deepEqual(Buffer.from(key), keyBefore);
  });
});

describe("the event loop runs while a worker encrypts", () => {
  /** 1 MiB of metered bytes in 1,000 records of ~1 KiB: the largest batch, in both limits. */
  const batch: RecordContent[] = Array.from({ length: 1000 }, (_, i) => ({
    timestamp: i,
    headers: [],
    body: bytesOf(recordBatchBytesMax / 1000 - 8, i),
  }));

  /** Ticks of a 1 ms interval timer while four max batches are sealed one after the other. */
  async function ticksWhileSealing(options: { pool?: RecordCryptoPool }): Promise<number> {
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 1);
    try {
      for (let i = 0; i < 4; i++) {
        await encryptBatch("aegis-256", key, batch, { streamId, firstSeqNum: i * 1000 }, options);
      }
    } finally {
      clearInterval(timer);
    }
    return ticks;
  }

  it("keeps firing a 1 ms timer during 1 MiB AEGIS-256 batches in the pool, and not on the loop", async () => {
    await ticksWhileSealing({ pool }); // starts the workers and warms both paths
    // On the loop, each batch runs to its end before anything else: no tick at all.
    assert.equal(await ticksWhileSealing({}), 0);
    // In the pool, the loop is free but for packing (~1 ms a batch): ~100 ms of AEGIS-256 work
    // leaves room for dozens of ticks even on a loaded machine; a starved loop would get none.
    const ticks = await ticksWhileSealing({ pool });
    assert.ok(ticks >= 5, `the timer fired ${ticks} times during the work`);
  });
});

describe("pool lifecycle", () => {
  it("closes: workers end, and later batches run on the loop", async () => {
    const own = new RecordCryptoPool({ workersMax: 1 });
    const records = mixedBatch();
    const position = { streamId, firstSeqNum };
    await encryptBatch("aegis-256", key, records, position, { pool: own });
    assert.equal(own.workerCount, 1);
    await own.close();
    assert.equal(own.workerCount, 0);
    const stored = sequenced(
      await encryptBatch("aegis-256", key, records, position, { pool: own }),
    );
    assert.equal(own.workerCount, 0, "a closed pool starts no worker");
    const opened = await decryptBatch("aegis-256", key, streamId, stored, { pool: own });
    opened.forEach((record, i) => {
      sameBytes(record, records[i]!, `record ${i}`);
    });
  });

  it("redoes a batch on the loop when a worker fails, and stops using workers that never worked", async () => {
    // A real worker whose module throws as it loads: the job it was given is lost with it.
    const lines: string[] = [];
    const failing = new RecordCryptoPool({
      workerUrl: new URL("data:text/javascript,throw new Error('no worker today')"),
      log: (line) => lines.push(line),
    });
    const records = mixedBatch();
    const position = { streamId, firstSeqNum };
    const sealed = await encryptBatch("aegis-256", key, records, position, { pool: failing });
    const opened = await decryptBatch("aegis-256", key, streamId, sequenced(sealed), {
      pool: failing,
    });
    opened.forEach((record, i) => {
      sameBytes(record, records[i]!, `record ${i}`);
    });
    assert.equal(failing.workerCount, 0);
    assert.equal(lines.length, 1, "the operator is told once");
    assert.match(lines[0]!, /record crypto workers unusable.*no worker today/);
    const job: RecordCryptoJob = {
      op: "seal",
      cipher: "aegis-256",
      key: new Uint8Array(32),
      envelopes: new Uint8Array(6 + 32 + 10 + 16),
      spans: new Uint32Array([6, 38, 10]),
      associatedData: new Uint8Array(30),
    };
    assert.equal(failing.run(job), undefined, "an unusable pool refuses jobs");
    await failing.close();
  });

  it("gives workers the parent's module loader options and nothing else", () => {
    const execArgv = [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      "1",
      "--require=a",
      "-r",
      "b",
    ];
    assert.deepEqual(loaderExecArgv(execArgv), ["--import", "tsx", "--require=a", "-r", "b"]);
    assert.deepEqual(loaderExecArgv(["--max-old-space-size=100", "--import"]), []);
  });

  it("lets a process exit with its pool still open (idle workers are unreferenced)", () => {
    const poolModule = fileURLToPath(new URL("./record-crypto-pool.ts", import.meta.url));
    const encryptionModule = fileURLToPath(new URL("./record-encryption.ts", import.meta.url));
    const script = `
      const { RecordCryptoPool } = await import(${JSON.stringify(poolModule)});
      const { encryptBatch } = await import(${JSON.stringify(encryptionModule)});
      const pool = new RecordCryptoPool();
      const records = Array.from({ length: 100 }, (_, i) => ({ timestamp: i, headers: [], body: new Uint8Array(1000) }));
      await encryptBatch("aegis-256", new Uint8Array(32), records, { streamId: 1, firstSeqNum: 0 }, { pool });
      console.log("workers", pool.workerCount);
    `;
    const child = spawnSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(child.error, undefined, "the process exited by itself");
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /workers 1/);
  });
});
