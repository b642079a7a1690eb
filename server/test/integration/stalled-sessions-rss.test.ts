// Goal: stalled S2S append sessions cost the server memory bounded by its own limits, not by
// clients × frame size (issue 14: ~2.3 MiB apiece for sessions holding almost complete 2 MiB
// frames), and every session is released. Two cases of 1,000 sessions: half-sent frame headers
// with 32 KiB each (175 MiB measured; this passed before the frame budget too, as an untouched
// allocation is not resident), released once their clients go; and the almost complete
// maximal frames over HTTP/2 and HTTP/1.1, which the frame budget (`s2sFrameBufferBytesMax`)
// bounds (it failed before it at 805 MiB, on its way to 2 GiB), released by the stall timeout
// while their clients stay connected, with the server's descriptors back to their baseline.
// Method: the server process in memory mode; `node:http2` and `node:http` clients; the server's
// RSS read from /proc/<pid>/status, its descriptors from /proc/<pid>/fd, the `tributary_sessions`
// gauge from /metrics.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { after, before, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  http2StreamsPerSessionMax,
  http2StreamWindowBytes,
  s2sAppendDrainTimeoutMs,
  s2sFrameBufferBytesMax,
  s2sFrameBytesMax,
  s2sFrameStallTimeoutMs,
} from "../../src/core/limits.js";
import { type ServerProcess, startServer } from "../support/server-process.js";

const basin = "stalled-basin";
const connections = 10;
const sessionsPerConnection = 100;
/** The server's RSS with all sessions stalled: far below 1,000 × 2 MiB. */
const rssBoundBytes = 400 << 20;
const waitTimeoutMs = 60_000;

let server: ServerProcess;

/** Creates the basin and its stream `s` on `target`. */
async function createStream(target: ServerProcess): Promise<void> {
  const create = (path: string, body: unknown) =>
    fetch(`${target.endpoint}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "s2-basin": basin },
      body: JSON.stringify(body),
    });
  assert.equal((await create("/v1/basins", { basin })).status, 201);
  assert.equal((await create("/v1/streams", { stream: "s" })).status, 201);
}

before(async () => {
  server = await startServer({ mode: "memory" });
  await createStream(server);
});

after(async () => {
  await server?.stop();
  await server?.cleanup();
});

async function appendSessions(): Promise<number> {
  const text = await (await fetch(`${server.endpoint}/metrics`)).text();
  const match = /tributary_sessions\{kind="s2s_append"\} (\d+)/.exec(text);
  assert.ok(match !== null);
  return Number(match[1]);
}

async function serverRssBytes(target: ServerProcess = server): Promise<number> {
  const status = await readFile(`/proc/${target.child.pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  assert.ok(match !== null, "VmRSS in /proc/<pid>/status");
  return Number(match[1]) * 1024;
}

/** The header of a frame declaring the largest payload (`s2sFrameBytesMax - 1` bytes). */
function maximalFrameHeader(): Buffer {
  const header = Buffer.alloc(4);
  header.writeUIntBE(s2sFrameBytesMax, 0, 3);
  return header;
}

/**
 * Opens `connections` × `streamsPerConnection` S2S append sessions on `node:http2` connections,
 * each writing `body`; `onData` makes each session's response listener.
 */
function openHttp2Sessions(options: {
  readonly connections: number;
  readonly streamsPerConnection: number;
  readonly body: Buffer;
  readonly onData: () => (chunk: Buffer) => void;
  readonly clientOptions?: http2.ClientSessionOptions;
  /** The server to connect to: the suite's unless given. */
  readonly target?: ServerProcess;
}): http2.ClientHttp2Session[] {
  const clients: http2.ClientHttp2Session[] = [];
  for (let c = 0; c < options.connections; c++) {
    const client = http2.connect((options.target ?? server).endpoint, options.clientOptions);
    client.on("error", () => {});
    clients.push(client);
    for (let s = 0; s < options.streamsPerConnection; s++) {
      const request = client.request({
        ":method": "POST",
        ":path": "/v1/streams/s/records",
        "content-type": "s2s/proto",
        "s2-basin": basin,
      });
      request.on("error", () => {});
      request.on("data", options.onData());
      request.write(options.body);
    }
  }
  return clients;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + waitTimeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

it("holds 1,000 stalled half-frames in bounded memory and releases them with their clients", {
  timeout: 180_000,
}, async () => {
  const baseline = await appendSessions();
  // A frame header declaring the largest payload, and 32 KiB of it.
  const partial = Buffer.concat([maximalFrameHeader(), Buffer.alloc(32 << 10, 7)]);
  const clients = openHttp2Sessions({
    connections,
    streamsPerConnection: sessionsPerConnection,
    body: partial,
    onData: () => () => {},
  });
  try {
    const total = connections * sessionsPerConnection;
    await until(`${total} open sessions`, async () => (await appendSessions()) >= baseline + total);
    await sleep(500); // the partial frames are read
    const rss = await serverRssBytes();
    console.log(`# server RSS with ${total} stalled sessions: ${(rss / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(rss < rssBoundBytes, `server RSS ${rss} bytes, bound ${rssBoundBytes}`);
  } finally {
    for (const client of clients) client.destroy();
  }
  await until("the sessions to be released", async () => (await appendSessions()) === baseline);
});

/** Open file descriptors of the server process (its sockets among them). */
async function serverFdCount(): Promise<number> {
  return (await readdir(`/proc/${server.child.pid}/fd`)).length;
}

/** Polls `read` until `isDone` holds; fails with the last value after `timeoutMs`. */
async function waitFor(
  what: string,
  read: () => Promise<number>,
  isDone: (value: number) => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let value = await read();
  while (!isDone(value)) {
    if (performance.now() > deadline) assert.fail(`${what}: still ${value} after ${timeoutMs} ms`);
    await sleep(200);
    value = await read();
  }
}

it("holds 1,000 stalled almost complete maximal frames in memory bounded by the frame budget", {
  timeout: 240_000,
}, async () => {
  // The case: each session sent all of a maximal frame but its last byte, then nothing.
  // 500 sessions on 5 HTTP/2 connections of 100 streams (the SDK's pool) and 500 on HTTP/1.1
  // connections of their own (a chunked body). Unbounded, the server would hold ~2 GiB; it may
  // hold `s2sFrameBufferBytesMax` of partial frames, plus what each waiting session's transport
  // holds (an HTTP/2 stream window, a socket's read buffer). Every client writes the same buffer,
  // so the test process does not hold 2 GiB either; and the clients need not send 2 GiB: the
  // server stops reading at its bounds.
  const http2Connections = 5;
  const streamsPerConnection = 100;
  const http1Sessions = 500;
  const total = http2Connections * streamsPerConnection + http1Sessions;
  const almostComplete = Buffer.concat([
    maximalFrameHeader(),
    Buffer.alloc(s2sFrameBytesMax - 2, 7),
  ]);
  const baselineSessions = await appendSessions();
  const baselineFds = await serverFdCount();
  // The bound: the server's RSS before, twice the frame budget (a frame's buffer grows by
  // doubling, and the buffers it outgrew stay resident until collected and trimmed), and per
  // session what its transport holds while it waits (an HTTP/2 stream window, a 64 KiB socket
  // read over HTTP/1.1), the decoder's copy of the rest of the chunk that brought the header (64
  // KiB at most) and the session itself (32 KiB). Measured: 512 of 676 MiB (395-440 when Node
  // stopped reading each connection at 10 MB of session memory); without
  // the budget the server reads every frame whole (2 GiB; 805 MiB when the test stopped at it).
  const almostCompleteRssBoundBytes =
    (await serverRssBytes()) +
    2 * s2sFrameBufferBytesMax +
    http2Connections * streamsPerConnection * (http2StreamWindowBytes + (96 << 10)) +
    http1Sessions * (160 << 10);
  const terminalStatuses: number[] = [];
  /** Records the status of a terminal frame that opens a response (its first 6 bytes). */
  const onResponseData = (): ((chunk: Buffer) => void) => {
    let head = Buffer.alloc(0);
    return (chunk) => {
      if (head.length >= 6) return;
      head = Buffer.concat([head, chunk]);
      if (head.length >= 6 && (head[3]! & 0x80) !== 0) terminalStatuses.push(head.readUInt16BE(4));
    };
  };
  const http1Requests: http.ClientRequest[] = [];
  let rssMaxBytes = 0;
  const http2Clients = openHttp2Sessions({
    connections: http2Connections,
    streamsPerConnection,
    body: almostComplete,
    onData: onResponseData,
    // The client's own nghttp2 counts the 200 MiB it has queued against its session memory and
    // refuses its new streams past 10 MB (ENHANCE_YOUR_CALM): let it queue.
    clientOptions: { maxSessionMemory: 1_000 },
  });
  try {
    for (let s = 0; s < http1Sessions; s++) {
      const request = http.request(`${server.endpoint}/v1/streams/s/records`, {
        method: "POST",
        headers: { "content-type": "s2s/proto", "s2-basin": basin },
        agent: false,
      });
      request.on("error", () => {});
      request.on("response", (response) => {
        response.on("error", () => {});
        response.on("data", onResponseData());
      });
      request.write(almostComplete);
      http1Requests.push(request);
    }
    // Every session open, then held for `holdMs` (well within the stall timeout, which starts
    // when a frame's first bytes arrive), the server's RSS sampled all along; a sample past the
    // bound ends the wait at once.
    const holdMs = 15_000;
    const sampleRss = async (): Promise<boolean> => {
      rssMaxBytes = Math.max(rssMaxBytes, await serverRssBytes());
      return rssMaxBytes >= almostCompleteRssBoundBytes;
    };
    const openDeadline = performance.now() + waitTimeoutMs;
    while (!(await sampleRss()) && (await appendSessions()) < baselineSessions + total) {
      if (performance.now() > openDeadline) {
        assert.fail(`the sessions did not open. rss_max_bytes=${rssMaxBytes}`);
      }
      await sleep(100);
    }
    const holdEndMs = performance.now() + holdMs;
    while (performance.now() < holdEndMs && !(await sampleRss())) await sleep(100);
    const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    console.log(
      `# server RSS with ${total} stalled almost complete frames: max ${mib(rssMaxBytes)}, bound ${mib(almostCompleteRssBoundBytes)}`,
    );
    assert.ok(
      rssMaxBytes < almostCompleteRssBoundBytes,
      `server RSS ${rssMaxBytes} bytes, bound ${almostCompleteRssBoundBytes}`,
    );
    assert.equal(await appendSessions(), baselineSessions + total, "every session is held");
    // The clients stay connected and send nothing more: the stall timeout ends every session
    // with a terminal frame (408 for a frame that stopped arriving, 429 for one that waited for
    // room), and the drain that follows ends every exchange. A session given room just before its
    // wait timed out reads the rest its client sent (progress) and then stalls once more.
    const releaseBoundMs = 2 * s2sFrameStallTimeoutMs + s2sAppendDrainTimeoutMs + 15_000;
    await waitFor(
      "open append sessions",
      appendSessions,
      (count) => count === baselineSessions,
      releaseBoundMs,
    );
    // The HTTP/1.1 connections were closed by the server; the HTTP/2 ones remain, streamless.
    await waitFor(
      "server file descriptors while the clients are connected",
      serverFdCount,
      (count) => count <= baselineFds + http2Connections,
      s2sAppendDrainTimeoutMs + 10_000,
    );
    assert.ok(terminalStatuses.length > 0, "sessions were ended with a terminal frame");
    assert.ok(
      terminalStatuses.every((status) => status === 408 || status === 429),
      `terminal statuses: ${[...new Set(terminalStatuses)].join(", ")}`,
    );
  } finally {
    for (const client of http2Clients) client.destroy();
    for (const request of http1Requests) request.destroy();
  }
  // At most the baseline: the test's own keep-alive connection for /metrics may have closed since.
  await waitFor("server file descriptors", serverFdCount, (count) => count <= baselineFds, 10_000);
});

it("holds what sessions waiting for room have in their HTTP/2 stream windows to the window", {
  timeout: 120_000,
}, async () => {
  // Node refills an HTTP/2 stream's window only as the stream is read, and refills the
  // connection's at once, so a session that waits for room in the frame budget holds up to its
  // stream window (`http2StreamWindowBytes`) in unread input, whatever the connection's window
  // (docs/design/api.md "HTTP/2 flow control"). 400 sessions on 50 connections (8 each), each
  // writing an almost complete
  // maximal frame, against a frame budget of 8 frames: 392 sessions wait with full windows. With
  // 256 KiB windows the server held ~170 MiB more than before them (283 of a 322 MiB bound); with
  // 1 MiB windows ~415 MiB more (measured), past the bound.
  const frameBudgetBytes = 8 * s2sFrameBytesMax;
  // Per session: its window, and ~170 KiB besides (measured with 64 KiB and 256 KiB windows: the
  // session, its decoder's copy of the chunk that brought the header, the socket reads that the
  // unread pieces are views of).
  const waitingSessionBytesMax = http2StreamWindowBytes + (192 << 10);
  const budgeted = await startServer({
    mode: "memory",
    args: ["--max-frame-buffer", String(frameBudgetBytes)],
  });
  const windowConnections = 50;
  const sessionsPerWindowConnection = 8;
  const total = windowConnections * sessionsPerWindowConnection;
  let clients: http2.ClientHttp2Session[] = [];
  try {
    await createStream(budgeted);
    const waitingSessions = async (): Promise<number> => {
      const text = await (await fetch(`${budgeted.endpoint}/metrics`)).text();
      const match = /tributary_frame_buffer_waiting (\d+)/.exec(text);
      assert.ok(match !== null, "tributary_frame_buffer_waiting in /metrics");
      return Number(match[1]);
    };
    const rssBoundBytes =
      (await serverRssBytes(budgeted)) + 2 * frameBudgetBytes + total * waitingSessionBytesMax;
    clients = openHttp2Sessions({
      connections: windowConnections,
      streamsPerConnection: sessionsPerWindowConnection,
      body: Buffer.concat([maximalFrameHeader(), Buffer.alloc(s2sFrameBytesMax - 2, 7)]),
      onData: () => () => {},
      clientOptions: { maxSessionMemory: 1_000 },
      target: budgeted,
    });
    // The server advertises the stream window in its SETTINGS.
    const settled = clients[0]!;
    if (settled.remoteSettings.initialWindowSize !== http2StreamWindowBytes) {
      await new Promise((resolve) => settled.once("remoteSettings", resolve));
    }
    assert.equal(settled.remoteSettings.initialWindowSize, http2StreamWindowBytes);
    const deadline = performance.now() + waitTimeoutMs;
    while ((await waitingSessions()) < total - 8) {
      if (performance.now() > deadline) assert.fail("the sessions did not all wait for room");
      await sleep(100);
    }
    // Every waiting session's window filled: sample for a while, as the last windows arrive.
    let rssMaxBytes = 0;
    for (let sample = 0; sample < 20; sample++) {
      rssMaxBytes = Math.max(rssMaxBytes, await serverRssBytes(budgeted));
      await sleep(100);
    }
    console.log(
      `# server RSS with ${total} sessions waiting for room: ${(rssMaxBytes / 2 ** 20).toFixed(0)} MiB, bound ${(rssBoundBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    assert.ok(rssMaxBytes < rssBoundBytes, `server RSS ${rssMaxBytes}, bound ${rssBoundBytes}`);
  } finally {
    for (const client of clients) client.destroy();
    await budgeted.stop();
    await budgeted.cleanup();
  }
});

it("serves every session of a connection whose other sessions wait for room with full windows", {
  timeout: 120_000,
}, async () => {
  // A review's finding: Node counts a paused stream's unread input in its connection's session
  // memory and stops reading the whole connection past `http2SessionMemoryMbMax`. With 256 KiB
  // windows its default (10 MB) was reached by ~40 waiting sessions, so the sessions holding room
  // could not finish their frames, nothing was released, and the idle PING closed the connection:
  // 8 of 100 sessions were answered. 100 sessions (the most a connection may carry, and what the
  // SDK puts on one) each send one frame of a 1 MB record against a budget of 4 frames; every one
  // must be acknowledged, on the one connection. Bounded by the wait, not timed.
  assert.equal(http2StreamsPerSessionMax, 100);
  const budgeted = await startServer({
    mode: "memory",
    args: ["--max-frame-buffer", String(4 * s2sFrameBytesMax)],
  });
  let clients: http2.ClientHttp2Session[] = [];
  try {
    await createStream(budgeted);
    const body = Buffer.alloc(1_000_000, 7);
    const varint = (n: number): number[] => {
      const out: number[] = [];
      for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n & 0x7f) | 0x80);
      return [...out, n];
    };
    // AppendInput { records: [AppendRecord { body }] }, framed.
    const record = Buffer.concat([Buffer.from([0x1a, ...varint(body.length)]), body]);
    const payload = Buffer.concat([Buffer.from([0x0a, ...varint(record.length)]), record]);
    const length = payload.length + 1;
    const frame = Buffer.concat([
      Buffer.from([length >> 16, (length >> 8) & 0xff, length & 0xff, 0]),
      payload,
    ]);
    let answered = 0;
    clients = openHttp2Sessions({
      connections: 1,
      streamsPerConnection: http2StreamsPerSessionMax,
      body: frame,
      onData: () => {
        let isFirst = true;
        return () => {
          if (isFirst) answered += 1;
          isFirst = false;
        };
      },
      clientOptions: { maxSessionMemory: 1_000 },
      target: budgeted,
    });
    let isClosed = false;
    clients[0]!.on("close", () => {
      isClosed = true;
    });
    const deadline = performance.now() + waitTimeoutMs;
    while (answered < http2StreamsPerSessionMax && !isClosed) {
      if (performance.now() > deadline) break;
      await sleep(100);
    }
    assert.equal(answered, http2StreamsPerSessionMax, "every session was answered");
    assert.equal(isClosed, false, "the connection stayed open");
  } finally {
    for (const client of clients) client.destroy();
    await budgeted.stop();
    await budgeted.cleanup();
  }
});
