// Goal: a session opened with an access token does not outlive the token (issue 14, item 6): once
// the token is revoked through the API, or expires, its S2S append session, S2S read session, SSE
// read session and Connect append and read sessions end with 401 `authn` (a terminal frame, an
// SSE `error` event, Unauthenticated) within the token-check interval, and the
// `tributary_sessions` gauge returns to its baseline; sessions of the root token are not touched.
// Method: the API server in-process on memory stores with a root token and a short check
// interval; raw `node:http2` clients and connect-node; every wait is bounded. An append session
// whose client does not read (a zero stream window) is reset after the drain timeout.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import {
  AppendSessionRequestSchema,
  StreamService,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import {
  encodeS2sFrame,
  parseS2sTerminalPayload,
  type S2sFrame,
  S2sFrameDecoder,
} from "../../src/api/s2s/frame.js";
import type { ApiServer } from "../../src/api/server.js";
import { s2sAppendDrainTimeoutMs } from "../../src/core/limits.js";
import type { Service } from "../../src/service/service.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import {
  appendText,
  ensureTestBasin,
  openTestService,
  testBasin,
  startLoopbackApi,
} from "../support/engine.js";
import { until, waitTimeoutMsDefault, within } from "../support/wait.js";

const rootToken = "revocation-root-token";
const checkIntervalMs = 200;
/** Every wait in this file fails after this long instead of hanging the run. */
const waitTimeoutMs = waitTimeoutMsDefault;
/** A session ends within the check interval, plus this for the end to reach the client. */
const endSlackMs = 2_000;

let service: Service;
let api: ApiServer;

before(async () => {
  service = await openTestService({ store: createMemoryObjectStore() });
  await ensureTestBasin(service);
  api = await startLoopbackApi(service, {
    auth: { kind: "token", rootToken },
    sessionTokenCheckIntervalMs: checkIntervalMs,
  });
});

after(async () => {
  await api?.close();
  await service?.close();
});

function sessionGauge(kind: "s2s_append" | "s2s_read" | "sse" | "rpc_append" | "rpc_read"): number {
  const match = new RegExp(`tributary_sessions\\{kind="${kind}"\\} (\\d+)`).exec(
    api.metrics.render(),
  );
  assert.ok(match !== null, "the sessions gauge is exposed");
  return Number(match[1]);
}

async function rest(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${api.port}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${rootToken}`,
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text === "" ? undefined : JSON.parse(text);
}

/** Issues a token that may append and read every stream; `expiresAtMs` when it should expire. */
async function issueToken(id: string, expiresAtMs?: number): Promise<string> {
  const json = (await rest("POST", "/v1/access-tokens", {
    id,
    scope: { basins: { prefix: "" }, streams: { prefix: "" }, ops: ["append", "read"] },
    ...(expiresAtMs !== undefined && { expires_at: new Date(expiresAtMs).toISOString() }),
  })) as { access_token: string };
  return json.access_token;
}

function revokeToken(id: string): Promise<unknown> {
  return rest("DELETE", `/v1/access-tokens/${encodeURIComponent(id)}`);
}

/** An `AppendInput` frame of one small record. */
function inputFrame(): Uint8Array {
  const message = create(AppendInputSchema, { records: [{ body: new Uint8Array([0x61]) }] });
  return encodeS2sFrame(toBinary(AppendInputSchema, message));
}

/** An S2S session on an HTTP/2 connection of its own, with the frames it received. */
interface S2sSession {
  client: http2.ClientHttp2Session;
  request: http2.ClientHttp2Stream;
  frames: S2sFrame[];
  framesReceived(count: number): Promise<void>;
  terminal: Promise<{ status: number; code: string }>;
}

/**
 * Revokes `tokenId` and checks that `session` ends with a 401 `authn` terminal frame within the
 * check interval (and slack), and that its kind's gauge is back to `before`.
 */
async function assertRevokeEnds(
  tokenId: string,
  session: S2sSession,
  kind: "s2s_append" | "s2s_read",
  before: number,
): Promise<void> {
  await revokeToken(tokenId);
  const revokedAtMs = performance.now();
  const terminal = await within(session.terminal, "the terminal frame");
  const afterMs = performance.now() - revokedAtMs;
  assert.deepEqual(terminal, { status: 401, code: "authn" });
  assert.ok(afterMs < checkIntervalMs + endSlackMs, `ended within the bound. after_ms=${afterMs}`);
  await until(() => sessionGauge(kind), before, `${kind} sessions`);
  session.client.destroy();
}

function openS2sSession(options: {
  method: "POST" | "GET";
  stream: string;
  token: string;
}): S2sSession {
  const client = http2.connect(`http://127.0.0.1:${api.port}`);
  client.on("error", () => {});
  const request = client.request({
    ":method": options.method,
    ":path": `/v1/streams/${options.stream}/records${options.method === "GET" ? "?seq_num=0" : ""}`,
    "content-type": "s2s/proto",
    "s2-basin": testBasin,
    authorization: `Bearer ${options.token}`,
  });
  request.on("error", () => {});
  const frames: S2sFrame[] = [];
  const decoder = new S2sFrameDecoder();
  const waiters: (() => void)[] = [];
  let onTerminal: (frame: S2sFrame) => void = () => {};
  const terminal = new Promise<{ status: number; code: string }>((resolve) => {
    onTerminal = (frame) => {
      const parsed = parseS2sTerminalPayload(frame.payload);
      resolve({ status: parsed.status, code: (JSON.parse(parsed.body) as { code: string }).code });
    };
  });
  request.on("data", (chunk: Buffer) => {
    const decoded = decoder.push(chunk);
    assert.equal(decoded.error, undefined, "the server sends well-formed frames");
    for (const frame of decoded.frames) {
      frames.push(frame);
      if (frame.isTerminal) onTerminal(frame);
    }
    for (const wake of waiters.splice(0)) wake();
  });
  const framesReceived = async (count: number): Promise<void> => {
    while (frames.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { client, request, frames, framesReceived, terminal };
}

/** A promise and its resolve function. */
function resolvable(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((resolvePromise) => {
    resolve = resolvePromise;
  });
  return { promise, resolve };
}

describe("sessions of a revoked or expired token", () => {
  it("an S2S append session ends with 401 authn once its token is revoked", async () => {
    const token = await issueToken("append-revoked");
    const before = sessionGauge("s2s_append");
    const session = openS2sSession({ method: "POST", stream: "revoked-append", token });
    session.request.write(inputFrame());
    await within(session.framesReceived(1), "the ack of the first input");
    assert.equal(session.frames[0]?.isTerminal, false, "an ack");
    assert.equal(sessionGauge("s2s_append"), before + 1, "the session is open");
    await assertRevokeEnds("append-revoked", session, "s2s_append", before);
  });

  it("an S2S read session ends with 401 authn once its token is revoked", async () => {
    await appendText(service, "revoked-read", ["one"]);
    const token = await issueToken("read-revoked");
    const before = sessionGauge("s2s_read");
    const session = openS2sSession({ method: "GET", stream: "revoked-read", token });
    session.request.end();
    await within(session.framesReceived(1), "the first batch");
    assert.equal(sessionGauge("s2s_read"), before + 1, "the session is open, following");
    await assertRevokeEnds("read-revoked", session, "s2s_read", before);
  });

  it("an S2S read session ends with 401 authn once its token expires", async () => {
    await appendText(service, "expired-read", ["one"]);
    const expiresAtMs = Date.now() + 1_500;
    const token = await issueToken("read-expiring", expiresAtMs);
    const before = sessionGauge("s2s_read");
    const session = openS2sSession({ method: "GET", stream: "expired-read", token });
    session.request.end();
    await within(session.framesReceived(1), "the first batch");
    const terminal = await within(session.terminal, "the terminal frame");
    const afterMs = Date.now() - expiresAtMs;
    assert.deepEqual(terminal, { status: 401, code: "authn" });
    assert.ok(afterMs >= 0, `not before the expiry. after_ms=${afterMs}`);
    assert.ok(
      afterMs < checkIntervalMs + endSlackMs,
      `ended within the bound. after_ms=${afterMs}`,
    );
    await until(() => sessionGauge("s2s_read"), before, "s2s_read sessions");
    session.client.destroy();
  });

  it("an SSE read session ends with an authn error event once its token is revoked", async () => {
    await appendText(service, "revoked-sse", ["one"]);
    const token = await issueToken("sse-revoked");
    const before = sessionGauge("sse");
    const client = http2.connect(`http://127.0.0.1:${api.port}`);
    client.on("error", () => {});
    const request = client.request({
      ":path": "/v1/streams/revoked-sse/records?seq_num=0",
      accept: "text/event-stream",
      "s2-basin": testBasin,
      authorization: `Bearer ${token}`,
    });
    request.on("error", () => {});
    let text = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      text += chunk;
    });
    const ended = new Promise<void>((resolve) => request.once("end", resolve));
    await until(() => (text.includes("event: batch") ? 1 : 0), 1, "the first batch event");
    await revokeToken("sse-revoked");
    await within(ended, "the end of the event stream");
    assert.match(text, /event: error\ndata: \{"code":"authn"/);
    assert.doesNotMatch(text, /\[DONE\]/, "a failure, not a normal end");
    await until(() => sessionGauge("sse"), before, "sse sessions");
    client.destroy();
  });

  it("Connect read and append sessions end with Unauthenticated once their token is revoked", async () => {
    await appendText(service, "revoked-rpc", ["one"]);
    const token = await issueToken("rpc-revoked");
    const readsBefore = sessionGauge("rpc_read");
    const appendsBefore = sessionGauge("rpc_append");
    const transport = createConnectTransport({
      baseUrl: `http://127.0.0.1:${api.port}`,
      httpVersion: "2",
      interceptors: [
        (next) => (request) => {
          request.header.set("authorization", `Bearer ${token}`);
          return next(request);
        },
      ],
    });
    const streams = createClient(StreamService, transport);
    const testDone = new AbortController();
    async function* appendInputs() {
      yield create(AppendSessionRequestSchema, {
        basin: testBasin,
        stream: "revoked-rpc",
        input: { records: [{ body: new Uint8Array([0x61]) }] },
      });
      // Keeps the request open, as a writer between batches does.
      await sleep(waitTimeoutMs * 2, undefined, { signal: testDone.signal }).catch(() => {});
    }
    let acks = 0;
    let batches = 0;
    const firstAck = resolvable();
    const firstBatch = resolvable();
    const appendEnd = (async () => {
      for await (const _ of streams.appendSession(appendInputs())) {
        acks++;
        firstAck.resolve();
      }
    })();
    const readEnd = (async () => {
      const request = {
        basin: testBasin,
        stream: "revoked-rpc",
        start: { case: "seqNum" as const, value: 0n },
      };
      for await (const _ of streams.readSession(request)) {
        batches++;
        firstBatch.resolve();
      }
    })();
    appendEnd.catch(() => {});
    readEnd.catch(() => {});
    try {
      await within(Promise.all([firstAck.promise, firstBatch.promise]), "an ack and a batch");
      await revokeToken("rpc-revoked");
      for (const [ended, what] of [
        [appendEnd, "append"],
        [readEnd, "read"],
      ] as const) {
        await assert.rejects(within(ended, `the ${what} session's end`), (error: unknown) => {
          assert.ok(error instanceof ConnectError, String(error));
          assert.equal(error.code, Code.Unauthenticated, `${what}: ${error.message}`);
          return true;
        });
      }
      assert.ok(acks >= 1 && batches >= 1, "both sessions worked before the revoke");
      await until(() => sessionGauge("rpc_read"), readsBefore, "rpc_read sessions");
      await until(() => sessionGauge("rpc_append"), appendsBefore, "rpc_append sessions");
    } finally {
      testDone.abort();
    }
  });

  it("an S2S append session whose client stops reading ends once its token is revoked", async () => {
    // The client never reads: its stream window is 0, so the server can send it nothing, and the
    // acks of 2,000 inputs fill the response's buffer until the session waits for a drain that
    // never comes. The revoke must still end the session: after the drain timeout, a reset.
    const token = await issueToken("append-unread");
    const before = sessionGauge("s2s_append");
    const client = http2.connect(`http://127.0.0.1:${api.port}`, {
      settings: { initialWindowSize: 0 },
    });
    client.on("error", () => {});
    try {
      const request = client.request({
        ":method": "POST",
        ":path": "/v1/streams/revoked-unread/records",
        "content-type": "s2s/proto",
        "s2-basin": testBasin,
        authorization: `Bearer ${token}`,
      });
      request.on("error", () => {});
      request.pause();
      const closed = new Promise<void>((resolve) => request.once("close", resolve));
      const inputs = 2_000;
      request.write(Buffer.concat(Array.from({ length: inputs }, () => inputFrame())));
      await until(() => sessionGauge("s2s_append"), before + 1, "the open session");
      // The inputs are applied; their acks wait in the server's buffers.
      const deadline = Date.now() + waitTimeoutMs;
      while ((await service.records.checkTail(testBasin, "revoked-unread")).seqNum < 1_000) {
        assert.ok(Date.now() < deadline, "the inputs were appended");
        await sleep(20);
      }
      await revokeToken("append-unread");
      const revokedAtMs = performance.now();
      await within(
        closed,
        "the stream reset",
        checkIntervalMs + s2sAppendDrainTimeoutMs + endSlackMs,
      );
      const afterMs = performance.now() - revokedAtMs;
      assert.equal(request.rstCode, http2.constants.NGHTTP2_CANCEL, "reset by the server");
      assert.ok(
        afterMs >= s2sAppendDrainTimeoutMs * 0.9,
        `reset after the drain. after_ms=${afterMs}`,
      );
      await until(() => sessionGauge("s2s_append"), before, "s2s_append sessions");
    } finally {
      client.destroy();
    }
  });

  it("a session of the root token is not ended by the check", async () => {
    const before = sessionGauge("s2s_append");
    const session = openS2sSession({ method: "POST", stream: "root-append", token: rootToken });
    session.request.write(inputFrame());
    await within(session.framesReceived(1), "the first ack");
    await sleep(3 * checkIntervalMs);
    session.request.write(inputFrame());
    await within(session.framesReceived(2), "the second ack");
    assert.ok(
      session.frames.every((frame) => !frame.isTerminal),
      "acks only",
    );
    session.request.end();
    await until(() => sessionGauge("s2s_append"), before, "s2s_append sessions");
    session.client.destroy();
  });
});
