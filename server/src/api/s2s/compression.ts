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

export async function zstdDecompress(data: Uint8Array, bytesMax: number): Promise<Uint8Array> {
  await initZstd();
  let out: Uint8Array;
  try {
    out = zstd.decompress(data);
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
