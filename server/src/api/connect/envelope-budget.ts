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
 * Fault model: a client that sends part of a message and then nothing for `stallTimeoutMs`, or
 * whose message waits that long for room, fails the call (408 `request_timeout`, 429
 * `rate_limited`: what an S2S session answers in both cases); the request body is then abandoned,
 * which resets the stream. A body that fails (the client reset its stream or went away) ends the
 * call as `aborted`, which is not logged as a server error.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { assert } from "../../core/assert.js";
import { S2Error } from "../../core/errors.js";
import type { FrameBufferAccount } from "../frame-budget.js";

/** The flags byte and the 32-bit length. */
const envelopeHeaderBytes = 5;

export interface EnvelopeBudgetOptions {
  /** How long a partial message may wait for its next bytes, or for room in the budget. */
  readonly stallTimeoutMs: number;
  /** The largest message connect-node accepts (its `readMaxBytes`). */
  readonly messageBytesMax: number;
}

/** Whether a request with this content type has an enveloped body (every call but Connect unary). */
export function hasEnvelopedBody(contentType: string | undefined): boolean {
  const type = (contentType ?? "").toLowerCase();
  return type.startsWith("application/grpc") || type.startsWith("application/connect+");
}

/** `body`, passed through with each message's payload held back until it fits the budget. */
export async function* envelopesWithinBudget(
  body: AsyncIterable<Uint8Array>,
  account: FrameBufferAccount,
  options: EnvelopeBudgetOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const source = body[Symbol.asyncIterator]();
  const header = new Uint8Array(envelopeHeaderBytes);
  const headerView = new DataView(header.buffer);
  let headerFilled = 0;
  /** Payload bytes of the current message still to pass on. */
  let payloadLeft = 0;
  /** Bytes reserved for the current message (0 between messages). */
  let reserved = 0;
  try {
    for (;;) {
      // Between messages a client may be quiet for as long as it likes (its session's own
      // timeouts apply); inside one, the stall timeout.
      const isPartial = headerFilled > 0 || payloadLeft > 0;
      const read = source.next().catch((error: unknown) => {
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
      const next = isPartial ? await withinStallTimeout(read, options.stallTimeoutMs) : await read;
      if (next.done === true) return; // a truncated message is connect-node's to report
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
            throw new S2Error(
              "invalid",
              `rpc message too large. bytes=${length} max=${options.messageBytesMax}`,
            );
          }
          if (length > 0) {
            await reserveWithin(account, length, options.stallTimeoutMs);
            reserved = length;
            payloadLeft = length;
          }
          yield header.slice();
          continue;
        }
        assert(reserved >= payloadLeft, "a payload byte is passed on only while reserved");
        const take = Math.min(payloadLeft, chunk.length - offset);
        payloadLeft -= take;
        yield chunk.subarray(offset, offset + take);
        offset += take;
        if (payloadLeft === 0) {
          // The consumer asked for more after the message's last byte: it has taken the
          // message, so its room is free (before the next bytes arrive, however late).
          account.release(reserved);
          reserved = 0;
        }
      }
    }
  } finally {
    if (reserved > 0) account.release(reserved);
    // Ends the request body (a Node stream is destroyed) if it did not end. Not awaited: after a
    // stall the source is still inside its pending read, and its return waits for that read.
    void Promise.resolve(source.return?.()).catch(() => {});
  }
}

/** Reserves `bytes` at once or as soon as there is room; fails after `timeoutMs` without it. */
function reserveWithin(
  account: FrameBufferAccount,
  bytes: number,
  timeoutMs: number,
): Promise<void> {
  if (account.tryReserve(bytes)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cancel();
      reject(
        new S2Error(
          "rate_limited",
          `the server's buffer for incoming messages is full. waited_ms=${timeoutMs}`,
        ),
      );
    }, timeoutMs);
    const cancel = account.waitToReserve(bytes, () => {
      clearTimeout(timer);
      resolve();
    });
  });
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
          new S2Error("request_timeout", `rpc message incomplete. stall_timeout_ms=${timeoutMs}`),
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
