/**
 * The metadata keys of a failed Connect, gRPC or gRPC-web call (proto/tributary/v1/stream.proto
 * documents them for clients). The server sets them (`server/src/api/render-error.ts`); clients
 * read the S2 error code and the bodies of 412 and 416 back from them.
 */
export const connectErrorMetadata = {
  /** The S2 error code, e.g. `stream_not_found` (always present on our errors). */
  code: "s2-error-code",
  /** 412: the stream's next seq num (decimal). */
  seqNumMismatch: "s2-seq-num-mismatch",
  /** 412: the stream's fencing token (binary metadata: base64 of its UTF-8 bytes). */
  fencingTokenMismatch: "s2-fencing-token-mismatch-bin",
  /** 416: the tail's seq num and timestamp (decimal). */
  tailSeqNum: "s2-tail-seq-num",
  tailTimestamp: "s2-tail-timestamp",
} as const;
