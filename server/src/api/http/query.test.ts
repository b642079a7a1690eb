// Goal: query parameters parse as S2 lite's serde_urlencoded extraction does, every failure being
// 400 bad_query (S2-API.md §3.3, §6.4). Method: table cases around each rule (digits, `+`, u64
// overflow, booleans, duplicates, listing prefixes).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { S2Error } from "../../core/errors.js";
import { validateBasinNamePrefix, validateStreamNamePrefix } from "../../core/names.js";
import { listQueryOf, queryBool, queryString, queryU64, queryU64BigInt } from "./query.js";

function assertBadQuery(run: () => unknown): void {
  assert.throws(run, (error: unknown) => error instanceof S2Error && error.code === "bad_query");
}

const q = (text: string) => new URLSearchParams(text);

describe("query parameters", () => {
  it("reads strings, decoding + and escapes; a repeated parameter is bad_query", () => {
    assert.equal(queryString(q(""), "prefix"), undefined);
    assert.equal(queryString(q("prefix="), "prefix"), "");
    assert.equal(queryString(q("prefix=a+b%2Fc"), "prefix"), "a b/c");
    assertBadQuery(() => queryString(q("prefix=a&prefix=b"), "prefix"));
  });

  it("reads u64 like Rust's from_str", () => {
    assert.equal(queryU64(q("n=0"), "n"), 0);
    assert.equal(queryU64(q("n=%2B7"), "n"), 7); // a literal `+` would decode to a space
    assert.equal(queryU64(q("n=007"), "n"), 7);
    assert.equal(queryU64BigInt(q("n=18446744073709551615"), "n"), (1n << 64n) - 1n);
    assert.equal(queryU64(q("n=18446744073709551615"), "n"), Number.MAX_SAFE_INTEGER);
    for (const text of ["n=", "n=-1", "n=1.5", "n=abc", "n=1e3", "n=+1", "n=18446744073709551616"])
      assertBadQuery(() => queryU64(q(text), "n"));
  });

  it("reads booleans as exactly true or false", () => {
    assert.equal(queryBool(q("b=true"), "b"), true);
    assert.equal(queryBool(q("b=false"), "b"), false);
    assert.equal(queryBool(q(""), "b"), undefined);
    for (const text of ["b=1", "b=True", "b=", "b=yes"])
      assertBadQuery(() => queryBool(q(text), "b"));
  });

  it("validates listing prefixes with the resource's rules", () => {
    assert.deepEqual(
      listQueryOf(q("prefix=ab-&start_after=ab-c&limit=5"), validateBasinNamePrefix),
      {
        prefix: "ab-",
        startAfter: "ab-c",
        limit: 5,
      },
    );
    assertBadQuery(() => listQueryOf(q("prefix=AB"), validateBasinNamePrefix));
    assertBadQuery(() => listQueryOf(q("start_after=-a"), validateBasinNamePrefix));
    assertBadQuery(() => listQueryOf(q(`prefix=${"a".repeat(49)}`), validateBasinNamePrefix));
    assert.equal(listQueryOf(q("prefix=..&limit=0"), validateStreamNamePrefix).prefix, "..");
    assertBadQuery(() => listQueryOf(q(`prefix=${"a".repeat(513)}`), validateStreamNamePrefix));
    assertBadQuery(() => listQueryOf(q("limit=x"), validateStreamNamePrefix));
  });
});
