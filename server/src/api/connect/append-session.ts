/**
 * The RPC append session (`StreamService.AppendSession`, bidirectional streaming over Connect,
 * gRPC and gRPC-web): the S2S append session's semantics (api/s2s/append-session.ts, S2-API.md
 * §5.8) on connect-node's async iterables. Each input is appended in arrival order without
 * waiting for earlier acks (pipelined); acks go back in input order. The first failure ends the
 * session after the acks of the inputs before it, and no later input is applied (the session's
 * appends share one `SessionPoisoning`). A message that cannot be decoded, or that names another
 * basin or stream, fails the session the same way, after the acks of the inputs before it. When
 * the client half-closes, outstanding acks are sent and the call ends OK.
 *
 * The first message names the basin and stream (later ones may leave them empty); the stream is
 * resolved (auto-created, cipher checked) before anything is appended, so those errors end the
 * call before any ack.
 *
 * Flow control: the session pulls the next input only while fewer than
 * `rpcAppendInflightInputsMax` inputs (and `rpcAppendInflightBytesMax` metered bytes) await an ack
 * that the transport has taken; connect-node pulls an ack only when the previous one was written
 * (it awaits `drain`). A client that does not read its acks therefore stops its own inputs, and
 * HTTP/2 flow control pushes back on it; nothing is buffered beyond the bound.
 *
 * Fault model: a client that disconnects ends the session (the abort signal wakes it); inputs
 * already submitted stay submitted and may become durable, like a unary append whose client hung
 * up. A caller's token that is revoked or expires (`TokenWatch`) ends the session the same way,
 * with 401 `authn` (Unauthenticated) instead of OK.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import type {
  AppendSessionRequest,
  AppendSessionResponse,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { invalid, S2Error } from "../../core/errors.js";
import { rpcAppendInflightBytesMax, rpcAppendInflightInputsMax } from "../../core/limits.js";
import { type AppendAck, meteredBytesOfBatch } from "../../core/records.js";
import { appendAckToProto, appendInputFromProto } from "../convert/records-proto.js";
import { authorizeCommands, type Principal } from "../auth.js";
import { principalKey } from "../auth-routes.js";
import type { ApiDeps } from "../routes.js";
import { SessionPoisoning } from "../s2s/append-session.js";
import type { AppendProducer } from "../../streamer/streamer.js";
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
  const signal = AbortSignal.any([context.signal, lease.signal]);
  const session = new RpcAppendSession(inputs, signal, deps, {
    basin,
    stream,
    encryptionKey,
    producer,
    principal,
  });
  deps.metrics.addSessions("rpc_append", 1);
  try {
    yield* session.run(first.value);
    if (lease.signal.aborted) throw lease.signal.reason;
  } finally {
    lease.release();
    deps.metrics.addSessions("rpc_append", -1);
  }
}

/** An input between its submission and its ack leaving the session. */
interface InflightInput {
  readonly outcome: Promise<{ ack: AppendAck } | { error: unknown }>;
  readonly recordCount: number;
  readonly meteredBytes: number;
  readonly startMs: number;
}

class RpcAppendSession {
  private readonly poisoning = new SessionPoisoning();
  /** Inputs submitted so far (the producer seq of the next is the first's plus this). */
  private submitted = 0;
  /** Submitted inputs whose ack has not been taken by the transport, in order. */
  private readonly inflight: InflightInput[] = [];
  private inflightBytes = 0;
  /** No input will be added: the client half-closed, or an input failed (`inputError`). */
  private isInputClosed = false;
  private inputError: unknown;
  /** The session is over (ended, failed or aborted): stop pulling inputs. */
  private isClosed = false;
  private readonly waiting: (() => void)[] = [];
  private readonly onAbort = (): void => this.close();

  constructor(
    private readonly inputs: AsyncIterator<AppendSessionRequest>,
    private readonly signal: AbortSignal,
    private readonly deps: ApiDeps,
    private readonly target: {
      readonly basin: string;
      readonly stream: string;
      readonly encryptionKey: Uint8Array | undefined;
      /** The session's producer, with its first batch's seq (from the first message). */
      readonly producer: AppendProducer | undefined;
      /** The caller: fence and trim commands need their operations (`authorizeCommands`). */
      readonly principal: Principal;
    },
  ) {}

  /** Acks in input order; throws the first failure after the acks before it. */
  async *run(
    first: AppendSessionRequest,
  ): AsyncGenerator<AppendSessionResponseInit, void, undefined> {
    this.signal.addEventListener("abort", this.onAbort, { once: true });
    try {
      this.acceptOrCloseInput(first);
      void this.pullInputs();
      for (;;) {
        const entry = this.inflight[0];
        if (entry === undefined) {
          if (this.isInputClosed) {
            if (this.inputError !== undefined) throw this.inputError;
            return;
          }
          if (this.isClosed) return;
          await this.changed();
          continue;
        }
        const outcome = await entry.outcome;
        if ("error" in outcome) throw outcome.error;
        if (this.isClosed) return;
        this.deps.metrics.observeAppend(
          entry.recordCount,
          entry.meteredBytes,
          performance.now() - entry.startMs,
        );
        // connect-node resumes this generator only once the ack is written (or buffered within
        // the transport's own window), so the bound below counts acks not yet taken.
        yield { ack: appendAckToProto(outcome.ack) };
        this.inflight.shift();
        this.inflightBytes -= entry.meteredBytes;
        this.wake();
      }
    } finally {
      this.close();
      this.signal.removeEventListener("abort", this.onAbort);
    }
  }

  private hasCapacity(): boolean {
    return (
      this.inflight.length < rpcAppendInflightInputsMax &&
      this.inflightBytes < rpcAppendInflightBytesMax
    );
  }

  /** Pulls inputs while the session has capacity, until the input ends or fails. */
  private async pullInputs(): Promise<void> {
    try {
      while (!this.isInputClosed) {
        while (!this.isClosed && !this.hasCapacity()) await this.changed();
        if (this.isClosed) return;
        const next = await this.inputs.next();
        if (this.isClosed) return;
        if (next.done === true) {
          this.closeInput(undefined);
          return;
        }
        this.acceptOrCloseInput(next.value);
      }
    } catch (error) {
      // connect-node reports a message it cannot decode as an `internal` ConnectError; it is the
      // client's input, so it is 400 `bad_proto` here (invalid_argument).
      this.closeInput(
        error instanceof ConnectError && error.code === Code.Internal
          ? new S2Error("bad_proto", `invalid message: ${error.rawMessage}`, { cause: error })
          : error,
      );
    }
  }

  /** Submits one input; an input that is not acceptable closes the input with its error. */
  private acceptOrCloseInput(message: AppendSessionRequest): void {
    const { basin, stream, encryptionKey, producer } = this.target;
    try {
      if (
        (message.basin !== "" && message.basin !== basin) ||
        (message.stream !== "" && message.stream !== stream)
      ) {
        throw invalid(
          `an append session writes one stream: name it only in the first message. basin=\`${message.basin}\` stream=\`${message.stream}\``,
        );
      }
      const input = appendInputFromProto(message.input ?? create(AppendInputSchema));
      authorizeCommands(this.target.principal, input);
      const batchProducer =
        producer === undefined ? undefined : { ...producer, seq: producer.seq + this.submitted };
      this.submitted += 1;
      const ack = this.deps.service.records.append(basin, stream, input, {
        session: this.poisoning.enter(),
        encryptionKey,
        producer: batchProducer,
      });
      const meteredBytes = meteredBytesOfBatch(input.records);
      this.inflight.push({
        outcome: ack.then(
          (value) => ({ ack: value }),
          (error: unknown) => ({ error }),
        ),
        recordCount: input.records.length,
        meteredBytes,
        startMs: performance.now(),
      });
      this.inflightBytes += meteredBytes;
      this.wake();
    } catch (error) {
      this.closeInput(error);
    }
  }

  private closeInput(error: unknown): void {
    if (this.isInputClosed) return;
    this.isInputClosed = true;
    this.inputError = error;
    this.wake();
  }

  private close(): void {
    this.isClosed = true;
    this.wake();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private wake(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}
