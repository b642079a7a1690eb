// Goal: S2S append sessions and the RPC append session behave as one pipeline: the same scenarios
// (ordered acks, a 412 in the middle, the in-flight bound, producer seqs and resends) give the same
// acks and errors. Method: the shared suite of ./append-session.ts against the API server in-process,
// driven by raw S2S frames over node:http2 and by connect-node's gRPC and Connect transports.
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { fromBinary } from "@bufbuild/protobuf";
import {
  AppendAckSchema,
  type AppendInput,
  AppendInputSchema,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import {
  type AppendSessionRequest,
  AppendSessionRequestSchema,
  StreamService,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { connectErrorMetadata } from "../../src/api/render-error.js";
import {
  encodeS2sFrame,
  parseS2sTerminalPayload,
  S2sFrameDecoder,
} from "../../src/api/s2s/frame.js";
import { testBasin } from "../support/engine.js";
import {
  type AckSeen,
  type InputInit,
  runAppendSessionSuite,
  type SessionError,
  type SessionUnderTest,
} from "./append-session.js";

const encoder = new TextEncoder();

function inputToProto(input: InputInit): AppendInput {
  return create(AppendInputSchema, {
    records: input.records.map((record) => ({
      headers: (record.headers ?? []).map(([name, value]) => ({
        name: encoder.encode(name),
        value: encoder.encode(value),
      })),
      body: encoder.encode(record.body),
    })),
    ...(input.matchSeqNum !== undefined && { matchSeqNum: BigInt(input.matchSeqNum) }),
  });
}

/** The error of a JSON error body (or a 412 body), as the suite compares it. */
function errorOfBody(body: string): SessionError {
  const parsed = JSON.parse(body) as { code?: string; seq_num_mismatch?: number };
  if (parsed.seq_num_mismatch !== undefined) {
    return { code: "seq_num_mismatch", nextSeqNum: parsed.seq_num_mismatch };
  }
  return { code: String(parsed.code) };
}

runAppendSessionSuite({
  name: "S2S (raw frames over HTTP/2)",
  open(endpoint, stream, { producer, token }) {
    const client = http2.connect(endpoint);
    client.on("error", () => {});
    const request = client.request({
      ":method": "POST",
      ":path": `/v1/streams/${stream}/records`,
      "content-type": "s2s/proto",
      "s2-basin": testBasin,
      authorization: `Bearer ${token}`,
      ...(producer !== undefined && {
        "tributary-producer-id": producer.id,
        "tributary-producer-epoch": String(producer.epoch),
        "tributary-producer-seq": String(producer.seq),
      }),
    });
    request.on("error", () => {});
    const decoder = new S2sFrameDecoder();
    const acks: AckSeen[] = [];
    let error: SessionError | undefined;
    let status = 0;
    let body = "";
    request.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    request.on("data", (chunk: Buffer) => {
      if (status !== 200) {
        body += chunk.toString();
        return;
      }
      for (const frame of decoder.push(chunk).frames) {
        if (frame.isTerminal) {
          error = errorOfBody(parseS2sTerminalPayload(frame.payload).body);
        } else {
          const ack = fromBinary(AppendAckSchema, frame.payload);
          acks.push({ start: Number(ack.start?.seqNum), end: Number(ack.end?.seqNum) });
        }
      }
    });
    const ended = new Promise<{ acks: AckSeen[]; error: SessionError | undefined }>((resolve) => {
      request.once("close", () => {
        client.close();
        if (status === 0) error = { code: `reset:${request.rstCode}` };
        else if (status !== 200) error = errorOfBody(body);
        resolve({ acks, error });
      });
    });
    return {
      send: (input) =>
        request.write(encodeS2sFrame(toBinary(AppendInputSchema, inputToProto(input)))),
      end: () => request.end(),
      ended,
      cancel: () => client.destroy(),
    } satisfies SessionUnderTest;
  },
});

/** An RPC front end: `AppendSession` over a connect-node transport of HTTP/2. */
function rpcDriver(
  name: string,
  transportOf: (baseUrl: string) => ReturnType<typeof createGrpcTransport>,
) {
  runAppendSessionSuite({
    name,
    open(endpoint, stream, { producer, token }) {
      const client = createClient(StreamService, transportOf(endpoint));
      const abort = new AbortController();
      const queue: AppendSessionRequest[] = [];
      let isEnded = false;
      let wake: (() => void) | undefined;
      async function* requests(): AsyncGenerator<AppendSessionRequest> {
        for (;;) {
          const next = queue.shift();
          if (next !== undefined) {
            yield next;
            continue;
          }
          if (isEnded) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      }
      const push = (message: AppendSessionRequest): void => {
        queue.push(message);
        wake?.();
      };
      let isFirst = true;
      const ended = (async () => {
        const acks: AckSeen[] = [];
        try {
          for await (const response of client.appendSession(requests(), {
            signal: abort.signal,
            headers: { authorization: `Bearer ${token}` },
          })) {
            acks.push({
              start: Number(response.ack?.start?.seqNum),
              end: Number(response.ack?.end?.seqNum),
            });
          }
          return { acks, error: undefined };
        } catch (thrown) {
          const error = ConnectError.from(thrown);
          const nextSeqNum = error.metadata.get(connectErrorMetadata.seqNumMismatch);
          if (nextSeqNum !== null) {
            return { acks, error: { code: "seq_num_mismatch", nextSeqNum: Number(nextSeqNum) } };
          }
          const code = error.metadata.get(connectErrorMetadata.code);
          return { acks, error: { code: code ?? `connect:${Code[error.code]}` } };
        }
      })();
      return {
        send(input) {
          push(
            create(AppendSessionRequestSchema, {
              ...(isFirst && {
                basin: testBasin,
                stream,
                ...(producer !== undefined && {
                  producer: { id: producer.id, epoch: producer.epoch, seq: BigInt(producer.seq) },
                }),
              }),
              input: inputToProto(input),
            }),
          );
          isFirst = false;
        },
        end() {
          isEnded = true;
          wake?.();
        },
        ended,
        cancel: () => abort.abort(),
      } satisfies SessionUnderTest;
    },
  });
}

rpcDriver("RPC AppendSession over gRPC", (baseUrl) => createGrpcTransport({ baseUrl }));
rpcDriver("RPC AppendSession over Connect (HTTP/2)", (baseUrl) =>
  createConnectTransport({ baseUrl, httpVersion: "2" }),
);
