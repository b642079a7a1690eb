/**
 * A read session as an async iterable of records over the server-streaming `ReadSession` RPC. It
 * survives a dropped connection or a server restart by reopening the session at the next seq num
 * (no gap, no duplicate), and treats a silence longer than the heartbeat timeout as a dead session.
 */
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { SequencedRecord } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import type { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { backoffMs, isRetryable, type RetryOptions } from "./retry.js";

/** Settings of a read session. */
export interface ReadSessionOptions {
  readonly basin: string;
  readonly stream: string;
  /** The first seq num to read. */
  readonly startSeqNum: bigint;
  /**
   * End after this many records, or at the tail if `waitSecs` is absent (S2 semantics: a limited
   * session does not wait). With neither, the session follows the tail forever.
   */
  readonly count?: bigint;
  /** End after this many seconds at the tail without new records. */
  readonly waitSecs?: number;
  /** The 32-byte key of an encrypted stream. */
  readonly encryptionKey?: Uint8Array;
  /**
   * A session that sends nothing for this long is dead and is reopened (default 20 000 ms; the
   * server sends a heartbeat at least every 15 s while idle).
   */
  readonly heartbeatTimeoutMs?: number;
  /**
   * Backoff between reconnects; `maxAttempts` is here the number of consecutive failed reconnects
   * tolerated (default `reconnectFailuresMaxDefault`).
   */
  readonly retry?: RetryOptions;
  /** Ends the iteration with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called before each reconnect, with the failure and the seq num the session resumes from. */
  readonly onReconnect?: (error: unknown, nextSeqNum: bigint) => void;
}

/** Silence after which a session is reopened (the SDKs' 20 s; the server beats every 5–15 s). */
export const heartbeatTimeoutMsDefault = 20_000;
/** Consecutive failed reconnects a session tolerates (~1 min of 2 s backoffs: a restart). */
export const reconnectFailuresMaxDefault = 30;

/** Thrown inside a session that stayed silent past its heartbeat timeout. */
export class HeartbeatTimeoutError extends Error {
  override readonly name = "HeartbeatTimeoutError";
}

/**
 * Reads records from `startSeqNum` on, following the tail, reconnecting after transient failures
 * and silent sessions. Non-retryable errors (e.g. a missing stream) end the iteration.
 */
export async function* readSession(
  client: Client<typeof StreamService>,
  options: ReadSessionOptions,
): AsyncGenerator<SequencedRecord, void, undefined> {
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? heartbeatTimeoutMsDefault;
  const maxAttempts = options.retry?.maxAttempts ?? reconnectFailuresMaxDefault;
  let next = options.startSeqNum;
  let remaining = options.count;
  let failures = 0;
  let resumed = false;
  for (;;) {
    options.signal?.throwIfAborted();
    if (remaining !== undefined && remaining <= 0n) return;
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(
        () => abort.abort(new HeartbeatTimeoutError(`no message for ${heartbeatTimeoutMs} ms`)),
        heartbeatTimeoutMs,
      );
    };
    try {
      arm();
      const responses = client.readSession(
        {
          basin: options.basin,
          stream: options.stream,
          start: { case: "seqNum", value: next },
          // After a reconnect `next` may be the tail, which only a clamped start accepts.
          clamp: resumed,
          ...(remaining !== undefined && { count: remaining }),
          ...(options.waitSecs !== undefined && { waitSecs: options.waitSecs }),
          ...(options.encryptionKey !== undefined && { encryptionKey: options.encryptionKey }),
        },
        { signal: abort.signal },
      );
      for await (const response of responses) {
        failures = 0;
        clearTimeout(timer);
        for (const record of response.batch?.records ?? []) {
          if (record.seqNum < next) continue;
          next = record.seqNum + 1n;
          if (remaining !== undefined) remaining -= 1n;
          yield record;
        }
        arm();
      }
      // A session with a limit or a wait ends by itself at the tail; one that follows forever
      // ended because it was lost.
      if (remaining !== undefined || options.waitSecs !== undefined) return;
      throw new ConnectError("the read session ended early", Code.Unavailable);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      // A resumed limited session that cannot wait ends at the tail, as the first one would have.
      if (resumed && ConnectError.from(error).code === Code.OutOfRange) return;
      const heartbeatLost = abort.signal.reason instanceof HeartbeatTimeoutError;
      // A stream canceled by anyone but us: the HTTP/2 connection went away under it.
      const connectionLost =
        !abort.signal.aborted && ConnectError.from(error).code === Code.Canceled;
      if (!heartbeatLost && !connectionLost && !isRetryable(error)) throw error;
      failures += 1;
      if (failures > maxAttempts) throw error;
      resumed = true;
      options.onReconnect?.(heartbeatLost ? abort.signal.reason : error, next);
      await new Promise((resolve) => setTimeout(resolve, backoffMs(failures, options.retry)));
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      abort.abort();
    }
  }
}
