// Goal: `--cache-size` accepts byte counts and binary suffixes and nothing else. Method: a table
// of accepted and refused inputs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseByteSize } from "./open-stores.js";

describe("parseByteSize", () => {
  it("reads byte counts and KiB/MiB/GiB/TiB", () => {
    assert.equal(parseByteSize("0"), 0);
    assert.equal(parseByteSize("1048576"), 1 << 20);
    assert.equal(parseByteSize("256MiB"), 256 << 20);
    assert.equal(parseByteSize("1.5 GiB"), 1.5 * 2 ** 30);
    assert.equal(parseByteSize("64KiB"), 64 << 10);
    assert.equal(parseByteSize("2TiB"), 2 * 2 ** 40);
  });

  it("refuses anything else", () => {
    for (const text of ["", "-1", "1MB", "1 mb", "MiB", "1e9", "12x", "1.2.3GiB"]) {
      assert.equal(parseByteSize(text), undefined, text);
    }
  });
});
