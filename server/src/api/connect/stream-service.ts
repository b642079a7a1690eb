/**
 * `tributary.v1.StreamService` (proto/tributary/v1/stream.proto): check tail, unary append and
 * read, and the two sessions, over the same `service.records` calls and read algorithm
 * (`service/read-session.ts`) as REST and S2S (S2-API.md §5.3–§5.8). Batches are the `s2.v1`
 * messages. Errors are thrown as `S2Error` and rendered by the router's interceptor
 * (`render-error.ts`).
 *
 * Flow control of a read session: connect-node pulls the next message only once the previous one
 * was written (it awaits `drain`), and only then does the session read the next batch, so a slow
 * reader slows its own session; a lagging follower is cut off by the streamer and catches up from
 * the cache. A client that disconnects ends the session at once (the abort signal).
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import type {
  ReadRequest as ReadRequestMessage,
  ReadSessionRequest,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import type { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { S2Error } from "../../core/errors.js";
import { appendOnce } from "../../service/append-session.js";
import { meteredBytesOfBatch, type StreamPosition } from "../../core/records.js";
import {
  collectUnaryRead,
  type ReadEvent,
  type ReadRequest,
  type ReadStart,
} from "../../service/read-session.js";
import {
  appendAckToProto,
  appendInputFromProto,
  readBatchToProto,
  u64ToNumber,
} from "../convert/records-proto.js";
import { unaryReadRequest } from "../http/read-query.js";
import { authorizeCommands } from "../auth.js";
import { principalKey } from "../auth-routes.js";
import type { ApiDeps } from "../routes.js";
import { metricToProto, streamMetricsQueryFromProto } from "../convert/metrics-proto.js";
import { serveAppendSession } from "./append-session.js";
import { encryptionKeyFieldOf, producerFieldOf } from "./request-fields.js";

/** The implementation of `StreamService` over `deps.service`. */
export function createStreamService(deps: ApiDeps): ServiceImpl<typeof StreamService> {
  const { records } = deps.service;
  return {
    async checkTail(request) {
      const tail = await records.checkTail(request.basin, request.stream);
      return { tail: positionToProto(tail) };
    },
    async append(request, context) {
      const input = appendInputFromProto(request.input ?? create(AppendInputSchema));
      authorizeCommands(context.values.get(principalKey), input);
      const target = {
        basin: request.basin,
        stream: request.stream,
        encryptionKey: encryptionKeyFieldOf(request.encryptionKey, context),
        producer: producerFieldOf(request.producer),
      };
      const ack = await appendOnce(records, target, input, {
        observeAck: (observed) => deps.metrics.observeAppend(observed),
      });
      return { ack: appendAckToProto(ack) };
    },
    async read(request, context) {
      const events = await records.openReadSession(
        request.basin,
        request.stream,
        unaryReadRequest(readRequestFromProto(request)),
        { encryptionKey: encryptionKeyFieldOf(request.encryptionKey, context) },
      );
      const batch = await collectUnaryRead(events, () => nextUnlessAborted(events, context.signal));
      if (batch === undefined) throw new S2Error("client_hangup", "client hung up");
      deps.metrics.observeRead(batch.records.length, meteredBytesOfBatch(batch.records));
      return { batch: readBatchToProto(batch) };
    },
    appendSession(requests, context) {
      return deps.sessionSlots.serveStream(() => serveAppendSession(requests, context, deps));
    },
    readSession(request, context) {
      return deps.sessionSlots.serveStream(() => serveReadSession(request, context, deps));
    },
    async getStreamMetrics(request) {
      const query = streamMetricsQueryFromProto(request);
      const metrics = await deps.service.metrics.stream(request.basin, request.stream, query);
      return { values: metrics.map(metricToProto) };
    },
  };
}

function positionToProto(position: StreamPosition): { seqNum: bigint; timestamp: bigint } {
  return { seqNum: BigInt(position.seqNum), timestamp: BigInt(position.timestamp) };
}

/** The domain read request of `Read` and `ReadSession` (u64 fields range-checked). */
function readRequestFromProto(message: ReadRequestMessage | ReadSessionRequest): ReadRequest {
  let start: ReadStart;
  switch (message.start.case) {
    case undefined:
      start = { kind: "tailOffset", tailOffset: 0 };
      break;
    case "seqNum":
      start = { kind: "seqNum", seqNum: u64ToNumber(message.start.value, "seq_num") };
      break;
    case "timestamp":
      start = { kind: "timestamp", timestamp: u64ToNumber(message.start.value, "timestamp") };
      break;
    case "tailOffset":
      start = { kind: "tailOffset", tailOffset: u64ToNumber(message.start.value, "tail_offset") };
      break;
  }
  const optional = (value: bigint | undefined, field: string): number | undefined =>
    value === undefined ? undefined : u64ToNumber(value, field);
  return {
    start,
    clamp: message.clamp,
    count: optional(message.count, "count"),
    bytes: optional(message.bytes, "bytes"),
    until: optional(message.until, "until"),
    waitSecs: message.waitSecs,
  };
}

/**
 * The next event, or `undefined` once `signal` aborts (the client went away): a session blocked
 * on an idle stream must not outlive its call.
 */
function nextUnlessAborted(
  events: AsyncGenerator<ReadEvent, void, undefined>,
  signal: AbortSignal,
): Promise<IteratorResult<ReadEvent, void> | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    events.next().then(
      (result) => {
        signal.removeEventListener("abort", onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Serves one read session: batches, and heartbeats as batches with no records and a tail. */
async function* serveReadSession(
  request: ReadSessionRequest,
  context: HandlerContext,
  deps: ApiDeps,
): AsyncGenerator<{ batch: ReturnType<typeof readBatchToProto> }, void, undefined> {
  const events = await deps.service.records.openReadSession(
    request.basin,
    request.stream,
    readRequestFromProto(request),
    { encryptionKey: encryptionKeyFieldOf(request.encryptionKey, context) },
  );
  deps.metrics.addSessions("rpc_read", 1);
  // A revoked or expired token ends the session with 401 `authn` (`TokenWatch`).
  const lease = deps.tokenWatch.lease(context.values.get(principalKey));
  const signal = AbortSignal.any([context.signal, lease.signal]);
  try {
    for (;;) {
      const next = await nextUnlessAborted(events, signal);
      if (lease.signal.aborted) throw lease.signal.reason;
      if (next === undefined || next.done === true) return;
      const event = next.value;
      if (event.kind === "batch") {
        deps.metrics.observeRead(event.records.length, meteredBytesOfBatch(event.records));
        yield { batch: readBatchToProto(event) };
      } else {
        yield { batch: readBatchToProto({ records: [], tail: event.tail }) };
      }
    }
  } finally {
    lease.release();
    deps.metrics.addSessions("rpc_read", -1);
    events.return(undefined).catch(() => {});
  }
}
