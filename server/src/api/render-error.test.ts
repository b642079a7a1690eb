// Goal: pin how an error becomes a ConnectError: the Connect code of the error table for every S2
// code, the S2 code in metadata, the 412/416 details as metadata, protocol errors passed through.
// Method: render one error per table row and the special errors, and compare with literal values.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError, decodeBinaryHeader } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { AssertionError } from "../core/assert.js";
import {
  AppendConditionFailed,
  errorCodeInfo,
  errorCodes,
  ReadUnwritten,
  S2Error,
} from "../core/errors.js";
import { renderConnectError, setUnexpectedErrorLogger } from "./render-error.js";

describe("renderConnectError", () => {
  it("maps every S2 code to its table Connect code, with the S2 code in metadata", () => {
    for (const code of errorCodes) {
      const rendered = renderConnectError(new S2Error(code, `message of ${code}`));
      assert.equal(codeToString(rendered.code), errorCodeInfo[code].connect, code);
      assert.equal(rendered.rawMessage, `message of ${code}`);
      assert.equal(rendered.metadata.get("s2-error-code"), code);
    }
  });

  it("carries the 412 seq num mismatch and fencing token as metadata", () => {
    const seqNum = renderConnectError(
      new AppendConditionFailed({ kind: "seq_num_mismatch", nextSeqNum: 7 }),
    );
    assert.equal(seqNum.code, Code.FailedPrecondition);
    assert.equal(seqNum.metadata.get("s2-seq-num-mismatch"), "7");
    assert.equal(seqNum.metadata.get("s2-error-code"), "invalid");
    const token = renderConnectError(
      new AppendConditionFailed({ kind: "fencing_token_mismatch", currentToken: "writer-é" }),
    );
    assert.equal(token.code, Code.FailedPrecondition);
    const bin = token.metadata.get("s2-fencing-token-mismatch-bin");
    assert.ok(bin !== null);
    assert.equal(new TextDecoder().decode(decodeBinaryHeader(bin)), "writer-é");
  });

  it("carries the 416 tail as metadata", () => {
    const rendered = renderConnectError(new ReadUnwritten({ seqNum: 4, timestamp: 1234 }));
    assert.equal(rendered.code, Code.OutOfRange);
    assert.equal(rendered.metadata.get("s2-tail-seq-num"), "4");
    assert.equal(rendered.metadata.get("s2-tail-timestamp"), "1234");
  });

  it("passes protocol errors through, hides unexpected ones, and rethrows assertions", () => {
    const protocol = new ConnectError("parse binary: premature EOF", Code.InvalidArgument);
    assert.equal(renderConnectError(protocol), protocol);
    const logged: unknown[] = [];
    setUnexpectedErrorLogger((error) => logged.push(error));
    const unexpected = renderConnectError(new TypeError("secret detail"));
    assert.equal(unexpected.code, Code.Unknown);
    assert.equal(unexpected.rawMessage, "internal error");
    assert.equal(unexpected.metadata.get("s2-error-code"), "other");
    assert.equal(logged.length, 1);
    assert.throws(() => renderConnectError(new AssertionError("broken")), AssertionError);
  });
});
