// Goal: the history checker accepts a correct history, unknown outcomes included, and finds each
// kind of violation a broken server could commit: a lost ack, an ack at the wrong position, a
// duplicate, a phantom write from a failed append, a reordering against real time, a stale read,
// a tail below an ack, and a producer resend answered at another position. Method: small
// hand-written histories against hand-written final logs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AppendOp, checkHistory, type HistoryOp } from "./history-checker.js";

function append(
  bodies: string[],
  invokedMs: number,
  returnedMs: number,
  outcome: AppendOp["outcome"],
  extra: Partial<AppendOp> = {},
): AppendOp {
  return { kind: "append", client: 0, bodies, invokedMs, returnedMs, outcome, ...extra };
}

const ok = (start: number, end: number) => ({ type: "ok", start, end }) as const;

/** A correct history: two clients, an unknown outcome that took effect and one that did not. */
const correct: HistoryOp[] = [
  append(["a", "b"], 0, 10, ok(0, 2)),
  append(["c"], 5, 20, { type: "unknown", why: "connection reset" }),
  append(["d"], 15, 30, ok(3, 4)),
  append(["lost"], 16, 40, { type: "unknown", why: "connection reset" }),
  append(["x"], 31, 35, { type: "failed", code: "append_condition_failed" }, { matchSeqNum: 9 }),
  {
    kind: "read",
    client: 1,
    invokedMs: 32,
    returnedMs: 33,
    startSeqNum: 0,
    countMax: 10,
    outcome: {
      type: "ok",
      records: ["a", "b", "c", "d"].map((body, seqNum) => ({ seqNum, body })),
    },
  },
  { kind: "tail", client: 1, invokedMs: 31, returnedMs: 32, outcome: { type: "ok", seqNum: 4 } },
];
const correctLog = ["a", "b", "c", "d"];

describe("history checker", () => {
  it("accepts a correct history with unknown outcomes either way", () => {
    assert.deepEqual(checkHistory(correct, correctLog), []);
  });

  it("accepts a producer's resend acked at its first attempt's earlier position", () => {
    const producer = { id: "p", epoch: 1, seq: 0 };
    const history: HistoryOp[] = [
      append(["p"], 0, 4, { type: "unknown", why: "reset" }, { producer }),
      append(["b"], 5, 10, ok(1, 2)),
      append(["p"], 20, 25, ok(0, 1), { producer }),
    ];
    assert.deepEqual(checkHistory(history, ["p", "b"]), []);
  });

  const broken: [string, HistoryOp[], string[], RegExp][] = [
    ["a lost ack", correct, ["a", "b", "c"], /acked append of d at 3/],
    ["an ack at the wrong position", correct, ["a", "b", "d", "c"], /acked append of d at 3/],
    ["a duplicate", correct, [...correctLog, "c"], /in the log twice/],
    [
      "a phantom write from a failed append",
      correct,
      [...correctLog, "x"],
      /failed with nothing applied/,
    ],
    [
      "a reordering against real time",
      [append(["a"], 0, 10, ok(1, 2)), append(["b"], 11, 20, ok(0, 1))],
      ["b", "a"],
      /lies before it/,
    ],
    [
      "a read that misses an acknowledged record",
      [
        append(["a"], 0, 10, ok(0, 1)),
        {
          kind: "read",
          client: 1,
          invokedMs: 11,
          returnedMs: 12,
          startSeqNum: 0,
          countMax: 10,
          outcome: { type: "ok", records: [] },
        },
      ],
      ["a"],
      /stopped at 0, before 1/,
    ],
    [
      "a tail below an acknowledged append",
      [
        append(["a"], 0, 10, ok(0, 1)),
        {
          kind: "tail",
          client: 1,
          invokedMs: 11,
          returnedMs: 12,
          outcome: { type: "ok", seqNum: 0 },
        },
      ],
      ["a"],
      /check-tail 0 below 1/,
    ],
    [
      "a producer resend answered elsewhere",
      [
        append(["p"], 0, 10, ok(0, 1), { producer: { id: "q", epoch: 1, seq: 0 } }),
        append(["p"], 11, 20, ok(1, 2), { producer: { id: "q", epoch: 1, seq: 0 } }),
      ],
      ["p"],
      /producer resend .* acked at 1-2, first at 0-1/,
    ],
  ];
  for (const [what, history, log, expected] of broken) {
    it(`finds ${what}`, () => {
      const violations = checkHistory(history, log);
      assert.ok(
        violations.some((violation) => expected.test(violation)),
        `expected ${expected}, got ${JSON.stringify(violations)}`,
      );
    });
  }
});
