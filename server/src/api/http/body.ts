/**
 * Request bodies: read whole, bounded, and decompressed per `Content-Encoding` (gzip, zstd; S2
 * lite decompresses request bodies transparently). The bound is checked while reading, before the
 * bytes are kept, so an oversized body costs no more memory than the bound.
 */
import { S2Error } from "../../core/errors.js";
import { requestBodyBytesMax } from "../../core/limits.js";
import { gzipDecompress, zstdDecompress } from "../s2s/compression.js";
import { type ApiRequest, headerOf } from "./request-context.js";

/** Reads the whole body, failing with `errorCode` (bad_json / bad_proto) when it is too large. */
export async function readBody(
  request: ApiRequest,
  errorCode: "bad_json" | "bad_proto",
  bytesMax = requestBodyBytesMax,
): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > bytesMax) {
      // Drain the rest so the connection stays usable, without keeping it.
      request.resume();
      throw new S2Error(errorCode, `request body too large. max_bytes=\`${bytesMax}\``);
    }
    chunks.push(chunk);
  }
  const raw = new Uint8Array(Buffer.concat(chunks, length));
  const encoding = headerOf(request, "content-encoding")?.toLowerCase();
  if (encoding === undefined || encoding === "" || encoding === "identity") return raw;
  try {
    let decoded: Uint8Array;
    if (encoding === "gzip") decoded = await gzipDecompress(raw, bytesMax);
    else if (encoding === "zstd") decoded = await zstdDecompress(raw, bytesMax);
    else throw new S2Error(errorCode, `unsupported content-encoding. encoding=\`${encoding}\``);
    return decoded;
  } catch (error) {
    if (error instanceof S2Error) throw error;
    throw new S2Error(
      errorCode,
      `request body could not be decompressed. encoding=\`${encoding}\``,
      { cause: error },
    );
  }
}
