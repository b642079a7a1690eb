/**
 * Compression for S2S frames and request bodies: gzip and zstd. Both run on libuv's thread pool
 * (node:zlib's asynchronous calls), never on the event loop: a 2 MiB frame took 32 ms to gzip
 * synchronously on this project's VM, every other request waiting meanwhile (issue 12). zstd is
 * Node's own (Node 22.15 and later; as fast as the WebAssembly build of the reference library,
 * measured 10.4 vs 10.8 ms per 2 MiB frame, and off the loop); on an older Node the WebAssembly
 * build stands in, on the loop. Decompression is bounded by the caller's limit so a small frame
 * cannot expand into unbounded memory.
 */
import { promisify } from "node:util";
import zlib from "node:zlib";
import * as zstdWasm from "@bokuweb/zstd-wasm";

/** Node's zstd (22.15+), typed here: the project's @types/node predates it. */
interface NativeZstd {
  zstdCompress(
    data: Uint8Array,
    options: { params: Record<number, number> },
    callback: (error: Error | null, result: Buffer) => void,
  ): void;
  zstdDecompress(
    data: Uint8Array,
    options: { maxOutputLength: number },
    callback: (error: Error | null, result: Buffer) => void,
  ): void;
  readonly constants: { readonly ZSTD_c_compressionLevel: number };
}

const nativeZstd: NativeZstd | undefined =
  typeof (zlib as unknown as Partial<NativeZstd>).zstdCompress === "function"
    ? (zlib as unknown as NativeZstd)
    : undefined;
const gzipAsync = promisify(zlib.gzip);
const gunzipAsync = promisify(zlib.gunzip);

let zstdReady: Promise<void> | undefined;

/** Loads the WebAssembly zstd once, where Node has no zstd of its own. */
export function initZstd(): Promise<void> {
  zstdReady ??= nativeZstd === undefined ? zstdWasm.init() : Promise.resolve();
  return zstdReady;
}

/** Thrown when a payload decompresses past its bound or is not valid compressed data. */
export class DecompressionError extends Error {
  override readonly name = "DecompressionError";
}

export async function zstdCompress(data: Uint8Array, level = 3): Promise<Uint8Array> {
  if (nativeZstd !== undefined) {
    const zstd = nativeZstd;
    const params = { [zstd.constants.ZSTD_c_compressionLevel]: level };
    return new Promise((resolve, reject) =>
      zstd.zstdCompress(data, { params }, (error, result) =>
        error === null ? resolve(new Uint8Array(result)) : reject(error),
      ),
    );
  }
  await initZstd();
  return zstdWasm.compress(data, level);
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
    if (nativeZstd !== undefined) {
      const zstd = nativeZstd;
      out = await new Promise<Uint8Array>((resolve, reject) =>
        zstd.zstdDecompress(data, { maxOutputLength: bytesMax }, (error, result) =>
          error === null ? resolve(new Uint8Array(result)) : reject(error),
        ),
      );
    } else {
      // A frame without a declared size decompresses into a buffer of `bytesMax` (the library's
      // default of 1 MiB would reject valid larger payloads); a larger result fails.
      out = zstdWasm.decompress(data, { defaultHeapSize: bytesMax });
    }
  } catch (error) {
    throw new DecompressionError("invalid or oversized zstd data", { cause: error });
  }
  if (out.length > bytesMax)
    throw new DecompressionError(`decompressed payload too large. max_bytes=\`${bytesMax}\``);
  return out;
}

export async function gzipCompress(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await gzipAsync(data));
}

export async function gzipDecompress(data: Uint8Array, bytesMax: number): Promise<Uint8Array> {
  try {
    return new Uint8Array(await gunzipAsync(data, { maxOutputLength: bytesMax }));
  } catch (error) {
    throw new DecompressionError("invalid or oversized gzip data", { cause: error });
  }
}
