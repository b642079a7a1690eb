// Goal: what clients are told is always true (issue 11, item 4): several concurrent clients append
// (plain, with `match_seq_num`, as producers that resend after an unknown outcome), read and check
// the tail over REST against the real server, which the harness SIGKILLs and restarts (with its
// cache kept or wiped), or fences with a second server on the same bucket, at seeded moments; the history, unknown outcomes included, must check
// against the final log (`support/history-checker.ts`: durable acks at their positions, nothing
// applied twice or from a failed append, real-time order, reads and tails that saw every ack).
// Method: a server process in local mode on fixed storage; `make test` runs two seeds for a few
// seconds, `make soak` TRIBUTARY_HISTORY_SEEDS (200) fresh seeds of 4 s. Every run prints its
// seed; TRIBUTARY_HISTORY_SEED=<n> replays that seed's operations and kill schedule (the timing of
// a run on a loaded machine differs, so a replay is likely, not certain, to hit the same case).
// The checker was seen to fail on a build that acks before durability (51 and 84 violations in two
// runs: acked records missing or at other positions after a kill).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createSeededRandom, type Random } from "../../src/core/random.js";
import { type AppendOp, checkHistory, type HistoryOp } from "../support/history-checker.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const basin = "history-basin";
const stream = "log";
const clientCount = 3;
/** A call not answered by then counts as unknown (append) or failed (read, tail). */
const callTimeoutMs = 5_000;
const isSoak = process.env.TRIBUTARY_SOAK === "1";
const replaySeed = process.env.TRIBUTARY_HISTORY_SEED;

/** The outcome of one HTTP call: a status and JSON body, or no answer. */
type Reply =
  | { readonly answered: true; readonly status: number; readonly body: Record<string, unknown> }
  | { readonly answered: false; readonly refused: boolean; readonly why: string };

/**
 * Store faults for the runs under faults (TRIBUTARY_STORE_FAULTS): WAL, manifest and checkpoint
 * PUTs that fail before or after they apply (a lost answer), time out, or land late; every call
 * delayed 0–15 ms, so PUTs in the window answer out of order. Reads are left whole: the final read
 * of the log must answer.
 */
const storeFaults = {
  probabilitiesByOp: {
    putIfAbsent: { failBeforeApply: 0.05, failAfterApply: 0.05, timeout: 0.02, lateSuccess: 0.03 },
  },
  latencyMs: { min: 0, max: 15 },
  timeoutMs: 300,
  lateSuccessDelayMs: { min: 0, max: 300 },
};

/** A server that the harness kills and restarts; `endpoint` is stable (same port). */
class Target {
  server!: ServerProcess;
  kills = 0;
  private localRoot = "";
  private starts = 0;

  /** With `faultSeed`, every server runs on a faulty store (seeded per start). */
  constructor(private readonly faultSeed?: number) {}

  /** The environment of the next server start. */
  private env(): Record<string, string> {
    this.starts += 1;
    if (this.faultSeed === undefined) return {};
    return {
      TRIBUTARY_STORE_FAULTS: JSON.stringify({
        ...storeFaults,
        seed: this.faultSeed + this.starts,
      }),
    };
  }

  async start(dir: string): Promise<void> {
    this.localRoot = path.join(dir, "objects");
    this.server = await startServer({
      mode: "local",
      localRoot: this.localRoot,
      cacheDir: path.join(dir, "cache-0"),
      env: this.env(),
    });
  }

  get endpoint(): string {
    return this.server.endpoint;
  }

  fences = 0;

  /**
   * A second server on the same bucket, with its own cache and port: it fences the running one
   * (appends in flight there fail `unavailable` or `append_outcome_unknown`), which is then
   * killed; clients follow `endpoint` to the new one.
   */
  async fenceWithNewServer(dir: string): Promise<void> {
    const old = this.server;
    this.fences += 1;
    this.server = await startServer({
      mode: "local",
      localRoot: this.localRoot,
      cacheDir: path.join(dir, `cache-fence-${this.fences}`),
      env: this.env(),
    });
    await old.kill();
  }

  /** SIGKILL, then a restart on the same port, with the cache kept or in a fresh directory. */
  async killAndRestart(random: Random, dir: string): Promise<void> {
    const { port, cacheDir } = this.server;
    await this.server.kill();
    this.kills += 1;
    const keepCache = random.float() < 0.5;
    this.server = await startServer({
      mode: "local",
      localRoot: this.localRoot,
      cacheDir: keepCache ? cacheDir : path.join(dir, `cache-${this.kills}`),
      args: ["--port", String(port)],
      env: this.env(),
    });
  }
}

async function call(
  endpoint: string,
  method: string,
  route: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  try {
    const response = await fetch(`${endpoint}${route}`, {
      method,
      headers: { "s2-basin": basin, "content-type": "application/json", ...headers },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(callTimeoutMs),
    });
    const text = await response.text();
    return {
      answered: true,
      status: response.status,
      body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
    };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return {
      answered: false,
      refused: cause?.code === "ECONNREFUSED",
      why: String(cause?.code ?? error),
    };
  }
}

/** The error code of a failed append reply (a 412 has no code field). */
function failureCode(reply: Extract<Reply, { answered: true }>): string {
  if (reply.status === 412) return "append_condition_failed";
  return typeof reply.body["code"] === "string" ? reply.body["code"] : `http_${reply.status}`;
}

/** One client: random operations until `deadlineMs`, appended to `history`. */
async function runClient(
  client: number,
  target: Target,
  random: Random,
  deadlineMs: number,
  history: HistoryOp[],
): Promise<void> {
  let next = 0;
  let producerSeq = 0;
  let lastTail = 0;
  const producerId = `client-${client}`;
  while (performance.now() < deadlineMs) {
    const roll = random.float();
    if (roll < 0.5) {
      const bodies = Array.from(
        { length: 1 + Math.floor(random.float() * 3) },
        (_, i) => `c${client}-${next}-${i}`,
      );
      next += 1;
      const kind = random.float();
      const producer = kind < 0.4 ? { id: producerId, epoch: 1, seq: producerSeq } : undefined;
      const matchSeqNum = kind >= 0.4 && kind < 0.55 ? lastTail : undefined;
      // A producer resends its batch until it gets a definite answer: exactly once.
      for (let attempt = 0; ; attempt++) {
        const invokedMs = performance.now();
        const reply = await call(
          target.endpoint,
          "POST",
          `/v1/streams/${stream}/records`,
          {
            records: bodies.map((body) => ({ body })),
            ...(matchSeqNum !== undefined && { match_seq_num: matchSeqNum }),
          },
          producer === undefined
            ? {}
            : {
                "tributary-producer-id": producer.id,
                "tributary-producer-epoch": String(producer.epoch),
                "tributary-producer-seq": String(producer.seq),
              },
        );
        const returnedMs = performance.now();
        let outcome: AppendOp["outcome"];
        if (!reply.answered) {
          outcome = reply.refused
            ? { type: "failed", code: "connection_refused" }
            : { type: "unknown", why: reply.why };
        } else if (reply.status === 200) {
          const start = reply.body["start"] as { seq_num: number };
          const end = reply.body["end"] as { seq_num: number };
          outcome = { type: "ok", start: start.seq_num, end: end.seq_num };
          lastTail = end.seq_num;
        } else {
          outcome = { type: "failed", code: failureCode(reply) };
        }
        history.push({
          kind: "append",
          client,
          bodies,
          invokedMs,
          returnedMs,
          matchSeqNum,
          producer,
          outcome,
        });
        const isDefinite =
          outcome.type === "ok" ||
          (outcome.type === "failed" &&
            !["unavailable", "append_outcome_unknown", "connection_refused"].includes(
              outcome.code,
            ));
        if (producer === undefined || isDefinite || performance.now() > deadlineMs + 20_000) {
          if (producer !== undefined && outcome.type === "ok") producerSeq += 1;
          break;
        }
        await sleep(50 + attempt * 20);
      }
    } else if (roll < 0.75) {
      const startSeqNum = Math.floor(random.float() * (lastTail + 1));
      const countMax = 50;
      const invokedMs = performance.now();
      const reply = await call(
        target.endpoint,
        "GET",
        `/v1/streams/${stream}/records?seq_num=${startSeqNum}&count=${countMax}`,
      );
      const returnedMs = performance.now();
      if (reply.answered && reply.status === 200) {
        const records = (reply.body["records"] as { seq_num: number; body: string }[]).map((r) => ({
          seqNum: r.seq_num,
          body: r.body,
        }));
        history.push({
          kind: "read",
          client,
          invokedMs,
          returnedMs,
          startSeqNum,
          countMax,
          outcome: { type: "ok", records },
        });
      }
    } else {
      const invokedMs = performance.now();
      const reply = await call(target.endpoint, "GET", `/v1/streams/${stream}/records/tail`);
      const returnedMs = performance.now();
      if (reply.answered && reply.status === 200) {
        const seqNum = (reply.body["tail"] as { seq_num: number }).seq_num;
        lastTail = Math.max(lastTail, seqNum);
        history.push({
          kind: "tail",
          client,
          invokedMs,
          returnedMs,
          outcome: { type: "ok", seqNum },
        });
      }
    }
    if (random.float() < 0.2) await sleep(random.float() * 20);
  }
}

/** The whole stream, read back page by page. */
async function finalLog(endpoint: string): Promise<string[]> {
  const log: string[] = [];
  for (;;) {
    const reply = await call(
      endpoint,
      "GET",
      `/v1/streams/${stream}/records?seq_num=${log.length}&count=1000`,
    );
    // At the tail, a read without waiting answers 416 (S2-API.md §5.4): the log is complete.
    if (reply.answered && reply.status === 416) return log;
    assert.ok(
      reply.answered && reply.status === 200,
      `the final read answers: ${JSON.stringify(reply)}`,
    );
    const records = reply.body["records"] as { body: string }[];
    if (records.length === 0) return log;
    log.push(...records.map((record) => record.body));
  }
}

/** One seeded run; returns the violations and figures. */
async function runSeed(seed: number, seconds: number, underFaults: boolean) {
  const dir = await mkdtemp(path.join(tmpdir(), "tributary-history-"));
  const target = new Target(underFaults ? seed : undefined);
  try {
    await target.start(dir);
    const setup = await call(target.endpoint, "POST", "/v1/basins", { basin });
    assert.equal(setup.answered && setup.status, 201);
    const created = await call(target.endpoint, "POST", "/v1/streams", { stream });
    assert.equal(created.answered && created.status, 201);
    const random = createSeededRandom(seed);
    const history: HistoryOp[] = [];
    const deadlineMs = performance.now() + seconds * 1000;
    const killer = (async () => {
      while (performance.now() < deadlineMs - 500) {
        await sleep(400 + random.float() * 1200);
        if (performance.now() >= deadlineMs - 500) break;
        if (random.float() < 0.3) await target.fenceWithNewServer(dir);
        else await target.killAndRestart(random, dir);
      }
    })();
    await Promise.all([
      killer,
      ...Array.from({ length: clientCount }, (_, client) =>
        runClient(client, target, createSeededRandom(seed * 31 + client), deadlineMs, history),
      ),
    ]);
    const log = await finalLog(target.endpoint);
    const appends = history.filter((op): op is AppendOp => op.kind === "append");
    return {
      violations: checkHistory(history, log),
      kills: target.kills,
      fences: target.fences,
      acked: appends.filter((op) => op.outcome.type === "ok").length,
      unknown: appends.filter((op) => op.outcome.type === "unknown").length,
      ops: history.length,
      logLength: log.length,
    };
  } finally {
    await target.server?.kill().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

for (const underFaults of [false, true]) {
  const title = underFaults
    ? "what clients are told holds across SIGKILLs and restarts, on a faulty store"
    : "what clients are told holds across SIGKILLs and restarts";
  it(title, { timeout: 1_800_000 }, async () => {
    const seeds: number[] = [];
    const seedsTarget = isSoak ? Number(process.env.TRIBUTARY_HISTORY_SEEDS ?? 200) : 2;
    do {
      const seed =
        replaySeed !== undefined ? Number(replaySeed) : Math.floor(Math.random() * 2 ** 31);
      seeds.push(seed);
      const result = await runSeed(seed, isSoak ? 4 : 6, underFaults);
      console.log(
        `# history${underFaults ? " (faulty store)" : ""} seed ${seed}: ${result.ops} ops, ${result.acked} appends acked, ${result.unknown} unknown, ${result.kills} kills, ${result.fences} fences, log of ${result.logLength} records, ${result.violations.length} violations`,
      );
      assert.deepEqual(result.violations, [], `TRIBUTARY_HISTORY_SEED=${seed} replays this run`);
      assert.ok(
        result.kills + result.fences > 0 && result.acked > 0,
        "the run killed or fenced the server and acked appends",
      );
    } while (replaySeed === undefined && seeds.length < seedsTarget);
    console.log(`# history: ${seeds.length} seeds, 0 violations`);
  });
}
