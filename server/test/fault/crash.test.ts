// Goal: whenever the server process dies (random moments, mid-recovery, each named point of a
// flush or a cache commit) and whatever happens to its cache (kept, deleted, corrupt), every acked record stays
// readable with identical bytes at its seq num, seq nums stay dense from 0, batches are
// all-or-nothing, and nothing once readable disappears. Method: crash-child.ts runs the engine on
// a local directory or S3 (moto) appending to 20 streams and is SIGKILLed round after round; each
// restart's image of every stream, then a fresh in-process Service, is checked against every ack,
// tail and image printed before.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { after, describe, it, type TestContext } from "node:test";
import { systemClock } from "../../src/core/clock.js";
import { createSeededRandom, type Random, systemRandom } from "../../src/core/random.js";
import type { SequencedRecord } from "../../src/core/records.js";
import { Service } from "../../src/service/service.js";
import { createLocalFsObjectStore } from "../../src/storage/object-store/local-fs.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { createS3ObjectStore } from "../../src/storage/object-store/s3.js";
import { openCache } from "../../src/storage/open-stores.js";
import {
  type ChildLine,
  crashStreamName,
  hashRecords,
  imageOfStream,
  makeBatch,
  type StreamImage,
  summarizeStream,
} from "../support/crash-records.js";
import { createTestBucket, s3TestClientConfig, s3TestEndpoint } from "../support/moto.js";

const isSoak = process.env["TRIBUTARY_SOAK"] === "1";
/** `TRIBUTARY_CRASH_SEED=N` replays a run's choices (delays, crash counts, batch sizes). */
const seed = Number(process.env["TRIBUTARY_CRASH_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
const childScript = fileURLToPath(new URL("./crash-child.ts", import.meta.url));
const streamCount = 20;
const streams = Array.from({ length: streamCount }, (_, i) => crashStreamName(i));

/**
 * Generous bounds: the file runs beside other test files on 2 cores, and recovery (replay plus
 * reading every stream back) grows with the history, which soak runs make long.
 */
const timeoutScale = isSoak ? 6 : 1;
const readyTimeoutMs = 30_000 * timeoutScale;
const selfKillTimeoutMs = 30_000 * timeoutScale;
const exitAfterKillTimeoutMs = 10_000;
const verifyTimeoutMs = 60_000 * timeoutScale;
const stderrKeptBytes = 16_384;

type CacheAction = "keep" | "delete" | "corrupt";
type FlusherPoint =
  | "flush.before-build"
  | "flush.after-put"
  | "cache.after-file-write"
  /** Between the fence and the tombstones of the PUT window (once per start). */
  | "recovery.after-fence";
type PutPoint = "put.before-apply" | "put.after-apply";
type Kill =
  /** SIGKILL from the parent, `delayMs` after the child is ready. */
  | { readonly kind: "random"; readonly delayMs: number }
  /** SIGKILL from the parent, `delayMs` after the child opened its cache (mid-recovery). */
  | { readonly kind: "recovery"; readonly delayMs: number }
  /** The child kills itself once recovery downloaded the `at`th WAL segment (mid-replay). */
  | { readonly kind: "replay"; readonly at: number }
  /** The child kills itself at the `at`th hit of a named point. */
  | { readonly kind: "point"; readonly point: FlusherPoint | PutPoint; readonly at: number };

interface Round {
  readonly kill: Kill;
  readonly cacheAfter: CacheAction;
}

interface StoreSetup {
  readonly label: string;
  readonly childArgs: readonly string[];
  readonly flushIntervalMs: number;
  open(): ObjectStore;
}

type AckLine = Extract<ChildLine, { type: "ack" }>;

/** Everything the children printed so far, which later images must honour. */
class Knowledge {
  /** Acks by stream, then by batch id. */
  readonly acks = new Map<string, Map<string, AckLine>>();
  /** The highest durable tail printed per stream. */
  readonly tails = new Map<string, number>();
  /** Records read below a tail: seq num → the batch and index found there. */
  readonly readable = new Map<string, Map<number, { batchId: string; index: number }>>();
  /** The latest image per stream (each one was checked to extend the one before). */
  readonly images = new Map<string, StreamImage>();
  ackCount = 0;

  addAck(ack: AckLine): void {
    let byBatch = this.acks.get(ack.stream);
    if (byBatch === undefined) this.acks.set(ack.stream, (byBatch = new Map()));
    assert.equal(byBatch.has(ack.batchId), false, `batch ${ack.batchId} acked twice`);
    byBatch.set(ack.batchId, ack);
    this.ackCount++;
  }

  addTail(tail: Extract<ChildLine, { type: "tail" }>): void {
    const { stream, seqNum, last } = tail;
    this.tails.set(stream, Math.max(seqNum, this.tails.get(stream) ?? 0));
    if (last === null) return;
    let bySeqNum = this.readable.get(stream);
    if (bySeqNum === undefined) this.readable.set(stream, (bySeqNum = new Map()));
    bySeqNum.set(seqNum - 1, last);
  }

  /** Violations of the four properties by `image`, against everything known before it. */
  check(image: StreamImage): string[] {
    const { stream } = image;
    const problems = [...image.errors];
    const byId = new Map(image.batches.map((batch) => [batch[0], batch]));
    for (const ack of this.acks.get(stream)?.values() ?? []) {
      const found = byId.get(ack.batchId);
      if (found === undefined) {
        problems.push(`${stream}: acked batch ${ack.batchId} [${ack.start}, ${ack.end}) is gone`);
      } else if (
        found[1] !== ack.start ||
        found[1] + found[2] !== ack.end ||
        found[3] !== ack.hash
      ) {
        problems.push(
          `${stream}: acked batch ${ack.batchId} [${ack.start}, ${ack.end}) hash ${ack.hash} ` +
            `is at [${found[1]}, ${found[1] + found[2]}) hash ${found[3]}`,
        );
      }
    }
    const tail = this.tails.get(stream) ?? 0;
    if (image.tail < tail) problems.push(`${stream}: tail ${image.tail} < ${tail} seen before`);
    for (const [seqNum, { batchId, index }] of this.readable.get(stream) ?? []) {
      const found = byId.get(batchId);
      if (found === undefined || found[1] + index !== seqNum) {
        problems.push(
          `${stream}: seq ${seqNum} was read as ${batchId}[${index}], now ` +
            (found === undefined ? "that batch is gone" : `that batch starts at ${found[1]}`),
        );
      }
    }
    const prior = this.images.get(stream);
    if (prior !== undefined) {
      if (image.tail < prior.tail) {
        problems.push(`${stream}: tail ${image.tail} < ${prior.tail} of an earlier image`);
      }
      for (let i = 0; i < prior.batches.length; i++) {
        const before = prior.batches[i]!;
        const now = image.batches[i];
        if (now === undefined || now.join() !== before.join()) {
          problems.push(
            `${stream}: batch ${i} was ${before.join()} and is now ${now?.join() ?? "gone"}`,
          );
          break;
        }
      }
    }
    return problems.slice(0, 20);
  }

  /** Batches present in `image` that were never acked, whose ids start with `prefix`. */
  unacked(image: StreamImage, prefix: string): number {
    const acked = this.acks.get(image.stream);
    return image.batches.filter(([id]) => id.startsWith(prefix) && acked?.has(id) !== true).length;
  }
}

const liveChildren = new Set<ChildProcess>();
const tempDirs: string[] = [];

function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

after(async () => {
  for (const child of liveChildren) child.kill("SIGKILL");
  await Promise.all(tempDirs.splice(0).map(removeDir));
});

/** A spawned child: its complete stdout lines, its stderr's end, and how it exited. */
class ChildRun {
  readonly lines: ChildLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = "";
  killedByParent = false;
  /** When the first line of each type arrived, in ms after the spawn. */
  readonly firstSeenMs = new Map<ChildLine["type"], number>();
  private readonly startedMs = performance.now();
  /** Lines on stdout that were not JSON. */
  readonly noise: string[] = [];
  private partial = "";
  private readonly waiters: { type: ChildLine["type"]; resolve: () => void }[] = [];

  private constructor(private readonly child: ChildProcess) {
    liveChildren.add(child);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => this.onData(chunk));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-stderrKeptBytes);
    });
    this.exited = new Promise((resolve) => {
      // "close": the process exited and its stdout is drained. A partial last line (the kill
      // landed mid-write) is dropped: the parent never received it.
      child.on("close", (code, signal) => {
        liveChildren.delete(child);
        for (const waiter of this.waiters.splice(0)) waiter.resolve();
        resolve({ code, signal });
      });
    });
  }

  static start(args: readonly string[], env: NodeJS.ProcessEnv): ChildRun {
    const child = spawn(process.execPath, ["--import", "tsx", childScript, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    return new ChildRun(child);
  }

  private onData(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split("\n");
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (line === "") continue;
      let parsed: ChildLine;
      try {
        parsed = JSON.parse(line) as ChildLine;
      } catch {
        // Not ours (say, a stray log line of the engine): ignored, shown on failure.
        if (this.noise.length < 20) this.noise.push(line.slice(0, 500));
        continue;
      }
      this.lines.push(parsed);
      if (!this.firstSeenMs.has(parsed.type)) {
        this.firstSeenMs.set(parsed.type, Math.round(performance.now() - this.startedMs));
      }
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i]!.type === parsed.type) this.waiters.splice(i, 1)[0]!.resolve();
      }
    }
  }

  has(type: ChildLine["type"]): boolean {
    return this.lines.some((line) => line.type === type);
  }

  /** Resolves true once a line of `type` arrived, false if the child exited or time ran out. */
  async waitFor(type: ChildLine["type"], timeoutMs: number): Promise<boolean> {
    if (this.has(type)) return true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return false;
    let cancel = (): void => {};
    const arrived = new Promise<void>((resolve) => {
      const waiter = { type, resolve };
      this.waiters.push(waiter);
      cancel = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
      };
    });
    const timer = sleep(timeoutMs, undefined, { ref: false });
    await Promise.race([arrived, timer]);
    cancel();
    return this.has(type);
  }

  /** Milliseconds since the spawn. */
  get ageMs(): number {
    return Math.round(performance.now() - this.startedMs);
  }

  kill(): void {
    this.killedByParent = true;
    this.child.kill("SIGKILL");
  }

  /** Waits for the exit, SIGKILLing the child if it takes longer than `timeoutMs`. */
  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const timedOut = Symbol("timeout");
    const result = await Promise.race([this.exited, sleep(timeoutMs, timedOut, { ref: false })]);
    if (result !== timedOut) return result;
    this.kill();
    return this.exited;
  }

  describe(): string {
    const errors = this.lines.filter((line) => line.type === "error");
    return (
      `errors=${JSON.stringify(errors)} noise=${JSON.stringify(this.noise)} ` +
      `stderr=\`${this.stderr.slice(-4000)}\``
    );
  }
}

function drawInt(random: Random, min: number, max: number): number {
  return min + Math.floor(random.float() * (max - min + 1));
}

function describeKill(kill: Kill): string {
  if (kill.kind === "point") return `${kill.point}@${kill.at}`;
  if (kill.kind === "replay") return `replay@${kill.at}`;
  return `${kill.kind}+${kill.delayMs}ms`;
}

/** The local-fs schedule: random kills, kills mid-recovery, and each named point once. */
function localRounds(random: Random): Round[] {
  const randomKill = (): Kill => ({ kind: "random", delayMs: drawInt(random, 150, 900) });
  const point = (name: FlusherPoint | PutPoint): Kill => ({
    kind: "point",
    point: name,
    // Hits counted from process start; the first WAL PUTs carry the basin and stream creates.
    at: drawInt(random, 8, 40),
  });
  // A kill mid-replay right after the cache was deleted leaves a half-rebuilt cache for the next
  // start; a corrupt cache is followed by a full restart, and each after-PUT point by one that
  // prints every stream, so that their effects are checked.
  const base: Round[] = [
    { kill: randomKill(), cacheAfter: "delete" },
    { kill: { kind: "replay", at: drawInt(random, 2, 10) }, cacheAfter: "keep" },
    { kill: point("flush.before-build"), cacheAfter: "keep" },
    { kill: point("cache.after-file-write"), cacheAfter: "keep" },
    { kill: point("put.before-apply"), cacheAfter: "keep" },
    { kill: randomKill(), cacheAfter: "corrupt" },
    { kill: point("put.after-apply"), cacheAfter: "keep" },
    { kill: point("flush.after-put"), cacheAfter: "delete" },
    { kill: randomKill(), cacheAfter: "keep" },
    { kill: { kind: "recovery", delayMs: drawInt(random, 0, 40) }, cacheAfter: "keep" },
    { kill: { kind: "point", point: "recovery.after-fence", at: 1 }, cacheAfter: "keep" },
  ];
  if (!isSoak) return base;
  const actions: CacheAction[] = ["keep", "keep", "delete", "corrupt"];
  const extra: Round[] = [];
  for (let repeat = 0; repeat < 4; repeat++) {
    for (const round of base) {
      const kind = round.kill.kind;
      const kill: Kill =
        round.kill.kind === "point"
          ? round.kill.point === "recovery.after-fence"
            ? round.kill
            : point(round.kill.point)
          : kind === "random"
            ? randomKill()
            : kind === "replay"
              ? { kind, at: drawInt(random, 1, 30) }
              : { kind: "recovery", delayMs: drawInt(random, 0, 120) };
      extra.push({ kill, cacheAfter: actions[drawInt(random, 0, actions.length - 1)]! });
    }
  }
  return [...base, ...extra];
}

async function mutateCache(cacheDir: string, action: CacheAction): Promise<string> {
  if (action === "delete") {
    await rm(cacheDir, { recursive: true, force: true });
    return "deleted";
  }
  if (action === "corrupt") {
    const current = path.join(cacheDir, "CURRENT");
    const exists = await stat(current).then(
      () => true,
      () => false,
    );
    if (!exists) return "no CURRENT to corrupt";
    await writeFile(current, "this is not a manifest name\u0000\u00ff");
    return "CURRENT overwritten";
  }
  return "kept";
}

/**
 * Runs `rounds` of start → kill → cache action on one store, checking every restart's images,
 * then a verify child on the last cache and a fresh in-process Service on the whole history.
 */
async function runScenario(t: TestContext, setup: StoreSetup, rounds: Round[]): Promise<void> {
  try {
    await runScenarioRounds(t, setup, rounds);
  } finally {
    // A failed check leaves its child running; the data is only needed while the test runs.
    for (const child of liveChildren) child.kill("SIGKILL");
    await Promise.all(liveChildren.size === 0 ? tempDirs.splice(0).map(removeDir) : []);
  }
}

async function runScenarioRounds(
  t: TestContext,
  setup: StoreSetup,
  rounds: Round[],
): Promise<void> {
  const runId = `run-${seed}-${setup.label}`;
  const root = await mkdtemp(path.join(tmpdir(), "tributary-crash-"));
  tempDirs.push(root);
  const cacheDir = path.join(root, "cache");
  const knowledge = new Knowledge();
  let previous: { round: number; kill: Kill } | undefined;
  /** The cache was corrupted and no child has opened it since. */
  let corruptPending = false;
  const started = performance.now();

  const baseArgs = (round: number): string[] => [
    ...setup.childArgs,
    "--cache-dir",
    cacheDir,
    "--streams",
    String(streamCount),
    "--run-id",
    runId,
    "--round",
    String(round),
    "--seed",
    String(seed),
    "--flush-interval-ms",
    String(setup.flushIntervalMs),
    // Past every wait of ours: a child this old was orphaned and stops by itself.
    "--lifetime-ms",
    String(readyTimeoutMs + selfKillTimeoutMs + verifyTimeoutMs),
  ];

  /** Checks a restart's images against what was known before it, then records them. */
  const checkRestart = (run: ChildRun, label: string): void => {
    const context = `${setup.label} ${label} seed=${seed}`;
    const images = run.lines.filter(
      (line): line is Extract<ChildLine, { type: "image" }> => line.type === "image",
    );
    const problems = images.flatMap((image) => knowledge.check(image));
    assert.deepEqual(problems, [], `${context}: images after restart violate the properties`);
    const cacheLine = run.lines.find((line) => line.type === "cache");
    if (corruptPending && cacheLine !== undefined) {
      assert.equal(cacheLine.wiped, true, `${context}: a corrupt cache is wiped and rebuilt`);
      corruptPending = false;
    }
    if (
      previous?.kill.kind === "point" &&
      (previous.kill.point === "put.after-apply" || previous.kill.point === "flush.after-put")
    ) {
      assert.equal(images.length, streamCount, `${context}: every stream was read back`);
      // The segment was in the bucket when the process died, its acks never sent: its batches
      // are durable without an ack (the ambiguous outcome of the failure table).
      const prefix = `${previous.round}.`;
      const durableUnacked = images.reduce((n, image) => n + knowledge.unacked(image, prefix), 0);
      assert.ok(
        durableUnacked > 0,
        `${context}: after ${describeKill(previous.kill)} the applied segment's batches are readable`,
      );
    }
    for (const image of images) knowledge.images.set(image.stream, image);
  };

  for (const [index, round] of rounds.entries()) {
    const label = `round ${index} (${describeKill(round.kill)})`;
    const where = `${setup.label} ${label} seed=${seed}`;
    const args = baseArgs(index);
    const env: NodeJS.ProcessEnv = { TRIBUTARY_FAILPOINTS: "" };
    const { kill } = round;
    if (kill.kind === "point" && !kill.point.startsWith("put.")) {
      env["TRIBUTARY_FAILPOINTS"] = `${kill.point}=kill@${kill.at}`;
    } else if (kill.kind === "point") {
      args.push("--crash-point", kill.point, "--crash-at", String(kill.at));
    } else if (kill.kind === "replay") {
      args.push("--crash-point", "recovery.get", "--crash-at", String(kill.at));
    }
    const run = ChildRun.start(args, env);
    let outcome: { code: number | null; signal: NodeJS.Signals | null };
    let killNote = "";
    if (kill.kind === "replay") {
      // Fewer segments than `at` to replay: not the engine's fault; kill it once ready instead.
      if (await run.waitFor("ready", selfKillTimeoutMs)) {
        killNote = " (fewer segments to replay: killed once ready)";
        run.kill();
      }
      outcome = await run.exit(exitAfterKillTimeoutMs);
    } else if (kill.kind === "recovery") {
      assert.ok(await run.waitFor("cache", readyTimeoutMs), `${where}: ${run.describe()}`);
      await sleep(kill.delayMs);
      run.kill();
      outcome = await run.exit(exitAfterKillTimeoutMs);
    } else if (kill.kind === "random") {
      assert.ok(await run.waitFor("ready", readyTimeoutMs), `${where}: ${run.describe()}`);
      await sleep(kill.delayMs);
      run.kill();
      outcome = await run.exit(exitAfterKillTimeoutMs);
    } else {
      outcome = await run.exit(selfKillTimeoutMs);
      assert.equal(
        run.killedByParent,
        false,
        `${where}: the child never reached its crash point: ${run.describe()}`,
      );
    }
    const diedAtMs = run.ageMs;
    assert.equal(outcome.signal, "SIGKILL", `${where}: exit ${outcome.code}: ${run.describe()}`);
    assert.equal(run.has("error"), false, `${where}: ${run.describe()}`);

    checkRestart(run, label);
    let acks = 0;
    for (const line of run.lines) {
      if (line.type === "ack") {
        knowledge.addAck(line);
        acks++;
      } else if (line.type === "tail") {
        knowledge.addTail(line);
      }
    }
    const open = run.lines.find((line) => line.type === "open");
    const cacheNote = await mutateCache(cacheDir, round.cacheAfter);
    t.diagnostic(
      `${setup.label} ${label}: ${acks} acks, ` +
        (open === undefined
          ? `killed in recovery (${run.has("cache") ? "after" : "before"} opening the cache)`
          : `epoch ${open.epoch}, replayed ${open.replayedSegments}` +
            (open.cacheResetReason !== null ? ` (cache reset: ${open.cacheResetReason})` : "")) +
        `; ready at ${run.firstSeenMs.get("ready") ?? "-"} ms, died at ${diedAtMs} ms${killNote}` +
        `; cache ${cacheNote}`,
    );
    if (round.cacheAfter === "delete") corruptPending = false;
    if (cacheNote === "CURRENT overwritten") corruptPending = true;
    previous = { round: index, kill };
  }

  // A last restart on whatever cache the last round left, without appending.
  const verify = ChildRun.start([...baseArgs(rounds.length), "--mode", "verify"], {
    TRIBUTARY_FAILPOINTS: "",
  });
  const verified = await verify.exit(verifyTimeoutMs);
  t.diagnostic(`${setup.label} verify child on the last cache: ${verify.ageMs} ms`);
  assert.equal(verified.code, 0, `${setup.label} verify child seed=${seed}: ${verify.describe()}`);
  checkRestart(verify, "verify child");
  assert.equal(
    verify.lines.filter((line) => line.type === "image").length,
    streamCount,
    "verify child printed every stream",
  );

  // The whole history from the bucket alone: a fresh cache replays every segment.
  const finalStartedMs = performance.now();
  const store = setup.open();
  const freshCache = await openCache(path.join(root, "fresh-cache"));
  try {
    const service = await Service.open({
      store,
      kv: freshCache.kv,
      segmentFiles: freshCache.segmentFiles,
      clock: systemClock,
      random: systemRandom,
      flushIntervalMs: setup.flushIntervalMs,
    });
    const recoveredMs = Math.round(performance.now() - finalStartedMs);
    const images: StreamImage[] = [];
    for (const stream of streams) images.push(await imageOfStream(service, runId, stream));
    await service.close();
    const problems = images.flatMap((image) => knowledge.check(image));
    assert.deepEqual(problems, [], `${setup.label} final check seed=${seed}`);
    let records = 0;
    let batches = 0;
    let unacked = 0;
    /** Durable batches never acked, by the round that appended them. */
    const unackedByRound = new Map<string, number>();
    for (const image of images) {
      records += image.tail;
      batches += image.batches.length;
      unacked += knowledge.unacked(image, "");
      const acked = knowledge.acks.get(image.stream);
      for (const [batchId] of image.batches) {
        if (acked?.has(batchId) === true) continue;
        const round = `r${batchId.slice(0, batchId.indexOf("."))}`;
        unackedByRound.set(round, (unackedByRound.get(round) ?? 0) + 1);
      }
    }
    assert.ok(knowledge.ackCount > 0, "the children acknowledged appends");
    t.diagnostic(
      `${setup.label}: ${rounds.length} rounds in ${Math.round(performance.now() - started)} ms; ` +
        `${knowledge.ackCount} acked batches, ${batches} durable batches ` +
        `(${unacked} never acked: ${[...unackedByRound].map(([r, n]) => `${r}=${n}`).join(" ")}), ` +
        `${records} records; ` +
        `final check ${Math.round(performance.now() - finalStartedMs)} ms ` +
        `(recovery ${recoveredMs} ms)`,
    );
  } finally {
    await freshCache.kv.close();
    await store.close();
  }
}

describe("crash test checker", () => {
  const runId = "check";
  const sequence = (batches: [string, number][]): SequencedRecord[] =>
    batches
      .flatMap(([id, size]) => makeBatch(runId, id, size))
      .map((record, seqNum) => ({
        seqNum,
        timestamp: 0,
        headers: record.headers,
        body: record.body,
      }));

  it("flags gaps, torn or repeated batches and wrong bytes", () => {
    const records = sequence([
      ["a", 3],
      ["b", 2],
      ["c", 4],
    ]);
    const clean = summarizeStream(runId, "s", records.length, records);
    assert.deepEqual(clean.errors, []);
    assert.deepEqual(
      clean.batches.map(([id, start, count]) => [id, start, count]),
      [
        ["a", 0, 3],
        ["b", 3, 2],
        ["c", 5, 4],
      ],
    );
    assert.equal(clean.batches[1]![3], hashRecords(makeBatch(runId, "b", 2)));

    const gap = records.filter((record) => record.seqNum !== 4);
    assert.notDeepEqual(summarizeStream(runId, "s", gap.length, gap).errors, []);
    const torn = records.slice(0, 7);
    assert.match(summarizeStream(runId, "s", 7, torn).errors.join(), /torn/);
    const repeated = sequence([
      ["a", 2],
      ["b", 1],
      ["a", 2],
    ]);
    assert.match(summarizeStream(runId, "s", 5, repeated).errors.join(), /twice/);
    const flipped = records.map((record) =>
      record.seqNum === 6 ? { ...record, body: Uint8Array.of(...record.body, 1) } : record,
    );
    assert.match(summarizeStream(runId, "s", 9, flipped).errors.join(), /wrong body/);
    assert.notDeepEqual(summarizeStream(runId, "s", 10, records).errors, []);
  });

  it("flags lost acks, lower tails and changed history", () => {
    const records = sequence([
      ["a", 3],
      ["b", 2],
    ]);
    const image = summarizeStream(runId, "s", records.length, records);
    const knowledge = new Knowledge();
    const ack = (batchId: string, start: number, end: number, hash: string) =>
      knowledge.addAck({ type: "ack", stream: "s", batchId, start, end, hash });
    ack("a", 0, 3, image.batches[0]![3]);
    knowledge.addTail({ type: "tail", stream: "s", seqNum: 5, last: { batchId: "b", index: 1 } });
    assert.deepEqual(knowledge.check(image), []);
    knowledge.images.set("s", image);

    const shorter = summarizeStream(runId, "s", 3, records.slice(0, 3));
    assert.match(knowledge.check(shorter).join(), /tail 3 < 5/);
    const swapped = sequence([
      ["a", 3],
      ["x", 2],
    ]);
    const other = summarizeStream(runId, "s", 5, swapped);
    assert.match(knowledge.check(other).join(), /was read as b\[1\]/);
    assert.match(knowledge.check(other).join(), /batch 1 was/);
    ack("b", 3, 5, "0000000000000000");
    assert.match(knowledge.check(image).join(), /acked batch b/);
  });
});

describe("crash recovery", { timeout: isSoak ? 1_800_000 : 300_000 }, () => {
  it("local-fs: random kills, a kill mid-recovery and every named flush point", async (t) => {
    t.diagnostic(`seed=${seed} (replay with TRIBUTARY_CRASH_SEED=${seed})`);
    const random = createSeededRandom(seed);
    const objectsDir = await mkdtemp(path.join(tmpdir(), "tributary-crash-objects-"));
    tempDirs.push(objectsDir);
    await runScenario(
      t,
      {
        label: "local-fs",
        childArgs: ["--store", "local-fs", "--local-root", objectsDir],
        flushIntervalMs: 3,
        open: () => createLocalFsObjectStore({ root: objectsDir }),
      },
      localRounds(random),
    );
  });

  it("s3: random kills with the cache deleted each time", async (t) => {
    t.diagnostic(`seed=${seed} (replay with TRIBUTARY_CRASH_SEED=${seed})`);
    const random = createSeededRandom(seed + 1);
    const endpoint = await s3TestEndpoint();
    const bucket = await createTestBucket(endpoint);
    const config = s3TestClientConfig(endpoint);
    const rounds: Round[] = Array.from({ length: isSoak ? 12 : 3 }, () => ({
      kill: { kind: "random", delayMs: drawInt(random, 200, 1000) },
      cacheAfter: "delete",
    }));
    await runScenario(
      t,
      {
        label: "s3",
        childArgs: ["--store", "s3", "--endpoint", endpoint, "--bucket", bucket],
        flushIntervalMs: 5,
        open: () =>
          createS3ObjectStore({
            bucket,
            endpoint,
            region: config.region,
            forcePathStyle: config.forcePathStyle,
            credentials: config.credentials,
          }),
      },
      rounds,
    );
  });
});
