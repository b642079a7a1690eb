// Goal: compaction yields to appends only while its backlog stays within its bound, so a burst is
// absorbed at the low pace and a sustained load cannot grow the WAL backlog (and the bucket) for
// ever; and a timer's job takes a stream's WAL rows only once they are worth a chunk (1 MiB) or
// old, with a minimum that shrinks so that waiting rows never fill the backlog's share. Method:
// the pace and choice functions at the edges of their inputs; the engine suites
// (server/test/engine/bottomless.test.ts) cover what compaction moves.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compactionStreamBytesMin,
  isDue,
  type PlanRow,
  streamBytesMin,
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

describe("which streams a job takes", () => {
  const row = (source: "wal" | "chunk", objectId: number, length: number): PlanRow => ({
    key: new Uint8Array(0),
    firstSeqNum: 0,
    location: { source, objectId, offset: 0, length, recordCount: 1 },
  });

  it("takes a stream's WAL rows at the minimum's bytes, or when the oldest is past the horizon", () => {
    const options = { bytesMin: 1000, oldBelowWalId: 10 };
    assert.equal(isDue([row("wal", 10, 999)], options), false, "young and small");
    assert.equal(isDue([row("wal", 10, 600), row("wal", 11, 400)], options), true, "1000 bytes");
    assert.equal(isDue([row("wal", 9, 1), row("wal", 12, 1)], options), true, "the oldest is old");
    // Chunk rows (merge candidates) count neither as bytes nor as age.
    assert.equal(isDue([row("chunk", 3, 5000), row("wal", 10, 10)], options), false);
    assert.equal(isDue([], options), false);
  });

  it("shrinks the minimum so that waiting rows fit half the backlog's share", () => {
    const share = (1 << 30) * compactionBacklogShareOfCache;
    assert.equal(streamBytesMin(share, 0), compactionStreamBytesMin);
    assert.equal(streamBytesMin(share, 10), compactionStreamBytesMin);
    for (const streams of [1_000, 10_000, 100_000]) {
      const bytesMin = streamBytesMin(share, streams);
      assert.ok(bytesMin * streams <= share / 2, `${streams} streams: ${bytesMin} bytes each`);
      assert.ok(bytesMin < compactionStreamBytesMin);
    }
  });
});
