// Goal: pin the error table to S2-API.md §7.2 row by row, and the lite messages and special bodies.
// Method: the expected rows are written out literally here and compared with `errorCodeInfo`; the
// Connect column is checked against a literal copy of connect-es `codeToHttpStatus`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AppendConditionFailed,
  type ConnectCode,
  type ErrorCode,
  basinAlreadyExists,
  basinDeletionPending,
  basinNotFound,
  errorBodyInfo,
  errorCodeInfo,
  errorCodes,
  errorInfoOf,
  invalid,
  isErrorCode,
  notImplemented,
  ReadUnwritten,
  S2Error,
  streamAlreadyExists,
  streamDeletionPending,
  streamNotFound,
  transactionConflict,
} from "./errors.js";

/** S2-API.md §7.2, copied by hand: [code, HTTP, retryable, no side effects]; and ours. */
const expectedRows: readonly [ErrorCode, number, boolean, boolean][] = [
  ["access_token_not_found", 404, false, true],
  ["append_outcome_unknown", 503, true, false], // ours: the outcome of an append is not known
  ["authn", 401, false, true],
  ["bad_frame", 400, false, true],
  ["bad_header", 400, false, true],
  ["bad_json", 400, false, true],
  ["bad_path", 400, false, true],
  ["bad_proto", 400, false, true],
  ["bad_query", 400, false, true],
  ["basin_deletion_pending", 409, false, true],
  ["basin_not_found", 404, false, true],
  ["client_hangup", 499, false, false],
  ["decryption_failed", 400, false, true],
  ["hot_server", 502, true, true],
  ["invalid", 422, false, true],
  ["not_implemented", 501, false, true],
  ["other", 500, true, false],
  ["permission_denied", 403, false, true],
  ["producer_fenced", 409, false, true], // ours: idempotent producers
  ["producer_limit", 409, false, true], // ours
  ["producer_out_of_sequence", 409, false, true], // ours
  ["producer_seq_too_old", 409, false, true], // ours
  ["quota_exhausted", 403, false, true],
  ["rate_limited", 429, true, true],
  ["request_timeout", 408, true, false],
  ["resource_already_exists", 409, false, true],
  ["server_draining", 503, true, true],
  ["storage", 500, true, false],
  ["stream_deletion_pending", 409, false, true],
  ["stream_not_found", 404, false, true],
  ["transaction_conflict", 409, true, true],
  ["unavailable", 503, true, false],
  ["upstream_timeout", 504, true, false],
];

/** connect-es `codeToHttpStatus` (packages/connect/src/protocol-connect/http-status.ts). */
const connectHttpStatus: Record<ConnectCode, number> = {
  canceled: 408,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 408,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 412,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 404,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

describe("errorCodeInfo", () => {
  for (const [code, http, retryable, noSideEffects] of expectedRows) {
    it(`pins ${code}`, () => {
      const row = errorCodeInfo[code];
      assert.equal(row.http, http);
      assert.equal(row.retryable, retryable);
      assert.equal(row.noSideEffects, noSideEffects);
    });
  }

  it("has exactly the codes of §7.2, alphabetized", () => {
    const expected = expectedRows.map(([code]) => code);
    assert.deepEqual([...expected].sort(), expected, "the expected list itself is sorted");
    assert.deepEqual(Object.keys(errorCodeInfo), expected);
    assert.deepEqual(errorCodes, expected);
  });

  it("uses a Connect code with the same HTTP status whenever one exists", () => {
    const statuses = new Set(Object.values(connectHttpStatus));
    for (const code of errorCodes) {
      const row = errorCodeInfo[code];
      if (statuses.has(row.http)) {
        assert.equal(connectHttpStatus[row.connect], row.http, `code ${code}`);
      }
    }
  });

  it("recognizes error codes", () => {
    assert.equal(isErrorCode("stream_not_found"), true);
    assert.equal(isErrorCode("timeout"), false);
    assert.equal(isErrorCode("toString"), false);
  });
});

describe("S2Error", () => {
  it("carries code, message and cause", () => {
    const cause = new Error("disk on fire");
    const error = new S2Error("storage", "segment upload failed. key=`wal/1`", { cause });
    assert.ok(error instanceof Error);
    assert.equal(error.code, "storage");
    assert.equal(error.message, "segment upload failed. key=`wal/1`");
    assert.equal(error.cause, cause);
    assert.equal(error.name, "S2Error");
    assert.equal(error.bodyKind, "error_info");
    assert.deepEqual(errorInfoOf(error), errorCodeInfo.storage);
  });

  it("renders a fencing token mismatch as 412 failed_precondition", () => {
    const error = new AppendConditionFailed({
      kind: "fencing_token_mismatch",
      currentToken: "owner-2",
    });
    assert.ok(error instanceof S2Error);
    assert.equal(error.bodyKind, "append_condition_failed");
    assert.equal(error.code, "invalid");
    assert.deepEqual(error.condition, { kind: "fencing_token_mismatch", currentToken: "owner-2" });
    assert.deepEqual(errorInfoOf(error), {
      http: 412,
      connect: "failed_precondition",
      retryable: false,
      noSideEffects: true,
    });
    assert.match(error.message, /fencing token mismatch\. current_token=`owner-2`$/);
  });

  it("renders a seq num mismatch as 412 with the next seq num", () => {
    const error = new AppendConditionFailed({ kind: "seq_num_mismatch", nextSeqNum: 42 });
    assert.equal(errorInfoOf(error).http, 412);
    assert.deepEqual(error.condition, { kind: "seq_num_mismatch", nextSeqNum: 42 });
    assert.match(error.message, /seq num mismatch\. next_seq_num=`42`$/);
  });

  it("renders an unwritten read as 416 out_of_range carrying the tail", () => {
    const error = new ReadUnwritten({ seqNum: 7, timestamp: 1234 });
    assert.ok(error instanceof S2Error);
    assert.equal(error.bodyKind, "unwritten");
    assert.equal(error.code, "invalid");
    assert.deepEqual(error.tail, { seqNum: 7, timestamp: 1234 });
    assert.deepEqual(errorInfoOf(error), {
      http: 416,
      connect: "out_of_range",
      retryable: false,
      noSideEffects: true,
    });
  });

  it("gives the special bodies the retry flags of their code", () => {
    for (const info of Object.values(errorBodyInfo)) {
      assert.equal(info.retryable, errorCodeInfo.invalid.retryable);
      assert.equal(info.noSideEffects, errorCodeInfo.invalid.noSideEffects);
      assert.equal(connectHttpStatus[info.connect] === info.http, info.http === 412);
    }
  });
});

describe("message helpers", () => {
  const cases: [S2Error, ErrorCode, string][] = [
    [basinNotFound("my-basin"), "basin_not_found", "basin `my-basin` not found"],
    [
      streamNotFound({ basin: "my-basin", stream: "a/b" }),
      "stream_not_found",
      "stream `a/b` in basin `my-basin` not found",
    ],
    [basinAlreadyExists("my-basin"), "resource_already_exists", "basin `my-basin` already exists"],
    [
      streamAlreadyExists({ basin: "my-basin", stream: "s" }),
      "resource_already_exists",
      "stream `s` in basin `my-basin` already exists",
    ],
    [
      basinDeletionPending("my-basin"),
      "basin_deletion_pending",
      "basin `my-basin` is being deleted",
    ],
    [streamDeletionPending(), "stream_deletion_pending", "stream deletion pending"],
    [
      transactionConflict(),
      "transaction_conflict",
      "transaction conflict occurred \u2013 this is usually retriable",
    ],
    [notImplemented(), "not_implemented", "Not implemented"],
    [
      invalid("age must be greater than 0 seconds"),
      "invalid",
      "age must be greater than 0 seconds",
    ],
  ];
  for (const [error, code, message] of cases) {
    it(`says "${message}"`, () => {
      assert.ok(error instanceof S2Error);
      assert.equal(error.code, code);
      assert.equal(error.message, message);
    });
  }
});
