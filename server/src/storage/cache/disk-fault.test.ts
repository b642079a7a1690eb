// Goal: the disk faults that degrade the cache are told apart from every other failure, whatever
// wraps them. Method: errors shaped as Node's fs and classic-level's report them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssertionError } from "../../core/assert.js";
import { diskFaultOf } from "./disk-fault.js";

const coded = (message: string, code: string, cause?: unknown) =>
  Object.assign(new Error(message, { cause }), { code });

describe("diskFaultOf", () => {
  it("names Node's errno codes of a failing disk", () => {
    for (const code of ["ENOSPC", "EDQUOT", "EIO", "EROFS"]) {
      assert.equal(diskFaultOf(coded("x", code)), `${code}: x`);
    }
  });

  it("names classic-level's I/O errors by LevelDB's errno text, through the open's wrapper", () => {
    const io = coded("IO error: /c/000003.log: No space left on device", "LEVEL_IO_ERROR");
    assert.match(diskFaultOf(io) ?? "", /^ENOSPC: IO error/);
    const open = coded("Database failed to open", "LEVEL_DATABASE_NOT_OPEN", io);
    assert.match(diskFaultOf(open) ?? "", /^ENOSPC: IO error/);
    const eio = coded("IO error: /c/MANIFEST: Input/output error", "LEVEL_IO_ERROR");
    assert.match(diskFaultOf(eio) ?? "", /^EIO: /);
    const ro = coded("IO error: /c/LOCK: Read-only file system", "LEVEL_IO_ERROR");
    assert.match(diskFaultOf(ro) ?? "", /^EROFS: /);
  });

  it("leaves every other failure alone", () => {
    assert.equal(diskFaultOf(new Error("bug")), undefined);
    assert.equal(diskFaultOf(coded("x", "ENOENT")), undefined);
    assert.equal(diskFaultOf(coded("locked", "LEVEL_LOCKED")), undefined);
    assert.equal(diskFaultOf(coded("corrupt", "LEVEL_CORRUPTION")), undefined);
    assert.equal(diskFaultOf(new AssertionError("invariant")), undefined);
    assert.equal(diskFaultOf(new Error("wrapped", { cause: new AssertionError("x") })), undefined);
    assert.equal(diskFaultOf("ENOSPC"), undefined);
    assert.equal(diskFaultOf(undefined), undefined);
  });
});
