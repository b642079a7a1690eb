/**
 * The RPC append session (`StreamService.AppendSession`, bidirectional streaming over Connect,
 * gRPC and gRPC-web): the S2S append session's semantics (S2-API.md §5.8) on connect-node's async
 * iterables. This file holds the RPC side only: it pulls and checks messages into the session's
 * append pipeline (`service/append-session.ts`: pipelining, the in-flight bound, ordered replies,
 * poisoning, producer seqs) and yields each ack it releases, in input order. The first failure
 * ends the call after the acks of the inputs before it, and no later input is applied. A message
 * that cannot be decoded, or that names another basin or stream, ends the pipeline's input with
 * its error, so it is reported the same way. When the client half-closes, outstanding acks are
 * sent and the call ends OK.
 *
 * The first message names the basin and stream (later ones may leave them empty); the stream is
 * resolved (auto-created, cipher checked) before anything is appended, so those errors end the
 * call before any ack.
 *
 * Flow control: the session pulls the next message only while the pipeline has capacity
 * (`appendSessionInflightBytesMax`, metered bytes, counting an input until its ack is taken);
 * connect-node resumes the reply generator, which takes the next ack, only once the previous one
 * was written (it awaits `drain`). A client that does not read its acks therefore stops its own
 * inputs, and HTTP/2 flow control pushes back on it; nothing is buffered beyond the bound.
 *
 * Fault model: a client that disconnects ends the session (the abort signal abandons the
 * pipeline); inputs already submitted stay submitted and may become durable, like a unary append
 * whose client hung up. A caller's token that is revoked or expires (`TokenWatch`) ends the
 * pipeline's input with 401 `authn`: the acks of the inputs already submitted, then
 * Unauthenticated.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import type {
  AppendSessionRequest,
  AppendSessionResponse,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { AssertionError } from "../../core/assert.js";
import { invalid, S2Error } from "../../core/errors.js";
import type { AppendInput } from "../../core/records.js";
import { AppendSession } from "../../service/append-session.js";
import { appendAckToProto, appendInputFromProto } from "../convert/records-proto.js";
import { authorizeCommands, type Principal } from "../auth.js";
import { principalKey } from "../auth-routes.js";
import type { ApiDeps } from "../routes.js";
import { encryptionKeyFieldOf, producerFieldOf } from "./request-fields.js";

type AppendSessionResponseInit = Pick<AppendSessionResponse, "ack">;

/** Serves one append session; the returned iterable is pulled by connect-node. */
export async function* serveAppendSession(
  requests: AsyncIterable<AppendSessionRequest>,
  context: HandlerContext,
  deps: ApiDeps,
): AsyncGenerator<AppendSessionResponseInit, void, undefined> {
  const inputs = requests[Symbol.asyncIterator]();
  const first = await inputs.next();
  if (first.done === true) return;
  const { basin, stream } = first.value;
  if (basin === "" || stream === "") {
    throw invalid("the first message of an append session must name its basin and stream");
  }
  const encryptionKey = encryptionKeyFieldOf(first.value.encryptionKey, context);
  const producer = producerFieldOf(first.value.producer);
  await deps.service.records.resolveForAppend(basin, stream, { encryptionKey });
  const principal = context.values.get(principalKey);
  const lease = deps.tokenWatch.lease(principal);
  const session = new AppendSession(
    deps.service.records,
    { basin, stream, encryptionKey, producer },
    {
      observeAck: (ack) => deps.metrics.observeAppend(ack),
    },
  );
  const onAbort = (): void => session.abandon();
  const onRevoked = (): void => session.endInput(lease.signal.reason);
  context.signal.addEventListener("abort", onAbort, { once: true });
  lease.signal.addEventListener("abort", onRevoked, { once: true });
  if (context.signal.aborted) onAbort();
  if (lease.signal.aborted) onRevoked();
  deps.metrics.addSessions("rpc_append", 1);
  try {
    void pullInputs(session, inputs, first.value, { basin, stream, principal });
    for await (const ack of session.replies()) yield { ack: appendAckToProto(ack) };
  } finally {
    // Stops pulling inputs, whether the session ended or connect-node stopped the generator.
    session.abandon();
    context.signal.removeEventListener("abort", onAbort);
    lease.signal.removeEventListener("abort", onRevoked);
    lease.release();
    deps.metrics.addSessions("rpc_append", -1);
  }
}

/**
 * Submits `first`, then pulls and submits messages while the pipeline has capacity, until the
 * input ends (half-close), fails (an unacceptable message: the pipeline's input ends with its
 * error) or the pipeline takes no more.
 */
async function pullInputs(
  session: AppendSession,
  inputs: AsyncIterator<AppendSessionRequest>,
  first: AppendSessionRequest,
  target: { readonly basin: string; readonly stream: string; readonly principal: Principal },
): Promise<void> {
  let message: AppendSessionRequest | undefined = first;
  for (;;) {
    let input: AppendInput;
    try {
      if (message === undefined) {
        await session.whenCapacity();
        if (session.isInputEnded) return;
        const next = await inputs.next();
        if (next.done === true) {
          if (!session.isInputEnded) session.endInput();
          return;
        }
        message = next.value;
      }
      input = inputOf(message, target);
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      // connect-node reports a message it cannot decode as an `internal` ConnectError; it is the
      // client's input, so it is 400 `bad_proto` here (invalid_argument).
      session.endInput(
        error instanceof ConnectError && error.code === Code.Internal
          ? new S2Error("bad_proto", `invalid message: ${error.rawMessage}`, { cause: error })
          : error,
      );
      return;
    }
    // The input may have ended while the message was awaited (revoked token, client gone).
    if (session.isInputEnded) return;
    session.submit(input);
    message = undefined;
  }
}

/** The batch of a session message, which may name only the session's basin and stream. */
function inputOf(
  message: AppendSessionRequest,
  target: { readonly basin: string; readonly stream: string; readonly principal: Principal },
): AppendInput {
  const { basin, stream } = target;
  if (
    (message.basin !== "" && message.basin !== basin) ||
    (message.stream !== "" && message.stream !== stream)
  ) {
    throw invalid(
      `an append session writes one stream: name it only in the first message. basin=\`${message.basin}\` stream=\`${message.stream}\``,
    );
  }
  const input = appendInputFromProto(message.input ?? create(AppendInputSchema));
  authorizeCommands(target.principal, input);
  return input;
}
