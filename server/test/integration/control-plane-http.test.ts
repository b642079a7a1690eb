// Goal: the basin and stream routes answer on the wire exactly as s2-lite does (S2-API.md §2–§4,
// §6, §7, §11): bodies and key order, statuses, `S2-Provision-Result`, and the exact status and
// code of every malformed input, after which the server still serves. Method: one real server
// process in memory mode, driven by raw `fetch` (and `node:http` for paths fetch would normalize),
// sending what the SDK never sends.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../support/server-process.js";

let server: ServerProcess;

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The parsed body, `undefined` when empty. */
  readonly body: unknown;
}

interface CallOptions {
  readonly headers?: Record<string, string>;
  /** Sent as is, with no Content-Type; an object is JSON with `content-type: application/json`. */
  readonly body?: string | object;
}

async function call(method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  // Bytes, not a string: fetch would add `content-type: text/plain` to a string body.
  let body: Uint8Array | undefined;
  if (typeof options.body === "string") body = new TextEncoder().encode(options.body);
  else if (options.body !== undefined) {
    body = new TextEncoder().encode(JSON.stringify(options.body));
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(`${server.endpoint}${path}`, {
    method,
    headers,
    ...(body !== undefined && { body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: text === "" ? undefined : JSON.parse(text),
  };
}

/** A request with the path sent byte for byte (fetch would resolve `.` and `..` segments). */
function rawCall(method: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const request = httpRequest(
      { host: "127.0.0.1", port: server.port, method, path, headers },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          text += chunk;
        });
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            body: text === "" ? undefined : JSON.parse(text),
          }),
        );
      },
    );
    request.on("error", reject);
    request.end();
  });
}

function assertError(reply: { status: number; body: unknown }, status: number, code: string) {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  const body = reply.body as { code?: unknown; message?: unknown };
  assert.equal(body.code, code, JSON.stringify(reply.body));
  assert.equal(typeof body.message, "string");
}

async function assertServes(): Promise<void> {
  const health = await fetch(`${server.endpoint}/health`);
  await health.text();
  assert.equal(health.status, 200);
  const list = await call("GET", "/v1/basins?limit=1");
  assert.equal(list.status, 200);
}

const rfc3339Ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const basinHeader = { "s2-basin": "wire-basin" };

before(async () => {
  server = await startServer({ mode: "memory" });
  const created = await call("POST", "/v1/basins", { body: { basin: "wire-basin" } });
  assert.equal(created.status, 201);
  const stream = await call("POST", "/v1/streams", {
    headers: basinHeader,
    body: { stream: "wire-stream" },
  });
  assert.equal(stream.status, 201);
});

after(async () => {
  await server?.stop();
  await server?.cleanup();
});

describe("basin wire shapes", () => {
  it("create answers 201 with BasinInfo in lite's shape and key order", async () => {
    const beforeMs = Date.now() - 1000;
    const reply = await call("POST", "/v1/basins", {
      body: { basin: "shape-basin", config: { create_stream_on_append: true }, unknown: [1] },
    });
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get("content-type"), "application/json");
    assert.equal(reply.headers.get("s2-provision-result"), "created");
    const info = reply.body as Record<string, unknown>;
    assert.deepEqual(Object.keys(info), ["name", "location", "created_at", "deleted_at", "state"]);
    assert.equal(info["name"], "shape-basin");
    assert.equal(info["location"], null);
    assert.equal(info["deleted_at"], null);
    assert.equal(info["state"], "active");
    assert.match(String(info["created_at"]), rfc3339Ms);
    const createdMs = Date.parse(String(info["created_at"]));
    assert.ok(createdMs >= beforeMs && createdMs <= Date.now());
  });

  it("get config renders every key, null when unset", async () => {
    const reply = await call("GET", "/v1/basins/shape-basin");
    assert.equal(reply.status, 200);
    assert.equal(
      reply.text,
      '{"default_stream_config":null,"stream_cipher":null,' +
        '"create_stream_on_append":true,"create_stream_on_read":false}',
    );
  });

  it("create with the same request token and body is a 201 noop; anything else 409", async () => {
    const headers = { "s2-request-token": "token-1" };
    const body = { basin: "token-basin", config: { create_stream_on_read: true } };
    const first = await call("POST", "/v1/basins", { headers, body });
    assert.equal(first.status, 201);
    assert.equal(first.headers.get("s2-provision-result"), "created");
    const replay = await call("POST", "/v1/basins", { headers, body });
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get("s2-provision-result"), "noop");
    assert.deepEqual(replay.body, first.body);
    assertError(
      await call("POST", "/v1/basins", { headers, body: { basin: "token-basin" } }),
      409,
      "resource_already_exists",
    );
    assertError(
      await call("POST", "/v1/basins", { headers: { "s2-request-token": "token-2" }, body }),
      409,
      "resource_already_exists",
    );
    const noToken = await call("POST", "/v1/basins", { body });
    assertError(noToken, 409, "resource_already_exists");
    assert.equal(
      (noToken.body as { message: string }).message,
      "basin `token-basin` already exists",
    );
    // A token of exactly 36 bytes is fine.
    const long = await call("POST", "/v1/basins", {
      headers: { "s2-request-token": "x".repeat(36) },
      body: { basin: "token-basin-36" },
    });
    assert.equal(long.status, 201);
  });

  it("ensure: 201 created, 200 noop, 200 updated; the body is read only with a JSON type", async () => {
    const path = "/v1/basins/ensure-basin";
    const created = await call("PUT", path);
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("s2-provision-result"), "created");
    assert.equal((created.body as { name: string }).name, "ensure-basin");

    const noop = await call("PUT", path, { body: {} });
    assert.equal(noop.status, 200);
    assert.equal(noop.headers.get("s2-provision-result"), "noop");
    assert.deepEqual(noop.body, created.body);

    const updated = await call("PUT", path, {
      body: { config: { create_stream_on_read: true }, location: "aws:us-east-1" },
    });
    assert.equal(updated.status, 200);
    assert.equal(updated.headers.get("s2-provision-result"), "updated");
    assert.equal((await call("GET", path)).text.includes('"create_stream_on_read":true'), true);

    // No Content-Type: the body is not read, so the config resets to defaults (§11.31).
    const ignored = await call("PUT", path, { body: "{this is not json" });
    assert.equal(ignored.status, 200);
    assert.equal(ignored.headers.get("s2-provision-result"), "updated");
    assert.equal((await call("GET", path)).text.includes('"create_stream_on_read":false'), true);
    // JSON Content-Type and an empty body: no body either.
    const empty = await call("PUT", path, { headers: { "content-type": "application/json" } });
    assert.equal(empty.status, 200);
    assert.equal(empty.headers.get("s2-provision-result"), "noop");
  });

  it("reconfigure answers 200 with the new config", async () => {
    const reply = await call("PATCH", "/v1/basins/shape-basin", {
      body: {
        stream_cipher: "aegis-256",
        default_stream_config: {
          retention_policy: { infinite: {} },
          delete_on_empty: { min_age_secs: 0 },
        },
      },
    });
    assert.equal(reply.status, 200);
    assert.equal(
      reply.text,
      '{"default_stream_config":{"storage_class":null,"retention_policy":{"infinite":{}},' +
        '"timestamping":null,"delete_on_empty":{"min_age_secs":0}},"stream_cipher":"aegis-256",' +
        '"create_stream_on_append":true,"create_stream_on_read":false}',
    );
    const cleared = await call("PATCH", "/v1/basins/shape-basin", {
      body: { stream_cipher: null, default_stream_config: null, create_stream_on_append: false },
    });
    assert.equal(
      cleared.text,
      '{"default_stream_config":null,"stream_cipher":null,' +
        '"create_stream_on_append":false,"create_stream_on_read":false}',
    );
  });

  it("list answers {basins, has_more}; limit 0 or over 1000 means 1000", async () => {
    for (const name of ["list-basin-a", "list-basin-b", "list-basin-c"]) {
      assert.equal((await call("POST", "/v1/basins", { body: { basin: name } })).status, 201);
    }
    const page = await call("GET", "/v1/basins?prefix=list-basin-&limit=2");
    assert.equal(page.status, 200);
    const body = page.body as { basins: { name: string }[]; has_more: boolean };
    assert.deepEqual(Object.keys(body), ["basins", "has_more"]);
    assert.deepEqual(
      body.basins.map((basin) => basin.name),
      ["list-basin-a", "list-basin-b"],
    );
    assert.equal(body.has_more, true);
    for (const limit of ["0", "5000", "%2B1000"]) {
      const all = await call("GET", `/v1/basins?prefix=list-basin-&limit=${limit}`);
      assert.equal((all.body as { basins: unknown[] }).basins.length, 3, limit);
      assert.equal((all.body as { has_more: boolean }).has_more, false);
    }
    // start_after below the prefix is ignored; unknown parameters are ignored.
    const below = await call("GET", "/v1/basins?prefix=list-basin-&start_after=a&extra=1");
    assert.equal((below.body as { basins: unknown[] }).basins.length, 3);
    const after = await call("GET", "/v1/basins?prefix=list-basin-&start_after=list-basin-b");
    assert.deepEqual(
      (after.body as { basins: { name: string }[] }).basins.map((basin) => basin.name),
      ["list-basin-c"],
    );
  });

  it("delete answers 202 with no body", async () => {
    assert.equal((await call("POST", "/v1/basins", { body: { basin: "gone-basin" } })).status, 201);
    const reply = await call("DELETE", "/v1/basins/gone-basin");
    assert.equal(reply.status, 202);
    assert.equal(reply.text, "");
    assert.equal(reply.headers.get("content-length"), "0");
  });
});

describe("stream wire shapes", () => {
  it("create answers 201 with StreamInfo; a token replay is a 201 noop", async () => {
    const headers = { ...basinHeader, "s2-request-token": "stream-token" };
    const body = { stream: "shape/stream", config: { storage_class: "standard" } };
    const reply = await call("POST", "/v1/streams", { headers, body });
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get("s2-provision-result"), "created");
    const info = reply.body as Record<string, unknown>;
    assert.deepEqual(Object.keys(info), ["name", "created_at", "deleted_at", "cipher"]);
    assert.equal(info["name"], "shape/stream");
    assert.match(String(info["created_at"]), rfc3339Ms);
    assert.equal(info["deleted_at"], null);
    assert.equal(info["cipher"], null);
    const replay = await call("POST", "/v1/streams", { headers, body });
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get("s2-provision-result"), "noop");
    assert.deepEqual(replay.body, reply.body);
    assertError(
      await call("POST", "/v1/streams", { headers: basinHeader, body }),
      409,
      "resource_already_exists",
    );
  });

  it("get config fills in every field, in lite's key order", async () => {
    const reply = await call("GET", "/v1/streams/shape%2Fstream", { headers: basinHeader });
    assert.equal(reply.status, 200);
    assert.equal(
      reply.text,
      '{"storage_class":"standard","retention_policy":{"age":604800},' +
        '"timestamping":{"mode":"client-prefer","uncapped":false},"delete_on_empty":{"min_age_secs":0}}',
    );
  });

  it("reconfigure: nested keys patch, null resets, the answer is the resolved config", async () => {
    const path = "/v1/streams/shape%2Fstream";
    const patch = (body: object) => call("PATCH", path, { headers: basinHeader, body });
    let reply = await patch({
      timestamping: { uncapped: true },
      delete_on_empty: { min_age_secs: 9 },
    });
    assert.equal(reply.status, 200);
    reply = await patch({ timestamping: { mode: "arrival" }, retention_policy: { infinite: {} } });
    assert.equal(
      reply.text,
      '{"storage_class":"standard","retention_policy":{"infinite":{}},' +
        '"timestamping":{"mode":"arrival","uncapped":true},"delete_on_empty":{"min_age_secs":9}}',
    );
    reply = await patch({ timestamping: null, delete_on_empty: { min_age_secs: null } });
    assert.equal(
      reply.text,
      '{"storage_class":"standard","retention_policy":{"infinite":{}},' +
        '"timestamping":{"mode":"client-prefer","uncapped":false},"delete_on_empty":{"min_age_secs":0}}',
    );
    reply = await patch({ storage_class: null, retention_policy: null });
    assert.equal(
      (reply.body as { storage_class: string }).storage_class,
      "express",
      "null falls back to the system default when the basin sets none",
    );
    assert.deepEqual((reply.body as { retention_policy: unknown }).retention_policy, {
      age: 604800,
    });
  });

  it("ensure takes a bare StreamConfig: 201 created, 200 noop, 200 updated", async () => {
    const path = "/v1/streams/ensure-stream";
    const put = (body?: object) =>
      call("PUT", path, { headers: basinHeader, ...(body && { body }) });
    const created = await put({ retention_policy: { age: 60 } });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("s2-provision-result"), "created");
    assert.deepEqual(Object.keys(created.body as object), [
      "name",
      "created_at",
      "deleted_at",
      "cipher",
    ]);
    const noop = await put({ retention_policy: { age: 60 } });
    assert.equal(noop.status, 200);
    assert.equal(noop.headers.get("s2-provision-result"), "noop");
    const updated = await put();
    assert.equal(updated.status, 200);
    assert.equal(updated.headers.get("s2-provision-result"), "updated");
    const config = await call("GET", path, { headers: basinHeader });
    assert.deepEqual((config.body as { retention_policy: unknown }).retention_policy, {
      age: 604800,
    });
  });

  it("list answers {streams, has_more}, and nothing for an unknown basin", async () => {
    const reply = await call("GET", "/v1/streams?prefix=shape", { headers: basinHeader });
    assert.equal(reply.status, 200);
    assert.equal(
      reply.text.startsWith('{"streams":[{"name":"shape/stream","created_at":"'),
      true,
      reply.text,
    );
    assert.equal(reply.text.endsWith('"deleted_at":null,"cipher":null}],"has_more":false}'), true);
    const none = await call("GET", "/v1/streams", { headers: { "s2-basin": "unknown-basin" } });
    assert.equal(none.status, 200);
    assert.equal(none.text, '{"streams":[],"has_more":false}');
  });

  it("delete answers 202 with no body", async () => {
    const created = await call("POST", "/v1/streams", {
      headers: basinHeader,
      body: { stream: "gone-stream" },
    });
    assert.equal(created.status, 201);
    const reply = await call("DELETE", "/v1/streams/gone-stream", { headers: basinHeader });
    assert.equal(reply.status, 202);
    assert.equal(reply.text, "");
  });
});

interface BadCase {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly options?: CallOptions;
  readonly status: number;
  readonly code: string;
}

const json = { "content-type": "application/json" };
const bigAge = 2 ** 53 + 2;

const badCases: readonly BadCase[] = [
  // Bodies (400 bad_json).
  {
    name: "malformed JSON",
    method: "POST",
    path: "/v1/basins",
    options: { headers: json, body: '{"basin":' },
    status: 400,
    code: "bad_json",
  },
  {
    name: "trailing garbage",
    method: "POST",
    path: "/v1/basins",
    options: { headers: json, body: '{"basin":"trailing-basin"} x' },
    status: 400,
    code: "bad_json",
  },
  {
    name: "empty body on POST",
    method: "POST",
    path: "/v1/basins",
    options: { headers: json },
    status: 400,
    code: "bad_json",
  },
  {
    name: "missing content type",
    method: "POST",
    path: "/v1/basins",
    options: { body: '{"basin":"no-type-basin"}' },
    status: 400,
    code: "bad_json",
  },
  {
    name: "text/plain content type",
    method: "POST",
    path: "/v1/basins",
    options: { headers: { "content-type": "text/plain" }, body: '{"basin":"text-basin"}' },
    status: 400,
    code: "bad_json",
  },
  {
    name: "non-JSON content type on PUT",
    method: "PUT",
    path: "/v1/basins/put-text-basin",
    options: { headers: { "content-type": "text/plain" }, body: "{}" },
    status: 400,
    code: "bad_json",
  },
  {
    name: "malformed JSON on PUT",
    method: "PUT",
    path: "/v1/basins/put-bad-basin",
    options: { headers: json, body: "{" },
    status: 400,
    code: "bad_json",
  },
  {
    name: "null PUT body",
    method: "PUT",
    path: "/v1/streams/null-body",
    options: { headers: { ...json, ...basinHeader }, body: "null" },
    status: 400,
    code: "bad_json",
  },
  {
    name: "missing content type on PATCH",
    method: "PATCH",
    path: "/v1/basins/wire-basin",
    options: { body: "{}" },
    status: 400,
    code: "bad_json",
  },
  {
    name: "body is an array",
    method: "PATCH",
    path: "/v1/basins/wire-basin",
    options: { body: [] },
    status: 400,
    code: "bad_json",
  },
  {
    name: "invalid basin name in body",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: "Bad_Basin" } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "short basin name in body",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: "short" } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "missing basin in body",
    method: "POST",
    path: "/v1/basins",
    options: { body: { config: {} } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "basin name of wrong type",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: 12345678 } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "invalid location",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: "location-basin", location: "no spaces allowed" } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "null boolean in basin config",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: "null-bool-basin", config: { create_stream_on_read: null } } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "null create_stream_on_append in basin PATCH",
    method: "PATCH",
    path: "/v1/basins/wire-basin",
    options: { body: { create_stream_on_append: null } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "null create_stream_on_read in basin PATCH",
    method: "PATCH",
    path: "/v1/basins/wire-basin",
    options: { body: { create_stream_on_read: null } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "unknown stream cipher",
    method: "PATCH",
    path: "/v1/basins/wire-basin",
    options: { body: { stream_cipher: "rot13" } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "unknown storage class",
    method: "POST",
    path: "/v1/streams",
    options: { headers: basinHeader, body: { stream: "s", config: { storage_class: "turbo" } } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "retention policy with two keys",
    method: "PATCH",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { retention_policy: { age: 1, infinite: {} } } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "negative retention age",
    method: "PATCH",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { retention_policy: { age: -1 } } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "fractional min_age_secs",
    method: "PATCH",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { delete_on_empty: { min_age_secs: 1.5 } } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "null min_age_secs in a StreamConfig",
    method: "PUT",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { delete_on_empty: { min_age_secs: null } } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "empty stream name in body",
    method: "POST",
    path: "/v1/streams",
    options: { headers: basinHeader, body: { stream: "" } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "stream name .. in body",
    method: "POST",
    path: "/v1/streams",
    options: { headers: basinHeader, body: { stream: ".." } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "stream name over 512 bytes in body",
    method: "POST",
    path: "/v1/streams",
    options: { headers: basinHeader, body: { stream: "é".repeat(257) } },
    status: 400,
    code: "bad_json",
  },
  {
    name: "lone surrogate in body",
    method: "POST",
    path: "/v1/streams",
    options: { headers: { ...json, ...basinHeader }, body: '{"stream":"\\ud800"}' },
    status: 400,
    code: "bad_json",
  },
  {
    name: "body over 2 MiB",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: "huge-basin", padding: "x".repeat(2 << 20) } },
    status: 400,
    code: "bad_json",
  },
  // Semantic validation (422 invalid).
  {
    name: "retention age 0 on create",
    method: "POST",
    path: "/v1/streams",
    options: {
      headers: basinHeader,
      body: { stream: "age-zero", config: { retention_policy: { age: 0 } } },
    },
    status: 422,
    code: "invalid",
  },
  {
    name: "retention age 0 on PATCH",
    method: "PATCH",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { retention_policy: { age: 0 } } },
    status: 422,
    code: "invalid",
  },
  {
    name: "retention age 0 on PUT",
    method: "PUT",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { retention_policy: { age: 0 } } },
    status: 422,
    code: "invalid",
  },
  {
    name: "retention age 0 in basin defaults",
    method: "POST",
    path: "/v1/basins",
    options: {
      body: {
        basin: "age-zero-basin",
        config: { default_stream_config: { retention_policy: { age: 0 } } },
      },
    },
    status: 422,
    code: "invalid",
  },
  {
    name: "retention age 0 in basin PATCH",
    method: "PATCH",
    path: "/v1/basins/wire-basin",
    options: { body: { default_stream_config: { retention_policy: { age: 0 } } } },
    status: 422,
    code: "invalid",
  },
  {
    name: "retention age above 2^53",
    method: "PATCH",
    path: "/v1/streams/wire-stream",
    options: { headers: basinHeader, body: { retention_policy: { age: bigAge } } },
    status: 422,
    code: "invalid",
  },
  {
    name: "min_age_secs above 2^53",
    method: "POST",
    path: "/v1/streams",
    options: {
      headers: basinHeader,
      body: { stream: "big-doe", config: { delete_on_empty: { min_age_secs: bigAge } } },
    },
    status: 422,
    code: "invalid",
  },
  // Paths (400 bad_path).
  {
    name: "invalid basin in path (GET)",
    method: "GET",
    path: "/v1/basins/UPPER-CASE",
    status: 400,
    code: "bad_path",
  },
  {
    name: "invalid basin in path (PUT)",
    method: "PUT",
    path: "/v1/basins/-leading-hyphen",
    status: 400,
    code: "bad_path",
  },
  {
    name: "invalid basin in path (DELETE)",
    method: "DELETE",
    path: "/v1/basins/short",
    status: 400,
    code: "bad_path",
  },
  {
    name: "invalid basin in path (PATCH)",
    method: "PATCH",
    path: "/v1/basins/trailing-hyphen-",
    options: { body: {} },
    status: 400,
    code: "bad_path",
  },
  {
    name: "stream name over 512 bytes in path",
    method: "GET",
    path: `/v1/streams/${"a".repeat(513)}`,
    options: { headers: basinHeader },
    status: 400,
    code: "bad_path",
  },
  {
    name: "malformed percent-encoding in path",
    method: "GET",
    path: "/v1/streams/%E0%A4%A",
    options: { headers: basinHeader },
    status: 400,
    code: "bad_path",
  },
  {
    name: "invalid UTF-8 in path",
    method: "DELETE",
    path: "/v1/streams/%FF",
    options: { headers: basinHeader },
    status: 400,
    code: "bad_path",
  },
  // Queries (400 bad_query).
  {
    name: "limit not a number",
    method: "GET",
    path: "/v1/basins?limit=ten",
    status: 400,
    code: "bad_query",
  },
  {
    name: "negative limit",
    method: "GET",
    path: "/v1/streams?limit=-1",
    options: { headers: basinHeader },
    status: 400,
    code: "bad_query",
  },
  { name: "empty limit", method: "GET", path: "/v1/basins?limit=", status: 400, code: "bad_query" },
  {
    name: "repeated limit",
    method: "GET",
    path: "/v1/basins?limit=1&limit=2",
    status: 400,
    code: "bad_query",
  },
  {
    name: "invalid basin prefix",
    method: "GET",
    path: "/v1/basins?prefix=Upper",
    status: 400,
    code: "bad_query",
  },
  {
    name: "invalid basin start_after",
    method: "GET",
    path: "/v1/basins?start_after=-x",
    status: 400,
    code: "bad_query",
  },
  {
    name: "basin prefix too long",
    method: "GET",
    path: `/v1/basins?prefix=${"a".repeat(49)}`,
    status: 400,
    code: "bad_query",
  },
  {
    name: "stream prefix too long",
    method: "GET",
    path: `/v1/streams?prefix=${"a".repeat(513)}`,
    options: { headers: basinHeader },
    status: 400,
    code: "bad_query",
  },
  // Headers (400 bad_header).
  {
    name: "missing S2-Basin on list",
    method: "GET",
    path: "/v1/streams",
    status: 400,
    code: "bad_header",
  },
  {
    name: "missing S2-Basin on create",
    method: "POST",
    path: "/v1/streams",
    options: { body: { stream: "s" } },
    status: 400,
    code: "bad_header",
  },
  {
    name: "missing S2-Basin on get",
    method: "GET",
    path: "/v1/streams/wire-stream",
    status: 400,
    code: "bad_header",
  },
  {
    name: "missing S2-Basin on ensure",
    method: "PUT",
    path: "/v1/streams/wire-stream",
    status: 400,
    code: "bad_header",
  },
  {
    name: "missing S2-Basin on delete",
    method: "DELETE",
    path: "/v1/streams/wire-stream",
    status: 400,
    code: "bad_header",
  },
  {
    name: "missing S2-Basin on reconfigure",
    method: "PATCH",
    path: "/v1/streams/wire-stream",
    options: { body: {} },
    status: 400,
    code: "bad_header",
  },
  {
    name: "invalid S2-Basin",
    method: "GET",
    path: "/v1/streams",
    options: { headers: { "s2-basin": "Not_A_Basin" } },
    status: 400,
    code: "bad_header",
  },
  {
    name: "request token too long (basin)",
    method: "POST",
    path: "/v1/basins",
    options: {
      headers: { "s2-request-token": "x".repeat(37) },
      body: { basin: "long-token-basin" },
    },
    status: 400,
    code: "bad_header",
  },
  {
    name: "request token too long (stream)",
    method: "POST",
    path: "/v1/streams",
    options: {
      headers: { ...basinHeader, "s2-request-token": "é".repeat(19) },
      body: { stream: "long-token" },
    },
    status: 400,
    code: "bad_header",
  },
  // Missing resources (404) and conflicts (409).
  {
    name: "missing basin config",
    method: "GET",
    path: "/v1/basins/absent-basin",
    status: 404,
    code: "basin_not_found",
  },
  {
    name: "delete of a missing basin",
    method: "DELETE",
    path: "/v1/basins/absent-basin",
    status: 404,
    code: "basin_not_found",
  },
  {
    name: "reconfigure of a missing basin",
    method: "PATCH",
    path: "/v1/basins/absent-basin",
    options: { body: {} },
    status: 404,
    code: "basin_not_found",
  },
  {
    name: "create stream in a missing basin",
    method: "POST",
    path: "/v1/streams",
    options: { headers: { "s2-basin": "absent-basin" }, body: { stream: "s" } },
    status: 404,
    code: "basin_not_found",
  },
  {
    name: "ensure stream in a missing basin",
    method: "PUT",
    path: "/v1/streams/s",
    options: { headers: { "s2-basin": "absent-basin" } },
    status: 404,
    code: "basin_not_found",
  },
  {
    name: "missing stream config (missing basin too)",
    method: "GET",
    path: "/v1/streams/s",
    options: { headers: { "s2-basin": "absent-basin" } },
    status: 404,
    code: "stream_not_found",
  },
  {
    name: "missing stream config",
    method: "GET",
    path: "/v1/streams/absent",
    options: { headers: basinHeader },
    status: 404,
    code: "stream_not_found",
  },
  {
    name: "delete of a missing stream",
    method: "DELETE",
    path: "/v1/streams/absent",
    options: { headers: basinHeader },
    status: 404,
    code: "stream_not_found",
  },
  {
    name: "reconfigure of a missing stream",
    method: "PATCH",
    path: "/v1/streams/absent",
    options: { headers: basinHeader, body: {} },
    status: 404,
    code: "stream_not_found",
  },
  {
    name: "existing basin",
    method: "POST",
    path: "/v1/basins",
    options: { body: { basin: "wire-basin" } },
    status: 409,
    code: "resource_already_exists",
  },
  {
    name: "existing stream",
    method: "POST",
    path: "/v1/streams",
    options: { headers: basinHeader, body: { stream: "wire-stream" } },
    status: 409,
    code: "resource_already_exists",
  },
];

describe("malformed input: exact status and code, and the server keeps serving", () => {
  for (const bad of badCases) {
    it(`${bad.name} → ${bad.status} ${bad.code}`, async () => {
      assertError(await call(bad.method, bad.path, bad.options), bad.status, bad.code);
      await assertServes();
    });
  }

  it("stream names . and .. in the path → 400 bad_path", async () => {
    for (const name of [".", "..", "%2E", "%2e%2E"]) {
      for (const method of ["GET", "PUT", "DELETE"]) {
        assertError(await rawCall(method, `/v1/streams/${name}`, basinHeader), 400, "bad_path");
      }
    }
    await assertServes();
  });

  it("messages name what is missing, in lite's words", async () => {
    const missingHeader = await call("GET", "/v1/streams");
    assert.equal((missingHeader.body as { message: string }).message, "Missing header `s2-basin`");
    const missingType = await call("POST", "/v1/basins", { body: "{}" });
    assert.equal(
      (missingType.body as { message: string }).message,
      "Expected request with `Content-Type: application/json`",
    );
    const notFound = await call("GET", "/v1/streams/absent", { headers: basinHeader });
    assert.equal(
      (notFound.body as { message: string }).message,
      "stream `absent` in basin `wire-basin` not found",
    );
    const ageZero = await call("PATCH", "/v1/streams/wire-stream", {
      headers: basinHeader,
      body: { retention_policy: { age: 0 } },
    });
    assert.equal(
      (ageZero.body as { message: string }).message,
      "age must be greater than 0 seconds",
    );
  });

  it("a failed request changes nothing", async () => {
    const config = await call("GET", "/v1/streams/wire-stream", { headers: basinHeader });
    assert.equal(
      config.text,
      '{"storage_class":"express","retention_policy":{"age":604800},' +
        '"timestamping":{"mode":"client-prefer","uncapped":false},"delete_on_empty":{"min_age_secs":0}}',
    );
    const basin = await call("GET", "/v1/basins/wire-basin");
    assert.equal(
      basin.text,
      '{"default_stream_config":null,"stream_cipher":null,' +
        '"create_stream_on_append":false,"create_stream_on_read":false}',
    );
    const names = await call("GET", "/v1/basins");
    for (const name of ["trailing-basin", "no-type-basin", "huge-basin", "age-zero-basin"]) {
      assert.equal(
        (names.body as { basins: { name: string }[] }).basins.some((basin) => basin.name === name),
        false,
        name,
      );
    }
  });
});

describe("routes outside the control plane", () => {
  // Access tokens are implemented (issue 6): auth-matrix.test.ts and auth-tokens.test.ts.
  it("locations: one location, listed, the default, and the only default that can be set", async () => {
    const location = { name: "local", is_private: false };
    const list = await call("GET", "/v1/locations");
    assert.equal(list.status, 200);
    assert.deepEqual(list.body, [location]);
    const fetched = await call("GET", "/v1/locations/default");
    assert.equal(fetched.status, 200);
    assert.deepEqual(fetched.body, location);
    // `SetDefaultLocationRequest` is a bare JSON string.
    const json = { "content-type": "application/json" };
    const set = await call("PUT", "/v1/locations/default", { headers: json, body: '"local"' });
    assert.equal(set.status, 200);
    assert.deepEqual(set.body, location);
    const unknown = await call("PUT", "/v1/locations/default", { headers: json, body: '"mars"' });
    assertError(unknown, 422, "invalid");
    for (const body of ['""', '"no spaces"', '{"location":"local"}', "local"]) {
      const bad = await call("PUT", "/v1/locations/default", { headers: json, body });
      assertError(bad, 400, "bad_json");
    }
    // A basin created with the listed location, as the SDK's basin test does; still `null`.
    const created = await call("POST", "/v1/basins", {
      body: { basin: "located-basin", location: "local" },
    });
    assert.equal(created.status, 201, created.text);
    assert.equal((created.body as { location: unknown }).location, null);
    assert.equal((await call("DELETE", "/v1/basins/located-basin")).status, 202);
  });

  it("an unknown path is an empty 404, a known path with another method an empty 405", async () => {
    for (const path of ["/v1/nothing", "/v2/basins", "/v1/basins/wire-basin/extra"]) {
      const reply = await call("GET", path);
      assert.equal(reply.status, 404, path);
      assert.equal(reply.text, "");
    }
    for (const [method, path] of [
      ["POST", "/v1/basins/wire-basin"],
      ["DELETE", "/v1/basins"],
      ["PATCH", "/v1/streams"],
      ["POST", "/v1/streams/wire-stream"],
    ] as const) {
      const reply = await call(method, path, { headers: basinHeader });
      assert.equal(reply.status, 405, `${method} ${path}`);
      assert.equal(reply.text, "");
    }
    await assertServes();
  });
});
