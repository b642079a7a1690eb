// Goal: two engines on one bucket: the newer one fences the older; the older never acknowledges
// again, and its in-flight appends fail with a retryable error. Method: two (or three) Services
// in-process on one bucket (S3 on moto through separate clients, and a shared memory store), each
// with its own cache; appends of self-identifying records are checked against what the newer
// writer and a later fresh writer serve, over several timings per case.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { errorCodeInfo, S2Error } from "../../src/core/errors.js";
import { createSeededRandom } from "../../src/core/random.js";
import type { Service } from "../../src/service/service.js";
import { createMemoryKvStore } from "../../src/storage/kv/memory.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { createS3ObjectStore } from "../../src/storage/object-store/s3.js";
import { walPrefix } from "../../src/storage/object-keys.js";
import { FencedError } from "../../src/storage/wal/flusher.js";
import { appendText, ensureTestBasin, openTestService, testBasin } from "../support/engine.js";
import {
  AppendLog,
  assertServesLogs,
  assertWalDense,
  runProducers,
  waitUntil,
  within,
} from "../support/fault-workload.js";
import { createTestBucket, s3TestClientConfig, s3TestEndpoint } from "../support/moto.js";

const seed = Number(process.env["TRIBUTARY_FAULT_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
const rounds = process.env["TRIBUTARY_SOAK"] === "1" ? 10 : 3;
const waitMs = 20_000;
const streams = ["s-0", "s-1"];

/** One bucket; `connect` gives a new client on it, as a second server process would have. */
interface Bucket {
  connect(): ObjectStore;
  cleanup(): Promise<void>;
}

interface Backend {
  readonly name: string;
  createBucket(): Promise<Bucket>;
}

const backends: readonly Backend[] = [
  {
    name: "memory",
    async createBucket() {
      const store = createMemoryObjectStore();
      return { connect: () => store, cleanup: () => store.close() };
    },
  },
  {
    name: "s3 (moto)",
    async createBucket() {
      const endpoint = await s3TestEndpoint();
      const bucket = await createTestBucket(endpoint);
      const config = s3TestClientConfig(endpoint);
      const clients: ObjectStore[] = [];
      return {
        connect() {
          const client = createS3ObjectStore({
            bucket,
            endpoint,
            region: config.region,
            forcePathStyle: config.forcePathStyle,
            credentials: config.credentials,
          });
          clients.push(client);
          return client;
        },
        async cleanup() {
          for (const client of clients) await client.close();
        },
      };
    },
  },
];

/** A store whose WAL puts wait `delayMs` before they reach `inner`; reports when one starts. */
function withSlowWalPuts(inner: ObjectStore): ObjectStore & {
  delayMs: number;
  onWalPutStart: ((key: string) => void) | undefined;
} {
  const store = {
    delayMs: 0,
    onWalPutStart: undefined as ((key: string) => void) | undefined,
    get: (key: string, range?: { start: number; end: number }) => inner.get(key, range),
    list: inner.list.bind(inner),
    delete: (keys: readonly string[]) => inner.delete(keys),
    close: () => inner.close(),
    async putIfAbsent(key: string, bytes: Uint8Array) {
      if (key.startsWith(walPrefix)) {
        store.onWalPutStart?.(key);
        if (store.delayMs > 0) await sleep(store.delayMs);
      }
      return inner.putIfAbsent(key, bytes);
    },
  };
  return store;
}

/** Asserts that `error` is the retryable `unavailable` a fenced writer answers with. */
function assertFencedRejection(error: unknown, what: string): void {
  assert.ok(error instanceof S2Error, `${what}: an S2Error, got ${String(error)}`);
  assert.equal(error.code, "unavailable", `${what}: code`);
  assert.equal(errorCodeInfo[error.code].retryable, true, `${what}: retryable`);
}

async function rejectionOf(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await within(promise, waitMs, what);
  } catch (error) {
    return error;
  }
  assert.fail(`${what}: expected a rejection`);
}

/** Opens the test basin and streams on a new writer. */
async function createStreams(service: Service): Promise<void> {
  await ensureTestBasin(service);
  for (const name of streams) await service.streams.create({ basin: testBasin, name });
}

/** Tails of the test streams as `service` sees them. */
async function tailsOf(service: Service): Promise<Map<string, number>> {
  const tails = new Map<string, number>();
  for (const stream of streams) {
    tails.set(stream, (await service.records.checkTail(testBasin, stream)).seqNum);
  }
  return tails;
}

/** Opens a third writer on a fresh client and cache, checks it serves `logs`, and closes it. */
async function assertFreshWriterServes(
  bucket: Bucket,
  logs: readonly AppendLog[],
  context: string,
): Promise<void> {
  const store = bucket.connect();
  await assertWalDense(store, context);
  const fresh = await within(openTestService({ store }), waitMs, `${context}: third writer opens`);
  try {
    await assertServesLogs({ service: fresh, logs, streams, context: `${context} (third writer)` });
  } finally {
    await fresh.close();
  }
}

for (const backend of backends) {
  describe(`fencing on ${backend.name} (seed ${seed})`, () => {
    for (let round = 0; round < rounds; round++) {
      it(`(a) a newer writer sees every ack of the older, which then fails retryably (round ${round})`, async () => {
        const context = `${backend.name} (a) round=${round} seed=${seed}`;
        const bucket = await backend.createBucket();
        const fencedErrors: FencedError[] = [];
        // Round 0 leaves polling to the test's length, so the WAL claim is what fences A.
        const a = await openTestService({
          store: bucket.connect(),
          manifestPollIntervalMs: round === 0 ? 60_000 : 20 * round,
          onFenced: (error) => fencedErrors.push(error),
        });
        let b: Service | undefined;
        try {
          await createStreams(a);
          const logA = new AppendLog("a", createSeededRandom(seed + round));
          // Some appends awaited one by one, some pipelined, then idle for a round-dependent while.
          for (let i = 0; i < 3 + round; i++) {
            const batch = logA.submit(a, streams[i % 2]!, 1 + i);
            await within(batch.settled, waitMs, `${context}: A append`);
          }
          for (let i = 0; i < 10; i++) logA.submit(a, streams[i % 2]!, 2);
          await logA.settle(waitMs, `${context}: A pipelined`);
          await sleep(round * 15);

          b = await within(
            openTestService({ store: bucket.connect(), manifestPollIntervalMs: 60_000 }),
            waitMs,
            `${context}: B opens`,
          );
          assert.equal(b.storage.health, "ready", `${context}: B is ready`);
          assert.ok(b.storage.writerEpoch > a.storage.writerEpoch, `${context}: B is newer`);
          await assertServesLogs({ service: b, logs: [logA], streams, context, allAcked: true });

          const afterFence = logA.submit(a, streams[0]!, 1);
          await within(afterFence.settled, waitMs, `${context}: A's append after B settles`);
          assert.equal(afterFence.ack, undefined, `${context}: A acks nothing after B opened`);
          assertFencedRejection(afterFence.error, `${context}: A's append after B`);
          assert.equal(a.storage.health, "fenced", `${context}: A reports fenced`);
          assert.equal(fencedErrors.length, 1, `${context}: onFenced called once`);
          assert.ok(fencedErrors[0] instanceof FencedError, `${context}: with a FencedError`);
          // Everything later fails at once: appends and control-plane changes alike.
          assertFencedRejection(
            await rejectionOf(appendText(a, streams[1]!, ["late"]), `${context}: A later`),
            `${context}: A's later append`,
          );
          assertFencedRejection(
            await rejectionOf(
              a.streams.create({ basin: testBasin, name: "after-fence" }),
              `${context}: A creates a stream`,
            ),
            `${context}: A's stream create`,
          );

          const logB = new AppendLog("b", createSeededRandom(seed + 100 + round));
          for (const stream of streams) logB.submit(b, stream, 3);
          await logB.settle(waitMs, `${context}: B appends`);
          for (const batch of logB.all()) assert.ok(batch.ack, `${context}: B's append acked`);
          await b.close();
          b = undefined;
          await assertFreshWriterServes(bucket, [logA, logB], context);
        } finally {
          await b?.close();
          await a.close();
          await bucket.cleanup();
        }
      });

      it(`(b) an idle older writer learns of the newer one by polling manifests (round ${round})`, async () => {
        const context = `${backend.name} (b) round=${round} seed=${seed}`;
        const bucket = await backend.createBucket();
        let fencedCalls = 0;
        const a = await openTestService({
          store: bucket.connect(),
          manifestPollIntervalMs: 10 + 15 * round,
          onFenced: () => {
            fencedCalls += 1;
          },
        });
        let b: Service | undefined;
        try {
          await createStreams(a);
          const logA = new AppendLog("a", createSeededRandom(seed + round));
          for (const stream of streams) logA.submit(a, stream, 2);
          await logA.settle(waitMs, `${context}: A appends`);
          await sleep(round * 20);
          const putsBefore = a.storage.stats.putAttempts;

          b = await within(
            openTestService({ store: bucket.connect() }),
            waitMs,
            `${context}: B opens`,
          );
          await waitUntil(
            () => a.storage.health === "fenced",
            waitMs,
            `${context}: idle A reports fenced`,
          );
          assert.equal(fencedCalls, 1, `${context}: onFenced called once`);
          assert.equal(a.storage.stats.putAttempts, putsBefore, `${context}: A did not write`);
          assertFencedRejection(
            await rejectionOf(appendText(a, streams[0]!, ["x"]), `${context}: A appends`),
            `${context}: A's append once fenced`,
          );
          assert.equal(b.storage.health, "ready", `${context}: B stays ready`);
          await assertServesLogs({ service: b, logs: [logA], streams, context, allAcked: true });
          // B is not disturbed by A's polling or A's failed append.
          await within(appendText(b, streams[0]!, ["from b"]), waitMs, `${context}: B appends`);
        } finally {
          await b?.close();
          await a.close();
          await bucket.cleanup();
        }
      });

      it(`(c) a zombie writer mid-upload never acks what the newer writer lacks (round ${round})`, async (t) => {
        // Even rounds: B's fence lands while A's upload is delayed, so A's upload finds the id
        // taken. Odd rounds: B's own WAL puts are slow too, so A's upload lands between B's
        // listing and B's fence: B replays it, and A acks it, correctly.
        const isBSlow = round % 2 === 1;
        const offsetMs = isBSlow ? [100, 150, 60][round % 3]! : [120, 20, 250, 200][round % 4]!;
        const context = `${backend.name} (c) round=${round} seed=${seed} b_slow=${isBSlow} offset_ms=${offsetMs}`;
        const bucket = await backend.createBucket();
        const aStore = withSlowWalPuts(bucket.connect());
        let fencedCalls = 0;
        const a = await openTestService({
          store: aStore,
          onFenced: () => {
            fencedCalls += 1;
          },
        });
        let b: Service | undefined;
        const logA = new AppendLog("a", createSeededRandom(seed + round));
        try {
          await createStreams(a);
          for (const stream of streams) logA.submit(a, stream, 2);
          await logA.settle(waitMs, `${context}: A's first appends`);

          const putDelayMs = 300;
          aStore.delayMs = putDelayMs;
          let putStarted: () => void = () => {};
          const firstSlowPut = new Promise<void>((resolve) => {
            putStarted = resolve;
          });
          aStore.onWalPutStart = () => putStarted();
          let isFenced = false;
          let isBOpening = false;
          let acksAfterBStarted = 0;
          const producers = runProducers({
            service: a,
            log: logA,
            streams,
            durationMs: 8_000,
            inflightPerStream: 2,
            random: createSeededRandom(seed ^ round),
            shouldStop: () => isFenced,
            onAck: () => {
              if (isBOpening) acksAfterBStarted += 1;
            },
          });
          await within(firstSlowPut, waitMs, `${context}: A starts a slow upload`);
          await sleep(offsetMs);
          const bStore = withSlowWalPuts(bucket.connect());
          bStore.delayMs = isBSlow ? putDelayMs : 0;
          isBOpening = true;
          b = await within(
            openTestService({ store: bStore, manifestPollIntervalMs: 60_000 }),
            waitMs,
            `${context}: B opens`,
          );
          bStore.delayMs = 0;
          const bTails = await tailsOf(b);
          await waitUntil(() => a.storage.health === "fenced", waitMs, `${context}: A is fenced`);
          isFenced = true;
          await within(producers, waitMs, `${context}: A's producers stop`);
          await logA.settle(waitMs, `${context}: A's appends settle`);

          assert.equal(fencedCalls, 1, `${context}: onFenced called once`);
          for (const batch of logA.all()) {
            const what = `${context}: A ${batch.stream} batch ${batch.index}`;
            if (batch.error !== undefined) assertFencedRejection(batch.error, what);
            if (batch.ack === undefined) continue;
            assert.ok(
              batch.ack.end.seqNum <= bTails.get(batch.stream)!,
              `${what} acked [${batch.ack.start.seqNum}, ${batch.ack.end.seqNum}) beyond B's ` +
                `tail at open ${bTails.get(batch.stream)}`,
            );
          }
          t.diagnostic(`${context}: A acked ${acksAfterBStarted} batch(es) after B began opening`);
          if (isBSlow) {
            assert.ok(acksAfterBStarted > 0, `${context}: A's upload landed during B's open`);
          } else {
            assert.ok(
              logA.all().some((batch) => batch.error !== undefined),
              `${context}: A's upload found its id taken and failed its appends`,
            );
          }
          await assertServesLogs({ service: b, logs: [logA], streams, context });

          const logB = new AppendLog("b", createSeededRandom(seed + 100 + round));
          for (const stream of streams) logB.submit(b, stream, 2);
          await logB.settle(waitMs, `${context}: B appends`);
          for (const batch of logB.all()) {
            assert.ok(batch.ack, `${context}: B's append acked`);
            assert.equal(
              batch.ack.start.seqNum,
              bTails.get(batch.stream),
              `${context}: B continues at its tail`,
            );
          }
          await b.close();
          b = undefined;
          await assertFreshWriterServes(bucket, [logA, logB], context);
        } finally {
          await b?.close();
          await a.close();
          await bucket.cleanup();
        }
      });

      it(`(d) of two writers opened together exactly one stays ready (round ${round})`, async (t) => {
        // Timings by round: both at once; writer 1 a little behind and writer 0's WAL puts slow
        // (the older writer finds the newer one's fence: its open fails); writer 1 behind with
        // slow WAL puts (the newer one replays the older one's fence: both open, one fenced).
        const variant = round % 3;
        const startDelayMs = [0, 5, 15][variant]!;
        const slowWriter = [undefined, 0, 1][variant];
        const context = `${backend.name} (d) round=${round} seed=${seed} variant=${variant}`;
        const bucket = await backend.createBucket();
        const fenced = [0, 0];
        const open = async (i: number): Promise<Service> => {
          if (i === 1) await sleep(startDelayMs);
          const store = withSlowWalPuts(bucket.connect());
          if (i === slowWriter) store.delayMs = 150;
          return openTestService({
            store,
            kv: createMemoryKvStore(),
            manifestPollIntervalMs: 10,
            onFenced: () => {
              fenced[i]! += 1;
            },
          });
        };
        const results = await within(
          Promise.allSettled([open(0), open(1)]),
          waitMs,
          `${context}: opens settle`,
        );
        const opened = results.flatMap((result) =>
          result.status === "fulfilled" ? [result.value] : [],
        );
        try {
          for (const result of results) {
            if (result.status === "rejected") {
              assert.ok(
                result.reason instanceof FencedError,
                `${context}: a failed open is fenced, got ${String(result.reason)}`,
              );
            }
          }
          assert.ok(opened.length >= 1, `${context}: at least one writer opened`);
          t.diagnostic(
            `${context}: ${opened.length === 1 ? "the older failed to open" : "both opened"}`,
          );
          await waitUntil(
            () => opened.filter((s) => s.storage.health === "ready").length <= 1,
            waitMs,
            `${context}: at most one writer stays ready`,
          );
          const ready = opened.filter((s) => s.storage.health === "ready");
          assert.equal(ready.length, 1, `${context}: exactly one writer is ready`);
          const winner = ready[0]!;
          for (const service of opened) {
            if (service === winner) continue;
            assert.equal(service.storage.health, "fenced", `${context}: the other is fenced`);
            assert.ok(
              service.storage.writerEpoch < winner.storage.writerEpoch,
              `${context}: the older epoch lost`,
            );
          }
          assert.equal(
            fenced.reduce((x, y) => x + y, 0),
            opened.length - 1,
            `${context}: onFenced called for the loser only`,
          );
          await createStreams(winner);
          const log = new AppendLog("w", createSeededRandom(seed + round));
          for (const stream of streams) log.submit(winner, stream, 2);
          await log.settle(waitMs, `${context}: winner appends`);
          for (const batch of log.all()) assert.ok(batch.ack, `${context}: winner's append acked`);
          for (const service of opened) {
            if (service === winner) continue;
            assertFencedRejection(
              await rejectionOf(
                service.basins.create({ name: "other-basin" }),
                `${context}: loser writes`,
              ),
              `${context}: loser's write`,
            );
          }
          await winner.close();
          opened.splice(opened.indexOf(winner), 1);
          await assertFreshWriterServes(bucket, [log], context);
        } finally {
          for (const service of opened) await service.close();
          await bucket.cleanup();
        }
      });
    }
  });
}
