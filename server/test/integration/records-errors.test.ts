// Goal: every malformed records request gets s2-lite's status and error code (S2-API.md §3, §5.3,
// §5.4, §7), the 412/416 bodies have lite's exact shape, and no bad input disturbs the server.
// Method: raw HTTP/1.1 requests with Node's fetch (and node:http where fetch would normalize the
// path) against the real server process in memory mode; after each test a valid append and read
// must still succeed.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, afterEach, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AppendAckSchema,
  AppendInputSchema,
  ReadBatchSchema,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const basin = "records-errors";
const stream = "events";

describe("records: bad input (raw HTTP)", () => {
  let server: ServerProcess;

  interface Reply {
    readonly status: number;
    readonly contentType: string | null;
    readonly body: unknown;
    readonly raw: Uint8Array;
  }

  async function call(
    method: string,
    path: string,
    options: {
      headers?: Record<string, string>;
      body?: string | Uint8Array;
      basin?: string | null;
    } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    const basinHeader = options.basin === undefined ? basin : options.basin;
    if (basinHeader !== null) headers["s2-basin"] = basinHeader;
    const response = await fetch(`${server.endpoint}${path}`, {
      method,
      headers,
      ...(options.body !== undefined && { body: options.body }),
    });
    const raw = new Uint8Array(await response.arrayBuffer());
    const contentType = response.headers.get("content-type");
    let body: unknown = raw;
    if (contentType === "application/json") body = JSON.parse(new TextDecoder().decode(raw));
    return { status: response.status, contentType, body, raw };
  }

  const append = (body: string | Uint8Array, headers: Record<string, string> = {}) =>
    call("POST", `/v1/streams/${stream}/records`, {
      headers: { "content-type": "application/json", ...headers },
      body,
    });

  function expectError(reply: Reply, status: number, code: string): void {
    assert.equal(reply.status, status, JSON.stringify(reply.body));
    assert.equal(reply.contentType, "application/json");
    const body = reply.body as { code?: unknown; message?: unknown };
    assert.equal(body.code, code, JSON.stringify(reply.body));
    assert.equal(typeof body.message, "string");
  }

  before(async () => {
    server = await startServer({ mode: "memory" });
    const s2 = s2ClientFor(server);
    await s2.basins.create({ basin });
    await s2.basin(basin).streams.create({ stream });
  });

  afterEach(async () => {
    // The server still serves: a valid append and a read of it.
    const reply = await append('{"records":[{"body":"still-ok"}]}');
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const ack = reply.body as { start: { seq_num: number } };
    const read = await call(
      "GET",
      `/v1/streams/${stream}/records?seq_num=${ack.start.seq_num}&count=1`,
    );
    assert.equal(read.status, 200);
    assert.deepEqual(
      (read.body as { records: { body: string }[] }).records.map((r) => r.body),
      ["still-ok"],
    );
  });

  after(async () => {
    await server?.cleanup();
  });

  it("JSON syntax and shape errors are 400 bad_json", async () => {
    expectError(await append('{"records":['), 400, "bad_json");
    expectError(await append(""), 400, "bad_json");
    expectError(await append("{}"), 400, "bad_json");
    expectError(await append('{"records":[{"body":5}]}'), 400, "bad_json");
    expectError(await append('{"records":[{"headers":[["only-name"]]}]}'), 400, "bad_json");
    expectError(await append('{"records":[{"timestamp":-3}]}'), 400, "bad_json");
    expectError(await append('{"records":[{"body":"\\ud800"}]}'), 400, "bad_json");
    expectError(
      await append(`{"records":[{"body":"x"}],"fencing_token":"${"t".repeat(37)}"}`),
      400,
      "bad_json",
    );
  });

  it("a missing or non-JSON Content-Type is 400 bad_json", async () => {
    const body = '{"records":[{"body":"x"}]}';
    expectError(await call("POST", `/v1/streams/${stream}/records`, { body }), 400, "bad_json");
    expectError(
      await call("POST", `/v1/streams/${stream}/records`, {
        headers: { "content-type": "text/plain" },
        body,
      }),
      400,
      "bad_json",
    );
    // `application/*+json` is JSON.
    const vendor = await append(body, { "content-type": "application/vnd.s2+json; charset=utf-8" });
    assert.equal(vendor.status, 200);
  });

  it("S2-Format: unknown values are 400 bad_header, bad Base64 is 422 invalid", async () => {
    expectError(
      await append('{"records":[{"body":"x"}]}', { "s2-format": "hex" }),
      400,
      "bad_header",
    );
    // The header is checked before the Content-Type.
    expectError(
      await call("POST", `/v1/streams/${stream}/records`, {
        headers: { "s2-format": "nope" },
        body: "{",
      }),
      400,
      "bad_header",
    );
    const badBase64 = await append('{"records":[{"body":"YQ"}]}', { "s2-format": "base64" });
    expectError(badBase64, 422, "invalid");
    assert.match((badBase64.body as { message: string }).message, /invalid Base64 encoding/);
    expectError(
      await append('{"records":[{"headers":[["a!","b"]]}]}', { "s2-format": "base64" }),
      422,
      "invalid",
    );
    // Aliases, trimmed.
    assert.equal(
      (await append('{"records":[{"body":"eA=="}]}', { "s2-format": " json-binsafe " })).status,
      200,
    );
    assert.equal((await append('{"records":[{"body":"x"}]}', { "s2-format": "json" })).status, 200);
  });

  it("protobuf garbage is 400 bad_proto; protobuf validation is 422", async () => {
    const protobuf = { "content-type": "application/protobuf" };
    expectError(
      await call("POST", `/v1/streams/${stream}/records`, {
        headers: protobuf,
        body: "garbage garbage",
      }),
      400,
      "bad_proto",
    );
    const tooLongToken = toBinary(
      AppendInputSchema,
      create(AppendInputSchema, {
        records: [{ body: new Uint8Array([1]) }],
        fencingToken: "t".repeat(37),
      }),
    );
    expectError(
      await call("POST", `/v1/streams/${stream}/records`, {
        headers: protobuf,
        body: tooLongToken,
      }),
      422,
      "invalid",
    );
    const hugeSeqNum = toBinary(
      AppendInputSchema,
      create(AppendInputSchema, { records: [{}], matchSeqNum: 2n ** 63n }),
    );
    expectError(
      await call("POST", `/v1/streams/${stream}/records`, {
        headers: { "content-type": "application/x-protobuf" },
        body: hugeSeqNum,
      }),
      422,
      "invalid",
    );
  });

  it("batch limits and record rules are 422 invalid", async () => {
    const records = (count: number) =>
      JSON.stringify({ records: Array.from({ length: count }, () => ({ body: "x" })) });
    expectError(await append(records(0)), 422, "invalid");
    expectError(await append(records(1001)), 422, "invalid");
    assert.equal((await append(records(1000))).status, 200);
    // One record of 8 + (1 MiB - 7) metered bytes: over the batch limit by one.
    const oversized = JSON.stringify({ records: [{ body: "x".repeat((1 << 20) - 7) }] });
    expectError(await append(oversized), 422, "invalid");
    const exact = JSON.stringify({ records: [{ body: "x".repeat((1 << 20) - 8) }] });
    assert.equal((await append(exact)).status, 200);
    expectError(await append('{"records":[{"headers":[["","x"],["a","b"]]}]}'), 422, "invalid");
    expectError(await append('{"records":[{"headers":[["","x"]]}]}'), 422, "invalid"); // unknown command
    expectError(
      await append('{"records":[{"headers":[["","fence"]],"body":"' + "t".repeat(37) + '"}]}'),
      422,
      "invalid",
    );
    expectError(
      await append('{"records":[{"headers":[["","trim"]],"body":"short"}]}'),
      422,
      "invalid",
    );
  });

  /**
   * A request on its own connection, with the path sent as is (fetch would normalize `%2E%2E`).
   * Also used for the oversized body: the server answers before reading it all, and a client that
   * reused that connection would see its next request mixed into the unread body.
   */
  function rawRequest(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        { host: "127.0.0.1", port: server.port, method, path, headers, agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () => {
            const raw = new Uint8Array(Buffer.concat(chunks));
            const contentType = response.headers["content-type"] ?? null;
            resolve({
              status: response.statusCode ?? 0,
              contentType,
              body:
                contentType === "application/json" ? JSON.parse(Buffer.from(raw).toString()) : raw,
              raw,
            });
          });
        },
      );
      request.on("error", reject);
      request.end(body);
    });
  }

  it("a body over 2 MiB is 400 bad_json; gzip bodies are decompressed", async () => {
    const oversized = `{"records":[{"body":"${"x".repeat(3 << 20)}"}]}`;
    expectError(
      await rawRequest(
        "POST",
        `/v1/streams/${stream}/records`,
        { "s2-basin": basin, "content-type": "application/json" },
        oversized,
      ),
      400,
      "bad_json",
    );
    const gzipped = await append(gzipSync(Buffer.from('{"records":[{"body":"zipped"}]}')), {
      "content-encoding": "gzip",
    });
    assert.equal(gzipped.status, 200);
  });

  it("S2-Basin is required and must be a basin name; unknown basins and streams are 404", async () => {
    for (const [method, path] of [
      ["POST", `/v1/streams/${stream}/records`],
      ["GET", `/v1/streams/${stream}/records?seq_num=0`],
      ["GET", `/v1/streams/${stream}/records/tail`],
    ] as const) {
      const body = method === "POST" ? '{"records":[{"body":"x"}]}' : undefined;
      const headers = { "content-type": "application/json" };
      expectError(
        await call(method, path, { basin: null, headers, ...(body && { body }) }),
        400,
        "bad_header",
      );
      expectError(
        await call(method, path, { basin: "Not_A_Basin", headers, ...(body && { body }) }),
        400,
        "bad_header",
      );
      expectError(
        await call(method, path, { basin: "no-such-basin", headers, ...(body && { body }) }),
        404,
        "basin_not_found",
      );
      expectError(
        await call(method, path.replace(stream, "no-such-stream"), {
          headers,
          ...(body && { body }),
        }),
        404,
        "stream_not_found",
      );
    }
  });

  it("an invalid stream name in the path is 400 bad_path", async () => {
    for (const name of ["%2E%2E", "%2E"]) {
      expectError(
        await rawRequest("GET", `/v1/streams/${name}/records/tail`, { "s2-basin": basin }),
        400,
        "bad_path",
      );
    }
  });

  it("bad read queries are 400 bad_query; conflicting starts and until are 422", async () => {
    const read = (query: string, headers: Record<string, string> = {}) =>
      call("GET", `/v1/streams/${stream}/records?${query}`, { headers });
    for (const query of [
      "seq_num=abc",
      "seq_num=-1",
      "count=1.5",
      "clamp=yes",
      "wait=-1",
      "wait=4294967296",
      "until=x",
      "seq_num=1&seq_num=2",
    ]) {
      expectError(await read(query), 400, "bad_query");
    }
    expectError(await read("seq_num=0&timestamp=0"), 422, "invalid");
    expectError(await read("tail_offset=0&timestamp=0"), 422, "invalid");
    expectError(await read("timestamp=10&until=10"), 422, "invalid");
    // The query is checked before the headers, the headers before the start.
    expectError(await read("seq_num=x", { "s2-format": "bad" }), 400, "bad_query");
    expectError(await read("seq_num=0&timestamp=0", { "s2-format": "bad" }), 400, "bad_header");
  });

  it("Last-Event-ID garbage on an SSE read is 400 bad_header", async () => {
    for (const id of ["garbage", "1,2", "1,2,3,4", "a,b,c"]) {
      expectError(
        await call("GET", `/v1/streams/${stream}/records?seq_num=0`, {
          headers: { accept: "text/event-stream", "last-event-id": id },
        }),
        400,
        "bad_header",
      );
    }
  });

  it("412 and 416 bodies have lite's shapes", async () => {
    const tail = (await call("GET", `/v1/streams/${stream}/records/tail`)).body as {
      tail: { seq_num: number; timestamp: number };
    };
    const mismatch = await append(
      `{"records":[{"body":"x"}],"match_seq_num":${tail.tail.seq_num + 5}}`,
    );
    assert.equal(mismatch.status, 412);
    assert.deepEqual(mismatch.body, { seq_num_mismatch: tail.tail.seq_num });
    const fenced = await append('{"records":[{"body":"x"}],"fencing_token":"nope"}');
    assert.equal(fenced.status, 412);
    assert.deepEqual(fenced.body, { fencing_token_mismatch: "" });
    const unwritten = await call(
      "GET",
      `/v1/streams/${stream}/records?seq_num=${tail.tail.seq_num + 1}`,
    );
    assert.equal(unwritten.status, 416);
    assert.deepEqual(unwritten.body, tail);
    // Default start (the tail) without wait: 416 as well.
    assert.equal((await call("GET", `/v1/streams/${stream}/records`)).status, 416);
  });

  it("serves protobuf when the first Accept type is protobuf, JSON otherwise", async () => {
    const ackReply = await append('{"records":[{"body":"proto-ack"}]}', {
      accept: "application/protobuf, application/json",
    });
    assert.equal(ackReply.contentType, "application/protobuf");
    const ack = fromBinary(AppendAckSchema, ackReply.raw);
    const seqNum = Number(ack.start?.seqNum);
    assert.equal(Number(ack.end?.seqNum), seqNum + 1);
    const batchReply = await call(
      "GET",
      `/v1/streams/${stream}/records?seq_num=${seqNum}&count=1`,
      {
        headers: { accept: "application/x-protobuf" },
      },
    );
    assert.equal(batchReply.contentType, "application/protobuf");
    const batch = fromBinary(ReadBatchSchema, batchReply.raw);
    assert.equal(new TextDecoder().decode(batch.records[0]?.body), "proto-ack");
    const jsonReply = await call("GET", `/v1/streams/${stream}/records?seq_num=${seqNum}&count=1`, {
      headers: { accept: "application/json, application/protobuf" },
    });
    assert.equal(jsonReply.contentType, "application/json");
  });

  it("renders record bytes per S2-Format: raw lossily, base64 exactly", async () => {
    const ackReply = await append('{"records":[{"headers":[["/w==","AA=="]],"body":"Yf96"}]}', {
      "s2-format": "base64",
    });
    const seqNum = (ackReply.body as { start: { seq_num: number } }).start.seq_num;
    const path = `/v1/streams/${stream}/records?seq_num=${seqNum}&count=1`;
    const raw = (await call("GET", path)).body as { records: unknown[] };
    assert.deepEqual(raw.records[0], {
      seq_num: seqNum,
      timestamp: (raw.records[0] as { timestamp: number }).timestamp,
      headers: [["\uFFFD", "\u0000"]],
      body: "a\uFFFDz",
    });
    const base64 = (await call("GET", path, { headers: { "s2-format": "base64" } })).body as {
      records: { headers: unknown; body: unknown }[];
    };
    assert.deepEqual(base64.records[0]?.headers, [["/w==", "AA=="]]);
    assert.equal(base64.records[0]?.body, "Yf96");
  });
});
