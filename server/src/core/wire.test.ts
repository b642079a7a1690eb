// The wire limits that clients take from @tributary/protocol are the ones the server enforces.
// Method: each protocol constant compared with the server's own limit of the same meaning.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as wire from "@tributary/protocol";
import * as limits from "./limits.js";
import { encryptionKeyBytes } from "./record-encryption.js";

test("the protocol package's wire limits equal the server's", () => {
  assert.equal(wire.recordBatchCountMax, limits.recordBatchCountMax);
  assert.equal(wire.recordBatchBytesMax, limits.recordBatchBytesMax);
  assert.equal(wire.recordMeteredOverheadBytes, limits.recordMeteredOverheadBytes);
  assert.equal(wire.headerMeteredOverheadBytes, limits.headerMeteredOverheadBytes);
  assert.equal(wire.fencingTokenBytesMax, limits.fencingTokenBytesMax);
  assert.equal(wire.encryptionKeyBytes, encryptionKeyBytes);
});
