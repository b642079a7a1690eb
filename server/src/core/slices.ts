/**
 * Background work in slices. A loop over every row of the index (a checkpoint's dump and
 * encoding) or over every stream (compaction's scan) runs as one chain of microtasks, and a
 * microtask chain never lets the event loop take I/O: appends' acknowledgements and reads waited
 * behind such stretches for up to ~100 ms in a profile of compaction at 10 MiB/s (issue 12: no
 * request is held more than 10 ms by another's work). Such loops ask `Slicer.isDue` as they go (a
 * clock read) and, past `backgroundSliceMs`, wait for a turn of the event loop (`pause`:
 * `setImmediate`, after the I/O callbacks already due).
 */

/** How long background work runs before it lets the event loop turn (ours). */
export const backgroundSliceMs = 4;

export class Slicer {
  private sliceStartMs = performance.now();

  constructor(private readonly sliceMs = backgroundSliceMs) {}

  /** Whether the slice is used up (a clock read: cheap enough for every row of a loop). */
  isDue(): boolean {
    return performance.now() - this.sliceStartMs >= this.sliceMs;
  }

  /** Lets the event loop turn, then starts a new slice. Loops write `if (s.isDue()) await s.pause()`. */
  pause(): Promise<void> {
    return new Promise((resolve) =>
      setImmediate(() => {
        this.sliceStartMs = performance.now();
        resolve();
      }),
    );
  }
}
