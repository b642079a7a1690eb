// Goal: scope matching, effective operations, the no-escalation rule and listing narrowing behave
// as S2 documents them (S2-API.md §4.4, docs/design/auth.md). Method: table tests of the pure
// functions, including the edge cases (empty exact, empty prefix, null sets).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AccessScope,
  effectiveOperations,
  isResourceSubset,
  matchesResource,
  narrowListing,
  type ResourceSet,
  rootScope,
  scopeEscalation,
} from "./access-scope.js";
import { operations } from "./operations.js";

function scope(fields: Partial<AccessScope>): AccessScope {
  return {
    basins: null,
    streams: null,
    accessTokens: null,
    opGroups: null,
    ops: [],
    ...fields,
  };
}

describe("matchesResource", () => {
  const cases: [ResourceSet | null, string, boolean][] = [
    [null, "a", false],
    [{ exact: "" }, "", false],
    [{ exact: "" }, "a", false],
    [{ exact: "abc" }, "abc", true],
    [{ exact: "abc" }, "abcd", false],
    [{ prefix: "" }, "anything", true],
    [{ prefix: "ns/" }, "ns/x", true],
    [{ prefix: "ns/" }, "ns", false],
  ];
  for (const [set, name, expected] of cases) {
    it(`${JSON.stringify(set)} ∋ ${JSON.stringify(name)} is ${expected}`, () => {
      assert.equal(matchesResource(set, name), expected);
    });
  }
});

describe("isResourceSubset", () => {
  const cases: [ResourceSet | null, ResourceSet | null, boolean][] = [
    [null, null, true],
    [{ exact: "" }, null, true],
    [{ exact: "a" }, null, false],
    [{ prefix: "" }, null, false],
    [{ exact: "ab" }, { prefix: "a" }, true],
    [{ exact: "b" }, { prefix: "a" }, false],
    [{ prefix: "ab" }, { prefix: "a" }, true],
    [{ prefix: "a" }, { prefix: "ab" }, false],
    [{ prefix: "a" }, { exact: "a" }, false],
    [{ exact: "a" }, { exact: "a" }, true],
    [{ exact: "a" }, { exact: "b" }, false],
    [{ prefix: "x" }, { prefix: "" }, true],
  ];
  for (const [child, parent, expected] of cases) {
    it(`${JSON.stringify(child)} ⊆ ${JSON.stringify(parent)} is ${expected}`, () => {
      assert.equal(isResourceSubset(child, parent), expected);
    });
  }
});

describe("effectiveOperations", () => {
  it("is the union of ops and granted groups", () => {
    const permitted = effectiveOperations(
      scope({
        ops: ["list-basins"],
        opGroups: { account: null, basin: null, stream: { read: true, write: false } },
      }),
    );
    assert.deepEqual([...permitted].sort(), [
      "check-tail",
      "get-stream-config",
      "list-basins",
      "read",
      "stream-metrics",
    ]);
  });

  it("grants every operation of the write groups, fence and trim included", () => {
    const permitted = effectiveOperations(
      scope({ opGroups: { account: null, basin: null, stream: { read: false, write: true } } }),
    );
    assert.deepEqual([...permitted].sort(), ["append", "fence", "reconfigure-stream", "trim"]);
  });

  it("is empty for an empty scope and everything for the root scope", () => {
    assert.equal(effectiveOperations(scope({})).size, 0);
    assert.equal(effectiveOperations(rootScope).size, operations.length);
  });
});

describe("scopeEscalation", () => {
  const parent = scope({
    basins: { prefix: "team-" },
    streams: { prefix: "" },
    accessTokens: { prefix: "team/" },
    ops: ["read", "append", "issue-access-token"],
  });

  it("accepts a narrower scope", () => {
    const child = scope({
      basins: { exact: "team-one" },
      streams: { prefix: "x/" },
      ops: ["read"],
    });
    assert.equal(scopeEscalation(child, parent), undefined);
  });

  it("rejects an operation the parent lacks", () => {
    assert.match(scopeEscalation(scope({ ops: ["trim"] }), parent) ?? "", /`trim`/);
  });

  it("rejects a group that grants an operation the parent lacks", () => {
    const child = scope({
      opGroups: { account: null, basin: null, stream: { read: true, write: false } },
    });
    assert.match(
      scopeEscalation(child, parent) ?? "",
      /get-stream-config|check-tail|stream-metrics/,
    );
  });

  it("rejects each wider resource set", () => {
    assert.match(
      scopeEscalation(scope({ basins: { prefix: "" }, ops: ["read"] }), parent) ?? "",
      /basins/,
    );
    assert.match(
      scopeEscalation(scope({ accessTokens: { exact: "other" }, ops: ["read"] }), parent) ?? "",
      /access_tokens/,
    );
  });

  it("lets the root scope issue anything", () => {
    assert.equal(scopeEscalation(parent, rootScope), undefined);
  });
});

describe("narrowListing", () => {
  it("lists nothing for a null or empty-exact set", () => {
    assert.equal(narrowListing(null, { prefix: "", startAfter: "" }), "none");
    assert.equal(narrowListing({ exact: "" }, { prefix: "", startAfter: "" }), "none");
  });

  it("intersects prefixes", () => {
    assert.deepEqual(narrowListing({ prefix: "ab" }, { prefix: "a", startAfter: "x" }), {
      prefix: "ab",
      startAfter: "x",
      exact: undefined,
    });
    assert.deepEqual(narrowListing({ prefix: "a" }, { prefix: "abc", startAfter: "" }), {
      prefix: "abc",
      startAfter: "",
      exact: undefined,
    });
    assert.equal(narrowListing({ prefix: "a" }, { prefix: "b", startAfter: "" }), "none");
  });

  it("turns an exact set into its name", () => {
    assert.deepEqual(narrowListing({ exact: "abc" }, { prefix: "ab", startAfter: "" }), {
      prefix: "abc",
      startAfter: "",
      exact: "abc",
    });
    assert.equal(narrowListing({ exact: "abc" }, { prefix: "b", startAfter: "" }), "none");
  });
});
