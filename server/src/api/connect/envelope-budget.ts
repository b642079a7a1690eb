/**
 * Enveloped RPC request bodies under the server's frame budget (`api/frame-budget.ts`), as S2S
 * frames are (issue 14). gRPC, gRPC-web and Connect's streaming calls send each message as an
 * envelope: one flags byte, a big-endian 32-bit length, then the message. connect-node buffers an
 * envelope until it is complete (up to `readMaxBytes`), so without this a client could hold that
 * much in every call it opens, bounded only by the number of calls. Here the body passes through
 * unchanged, but a message's payload is passed on only once its declared length is reserved in the
 * budget; a call without room stops reading (flow control holds its client back) until there is.
 *
 * Invariants:
 * - The bytes passed on are exactly the bytes received, in order (the gate never rewrites).
 * - A payload byte is passed on only while its message's length is reserved; the reservation is
 *   released when the consumer asks for more after the message's last byte (connect-node has then
 *   decoded it and handed it on), or when the body ends, fails or is abandoned.
 * - A message longer than `messageBytesMax` is never reserved: its header is passed on alone, and
 *   connect-node fails the call with its own `readMaxBytes` error, as it did before this gate.
 *
 * Errors leave already rendered (`renderConnectError`): a unary gRPC call reads its body outside
 * the interceptors, where an `S2Error` would become `internal`.
 *
 * Fault model: a client that sends part of a message and then nothing for `stallTimeoutMs`, or
 * whose message waits that long for room, fails the call (408 `request_timeout`, 429
 * `rate_limited`: what an S2S session answers in both cases); the request body is then abandoned,
 * which resets the stream. A body that fails (the client reset its stream or went away) ends the
 * call as `aborted`, which is not logged as a server error.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { assert } from "../../core/assert.js";
import { S2Error } from "../../core/errors.js";
import { renderConnectError } from "../render-error.js";
import type { FrameBufferAccount } from "../frame-budget.js";

/** The flags byte and the 32-bit length. */
const envelopeHeaderBytes = 5;

export interface EnvelopeBudgetOptions {
  /** How long a partial message may wait for its next bytes, or for room in the budget. */
  readonly stallTimeoutMs: number;
  /** The largest message connect-node accepts (its `readMaxBytes`). */
  readonly messageBytesMax: number;
  /**
   * After `close`, how long a request that has not ended may stay open before `reset`: the
   * answer reaches the client meanwhile (a reset drops what is queued), and what the client
   * sends after it is left unread, held back by flow control.
   */
  readonly drainTimeoutMs?: number | undefined;
  /** Ends the exchange (an HTTP/2 stream reset, an HTTP/1.1 socket closed). */
  readonly reset?: (() => void) | undefined;
}

/** Whether a request with this content type has an enveloped body (every call but Connect unary). */
export function hasEnvelopedBody(contentType: string | undefined): boolean {
  const type = (contentType ?? "").toLowerCase();
  return type.startsWith("application/grpc") || type.startsWith("application/connect+");
}

/**
 * One request's body, passed through (`body`) with each message's payload held back until it fits
 * the budget. `close` ends it from outside: the call is over, so whatever it holds or waits for is
 * let go at once, and the request stream is ended.
 */
export class EnvelopeGate {
  readonly body: AsyncGenerator<Uint8Array, void, undefined>;
  private readonly source: AsyncIterator<Uint8Array>;
  /** Bytes reserved for the current message (0 between messages). */
  private reserved = 0;
  private isClosed = false;
  /** Set while a message waits for room: drops the wait and settles it. */
  private abandonWait: (() => void) | undefined;
  /** The request ended (its last chunk was read): nothing to reset. */
  private isSourceDone = false;
  private resetTimer: NodeJS.Timeout | undefined;

  constructor(
    body: AsyncIterable<Uint8Array>,
    private readonly account: FrameBufferAccount,
    private readonly options: EnvelopeBudgetOptions,
  ) {
    this.source = body[Symbol.asyncIterator]();
    this.body = this.pass();
  }

  /** Idempotent. The body ends at its next step; a consumer waiting on it sees it end. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.abandonWait?.();
    this.releaseHeld();
    this.endSource();
    // The body's pending read may wait for a client that never sends again: then the exchange
    // would stay open until the connection closes. It gets the drain's time, then a reset.
    const { reset, drainTimeoutMs } = this.options;
    if (!this.isSourceDone && reset !== undefined && drainTimeoutMs !== undefined) {
      this.resetTimer = setTimeout(() => {
        if (!this.isSourceDone) reset();
      }, drainTimeoutMs);
      this.resetTimer.unref();
    }
  }

  private async *pass(): AsyncGenerator<Uint8Array, void, undefined> {
    const { options } = this;
    const header = new Uint8Array(envelopeHeaderBytes);
    const headerView = new DataView(header.buffer);
    let headerFilled = 0;
    /** Payload bytes of the current message still to pass on. */
    let payloadLeft = 0;
    try {
      while (!this.isClosed) {
        // Between messages a client may be quiet for as long as it likes (its session's own
        // timeouts apply); inside one, the stall timeout.
        const isPartial = headerFilled > 0 || payloadLeft > 0;
        const read = this.source.next().catch((error: unknown) => {
          // The request stream failed: the client reset it or closed its connection. Nobody is
          // left to answer, so it is no server error (connect-node stays silent about `aborted`).
          throw new ConnectError(
            "the request body ended early",
            Code.Aborted,
            undefined,
            undefined,
            error,
          );
        });
        const next = isPartial
          ? await withinStallTimeout(read, options.stallTimeoutMs)
          : await read;
        if (next.done === true) {
          this.isSourceDone = true;
          clearTimeout(this.resetTimer);
          return; // a truncated message is connect-node's to report
        }
        // The client sent more after its call was answered: nothing will read it. (Not reset
        // here: the answer may still be on its way out, and a reset would drop it.)
        if (this.isClosed) return;
        const chunk = next.value;
        let offset = 0;
        while (offset < chunk.length) {
          if (payloadLeft === 0) {
            const take = Math.min(envelopeHeaderBytes - headerFilled, chunk.length - offset);
            header.set(chunk.subarray(offset, offset + take), headerFilled);
            headerFilled += take;
            offset += take;
            if (headerFilled < envelopeHeaderBytes) break;
            headerFilled = 0;
            const length = headerView.getUint32(1);
            if (length > options.messageBytesMax) {
              yield header.slice();
              // connect-node rejects the length on the header; nothing more is read.
              throw renderConnectError(
                new S2Error(
                  "invalid",
                  `rpc message too large. bytes=\`${length}\` max=\`${options.messageBytesMax}\``,
                ),
              );
            }
            if (length > 0) {
              await this.reserve(length);
              if (this.isClosed) return;
              payloadLeft = length;
            }
            yield header.slice();
            if (this.isClosed) return;
            continue;
          }
          assert(this.reserved >= payloadLeft, "a payload byte is passed on only while reserved");
          const take = Math.min(payloadLeft, chunk.length - offset);
          payloadLeft -= take;
          yield chunk.subarray(offset, offset + take);
          if (this.isClosed) return;
          offset += take;
          // The consumer asked for more after the message's last byte: it has taken the
          // message, so its room is free (before the next bytes arrive, however late).
          if (payloadLeft === 0) this.releaseHeld();
        }
      }
    } finally {
      this.releaseHeld();
      this.endSource();
    }
  }

  /** Reserves `bytes` at once or as soon as there is room; fails after the stall timeout. */
  private reserve(bytes: number): Promise<void> {
    assert(this.reserved === 0, "one message reserved at a time");
    if (this.account.tryReserve(bytes)) {
      this.reserved = bytes;
      return Promise.resolve();
    }
    const { stallTimeoutMs } = this.options;
    return new Promise((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        cancel();
        this.abandonWait = undefined;
      };
      const timer = setTimeout(() => {
        settle();
        reject(
          renderConnectError(
            new S2Error(
              "rate_limited",
              `the server's buffer for incoming messages is full. waited_ms=\`${stallTimeoutMs}\``,
            ),
          ),
        );
      }, stallTimeoutMs);
      const cancel = this.account.waitToReserve(bytes, () => {
        // Granted: held from this instant, so that `close` can release it.
        this.reserved = bytes;
        settle();
        resolve();
      });
      this.abandonWait = () => {
        settle();
        resolve(); // the body sees `isClosed` and ends
      };
    });
  }

  private releaseHeld(): void {
    if (this.reserved === 0) return;
    this.account.release(this.reserved);
    this.reserved = 0;
  }

  /** Ends the request stream (a Node stream is destroyed) if it did not end. Not awaited: the
   * source may be inside a pending read, and its return waits for that read. */
  private endSource(): void {
    void Promise.resolve(this.source.return?.()).catch(() => {});
  }
}

/** `next`, or a 408 once `timeoutMs` pass without it. */
async function withinStallTimeout<T>(next: Promise<T>, timeoutMs: number): Promise<T> {
  // Left pending on a stall (the body is then abandoned): its late rejection is nobody's error.
  next.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          renderConnectError(
            new S2Error(
              "request_timeout",
              `rpc message incomplete. stall_timeout_ms=\`${timeoutMs}\``,
            ),
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([next, stalled]);
  } finally {
    clearTimeout(timer);
  }
}
