/**
 * SSE read sessions (S2-API.md §5.7, §11.16): `GET .../records` with a first `Accept` of
 * `text/event-stream`. Errors found before the session starts (404, 409, 416, 422, ...) are
 * ordinary HTTP error responses; afterwards the session's events become SSE events:
 *
 * - a batch: `event: batch`, `id: <last seq num>,<records sent>,<metered bytes sent>` (counters
 *   per connection) and `data: <ReadBatch JSON>` in the request's `S2-Format`;
 * - a heartbeat: `event: ping` and `data: {"timestamp": <now ms>, "tail": {...}}`, which also keeps
 *   the SDK's 25 s inactivity timer from firing (heartbeats come every 5–15 s while following);
 * - a normal end: `data: [DONE]`; a failure mid-session: `event: error` with the error's JSON
 *   body, and no `[DONE]`.
 *
 * Flow control: the next event is pulled only once the previous one was written out (`write`
 * returned true or `drain` fired), so a slow client slows its own session and the streamer's
 * bounded follower queue protects the server. When the client goes away the session generator is
 * returned, which closes its follower. When the session's access token is revoked or expires
 * (`TokenWatch`), the session ends with an `error` event (401 `authn`) between two events.
 */
import { AssertionError } from "../../core/assert.js";
import { untilAborted } from "../../core/until-aborted.js";
import {
  meteredBytesOfBatch,
  type SequencedRecord,
  type StreamPosition,
} from "../../core/records.js";
import type { ReadEvent, ReadRequest } from "../../service/read-session.js";
import {
  type RecordFormat,
  readBatchToJson,
  streamPositionToJson,
} from "../convert/records-json.js";
import { formatLastEventId, type LastEventId, resumedReadRequest } from "../http/read-query.js";
import { type ApiResponse, encryptionKeyOf, type RequestContext } from "../http/request-context.js";
import { renderErrorSseEvent } from "../render-error.js";
import type { ApiDeps } from "../routes.js";

/** Response headers of an SSE session (S2-API.md §3.2). */
export const sseResponseHeaders: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/** The `batch` event of a non-empty batch. */
export function sseBatchEvent(
  batch: { readonly records: readonly SequencedRecord[]; readonly tail?: StreamPosition },
  format: RecordFormat,
  id: LastEventId,
): string {
  return `event: batch\nid: ${formatLastEventId(id)}\ndata: ${JSON.stringify(readBatchToJson(batch, format))}\n\n`;
}

/** The `ping` event of a heartbeat (lite adds the tail to the spec's `timestamp`). */
export function ssePingEvent(tail: StreamPosition, nowMs: number): string {
  return `event: ping\ndata: ${JSON.stringify({ timestamp: nowMs, tail: streamPositionToJson(tail) })}\n\n`;
}

/** The event that ends a session normally (lite; not in openapi). */
export const sseDoneEvent = "data: [DONE]\n\n";

/** `response.write` (the two response types' overloads do not unify); false = wait for drain. */
function writeText(response: ApiResponse, text: string): boolean {
  return (response as { write(chunk: string): boolean }).write(text);
}

/** Resolves once `response` can take more data, or has closed. */
function drainedOrClosed(response: ApiResponse, watch: ClosedWatch): Promise<void> {
  if (watch.isClosed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.on("drain", done);
    response.on("close", done);
  });
}

/** Whether the client has gone away (the response closed before we ended it). */
export interface ClosedWatch {
  readonly isClosed: boolean;
  /** Calls `callback` once when the response closes; returns its unregistration. */
  onClose(callback: () => void): () => void;
  /** Stops watching. */
  stop(): void;
}

/** Watches `response` for `close`; call it before the first `await` so no event is missed. */
export function watchClosed(response: ApiResponse): ClosedWatch {
  // A set of callbacks rather than a long-lived promise raced per event, which would keep one
  // reaction per event until the response closes.
  const callbacks = new Set<() => void>();
  const watch = {
    isClosed: false,
    onClose: (callback: () => void): (() => void) => {
      callbacks.add(callback);
      return () => callbacks.delete(callback);
    },
    stop: (): void => {
      response.off("close", onClose);
      callbacks.clear();
    },
  };
  const onClose = (): void => {
    watch.isClosed = true;
    for (const callback of callbacks) callback();
    callbacks.clear();
  };
  response.on("close", onClose);
  return watch;
}

/**
 * The session's next event, or `undefined` once the client has gone away. A session generator
 * awaiting its follower cannot be interrupted: on close its pending `next()` is abandoned and a
 * `return()` is queued behind it, which closes the follower at the session's next event (≤ 15 s,
 * the heartbeat delay); the caller does not wait for that.
 */
export function nextUnlessClosed(
  session: AsyncGenerator<ReadEvent, void, undefined>,
  watch: ClosedWatch,
): Promise<IteratorResult<ReadEvent, void> | undefined> {
  if (watch.isClosed) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const unregister = watch.onClose(() => {
      session.return(undefined).catch(() => {});
      resolve(undefined);
    });
    session.next().then(
      (next) => {
        unregister();
        resolve(watch.isClosed ? undefined : next);
      },
      (error: unknown) => {
        unregister();
        if (!watch.isClosed) reject(error);
        // After a close nobody is waiting: the rejection is dropped, but an assertion still
        // crashes the process.
        else if (error instanceof AssertionError) {
          queueMicrotask(() => {
            throw error;
          });
        }
      },
    );
  });
}

/**
 * Serves an SSE read of `request` (the query's, not capped), resumed after `lastEventId` when
 * given. Resolves when the session has ended and the response is finished, or the client left.
 */
export async function serveSseRead(
  context: RequestContext,
  deps: ApiDeps,
  at: { readonly basin: string; readonly stream: string },
  request: ReadRequest,
  options: { readonly format: RecordFormat; readonly lastEventId: LastEventId | undefined },
): Promise<void> {
  const { response } = context;
  const watch = watchClosed(response);
  const effective =
    options.lastEventId === undefined ? request : resumedReadRequest(request, options.lastEventId);
  let session: AsyncGenerator<ReadEvent, void, undefined>;
  try {
    // Throws (404, 416, ...) before anything is sent: the server renders an ordinary error.
    session = await deps.service.records.openReadSession(at.basin, at.stream, effective, {
      encryptionKey: encryptionKeyOf(context.request),
    });
  } catch (error) {
    watch.stop();
    throw error;
  }

  deps.metrics.addSessions("sse", 1);
  const lease = deps.tokenWatch.lease(context.auth);
  // A revoked token ends each wait (`untilAborted`: a race against a session-long promise kept
  // every event raced until the session ended).
  const revoked = [lease.signal];
  let sentCount = 0;
  let sentBytes = 0;
  try {
    response.writeHead(200, sseResponseHeaders);
    // Send the headers now, so the client's request completes before the first event.
    (response as { flushHeaders?: () => void }).flushHeaders?.();
    for (;;) {
      let next: IteratorResult<ReadEvent, void> | undefined;
      try {
        next = await untilAborted(nextUnlessClosed(session, watch), revoked);
      } catch (error) {
        if (error instanceof AssertionError) throw error;
        if (!watch.isClosed) response.end(renderErrorSseEvent(error));
        return;
      }
      if (next === undefined) return;
      if (next.done === true) break;
      const event = next.value;
      let text: string;
      if (event.kind === "batch") {
        const last = event.records.at(-1);
        if (last === undefined) continue;
        const bytes = meteredBytesOfBatch(event.records);
        sentCount += event.records.length;
        sentBytes += bytes;
        deps.metrics.observeRead(event.records.length, bytes);
        text = sseBatchEvent(event, options.format, {
          seqNum: last.seqNum,
          count: sentCount,
          bytes: sentBytes,
        });
      } else {
        text = ssePingEvent(event.tail, Date.now());
      }
      if (!writeText(response, text)) {
        try {
          await untilAborted(drainedOrClosed(response, watch), revoked);
        } catch (error) {
          if (!watch.isClosed) response.end(renderErrorSseEvent(error));
          return;
        }
      }
    }
    if (!watch.isClosed) response.end(sseDoneEvent);
  } finally {
    lease.release();
    watch.stop();
    deps.metrics.addSessions("sse", -1);
    // Ends the generator (closing its follower) unless it already ended or a return is queued.
    session.return(undefined).catch(() => {});
  }
}
