// Goal: access tokens behave as S2 documents them (S2-API.md §4.4, docs/design/auth.md): the
// official SDK issues, lists and revokes them and works with an issued token within its scope;
// issuing never escalates (operations, resources, expiry); ids are unique even under concurrent
// issues; `auto_prefix_streams` namespaces streams end to end (create, list stripped, unary and
// S2S appends, reads). Method: the real server process with a root token, driven by
// `@s2-dev/streamstore` and raw fetch for exact statuses.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AppendInput, AppendRecord, type S2, S2Error } from "@s2-dev/streamstore";
import { Operation } from "@tributary/protocol/gen/tributary/v1/access_token_pb.js";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { AccountMetricSet } from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const rootToken = "tokens-root-token";
let server: ServerProcess;
let root: S2;

async function rest(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
  const response = await fetch(`${server.endpoint}${path}`, {
    method,
    headers: {
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    json: text === "" ? undefined : (JSON.parse(text) as Record<string, unknown>),
  };
}

async function issue(token: string, body: Record<string, unknown>): Promise<string> {
  const { status, json } = await rest("POST", "/v1/access-tokens", token, body);
  assert.equal(status, 201, JSON.stringify(json));
  return json?.["access_token"] as string;
}

async function expectStatus(
  call: Promise<{ status: number; json: Record<string, unknown> | undefined }>,
  status: number,
  code: string,
): Promise<void> {
  const { status: actual, json } = await call;
  assert.equal(actual, status, JSON.stringify(json));
  assert.equal(json?.["code"], code);
}

async function expectSdkError(promise: Promise<unknown>, status: number): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S2Error, String(error));
    assert.equal(error.status, status, error.message);
    return true;
  });
}

before(async () => {
  server = await startServer({ mode: "memory", rootToken });
  root = s2ClientFor(server);
});

after(async () => {
  await server?.cleanup();
});

describe("access tokens through the official SDK", () => {
  it("issues, lists, uses and revokes a token", async () => {
    await root.basins.create({ basin: "sdk-tokens-basin" });
    const { accessToken } = await root.accessTokens.issue({
      id: "sdk-writer",
      scope: {
        basins: { exact: "sdk-tokens-basin" },
        streams: { prefix: "" },
        opGroups: { basin: { read: true, write: true }, stream: { read: true, write: true } },
      },
    });
    assert.match(accessToken, /^tb_at_[A-Za-z0-9_-]{43}$/);

    const listed = await root.accessTokens.list({ prefix: "sdk-" });
    assert.deepEqual(
      listed.accessTokens.map((token) => token.id),
      ["sdk-writer"],
    );
    const [info] = listed.accessTokens;
    assert.equal(info?.autoPrefixStreams, false);
    assert.equal(info?.expiresAt ?? null, null);
    assert.deepEqual(info?.scope.basins, { exact: "sdk-tokens-basin" });
    assert.deepEqual(info?.scope.opGroups?.stream, { read: true, write: true });

    const writer = s2ClientFor(server, accessToken);
    const basin = writer.basin("sdk-tokens-basin");
    await basin.streams.create({ stream: "events" });
    const stream = basin.stream("events");
    try {
      const ack = await stream.append(AppendInput.create([AppendRecord.string({ body: "one" })]));
      assert.equal(ack.start.seqNum, 0);
      const batch = await stream.read({ start: { from: { seqNum: 0 } } });
      assert.deepEqual(
        batch.records.map((record) => record.body),
        ["one"],
      );
      // Out of scope: no account operations, and another basin.
      await expectSdkError(writer.basins.list(), 403);
      await expectSdkError(writer.basin("other-basin-x").streams.list(), 403);

      await root.accessTokens.revoke({ id: "sdk-writer" });
      await expectSdkError(stream.checkTail(), 401);
      await expectSdkError(root.accessTokens.revoke({ id: "sdk-writer" }), 404);
    } finally {
      await stream.close();
    }
  });

  it("pages through tokens with prefix, start_after and limit", async () => {
    for (const id of ["page-a", "page-b", "page-c"]) {
      await root.accessTokens.issue({ id, scope: { ops: ["read"] } });
    }
    const first = await root.accessTokens.list({ prefix: "page-", limit: 2 });
    assert.deepEqual(
      first.accessTokens.map((token) => token.id),
      ["page-a", "page-b"],
    );
    assert.equal(first.hasMore, true);
    const second = await root.accessTokens.list({ prefix: "page-", startAfter: "page-b" });
    assert.deepEqual(
      second.accessTokens.map((token) => token.id),
      ["page-c"],
    );
    assert.equal(second.hasMore, false);
    const all: string[] = [];
    for await (const token of root.accessTokens.listAll({ prefix: "page-", limit: 1 })) {
      all.push(token.id);
    }
    assert.deepEqual(all, ["page-a", "page-b", "page-c"]);
  });
});

describe("issuing rules", () => {
  it("rejects an empty scope, a duplicate id and bad ids", async () => {
    await expectStatus(
      rest("POST", "/v1/access-tokens", rootToken, { id: "empty-scope", scope: {} }),
      422,
      "invalid",
    );
    await issue(rootToken, { id: "dup", scope: { ops: ["read"] } });
    await expectStatus(
      rest("POST", "/v1/access-tokens", rootToken, { id: "dup", scope: { ops: ["read"] } }),
      409,
      "resource_already_exists",
    );
    await issue(rootToken, { id: "a".repeat(96), scope: { ops: ["read"] } });
    for (const id of ["", "a".repeat(97)]) {
      await expectStatus(
        rest("POST", "/v1/access-tokens", rootToken, { id, scope: { ops: ["read"] } }),
        400,
        "bad_json",
      );
    }
    await expectStatus(
      rest("POST", "/v1/access-tokens", rootToken, { id: "bad-op", scope: { ops: ["fly"] } }),
      400,
      "bad_json",
    );
  });

  it("lets exactly one of two concurrent issues of one id succeed", async () => {
    const results = await Promise.all(
      [0, 1].map(() =>
        rest("POST", "/v1/access-tokens", rootToken, { id: "race", scope: { ops: ["read"] } }),
      ),
    );
    assert.deepEqual(results.map((result) => result.status).sort(), [201, 409]);
  });

  it("never issues more than the issuer holds", async () => {
    const parent = await issue(rootToken, {
      id: "parent",
      scope: {
        basins: { prefix: "team-" },
        access_tokens: { prefix: "kid-" },
        ops: ["read", "issue-access-token", "list-access-tokens", "revoke-access-token"],
      },
    });
    await issue(parent, {
      id: "kid-reader",
      scope: { basins: { exact: "team-x1" }, ops: ["read"] },
    });
    for (const [id, scope] of [
      ["kid-appender", { ops: ["append"] }],
      ["kid-groups", { op_groups: { stream: { read: true } } }],
      ["kid-wide", { basins: { prefix: "" }, ops: ["read"] }],
    ] as const) {
      await expectStatus(
        rest("POST", "/v1/access-tokens", parent, { id, scope }),
        403,
        "permission_denied",
      );
    }
    // Its own token ids only, for issuing, listing and revoking.
    await expectStatus(
      rest("POST", "/v1/access-tokens", parent, { id: "other", scope: { ops: ["read"] } }),
      403,
      "permission_denied",
    );
    const { json } = await rest("GET", "/v1/access-tokens", parent);
    assert.deepEqual(
      ((json?.["access_tokens"] ?? []) as { id: string }[]).map((token) => token.id),
      ["kid-reader"],
    );
    await expectStatus(
      rest("DELETE", "/v1/access-tokens/parent", parent),
      403,
      "permission_denied",
    );
    await expectStatus(
      rest("DELETE", "/v1/access-tokens/kid-none", parent),
      404,
      "access_token_not_found",
    );
    assert.equal((await rest("DELETE", "/v1/access-tokens/kid-reader", parent)).status, 204);
  });

  it("defaults and caps the expiry at the issuer's, and rejects a past one", async () => {
    const parentExpiry = new Date(Date.now() + 3_600_000);
    const parent = await issue(rootToken, {
      id: "mortal",
      scope: { access_tokens: { prefix: "mortal-" }, ops: ["read", "issue-access-token"] },
      expires_at: parentExpiry.toISOString(),
    });
    await issue(parent, { id: "mortal-default", scope: { ops: ["read"] } });
    await issue(parent, {
      id: "mortal-later",
      scope: { ops: ["read"] },
      expires_at: new Date(parentExpiry.getTime() + 3_600_000).toISOString(),
    });
    const sooner = new Date(Date.now() + 60_000);
    await issue(parent, {
      id: "mortal-sooner",
      scope: { ops: ["read"] },
      expires_at: sooner.toISOString(),
    });
    await expectStatus(
      rest("POST", "/v1/access-tokens", parent, {
        id: "mortal-past",
        scope: { ops: ["read"] },
        expires_at: new Date(Date.now() - 60_000).toISOString(),
      }),
      422,
      "invalid",
    );
    const listed = await root.accessTokens.list({ prefix: "mortal-" });
    const expiries = Object.fromEntries(
      listed.accessTokens.map((token) => [token.id, token.expiresAt?.getTime()]),
    );
    assert.deepEqual(expiries, {
      "mortal-default": parentExpiry.getTime(),
      "mortal-later": parentExpiry.getTime(),
      "mortal-sooner": sooner.getTime(),
    });
  });

  it("needs a prefix stream scope for auto_prefix_streams", async () => {
    for (const streams of [null, { exact: "s" }]) {
      await expectStatus(
        rest("POST", "/v1/access-tokens", rootToken, {
          id: "auto-bad",
          scope: { streams, ops: ["read"] },
          auto_prefix_streams: true,
        }),
        422,
        "invalid",
      );
    }
  });

  it("lets a token revoke itself", async () => {
    const self = await issue(rootToken, {
      id: "self-revoker",
      scope: { access_tokens: { exact: "self-revoker" }, ops: ["revoke-access-token"] },
    });
    assert.equal((await rest("DELETE", "/v1/access-tokens/self-revoker", self)).status, 204);
    await expectStatus(rest("GET", "/v1/basins", self), 401, "authn");
  });
});

/** An `AccountService` client over Connect, binary: JSON cannot carry an out-of-range timestamp. */
function accountClient(token: string) {
  return createClient(
    AccountService,
    createConnectTransport({
      baseUrl: server.endpoint,
      httpVersion: "1.1",
      useBinaryFormat: true,
      interceptors: [
        (next) => (request) => {
          request.header.set("authorization", `Bearer ${token}`);
          return next(request);
        },
      ],
    }),
  );
}

async function expectRpcError(promise: Promise<unknown>, code: Code, s2Code: string) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.metadata.get("s2-error-code"), s2Code);
    return true;
  });
}

describe("expiry bounds", () => {
  it("rejects an RPC expiry that is no time, and clamps a later one to the issuer's", async () => {
    const parentExpiryMs = Math.floor(Date.now() / 1000) * 1000 + 3_600_000;
    const parent = await issue(rootToken, {
      id: "rpc-mortal",
      scope: { access_tokens: { prefix: "rpc-mortal-" }, ops: ["read", "issue-access-token"] },
      expires_at: new Date(parentExpiryMs).toISOString(),
    });
    const client = accountClient(parent);
    const scope = { ops: [Operation.READ] };
    const nowSeconds = BigInt(Math.floor(Date.now() / 1000));
    for (const [id, expiresAt] of [
      // Beyond the JS Date range: NaN before the fix, a token that never expired.
      ["rpc-mortal-far", { seconds: 10n ** 15n, nanos: 0 }],
      ["rpc-mortal-far-past", { seconds: -(10n ** 15n), nanos: 0 }],
      ["rpc-mortal-nanos", { seconds: nowSeconds + 60n, nanos: -1 }],
      ["rpc-mortal-nanos-big", { seconds: nowSeconds + 60n, nanos: 1_000_000_000 }],
      // Year 10000: a time, but not one RFC 3339 or a protobuf Timestamp can show.
      ["rpc-mortal-10000", { seconds: 253_402_300_800n, nanos: 0 }],
      ["rpc-mortal-past", { seconds: nowSeconds - 60n, nanos: 0 }],
    ] as const) {
      await expectRpcError(
        client.issueAccessToken({ info: { id, scope, expiresAt } }),
        Code.InvalidArgument,
        "invalid",
      );
    }
    await client.issueAccessToken({
      info: { id: "rpc-mortal-later", scope, expiresAt: { seconds: nowSeconds + 7_200n } },
    });
    const sooner = nowSeconds + 60n;
    await client.issueAccessToken({
      info: { id: "rpc-mortal-sooner", scope, expiresAt: { seconds: sooner } },
    });
    const { accessTokens } = await accountClient(rootToken).listAccessTokens({
      prefix: "rpc-mortal-",
    });
    assert.deepEqual(
      Object.fromEntries(
        accessTokens.map((token) => [token.id, token.expiresAt && timestampMs(token.expiresAt)]),
      ),
      { "rpc-mortal-later": parentExpiryMs, "rpc-mortal-sooner": Number(sooner) * 1000 },
    );
  });

  it("rejects REST dates that do not exist or lie past year 9999, and keeps 9999-12-31", async () => {
    for (const expiresAt of [
      "2099-02-30T00:00:00Z",
      "2099-01-01T24:00:00Z",
      "2099-12-31T23:59:60Z",
      "2099-01-01T10:00:00+23:60",
    ]) {
      await expectStatus(
        rest("POST", "/v1/access-tokens", rootToken, {
          id: "rest-bad-date",
          scope: { ops: ["read"] },
          expires_at: expiresAt,
        }),
        400,
        "bad_json",
      );
    }
    // A real instant, but in year 10000 once the offset is applied.
    await expectStatus(
      rest("POST", "/v1/access-tokens", rootToken, {
        id: "rest-year-10000",
        scope: { ops: ["read"] },
        expires_at: "9999-12-31T23:59:59-23:59",
      }),
      422,
      "invalid",
    );
    await issue(rootToken, {
      id: "rest-last-day",
      scope: { ops: ["read"] },
      expires_at: "9999-12-31T23:59:59Z",
    });
    const { json } = await rest("GET", "/v1/access-tokens?prefix=rest-", rootToken);
    assert.deepEqual(
      ((json?.["access_tokens"] ?? []) as { id: string; expires_at: string }[]).map((token) => [
        token.id,
        token.expires_at,
      ]),
      [["rest-last-day", "9999-12-31T23:59:59.000Z"]],
    );
  });
});

describe("account metrics in scope", () => {
  it("lists only the token's basins in active-basins, over REST and RPC", async () => {
    const mine = "scoped-metrics-aaaa";
    const theirs = "scoped-metrics-bbbb";
    for (const basin of [mine, theirs]) {
      await root.basins.create({ basin });
      await root.basin(basin).streams.create({ stream: "s" });
    }
    const scoped = await issue(rootToken, {
      id: "metrics-one-basin",
      scope: { basins: { exact: mine }, ops: ["account-metrics", "list-basins"] },
    });
    // End one second ahead (within S2's leeway) so the streams created this second are in range.
    const endSec = Math.floor(Date.now() / 1000) + 1;
    const startSec = endSec - 3600;
    const activeOverRest = async (token: string): Promise<string[]> => {
      const { status, json } = await rest(
        "GET",
        `/v1/metrics?set=active-basins&start=${startSec}&end=${endSec}`,
        token,
      );
      assert.equal(status, 200, JSON.stringify(json));
      const values = json?.["values"] as { label: { name: string; values: string[] } }[];
      assert.equal(values.length, 1);
      assert.equal(values[0]?.label.name, "active-basins");
      return values[0]?.label.values ?? [];
    };
    const activeOverRpc = async (token: string): Promise<string[]> => {
      const { values } = await accountClient(token).getAccountMetrics({
        set: AccountMetricSet.ACTIVE_BASINS,
        start: startSec,
        end: endSec,
      });
      assert.equal(values.length, 1);
      const metric = values[0]?.metric;
      assert.equal(metric?.case, "label");
      return metric?.case === "label" ? metric.value.values : [];
    };
    for (const active of [activeOverRest, activeOverRpc]) {
      const seenByRoot = await active(rootToken);
      assert.ok(seenByRoot.includes(mine) && seenByRoot.includes(theirs), String(seenByRoot));
      assert.deepEqual(await active(scoped), [mine]);
    }
    // The same names the token's basin listing shows.
    const { json } = await rest("GET", "/v1/basins", scoped);
    assert.deepEqual(
      ((json?.["basins"] ?? []) as { name: string }[]).map((basin) => basin.name),
      [mine],
    );
  });
});

describe("auto_prefix_streams", () => {
  it("namespaces stream names for create, list, append (unary and S2S) and read", async () => {
    const basinName = "tenant-basin-1";
    await root.basins.create({ basin: basinName });
    await root.basin(basinName).streams.create({ stream: "tenant-b/private" });
    const { accessToken } = await root.accessTokens.issue({
      id: "tenant-a",
      scope: {
        basins: { exact: basinName },
        streams: { prefix: "tenant-a/" },
        opGroups: { basin: { read: true, write: true }, stream: { read: true, write: true } },
      },
      autoPrefixStreams: true,
    });
    const tenant = s2ClientFor(server, accessToken).basin(basinName);
    const created = await tenant.streams.create({ stream: "events" });
    assert.equal(created.name, "events");

    const seenByTenant = await tenant.streams.list();
    assert.deepEqual(
      seenByTenant.streams.map((stream) => stream.name),
      ["events"],
    );
    const byPrefix = await tenant.streams.list({ prefix: "ev" });
    assert.deepEqual(
      byPrefix.streams.map((stream) => stream.name),
      ["events"],
    );
    const seenByRoot = await root.basin(basinName).streams.list();
    assert.deepEqual(
      seenByRoot.streams.map((stream) => stream.name),
      ["tenant-a/events", "tenant-b/private"],
    );

    const stream = tenant.stream("events");
    try {
      await stream.append(AppendInput.create([AppendRecord.string({ body: "unary" })]));
      const session = await stream.appendSession();
      const ticket = await session.submit(
        AppendInput.create([AppendRecord.string({ body: "session" })]),
      );
      assert.equal((await ticket.ack()).start.seqNum, 1);
      await session.close();
      const batch = await stream.read({ start: { from: { seqNum: 0 } } });
      assert.deepEqual(
        batch.records.map((record) => record.body),
        ["unary", "session"],
      );
      assert.equal((await stream.checkTail()).tail.seqNum, 2);
    } finally {
      await stream.close();
    }
    const fromRoot = root.basin(basinName).stream("tenant-a/events");
    try {
      const batch = await fromRoot.read({ start: { from: { seqNum: 0 } } });
      assert.deepEqual(
        batch.records.map((record) => record.body),
        ["unary", "session"],
      );
    } finally {
      await fromRoot.close();
    }
    // The other tenant's stream is out of reach: the name the tenant gives is prefixed.
    const { status } = await fetch(
      `${server.endpoint}/v1/streams/${encodeURIComponent("tenant-b/private")}`,
      { headers: { authorization: `Bearer ${accessToken}`, "s2-basin": basinName } },
    );
    assert.equal(status, 404);
  });
});

const mainPath = new URL("../../src/main.ts", import.meta.url).pathname;
const startTimeoutMs = 30_000;

/**
 * Starts `tributary serve` with no auth flag (startServer always passes one) and waits for its
 * ready lines; returns the endpoint, the printed `S2_ACCESS_TOKEN` and the process.
 */
async function startWithoutAuthFlags(
  env: Record<string, string>,
): Promise<{ endpoint: string; printedToken: string; child: ChildProcess; cacheDir: string }> {
  const cacheDir = await mkdtemp(join(tmpdir(), "tributary-auth-flags-"));
  const child = spawn(
    process.execPath,
    ["--import", "tsx", mainPath, "serve", "--port", "0", "--cache-dir", cacheDir],
    {
      env: { ...(process.env as Record<string, string>), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const ready = await new Promise<{ port: string; token: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready:\n${output}`)), startTimeoutMs);
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const port = /ready on port (\d+)/.exec(output)?.[1];
      const token = /export S2_ACCESS_TOKEN=(\S+)/.exec(output)?.[1];
      if (port !== undefined && token !== undefined) {
        clearTimeout(timer);
        resolve({ port, token });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}:\n${output}`));
    });
  });
  return {
    endpoint: `http://127.0.0.1:${ready.port}`,
    printedToken: ready.token,
    child,
    cacheDir,
  };
}

async function stopChild(started: { child: ChildProcess; cacheDir: string }): Promise<void> {
  if (started.child.exitCode === null && started.child.signalCode === null) {
    const exited = new Promise((resolve) => started.child.once("exit", resolve));
    started.child.kill("SIGKILL");
    await exited;
  }
  await rm(started.cacheDir, { recursive: true, force: true });
}

/** Runs `tributary serve` expecting it to refuse to start; returns its exit code and stderr. */
async function startRefused(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const cacheDir = await mkdtemp(join(tmpdir(), "tributary-auth-refused-"));
  const child = spawn(
    process.execPath,
    ["--import", "tsx", mainPath, "serve", "--port", "0", "--cache-dir", cacheDir, ...args],
    {
      env: { ...(process.env as Record<string, string>), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`still running:\n${stderr}`));
      }, startTimeoutMs);
      child.once("exit", (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    return { code, stderr };
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

describe("the root token", () => {
  it("is refused at start when no bearer header could carry it", async () => {
    for (const [args, env] of [
      [["--root-token", "two words"], {}],
      [["--root-token", " padded"], {}],
      [["--root-token", "caf\u00e9"], {}],
      [[], { TRIBUTARY_ROOT_TOKEN: "tab\there" }],
    ] as const) {
      const { code, stderr } = await startRefused(args, env);
      assert.equal(code, 2, stderr);
      assert.match(stderr, /root token must be visible ASCII characters without whitespace/);
    }
  });

  it("is generated and printed when none is given", async () => {
    const started = await startWithoutAuthFlags({ TRIBUTARY_ROOT_TOKEN: "" });
    try {
      assert.match(started.printedToken, /^tb_at_[A-Za-z0-9_-]{43}$/);
      const open = await fetch(`${started.endpoint}/v1/basins`);
      assert.equal(open.status, 401);
      const authorized = await fetch(`${started.endpoint}/v1/basins`, {
        headers: { authorization: `Bearer ${started.printedToken}` },
      });
      assert.equal(authorized.status, 200);
    } finally {
      await stopChild(started);
    }
  });

  it("comes from TRIBUTARY_ROOT_TOKEN, and is then not printed", async () => {
    const started = await startWithoutAuthFlags({ TRIBUTARY_ROOT_TOKEN: "from-the-env" });
    try {
      assert.doesNotMatch(started.printedToken, /from-the-env/);
      const authorized = await fetch(`${started.endpoint}/v1/access-tokens`, {
        headers: { authorization: "Bearer from-the-env" },
      });
      assert.equal(authorized.status, 200);
      const listed = (await authorized.json()) as { access_tokens: unknown[] };
      assert.deepEqual(listed.access_tokens, [], "the root token is never listed");
    } finally {
      await stopChild(started);
    }
  });
});
