// Goal: the server process's operational surface: flags (with the caps of --max-sessions and
// --max-frame-buffer), health,
// Prometheus metrics, CORS and --no-cors, and TLS with HTTP/1.1 and HTTP/2 (ALPN) on one port.
// Method: real server processes on free ports, probed with node:https, node:http2 and fetch.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { connect } from "node:http2";
import { after, before, describe, it } from "node:test";
import { AppendInput, AppendRecord } from "@s2-dev/streamstore";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const mainPath = new URL("../../src/main.ts", import.meta.url).pathname;

function runMain(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", mainPath, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("server operations", () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer({ mode: "memory" });
  });
  after(async () => {
    await server.cleanup();
  });

  it("rejects bad flags with a clear message and exit code 2", async () => {
    for (const [args, pattern] of [
      [["serve", "--port", "abc"], /--port must be/],
      [["serve", "--bogus"], /Unknown option '--bogus'/],
      [["serve", "--bucket", "b", "--local-root", "/tmp/x"], /cannot be used together/],
      [["serve", "--path", "p"], /--path needs --bucket/],
      [["serve", "--tls-cert", "x.pem"], /must be given together/],
      [["serve", "--flush-interval-ms", "0"], /--flush-interval-ms must be/],
      [["serve", "--max-sessions", "0"], /--max-sessions must be 1\.\.1000000/],
      [["serve", "--max-connections", "many"], /--max-connections must be 1\.\.1000000/],
      [["serve", "--max-frame-buffer", "1MiB"], /--max-frame-buffer must be 2097152\.\./],
    ] as const) {
      const { code, output } = await runMain(args);
      assert.equal(code, 2, output);
      assert.match(output, pattern);
      assert.match(output, /usage: tributary serve/);
    }
  });

  it("prints the SDK endpoint settings and answers health", async () => {
    assert.match(
      server.output(),
      new RegExp(`S2_ACCOUNT_ENDPOINT=http://localhost:${server.port}`),
    );
    assert.match(server.output(), /S2_ACCESS_TOKEN=ignored/);
    for (const path of ["/health", "/ping"]) {
      const response = await fetch(`${server.endpoint}${path}`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "OK");
    }
  });

  it("serves Prometheus metrics that move with traffic", async () => {
    const s2 = s2ClientFor(server);
    await s2.basins.create({ basin: "metrics-basin" });
    await s2.basin("metrics-basin").streams.create({ stream: "s" });
    await s2
      .basin("metrics-basin")
      .stream("s")
      .append(AppendInput.create([AppendRecord.string({ body: "hello" })]));
    const response = await fetch(`${server.endpoint}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const metricValue = (name: string): number =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    assert.ok(metricValue("tributary_segment_puts_total") >= 1);
    assert.equal(metricValue("tributary_appended_records_total"), 1);
    assert.equal(metricValue("tributary_appended_bytes_total"), 8 + 5);
    assert.match(text, /tributary_requests_total\{route="POST \/v1\/basins",status="201"\} 1/);
    assert.match(text, /tributary_append_ack_latency_seconds_count 1/);
    assert.match(text, /^tributary_active_streams \d+$/m);
    assert.match(text, /^tributary_metrics_dropped_deltas_total 0$/m);
    assert.match(text, /^tributary_append_inflight_bytes \d+$/m);
    // The process's own figures, under prom-client's names.
    assert.ok(metricValue("process_resident_memory_bytes") > 10 << 20);
    assert.ok(metricValue("process_cpu_seconds_total") > 0);
    assert.ok(metricValue("process_open_fds") > 0);
    assert.ok(metricValue("nodejs_heap_size_used_bytes") > 0);
    const lagMax = metricValue("nodejs_eventloop_lag_max_seconds");
    assert.ok(
      lagMax >= metricValue("nodejs_eventloop_lag_p99_seconds") && lagMax < 10,
      `${lagMax}`,
    );
    assert.match(text, /^nodejs_version_info\{version="v\d+\.\d+\.\d+"\} 1$/m);
  });

  it("sends permissive CORS headers and answers preflights", async () => {
    const preflight = await fetch(`${server.endpoint}/v1/basins`, {
      method: "OPTIONS",
      headers: { origin: "http://example.test", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    const listed = await fetch(`${server.endpoint}/v1/basins`, {
      headers: { origin: "http://example.test" },
    });
    assert.equal(listed.headers.get("access-control-allow-origin"), "*");
  });

  it("sends no CORS headers with --no-cors", async () => {
    const quiet = await startServer({ mode: "memory", args: ["--no-cors"] });
    try {
      const listed = await fetch(`${quiet.endpoint}/v1/basins`, {
        headers: { origin: "http://example.test" },
      });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers.get("access-control-allow-origin"), null);
    } finally {
      await quiet.cleanup();
    }
  });

  it("serves HTTP/1.1 and HTTP/2 over TLS on one port", async () => {
    const secure = await startServer({
      mode: "memory",
      args: ["--tls-cert", `${fixtures}tls-cert.pem`, "--tls-key", `${fixtures}tls-key.pem`],
    });
    try {
      assert.match(secure.output(), /S2_ACCOUNT_ENDPOINT=https:\/\/localhost:/);
      const http1 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: "127.0.0.1", port: secure.port, path: "/v1/basins", rejectUnauthorized: false },
          (res) => {
            let body = "";
            res.on("data", (chunk: Buffer) => (body += chunk.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on("error", reject);
        req.end();
      });
      assert.equal(http1.status, 200);
      assert.deepEqual(JSON.parse(http1.body), { basins: [], has_more: false });

      const session = connect(`https://127.0.0.1:${secure.port}`, { rejectUnauthorized: false });
      const http2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":path": "/health" });
        let status = 0;
        let body = "";
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
      });
      session.close();
      assert.deepEqual(http2, { status: 200, body: "OK" });
    } finally {
      await secure.cleanup();
    }
  });
});

describe("--max-sessions", () => {
  it("caps open streaming sessions: one more gets 429 rate_limited", async () => {
    const capped = await startServer({ mode: "memory", args: ["--max-sessions", "1"] });
    const abort = new AbortController();
    try {
      const s2 = s2ClientFor(capped);
      await s2.basins.create({ basin: "capped-basin" });
      await s2.basin("capped-basin").streams.create({ stream: "s" });
      const sse = (): Promise<Response> =>
        fetch(`${capped.endpoint}/v1/streams/s/records?seq_num=0`, {
          headers: { accept: "text/event-stream", "s2-basin": "capped-basin" },
          signal: abort.signal,
        });
      const first = await sse();
      assert.equal(first.status, 200, "the first session is admitted");
      const second = await sse();
      assert.equal(second.status, 429);
      assert.equal(((await second.json()) as { code: string }).code, "rate_limited");
    } finally {
      abort.abort();
      await capped.cleanup();
    }
  });
});

describe("--max-frame-buffer", () => {
  it("bounds frames still arriving: a second waits, unread, until the first lets go", async () => {
    const capped = await startServer({ mode: "memory", args: ["--max-frame-buffer", "2MiB"] });
    const client = connect(capped.endpoint);
    client.on("error", () => {});
    try {
      const s2 = s2ClientFor(capped);
      await s2.basins.create({ basin: "frame-buffer-basin" });
      await s2.basin("frame-buffer-basin").streams.create({ stream: "s" });
      const gauges = async (): Promise<string> => {
        const text = await (await fetch(`${capped.endpoint}/metrics`)).text();
        return ["bytes", "waiting"]
          .map((name) => new RegExp(`tributary_frame_buffer_${name} (\\d+)`).exec(text)?.[1])
          .join(",");
      };
      // Two sessions, each sending the header of a maximal frame and 1 KiB of it.
      const payloadBytes = (2 << 20) - 2;
      const partial = Buffer.alloc(4 + 1024, 7);
      partial.writeUIntBE(payloadBytes + 1, 0, 3);
      partial[3] = 0;
      const open = () => {
        const request = client.request({
          ":method": "POST",
          ":path": "/v1/streams/s/records",
          "content-type": "s2s/proto",
          "s2-basin": "frame-buffer-basin",
        });
        request.on("error", () => {});
        request.write(partial);
        return request;
      };
      const first = open();
      const until = async (expected: string): Promise<void> => {
        const deadline = Date.now() + 10_000;
        let value = await gauges();
        while (value !== expected) {
          assert.ok(Date.now() < deadline, `frame buffer gauges: ${value}, expected ${expected}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
          value = await gauges();
        }
      };
      await until(`${payloadBytes},0`);
      open();
      await until(`${payloadBytes},1`);
      first.close();
      await until(`${payloadBytes},0`);
    } finally {
      client.destroy();
      await capped.cleanup();
    }
  });
});
