// Goal: a checkpoint decodes to exactly what was encoded, and damaged bytes are an error, never a
// different checkpoint. Method: round-trips of generated rows, then every single-byte flip and
// every truncation of one encoded checkpoint.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Slicer } from "../core/slices.js";
import { encodeSegmentEntryKey, encodeSegmentEntryValue, KeyType } from "./kv/keys.js";
import {
  type Checkpoint,
  CheckpointFormatError,
  decodeCheckpoint,
  encodeCheckpoint,
  referencesOf,
} from "./checkpoint.js";

const header = {
  walId: 41,
  writeId: "00".repeat(16),
  writerEpoch: 3,
  nextStreamId: 7,
  chunkIdBound: 3 * 2 ** 32 + 5,
  createdAtMs: 1_700_000_000_000,
};

function sample(): Checkpoint {
  return {
    header,
    rows: [
      [new Uint8Array([KeyType.Basin, 97]), new TextEncoder().encode('{"name":"a"}')],
      [
        encodeSegmentEntryKey(1, 0),
        encodeSegmentEntryValue({
          source: "chunk",
          objectId: 3 * 2 ** 32,
          offset: 93,
          length: 20,
          recordCount: 2,
        }),
      ],
      [
        encodeSegmentEntryKey(1, 2),
        encodeSegmentEntryValue({
          source: "wal",
          objectId: 40,
          offset: 120,
          length: 9,
          recordCount: 1,
        }),
      ],
      [new Uint8Array([KeyType.FenceWalIds]), new TextEncoder().encode("[0,12]")],
    ],
  };
}

describe("checkpoint format", () => {
  it("round-trips header and rows, and names the objects its index references", async () => {
    const bytes = await encodeCheckpoint(sample());
    // Encoded in slices that pause at every row, the bytes are the same.
    assert.deepEqual(await encodeCheckpoint(sample(), new Slicer(0)), bytes);
    const decoded = decodeCheckpoint(bytes);
    assert.deepEqual(decoded.header, header);
    assert.deepEqual(
      decoded.rows.map(([key, value]) => [[...key], [...value]]),
      sample().rows.map(([key, value]) => [[...key], [...value]]),
    );
    const references = await referencesOf(decoded.rows, new Slicer(0));
    assert.deepEqual([...references.chunkIds], [3 * 2 ** 32]);
    assert.deepEqual([...references.walIds], [40]);
    assert.deepEqual([...references.fenceWalIds], [0, 12]);
  });

  it("rejects every flipped byte and every truncation", async () => {
    const bytes = await encodeCheckpoint(sample());
    for (let i = 0; i < bytes.length; i++) {
      const damaged = bytes.slice();
      damaged[i]! ^= 0x40;
      assert.throws(() => decodeCheckpoint(damaged), CheckpointFormatError, `flip at ${i}`);
    }
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(() => decodeCheckpoint(bytes.subarray(0, length)), CheckpointFormatError);
    }
  });
});
