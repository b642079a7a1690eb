// Goal: RPC append sessions hold messages still arriving under the server's frame budget, as S2S
// sessions do (issue 14: before, each gRPC or Connect call could buffer a partial message of up to
// 2 MiB, bounded only by the number of calls): a partial message holds its declared length in the
// budget (the `tributary_frame_buffer_bytes` gauge), a message that does not fit waits without
// being read until another call lets go, a call that waits too long fails with 429 `rate_limited`
// (gRPC RESOURCE_EXHAUSTED), and a message that stops arriving half-way fails its call with 408
// `request_timeout` (gRPC DEADLINE_EXCEEDED); nothing partial is applied and everything is
// released, the stream of a call that is over included (reset after the drain's timeout, once
// the answer had time to reach the client). Method: the API server in-process on memory
// stores with a 4 MiB budget (two maximal messages) and a short stall timeout; raw gRPC calls
// over `node:http2`, one connection each.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { AppendSessionRequestSchema } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import type { ApiServer } from "../../src/api/server.js";
import {
  requestBodyBytesMax,
  s2sAppendDrainTimeoutMs,
  s2sFrameBytesMax,
} from "../../src/core/limits.js";
import type { Service } from "../../src/service/service.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import {
  ensureTestBasin,
  openTestService,
  startLoopbackApi,
  testBasin,
} from "../support/engine.js";
import { waitTimeoutMsDefault, within } from "../support/wait.js";

const stallTimeoutMs = 2_000;
/** Two maximal RPC messages. */
const frameBufferBytes = 2 * s2sFrameBytesMax;
const appendSessionPath = "/tributary.v1.StreamService/AppendSession";
/** gRPC status codes (grpc/doc/statuscodes.md). */
const grpcDeadlineExceeded = 4;
const grpcResourceExhausted = 8;
const grpcFailedPrecondition = 9;
const unaryAppendPath = "/tributary.v1.StreamService/Append";
/** Well within the stall timeout: a trickling call is never stalled. */
const trickleIntervalMs = 200;

let service: Service;
let api: ApiServer;
let endpoint: string;

before(async () => {
  service = await openTestService({ store: createMemoryObjectStore() });
  await ensureTestBasin(service);
  api = await startLoopbackApi(service, {
    s2sFrameStallTimeoutMs: stallTimeoutMs,
    s2sFrameBufferBytesMax: frameBufferBytes,
  });
  endpoint = `http://127.0.0.1:${api.port}`;
});

after(async () => {
  await api?.close();
  await service?.close();
});

/** A gRPC envelope (flags 0) around `message`. */
function envelope(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** An envelope header declaring `length` bytes, and the first `sent` bytes of its payload. */
function partialEnvelope(length: number, sent: number): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(length, 1);
  return Buffer.concat([header, Buffer.alloc(sent, 7)]);
}

function appendMessage(stream: string, matchSeqNum?: bigint): Buffer {
  return envelope(
    toBinary(
      AppendSessionRequestSchema,
      create(AppendSessionRequestSchema, {
        basin: testBasin,
        stream,
        input: { records: [{ body: new TextEncoder().encode("hello") }], matchSeqNum },
      }),
    ),
  );
}

interface Call {
  readonly client: http2.ClientHttp2Session;
  /** Keeps a partial message alive: a byte of it every `trickleIntervalMs`. */
  trickle(): void;
  readonly request: http2.ClientHttp2Stream;
  /** Response data bytes received (acks). */
  readonly received: () => number;
  /** The call's grpc-status, from trailers or a trailers-only response. */
  readonly status: Promise<number>;
  /** Resolves with the stream's RST_STREAM code once it is closed (0 for a clean end). */
  readonly closed: Promise<number>;
}

function openCall(path = appendSessionPath): Call {
  const client = http2.connect(endpoint);
  client.on("error", () => {});
  const request = client.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
  });
  request.on("error", () => {});
  let received = 0;
  request.on("data", (chunk: Buffer) => {
    received += chunk.length;
  });
  const status = new Promise<number>((resolve) => {
    const onHeaders = (headers: http2.IncomingHttpHeaders): void => {
      const value = headers["grpc-status"];
      if (value !== undefined) resolve(Number(value));
    };
    request.on("response", onHeaders);
    request.on("trailers", onHeaders);
  });
  const closed = new Promise<number>((resolve) => {
    request.on("close", () => resolve(request.rstCode ?? 0));
  });
  let trickling: NodeJS.Timeout | undefined;
  client.on("close", () => clearInterval(trickling));
  return {
    client,
    request,
    received: () => received,
    status,
    closed,
    trickle: () => {
      trickling ??= setInterval(() => request.write(Buffer.alloc(1, 7)), trickleIntervalMs);
    },
  };
}

async function gauges(): Promise<{ bytes: number; waiting: number; sessions: number }> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const read = (pattern: RegExp): number => {
    const match = pattern.exec(text);
    assert.ok(match !== null, `${pattern} in /metrics`);
    return Number(match[1]);
  };
  return {
    bytes: read(/^tributary_frame_buffer_bytes (\d+)$/m),
    waiting: read(/^tributary_frame_buffer_waiting (\d+)$/m),
    sessions: read(/^tributary_sessions\{kind="rpc_append"\} (\d+)$/m),
  };
}

/** Polls the gauges until `check` holds; fails with the last reading. */
async function untilGauges(
  what: string,
  check: (g: { bytes: number; waiting: number; sessions: number }) => boolean,
): Promise<void> {
  const deadline = performance.now() + waitTimeoutMsDefault;
  let last = await gauges();
  while (!check(last)) {
    if (performance.now() > deadline) assert.fail(`${what}: ${JSON.stringify(last)}`);
    await sleep(20);
    last = await gauges();
  }
}

async function tailOf(stream: string): Promise<number> {
  return (await service.records.checkTail(testBasin, stream)).seqNum;
}

describe("RPC append session messages under the frame budget", () => {
  it("a message that stops arriving holds its length, then fails its call with DEADLINE_EXCEEDED", async () => {
    const stream = "rpc-stalled";
    const call = openCall();
    try {
      call.request.write(appendMessage(stream));
      await untilGauges("the first message's ack", () => call.received() > 0);
      const declared = 1 << 20;
      call.request.write(partialEnvelope(declared, 64 << 10));
      await untilGauges("the partial message reserved", (g) => g.bytes === declared);
      const stalledAtMs = performance.now();
      const status = await within(call.status, "the call's status", stallTimeoutMs + 5_000);
      const afterMs = performance.now() - stalledAtMs;
      assert.equal(status, grpcDeadlineExceeded);
      assert.ok(afterMs >= stallTimeoutMs * 0.8, `not before the timeout. after_ms=${afterMs}`);
      // The client stays connected and silent: its stream does not stay open half-read.
      const rstCode = await within(
        call.closed,
        "the stream reset",
        s2sAppendDrainTimeoutMs + 5_000,
      );
      assert.equal(rstCode, http2.constants.NGHTTP2_CANCEL);
      await untilGauges("the reservation and the session released", (g) => g.bytes === 0);
      assert.equal(await tailOf(stream), 1, "only the whole message was applied");
    } finally {
      call.client.destroy();
    }
    await untilGauges("no RPC session left", (g) => g.sessions === 0 && g.bytes === 0);
  });

  it("a message that does not fit waits unread until another call lets go, or fails with RESOURCE_EXHAUSTED", async () => {
    assert.ok(
      requestBodyBytesMax <= s2sFrameBytesMax,
      "a maximal message fits a connection's share",
    );
    // Two calls each hold a maximal message's worth: the budget is full.
    const holders = [openCall(), openCall()];
    const waiting: Call[] = [];
    try {
      for (const holder of holders) {
        holder.request.write(partialEnvelope(requestBodyBytesMax, 1024));
        holder.trickle();
      }
      await untilGauges("the budget full", (g) => g.bytes === frameBufferBytes);
      // A small, complete message now waits: it is not read, so not answered.
      const first = openCall();
      waiting.push(first);
      first.request.write(appendMessage("rpc-waits"));
      await untilGauges("the third call waiting", (g) => g.waiting === 1);
      await sleep(200);
      assert.equal(first.received(), 0, "a waiting message is not read, so not acknowledged");
      // One holder goes away: its room lets the waiting message in, and it is acknowledged.
      holders[0]!.client.destroy();
      await untilGauges("the waiting message acknowledged", (g) => g.waiting === 0);
      await within(
        (async () => {
          while (first.received() === 0) await sleep(20);
        })(),
        "the waiting message's ack",
      );
      assert.equal(await tailOf("rpc-waits"), 1);
      // A maximal message cannot fit beside the remaining holder and the first call's session
      // (which holds nothing now): fill the room again, then one more waits past the timeout.
      const filler = openCall();
      waiting.push(filler);
      filler.request.write(partialEnvelope(requestBodyBytesMax, 1024));
      filler.trickle();
      await untilGauges("the budget full again", (g) => g.bytes === frameBufferBytes);
      const starved = openCall();
      waiting.push(starved);
      starved.request.write(appendMessage("rpc-starved"));
      const status = await within(
        starved.status,
        "the starved call's status",
        stallTimeoutMs + 5_000,
      );
      assert.equal(status, grpcResourceExhausted);
      assert.equal(starved.received(), 0);
    } finally {
      for (const call of [...holders, ...waiting]) call.client.destroy();
    }
    await untilGauges(
      "everything released",
      (g) => g.bytes === 0 && g.waiting === 0 && g.sessions === 0,
    );
    await assert.rejects(tailOf("rpc-starved"), "the starved call never created its stream");
  });

  it("a session that fails while its client keeps pipelining lets go of the messages it never took", async () => {
    // The SDK pipelines: a batch that fails its match_seq_num ends the session, and the batches
    // sent behind it arrive to a call that will never take them. Their room must come back.
    const stream = "rpc-pipelined";
    const call = openCall();
    try {
      call.request.write(appendMessage(stream, 99n));
      assert.equal(await within(call.status, "the failed call's status"), grpcFailedPrecondition);
      call.request.write(appendMessage(stream));
      call.request.write(appendMessage(stream));
      await sleep(300);
      await untilGauges("nothing held after the call ended", (g) => g.bytes === 0);
      // What it sent after the answer is left unread, and the stream is reset after the drain.
      const rstCode = await within(
        call.closed,
        "the stream reset",
        s2sAppendDrainTimeoutMs + 5_000,
      );
      assert.equal(rstCode, http2.constants.NGHTTP2_CANCEL);
    } finally {
      call.client.destroy();
    }
    await untilGauges("no RPC session left", (g) => g.sessions === 0 && g.bytes === 0);
  });

  it("a unary gRPC append whose message stops arriving fails with DEADLINE_EXCEEDED, not INTERNAL", async () => {
    // A unary call's body is read outside connect's interceptors: the gate's error must leave
    // already rendered.
    const call = openCall(unaryAppendPath);
    try {
      call.request.write(partialEnvelope(1 << 20, 1024));
      await untilGauges("the partial message reserved", (g) => g.bytes === 1 << 20);
      const status = await within(call.status, "the call's status", stallTimeoutMs + 5_000);
      assert.equal(status, grpcDeadlineExceeded);
      await untilGauges("the reservation released", (g) => g.bytes === 0);
    } finally {
      call.client.destroy();
    }
  });
});
