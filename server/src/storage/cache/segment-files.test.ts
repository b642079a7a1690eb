// Goal: pooled read handles never serve a file as it was (segment-files.ts header): a read after
// a delete finds nothing, a read after a rewrite of the id finds the new bytes; the pool keeps at
// most its bound of descriptors open however many files are read, and a cache nobody reads holds
// none after the idle time. Method: the real directory implementation in a temp dir, descriptors
// counted in /proc/self/fd (Linux).
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { openFsSegmentFiles, type SegmentFiles, segmentFileHandlesMax } from "./segment-files.js";

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tributary-segment-files-"));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const openDescriptors = (): number => readdirSync("/proc/self/fd").length;
const bytesOf = (fill: number, length = 4096): Uint8Array => new Uint8Array(length).fill(fill);

async function open(name: string): Promise<SegmentFiles> {
  return openFsSegmentFiles({ dir: join(dir, name) });
}

describe("segment files' pooled read handles", () => {
  it("a read after a delete finds nothing, after a rewrite the new bytes", async () => {
    const files = await open("rewrite");
    await files.write(7, bytesOf(1));
    assert.deepEqual(await files.read(7, 0, 4), bytesOf(1, 4));
    await files.delete(7);
    assert.equal(await files.read(7, 0, 4), undefined, "deleted: not served from a kept handle");
    await files.write(7, bytesOf(2));
    assert.deepEqual(await files.read(7, 0, 4), bytesOf(2, 4), "the file as it is now");
    await files.clear();
    assert.equal(await files.read(7, 0, 4), undefined, "cleared");
  });

  it("a read in progress when its file is deleted completes with the bytes it began on", async () => {
    const files = await open("racing");
    await files.write(1, bytesOf(3, 1 << 20));
    const reads = Array.from({ length: 8 }, () => files.read(1, 0, 1 << 20));
    await files.delete(1);
    for (const read of reads) {
      const bytes = await read;
      // Either it opened before the unlink (whole, right bytes) or after (missing): never torn.
      assert.ok(bytes === undefined || bytes.every((b) => b === 3));
    }
    assert.equal(await files.read(1, 0, 4), undefined);
  });

  it("keeps at most its bound of descriptors, and none once idle", async () => {
    const files = await open("many");
    const count = segmentFileHandlesMax + 200;
    for (let id = 0; id < count; id++) await files.write(id, bytesOf(id % 256));
    const baseline = openDescriptors();
    let most = baseline;
    for (let round = 0; round < 2; round++) {
      for (let id = 0; id < count; id++) {
        const [bytes] = await files.readRanges(id, [{ offset: 100, length: 8 }]);
        assert.deepEqual(bytes, bytesOf(id % 256, 8));
        most = Math.max(most, openDescriptors());
      }
    }
    // The pool's bound, plus at most one being opened or closed (closes run in the background).
    assert.ok(
      most - baseline <= segmentFileHandlesMax + 2,
      `at most the pool's bound open: ${most - baseline}`,
    );
    assert.ok(
      most - baseline >= segmentFileHandlesMax / 2,
      `handles are kept between reads: ${most - baseline}`,
    );
    const deadline = Date.now() + 5_000;
    while (openDescriptors() > baseline && Date.now() < deadline) await sleep(100);
    assert.equal(openDescriptors(), baseline, "idle handles are closed");
  });
});
