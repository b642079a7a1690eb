// Goal: unary calls are retried exactly when the server's error table allows it (retryable, and
// side-effect-free or idempotent), a bounded number of times, never after an abort, and never in
// a way that could apply an append twice. Method: the real server process, reached through a
// local TCP proxy that drops the connections we tell it to (failure injection only), with attempts
// counted by a Connect interceptor; and a real crash: the server kills itself after an append is
// durable but before it is acknowledged (failpoint `flush.after-put`), then restarts on its port.
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { type ServerProcess, startServer } from "../../server/test/support/server-process.js";
import { createTributaryClient, type TributaryClient } from "./client.js";
import {
  backoffMs,
  isRetrySafe,
  type RetryOptions,
  s2ErrorCodeMetadataKey,
  s2ErrorCodeOf,
} from "./retry.js";

const encoder = new TextEncoder();

/** A TCP proxy to `targetPort` that closes the next `drop(n)` connections as they arrive. */
interface DroppingProxy {
  readonly endpoint: string;
  /** Connections accepted so far, dropped ones included. */
  readonly connections: number;
  drop(count: number): void;
  close(): Promise<void>;
}

async function startDroppingProxy(targetPort: number): Promise<DroppingProxy> {
  let dropRemaining = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  };
  const server: Server = createServer((socket) => {
    connections += 1;
    track(socket);
    if (dropRemaining > 0) {
      dropRemaining -= 1;
      socket.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    track(upstream);
    socket.pipe(upstream).pipe(socket);
    socket.once("close", () => upstream.destroy());
    upstream.once("close", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    get connections() {
      return connections;
    },
    drop(count) {
      dropRemaining = count;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A fresh client (a fresh HTTP/2 connection) that counts the attempts of its calls. */
function countingClient(
  baseUrl: string,
  options: { retry?: RetryOptions | false; onFailure?: (error: unknown) => void } = {},
): { client: TributaryClient; attempts(): number } {
  let attempts = 0;
  const counter: Interceptor = (next) => async (request) => {
    attempts += 1;
    try {
      return await next(request);
    } catch (error) {
      options.onFailure?.(error);
      throw error;
    }
  };
  // The counter sits in the transport below the retries: one count per attempt.
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    interceptors: [counter],
  });
  const client = createTributaryClient({
    baseUrl,
    transport,
    ...(options.retry !== undefined && { retry: options.retry }),
  });
  return { client, attempts: () => attempts };
}

/** Resolves once the server process exited (by itself or killed). */
function exited(server: ServerProcess): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** The ConnectError a server renders for S2 code `code` (for the table rows below). */
function serverError(code: string, connectCode: Code): ConnectError {
  return new ConnectError("rendered", connectCode, new Headers({ [s2ErrorCodeMetadataKey]: code }));
}

const fast: RetryOptions = { initialBackoffMs: 5, maxBackoffMs: 20 };

describe("retry rule", () => {
  const checkTail = { method: StreamService.method.checkTail, input: { basin: "b", stream: "s" } };
  const append = {
    method: StreamService.method.append,
    input: { basin: "b", stream: "s", input: { records: [{}] } },
  };
  const appendMatched = {
    method: StreamService.method.append,
    input: { basin: "b", stream: "s", input: { records: [{}], matchSeqNum: 7n } },
  };
  const appendProduced = {
    method: StreamService.method.append,
    input: {
      basin: "b",
      stream: "s",
      input: { records: [{}] },
      producer: { id: "p", epoch: 0, seq: 3n },
    },
  };
  const create = { method: BasinService.method.createStream, input: { basin: "b", stream: "s" } };
  const createWithToken = {
    method: AccountService.method.createBasin,
    input: { basin: "basin-name", requestToken: "token-1" },
  };

  it("follows the error table row by row", () => {
    const storage = serverError("storage", Code.Internal);
    const rateLimited = serverError("rate_limited", Code.ResourceExhausted);
    const notFound = serverError("stream_not_found", Code.NotFound);
    const deletionPending = serverError("stream_deletion_pending", Code.Aborted);
    // Retryable, side effects unknown: only idempotent requests.
    assert.equal(isRetrySafe({ ...checkTail, error: storage }), true);
    assert.equal(isRetrySafe({ ...append, error: storage }), false);
    assert.equal(isRetrySafe({ ...appendMatched, error: storage }), true);
    assert.equal(isRetrySafe({ ...appendProduced, error: storage }), true);
    assert.equal(isRetrySafe({ ...create, error: storage }), false);
    assert.equal(isRetrySafe({ ...createWithToken, error: storage }), true);
    // Retryable and side-effect-free: every request.
    assert.equal(isRetrySafe({ ...append, error: rateLimited }), true);
    assert.equal(isRetrySafe({ ...create, error: rateLimited }), true);
    // Not retryable: no request, however safe.
    assert.equal(isRetrySafe({ ...checkTail, error: notFound }), false);
    // ABORTED by Connect code, but the table says deletion pending is final.
    assert.equal(isRetrySafe({ ...checkTail, error: deletionPending }), false);
  });

  it("treats a failure without an S2 code by its Connect code", () => {
    assert.equal(s2ErrorCodeOf(new ConnectError("refused", Code.Unavailable)), "unavailable");
    assert.equal(s2ErrorCodeOf(new TypeError("fetch failed")), "unavailable");
    assert.equal(s2ErrorCodeOf(new ConnectError("bad message", Code.InvalidArgument)), undefined);
    assert.equal(s2ErrorCodeOf(serverError("not-an-s2-code", Code.Unavailable)), undefined);
    const reset = new ConnectError("connection reset", Code.Aborted);
    assert.equal(isRetrySafe({ ...checkTail, error: reset }), true);
    assert.equal(isRetrySafe({ ...append, error: reset }), false);
  });

  it("backs off exponentially within the jitter and the cap", () => {
    const first = backoffMs(1, { initialBackoffMs: 100 });
    assert.ok(first >= 80 && first <= 120, String(first));
    const third = backoffMs(3, { initialBackoffMs: 100 });
    assert.ok(third >= 320 && third <= 480, String(third));
    const capped = backoffMs(30, { initialBackoffMs: 100, maxBackoffMs: 500 });
    assert.ok(capped >= 400 && capped <= 600, String(capped));
  });
});

describe("unary retries through a dropping proxy", { timeout: 60_000 }, () => {
  const basin = "retry-proxy-basin";
  let server: ServerProcess;
  let proxy: DroppingProxy;

  before(async () => {
    server = await startServer({ mode: "memory" });
    proxy = await startDroppingProxy(server.port);
    const setup = createTributaryClient({ baseUrl: server.endpoint });
    await setup.account.createBasin({ basin });
    await setup.basins.createStream({ basin, stream: "events" });
  });
  after(async () => {
    await proxy.close();
    await server.cleanup();
  });

  it("retries a side-effect-free call until the connection holds", async () => {
    const { client, attempts } = countingClient(proxy.endpoint, { retry: fast });
    const connectionsBefore = proxy.connections;
    proxy.drop(2);
    const tail = await client.basin(basin).stream("events").checkTail();
    assert.equal(tail.seqNum, 0n);
    assert.equal(attempts(), 3);
    assert.equal(proxy.connections - connectionsBefore, 3);
  });

  it("does not retry a non-retryable error", async () => {
    const { client, attempts } = countingClient(proxy.endpoint, { retry: fast });
    const error = await client.account.getBasinConfig({ basin: "no-such-basin" }).then(
      () => assert.fail("expected basin_not_found"),
      (error: unknown) => ConnectError.from(error),
    );
    assert.equal(error.code, Code.NotFound);
    assert.equal(error.metadata.get(s2ErrorCodeMetadataKey), "basin_not_found");
    assert.equal(attempts(), 1);
  });

  it("gives up after maxAttempts and surfaces the last failure", async () => {
    const { client, attempts } = countingClient(proxy.endpoint, {
      retry: { ...fast, maxAttempts: 3 },
    });
    proxy.drop(Number.POSITIVE_INFINITY);
    try {
      const error = await client.account.listBasins({}).then(
        () => assert.fail("expected a transport failure"),
        (error: unknown) => error,
      );
      assert.equal(s2ErrorCodeOf(error), "unavailable");
      assert.equal(attempts(), 3);
    } finally {
      proxy.drop(0);
    }
  });

  it("makes one attempt with retry: false", async () => {
    const { client, attempts } = countingClient(proxy.endpoint, { retry: false });
    proxy.drop(1);
    await assert.rejects(client.account.listBasins({}));
    assert.equal(attempts(), 1);
  });

  it("stops retrying once the call is aborted", async () => {
    const abort = new AbortController();
    const { client, attempts } = countingClient(proxy.endpoint, {
      // A backoff far longer than the test: only the abort can end the wait.
      retry: { initialBackoffMs: 600_000, maxAttempts: 10 },
      onFailure: () => setImmediate(() => abort.abort()),
    });
    proxy.drop(Number.POSITIVE_INFINITY);
    try {
      const error = await client.account.listBasins({}, { signal: abort.signal }).then(
        () => assert.fail("expected the abort"),
        (error: unknown) => ConnectError.from(error),
      );
      assert.equal(error.code, Code.Canceled);
      assert.equal(attempts(), 1);
    } finally {
      proxy.drop(0);
    }
  });

  it("does not resend an append whose failure may have had a side effect", async () => {
    const { client, attempts } = countingClient(proxy.endpoint, { retry: fast });
    proxy.drop(1);
    const records = [{ body: encoder.encode("once") }];
    const error = await client.streams.append({ basin, stream: "events", input: { records } }).then(
      () => assert.fail("expected the dropped connection"),
      (error: unknown) => error,
    );
    assert.equal(s2ErrorCodeOf(error), "unavailable");
    assert.equal(attempts(), 1);
  });

  it("resends an append that carries matchSeqNum", async () => {
    const { client, attempts } = countingClient(proxy.endpoint, { retry: fast });
    const stream = client.basin(basin).stream("events");
    const before = (await stream.checkTail()).seqNum;
    proxy.drop(1);
    const { client: retrying, attempts: appendAttempts } = countingClient(proxy.endpoint, {
      retry: fast,
    });
    const records = [{ body: encoder.encode("a") }, { body: encoder.encode("b") }];
    const { ack } = await retrying.streams.append({
      basin,
      stream: "events",
      input: { records, matchSeqNum: before },
    });
    assert.equal(appendAttempts(), 2);
    assert.equal(ack?.start?.seqNum, before);
    assert.equal((await stream.checkTail()).seqNum, before + 2n);
    assert.equal(attempts(), 2);
  });

  it("resends a create only when it carries a request token", async () => {
    const plain = countingClient(proxy.endpoint, { retry: fast });
    proxy.drop(1);
    await assert.rejects(plain.client.basins.createStream({ basin, stream: "plain" }));
    assert.equal(plain.attempts(), 1);

    const tokened = countingClient(proxy.endpoint, { retry: fast });
    proxy.drop(1);
    const response = await tokened.client.basins.createStream({
      basin,
      stream: "tokened",
      requestToken: "retry-test-token",
    });
    assert.equal(response.info?.name, "tokened");
    assert.equal(tokened.attempts(), 2);
  });
});

describe("unary retries across a server crash", { timeout: 90_000 }, () => {
  const basin = "retry-crash-basin";
  const servers: ServerProcess[] = [];
  let isOver = false;

  after(async () => {
    isOver = true;
    for (const server of servers.reverse()) await server.cleanup();
  });

  /**
   * Keeps `server` for the cleanup. A suite that timed out runs `after` while its test goes on: a
   * server started after that is killed at once (it would hold the runner for ever).
   */
  async function track(server: ServerProcess): Promise<ServerProcess> {
    servers.push(server);
    if (isOver) {
      await server.cleanup();
      throw new Error("the suite is over (timed out): a server started after its cleanup");
    }
    return server;
  }

  /** Restarts the server on the same port and storage, without failpoints. */
  async function restart(crashed: ServerProcess): Promise<ServerProcess> {
    await exited(crashed);
    const again = await startServer({
      mode: "local",
      localRoot: crashed.localRoot!,
      cacheDir: crashed.cacheDir,
      args: ["--port", String(crashed.port)],
    });
    return track(again);
  }

  /** A server whose next WAL flush kills it after the segment is durable, before the ack. */
  async function crashingServer(): Promise<ServerProcess> {
    const setup = await startServer({ mode: "local" });
    await track(setup);
    const client = createTributaryClient({ baseUrl: setup.endpoint });
    await client.account.createBasin({ basin });
    await client.basins.createStream({ basin, stream: "plain" });
    await client.basins.createStream({ basin, stream: "matched" });
    return restartCrashing(setup);
  }

  /** Stops the server and starts it again on its port and storage, to die at its next flush. */
  async function restartCrashing(running: ServerProcess): Promise<ServerProcess> {
    await running.stop();
    const crashing = await startServer({
      mode: "local",
      localRoot: running.localRoot!,
      cacheDir: running.cacheDir,
      args: ["--port", String(running.port)],
      env: { TRIBUTARY_FAILPOINTS: "flush.after-put=kill@1" },
    });
    return track(crashing);
  }

  // Backoff capped low and many attempts, so that a retry lands soon after the restart.
  const acrossRestart: RetryOptions = { initialBackoffMs: 20, maxBackoffMs: 200, maxAttempts: 200 };

  it("never resends an ambiguous append, and resends a matched or produced one without duplicating", async () => {
    let server = await crashingServer();
    const plain = countingClient(server.endpoint, { retry: acrossRestart });
    const records = [{ body: encoder.encode("x") }, { body: encoder.encode("y") }];
    // The server dies after making the append durable: the client cannot know it was applied.
    const error = await plain.client.streams
      .append({ basin, stream: "plain", input: { records } })
      .then(
        () => assert.fail("expected the crash"),
        (error: unknown) => error,
      );
    assert.equal(s2ErrorCodeOf(error), "unavailable");
    assert.equal(plain.attempts(), 1);

    // A side-effect-free call is retried while the server is down and succeeds after the restart.
    const tailWhileDown = plain.client.basin(basin).stream("plain").checkTail();
    tailWhileDown.catch(() => {}); // Awaited below; a failed restart must not leave it unhandled.
    server = await restart(server);
    assert.equal((await tailWhileDown).seqNum, 2n, "the unacknowledged append was applied");
    assert.ok(plain.attempts() > 2, `checkTail attempts: ${plain.attempts() - 1}`);

    // Again with matchSeqNum: the resend after the restart fails its condition, no duplicate.
    server = await restartCrashing(server);
    const matched = countingClient(server.endpoint, { retry: acrossRestart });
    const pending = matched.client.streams
      .append({ basin, stream: "matched", input: { records, matchSeqNum: 0n } })
      .then(
        () => assert.fail("expected the condition to fail on the resend"),
        (error: unknown) => ConnectError.from(error),
      );
    server = await restart(server);
    const conditionFailed = await pending;
    assert.equal(conditionFailed.code, Code.FailedPrecondition);
    assert.equal(conditionFailed.metadata.get("s2-seq-num-mismatch"), "2");
    assert.ok(matched.attempts() >= 2);
    const after = createTributaryClient({ baseUrl: server.endpoint });
    assert.equal((await after.basin(basin).stream("matched").checkTail()).seqNum, 2n);

    // Again with a producer: the resend after the restart gets the first ack, one copy.
    server = await restartCrashing(server);
    const produced = countingClient(server.endpoint, { retry: acrossRestart });
    const producer = { id: "retry-test", epoch: 1, seq: 0n };
    const resent = produced.client.streams.append({
      basin,
      stream: "matched",
      input: { records },
      producer,
    });
    resent.catch(() => {}); // awaited below, after the restart
    server = await restart(server);
    const { ack } = await resent;
    assert.equal(ack?.start?.seqNum, 2n, "the first attempt's position");
    assert.ok(produced.attempts() >= 2, `append attempts: ${produced.attempts()}`);
    const final = createTributaryClient({ baseUrl: server.endpoint });
    assert.equal((await final.basin(basin).stream("matched").checkTail()).seqNum, 4n, "one copy");
  });
});
