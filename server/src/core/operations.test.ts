import assert from "node:assert/strict";
import { test } from "node:test";
import { isOperation, operationGroups, operations } from "./operations.js";

test("every operation has exactly one group and the wire names are the spec's", () => {
  assert.equal(operations.length, 24); // S2's Operation enum, 1 to 24 (common/src/access.rs)
  assert.deepEqual(Object.keys(operationGroups).sort(), [...operations].sort());
  assert.equal(isOperation("append"), true);
  assert.equal(isOperation("APPEND"), false);
  assert.equal(isOperation("unspecified"), false);
});

test("the groups split into the six read/write sets S2 documents", () => {
  const group = (level: string, access: string) =>
    operations.filter((op) => {
      const g = operationGroups[op];
      return g.level === level && g.access === access;
    });
  assert.deepEqual(group("account", "read"), [
    "list-basins",
    "list-access-tokens",
    "account-metrics",
    "list-locations",
    "get-default-location",
  ]);
  assert.deepEqual(group("account", "write"), [
    "create-basin",
    "delete-basin",
    "issue-access-token",
    "revoke-access-token",
    "set-default-location",
  ]);
  assert.deepEqual(group("stream", "write"), ["reconfigure-stream", "append", "trim", "fence"]);
  assert.deepEqual(group("basin", "read"), ["get-basin-config", "list-streams", "basin-metrics"]);
});
