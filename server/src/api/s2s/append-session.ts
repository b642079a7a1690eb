/**
 * S2S append sessions (S2-API.md §5.8, SDK-CLIENT.md "Append session"): `POST .../records` with
 * `Content-Type: s2s/proto`. This file holds the S2S framing only: it decodes `AppendInput` frames
 * into the session's append pipeline (`service/append-session.ts`: pipelining, the in-flight bound,
 * ordered replies, poisoning, producer seqs) and writes each ack it releases as an `AppendAck`
 * frame, in input order.
 *
 * The first failure ends the session: acks of earlier inputs are written first, then a terminal
 * frame with the error (status + the body a unary append would get), and no later input is
 * applied. A frame that cannot be decoded, a client terminal frame or a stream that ends inside a
 * frame is 400 `bad_frame`, reported the same way after the acks of the inputs before it (it ends
 * the pipeline's input with that error). When the client half-closes, outstanding acks are
 * written and the response ends without a terminal frame.
 *
 * Errors before the session starts (basin or stream missing, auto-create, deletion pending, a bad
 * or missing `S2-Encryption-Key`) are ordinary HTTP errors with JSON bodies: the stream is resolved
 * before the 200.
 *
 * Bounds: the pipeline's in-flight bound (`appendSessionInflightBytesMax`, in metered bytes) from
 * submission to a written ack, plus the frames of one request chunk decoded and not yet
 * submitted. Beyond that the request is paused, so HTTP/2 flow control pushes back on the client;
 * a client that does not read its acks stops its own session the same way, since the session asks
 * the pipeline for the next ack only once the response has drained the last one.
 *
 * Fault model: a client that disconnects ends the session at once; inputs already submitted stay
 * submitted (they may become durable, like a unary append whose client hung up). A client that is
 * still sending when the session ends has the rest of its input read and discarded, for at most
 * `s2sAppendDrainBytesMax` bytes or `s2sAppendDrainTimeoutMs`, then the exchange is reset: unread
 * input would keep the stream, the session and the socket open after the client is gone. A frame
 * of which part arrived and then nothing more for `s2sFrameStallTimeoutMs` while the session reads
 * fails the session with 408 `request_timeout`, after the acks before it. When the
 * session's access token is revoked or expires (`TokenWatch`), the session stops taking input as
 * if it were malformed: the acks of inputs already submitted, then a terminal 401 `authn`; if
 * these have not reached the client after `s2sAppendDrainTimeoutMs` (it does not read), the
 * exchange is reset. A frame that waits for room in the server's frame budget (`FrameBudget`)
 * keeps the session from reading; waiting longer than the stall timeout fails it with 429
 * `rate_limited`.
 */
import { authorizeCommands, type Principal } from "../auth.js";
import { type Http2ServerResponse, constants as http2Constants } from "node:http2";
import { assert } from "../../core/assert.js";
import { S2Error } from "../../core/errors.js";
import {
  s2sAppendDrainBytesMax,
  s2sAppendDrainTimeoutMs,
  s2sCompressionBytesMin,
} from "../../core/limits.js";
import type { AppendInput } from "../../core/records.js";
import { AppendSession } from "../../service/append-session.js";
import { decodeAppendInput } from "../convert/append-input-decoder.js";
import { encodeAppendAckProto } from "../convert/records-proto.js";
import {
  type ApiRequest,
  type ApiResponse,
  encryptionKeyOf,
  type RequestContext,
} from "../http/request-context.js";
import type { ApiDeps } from "../routes.js";
import {
  decodeS2sPayload,
  encodeS2sFrame,
  encodeS2sTerminalFrame,
  isResponseClosed,
  S2sFrameDecoder,
  type S2sFrame,
  startS2sResponse,
  writeS2sFrame,
} from "./frame.js";
import { producerOf } from "../http/producer-headers.js";
import { resetExchange } from "../http/reset-exchange.js";
import type { AppendProducer } from "../../streamer/streamer.js";

/** Serves an S2S append session on `basin`/`stream`; resolves when the exchange is over. */
export async function handleS2sAppendSession(
  context: RequestContext,
  deps: ApiDeps,
  basin: string,
  stream: string,
): Promise<void> {
  const { request, response } = context;
  // `Accept-Encoding` does not matter here: acks are far below the compression threshold. Frames
  // from the client are decoded per their own flag bits, whatever it listed.
  const encryptionKey = encryptionKeyOf(request);
  const producer = producerOf(request);
  await deps.service.records.resolveForAppend(basin, stream, { encryptionKey });
  if (isResponseClosed(response)) return;
  startS2sResponse(response);
  deps.metrics.addSessions("s2s_append", 1);
  const lease = deps.tokenWatch.lease(context.auth);
  try {
    await new S2sAppendSession(request, response, deps, {
      basin,
      stream,
      encryptionKey,
      producer,
      principal: context.auth,
      tokenRevoked: lease.signal,
    }).run();
  } finally {
    lease.release();
    deps.metrics.addSessions("s2s_append", -1);
  }
}

type SessionState = "open" | "ending" | "closed";

class S2sAppendSession {
  /** Frames still arriving hold room in the server's budget (`FrameBudget`). */
  private readonly decoder: S2sFrameDecoder;
  /** The append pipeline: submitted inputs until their ack is written. */
  private readonly pipeline: AppendSession;
  /** Frames decoded from the request and not yet submitted: at most one chunk's worth. */
  private readonly frames: S2sFrame[] = [];
  /** A `submitFrames` waits for the pipeline's capacity. */
  private isWaitingForCapacity = false;
  private isRequestEnded = false;
  /** No frame will be added: the request ended or was malformed. */
  private isInputClosed = false;
  /** Why the input stopped early; reported after the acks of the inputs before it. */
  private inputError: unknown;
  private isSubmitting = false;
  /** The caller's token was revoked or expired: nothing more is submitted. */
  private isRevoked = false;
  /** Resets the exchange if a revoked session has not closed within the drain's time. */
  private revokedTimer: NodeJS.Timeout | undefined;
  /** Runs while a frame is partly received and the session reads (`watchStall`). */
  private stallTimer: NodeJS.Timeout | undefined;
  private state: SessionState = "open";
  private readonly waitingForDrain: (() => void)[] = [];
  private resolveClosed: () => void = () => {};

  constructor(
    private readonly request: ApiRequest,
    private readonly response: ApiResponse,
    private readonly deps: ApiDeps,
    private readonly target: {
      readonly basin: string;
      readonly stream: string;
      readonly encryptionKey: Uint8Array | undefined;
      /** The session's producer (its first batch's seq), from the opening request's headers. */
      readonly producer: AppendProducer | undefined;
      /** The caller: fence and trim commands need their operations (`authorizeCommands`). */
      readonly principal: Principal;
      /** Aborts when the caller's token is revoked or expires (`TokenWatch`). */
      readonly tokenRevoked: AbortSignal;
    },
  ) {
    this.decoder = new S2sFrameDecoder({
      budget: deps.frameBudget.accountFor(request),
      onRoom: () => this.onData(Buffer.alloc(0)),
    });
    const { basin, stream, encryptionKey, producer } = target;
    this.pipeline = new AppendSession(
      deps.service.records,
      { basin, stream, encryptionKey, producer },
      {
        observeAck: (ack) => deps.metrics.observeAppend(ack),
      },
    );
  }

  /** Runs until the response is closed (ended by us, or reset by the client). */
  run(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    });
    const { request, response } = this;
    const { tokenRevoked } = this.target;
    const onRevoked = (): void => this.onRevoked(tokenRevoked.reason);
    tokenRevoked.addEventListener("abort", onRevoked, { once: true });
    response.on("close", () => {
      tokenRevoked.removeEventListener("abort", onRevoked);
      this.onClosed();
    });
    if (isResponseClosed(response)) this.onClosed();
    response.on("drain", () => this.onDrain());
    request.on("data", (chunk: Buffer) => this.onData(chunk));
    request.on("end", () => this.onEnd());
    // A reset stream surfaces as an error on the request; `close` on the response handles it.
    request.on("error", () => {});
    void this.writeAcks();
    return closed;
  }

  private onData(chunk: Buffer): void {
    if (this.state !== "open" || this.isInputClosed) return;
    // Progress: a partial frame gets a fresh stall timeout once reading resumes.
    this.stopStallTimer();
    const { frames, error } = this.decoder.push(chunk);
    this.frames.push(...frames);
    // The frames before a malformation are valid: they are submitted, and the error follows.
    if (error !== undefined) this.closeInput(error);
    // No more chunks until these frames are submitted: `submitFrames` resumes when it can.
    else this.request.pause();
    void this.submitFrames();
  }

  private onEnd(): void {
    this.isRequestEnded = true;
    if (this.state !== "open" || this.isInputClosed) return;
    this.closeInput(this.decoder.end());
    void this.submitFrames();
  }

  /**
   * The token is no longer valid: no more input, and the error after the acks before it. Those
   * get `s2sAppendDrainTimeoutMs` to reach the client, then the exchange is reset: a client that
   * does not read would otherwise keep the session waiting for `drain` for ever.
   */
  private onRevoked(error: unknown): void {
    if (this.state === "closed") return;
    this.revokedTimer ??= setTimeout(() => this.reset(), s2sAppendDrainTimeoutMs);
    if (this.state !== "open" || this.inputError !== undefined) return;
    this.isRevoked = true;
    this.failFrame(error);
    void this.submitFrames();
  }

  private onClosed(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.decoder.close();
    this.stopStallTimer();
    clearTimeout(this.revokedTimer);
    this.frames.length = 0;
    this.pipeline.abandon();
    this.onDrain();
    this.resolveClosed();
  }

  private onDrain(): void {
    for (const wake of this.waitingForDrain.splice(0)) wake();
  }

  /**
   * No input after what is queued: the request ended (`error` undefined) or was malformed. The
   * pipeline's input ends once the queued frames are submitted, so the error is reported after
   * the acks of the inputs before it.
   */
  private closeInput(error: unknown): void {
    if (this.isInputClosed) return;
    this.isInputClosed = true;
    this.decoder.close();
    if (error !== undefined) {
      this.inputError = error;
      this.request.pause();
    }
  }

  /** A queued frame could not be decoded: it and everything after it are dropped. */
  private failFrame(error: unknown): void {
    this.frames.length = 0;
    this.isInputClosed = true;
    this.decoder.close();
    this.inputError = error;
    this.request.pause();
  }

  /** Submits queued frames in order while the pipeline has capacity. */
  private async submitFrames(): Promise<void> {
    if (this.isSubmitting) return;
    this.isSubmitting = true;
    try {
      while (this.state === "open" && this.frames.length > 0 && this.pipeline.hasCapacity) {
        const frame = this.frames.shift()!;
        let input: AppendInput;
        try {
          if (frame.isTerminal) throw new S2Error("bad_frame", "unexpected terminal frame");
          // The payload joined (one exact-size copy), not its pieces: a record left a view of a
          // piece would keep the whole socket read behind it alive until the record is encoded,
          // up to 16 times the payload (measured: 6.2 times with 3,000 B records).
          input = decodeAppendInput(await decodeS2sPayload(frame), "bad_frame");
          authorizeCommands(this.target.principal, input);
        } catch (error) {
          this.failFrame(error);
          break;
        }
        if (this.state !== "open" || this.isRevoked || this.pipeline.isInputEnded) break;
        this.pipeline.submit(input);
      }
    } finally {
      this.isSubmitting = false;
    }
    if (this.state === "open") {
      const { hasCapacity } = this.pipeline;
      if (!this.isInputClosed) {
        const isHeld = this.frames.length > 0 || !hasCapacity || this.decoder.isWaitingForRoom;
        if (isHeld) this.request.pause();
        else this.request.resume();
      } else if (this.frames.length === 0) {
        // Every frame before the input's end is submitted: the end (or its error) follows them.
        this.pipeline.endInput(this.inputError);
      }
      if (!hasCapacity) this.submitFramesWithCapacity();
    }
    this.watchStall();
  }

  /**
   * Submits the queued frames (or resumes reading) once the pipeline has capacity again, i.e.
   * once an ack was written. A pipeline that takes no more input (it failed) ends the session.
   */
  private submitFramesWithCapacity(): void {
    if (this.isWaitingForCapacity || this.pipeline.isInputEnded) return;
    this.isWaitingForCapacity = true;
    void this.pipeline.whenCapacity().then(() => {
      this.isWaitingForCapacity = false;
      void this.submitFrames();
    });
  }

  /**
   * Runs the stall timer while a frame is partly received and the session reads; stops it
   * otherwise (between frames, or while back-pressure holds the client).
   */
  private watchStall(): void {
    const isWaitingForFrame =
      this.state === "open" &&
      !this.isInputClosed &&
      (!this.request.isPaused() || this.decoder.isWaitingForRoom) &&
      this.decoder.hasPartialFrame;
    if (!isWaitingForFrame) this.stopStallTimer();
    else this.stallTimer ??= setTimeout(() => this.onStalled(), this.deps.s2sFrameStallTimeoutMs);
  }

  private stopStallTimer(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  /**
   * The rest of a frame did not come, or no room for it in the server's frame budget: the session
   * fails after the acks before it.
   */
  private onStalled(): void {
    this.stallTimer = undefined;
    if (this.state !== "open" || this.isInputClosed) return;
    const timeoutMs = this.deps.s2sFrameStallTimeoutMs;
    this.closeInput(
      this.decoder.isWaitingForRoom
        ? new S2Error("rate_limited", `s2s frame buffer full. wait_ms=\`${timeoutMs}\``)
        : new S2Error("request_timeout", `s2s frame incomplete. stall_timeout_ms=\`${timeoutMs}\``),
    );
    void this.submitFrames();
  }

  /**
   * Writes the pipeline's acks in input order, each once the response has taken the one before
   * (so a client that does not read its acks holds them in the pipeline's bound); ends the
   * response when the pipeline ends, with a terminal frame if it failed.
   */
  private async writeAcks(): Promise<void> {
    let failure: unknown;
    try {
      for await (const ack of this.pipeline.replies()) {
        if (this.state !== "open") return;
        const message = encodeAppendAckProto(ack);
        assert(message.length < s2sCompressionBytesMin, "acks are never compressed");
        if (!writeS2sFrame(this.response, encodeS2sFrame(message))) await this.drained();
        if (this.state !== "open") return;
      }
    } catch (error) {
      failure = error;
    }
    if (this.state === "open") this.end(failure);
  }

  private drained(): Promise<void> {
    if (this.state === "closed") return Promise.resolve();
    return new Promise((resolve) => this.waitingForDrain.push(resolve));
  }

  /** Ends the response, with a terminal frame when `error` is defined. */
  private end(error: unknown): void {
    assert(this.state === "open", "an append session ends once");
    const terminal = error === undefined ? undefined : encodeS2sTerminalFrame(error);
    this.state = "ending";
    this.stopStallTimer();
    this.frames.length = 0;
    if (!this.isRequestEnded) this.drainRequest();
    const { response } = this;
    // Once the response is complete, ask a client that is still sending to stop, without error
    // (RFC 9113 §8.1), so that the stream closes instead of lingering half-open. The HTTP/2
    // compatibility response emits `finish` only when the stream has closed: watch the stream.
    // HTTP/1.1 has no such signal: the drain ends when the client ends its body or disconnects.
    const stream = http2StreamOf(response);
    stream?.once("finish", () => {
      if (!this.isRequestEnded && !stream.closed) stream.close(http2Constants.NGHTTP2_NO_ERROR);
    });
    if (terminal === undefined) response.end();
    else response.end(terminal);
  }

  /**
   * Reads and discards the rest of the request (`onData` ignores it, so none of it is applied),
   * for at most `s2sAppendDrainBytesMax` bytes or `s2sAppendDrainTimeoutMs`, then resets the
   * exchange. Leaving it paused instead pins everything: Node destroys an HTTP/2 stream that was
   * closed without error only once its buffered input is consumed, so the response never closes,
   * and a paused HTTP/1.1 request stops reading the socket, so the client's FIN goes unseen.
   */
  private drainRequest(): void {
    const { request } = this;
    let drainedBytes = 0;
    const stop = (): void => {
      clearTimeout(timer);
      request.off("data", onData);
      request.off("end", stop);
      request.off("close", stop);
    };
    const reset = (): void => {
      stop();
      this.reset();
    };
    const onData = (chunk: Buffer): void => {
      drainedBytes += chunk.length;
      if (drainedBytes > s2sAppendDrainBytesMax) reset();
    };
    const timer = setTimeout(reset, s2sAppendDrainTimeoutMs);
    request.on("data", onData);
    request.once("end", stop);
    request.once("close", stop);
    request.resume();
  }

  /** Refuses the rest of the request: the client kept sending past the drain's bounds. */
  private reset(): void {
    resetExchange(this.request);
  }
}

/** The HTTP/2 stream of a compatibility response; undefined over HTTP/1.1. */
function http2StreamOf(response: ApiResponse): Http2ServerResponse["stream"] | undefined {
  return (response as Partial<Pick<Http2ServerResponse, "stream">>).stream;
}
