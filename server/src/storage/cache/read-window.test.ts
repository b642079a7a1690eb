// Goal: a read window takes each object's entries from its cache file where the file has them,
// fetches the rest with one ranged GET per span of nearby ranges (split past
// `windowGetGapBytesMax`), hands out only bytes of exactly the location asked for, and leaves
// out, without throwing, what a failed read could not get. Method: `readWindow` over a source
// whose objects are byte arrays, with files present, short or missing and GETs that fail.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SegmentEntryLocation } from "../kv/keys.js";
import { readWindow, type WindowSource, windowGetGapBytesMax } from "./read-window.js";

/** An object of `length` bytes whose byte at `i` is `(id + i) % 251`. */
function objectBytes(id: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (id + i) % 251);
}

function at(objectId: number, offset: number, length: number): SegmentEntryLocation {
  return { source: "wal", objectId, offset, length, recordCount: 1, meteredBytesBefore: undefined };
}

interface Calls {
  files: number[];
  gets: { objectId: number; start: number; end: number }[];
}

/** Objects of `objectBytesCount` bytes; `fileBytes(id)` is how much of each the cache has. */
function sourceOf(options: {
  readonly objectBytesCount: number;
  readonly fileBytes: (objectId: number) => number;
  readonly isGetFailing?: (objectId: number) => boolean;
}): { source: WindowSource; calls: Calls } {
  const calls: Calls = { files: [], gets: [] };
  const source: WindowSource = {
    async readFile(objectId, ranges) {
      calls.files.push(objectId);
      const file = objectBytes(objectId, options.fileBytes(objectId));
      return ranges.map(({ offset, length }) =>
        offset + length <= file.length ? file.subarray(offset, offset + length) : undefined,
      );
    },
    async getRange(objectId, start, end) {
      calls.gets.push({ objectId, start, end });
      if (options.isGetFailing?.(objectId) === true) throw new Error("injected GET failure");
      return objectBytes(objectId, options.objectBytesCount).subarray(start, end);
    },
  };
  return { source, calls };
}

describe("compaction read window", () => {
  it("reads each object's file once and serves every location asked for", async () => {
    const { source, calls } = sourceOf({ objectBytesCount: 4096, fileBytes: () => 4096 });
    const locations = [at(2, 100, 50), at(1, 0, 10), at(2, 0, 100), at(1, 500, 20)];
    const window = await readWindow(locations, source);
    assert.deepEqual(calls.files.sort(), [1, 2]);
    assert.deepEqual(calls.gets, []);
    for (const location of locations) {
      const { objectId, offset, length } = location;
      assert.deepEqual(
        window.get(location),
        objectBytes(objectId, 4096).subarray(offset, offset + length),
      );
    }
    assert.equal(window.bytes, 180);
    // Only the exact location: another length, another offset, a chunk, another object.
    assert.equal(window.get(at(2, 100, 49)), undefined);
    assert.equal(window.get(at(2, 101, 50)), undefined);
    assert.equal(window.get({ ...at(2, 100, 50), source: "chunk" }), undefined);
    assert.equal(window.get(at(3, 100, 50)), undefined);
    window.clear();
    assert.equal(window.get(at(2, 100, 50)), undefined);
  });

  it("fetches what a file lacks with one GET per span, split at large gaps", async () => {
    const far = 100 + windowGetGapBytesMax + 1;
    const objectBytesCount = far + 1000;
    // Object 1 has no file; object 2's file ends after its first range.
    const { source, calls } = sourceOf({
      objectBytesCount,
      fileBytes: (id) => (id === 1 ? 0 : 60),
    });
    const locations = [at(1, 0, 50), at(1, 70, 30), at(1, far, 40), at(2, 0, 50), at(2, 80, 20)];
    const window = await readWindow(locations, source);
    assert.deepEqual(
      calls.gets.sort((a, b) => a.objectId - b.objectId || a.start - b.start),
      [
        { objectId: 1, start: 0, end: 100 },
        { objectId: 1, start: far, end: far + 40 },
        { objectId: 2, start: 80, end: 100 },
      ],
    );
    for (const location of locations) {
      const { objectId, offset, length } = location;
      const expected = objectBytes(objectId, objectBytesCount).subarray(offset, offset + length);
      assert.deepEqual(window.get(location), expected);
    }
  });

  it("leaves out what a failed GET or a failed file read could not get, without throwing", async () => {
    const { source } = sourceOf({
      objectBytesCount: 1000,
      fileBytes: () => 0,
      isGetFailing: (id) => id === 1,
    });
    const failingFiles: WindowSource = {
      readFile: async (objectId, ranges) =>
        objectId === 3
          ? Promise.reject(new Error("injected EIO"))
          : source.readFile(objectId, ranges),
      getRange: (objectId, start, end) => source.getRange(objectId, start, end),
    };
    const window = await readWindow([at(1, 0, 10), at(2, 0, 10), at(3, 5, 10)], failingFiles);
    assert.equal(window.get(at(1, 0, 10)), undefined);
    assert.deepEqual(window.get(at(2, 0, 10)), objectBytes(2, 1000).subarray(0, 10));
    // A failed file read falls through to the bucket.
    assert.deepEqual(window.get(at(3, 5, 10)), objectBytes(3, 1000).subarray(5, 15));
  });
});
