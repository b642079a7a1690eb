// Goal: the byte-wise big-endian helpers write and read exactly what DataView does, at the edges
// of their ranges, at any offset, and refuse a u64 this server cannot represent.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readU32, readU64, writeU32, writeU64 } from "./big-endian.js";

describe("big-endian integers", () => {
  it("match DataView for u32 and u64 at the edges, at an odd offset", () => {
    for (const value of [0, 1, 0xff, 0x100, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]) {
      const ours = new Uint8Array(7);
      writeU32(ours, 3, value);
      const theirs = new Uint8Array(7);
      new DataView(theirs.buffer).setUint32(3, value);
      assert.deepEqual(ours, theirs, `u32 ${value}`);
      assert.equal(readU32(ours, 3), value);
    }
    for (const value of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
      const ours = new Uint8Array(9);
      writeU64(ours, 1, value);
      const theirs = new Uint8Array(9);
      new DataView(theirs.buffer).setBigUint64(1, BigInt(value));
      assert.deepEqual(ours, theirs, `u64 ${value}`);
      assert.equal(readU64(ours, 1), value);
    }
  });

  it("refuses a u64 that is negative, fractional or past 2^53", () => {
    for (const value of [-1, 1.5, 2 ** 53, Number.NaN]) {
      assert.throws(() => writeU64(new Uint8Array(8), 0, value), /not a u64/);
    }
  });
});
