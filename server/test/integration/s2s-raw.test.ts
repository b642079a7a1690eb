// Goal: the S2S wire protocol holds at the byte level against the real server (S2-API.md §5.8):
// every malformed input ends its session with the exact terminal status and code after the acks
// of the inputs before it, errors before a session are JSON, zstd and gzip frames work both ways,
// heartbeats keep an idle read session alive, and the server keeps serving after each case.
// Method: the server process in memory mode, a raw `node:http2` client writing hand-made frames.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type AppendAck,
  AppendAckSchema,
  AppendInputSchema,
  type ReadBatch,
  ReadBatchSchema,
} from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { zstdCompress } from "../../src/api/s2s/compression.js";
import {
  decodeS2sPayload,
  encodeS2sFrame,
  parseS2sTerminalPayload,
  type S2sFrame,
  S2sFrameDecoder,
} from "../../src/api/s2s/frame.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const encoder = new TextEncoder();
const basin = `s2s-raw-${randomBytes(4).toString("hex")}`;
const waitTimeoutMs = 10_000;

let server: ServerProcess;
let client: http2.ClientHttp2Session;

/** An `AppendInput` frame of text records. */
function inputFrame(
  texts: readonly string[],
  options: { matchSeqNum?: number; compression?: "gzip" | "zstd" } = {},
): Promise<Uint8Array> | Uint8Array {
  const message = toBinary(
    AppendInputSchema,
    create(AppendInputSchema, {
      records: texts.map((text) => ({ body: encoder.encode(text) })),
      ...(options.matchSeqNum !== undefined && { matchSeqNum: BigInt(options.matchSeqNum) }),
    }),
  );
  if (options.compression === "gzip") {
    return encodeS2sFrame(gzipSync(message), { compression: "gzip" });
  }
  if (options.compression === "zstd") {
    return zstdCompress(message).then((compressed) =>
      encodeS2sFrame(compressed, { compression: "zstd" }),
    );
  }
  return encodeS2sFrame(message);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function frameHeader(length: number, flag: number): Uint8Array {
  return new Uint8Array([(length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, flag]);
}

/** One HTTP/2 exchange: the response status and headers, then frames as they arrive. */
class RawSession {
  status: number | undefined;
  headers: http2.IncomingHttpHeaders = {};
  /** The raw body, for a response that is not a session. */
  body = Buffer.alloc(0);
  readonly frames: S2sFrame[] = [];
  isEnded = false;
  isClosed = false;
  private readonly decoder = new S2sFrameDecoder();
  private readonly waiters: (() => void)[] = [];
  readonly response: Promise<void>;

  constructor(readonly stream: http2.ClientHttp2Stream) {
    this.response = new Promise((resolve) => {
      stream.on("response", (headers) => {
        this.status = Number(headers[":status"]);
        this.headers = headers;
        resolve();
      });
    });
    stream.on("data", (chunk: Buffer) => {
      this.body = Buffer.concat([this.body, chunk]);
      if (this.status === 200) {
        const { frames, error } = this.decoder.push(chunk);
        assert.equal(error, undefined, "the server sends well-formed frames");
        this.frames.push(...frames);
      }
      this.wake();
    });
    stream.on("end", () => {
      this.isEnded = true;
      this.wake();
    });
    stream.on("close", () => {
      this.isClosed = true;
      this.wake();
    });
    stream.on("error", () => {});
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits until `condition` holds, or fails after `waitTimeoutMs`. */
  async until(condition: () => boolean, what: string, timeoutMs = waitTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) assert.fail(`timed out waiting for ${what}`);
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push(resolve)),
        sleep(remainingMs),
      ]);
    }
  }

  /** Waits for the exchange to close; returns the regular frames and the terminal one. */
  async closed(): Promise<{ regular: S2sFrame[]; terminal: S2sFrame | undefined }> {
    await this.until(() => this.isClosed, "the stream to close");
    const terminal = this.frames.find((frame) => frame.isTerminal);
    return { regular: this.frames.filter((frame) => !frame.isTerminal), terminal };
  }
}

function openSession(
  method: "GET" | "POST",
  stream: string,
  options: { query?: string; headers?: Record<string, string> } = {},
): RawSession {
  const path = `/v1/streams/${encodeURIComponent(stream)}/records${options.query ?? ""}`;
  const request = client.request(
    {
      ":method": method,
      ":path": path,
      "content-type": "s2s/proto",
      "s2-basin": basin,
      ...options.headers,
    },
    { endStream: method === "GET" },
  );
  return new RawSession(request);
}

function decodeAck(frame: S2sFrame): AppendAck {
  assert.equal(frame.isTerminal, false);
  assert.equal(frame.compression, "none");
  return fromBinary(AppendAckSchema, frame.payload);
}

async function decodeBatch(frame: S2sFrame): Promise<ReadBatch> {
  assert.equal(frame.isTerminal, false);
  return fromBinary(ReadBatchSchema, await decodeS2sPayload(frame));
}

function assertTerminal(frame: S2sFrame | undefined, status: number, body: object): void {
  assert.ok(frame !== undefined, "a terminal frame");
  assert.equal(frame.compression, "none");
  const parsed = parseS2sTerminalPayload(frame.payload);
  assert.equal(parsed.status, status, parsed.body);
  const json = JSON.parse(parsed.body) as Record<string, unknown>;
  for (const [key, value] of Object.entries(body)) assert.deepEqual(json[key], value, parsed.body);
}

/** The code and status of a terminal `bad_frame`. */
const badFrame = { code: "bad_frame" } as const;

async function controlPlane(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${server.endpoint}${path}`, {
    method,
    headers: { "content-type": "application/json", "s2-basin": basin },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function createStream(label: string): Promise<string> {
  const stream = `${label}-${randomBytes(3).toString("hex")}`;
  const response = await controlPlane("POST", "/v1/streams", { stream });
  assert.equal(response.status, 201, await response.text());
  return stream;
}

async function tailOf(stream: string): Promise<number> {
  const response = await controlPlane("GET", `/v1/streams/${stream}/records/tail`);
  const body = (await response.json()) as { tail: { seq_num: number } };
  return body.tail.seq_num;
}

async function sessionGauge(kind: "s2s_append" | "s2s_read"): Promise<number> {
  const text = await (await fetch(`${server.endpoint}/metrics`)).text();
  const match = new RegExp(`tributary_sessions\\{kind="${kind}"\\} (\\d+)`).exec(text);
  assert.ok(match !== null, "the sessions gauge is exposed");
  return Number(match[1]);
}

/** A fresh append session on the same connection: one input, one ack, a clean end. */
async function assertStillServes(): Promise<void> {
  const stream = await createStream("probe");
  const session = openSession("POST", stream);
  session.stream.end(await inputFrame(["probe"]));
  const { regular, terminal } = await session.closed();
  assert.equal(session.status, 200);
  assert.equal(terminal, undefined);
  assert.equal(regular.length, 1);
  assert.equal(decodeAck(regular[0]!).end?.seqNum, 1n);
}

/** Sends `bytes` after `good` valid inputs and expects their acks, then terminal 400 bad_frame. */
async function assertBadFrameAfter(
  good: number,
  bytes: Uint8Array,
  options: { end: boolean; message?: RegExp },
): Promise<void> {
  const stream = await createStream("bad");
  const session = openSession("POST", stream);
  const inputs = await Promise.all(
    Array.from({ length: good }, (_, i) => inputFrame([`good-${i}`])),
  );
  const all = concat([...inputs, bytes]);
  if (options.end) session.stream.end(all);
  else session.stream.write(all);
  const { regular, terminal } = await session.closed();
  assert.equal(session.status, 200);
  assert.equal(regular.length, good, "acks for the inputs before the bad frame");
  assert.deepEqual(
    regular.map((frame) => decodeAck(frame).start?.seqNum),
    Array.from({ length: good }, (_, i) => BigInt(i)),
  );
  assertTerminal(terminal, 400, badFrame);
  if (options.message !== undefined) {
    assert.match(parseS2sTerminalPayload(terminal!.payload).body, options.message);
  }
  assert.equal(session.frames.at(-1)?.isTerminal, true, "the terminal frame is the last");
  assert.equal(await tailOf(stream), good, "nothing after the bad frame was applied");
  await assertStillServes();
}

before(async () => {
  server = await startServer({ mode: "memory" });
  client = http2.connect(server.endpoint);
  client.on("error", () => {});
  const response = await controlPlane("POST", "/v1/basins", { basin });
  assert.equal(response.status, 201, await response.text());
});

after(async () => {
  client?.close();
  await server?.cleanup();
});

describe("S2S over raw HTTP/2", { concurrency: true }, () => {
  describe("read session heartbeats", () => {
    it("sends a heartbeat at once, live batches with their tail, heartbeats while idle", {
      timeout: 40_000,
    }, async () => {
      const stream = await createStream("heartbeat");
      const session = openSession("GET", stream, { query: "?seq_num=0" });
      await session.response;
      assert.equal(session.status, 200);
      await session.until(() => session.frames.length >= 1, "the first heartbeat");
      const first = await decodeBatch(session.frames[0]!);
      assert.equal(first.records.length, 0);
      assert.equal(first.tail?.seqNum, 0n);
      // An idle follower gets another heartbeat within 15 s (the SDK gives up after 20 s).
      const startMs = Date.now();
      await session.until(() => session.frames.length >= 2, "an idle heartbeat", 17_000);
      assert.ok(Date.now() - startMs <= 16_000);
      const idle = await decodeBatch(session.frames[1]!);
      assert.equal(idle.records.length, 0);
      assert.equal(idle.tail?.seqNum, 0n);
      const appender = openSession("POST", stream);
      appender.stream.end(await inputFrame(["live-1", "live-2"]));
      await appender.closed();
      await session.until(() => session.frames.length >= 3, "the live batch");
      const live = await decodeBatch(session.frames[2]!);
      assert.deepEqual(
        live.records.map((record) => record.seqNum),
        [0n, 1n],
      );
      assert.equal(live.tail?.seqNum, 2n);
      session.stream.close(http2.constants.NGHTTP2_CANCEL);
      await session.closed();
    });
  });

  describe("sessions", { concurrency: false }, () => {
    it("acks every input in order and ends cleanly when the client half-closes", async () => {
      const stream = await createStream("ok");
      const session = openSession("POST", stream);
      await session.response;
      assert.equal(session.status, 200);
      assert.equal(session.headers["content-type"], "s2s/proto");
      assert.equal(session.headers["cache-control"], "no-cache, no-transform");
      assert.equal(session.headers["x-accel-buffering"], "no");
      const inputs = await Promise.all(
        Array.from({ length: 50 }, (_, i) => inputFrame([`a${i}`, `b${i}`])),
      );
      // Pipelined: all inputs at once, in one write.
      session.stream.end(concat(inputs));
      const { regular, terminal } = await session.closed();
      assert.equal(terminal, undefined);
      assert.equal(session.isEnded, true, "END_STREAM, not a reset");
      assert.equal(session.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
      assert.deepEqual(
        regular.map((frame) => Number(decodeAck(frame).start?.seqNum)),
        Array.from({ length: 50 }, (_, i) => 2 * i),
      );
      assert.equal(await tailOf(stream), 100);
    });

    it("400 bad_frame: a stream that ends inside a frame", async () => {
      const truncated = (await inputFrame(["cut"])).subarray(0, 5);
      await assertBadFrameAfter(2, truncated, { end: true, message: /ended inside a frame/ });
    });

    it("400 bad_frame: a declared length over 2 MiB, before its payload arrives", async () => {
      await assertBadFrameAfter(1, frameHeader((2 << 20) + 1, 0), {
        end: false,
        message: /too large/,
      });
    });

    it("400 bad_frame: an empty frame", async () => {
      await assertBadFrameAfter(1, new Uint8Array([0, 0, 0]), { end: false, message: /empty/ });
    });

    it("400 bad_frame: invalid compression bits and reserved bits", async () => {
      await assertBadFrameAfter(1, concat([frameHeader(2, 0x60), new Uint8Array([1])]), {
        end: false,
        message: /compression bits/,
      });
      await assertBadFrameAfter(0, concat([frameHeader(2, 0x08), new Uint8Array([1])]), {
        end: false,
        message: /reserved/,
      });
    });

    it("400 bad_frame: compressed garbage, gzip and zstd", async () => {
      const garbage = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      await assertBadFrameAfter(1, encodeS2sFrame(garbage, { compression: "gzip" }), {
        end: true,
        message: /decompressed/,
      });
      await assertBadFrameAfter(1, encodeS2sFrame(garbage, { compression: "zstd" }), {
        end: false,
        message: /decompressed/,
      });
    });

    it("400 bad_frame: a terminal frame from the client", async () => {
      const terminal = encodeS2sFrame(new Uint8Array([0x01, 0x90, 0x7b, 0x7d]), {
        isTerminal: true,
      });
      await assertBadFrameAfter(2, terminal, { end: false, message: /terminal/ });
    });

    it("400 bad_frame: garbage protobuf after good inputs, later inputs not applied", async () => {
      const garbage = encodeS2sFrame(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
      const after = await inputFrame(["after"]);
      await assertBadFrameAfter(3, concat([garbage, after]), {
        end: true,
        message: /protobuf/,
      });
    });

    it("412 after the acks of earlier inputs; no later input is applied", async () => {
      const stream = await createStream("cond");
      const session = openSession("POST", stream);
      const inputs = await Promise.all([
        inputFrame(["a"], { matchSeqNum: 0 }),
        inputFrame(["b", "c"]),
        inputFrame(["d"], { matchSeqNum: 7 }),
        inputFrame(["e"]),
        inputFrame(["f"], { matchSeqNum: 3 }),
      ]);
      session.stream.write(concat(inputs));
      const { regular, terminal } = await session.closed();
      assert.equal(regular.length, 2);
      assert.equal(decodeAck(regular[1]!).end?.seqNum, 3n);
      assertTerminal(terminal, 412, { seq_num_mismatch: 3 });
      assert.equal(await tailOf(stream), 3);
      await assertStillServes();
    });

    it("422 invalid for an empty batch, after the acks of earlier inputs", async () => {
      const stream = await createStream("invalid");
      const session = openSession("POST", stream);
      const empty = encodeS2sFrame(toBinary(AppendInputSchema, create(AppendInputSchema, {})));
      session.stream.write(concat([await inputFrame(["a"]), empty, await inputFrame(["b"])]));
      const { regular, terminal } = await session.closed();
      assert.equal(regular.length, 1);
      assertTerminal(terminal, 422, { code: "invalid" });
      assert.equal(await tailOf(stream), 1);
    });

    it("answers errors before a session with JSON, not frames", async () => {
      const append = openSession("POST", "missing-stream");
      append.stream.end(await inputFrame(["x"]));
      await append.closed();
      assert.equal(append.status, 404);
      assert.match(String(append.headers["content-type"]), /application\/json/);
      assert.equal(JSON.parse(append.body.toString()).code, "stream_not_found");

      const stream = await createStream("readerr");
      const beyond = openSession("GET", stream, { query: "?seq_num=5" });
      await beyond.closed();
      assert.equal(beyond.status, 416);
      assert.deepEqual(JSON.parse(beyond.body.toString()), {
        tail: { seq_num: 0, timestamp: 0 },
      });
      const bounded = openSession("GET", stream, { query: "?timestamp=10&until=5" });
      await bounded.closed();
      assert.equal(bounded.status, 422);
      assert.equal(JSON.parse(bounded.body.toString()).code, "invalid");
    });

    it("auto-creates the stream before the 200 when the basin allows it", async () => {
      const autoBasin = `s2s-auto-${randomBytes(4).toString("hex")}`;
      const created = await controlPlane("POST", "/v1/basins", {
        basin: autoBasin,
        config: { create_stream_on_append: true },
      });
      assert.equal(created.status, 201, await created.text());
      const session = openSession("POST", "fresh", { headers: { "s2-basin": autoBasin } });
      session.stream.end(await inputFrame(["first"]));
      const { regular, terminal } = await session.closed();
      assert.equal(session.status, 200);
      assert.equal(terminal, undefined);
      assert.equal(decodeAck(regular[0]!).start?.seqNum, 0n);
    });

    it("ends a bounded read session with END_STREAM and no terminal frame", async () => {
      const stream = await createStream("bounded");
      const appender = openSession("POST", stream);
      appender.stream.end(await inputFrame(["0", "1", "2", "3", "4"]));
      await appender.closed();
      const session = openSession("GET", stream, { query: "?seq_num=1&count=3" });
      const { regular, terminal } = await session.closed();
      assert.equal(terminal, undefined);
      assert.equal(session.isEnded, true);
      const batches = await Promise.all(regular.map(decodeBatch));
      assert.deepEqual(
        batches.flatMap((batch) => batch.records.map((record) => record.seqNum)),
        [1n, 2n, 3n],
      );
      assert.ok(
        batches.every((batch) => batch.tail === undefined),
        "catch-up has no tail",
      );
    });

    it("takes zstd frames from the client and sends zstd frames to it", async () => {
      const stream = await createStream("zstd");
      const big = "z".repeat(3000);
      const appender = openSession("POST", stream, { headers: { "accept-encoding": "zstd" } });
      appender.stream.end(
        concat([
          await inputFrame([big, big], { compression: "zstd" }),
          await inputFrame([big], { compression: "gzip" }),
          await inputFrame(["small"]),
        ]),
      );
      const appended = await appender.closed();
      assert.equal(appended.terminal, undefined);
      assert.deepEqual(
        appended.regular.map((frame) => Number(decodeAck(frame).end?.seqNum)),
        [2, 3, 4],
      );
      const reader = openSession("GET", stream, {
        query: "?seq_num=0&count=4",
        headers: { "accept-encoding": "gzip, zstd" },
      });
      const read = await reader.closed();
      assert.equal(read.terminal, undefined);
      assert.ok(read.regular.every((frame) => frame.compression === "zstd"));
      const batches = await Promise.all(read.regular.map(decodeBatch));
      const bodies = batches.flatMap((batch) =>
        batch.records.map((record) => new TextDecoder().decode(record.body)),
      );
      assert.deepEqual(bodies, [big, big, big, "small"]);
      const gzipReader = openSession("GET", stream, {
        query: "?seq_num=0&count=4",
        headers: { "accept-encoding": "gzip" },
      });
      const gzipped = await gzipReader.closed();
      assert.ok(gzipped.regular.every((frame) => frame.compression === "gzip"));
      const smallReader = openSession("GET", stream, {
        query: "?seq_num=3&count=1",
        headers: { "accept-encoding": "zstd" },
      });
      const small = await smallReader.closed();
      assert.equal(
        small.regular[0]?.compression,
        "none",
        "payloads under 1 KiB are not compressed",
      );
    });

    it("survives a client that disconnects mid-session", async () => {
      const appendsBefore = await sessionGauge("s2s_append");
      const stream = await createStream("gone");
      const appender = openSession("POST", stream);
      appender.stream.write(concat([await inputFrame(["a"]), await inputFrame(["b"])]));
      await appender.until(() => appender.frames.length >= 2, "two acks");
      appender.stream.write((await inputFrame(["c"])).subarray(0, 3));
      appender.stream.close(http2.constants.NGHTTP2_CANCEL);
      await appender.closed();

      const reader = openSession("GET", stream, { query: "?seq_num=0" });
      await reader.until(() => reader.frames.length >= 2, "a batch and a heartbeat");
      reader.stream.close(http2.constants.NGHTTP2_CANCEL);
      await reader.closed();

      const deadline = Date.now() + waitTimeoutMs;
      while ((await sessionGauge("s2s_append")) > appendsBefore) {
        assert.ok(Date.now() < deadline, "the append session is released");
        await sleep(20);
      }
      await assertStillServes();
      assert.equal(await tailOf(stream), 2);
    });
  });
});
