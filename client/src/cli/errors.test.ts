// Goal: every way a CLI invocation can fail ends with one clear line on stderr and the documented
// exit code (1 server error, 2 usage, 3 unreachable), help exits 0, the access token is sent, and
// the real `tributary` bin dispatches CLI words to the CLI. Method: the server process in memory
// mode, a closed port for "server down", a bare HTTP/2 listener that records request headers,
// and `node scripts/tributary-dev.mjs` (the `tributary` command on these sources) spawned as a user
// would run it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  createServer as createHttp2Server,
  type Http2Server,
  type ServerHttp2Session,
} from "node:http2";
import { createServer as createNetServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../../server/test/support/server-process.js";
import { runCaptured } from "./test-io.js";

const binPath = new URL("../../../scripts/tributary-dev.mjs", import.meta.url).pathname;
/** A spawned bin that has not exited by then is killed and the test fails. */
const binTimeoutMs = 30_000;

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/** Runs the real bin with `args`; resolves with its exit code and output. */
function runBin(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [binPath, ...args], {
    env: { ...(process.env as Record<string, string>), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`tributary ${args.join(" ")} did not exit in time:\n${stderr}`));
    }, binTimeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Asserts one `error:` line on stderr, matching `pattern`. */
function assertOneErrorLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, pattern);
}

/** Asserts an `error:` line followed by a `usage:` hint. */
function assertUsageError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 2, stderr);
  assert.match(lines[0]!, pattern);
  assert.match(lines[1]!, /^usage: tributary /);
}

describe("tributary CLI: errors, help, token and the bin", () => {
  let server: ServerProcess;
  let env: Record<string, string>;
  const run = (argv: string[], stdin?: string) =>
    runCaptured(argv, { env, ...(stdin !== undefined && { stdin }) });

  before(async () => {
    server = await startServer({ mode: "memory" });
    env = { S2_ACCOUNT_ENDPOINT: server.endpoint };
    assert.equal((await run(["create-basin", "cli-errors"])).code, 0);
    assert.equal((await run(["create-stream", "s2://cli-errors/s"])).code, 0);
  });
  after(async () => {
    await server.cleanup();
  });

  it("reports an unknown basin or stream in one line, exit 1", async () => {
    // (Listing the streams of an unknown basin is an empty list in lite, S2-API.md §6.4.)
    for (const argv of [
      ["get-basin-config", "no-such-basin"],
      ["create-stream", "s2://no-such-basin/s"],
      ["delete-basin", "no-such-basin"],
      ["check-tail", "s2://no-such-basin/s"],
    ]) {
      const result = await run(argv);
      assert.equal(result.code, 1, argv.join(" "));
      assertOneErrorLine(result.stderr, /^error: basin_not_found: .*no-such-basin/);
      assert.equal(result.stdout, "");
    }
    const append = await run(["append", "s2://no-such-basin/s"], "x\n");
    assert.equal(append.code, 1);
    assertOneErrorLine(append.stderr, /^error: basin_not_found: /);
    for (const argv of [
      ["read", "s2://cli-errors/nope"],
      ["read", "s2://cli-errors/nope", "--follow"],
      ["get-stream-config", "s2://cli-errors/nope"],
      ["fence", "s2://cli-errors/nope", "t"],
    ]) {
      const result = await run(argv);
      assert.equal(result.code, 1, argv.join(" "));
      assertOneErrorLine(result.stderr, /^error: stream_not_found: /);
    }
    const exists = await run(["create-basin", "cli-errors"]);
    assert.equal(exists.code, 1);
    assertOneErrorLine(exists.stderr, /^error: resource_already_exists: /);
    const shortName = await run(["create-basin", "short"]);
    assert.equal(shortName.code, 1);
    assertOneErrorLine(shortName.stderr, /^error: invalid: basin name/);
  });

  it("rejects bad URIs, flags and arguments with a usage hint, exit 2", async () => {
    const cases: [string[], RegExp][] = [
      [["read", "cli-errors/s"], /^error: bad stream URI `cli-errors\/s`: expected s2:\/\//],
      [["read", "http://cli-errors/s"], /^error: bad stream URI/],
      [["check-tail", "s2://cli-errors"], /^error: bad stream URI `s2:\/\/cli-errors`: no stream/],
      [["append", "s2:///s"], /^error: bad stream URI `s2:\/\/\/s`: no basin name/],
      [["get-basin-config", "s2://cli-errors/s"], /^error: bad basin URI/],
      [["list-streams", "https://cli-errors"], /^error: bad basin URI .*scheme must be s2:\/\//],
      [["create-basin"], /^error: missing argument <basin>/],
      [["fence", "s2://cli-errors/s"], /^error: missing argument <new-token>/],
      [["trim", "s2://cli-errors/s"], /^error: missing argument <trim-point>/],
      [["check-tail", "s2://cli-errors/s", "extra"], /^error: unexpected argument `extra`/],
      [["list-basins", "--bogus"], /^error: unknown flag `--bogus`/],
      [["read", "s2://cli-errors/s", "-z"], /^error: unknown flag `-z`/],
      [["read", "s2://cli-errors/s", "--count"], /^error: --count needs a value/],
      [["read", "s2://cli-errors/s", "--count", "ten"], /^error: --count must be a non-negative/],
      [["list-basins", "--limit", "0"], /^error: --limit must be a positive integer/],
      [["create-basin", "cli-errors-2", "--storage-class", "gold"], /^error: --storage-class must/],
      [["create-stream", "s2://cli-errors/t", "--retention-policy", "7x"], /duration like/],
      [["reconfigure-stream", "s2://cli-errors/s"], /^error: nothing to change/],
      [["reconfigure-basin", "cli-errors", "--create-stream-on-read=maybe"], /true or false/],
    ];
    for (const [argv, pattern] of cases) {
      const result = await run(argv);
      assert.equal(result.code, 2, `${argv.join(" ")}: ${result.stderr}`);
      assertUsageError(result.stderr, pattern);
    }
    const unknown = await run(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, "error: unknown command `frobnicate`\nusage: tributary --help\n");
    const badEndpoint = await runCaptured(["list-basins"], {
      env: { S2_ACCOUNT_ENDPOINT: "http://[bad" },
    });
    assert.equal(badEndpoint.code, 2);
    assert.match(badEndpoint.stderr, /^error: bad server endpoint/);
  });

  it("prints help and exits 0", async () => {
    const general = await run(["--help"]);
    assert.equal(general.code, 0);
    for (const name of ["serve", "list-basins", "append", "read", "fence", "trim", "bench"]) {
      assert.match(general.stdout, new RegExp(`^  ${name} `, "m"));
    }
    const topic = await run(["help", "read"]);
    assert.match(topic.stdout, /^usage: tributary read s2:\/\/basin\/stream/);
    assert.match(topic.stdout, /--follow/);
    const flag = await run(["append", "--help"]);
    assert.equal(flag.code, 0);
    assert.match(flag.stdout, /--format raw/);
    // `bench` is dispatched to client/src/bench/command.ts.
    const bench = await run(["bench", "--help"]);
    assert.equal(bench.code, 0, bench.stderr);
    assert.match(bench.stdout, /^usage: tributary bench /);
  });

  it("says the server cannot be reached, exit 3", async () => {
    const port = await closedPort();
    const down = { S2_ACCOUNT_ENDPOINT: `http://127.0.0.1:${port}` };
    for (const [argv, stdin] of [
      [["list-basins"], undefined],
      [["check-tail", "s2://cli-errors/s"], undefined],
      [["read", "s2://cli-errors/s", "--follow"], undefined],
      [["append", "s2://cli-errors/s"], "x\n"],
    ] as const) {
      const result = await runCaptured(argv, { env: down, ...(stdin !== undefined && { stdin }) });
      assert.equal(result.code, 3, `${argv.join(" ")}: ${result.stderr}`);
      assertOneErrorLine(
        result.stderr,
        new RegExp(`^error: cannot reach http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
      );
    }
  });

  it("sends S2_ACCESS_TOKEN as a bearer token", async () => {
    // The real server accepts the call with a token set.
    const withToken = await runCaptured(["list-basins", "--json"], {
      env: { S2_BASIN_ENDPOINT: `127.0.0.1:${server.port}`, S2_ACCESS_TOKEN: "cli-secret" },
    });
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.ok(JSON.parse(withToken.stdout).some((b: { name: string }) => b.name === "cli-errors"));
    // A bare HTTP/2 listener shows the header on the wire and answers with a plain Connect
    // error (no S2 code), which is printed with its Connect code.
    const seen: (string | undefined)[] = [];
    const probe: Http2Server = createHttp2Server((request, response) => {
      seen.push(request.headers.authorization);
      response.writeHead(401, { "content-type": "application/json" });
      response.end(JSON.stringify({ code: "unauthenticated", message: "probe says no" }));
    });
    // The client keeps its HTTP/2 connection open; `close` waits for it unless it is destroyed.
    const sessions = new Set<ServerHttp2Session>();
    probe.on("session", (session) => sessions.add(session));
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    try {
      const address = probe.address();
      assert.ok(address !== null && typeof address === "object");
      const result = await runCaptured(["get-basin-config", "cli-errors"], {
        env: { S2_ACCOUNT_ENDPOINT: `http://127.0.0.1:${address.port}`, S2_ACCESS_TOKEN: "t0k" },
      });
      assert.equal(result.code, 1);
      assertOneErrorLine(result.stderr, /^error: unauthenticated: probe says no$/);
      assert.deepEqual(seen, ["Bearer t0k"]);
    } finally {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }
  });

  it("runs CLI commands through the tributary bin", async () => {
    const listed = await runBin(["list-basins"], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^cli-errors\tactive\t/m);
    const help = await runBin(["--help"], env);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^ {2}serve /m);
    assert.match(help.stdout, /^ {2}list-basins /m);
    const missing = await runBin(["check-tail", "s2://cli-errors/nope"], env);
    assert.equal(missing.code, 1);
    assertOneErrorLine(missing.stderr, /^error: stream_not_found: /);
    const port = await closedPort();
    const down = await runBin(["list-basins"], { S2_ACCOUNT_ENDPOINT: `http://127.0.0.1:${port}` });
    assert.equal(down.code, 3);
    assertOneErrorLine(down.stderr, /^error: cannot reach /);
    // A followed read ends with Ctrl-C and exit 0.
    assert.equal((await run(["append", "s2://cli-errors/s"], "live\n")).code, 0);
    const follower = spawn(process.execPath, [binPath, "read", "s2://cli-errors/s", "--follow"], {
      env: { ...(process.env as Record<string, string>), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => follower.once("exit", resolve));
    let followed = "";
    follower.stdout.on("data", (chunk: Buffer) => {
      followed += chunk.toString();
    });
    const deadline = Date.now() + binTimeoutMs;
    while (!followed.includes("live\n") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    follower.kill("SIGINT");
    const timer = setTimeout(() => follower.kill("SIGKILL"), binTimeoutMs);
    assert.equal(await exited, 0);
    clearTimeout(timer);
    assert.equal(followed, "live\n");
    const serveHelp = await runBin(["serve", "--help"], env);
    assert.equal(serveHelp.code, 0);
    assert.match(serveHelp.stdout, /^usage: tributary serve/);
  });
});
