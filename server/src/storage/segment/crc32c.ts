/**
 * CRC32C (Castagnoli), the checksum of the segment format: the header, every entry and the
 * trailer carry one, computed by the writer and verified by the reader after download.
 *
 * Invariants: the parameters are the iSCSI ones (RFC 3720 §B.4): reflected polynomial
 * 0x82F63B78, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF, so `crc32c("123456789")` is
 * 0xE3069283 and the empty input gives 0. Results are unsigned 32-bit integers. A running CRC
 * chains: `crc32c(b, crc32c(a)) === crc32c(a ++ b)`.
 *
 * Fault model: CRC32C detects every error burst of at most 32 bits and every odd number of bit
 * flips, and misses a random corruption with probability 2^-32. It is not a MAC: it does not
 * resist deliberate tampering.
 *
 * Implementation: the CPU's CRC32C instruction through `@node-rs/crc32` (an optional dependency
 * with prebuilt binaries: SSE 4.2 on x86-64, the CRC extension on ARMv8) for inputs of at least
 * `nativeBytesMin`, else, or where that package did not install or fails its self-check at load,
 * `crc32cPortable`: slicing-by-16 (Intel's slicing-by-8 extended to sixteen tables), pure JS.
 * Sixteen 256-entry tables let the loop consume sixteen bytes per step with sixteen independent
 * lookups; the bytes are loaded as four little-endian 32-bit words through a DataView. This is the
 * checksum of every entry served from the cache, the biggest CPU cost of a catch-up read after GC:
 * on our 2-core runner the portable code checks ~1 GiB/s (1 ms of CPU per MiB; ~1.6 GiB/s on an
 * idle machine), the native one ~3.3 GiB/s under the same load. `TRIBUTARY_CRC32C=portable` in the
 * environment turns the native path off (a what-if, and the tests of the fallback).
 */

import { createRequire } from "node:module";
import { assert } from "../../core/assert.js";

const polynomialReflected = 0x82f63b78;

/** The number of bytes the main loop consumes per step, one table each. */
const sliceBytes = 16;

/**
 * `tables[k * 256 + b]` is the CRC contribution of byte `b` followed by `k` zero bytes. Table 0 is
 * the classic byte-at-a-time table.
 */
const tables = buildTables();

function buildTables(): Int32Array {
  const t = new Int32Array(sliceBytes * 256);
  for (let b = 0; b < 256; b++) {
    let crc = b;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 1 ? (crc >>> 1) ^ polynomialReflected : crc >>> 1;
    }
    t[b] = crc;
  }
  for (let b = 0; b < 256; b++) {
    let crc = t[b]!;
    for (let k = 1; k < sliceBytes; k++) {
      crc = t[crc & 0xff]! ^ (crc >>> 8);
      t[k * 256 + b] = crc;
    }
  }
  return t;
}

/**
 * The CRC32C of `data`. Pass the result for the preceding bytes as `seed` to continue a running
 * checksum over several chunks: `crc32c(b, crc32c(a))` equals the CRC of `a` followed by `b`.
 *
 * @param data The bytes to checksum; any view (offset and length need no alignment).
 * @param seed The CRC32C of the bytes before `data`, or 0 (the CRC of nothing) to start afresh.
 * @returns An unsigned 32-bit integer.
 * @see https://www.rfc-editor.org/rfc/rfc3720#appendix-B.4
 */
export function crc32c(data: Uint8Array, seed = 0): number {
  assert(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff, "crc32c seed is not a u32");
  if (native !== undefined && data.length >= nativeBytesMin) return native(data, seed) >>> 0;
  return crc32cPortable(data, seed);
}

/**
 * Inputs shorter than this are checked in JS: a call into the native addon costs about as much as
 * the JS loop over a few hundred bytes (segment headers, trailers and CRC chains are 4–64 bytes).
 */
const nativeBytesMin = 256;

type NativeCrc32c = (data: Uint8Array, seed: number) => number;

/** The addon's CRC32C, once loaded and checked. */
let native: NativeCrc32c | undefined;

/** Which implementation checks inputs of at least `nativeBytesMin` bytes (tests, diagnostics). */
export const crc32cImplementation: "native" | "portable" = loadNative() ? "native" : "portable";

/**
 * Loads `@node-rs/crc32` unless turned off, and keeps it only if it gives the RFC's check value and
 * chains as `crc32c` does: an addon that installed but computes anything else is never used.
 */
function loadNative(): boolean {
  if (process.env["TRIBUTARY_CRC32C"] === "portable") return false;
  let candidate: NativeCrc32c;
  try {
    const addon = createRequire(import.meta.url)("@node-rs/crc32") as {
      crc32c(input: Uint8Array, initialState?: number): number;
    };
    candidate = (data, seed) => addon.crc32c(data, seed);
  } catch {
    return false;
  }
  const check = new TextEncoder().encode("123456789");
  const isCorrect =
    candidate(check, 0) >>> 0 === 0xe3069283 &&
    candidate(check.subarray(4), candidate(check.subarray(0, 4), 0) >>> 0) >>> 0 === 0xe3069283;
  if (isCorrect) native = candidate;
  return isCorrect;
}

/**
 * The CRC32C of `data` computed in JS (slicing-by-16), whatever `crc32c` uses: the fallback, and
 * the reference the native path is tested against. Same contract as `crc32c`.
 */
export function crc32cPortable(data: Uint8Array, seed = 0): number {
  assert(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff, "crc32c seed is not a u32");
  const t = tables;
  const length = data.length;
  let crc = ~seed;
  let i = 0;
  // Sixteen bytes per step: XOR the running CRC into the first four, then look up all sixteen
  // bytes in the table for their distance from the end of the step. The words are read
  // little-endian, so byte 0 of a step is the low byte of `a`.
  const view = new DataView(data.buffer, data.byteOffset, length);
  const end16 = length - (length % sliceBytes);
  while (i < end16) {
    const a = view.getInt32(i, true) ^ crc;
    const b = view.getInt32(i + 4, true);
    const c = view.getInt32(i + 8, true);
    const d = view.getInt32(i + 12, true);
    crc =
      t[3840 + (a & 0xff)]! ^
      t[3584 + ((a >>> 8) & 0xff)]! ^
      t[3328 + ((a >>> 16) & 0xff)]! ^
      t[3072 + (a >>> 24)]! ^
      t[2816 + (b & 0xff)]! ^
      t[2560 + ((b >>> 8) & 0xff)]! ^
      t[2304 + ((b >>> 16) & 0xff)]! ^
      t[2048 + (b >>> 24)]! ^
      t[1792 + (c & 0xff)]! ^
      t[1536 + ((c >>> 8) & 0xff)]! ^
      t[1280 + ((c >>> 16) & 0xff)]! ^
      t[1024 + (c >>> 24)]! ^
      t[768 + (d & 0xff)]! ^
      t[512 + ((d >>> 8) & 0xff)]! ^
      t[256 + ((d >>> 16) & 0xff)]! ^
      t[d >>> 24]!;
    i += sliceBytes;
  }
  while (i < length) {
    crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
    i++;
  }
  return ~crc >>> 0;
}
