// Goal: every REST route and every RPC checks the bearer token against its scope (docs/design/
// auth.md): in scope it works; a token without the operation, or naming a resource out of scope,
// gets 403 `permission_denied`; an expired, revoked or missing token gets 401 `authn`. Method: the
// real server process with a root token; per route and method, tokens issued with exactly the
// route's operations (or all others), raw fetch for REST (JSON, SSE) and connect-node clients for
// the RPCs, asserting the exact status / Connect code and S2 error code every time.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AppendInput, AppendRecord, S2Error as SdkError } from "@s2-dev/streamstore";
import { AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import {
  AccountMetricSet,
  BasinMetricSet,
  StreamMetricSet,
} from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import {
  AppendSessionRequestSchema,
  StreamService,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { type Operation, operations } from "../../src/core/operations.js";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const rootToken = "matrix-root-token";
const inBasin = "in-basin-matrix";
const outBasin = "out-basin-matrix";
/** How long the expiring token lives: enough to issue it, then it is waited out. */
const expiringLifetimeMs = 1_500;
const utf8 = new TextEncoder();

let server: ServerProcess;
let expiredToken: string;
let revokedToken: string;
let counter = 0;
const unique = (): number => ++counter;

async function rest(
  method: string,
  path: string,
  options: { token?: string | undefined; basin?: string; body?: unknown; accept?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers["authorization"] = `Bearer ${options.token}`;
  if (options.basin !== undefined) headers["s2-basin"] = options.basin;
  if (options.accept !== undefined) headers["accept"] = options.accept;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${server.endpoint}${path}`, {
    method,
    headers,
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
}

/** Issues a token with the root token; returns its secret. */
async function issue(body: Record<string, unknown>): Promise<string> {
  const response = await rest("POST", "/v1/access-tokens", { token: rootToken, body });
  assert.equal(response.status, 201, await response.clone().text());
  return ((await response.json()) as { access_token: string }).access_token;
}

const everything = { prefix: "" };

/** A token with exactly `ops`, on the `in-` basins, `in/` streams and `in-` token ids. */
function inScopeToken(ops: readonly Operation[]): Promise<string> {
  return issue({
    id: `matrix-in-${unique()}`,
    scope: {
      basins: { prefix: "in-" },
      streams: { prefix: "in/" },
      access_tokens: { prefix: "in-" },
      ops,
    },
  });
}

/** A token with every operation but `ops`, on everything. */
function withoutOpsToken(ops: readonly Operation[]): Promise<string> {
  return issue({
    id: `matrix-without-${unique()}`,
    scope: {
      basins: everything,
      streams: everything,
      access_tokens: everything,
      ops: operations.filter((operation) => !ops.includes(operation)),
    },
  });
}

async function expectError(response: Response, status: number, code: string): Promise<void> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.equal((JSON.parse(text) as { code: string }).code, code);
}

type Side = "in" | "out";

interface RestCase {
  readonly name: string;
  readonly ops: readonly Operation[];
  /** Whether the call names a basin, stream or token id that can be out of scope. */
  readonly hasResource: boolean;
  /** Success status(es) in scope. */
  readonly ok: readonly number[];
  call(token: string | undefined, side: Side): Promise<Response>;
}

const basinOf = (side: Side): string => (side === "in" ? inBasin : outBasin);
const streamOf = (side: Side, name: string): string => encodeURIComponent(`${side}/${name}`);

/** The last hour, as the metrics routes take it (epoch seconds). */
function metricsWindow(): string {
  const endSecs = Math.floor(Date.now() / 1000);
  return `start=${endSecs - 3600}&end=${endSecs}`;
}

/** The last hour, as the metrics RPCs take it. */
function metricsRange(): { start: number; end: number } {
  const end = Math.floor(Date.now() / 1000);
  return { start: end - 3600, end };
}

const restCases: RestCase[] = [
  {
    name: "GET /v1/basins",
    ops: ["list-basins"],
    hasResource: false,
    ok: [200],
    call: (token) => rest("GET", "/v1/basins", { token }),
  },
  {
    name: "POST /v1/basins",
    ops: ["create-basin"],
    hasResource: true,
    ok: [201],
    call: (token, side) =>
      rest("POST", "/v1/basins", { token, body: { basin: `${side}-created-${unique()}` } }),
  },
  {
    name: "GET /v1/basins/{basin}",
    ops: ["get-basin-config"],
    hasResource: true,
    ok: [200],
    call: (token, side) => rest("GET", `/v1/basins/${basinOf(side)}`, { token }),
  },
  {
    name: "PUT /v1/basins/{basin}",
    ops: ["create-basin", "reconfigure-basin"],
    hasResource: true,
    ok: [200],
    call: (token, side) => rest("PUT", `/v1/basins/${basinOf(side)}`, { token }),
  },
  {
    name: "PATCH /v1/basins/{basin}",
    ops: ["reconfigure-basin"],
    hasResource: true,
    ok: [200],
    call: (token, side) => rest("PATCH", `/v1/basins/${basinOf(side)}`, { token, body: {} }),
  },
  {
    name: "DELETE /v1/basins/{basin}",
    ops: ["delete-basin"],
    hasResource: true,
    ok: [202],
    call: async (token, side) => {
      const basin = `${side}-doomed-${unique()}`;
      await rest("POST", "/v1/basins", { token: rootToken, body: { basin } });
      return rest("DELETE", `/v1/basins/${basin}`, { token });
    },
  },
  {
    name: "GET /v1/streams",
    ops: ["list-streams"],
    hasResource: true,
    ok: [200],
    call: (token, side) => rest("GET", "/v1/streams", { token, basin: basinOf(side) }),
  },
  {
    name: "POST /v1/streams",
    ops: ["create-stream"],
    hasResource: true,
    ok: [201],
    call: (token, side) =>
      rest("POST", "/v1/streams", {
        token,
        basin: inBasin,
        body: { stream: `${side}/created-${unique()}` },
      }),
  },
  {
    name: "GET /v1/streams/{stream}",
    ops: ["get-stream-config"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("GET", `/v1/streams/${streamOf(side, "s")}`, { token, basin: basinOf(side) }),
  },
  {
    name: "PUT /v1/streams/{stream}",
    ops: ["create-stream", "reconfigure-stream"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("PUT", `/v1/streams/${streamOf(side, "s")}`, { token, basin: basinOf(side) }),
  },
  {
    name: "PATCH /v1/streams/{stream}",
    ops: ["reconfigure-stream"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("PATCH", `/v1/streams/${streamOf(side, "s")}`, {
        token,
        basin: basinOf(side),
        body: {},
      }),
  },
  {
    name: "DELETE /v1/streams/{stream}",
    ops: ["delete-stream"],
    hasResource: true,
    ok: [202],
    call: async (token, side) => {
      const stream = `${side}/doomed-${unique()}`;
      await rest("POST", "/v1/streams", { token: rootToken, basin: inBasin, body: { stream } });
      return rest("DELETE", `/v1/streams/${encodeURIComponent(stream)}`, {
        token,
        basin: inBasin,
      });
    },
  },
  {
    name: "GET /v1/streams/{stream}/records (JSON)",
    ops: ["read"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("GET", `/v1/streams/${streamOf(side, "s")}/records?seq_num=0&count=1`, {
        token,
        basin: basinOf(side),
      }),
  },
  {
    name: "GET /v1/streams/{stream}/records (SSE)",
    ops: ["read"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("GET", `/v1/streams/${streamOf(side, "s")}/records?seq_num=0&count=1`, {
        token,
        basin: basinOf(side),
        accept: "text/event-stream",
      }),
  },
  {
    name: "POST /v1/streams/{stream}/records",
    ops: ["append"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("POST", `/v1/streams/${streamOf(side, "s")}/records`, {
        token,
        basin: basinOf(side),
        body: { records: [{ body: "matrix" }] },
      }),
  },
  {
    name: "GET /v1/streams/{stream}/records/tail",
    ops: ["check-tail"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("GET", `/v1/streams/${streamOf(side, "s")}/records/tail`, {
        token,
        basin: basinOf(side),
      }),
  },
  {
    name: "GET /v1/access-tokens",
    ops: ["list-access-tokens"],
    hasResource: false,
    ok: [200],
    call: (token) => rest("GET", "/v1/access-tokens", { token }),
  },
  {
    name: "POST /v1/access-tokens",
    ops: ["issue-access-token", "read"],
    hasResource: true,
    ok: [201],
    call: (token, side) =>
      rest("POST", "/v1/access-tokens", {
        token,
        body: { id: `${side}-child-${unique()}`, scope: { ops: ["read"] } },
      }),
  },
  {
    name: "DELETE /v1/access-tokens/{id}",
    ops: ["revoke-access-token"],
    hasResource: true,
    ok: [204],
    call: async (token, side) => {
      const id = `${side}-victim-${unique()}`;
      await issue({ id, scope: { ops: ["read"] } });
      return rest("DELETE", `/v1/access-tokens/${id}`, { token });
    },
  },
  {
    name: "GET /v1/metrics",
    ops: ["account-metrics"],
    hasResource: false,
    ok: [200],
    call: (token) => rest("GET", `/v1/metrics?set=active-basins&${metricsWindow()}`, { token }),
  },
  {
    name: "GET /v1/metrics/{basin}",
    ops: ["basin-metrics"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest("GET", `/v1/metrics/${basinOf(side)}?set=storage&${metricsWindow()}`, { token }),
  },
  {
    name: "GET /v1/metrics/{basin}/{stream}",
    ops: ["stream-metrics"],
    hasResource: true,
    ok: [200],
    call: (token, side) =>
      rest(
        "GET",
        `/v1/metrics/${basinOf(side)}/${streamOf(side, "s")}?set=storage&${metricsWindow()}`,
        { token },
      ),
  },
];

before(async () => {
  server = await startServer({ mode: "memory", rootToken });
  const expiresAt = new Date(Date.now() + expiringLifetimeMs).toISOString();
  expiredToken = await issue({
    id: "matrix-expiring",
    scope: { basins: everything, streams: everything, access_tokens: everything, ops: operations },
    expires_at: expiresAt,
  });
  revokedToken = await issue({
    id: "matrix-revoked",
    scope: { basins: everything, streams: everything, access_tokens: everything, ops: operations },
  });
  const revoke = await rest("DELETE", "/v1/access-tokens/matrix-revoked", { token: rootToken });
  assert.equal(revoke.status, 204);
  for (const basin of [inBasin, outBasin]) {
    assert.equal(
      (await rest("POST", "/v1/basins", { token: rootToken, body: { basin } })).status,
      201,
    );
  }
  for (const [basin, stream] of [
    [inBasin, "in/s"],
    [outBasin, "out/s"],
  ] as const) {
    const created = await rest("POST", "/v1/streams", {
      token: rootToken,
      basin,
      body: { stream },
    });
    assert.equal(created.status, 201, await created.text());
    const append = await rest("POST", `/v1/streams/${encodeURIComponent(stream)}/records`, {
      token: rootToken,
      basin,
      body: { records: [{ body: "first" }] },
    });
    assert.equal(append.status, 200, await append.text());
  }
  // Wait the expiring token out (no timing is asserted: it only has to be past).
  const remainingMs = Date.parse(expiresAt) - Date.now();
  if (remainingMs > 0) await sleep(remainingMs + 50);
});

after(async () => {
  await server?.cleanup();
});

describe("REST authorization matrix", { concurrency: false }, () => {
  for (const testCase of restCases) {
    describe(testCase.name, () => {
      it("works in scope", async () => {
        const response = await testCase.call(await inScopeToken(testCase.ops), "in");
        assert.ok(
          testCase.ok.includes(response.status),
          `${response.status}: ${await response.clone().text()}`,
        );
        await response.body?.cancel();
      });

      it("is 403 without the operation", async () => {
        const response = await testCase.call(await withoutOpsToken(testCase.ops), "in");
        await expectError(response, 403, "permission_denied");
      });

      if (testCase.hasResource) {
        it("is 403 on a resource out of scope", async () => {
          const response = await testCase.call(await inScopeToken(testCase.ops), "out");
          await expectError(response, 403, "permission_denied");
        });
      }

      for (const [label, token] of [
        ["expired", () => expiredToken],
        ["revoked", () => revokedToken],
        ["missing", () => undefined],
        ["unknown", () => "tb_at_not-a-token"],
      ] as const) {
        it(`is 401 with a ${label} token`, async () => {
          const response = await testCase.call(token(), "in");
          await expectError(response, 401, "authn");
        });
      }
    });
  }

  it("needs the fence and trim operations for fence and trim commands", async () => {
    const appendOnly = await inScopeToken(["append"]);
    const withFence = await inScopeToken(["append", "fence"]);
    const path = `/v1/streams/${encodeURIComponent("in/s")}/records`;
    const fence = { records: [{ headers: [["", "fence"]], body: "" }] };
    await expectError(
      await rest("POST", path, { token: appendOnly, basin: inBasin, body: fence }),
      403,
      "permission_denied",
    );
    const fenced = await rest("POST", path, { token: withFence, basin: inBasin, body: fence });
    assert.equal(fenced.status, 200, await fenced.text());
    // A trim command in base64 format: header ("", "trim"), body the u64 trim point 0.
    const trimmed = await fetch(`${server.endpoint}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${withFence}`,
        "s2-basin": inBasin,
        "s2-format": "base64",
        "content-type": "application/json",
      },
      body: JSON.stringify({ records: [{ headers: [["", "dHJpbQ=="]], body: "AAAAAAAAAAA=" }] }),
    });
    await expectError(trimmed, 403, "permission_denied");
  });

  it("leaves the ops routes and the console open", async () => {
    for (const path of ["/health", "/ping", "/metrics", "/console"]) {
      const response = await fetch(`${server.endpoint}${path}`);
      assert.equal(response.status, 200, path);
      await response.body?.cancel();
    }
  });
});

// RPCs: the same matrix over Connect (HTTP/1.1 JSON; HTTP/2 for the bidirectional session).

type RpcCall = (headers: Record<string, string>, side: Side) => Promise<unknown>;

interface RpcCase {
  readonly name: string;
  readonly ops: readonly Operation[];
  readonly hasResource: boolean;
  readonly call: RpcCall;
}

function rpcCases(): RpcCase[] {
  const h1 = createConnectTransport({ baseUrl: server.endpoint, httpVersion: "1.1" });
  const h2 = createConnectTransport({ baseUrl: server.endpoint, httpVersion: "2" });
  const account = createClient(AccountService, h1);
  const basins = createClient(BasinService, h1);
  const streams = createClient(StreamService, h1);
  const streams2 = createClient(StreamService, h2);
  const input = create(AppendInputSchema, {
    records: [{ body: new TextEncoder().encode("rpc") }],
  });
  const cases: RpcCase[] = [
    {
      name: "ListBasins",
      ops: ["list-basins"],
      hasResource: false,
      call: (headers) => account.listBasins({}, { headers }),
    },
    {
      name: "CreateBasin",
      ops: ["create-basin"],
      hasResource: true,
      call: (headers, side) =>
        account.createBasin({ basin: `${side}-rpc-created-${unique()}` }, { headers }),
    },
    {
      name: "EnsureBasin",
      ops: ["create-basin", "reconfigure-basin"],
      hasResource: true,
      call: (headers, side) => account.ensureBasin({ basin: basinOf(side) }, { headers }),
    },
    {
      name: "GetBasinConfig",
      ops: ["get-basin-config"],
      hasResource: true,
      call: (headers, side) => account.getBasinConfig({ basin: basinOf(side) }, { headers }),
    },
    {
      name: "ReconfigureBasin",
      ops: ["reconfigure-basin"],
      hasResource: true,
      call: (headers, side) =>
        account.reconfigureBasin(
          { basin: basinOf(side), config: {}, mask: { paths: [] } },
          {
            headers,
          },
        ),
    },
    {
      name: "DeleteBasin",
      ops: ["delete-basin"],
      hasResource: true,
      call: async (headers, side) => {
        const basin = `${side}-rpc-doomed-${unique()}`;
        await rest("POST", "/v1/basins", { token: rootToken, body: { basin } });
        return account.deleteBasin({ basin }, { headers });
      },
    },
    {
      name: "IssueAccessToken",
      ops: ["issue-access-token", "read"],
      hasResource: true,
      call: (headers, side) =>
        account.issueAccessToken(
          { info: { id: `${side}-rpc-child-${unique()}`, scope: { ops: [16] } } },
          { headers },
        ),
    },
    {
      name: "ListAccessTokens",
      ops: ["list-access-tokens"],
      hasResource: false,
      call: (headers) => account.listAccessTokens({}, { headers }),
    },
    {
      name: "RevokeAccessToken",
      ops: ["revoke-access-token"],
      hasResource: true,
      call: async (headers, side) => {
        const id = `${side}-rpc-victim-${unique()}`;
        await issue({ id, scope: { ops: ["read"] } });
        return account.revokeAccessToken({ id }, { headers });
      },
    },
    {
      name: "ListStreams",
      ops: ["list-streams"],
      hasResource: true,
      call: (headers, side) => basins.listStreams({ basin: basinOf(side) }, { headers }),
    },
    {
      name: "CreateStream",
      ops: ["create-stream"],
      hasResource: true,
      call: (headers, side) =>
        basins.createStream({ basin: inBasin, stream: `${side}/rpc-${unique()}` }, { headers }),
    },
    {
      name: "GetStreamConfig",
      ops: ["get-stream-config"],
      hasResource: true,
      call: (headers, side) =>
        basins.getStreamConfig({ basin: basinOf(side), stream: `${side}/s` }, { headers }),
    },
    {
      name: "ReconfigureStream",
      ops: ["reconfigure-stream"],
      hasResource: true,
      call: (headers, side) =>
        basins.reconfigureStream(
          { basin: basinOf(side), stream: `${side}/s`, config: {}, mask: { paths: [] } },
          { headers },
        ),
    },
    {
      name: "DeleteStream",
      ops: ["delete-stream"],
      hasResource: true,
      call: async (headers, side) => {
        const stream = `${side}/rpc-doomed-${unique()}`;
        await rest("POST", "/v1/streams", { token: rootToken, basin: inBasin, body: { stream } });
        return basins.deleteStream({ basin: inBasin, stream }, { headers });
      },
    },
    {
      name: "CheckTail",
      ops: ["check-tail"],
      hasResource: true,
      call: (headers, side) =>
        streams.checkTail({ basin: basinOf(side), stream: `${side}/s` }, { headers }),
    },
    {
      name: "Append",
      ops: ["append"],
      hasResource: true,
      call: (headers, side) =>
        streams.append({ basin: basinOf(side), stream: `${side}/s`, input }, { headers }),
    },
    {
      name: "Read",
      ops: ["read"],
      hasResource: true,
      call: (headers, side) =>
        streams.read(
          { basin: basinOf(side), stream: `${side}/s`, start: { case: "seqNum", value: 0n } },
          { headers },
        ),
    },
    {
      name: "ReadSession",
      ops: ["read"],
      hasResource: true,
      call: async (headers, side) => {
        const session = streams.readSession(
          {
            basin: basinOf(side),
            stream: `${side}/s`,
            start: { case: "seqNum", value: 0n },
            count: 1n,
          },
          { headers },
        );
        for await (const _ of session) {
          // Drain: the count ends the session.
        }
      },
    },
    {
      name: "AppendSession",
      ops: ["append"],
      hasResource: true,
      call: async (headers, side) => {
        async function* requests() {
          yield create(AppendSessionRequestSchema, {
            basin: basinOf(side),
            stream: `${side}/s`,
            input,
          });
        }
        let acks = 0;
        for await (const _ of streams2.appendSession(requests(), { headers })) acks++;
        assert.equal(acks, 1);
      },
    },
  ];
  // Real queries (a set and the last hour), so that in scope they succeed.
  cases.push(
    {
      name: "GetAccountMetrics",
      ops: ["account-metrics"],
      hasResource: false,
      call: (headers) =>
        account.getAccountMetrics(
          { set: AccountMetricSet.ACTIVE_BASINS, ...metricsRange() },
          { headers },
        ),
    },
    {
      name: "GetBasinMetrics",
      ops: ["basin-metrics"],
      hasResource: true,
      call: (headers, side) =>
        basins.getBasinMetrics(
          { basin: basinOf(side), set: BasinMetricSet.STORAGE, ...metricsRange() },
          { headers },
        ),
    },
    {
      name: "GetStreamMetrics",
      ops: ["stream-metrics"],
      hasResource: true,
      call: (headers, side) =>
        streams.getStreamMetrics(
          {
            basin: basinOf(side),
            stream: `${side}/s`,
            set: StreamMetricSet.STORAGE,
            ...metricsRange(),
          },
          { headers },
        ),
    },
  );
  return cases;
}

async function expectCode(promise: Promise<unknown>, code: Code, s2Code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.metadata.get("s2-error-code"), s2Code);
    return true;
  });
}

const bearer = (token: string | undefined): Record<string, string> =>
  token === undefined ? {} : { authorization: `Bearer ${token}` };

describe("RPC authorization matrix", { concurrency: false }, () => {
  it("checks every method in scope, out of scope, expired, revoked and missing", async () => {
    for (const testCase of rpcCases()) {
      const inToken = await inScopeToken(testCase.ops);
      try {
        await testCase.call(bearer(inToken), "in");
      } catch (error) {
        assert.fail(`${testCase.name} in scope: ${String(error)}`);
      }
      await expectCode(
        testCase.call(bearer(await withoutOpsToken(testCase.ops)), "in"),
        Code.PermissionDenied,
        "permission_denied",
      );
      if (testCase.hasResource) {
        await expectCode(
          testCase.call(bearer(inToken), "out"),
          Code.PermissionDenied,
          "permission_denied",
        );
      }
      for (const token of [expiredToken, revokedToken, undefined]) {
        await expectCode(testCase.call(bearer(token), "in"), Code.Unauthenticated, "authn");
      }
    }
  });
});

// Fence and trim need their own operations on every append path (`authorizeCommands`); the REST
// unary path is covered above, these are the three others.
describe("fence and trim commands on every append path", { concurrency: false }, () => {
  const fenceInput = () =>
    create(AppendInputSchema, {
      records: [{ headers: [{ name: new Uint8Array(0), value: utf8.encode("fence") }] }],
    });
  const trimInput = () =>
    create(AppendInputSchema, {
      records: [
        {
          headers: [{ name: new Uint8Array(0), value: utf8.encode("trim") }],
          body: new Uint8Array(8), // The u64 trim point 0.
        },
      ],
    });

  it("checks them on RPC unary appends", async () => {
    const streams = createClient(
      StreamService,
      createConnectTransport({ baseUrl: server.endpoint, httpVersion: "1.1" }),
    );
    const appendOnly = bearer(await inScopeToken(["append"]));
    const withFence = bearer(await inScopeToken(["append", "fence"]));
    const target = { basin: inBasin, stream: "in/s" };
    for (const [headers, input] of [
      [appendOnly, fenceInput()],
      [withFence, trimInput()],
    ] as const) {
      await expectCode(
        streams.append({ ...target, input }, { headers }),
        Code.PermissionDenied,
        "permission_denied",
      );
    }
    const fenced = await streams.append({ ...target, input: fenceInput() }, { headers: withFence });
    assert.equal(fenced.ack?.end?.seqNum, (fenced.ack?.start?.seqNum ?? 0n) + 1n);
  });

  it("checks them on RPC append sessions", async () => {
    const streams = createClient(
      StreamService,
      createConnectTransport({ baseUrl: server.endpoint, httpVersion: "2" }),
    );
    const session = async (
      headers: Record<string, string>,
      input: ReturnType<typeof fenceInput>,
    ): Promise<number> => {
      async function* requests() {
        yield create(AppendSessionRequestSchema, { basin: inBasin, stream: "in/s", input });
      }
      let acks = 0;
      for await (const _ of streams.appendSession(requests(), { headers })) acks++;
      return acks;
    };
    const appendOnly = bearer(await inScopeToken(["append"]));
    const withTrim = bearer(await inScopeToken(["append", "trim"]));
    await expectCode(session(appendOnly, trimInput()), Code.PermissionDenied, "permission_denied");
    await expectCode(session(withTrim, fenceInput()), Code.PermissionDenied, "permission_denied");
    assert.equal(await session(withTrim, trimInput()), 1);
  });

  it("checks them on S2S append sessions (official SDK)", async () => {
    const sessionAck = async (token: string, record: AppendRecord): Promise<unknown> => {
      const stream = s2ClientFor(server, token).basin(inBasin).stream("in/s");
      try {
        const session = await stream.appendSession();
        try {
          const ticket = await session.submit(AppendInput.create([record]));
          return await ticket.ack();
        } finally {
          await session.close().catch(() => {});
        }
      } finally {
        await stream.close();
      }
    };
    const expectDenied = (promise: Promise<unknown>) =>
      assert.rejects(promise, (error: unknown) => {
        assert.ok(error instanceof SdkError, String(error));
        assert.equal(error.status, 403, error.message);
        assert.equal(error.code, "permission_denied");
        return true;
      });
    const appendOnly = await inScopeToken(["append"]);
    const withFence = await inScopeToken(["append", "fence"]);
    await expectDenied(sessionAck(appendOnly, AppendRecord.fence("")));
    await expectDenied(sessionAck(withFence, AppendRecord.trim(0)));
    await sessionAck(withFence, AppendRecord.fence(""));
    // A plain record needs neither operation.
    await sessionAck(appendOnly, AppendRecord.string({ body: "plain" }));
  });
});
