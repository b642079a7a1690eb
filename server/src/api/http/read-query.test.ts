// Goal: a read's query and headers turn into the same read request and mode as S2 lite's
// extractors produce (S2-API.md §5.4, §5.7, §3.1), with lite's error codes. Method: table cases
// for each parameter, the start rule, unary caps, Last-Event-ID parsing and resumption, and the
// mode chosen by Content-Type / Accept on fake requests.
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { S2Error } from "../../core/errors.js";
import {
  formatLastEventId,
  isProtobufMediaType,
  parseLastEventId,
  parseReadQuery,
  readModeOf,
  readRequestOf,
  resumedReadRequest,
  unaryReadRequest,
} from "./read-query.js";

const q = (text: string) => new URLSearchParams(text);
const requestOf = (text: string) => readRequestOf(parseReadQuery(q(text)));
const withHeaders = (headers: Record<string, string>) =>
  ({ headers }) as unknown as IncomingMessage;

function assertCode(run: () => unknown, code: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof S2Error, String(error));
    assert.equal(error.code, code, error.message);
    return true;
  });
}

describe("read query", () => {
  it("defaults to the tail, no clamp, no limits", () => {
    assert.deepEqual(requestOf(""), {
      start: { kind: "tailOffset", tailOffset: 0 },
      clamp: false,
      count: undefined,
      bytes: undefined,
      until: undefined,
      waitSecs: undefined,
    });
  });

  it("reads every parameter", () => {
    assert.deepEqual(requestOf("seq_num=3&clamp=true&count=2&bytes=100&until=50&wait=4&x=y"), {
      start: { kind: "seqNum", seqNum: 3 },
      clamp: true,
      count: 2,
      bytes: 100,
      until: 50,
      waitSecs: 4,
    });
    assert.deepEqual(requestOf("timestamp=7").start, { kind: "timestamp", timestamp: 7 });
    assert.deepEqual(requestOf("tail_offset=1").start, { kind: "tailOffset", tailOffset: 1 });
  });

  it("rejects malformed values with bad_query", () => {
    for (const text of [
      "seq_num=",
      "seq_num=-1",
      "seq_num=abc",
      "count=1.5",
      "clamp=1",
      "clamp=yes",
      "wait=4294967296",
      "until=18446744073709551616",
      "seq_num=1&seq_num=2",
    ]) {
      assertCode(() => parseReadQuery(q(text)), "bad_query");
    }
    assert.equal(parseReadQuery(q("wait=4294967295")).waitSecs, 4294967295);
  });

  it("saturates u64 values beyond the safe range", () => {
    const query = parseReadQuery(q("seq_num=18446744073709551615&until=18446744073709551615"));
    assert.equal(query.seqNum, Number.MAX_SAFE_INTEGER);
    assert.equal(query.until, Number.MAX_SAFE_INTEGER + 1);
  });

  it("allows at most one start (422 invalid)", () => {
    for (const text of [
      "seq_num=1&timestamp=2",
      "seq_num=1&tail_offset=2",
      "timestamp=1&tail_offset=0",
    ]) {
      const query = parseReadQuery(q(text));
      assertCode(() => readRequestOf(query), "invalid");
    }
  });

  it("caps unary reads like lite", () => {
    const capped = unaryReadRequest(requestOf("seq_num=0"));
    assert.equal(capped.count, 1000);
    assert.equal(capped.bytes, 1 << 20);
    assert.equal(capped.waitSecs, undefined);
    const large = unaryReadRequest(requestOf("seq_num=0&count=5000&bytes=99999999&wait=600"));
    assert.deepEqual([large.count, large.bytes, large.waitSecs], [1000, 1 << 20, 60]);
    const small = unaryReadRequest(requestOf("seq_num=0&count=5&bytes=10&wait=0"));
    assert.deepEqual([small.count, small.bytes, small.waitSecs], [5, 10, 0]);
  });
});

describe("Last-Event-ID", () => {
  it("parses three u64s and formats them back", () => {
    assert.deepEqual(parseLastEventId("5,6,70"), { seqNum: 5, count: 6, bytes: 70 });
    assert.deepEqual(parseLastEventId("+1,0,0"), { seqNum: 1, count: 0, bytes: 0 });
    assert.equal(formatLastEventId({ seqNum: 5, count: 6, bytes: 70 }), "5,6,70");
  });

  it("rejects anything else with bad_header", () => {
    for (const value of [
      "",
      "1",
      "1,2",
      "1,2,3,4",
      "a,b,c",
      "1,,3",
      "-1,0,0",
      "1, 2,3",
      "18446744073709551616,0,0",
    ]) {
      assertCode(() => parseLastEventId(value), "bad_header");
    }
  });

  it("resumes after the id: start forced, limits reduced (saturating)", () => {
    const request = requestOf("timestamp=5&clamp=true&count=10&bytes=100");
    assert.deepEqual(resumedReadRequest(request, { seqNum: 7, count: 3, bytes: 200 }), {
      ...request,
      start: { kind: "seqNum", seqNum: 8 },
      count: 7,
      bytes: 0,
    });
    const unbounded = resumedReadRequest(requestOf(""), { seqNum: 0, count: 1, bytes: 9 });
    assert.equal(unbounded.count, undefined);
    assert.equal(unbounded.bytes, undefined);
  });
});

describe("read mode", () => {
  it("picks S2S by Content-Type before looking at other headers", () => {
    assert.deepEqual(
      readModeOf(withHeaders({ "content-type": "S2S/Proto", "s2-format": "bogus" })),
      { kind: "s2s" },
    );
  });

  it("picks SSE by the first Accept type only", () => {
    assert.deepEqual(
      readModeOf(
        withHeaders({
          accept: "text/event-stream",
          "s2-format": "base64",
          "last-event-id": "1,2,3",
        }),
      ),
      { kind: "sse", format: "base64", lastEventId: { seqNum: 1, count: 2, bytes: 3 } },
    );
    assert.deepEqual(readModeOf(withHeaders({ accept: "application/json, text/event-stream" })), {
      kind: "unary",
      format: "raw",
      protobuf: false,
    });
  });

  it("picks protobuf unary by the first Accept type", () => {
    assert.deepEqual(readModeOf(withHeaders({ accept: "application/x-protobuf" })), {
      kind: "unary",
      format: "raw",
      protobuf: true,
    });
    assert.equal(isProtobufMediaType("application/protobuf"), true);
    assert.equal(isProtobufMediaType("application/json"), false);
  });

  it("rejects bad S2-Format and (for SSE only) bad Last-Event-ID", () => {
    assertCode(() => readModeOf(withHeaders({ "s2-format": "hex" })), "bad_header");
    assertCode(
      () => readModeOf(withHeaders({ accept: "text/event-stream", "last-event-id": "x" })),
      "bad_header",
    );
    assert.equal(readModeOf(withHeaders({ "last-event-id": "x" })).kind, "unary");
  });
});
