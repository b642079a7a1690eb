/**
 * A checker for histories of operations on one stream (issue 11, item 4): appends (plain, with
 * `match_seq_num`, with a producer), reads and check-tails from several concurrent clients, each
 * with its invocation and response times and its outcome, and the stream as read back at the end.
 *
 * The model is the log: a sequence of records, each appended once, in batches. Linearizability
 * for it is usually a search over orders (Wing–Gong, Porcupine), but an append's ack names its
 * position, and every record body in a history is unique, so the final log itself is the witness
 * of the linearization order of every append that took effect; what remains is to check each
 * operation against that order and against real time, in one pass per rule:
 *
 * - an acknowledged append is in the final log, whole, contiguous and at the positions its ack
 *   named (durability, atomicity); a producer's resends were answered with those same positions;
 * - every record of the final log comes from exactly one append that may have taken effect: an
 *   acknowledged one, or one whose outcome was unknown (a lost connection, `unavailable`,
 *   `append_outcome_unknown`); never from one that failed with a no-side-effects error (a 412, a
 *   409, a 400), and never twice (exactly once);
 * - real time: an append acknowledged before another was invoked lies before it in the log;
 *   an append with `match_seq_num` m that was acknowledged starts at m;
 * - a read returns exactly the final log's records at their seq nums, and, unless it stopped at
 *   its limit, every record acknowledged before it was invoked at or past its start;
 * - a check-tail answers at least the end of every append acknowledged before it was invoked,
 *   and at most the final log's length.
 */

/** When an operation was invoked and answered, in ms of one clock (`performance.now()`). */
interface Timed {
  readonly client: number;
  readonly invokedMs: number;
  readonly returnedMs: number;
}

/** How an append ended: acknowledged, failed with nothing applied, or unknown. */
export type AppendOutcome =
  | { readonly type: "ok"; readonly start: number; readonly end: number }
  | { readonly type: "failed"; readonly code: string }
  | { readonly type: "unknown"; readonly why: string };

export interface AppendOp extends Timed {
  readonly kind: "append";
  /** Record bodies, unique across the whole history. */
  readonly bodies: readonly string[];
  readonly matchSeqNum?: number | undefined;
  /** A producer's resend sends the same bodies under the same (id, epoch, seq). */
  readonly producer?:
    | { readonly id: string; readonly epoch: number; readonly seq: number }
    | undefined;
  readonly outcome: AppendOutcome;
}

export interface ReadOp extends Timed {
  readonly kind: "read";
  readonly startSeqNum: number;
  readonly countMax: number;
  readonly outcome:
    | { readonly type: "ok"; readonly records: readonly { seqNum: number; body: string }[] }
    | { readonly type: "failed"; readonly code: string };
}

export interface TailOp extends Timed {
  readonly kind: "tail";
  readonly outcome:
    | { readonly type: "ok"; readonly seqNum: number }
    | { readonly type: "failed"; readonly code: string };
}

export type HistoryOp = AppendOp | ReadOp | TailOp;

/**
 * Codes after which an append may have taken effect; any other failure guarantees it did not
 * (the server's error table: `noSideEffects`).
 */
const mayHaveApplied = new Set(["unavailable", "append_outcome_unknown", "other", "storage"]);

/** The key of an append for producer resends: the same batch sent again. */
function producerKey(op: AppendOp): string | undefined {
  return op.producer === undefined
    ? undefined
    : `${op.producer.id}\u0000${op.producer.epoch}\u0000${op.producer.seq}`;
}

/** Checks `history` against the `finalLog` (bodies by seq num); returns the violations found. */
export function checkHistory(history: readonly HistoryOp[], finalLog: readonly string[]): string[] {
  const violations: string[] = [];
  const appends = history.filter((op): op is AppendOp => op.kind === "append");

  // Where each body ended up, and each body is in the log at most once.
  const positionOf = new Map<string, number>();
  finalLog.forEach((body, seqNum) => {
    if (positionOf.has(body)) violations.push(`body ${body} is in the log twice`);
    positionOf.set(body, seqNum);
  });

  // Which append (or group of producer resends, which share their bodies) wrote each body.
  const writerOf = new Map<string, AppendOp[]>();
  for (const op of appends) {
    for (const body of op.bodies) writerOf.set(body, [...(writerOf.get(body) ?? []), op]);
  }
  for (const [body, writers] of writerOf) {
    const keys = new Set(writers.map(producerKey));
    if (writers.length > 1 && (keys.size > 1 || keys.has(undefined))) {
      violations.push(`history bug: body ${body} sent by different batches`);
    }
  }
  for (const body of finalLog) {
    const writers = writerOf.get(body);
    if (writers === undefined) {
      violations.push(`body ${body} in the log was never appended`);
      continue;
    }
    const couldApply = writers.some(
      (op) => op.outcome.type !== "failed" || mayHaveApplied.has(op.outcome.code),
    );
    if (!couldApply) {
      violations.push(
        `body ${body} is in the log, but its append failed with nothing applied (${writers.map((op) => (op.outcome.type === "failed" ? op.outcome.code : "")).join(", ")})`,
      );
    }
  }

  // Acknowledged appends: whole, contiguous, at their positions; resends answered alike.
  const ackedPositions = new Map<string, string>();
  for (const op of appends) {
    if (op.outcome.type !== "ok") continue;
    const { start, end } = op.outcome;
    if (end - start !== op.bodies.length) {
      violations.push(
        `append of ${op.bodies[0]} acked ${end - start} records for ${op.bodies.length}`,
      );
    }
    op.bodies.forEach((body, i) => {
      if (finalLog[start + i] !== body) {
        violations.push(
          `acked append of ${body} at ${start + i}, but the log has ${finalLog[start + i] ?? "nothing"} there`,
        );
      }
    });
    if (op.matchSeqNum !== undefined && op.matchSeqNum !== start) {
      violations.push(`append with match_seq_num ${op.matchSeqNum} acked at ${start}`);
    }
    const key = producerKey(op);
    if (key !== undefined) {
      const seen = ackedPositions.get(key);
      const here = `${start}-${end}`;
      if (seen !== undefined && seen !== here) {
        violations.push(`producer resend ${key} acked at ${here}, first at ${seen}`);
      }
      ackedPositions.set(key, here);
    }
  }

  // Real time: acknowledged before another was invoked means before it in the log. A batch sent
  // several times (a producer's resends) was invoked when its first attempt was: any attempt may
  // be the one that wrote it.
  const firstInvokedMs = (body: string): number =>
    Math.min(...(writerOf.get(body) ?? []).map((op) => op.invokedMs));
  const placed = appends
    .filter((op) => positionOf.has(op.bodies[0]!) && op.outcome.type !== "failed")
    .map((op) => ({
      op,
      at: positionOf.get(op.bodies[0]!)!,
      invokedMs: firstInvokedMs(op.bodies[0]!),
    }));
  const acked = placed.filter(({ op }) => op.outcome.type === "ok");
  for (const { op: earlier, at: earlierAt } of acked) {
    for (const { op: later, at: laterAt, invokedMs } of placed) {
      if (earlier.returnedMs < invokedMs && laterAt < earlierAt) {
        violations.push(
          `append of ${later.bodies[0]} (invoked after ${earlier.bodies[0]} was acked) lies before it: ${laterAt} < ${earlierAt}`,
        );
      }
    }
  }

  // Reads and tails against the final log and what was acknowledged before them.
  const ackedEnds = appends
    .filter((op) => op.outcome.type === "ok")
    .map((op) => ({ returnedMs: op.returnedMs, end: (op.outcome as { end: number }).end }));
  const ackedEndBefore = (invokedMs: number): number =>
    ackedEnds.reduce((max, ack) => (ack.returnedMs < invokedMs ? Math.max(max, ack.end) : max), 0);
  for (const op of history) {
    if (op.kind === "read" && op.outcome.type === "ok") {
      const { records } = op.outcome;
      records.forEach((record, i) => {
        if (record.seqNum !== op.startSeqNum + i) {
          violations.push(
            `read from ${op.startSeqNum} returned seq ${record.seqNum} at index ${i}`,
          );
        }
        if (finalLog[record.seqNum] !== record.body) {
          violations.push(
            `read saw ${record.body} at ${record.seqNum}; the log has ${finalLog[record.seqNum]}`,
          );
        }
      });
      const mustReach = Math.min(ackedEndBefore(op.invokedMs), op.startSeqNum + op.countMax);
      if (op.startSeqNum + records.length < mustReach) {
        violations.push(
          `read from ${op.startSeqNum} stopped at ${op.startSeqNum + records.length}, before ${mustReach} acked before it`,
        );
      }
    }
    if (op.kind === "tail" && op.outcome.type === "ok") {
      const { seqNum } = op.outcome;
      const floor = ackedEndBefore(op.invokedMs);
      if (seqNum < floor) violations.push(`check-tail ${seqNum} below ${floor} acked before it`);
      if (seqNum > finalLog.length) {
        violations.push(`check-tail ${seqNum} past the log's end ${finalLog.length}`);
      }
    }
  }
  return violations;
}
