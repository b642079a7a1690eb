/**
 * A one-line progress display on stderr for long operations (append, read): records and bytes so
 * far and the rate, redrawn in place at most every `progressRedrawIntervalMs`. It is shown only
 * when stderr is a terminal, so pipes and logs never see control characters.
 */
import type { CliIo } from "./io.js";

/** How often the line is redrawn, at most. */
export const progressRedrawIntervalMs = 100;

/** Returns to the start of the line and clears it (ANSI erase-in-line). */
export const progressClearLine = "\r\x1b[K";

/** Counts shown by a progress line. */
export interface Progress {
  /** Adds records and bytes; redraws if the last redraw is old enough. */
  add(records: number, bytes: number): void;
  /** Clears the line. */
  done(): void;
}

/** A progress that shows nothing. */
export const noProgress: Progress = { add() {}, done() {} };

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** A progress line labelled `label` (e.g. `appended`), or one that shows nothing off a terminal. */
export function createProgress(
  io: CliIo,
  label: string,
  now: () => number = () => performance.now(),
): Progress {
  if (io.stderr.isTTY !== true) return noProgress;
  const startMs = now();
  let drawnMs = Number.NEGATIVE_INFINITY;
  let records = 0;
  let bytes = 0;
  let shown = false;
  return {
    add(addedRecords, addedBytes) {
      records += addedRecords;
      bytes += addedBytes;
      const nowMs = now();
      if (nowMs - drawnMs < progressRedrawIntervalMs) return;
      drawnMs = nowMs;
      const secs = Math.max((nowMs - startMs) / 1000, 0.001);
      const rate = `${Math.round(records / secs)} rec/s, ${formatBytes(bytes / secs)}/s`;
      io.stderr.write(
        `${progressClearLine}${label} ${records} records, ${formatBytes(bytes)} (${rate})`,
      );
      shown = true;
    },
    done() {
      if (shown) io.stderr.write(progressClearLine);
      shown = false;
    },
  };
}
