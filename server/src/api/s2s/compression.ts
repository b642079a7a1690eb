/**
 * Compression for S2S frames and request bodies: gzip (node:zlib) and zstd (WebAssembly build of
 * the reference library, since Node 20's zlib has no zstd). Decompression is bounded by the
 * caller's limit so a small frame cannot expand into unbounded memory.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import * as zstd from "@bokuweb/zstd-wasm";

let zstdReady: Promise<void> | undefined;

/** Loads the zstd module once. */
export function initZstd(): Promise<void> {
  zstdReady ??= zstd.init();
  return zstdReady;
}

/** Thrown when a payload decompresses past its bound or is not valid compressed data. */
export class DecompressionError extends Error {
  override readonly name = "DecompressionError";
}

export async function zstdCompress(data: Uint8Array, level = 3): Promise<Uint8Array> {
  await initZstd();
  return zstd.compress(data, level);
}

/** The zstd frame magic number, little-endian (RFC 8878 §3.1.1). */
const zstdMagic = 0xfd2fb528;

/**
 * The content size a zstd frame header declares (RFC 8878 §3.1.1.1), or undefined when the frame
 * does not declare it. Throws for data that does not start with a complete zstd frame header: the
 * WebAssembly build sizes its output buffer from this header without checking it, so it must only
 * ever see a header we have checked.
 */
function zstdDeclaredContentSize(data: Uint8Array): number | undefined {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < 5 || view.getUint32(0, true) !== zstdMagic) {
    throw new DecompressionError("invalid zstd data: not a zstd frame");
  }
  const descriptor = data[4]!;
  const isSingleSegment = (descriptor & 0x20) !== 0;
  const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 0x03]!;
  const contentSizeBytes = [isSingleSegment ? 1 : 0, 2, 4, 8][descriptor >>> 6]!;
  const offset = 5 + (isSingleSegment ? 0 : 1) + dictionaryIdBytes;
  if (data.length < offset + contentSizeBytes) {
    throw new DecompressionError("invalid zstd data: truncated frame header");
  }
  switch (contentSizeBytes) {
    case 0:
      return undefined;
    case 1:
      return data[offset]!;
    case 2:
      return view.getUint16(offset, true) + 256;
    case 4:
      return view.getUint32(offset, true);
    default:
      return Number(view.getBigUint64(offset, true));
  }
}

export async function zstdDecompress(data: Uint8Array, bytesMax: number): Promise<Uint8Array> {
  await initZstd();
  const declaredBytes = zstdDeclaredContentSize(data);
  if (declaredBytes !== undefined && declaredBytes > bytesMax) {
    throw new DecompressionError(
      `decompressed payload too large. declared_bytes=\`${declaredBytes}\` max_bytes=\`${bytesMax}\``,
    );
  }
  let out: Uint8Array;
  try {
    // A frame without a declared size decompresses into a buffer of `bytesMax` (the library's
    // default of 1 MiB would reject valid larger payloads); a larger result fails.
    out = zstd.decompress(data, { defaultHeapSize: bytesMax });
  } catch (error) {
    throw new DecompressionError("invalid zstd data", { cause: error });
  }
  if (out.length > bytesMax)
    throw new DecompressionError(`decompressed payload too large. max_bytes=\`${bytesMax}\``);
  return out;
}

export function gzipCompress(data: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(data));
}

export function gzipDecompress(data: Uint8Array, bytesMax: number): Uint8Array {
  try {
    return new Uint8Array(gunzipSync(data, { maxOutputLength: bytesMax }));
  } catch (error) {
    throw new DecompressionError("invalid or oversized gzip data", { cause: error });
  }
}
