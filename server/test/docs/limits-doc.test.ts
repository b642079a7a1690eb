// Goal: docs/limits.md, which the README points operators to, lists every exported limit,
// timeout and default with its current value (issue 14: "README lists every limit and timeout
// with its default and flag"). Method: render it afresh from the code and compare with the file.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { it } from "node:test";
import { limitsDocPath, renderLimitsDoc } from "../../../scripts/limits-doc.js";
import { segmentPutTimeoutMs } from "../../src/core/limits.js";

it("docs/limits.md is what scripts/limits-doc.ts makes of the code", async () => {
  const rendered = await renderLimitsDoc();
  assert.match(
    rendered,
    new RegExp(`\\| \`segmentPutTimeoutMs\` \\| ${segmentPutTimeoutMs / 1000} s \\|`),
  );
  assert.equal(
    await readFile(limitsDocPath, "utf8"),
    rendered,
    "docs/limits.md is stale: run `node --import tsx scripts/limits-doc.ts` and commit it",
  );
});
