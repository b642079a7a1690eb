/**
 * S2S read sessions (S2-API.md §5.8, SDK-CLIENT.md "Read session"): `GET .../records` with
 * `Content-Type: s2s/proto`. The session is opened before the 200, so a start beyond the tail
 * (416), a missing stream (404), bad bounds (422) or a bad or missing `S2-Encryption-Key` (400)
 * are ordinary HTTP errors with JSON bodies.
 * Then each event of `service/read-session.ts` becomes a `ReadBatch` frame: a batch with its
 * records (and `tail` when it was followed live), a heartbeat as a batch with no records and the
 * tail, which the SDK needs within 20 s (heartbeats come every 5–15 s while idle). A normal end
 * ends the HTTP/2 stream; an error after the 200 is a terminal frame.
 *
 * Flow control: the next event is pulled only when the response has drained the previous one, so
 * a slow client slows its own session and the server holds at most one batch for it. A client
 * that goes away ends the handler at once; the session's generator is then returned, which takes
 * effect at its next event (a follower waits at most one heartbeat delay). When the session's
 * access token is revoked or expires (`TokenWatch`), the session ends with a terminal 401 `authn`
 * between two events, even while it waits for the client to drain.
 */
import { S2Error } from "../../core/errors.js";
import { untilAborted } from "../../core/until-aborted.js";
import { s2sReadFrameBytesTarget } from "../../core/limits.js";
import { meteredBytes, meteredBytesOfBatch, type SequencedRecord } from "../../core/records.js";
import type { ReadEvent, ReadRequest } from "../../service/read-session.js";
import { encodeReadBatchProto, encodeReadBatchProtoChunks } from "../convert/records-proto.js";
import {
  type ApiResponse,
  encryptionKeyOf,
  headerOf,
  type RequestContext,
} from "../http/request-context.js";
import type { ApiDeps } from "../routes.js";
import { initZstd } from "./compression.js";
import {
  compressionFromAcceptEncoding,
  encodeS2sMessageChunksInPlace,
  encodeS2sMessageInPlace,
  encodeS2sTerminalFrame,
  isResponseClosed,
  type S2sCompression,
  s2sFrameHeaderBytes,
  s2sPayloadBytesMax,
  startS2sResponse,
  writeS2sFrameChunks,
} from "./frame.js";

/** Serves an S2S read session of `request` on `basin`/`stream`. */
export async function handleS2sReadSession(
  context: RequestContext,
  deps: ApiDeps,
  basin: string,
  stream: string,
  request: ReadRequest,
): Promise<void> {
  const { response } = context;
  const compression = compressionFromAcceptEncoding(headerOf(context.request, "accept-encoding"));
  if (compression === "zstd") await initZstd();
  const encryptionKey = encryptionKeyOf(context.request);
  const events = await deps.service.records.openReadSession(basin, stream, request, {
    encryptionKey,
  });
  if (isResponseClosed(response)) {
    await events.return(undefined);
    return;
  }
  startS2sResponse(response);
  deps.metrics.addSessions("s2s_read", 1);
  const closed = watchClose(response);
  const lease = deps.tokenWatch.lease(context.auth);
  // Each wait ends early when the client goes away or the token is revoked (`untilAborted`: a
  // race against session-long promises kept every batch served until the session ended).
  const stops = [closed.signal, lease.signal];
  let pending: Promise<IteratorResult<ReadEvent, void>> | undefined;
  try {
    for (;;) {
      pending = events.next();
      const next = await untilAborted(pending, stops);
      pending = undefined;
      if (next.done === true) {
        response.end();
        return;
      }
      const event = next.value;
      if (!writeS2sFrameChunks(response, await encodeReadEventFrames(event, compression))) {
        await drained(response, stops);
      }
      if (event.kind === "batch") {
        deps.metrics.observeRead(event.records.length, meteredBytesOfBatch(event.records));
      }
    }
  } catch (error) {
    // A client that went away is not answered; a revoked token or a failed read gets a terminal
    // frame.
    if (!closed.isClosed()) response.end(encodeS2sTerminalFrame(error));
  } finally {
    lease.release();
    deps.metrics.addSessions("s2s_read", -1);
    closed.dispose();
    // An abandoned `next()` may still settle, with an error too; `return()` runs after it.
    pending?.catch(() => {});
    events.return(undefined).catch(() => {});
  }
}

/**
 * Record bodies of at least this many bytes are written to an uncompressed frame by reference (a
 * chunk of the gathered write, `encodeReadBatchProtoChunks`), not copied into the frame's buffer:
 * an 8 KiB body is then copied once on its way out (into the socket), and a catch-up read no longer
 * allocates a frame buffer per ~128 KiB. Smaller bodies are copied: below about a kilobyte, a chunk
 * costs the writer more than the copy saves.
 */
const s2sReadBodyBytesByReferenceMin = 1024;

/**
 * The frames of one event, each a list of chunks (one chunk when compressed, or for a frame with
 * no body of at least `s2sReadBodyBytesByReferenceMin`): `ReadBatch` frames of about
 * `s2sReadFrameBytesTarget` metered bytes each (one frame for a heartbeat or a small batch), each
 * further halved when its encoding would exceed one frame (a batch is ≤ 1 MiB metered, but the
 * protobuf of many tiny headers takes up to twice that). Every frame carries the event's tail, if
 * it has one. A single record too large for a frame even without the optional `tail` (possible
 * only for a record of ~260k one-byte headers) cannot be sent: the session fails with 500 `other`.
 *
 * @internal Exported for tests.
 */
export async function encodeReadEventFrames(
  event: ReadEvent,
  compression: S2sCompression,
): Promise<(readonly Uint8Array[])[]> {
  // Each message is encoded after room for its frame header, which is then filled in place.
  const frames: (readonly Uint8Array[] | Promise<Uint8Array>)[] = [];
  const bodyBytesByReferenceMin =
    compression === "none" ? s2sReadBodyBytesByReferenceMin : Number.POSITIVE_INFINITY;
  const encode = (records: readonly SequencedRecord[]): void => {
    const { chunks, messageBytes } = encodeReadBatchProtoChunks(
      { records, tail: event.tail },
      { headroomBytes: s2sFrameHeaderBytes, bodyBytesByReferenceMin },
    );
    if (messageBytes <= s2sPayloadBytesMax) {
      frames.push(
        compression === "none"
          ? encodeS2sMessageChunksInPlace(chunks, messageBytes)
          : encodeS2sMessageInPlace(chunks[0]!, compression),
      );
    } else if (records.length > 1) {
      const half = Math.ceil(records.length / 2);
      encode(records.slice(0, half));
      encode(records.slice(half));
    } else {
      const untailed = encodeReadBatchProto({ records }, s2sFrameHeaderBytes);
      const untailedBytes = untailed.length - s2sFrameHeaderBytes;
      if (untailedBytes > s2sPayloadBytesMax) {
        throw new S2Error(
          "other",
          `record too large for an s2s frame. seq_num=\`${records[0]?.seqNum}\` bytes=\`${untailedBytes}\``,
        );
      }
      frames.push(encodeS2sMessageInPlace(untailed, compression));
    }
  };
  if (event.kind === "heartbeat") encode([]);
  else for (const chunk of chunkByMeteredBytes(event.records)) encode(chunk);
  return Promise.all(frames.map(async (frame) => ("then" in frame ? [await frame] : frame)));
}

/** Splits records into runs of about `s2sReadFrameBytesTarget` metered bytes (never empty). */
function chunkByMeteredBytes(records: readonly SequencedRecord[]): SequencedRecord[][] {
  const chunks: SequencedRecord[][] = [];
  let chunk: SequencedRecord[] = [];
  let chunkBytes = 0;
  for (const record of records) {
    const bytes = meteredBytes(record);
    if (chunk.length > 0 && chunkBytes + bytes > s2sReadFrameBytesTarget) {
      chunks.push(chunk);
      chunk = [];
      chunkBytes = 0;
    }
    chunk.push(record);
    chunkBytes += bytes;
  }
  if (chunk.length > 0 || chunks.length === 0) chunks.push(chunk);
  return chunks;
}

/** Tracks whether the client went away: `signal` aborts when the response closes. */
function watchClose(response: ApiResponse): {
  readonly signal: AbortSignal;
  isClosed(): boolean;
  dispose(): void;
} {
  const controller = new AbortController();
  const onClose = (): void => controller.abort(new Error("the response closed"));
  if (isResponseClosed(response)) onClose();
  else response.once("close", onClose);
  return {
    signal: controller.signal,
    isClosed: () => controller.signal.aborted,
    dispose: () => response.off("close", onClose),
  };
}

/** Resolves on the response's next `drain`; rejects once one of `stops` aborts. */
function drained(response: ApiResponse, stops: readonly AbortSignal[]): Promise<void> {
  let onDrain = (): void => {};
  const drain = new Promise<void>((resolve) => {
    onDrain = resolve;
    response.once("drain", onDrain);
  });
  return untilAborted(drain, stops).finally(() => response.off("drain", onDrain));
}
