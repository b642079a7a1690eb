// Goal: a checkpoint and a checkpoint part decode to exactly what was encoded, and damaged bytes
// are an error, never a different checkpoint; a checkpoint's parts merge to its rows (a delta's
// values replace, its tombstones delete), and parts out of order, of another id or size, or a
// checkpoint with parts under the old magic are refused. Method: round-trips of generated rows,
// every single-byte flip and every truncation of one encoded object, and `readCheckpoint` over a
// map of objects.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Slicer } from "../core/slices.js";
import { encodeSegmentEntryKey, encodeSegmentEntryValue, KeyType } from "./kv/keys.js";
import {
  type Checkpoint,
  CheckpointFormatError,
  type CheckpointPart,
  checkpointMagic,
  decodeCheckpoint,
  decodeCheckpointPart,
  encodeCheckpoint,
  encodeCheckpointPart,
  readCheckpoint,
  referencesOf,
} from "./checkpoint.js";
import { checkpointPartKey } from "./object-keys.js";
import { crc32c } from "./segment/crc32c.js";

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

/** Every single-byte flip and every truncation of `bytes` is a `CheckpointFormatError`. */
function assertEveryDamageRejected(
  bytes: Uint8Array,
  decode: (bytes: Uint8Array) => unknown,
): void {
  for (let i = 0; i < bytes.length; i++) {
    const damaged = bytes.slice();
    damaged[i]! ^= 0x40;
    assert.throws(() => decode(damaged), CheckpointFormatError, `flip at ${i}`);
  }
  for (let length = 0; length < bytes.length; length++) {
    assert.throws(
      () => decode(bytes.subarray(0, length)),
      CheckpointFormatError,
      `cut at ${length}`,
    );
  }
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
    assertEveryDamageRejected(await encodeCheckpoint(sample()), decodeCheckpoint);
  });
});

const basinKey = (name: string) =>
  new Uint8Array([KeyType.Basin, ...new TextEncoder().encode(name)]);
const value = (text: string) => new TextEncoder().encode(text);
const hexRows = (rows: readonly (readonly [Uint8Array, Uint8Array | null])[]) =>
  rows
    .map(
      ([key, v]) =>
        `${Buffer.from(key).toString("hex")}=${v === null ? "-" : Buffer.from(v).toString("hex")}`,
    )
    .sort();

/** A checkpoint naming `parts` (encoded), and the objects by key, as `readCheckpoint` reads them. */
async function bucketOf(parts: readonly CheckpointPart[]): Promise<Map<string, Uint8Array>> {
  const objects = new Map<string, Uint8Array>();
  const refs = [];
  for (const part of parts) {
    const bytes = await encodeCheckpointPart(part);
    objects.set(checkpointPartKey(part.partId), bytes);
    refs.push({ key: checkpointPartKey(part.partId), bytes: bytes.length });
  }
  objects.set(
    "checkpoints/x",
    await encodeCheckpoint({ header: { ...header, parts: refs, partIdBound: 100 }, rows: [] }),
  );
  return objects;
}

describe("checkpoint parts", () => {
  const base: CheckpointPart = {
    partId: 1,
    kind: "base",
    rows: [
      [basinKey("a"), value("1")],
      [basinKey("b"), value("2")],
      [basinKey("c"), value("3")],
    ],
  };
  const delta: CheckpointPart = {
    partId: 2,
    kind: "delta",
    rows: [
      [basinKey("b"), null],
      [basinKey("c"), value("33")],
      [basinKey("d"), value("4")],
    ],
  };

  it("round-trip with their tombstones and merge to the checkpoint's rows", async () => {
    const decoded = decodeCheckpointPart(await encodeCheckpointPart(delta));
    assert.deepEqual(hexRows(decoded.rows), hexRows(delta.rows));
    assert.equal(decoded.kind, "delta");
    const objects = await bucketOf([base, delta]);
    const checkpoint = await readCheckpoint("checkpoints/x", async (key) => objects.get(key));
    assert.deepEqual(
      hexRows(checkpoint.rows),
      hexRows([
        [basinKey("a"), value("1")],
        [basinKey("c"), value("33")],
        [basinKey("d"), value("4")],
      ]),
    );
  });

  it("reject every flipped byte and every truncation", async () => {
    assertEveryDamageRejected(await encodeCheckpointPart(delta), decodeCheckpointPart);
  });

  it("refuse a tombstone in a base, parts out of order, a part of another id or size", async () => {
    await assert.rejects(
      encodeCheckpointPart({ ...base, rows: [[basinKey("a"), null]] }).then(decodeCheckpointPart),
      CheckpointFormatError,
    );
    const read = (objects: Map<string, Uint8Array>) =>
      readCheckpoint("checkpoints/x", async (key) => objects.get(key));
    await assert.rejects(read(await bucketOf([delta, base])), CheckpointFormatError);
    const swapped = await bucketOf([base, delta]);
    swapped.set(checkpointPartKey(2), await encodeCheckpointPart({ ...delta, partId: 7 }));
    await assert.rejects(read(swapped), CheckpointFormatError, "another id");
    const resized = await bucketOf([base, delta]);
    resized.set(checkpointPartKey(2), await encodeCheckpointPart({ ...delta, rows: [] }));
    await assert.rejects(read(resized), CheckpointFormatError, "another size");
  });

  it("a checkpoint with parts has its own magic, so a build without parts refuses it", async () => {
    const objects = await bucketOf([base]);
    const bytes = objects.get("checkpoints/x")!;
    assert.notEqual(Buffer.from(bytes.subarray(0, 8)).toString("latin1"), checkpointMagic);
    assert.equal(decodeCheckpoint(bytes).header.parts?.length, 1);
    // The old magic with parts in its header is refused too (its CRC recomputed).
    const relabeled = bytes.slice();
    relabeled.set(new TextEncoder().encode(checkpointMagic), 0);
    const crc = crc32c(relabeled.subarray(0, relabeled.length - 4));
    new DataView(relabeled.buffer).setUint32(relabeled.length - 4, crc);
    assert.throws(() => decodeCheckpoint(relabeled), CheckpointFormatError);
  });
});
