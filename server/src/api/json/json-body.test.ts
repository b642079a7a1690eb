// Goal: JSON bodies are accepted and rejected as S2 lite's serde_json extraction does (S2-API.md
// §3.3): syntax, encoding and shape problems are 400 bad_json, serde's field forms (Option, Maybe,
// default) keep absent and null apart. Method: table cases for each helper, and a fake request
// stream for the Content-Type rules of required and optional bodies.
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { S2Error } from "../../core/errors.js";
import type { ApiRequest } from "../http/request-context.js";
import {
  isJsonMediaType,
  jsonDepthMax,
  parseJsonBytes,
  parseJsonText,
  readJsonBody,
  readNonNull,
  readOptional,
  readOptionalJsonBody,
  readPatch,
  readRequired,
  readSafeU64,
  readString,
  readU64,
  rfc3339FromMs,
} from "./json-body.js";

function assertCode(run: () => unknown, code: string): void {
  assert.throws(run, (error: unknown) => error instanceof S2Error && error.code === code);
}

async function assertRejectsCode(run: () => Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(run, (error: unknown) => error instanceof S2Error && error.code === code);
}

function fakeRequest(body: string, headers: Record<string, string>): ApiRequest {
  const stream = Readable.from([Buffer.from(body)]) as Readable & { headers: unknown };
  stream.headers = headers;
  return stream as unknown as ApiRequest;
}

describe("isJsonMediaType", () => {
  it("accepts application/json and application/*+json only", () => {
    for (const type of ["application/json", "application/problem+json", "application/vnd.s2+json"])
      assert.equal(isJsonMediaType(type), true, type);
    for (const type of [undefined, "text/json", "application/jsonx", "application/+json", "json"])
      assert.equal(isJsonMediaType(type), false, String(type));
  });
});

describe("parseJson", () => {
  it("parses documents", () => {
    assert.deepEqual(parseJsonText('{"a":[1,"x",null,true]}'), { a: [1, "x", null, true] });
    assert.deepEqual(parseJsonText('"\\ud83d\\ude00"'), "😀");
  });

  it("rejects what serde_json rejects with bad_json", () => {
    for (const text of ["", "{", "{} x", "{'a':1}", "\uFEFF{}", '"\\ud800"', '{"\\udc00":1}'])
      assertCode(() => parseJsonText(text), "bad_json");
    assertCode(() => parseJsonBytes(new Uint8Array([0x22, 0xff, 0x22])), "bad_json");
  });

  it("limits nesting to serde_json's depth", () => {
    const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    assert.doesNotThrow(() => parseJsonText(nested(jsonDepthMax)));
    assertCode(() => parseJsonText(nested(jsonDepthMax + 1)), "bad_json");
    assertCode(() => parseJsonText(nested(100_000)), "bad_json");
  });
});

describe("field readers", () => {
  const object = { a: 1, n: null, s: "x" };

  it("readOptional: absent and null are undefined", () => {
    assert.equal(readOptional(object, "missing", "", readU64), undefined);
    assert.equal(readOptional(object, "n", "", readU64), undefined);
    assert.equal(readOptional(object, "a", "", readU64), 1);
  });

  it("readPatch: absent is undefined, null is null", () => {
    assert.equal(readPatch(object, "missing", "", readU64), undefined);
    assert.equal(readPatch(object, "n", "", readU64), null);
    assert.equal(readPatch(object, "a", "", readU64), 1);
  });

  it("readNonNull: absent is undefined, null is bad_json", () => {
    assert.equal(readNonNull(object, "missing", "", readU64), undefined);
    assertCode(() => readNonNull(object, "n", "", readU64), "bad_json");
  });

  it("readRequired: absent is bad_json", () => {
    assert.equal(readRequired(object, "s", "", readString), "x");
    assertCode(() => readRequired(object, "missing", "", readString), "bad_json");
  });

  it("does not read inherited properties", () => {
    assert.equal(readOptional({}, "toString", "", readString), undefined);
    assert.equal(readPatch({}, "constructor", "", readString), undefined);
  });

  it("readU64 takes non-negative integers; readSafeU64 answers 422 above 2^53 - 1", () => {
    assert.equal(readU64(0, "f"), 0);
    assert.ok(Object.is(readU64(-0, "f"), 0));
    assert.equal(readU64(2 ** 60, "f"), 2 ** 60);
    for (const value of [-1, 1.5, "1", null, true, Number.POSITIVE_INFINITY])
      assertCode(() => readU64(value, "f"), "bad_json");
    assert.equal(readSafeU64(Number.MAX_SAFE_INTEGER, "f"), Number.MAX_SAFE_INTEGER);
    assertCode(() => readSafeU64(2 ** 53, "f"), "invalid");
  });
});

describe("request bodies", () => {
  it("a required body needs a JSON Content-Type", async () => {
    assert.deepEqual(
      await readJsonBody(fakeRequest('{"a":1}', { "content-type": "application/json" })),
      { a: 1 },
    );
    assert.deepEqual(
      await readJsonBody(fakeRequest("[]", { "content-type": "Application/JSON; charset=utf-8" })),
      [],
    );
    await assertRejectsCode(() => readJsonBody(fakeRequest("{}", {})), "bad_json");
    await assertRejectsCode(
      () => readJsonBody(fakeRequest("{}", { "content-type": "text/plain" })),
      "bad_json",
    );
    await assertRejectsCode(
      () => readJsonBody(fakeRequest("", { "content-type": "application/json" })),
      "bad_json",
    );
    await assertRejectsCode(
      () => readJsonBody(fakeRequest("[1,2]", { "content-type": "application/json" }), 4),
      "bad_json",
    );
  });

  it("an optional body is absent without Content-Type or when empty", async () => {
    assert.equal(await readOptionalJsonBody(fakeRequest("{not json", {})), undefined);
    assert.equal(
      await readOptionalJsonBody(fakeRequest("", { "content-type": "application/json" })),
      undefined,
    );
    assert.deepEqual(
      await readOptionalJsonBody(fakeRequest("{}", { "content-type": "application/json" })),
      {},
    );
    await assertRejectsCode(
      () => readOptionalJsonBody(fakeRequest("{}", { "content-type": "text/plain" })),
      "bad_json",
    );
    await assertRejectsCode(
      () => readOptionalJsonBody(fakeRequest("{", { "content-type": "application/json" })),
      "bad_json",
    );
  });
});

describe("rfc3339FromMs", () => {
  it("renders UTC with milliseconds", () => {
    assert.equal(rfc3339FromMs(0), "1970-01-01T00:00:00.000Z");
    assert.equal(rfc3339FromMs(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
  });
});
