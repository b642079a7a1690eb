/**
 * Which errors are *disk faults* of the local cache (docs/design/degraded-cache.md): the disk is
 * full, over quota, read-only or failing. The cache answers those by degrading (its index moves
 * to memory, reads go to the bucket), never by stopping the server. Anything else (an assertion,
 * a bug, corruption that LevelDB reports) keeps its old handling.
 *
 * Node's fs errors carry the errno name in `code`. classic-level reports every LevelDB I/O
 * failure as `LEVEL_IO_ERROR` with LevelDB's message, which holds the C library's text for the
 * errno (`IO error: /x/000003.log: No space left on device`), and wraps a failed open as
 * `LEVEL_DATABASE_NOT_OPEN` ("Database failed to open") with that error as its cause: the chain
 * is searched, so a failed open is named by its cause.
 */
import { AssertionError } from "../../core/assert.js";

/** Errno names that mean the disk cannot take the cache's writes. */
const diskErrnoCodes = new Set(["ENOSPC", "EDQUOT", "EIO", "EROFS"]);

/** LevelDB's messages name the errno by its C library text (glibc's `strerror`). */
const levelErrnoTexts: readonly (readonly [string, string])[] = [
  ["No space left on device", "ENOSPC"],
  ["Disk quota exceeded", "EDQUOT"],
  ["Input/output error", "EIO"],
  ["Read-only file system", "EROFS"],
];

/** How many causes deep the chain is searched (abstract-level wraps an open failure once). */
const causeDepthMax = 8;

function codeOf(error: unknown): unknown {
  return typeof error === "object" && error !== null && "code" in error ? error.code : undefined;
}

/**
 * The disk fault behind `error`, as `"ENOSPC: <message>"` (the errno name first, so that a log
 * line or `/health` names it), or undefined when the error is not a disk fault.
 */
export function diskFaultOf(error: unknown): string | undefined {
  let current = error;
  for (let depth = 0; depth < causeDepthMax; depth++) {
    if (current instanceof AssertionError) return undefined;
    if (typeof current !== "object" || current === null) return undefined;
    const code = codeOf(current);
    const message = current instanceof Error ? current.message : String(current);
    if (typeof code === "string" && diskErrnoCodes.has(code)) return `${code}: ${message}`;
    if (code === "LEVEL_IO_ERROR") {
      const known = levelErrnoTexts.find(([text]) => message.includes(text));
      // Another LevelDB I/O failure (a missing file at open is corruption, classified earlier by
      // `level.ts`) still means the disk failed a write or a read: EIO.
      return `${known?.[1] ?? "EIO"}: ${message}`;
    }
    current = "cause" in current ? current.cause : undefined;
  }
  return undefined;
}
