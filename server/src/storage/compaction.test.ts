// Goal: compaction yields to appends only while its backlog stays within its bound, so a burst is
// absorbed at the low pace and a sustained load cannot grow the WAL backlog (and the bucket) for
// ever. Method: the pace function at the edges of its inputs; the engine suites
// (server/test/engine/bottomless.test.ts) cover what compaction moves.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compactionBacklogShareOfCache,
  compactionBytesPerSecond,
  compactionBytesPerSecondMax,
  compactionBytesPerSecondWhileAppending,
} from "./compaction.js";

describe("compaction pace", () => {
  const cacheBytesMax = 1 << 30;
  const bound = cacheBytesMax * compactionBacklogShareOfCache;

  it("yields to appends while the backlog is within half the cache bound", () => {
    for (const walBacklogBytes of [0, bound]) {
      assert.equal(
        compactionBytesPerSecond({ isAppending: true, walBacklogBytes, cacheBytesMax }),
        compactionBytesPerSecondWhileAppending,
      );
    }
    assert.ok(compactionBytesPerSecondWhileAppending < compactionBytesPerSecondMax);
  });

  it("goes at the cap past the bound, or when no append arrives", () => {
    assert.equal(
      compactionBytesPerSecond({ isAppending: true, walBacklogBytes: bound + 1, cacheBytesMax }),
      compactionBytesPerSecondMax,
    );
    assert.equal(
      compactionBytesPerSecond({ isAppending: false, walBacklogBytes: 0, cacheBytesMax }),
      compactionBytesPerSecondMax,
    );
  });
});
