/**
 * Issue 12's "the event loop is never blocked by one request for more than 10 ms", for record
 * encryption: what a 1 MiB batch costs with each cipher, on the loop and in the record crypto
 * pool, and the longest stall of the event loop meanwhile (the largest gap between ticks of a 1 ms
 * interval timer), first for `encryptBatch`/`decryptBatch` alone, then for a 1 MiB append and its
 * unary read through a Service (memory store) with the pool (default) and without it
 * (`recordCryptoWorkers: 0`, the behaviour before the pool), next to a plaintext stream (what the
 * rest of the path costs the loop). Medians of `--rounds` after warm-up.
 *
 *   node --import tsx bench/encryption-loop-bench.ts [--rounds 15]
 */
import { parseArgs } from "node:util";
import type { EncryptionAlgorithm } from "../server/src/core/config.js";
import { recordBatchBytesMax } from "../server/src/core/limits.js";
import { RecordCryptoPool } from "../server/src/core/record-crypto-pool.js";
import {
  type BatchCryptoOptions,
  decryptBatch,
  encryptBatch,
} from "../server/src/core/record-encryption.js";
import type { RecordContent } from "../server/src/core/records.js";
import type { Service } from "../server/src/service/service.js";
import { createMemoryObjectStore } from "../server/src/storage/object-store/memory.js";
import { openTestService } from "../server/test/support/engine.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "15" } } });
const rounds = Number(values.rounds);
const warmUpRounds = 5;
const ciphers: readonly EncryptionAlgorithm[] = ["aegis-256", "aes-256-gcm"];
const key = Uint8Array.from({ length: 32 }, (_, i) => i);

/** 1 MiB of metered bytes as `count` records (8 bytes of each are the metered overhead). */
function batchOf(count: number): RecordContent[] {
  return Array.from({ length: count }, (_, i) => ({
    timestamp: i,
    headers: [],
    body: new Uint8Array(recordBatchBytesMax / count - 8).fill(i & 0xff),
  }));
}

/** Runs `work` with a 1 ms interval timer: its wall time and the longest gap between ticks. */
async function timed(work: () => Promise<unknown>): Promise<{ ms: number; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 1);
  const start = performance.now();
  await work();
  const end = performance.now();
  clearInterval(timer);
  stallMs = Math.max(stallMs, end - last);
  return { ms: end - start, stallMs };
}

async function medians(work: () => Promise<unknown>): Promise<{ ms: number; stallMs: number }> {
  const results: { ms: number; stallMs: number }[] = [];
  for (let i = 0; i < warmUpRounds + rounds; i++) {
    const result = await timed(work);
    if (i >= warmUpRounds) results.push(result);
    // Let the loop settle (timers, GC) between rounds.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
  return {
    ms: median(results.map((r) => r.ms)),
    stallMs: median(results.map((r) => r.stallMs)),
  };
}

const format = (figure: { ms: number; stallMs: number }) =>
  `${figure.ms.toFixed(1)} ms, loop stall ${figure.stallMs.toFixed(1)} ms`;

console.log(`encryption-loop-bench: medians of ${rounds} rounds, 1 MiB batches`);
const pool = new RecordCryptoPool();
for (const cipher of ciphers) {
  for (const count of [1000, 1]) {
    const records = batchOf(count);
    const position = { streamId: 1, firstSeqNum: 0 };
    for (const [where, options] of [
      ["loop", {}],
      ["pool", { pool }],
    ] as const satisfies readonly (readonly [string, BatchCryptoOptions])[]) {
      const sealed = (await encryptBatch(cipher, key, records, position)).map((record, i) => ({
        ...record,
        seqNum: i,
      }));
      const encrypt = await medians(() => encryptBatch(cipher, key, records, position, options));
      const decrypt = await medians(() => decryptBatch(cipher, key, 1, sealed, options));
      console.log(
        `${cipher.padEnd(11)} ${String(count).padStart(4)} records, ${where}: encrypt ${format(encrypt)}; decrypt ${format(decrypt)}`,
      );
    }
  }
}
await pool.close();

/** A 1 MiB append of 1,000 records and its unary read, through a Service. */
async function serviceFigures(
  workers: number | undefined,
  streamCipher: EncryptionAlgorithm | null = "aegis-256",
): Promise<string> {
  const service: Service = await openTestService({
    store: createMemoryObjectStore(),
    ...(workers !== undefined && { recordCryptoWorkers: workers }),
  });
  try {
    await service.basins.ensure({
      name: "bench-enc-basin",
      config: {
        defaultStreamConfig: null,
        streamCipher,
        createStreamOnAppend: true,
        createStreamOnRead: true,
      },
    });
    const records = batchOf(1000).map(({ headers, body }) => ({ headers, body }));
    let startSeqNum = 0;
    const append = await medians(async () => {
      const ack = await service.records.append(
        "bench-enc-basin",
        "s",
        { records },
        { encryptionKey: key },
      );
      startSeqNum = ack.start.seqNum;
    });
    const read = await medians(() =>
      service.records.read("bench-enc-basin", "s", {
        startSeqNum,
        countMax: 1000,
        bytesMax: recordBatchBytesMax,
        encryptionKey: key,
      }),
    );
    return `append ${format(append)}; unary read ${format(read)}`;
  } finally {
    await service.close();
  }
}

console.log(`service, plaintext stream (the rest of the path): ${await serviceFigures(0, null)}`);
console.log(`service, aegis-256, on the loop (recordCryptoWorkers 0): ${await serviceFigures(0)}`);
console.log(`service, aegis-256, record crypto pool (default): ${await serviceFigures(undefined)}`);
