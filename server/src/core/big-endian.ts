/**
 * Big-endian integers in byte arrays, written and read byte by byte. A `DataView` over a small
 * `Uint8Array` made with `new Uint8Array(n)` (an index key, a 4-byte count) makes V8 give the
 * array its own `ArrayBuffer` when `.buffer` is read: ~700 ns per call against ~60 ns for the
 * byte operations, measured on node 24 (that was 0.7 s of the server's CPU in a 40 s append run,
 * where every applied entry encodes a few keys).
 *
 * Invariants: a u32 is an integer in [0, 2³²); a u64 is a safe integer (below 2⁵³), asserted.
 */
import { assert } from "./assert.js";

const twoPow32 = 2 ** 32;

export function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

export function readU32(bytes: Uint8Array, offset: number): number {
  return (
    bytes[offset]! * 0x1000000 +
    ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!)
  );
}

export function writeU64(out: Uint8Array, offset: number, value: number): void {
  // The message is built only on failure: this runs for every key encoded.
  if (!(Number.isSafeInteger(value) && value >= 0)) assert(false, `not a u64 we write: ${value}`);
  writeU32(out, offset, Math.floor(value / twoPow32));
  writeU32(out, offset + 4, value >>> 0);
}

export function readU64(bytes: Uint8Array, offset: number): number {
  return readU32(bytes, offset) * twoPow32 + readU32(bytes, offset + 4);
}
