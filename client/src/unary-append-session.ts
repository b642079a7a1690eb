/**
 * Append sessions without a bidirectional stream, for browsers: `fetch` cannot stream a request
 * body, so connect-web has no client or bidi streaming. The adapter answers `appendSession` with
 * one unary `Append` per session input, sent one after the other so that acks stay in submit
 * order, and lets `AppendSession` keep its batching, back-pressure, ordered acks and `flush()`.
 * What is lost is pipelining: one batch is in flight at a time, so throughput is bounded by one
 * round trip per batch (a longer `lingerMs` makes batches bigger).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions, Client } from "@connectrpc/connect";
import {
  type AppendSessionRequestSchema,
  type AppendSessionResponse,
  AppendSessionResponseSchema,
  type ProducerSchema,
  type StreamService,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";

/** `streams` with `appendSession` served by sequential unary appends. */
export function withUnaryAppendSessions(
  streams: Client<typeof StreamService>,
): Client<typeof StreamService> {
  return {
    ...streams,
    appendSession: (requests, options) => appendEach(streams, requests, options),
  };
}

/**
 * Sends each session input as one `Append` once the previous one was acknowledged, and yields
 * its ack. The first failure ends the iteration, like the first failure of a bidi session; each
 * unary append is retried only as `retry.ts` allows.
 */
async function* appendEach(
  streams: Client<typeof StreamService>,
  requests: AsyncIterable<MessageInitShape<typeof AppendSessionRequestSchema>>,
  options: CallOptions | undefined,
): AsyncGenerator<AppendSessionResponse, void, undefined> {
  // Like the bidi session, only the first input names the stream and carries the key and the
  // producer; each input is one append, whose producer seq is the first's plus its index, so a
  // retry of an append that failed ambiguously (`retry.ts`) cannot write it twice.
  let target: { basin: string; stream: string; encryptionKey: Uint8Array } | undefined;
  let producer: MessageInitShape<typeof ProducerSchema> | undefined;
  let index = 0n;
  for await (const request of requests) {
    if (target === undefined) {
      target = {
        basin: request.basin ?? "",
        stream: request.stream ?? "",
        encryptionKey: request.encryptionKey ?? new Uint8Array(0),
      };
      producer = request.producer;
    }
    const { ack } = await streams.append(
      {
        ...target,
        ...(request.input !== undefined && { input: request.input }),
        ...(producer !== undefined && {
          producer: { ...producer, seq: (producer.seq ?? 0n) + index },
        }),
      },
      options,
    );
    index += 1n;
    yield create(AppendSessionResponseSchema, ack === undefined ? {} : { ack });
  }
}
