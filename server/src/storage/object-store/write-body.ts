/**
 * Writes an `ObjectBody` into a file: one buffer as it is, parts with `writev` (one system call
 * for up to `partsPerWritevMax` of them, so a segment's header, payload views and CRCs reach the
 * file without being copied together first). Used by the local-directory store and the cache's
 * segment files.
 */
import type { FileHandle } from "node:fs/promises";
import { assert } from "../../core/assert.js";
import type { ObjectBody } from "./object-store.js";

/** Buffers per `writev` call: IOV_MAX on Linux and macOS (ours: the smallest common one). */
const partsPerWritevMax = 1024;

/** Writes `body` from the file's start; resolves once every byte is written. */
export async function writeBody(handle: FileHandle, body: ObjectBody): Promise<void> {
  if (body instanceof Uint8Array) {
    await handle.writeFile(body);
    return;
  }
  let position = 0;
  let pending = body.filter((part) => part.length > 0);
  while (pending.length > 0) {
    const batch = pending.slice(0, partsPerWritevMax);
    let { bytesWritten } = await handle.writev(batch, position);
    // A regular file's write fails (ENOSPC, EIO) rather than write nothing; never spin.
    assert(bytesWritten > 0, "writev made progress");
    position += bytesWritten;
    // A short write (rare for a regular file) resumes inside the part it stopped in.
    const rest: Uint8Array[] = [];
    for (const part of pending) {
      if (bytesWritten >= part.length) {
        bytesWritten -= part.length;
        continue;
      }
      rest.push(bytesWritten > 0 ? part.subarray(bytesWritten) : part);
      bytesWritten = 0;
    }
    pending = rest;
  }
}
