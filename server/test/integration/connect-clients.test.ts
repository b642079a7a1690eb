// Goal: every RPC transport Tributary serves (Connect JSON over HTTP/1.1, Connect binary over
// HTTP/2, gRPC, gRPC-web over HTTP/1.1 and HTTP/2) runs the same scenario with the same records
// and positions as REST, and bad input gets a clear error while the server stays up. Method: the
// real server process in memory mode, clients from @connectrpc/connect-node over our generated
// code, REST reads with fetch, and raw HTTP/1.1 and HTTP/2 requests for malformed input.
import assert from "node:assert/strict";
import { connect as connectHttp2, constants as http2Constants } from "node:http2";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  type AppendInput,
  AppendInputSchema,
  type ReadBatch,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { ProvisionResult } from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import {
  AppendSessionRequestSchema,
  ReadSessionRequestSchema,
  StreamService,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A record as compared across transports: position, headers and body as text. */
interface SeenRecord {
  seqNum: number;
  timestamp: number;
  headers: [string, string][];
  body: string;
}

interface ScenarioResult {
  /** Records read back (unary read, then the read session), timestamps included. */
  records: SeenRecord[];
  /** [start, end) of every ack, in order. */
  ackRanges: [number, number][];
  tailSeqNum: number;
}

function seenRecords(batch: ReadBatch | undefined): SeenRecord[] {
  return (batch?.records ?? []).map((record) => ({
    seqNum: Number(record.seqNum),
    timestamp: Number(record.timestamp),
    headers: record.headers.map((header): [string, string] => [
      decoder.decode(header.name),
      decoder.decode(header.value),
    ]),
    body: decoder.decode(record.body),
  }));
}

function input(bodies: string[], options: { matchSeqNum?: bigint } = {}): AppendInput {
  return create(AppendInputSchema, {
    records: bodies.map((body, i) => ({
      headers: i === 0 ? [{ name: encoder.encode("k"), value: encoder.encode(body) }] : [],
      body: encoder.encode(body),
    })),
    ...(options.matchSeqNum !== undefined && { matchSeqNum: options.matchSeqNum }),
  });
}

async function expectConnectError(
  promise: Promise<unknown>,
  code: Code,
  metadata: Record<string, string>,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, code, error.message);
    for (const [key, value] of Object.entries(metadata)) {
      assert.equal(error.metadata.get(key), value, key);
    }
    return true;
  });
}

/**
 * Creates a basin and a stream, appends (unary and in a session), hits a 412, reads (unary, a
 * bounded session, a following session that sees a live append), checks the tail and a 416.
 */
async function runScenario(
  transport: Transport,
  basin: string,
  options: { isHttp1: boolean },
): Promise<ScenarioResult> {
  const account = createClient(AccountService, transport);
  const basins = createClient(BasinService, transport);
  const streams: Client<typeof StreamService> = createClient(StreamService, transport);
  const stream = "orders";

  const created = await account.createBasin({ basin, requestToken: "token-1" });
  assert.equal(created.result, ProvisionResult.CREATED);
  const retried = await account.createBasin({ basin, requestToken: "token-1" });
  assert.equal(retried.result, ProvisionResult.NOOP);
  await expectConnectError(account.createBasin({ basin }), Code.AlreadyExists, {
    "s2-error-code": "resource_already_exists",
  });
  await basins.createStream({ basin, stream });

  const ackRanges: [number, number][] = [];
  const first = await streams.append({
    basin,
    stream,
    input: input(["r0", "r1"], { matchSeqNum: 0n }),
  });
  ackRanges.push([Number(first.ack?.start?.seqNum), Number(first.ack?.end?.seqNum)]);
  await expectConnectError(
    streams.append({ basin, stream, input: input(["late"], { matchSeqNum: 0n }) }),
    Code.FailedPrecondition,
    { "s2-error-code": "invalid", "s2-seq-num-mismatch": "2" },
  );

  // Fencing, on a stream of its own so that positions stay comparable: a fence command record
  // sets the token; a mismatching token is 412 (FailedPrecondition), the matching one appends.
  await basins.createStream({ basin, stream: "fenced" });
  await streams.append({
    basin,
    stream: "fenced",
    input: create(AppendInputSchema, {
      records: [
        {
          headers: [{ name: new Uint8Array(0), value: encoder.encode("fence") }],
          body: encoder.encode("writer-1"),
        },
      ],
    }),
  });
  await expectConnectError(
    streams.append({
      basin,
      stream: "fenced",
      input: create(AppendInputSchema, {
        records: [{ body: encoder.encode("x") }],
        fencingToken: "writer-2",
      }),
    }),
    Code.FailedPrecondition,
    { "s2-error-code": "invalid" },
  );
  const fencedAck = await streams.append({
    basin,
    stream: "fenced",
    input: create(AppendInputSchema, {
      records: [{ body: encoder.encode("y") }],
      fencingToken: "writer-1",
    }),
  });
  assert.equal(fencedAck.ack?.start?.seqNum, 1n);

  async function* sessionInputs() {
    yield create(AppendSessionRequestSchema, { basin, stream, input: input(["s0"]) });
    yield create(AppendSessionRequestSchema, { input: input(["s1", "s2"]) });
  }
  if (options.isHttp1) {
    // Bidirectional streaming needs HTTP/2 (connect-node answers 505 over HTTP/1.1): the same
    // batches go as unary appends, so that positions match the other transports.
    await assert.rejects(async () => {
      for await (const _ of streams.appendSession(sessionInputs())) assert.fail("no ack over h1");
    }, ConnectError);
    for (const bodies of [["s0"], ["s1", "s2"]]) {
      const { ack } = await streams.append({ basin, stream, input: input(bodies) });
      ackRanges.push([Number(ack?.start?.seqNum), Number(ack?.end?.seqNum)]);
    }
  } else {
    for await (const response of streams.appendSession(sessionInputs())) {
      ackRanges.push([Number(response.ack?.start?.seqNum), Number(response.ack?.end?.seqNum)]);
    }
  }

  const unary = await streams.read({ basin, stream, start: { case: "seqNum", value: 0n } });
  const records = seenRecords(unary.batch);
  const bounded: SeenRecord[] = [];
  for await (const response of streams.readSession({
    basin,
    stream,
    start: { case: "seqNum", value: 3n },
    count: 2n,
  })) {
    bounded.push(...seenRecords(response.batch));
  }
  assert.deepEqual(bounded, records.slice(3, 5));

  // Follow the tail: a heartbeat first, then the record appended meanwhile, live.
  const abort = new AbortController();
  const following = streams.readSession(
    { basin, stream, start: { case: "tailOffset", value: 0n } },
    { signal: abort.signal },
  );
  const live: SeenRecord[] = [];
  let heartbeats = 0;
  try {
    for await (const response of following) {
      const batch = seenRecords(response.batch);
      if (batch.length === 0) {
        assert.equal(response.batch?.tail?.seqNum, 5n);
        heartbeats += 1;
        if (heartbeats === 1) await streams.append({ basin, stream, input: input(["live"]) });
        continue;
      }
      assert.ok(response.batch?.tail !== undefined, "a live batch carries the tail");
      live.push(...batch);
      abort.abort();
    }
  } catch (error) {
    if (!(error instanceof ConnectError && error.code === Code.Canceled)) throw error;
  }
  assert.equal(heartbeats, 1);
  assert.deepEqual(
    live.map((record) => [record.seqNum, record.body]),
    [[5, "live"]],
  );

  const { tail } = await streams.checkTail({ basin, stream });
  await expectConnectError(
    streams.read({ basin, stream, start: { case: "seqNum", value: 99n } }),
    Code.OutOfRange,
    { "s2-tail-seq-num": "6" },
  );
  return { records: [...records, ...live], ackRanges, tailSeqNum: Number(tail?.seqNum) };
}

describe("Connect, gRPC and gRPC-web clients", () => {
  let server: ServerProcess;
  const results = new Map<string, ScenarioResult>();

  before(async () => {
    server = await startServer({ mode: "memory" });
  });

  after(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  const transports: [string, () => Transport, { isHttp1: boolean }][] = [
    [
      "connect-json-http1",
      () => createConnectTransport({ baseUrl: server.endpoint, httpVersion: "1.1" }),
      { isHttp1: true },
    ],
    [
      "connect-binary-http2",
      () =>
        createConnectTransport({
          baseUrl: server.endpoint,
          httpVersion: "2",
          useBinaryFormat: true,
        }),
      { isHttp1: false },
    ],
    ["grpc", () => createGrpcTransport({ baseUrl: server.endpoint }), { isHttp1: false }],
    [
      "grpc-web-http1",
      () => createGrpcWebTransport({ baseUrl: server.endpoint, httpVersion: "1.1" }),
      { isHttp1: true },
    ],
    [
      "grpc-web-http2",
      () => createGrpcWebTransport({ baseUrl: server.endpoint, httpVersion: "2" }),
      { isHttp1: false },
    ],
  ];

  transports.forEach(([name, transport, options], i) => {
    it(`runs the scenario over ${name}`, async () => {
      const basin = `rpc-transport-${i}`;
      const result = await runScenario(transport(), basin, options);
      assert.deepEqual(result.ackRanges, [
        [0, 2],
        [2, 3],
        [3, 5],
      ]);
      assert.equal(result.tailSeqNum, 6);
      // REST reads the same stream and sees the same records, timestamps included.
      const response = await fetch(`${server.endpoint}/v1/streams/orders/records?seq_num=0`, {
        headers: { "s2-basin": basin },
      });
      assert.equal(response.status, 200);
      const json = (await response.json()) as {
        records: {
          seq_num: number;
          timestamp: number;
          headers?: [string, string][];
          body: string;
        }[];
      };
      assert.deepEqual(
        json.records.map((record) => ({
          seqNum: record.seq_num,
          timestamp: record.timestamp,
          headers: record.headers ?? [],
          body: record.body,
        })),
        result.records,
      );
      results.set(name, result);
    });
  });

  it("every transport saw the same records and positions", () => {
    assert.equal(results.size, transports.length);
    const withoutTimestamps = (result: ScenarioResult) => ({
      ...result,
      records: result.records.map(({ timestamp: _, ...rest }) => rest),
    });
    const [reference, ...others] = [...results.values()].map(withoutTimestamps);
    for (const other of others) assert.deepEqual(other, reference);
  });
});

describe("bad RPC input", () => {
  let server: ServerProcess;
  const basin = "rpc-bad-input";
  const stream = "s";

  async function expectHealthy(): Promise<void> {
    const response = await fetch(`${server.endpoint}/health`);
    assert.equal(response.status, 200);
  }

  before(async () => {
    server = await startServer({ mode: "memory" });
    const transport = createConnectTransport({ baseUrl: server.endpoint, httpVersion: "1.1" });
    await createClient(AccountService, transport).createBasin({ basin });
    await createClient(BasinService, transport).createStream({ basin, stream });
  });

  after(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it("a malformed protobuf body is a clear error", async () => {
    const response = await fetch(`${server.endpoint}/tributary.v1.StreamService/Append`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      // Field 1 (basin) claims 100 bytes and has 1.
      body: new Uint8Array([0x0a, 100, 0x41]),
    });
    // connect-es decodes unary bodies before any handler or interceptor runs, and reports a
    // binary decoding failure as `internal` (protocol/serialization.ts); JSON ones are
    // invalid_argument. The message says what went wrong.
    assert.equal(response.status, 500);
    const body = (await response.json()) as { code: string; message: string };
    assert.equal(body.code, "internal");
    assert.match(body.message, /^parse binary: premature EOF/);
    await expectHealthy();
  });

  it("an unknown JSON field is invalid_argument", async () => {
    const response = await fetch(`${server.endpoint}/tributary.v1.StreamService/CheckTail`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ basin, stream, bogus: 1 }),
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { code: string; message: string };
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, /bogus/);
    await expectHealthy();
  });

  it("a wrong content type is 415", async () => {
    const response = await fetch(`${server.endpoint}/tributary.v1.StreamService/CheckTail`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    assert.equal(response.status, 415);
    await response.arrayBuffer();
    await expectHealthy();
  });

  it("an unknown procedure is an empty 404", async () => {
    const response = await fetch(`${server.endpoint}/tributary.v1.StreamService/Nope`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(response.status, 404);
    assert.equal(await response.text(), "");
    await expectHealthy();
  });

  /** A gRPC length-prefixed message. */
  function envelope(bytes: Uint8Array): Buffer {
    const frame = Buffer.alloc(5 + bytes.length);
    frame.writeUInt32BE(bytes.length, 1);
    frame.set(bytes, 5);
    return frame;
  }

  /** A raw gRPC call over HTTP/2: the response's messages and its grpc-status. */
  function rawGrpcCall(path: string) {
    const session = connectHttp2(server.endpoint);
    session.on("error", () => {});
    const request = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    request.on("error", () => {});
    let received = Buffer.alloc(0);
    let onMessage: () => void = () => {};
    request.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      onMessage();
    });
    const status = new Promise<{ status: string | undefined; message: string | undefined }>(
      (resolve) => {
        request.on("trailers", (trailers) =>
          resolve({
            status: trailers["grpc-status"] as string | undefined,
            message: trailers["grpc-message"] as string | undefined,
          }),
        );
        request.on("close", () => resolve({ status: undefined, message: undefined }));
      },
    );
    return {
      session,
      request,
      status,
      /** Resolves once at least `count` complete messages arrived. */
      async messages(count: number): Promise<number> {
        const countComplete = (): number => {
          let offset = 0;
          let complete = 0;
          while (offset + 5 <= received.length) {
            const length = received.readUInt32BE(offset + 1);
            if (offset + 5 + length > received.length) break;
            offset += 5 + length;
            complete += 1;
          }
          return complete;
        };
        while (countComplete() < count) {
          await new Promise<void>((resolve) => (onMessage = resolve));
        }
        return countComplete();
      },
    };
  }

  it("garbage mid-session ends the session with invalid_argument after the acks before it", async () => {
    const call = rawGrpcCall("/tributary.v1.StreamService/AppendSession");
    const valid = toBinary(
      AppendSessionRequestSchema,
      create(AppendSessionRequestSchema, { basin, stream, input: input(["ok"]) }),
    );
    call.request.write(envelope(valid));
    assert.equal(await call.messages(1), 1);
    call.request.write(envelope(new Uint8Array([0x1a, 0xff, 0xff, 0xff])));
    const { status, message } = await call.status;
    assert.equal(status, String(Code.InvalidArgument), message);
    call.session.close();
    await expectHealthy();
  });

  async function sessionsOpen(kind: string): Promise<number> {
    const text = await (await fetch(`${server.endpoint}/metrics`)).text();
    const match = new RegExp(`tributary_sessions\\{kind="${kind}"\\} (\\d+)`).exec(text);
    return Number(match?.[1]);
  }

  async function waitForNoSessions(kind: string): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      if ((await sessionsOpen(kind)) === 0) return;
      await sleep(50);
    }
    assert.fail(`${kind} sessions still open`);
  }

  it("a client that disconnects mid-session ends it; the server stays up", async () => {
    const reader = rawGrpcCall("/tributary.v1.StreamService/ReadSession");
    const readRequest = toBinary(
      ReadSessionRequestSchema,
      create(ReadSessionRequestSchema, { basin, stream, start: { case: "seqNum", value: 0n } }),
    );
    reader.request.end(envelope(readRequest));
    // Catch-up records, then the heartbeat of a session that follows the tail.
    await reader.messages(2);
    assert.equal(await sessionsOpen("rpc_read"), 1);

    const appender = rawGrpcCall("/tributary.v1.StreamService/AppendSession");
    const appendRequest = toBinary(
      AppendSessionRequestSchema,
      create(AppendSessionRequestSchema, { basin, stream, input: input(["bye"]) }),
    );
    appender.request.write(envelope(appendRequest));
    await appender.messages(1);
    assert.equal(await sessionsOpen("rpc_append"), 1);

    reader.request.close(http2Constants.NGHTTP2_CANCEL);
    appender.session.destroy();
    reader.session.destroy();
    await waitForNoSessions("rpc_read");
    await waitForNoSessions("rpc_append");
    await expectHealthy();
  });
});
