// Goal: every route and every field of S2's OpenAPI file (a copy in ../fixtures/s2-openapi.json)
// makes a round trip through a running server, or is listed in the README's "S2 API coverage"
// section as unsupported, with why (issue 13). Method: one real server process (memory mode, a
// root token) and one walk-through that calls every operation, sets every parameter and every
// request field to a value other than its default, and asserts that what it set reads back. Every
// JSON body sent and received (and every SSE event) is walked against the file's schemas, marking
// the fields, enum values and `oneOf` variants it holds; a field counts only when it holds a value
// (not null). A field the server drops, never renders or renders under another name stays
// unmarked, and the coverage test names it. Fields the server renders beyond the file are listed
// too (lite's extensions), so a new one is noticed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../support/server-process.js";

// ---------------------------------------------------------------------------------------------
// The OpenAPI file and a walk of JSON values against its schemas

interface Schema {
  readonly $ref?: string;
  readonly type?: string | readonly string[];
  readonly enum?: readonly unknown[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly items?: Schema | false;
  readonly prefixItems?: readonly Schema[];
  readonly additionalProperties?: Schema | boolean;
  readonly oneOf?: readonly Schema[];
  readonly title?: string;
}

interface Parameter {
  readonly name: string;
  readonly in: "query" | "header" | "path";
  readonly schema: Schema;
}

interface Operation {
  readonly operationId: string;
  readonly parameters?: readonly Parameter[];
  readonly requestBody?: { readonly content: Record<string, { readonly schema: Schema }> };
  readonly responses: Record<string, { readonly content?: Record<string, { schema: Schema }> }>;
}

const spec = JSON.parse(
  readFileSync(new URL("../fixtures/s2-openapi.json", import.meta.url), "utf8"),
) as {
  readonly paths: Record<string, Record<string, unknown>>;
  readonly components: { readonly schemas: Record<string, Schema> };
};
/** The README, with a Markdown table's escaped pipes as plain ones. */
const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8").replaceAll(
  "\\|",
  "|",
);

const methods = ["get", "put", "post", "delete", "patch"] as const;

/** Every operation of the file, with its method and path template. */
const operations: { method: string; path: string; op: Operation }[] = Object.entries(
  spec.paths,
).flatMap(([path, item]) =>
  methods
    .filter((method) => item[method] !== undefined)
    .map((method) => ({ method, path, op: item[method] as Operation })),
);

type Direction = "sent" | "received";

const refName = (ref: string): string => ref.slice(ref.lastIndexOf("/") + 1);
const schemaOf = (name: string): Schema => {
  const schema = spec.components.schemas[name];
  assert(schema !== undefined, `no schema ${name}`);
  return schema;
};
const typesOf = (schema: Schema): readonly string[] =>
  schema.type === undefined ? [] : typeof schema.type === "string" ? [schema.type] : schema.type;

/** The key of a `oneOf` variant: its title, else its required properties. */
const variantKey = (variant: Schema): string =>
  variant.title ?? variant.required?.join("+") ?? typesOf(variant).join("|");

/** Whether `value` fits `variant` closely enough to choose it among a `oneOf`'s variants. */
function fits(value: unknown, variant: Schema): boolean {
  if (variant.$ref !== undefined) return fits(value, schemaOf(refName(variant.$ref)));
  if (value === null) return typesOf(variant).includes("null");
  if (variant.oneOf !== undefined) return variant.oneOf.some((v) => fits(value, v));
  const types = typesOf(variant);
  if (typeof value === "object" && !Array.isArray(value)) {
    if (types.length > 0 && !types.includes("object")) return false;
    const record = value as Record<string, unknown>;
    if (!(variant.required ?? []).every((key) => key in record)) return false;
    // A variant told apart by an enum-valued property (ReadEvent's `event`) must match it.
    return Object.entries(variant.properties ?? {}).every(
      ([key, property]) =>
        property.enum === undefined || !(key in record) || property.enum.includes(record[key]),
    );
  }
  if (Array.isArray(value)) return types.includes("array");
  if (typeof value === "string") return types.includes("string");
  if (typeof value === "number") return types.includes("integer") || types.includes("number");
  if (typeof value === "boolean") return types.includes("boolean");
  return false;
}

/**
 * What a set of JSON values held, item by item: `Schema.field`, `Schema=enumValue`,
 * `Schema|variant`, each prefixed by the direction it went. Anonymous objects (a `oneOf` variant,
 * a property's inline object) count under the nearest named schema.
 */
class Coverage {
  readonly marks = new Set<string>();
  /** Fields a value held that its schema does not name (`received Schema.field`). */
  readonly extras = new Set<string>();

  walk(value: unknown, schema: Schema, owner: string, direction: Direction): void {
    if (value === null || value === undefined) return;
    if (schema.$ref !== undefined) {
      const name = refName(schema.$ref);
      this.walk(value, schemaOf(name), name, direction);
      return;
    }
    if (schema.oneOf !== undefined) {
      const variant = schema.oneOf.find((v) => fits(value, v));
      assert(variant !== undefined, `${owner}: ${JSON.stringify(value)} fits no variant`);
      const named = variant.$ref === undefined && !typesOf(variant).includes("null");
      if (named && schema.oneOf.length > 1) {
        this.marks.add(`${direction} ${owner}|${variantKey(variant)}`);
      }
      this.walk(value, variant, owner, direction);
      return;
    }
    if (schema.enum !== undefined) this.marks.add(`${direction} ${owner}=${String(value)}`);
    if (Array.isArray(value)) {
      value.forEach((element, i) => {
        const item = schema.prefixItems?.[i] ?? schema.items;
        if (item !== undefined && item !== false) this.walk(element, item, owner, direction);
      });
      return;
    }
    if (typeof value !== "object") return;
    for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
      const property = schema.properties?.[key];
      if (property === undefined) {
        const extra = schema.additionalProperties;
        if (typeof extra === "object") this.walk(field, extra, owner, direction);
        else this.extras.add(`${direction} ${owner}.${key}`);
        continue;
      }
      if (field === null) continue;
      this.marks.add(`${direction} ${owner}.${key}`);
      this.walk(field, property, owner, direction);
    }
  }
}

/**
 * The items a complete walk-through must mark: for each named schema reachable from a request
 * (sent) or a response (received), its fields, enum values and variants.
 */
function expectedItems(): Set<string> {
  const items = new Set<string>();
  const visited = new Set<string>();
  const visit = (schema: Schema, owner: string, direction: Direction): void => {
    if (schema.$ref !== undefined) {
      const name = refName(schema.$ref);
      if (visited.has(`${direction} ${name}`)) return;
      visited.add(`${direction} ${name}`);
      visit(schemaOf(name), name, direction);
      return;
    }
    if (schema.oneOf !== undefined) {
      const choices = schema.oneOf.filter((v) => !typesOf(v).includes("null"));
      for (const variant of choices) {
        if (variant.$ref === undefined && schema.oneOf.length > 1) {
          items.add(`${direction} ${owner}|${variantKey(variant)}`);
        }
        visit(variant, owner, direction);
      }
      return;
    }
    for (const value of schema.enum ?? []) items.add(`${direction} ${owner}=${String(value)}`);
    for (const item of [...(schema.prefixItems ?? []), schema.items]) {
      if (item !== undefined && item !== false) visit(item, owner, direction);
    }
    if (typeof schema.additionalProperties === "object") {
      visit(schema.additionalProperties, owner, direction);
    }
    for (const [key, property] of Object.entries(schema.properties ?? {})) {
      items.add(`${direction} ${owner}.${key}`);
      visit(property, owner, direction);
    }
  };
  for (const { op } of operations) {
    items.add(`op ${op.operationId}`);
    for (const parameter of op.parameters ?? []) {
      if (parameter.in === "path") continue;
      items.add(`param ${op.operationId}.${parameter.name}`);
      visit(parameter.schema, `${op.operationId}.${parameter.name}`, "sent");
    }
    for (const { schema } of Object.values(op.requestBody?.content ?? {})) {
      visit(schema, op.operationId, "sent");
    }
    for (const response of Object.values(op.responses)) {
      for (const [type, { schema }] of Object.entries(response.content ?? {})) {
        // The SSE response's schema is one event; its events are walked one by one.
        visit(schema, type === "text/event-stream" ? "ReadEvent" : op.operationId, "received");
      }
    }
  }
  return items;
}

/**
 * Items the server does not support, each with why; the README's "S2 API coverage" section names
 * each of them. The test fails when one of them becomes covered (so the list stays true).
 */
const basinScopeWhy =
  "lite renamed a basin's `scope` to `location`: it accepts and ignores `scope` on create and " +
  "ensure, and renders `location: null` instead";
const scalarWhy =
  "no metric set yields a single value: `storage` is a gauge, `active-basins` a label, the rest " +
  "accumulations";
const unsupported: ReadonlyMap<string, string> = new Map([
  ["received Metric|scalar", scalarWhy],
  ["received Metric.scalar", scalarWhy],
  ["received ScalarMetric.name", scalarWhy],
  ["received ScalarMetric.unit", scalarWhy],
  ["received ScalarMetric.value", scalarWhy],
  [
    "param stream_metrics.interval",
    "the one stream set, `storage`, is a gauge: an interval is refused (422), as for a basin",
  ],
  ["received BasinInfo.scope", basinScopeWhy],
  ["received BasinScope=aws:us-east-1", basinScopeWhy],
  ["received BasinScope=aws:us-west-2", basinScopeWhy],
  ["received BasinScope=aws:eu-north-1", basinScopeWhy],
  ["sent BasinScope=aws:us-west-2", basinScopeWhy],
  ["sent BasinScope=aws:eu-north-1", basinScopeWhy],
]);

/** Fields the server renders beyond the file: lite's, kept for its SDKs. */
const knownExtras: ReadonlySet<string> = new Set([
  "received BasinInfo.location",
  "received BasinInfo.state",
  "received PingEventData.tail",
]);

// ---------------------------------------------------------------------------------------------
// The walk-through

const rootToken = "openapi-coverage-root-token";
let server: ServerProcess;
const coverage = new Coverage();

function operation(operationId: string): (typeof operations)[number] {
  const found = operations.find(({ op }) => op.operationId === operationId);
  assert(found !== undefined, `no operation ${operationId}`);
  return found;
}

interface CallOptions {
  readonly path?: Record<string, string>;
  readonly query?: Record<string, string>;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  readonly basin?: string;
  readonly token?: string;
  /** Another server than the walk-through's. */
  readonly server?: ServerProcess;
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
}

/**
 * Calls an operation of the file by its id, marking the response body (walked against the
 * response schema of the status it got) and, when it succeeded, the parameters and request body it
 * sent: what a server refused made no round trip.
 */
async function call(operationId: string, options: CallOptions = {}): Promise<Reply> {
  const { method, path, op } = operation(operationId);
  let url = `/v1${path}`;
  for (const [name, value] of Object.entries(options.path ?? {})) {
    url = url.replace(`{${name}}`, encodeURIComponent(value));
  }
  assert(!url.includes("{"), `${operationId}: path parameters left in ${url}`);
  const query = new URLSearchParams(options.query ?? {}).toString();
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.token ?? rootToken}`,
    ...options.headers,
  };
  if (options.basin !== undefined) headers["s2-basin"] = options.basin;
  const sent = new Coverage();
  for (const parameter of op.parameters ?? []) {
    const value =
      parameter.in === "query"
        ? options.query?.[parameter.name]
        : parameter.in === "header"
          ? options.headers?.[parameter.name]
          : undefined;
    if (value === undefined) continue;
    sent.marks.add(`param ${operationId}.${parameter.name}`);
    sent.walk(
      parameter.schema.type === "integer" ? Number(value) : value,
      parameter.schema,
      `${operationId}.${parameter.name}`,
      "sent",
    );
  }
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    const schema = op.requestBody?.content["application/json"]?.schema;
    assert(schema !== undefined, `${operationId} takes no JSON body`);
    sent.walk(options.body, schema, operationId, "sent");
  }
  const response = await fetch(
    `${(options.server ?? server).endpoint}${url}${query === "" ? "" : `?${query}`}`,
    {
      method: method.toUpperCase(),
      headers,
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    },
  );
  const text = await response.text();
  const body: unknown = text === "" ? undefined : JSON.parse(text);
  if (response.status >= 200 && response.status < 300) {
    coverage.marks.add(`op ${operationId}`);
    for (const mark of sent.marks) coverage.marks.add(mark);
    for (const extra of sent.extras) coverage.extras.add(extra);
  }
  // Lite answers statuses the file does not list (422 for a semantically invalid request, 501
  // for what it lacks); their bodies are ErrorInfo too.
  const schema =
    op.responses[String(response.status)]?.content?.["application/json"]?.schema ??
    (response.status >= 400 ? { $ref: "#/components/schemas/ErrorInfo" } : undefined);
  assert(
    body === undefined || schema !== undefined,
    `${operationId} answered ${response.status} with a body the file does not describe: ${text}`,
  );
  if (schema !== undefined) coverage.walk(body, schema, operationId, "received");
  return { status: response.status, body };
}

/** `call` that expects `status`. */
async function expectStatus(status: number, operationId: string, options?: CallOptions) {
  const reply = await call(operationId, options);
  assert.equal(reply.status, status, `${operationId}: ${JSON.stringify(reply.body)}`);
  return reply.body as Record<string, unknown>;
}

interface SseEvent {
  readonly event: string;
  readonly data: unknown;
  readonly id?: string;
}

/**
 * Opens an SSE read session and collects its events (each walked as a `ReadEvent`) until `stop`
 * returns true for one or the session ends.
 */
async function sseRead(options: {
  readonly basin: string;
  readonly stream: string;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string>;
  readonly token?: string;
  readonly stop: (event: SseEvent) => boolean;
}): Promise<SseEvent[]> {
  const query = new URLSearchParams(options.query).toString();
  const abort = new AbortController();
  const response = await fetch(
    `${server.endpoint}/v1/streams/${encodeURIComponent(options.stream)}/records?${query}`,
    {
      headers: {
        authorization: `Bearer ${options.token ?? rootToken}`,
        "s2-basin": options.basin,
        accept: "text/event-stream",
        ...options.headers,
      },
      signal: abort.signal,
    },
  );
  // The message is read only on failure: an SSE body ends only when the session does.
  if (response.status !== 200) assert.fail(`SSE read: ${response.status} ${await response.text()}`);
  coverage.marks.add("op read");
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffered = "";
  const reader = response.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return events;
      buffered += decoder.decode(value, { stream: true });
      for (let end = buffered.indexOf("\n\n"); end >= 0; end = buffered.indexOf("\n\n")) {
        const lines = buffered.slice(0, end).split("\n");
        buffered = buffered.slice(end + 2);
        const field = (name: string): string | undefined =>
          lines
            .find((line) => line.startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        const raw = field("data");
        if (raw === undefined || raw === "[DONE]") continue;
        const id = field("id");
        const name = field("event") ?? "message";
        // The file types an error event's data as a string (it holds the error's JSON).
        const event: SseEvent = {
          event: name,
          data: name === "error" ? raw : JSON.parse(raw),
          ...(id !== undefined && { id }),
        };
        coverage.walk(event, { $ref: "#/components/schemas/ReadEvent" }, "ReadEvent", "received");
        events.push(event);
        if (options.stop(event)) return events;
      }
    }
  } finally {
    abort.abort();
    await reader.cancel().catch(() => {});
  }
}

const basin = "openapi-coverage";
const ensuredBasin = "openapi-coverage-ensured";
const key = Buffer.alloc(32, 7).toString("base64");
const encrypted = { "s2-encryption-key": key };
const b64 = (text: string): string => Buffer.from(text).toString("base64");

before(async () => {
  server = await startServer({ mode: "memory", rootToken });
});

after(async () => {
  await server?.cleanup();
});

describe("the S2 OpenAPI file, route by route and field by field", () => {
  it("basins: create, ensure, get, list, reconfigure, with every config field read back", async () => {
    const config = {
      create_stream_on_append: true,
      create_stream_on_read: true,
      default_stream_config: {
        storage_class: "standard",
        retention_policy: { age: 86_400 },
        timestamping: { mode: "client-prefer", uncapped: true },
        delete_on_empty: { min_age_secs: 3_600 },
      },
      stream_cipher: "aegis-256",
    };
    const created = await expectStatus(201, "create_basin", {
      headers: { "s2-request-token": "create-basin-1" },
      body: { basin, scope: "aws:us-east-1", config },
    });
    assert.equal(created["name"], basin);
    assert.deepEqual(await expectStatus(200, "get_basin_config", { path: { basin } }), config);

    const ensuredConfig = {
      create_stream_on_append: false,
      create_stream_on_read: false,
      default_stream_config: {
        storage_class: "express",
        retention_policy: { infinite: {} },
        timestamping: { mode: "arrival", uncapped: false },
        delete_on_empty: { min_age_secs: 60 },
      },
      stream_cipher: null,
    };
    await expectStatus(201, "ensure_basin", {
      path: { basin: ensuredBasin },
      body: { scope: "aws:us-east-1", config: ensuredConfig },
    });
    await expectStatus(200, "ensure_basin", {
      path: { basin: ensuredBasin },
      body: { scope: "aws:us-east-1", config: ensuredConfig },
    });
    assert.deepEqual(
      await expectStatus(200, "get_basin_config", { path: { basin: ensuredBasin } }),
      ensuredConfig,
    );

    const reconfiguration = {
      create_stream_on_append: true,
      create_stream_on_read: true,
      default_stream_config: {
        storage_class: "standard",
        retention_policy: { age: 7_200 },
        timestamping: { mode: "client-require", uncapped: true },
        delete_on_empty: { min_age_secs: 0 },
      },
      stream_cipher: "aes-256-gcm",
    };
    const reconfigured = await expectStatus(200, "reconfigure_basin", {
      path: { basin: ensuredBasin },
      body: reconfiguration,
    });
    assert.deepEqual(reconfigured, reconfiguration);

    const listed = await expectStatus(200, "list_basins", {
      query: { prefix: "openapi-", start_after: "openapi-a", limit: "1" },
    });
    assert.deepEqual(
      (listed["basins"] as { name: string }[]).map((b) => b.name),
      [basin],
    );
    assert.equal(listed["has_more"], true);
  });

  it("streams: create, ensure, get, list, reconfigure, with every config field read back", async () => {
    const config = {
      storage_class: "express",
      retention_policy: { age: 3_600 },
      timestamping: { mode: "client-prefer", uncapped: true },
      delete_on_empty: { min_age_secs: 120 },
    };
    const created = await expectStatus(201, "create_stream", {
      basin,
      headers: { "s2-request-token": "create-stream-1" },
      body: { stream: "events", config },
    });
    assert.equal(created["name"], "events");
    assert.equal(created["cipher"], "aegis-256");
    assert.deepEqual(
      await expectStatus(200, "get_stream_config", { basin, path: { stream: "events" } }),
      config,
    );
    const ensured = {
      storage_class: "standard",
      retention_policy: { infinite: {} },
      timestamping: { mode: "arrival", uncapped: false },
      delete_on_empty: { min_age_secs: 0 },
    };
    await expectStatus(201, "ensure_stream", { basin, path: { stream: "ensured" }, body: ensured });
    await expectStatus(200, "ensure_stream", { basin, path: { stream: "ensured" }, body: ensured });
    const reconfiguration = {
      storage_class: "standard",
      retention_policy: { infinite: {} },
      timestamping: { mode: "client-require", uncapped: false },
      delete_on_empty: { min_age_secs: 30 },
    };
    assert.deepEqual(
      await expectStatus(200, "reconfigure_stream", {
        basin,
        path: { stream: "ensured" },
        body: reconfiguration,
      }),
      reconfiguration,
    );
    const listed = await expectStatus(200, "list_streams", {
      basin,
      query: { prefix: "e", start_after: "e", limit: "1" },
    });
    assert.deepEqual(
      (listed["streams"] as { name: string }[]).map((s) => s.name),
      ["ensured"],
    );
    assert.equal(listed["has_more"], true);
  });

  it("records: appends with every field and condition, reads with every bound, JSON and SSE", async () => {
    const path = { stream: "events" };
    // A fence command record sets the token; the next append must present it.
    await expectStatus(200, "append", {
      basin,
      path,
      headers: { ...encrypted, "s2-format": "raw" },
      body: { records: [{ headers: [["", "fence"]], body: "token-1", timestamp: 500 }] },
    });
    const ack = await expectStatus(200, "append", {
      basin,
      path,
      headers: { ...encrypted, "s2-format": "base64" },
      body: {
        records: [
          { headers: [[b64("kind"), b64("order")]], body: b64("first"), timestamp: 1_000 },
          { headers: [], body: b64("second"), timestamp: 2_000 },
        ],
        match_seq_num: 1,
        fencing_token: "token-1",
      },
    });
    assert.deepEqual(ack["start"], { seq_num: 1, timestamp: 1_000 });
    assert.deepEqual(ack["end"], { seq_num: 3, timestamp: 2_000 });
    assert.deepEqual(ack["tail"], { seq_num: 3, timestamp: 2_000 });

    const wrongSeq = await call("append", {
      basin,
      path,
      headers: encrypted,
      body: { records: [{ body: "x" }], match_seq_num: 0 },
    });
    assert.deepEqual(wrongSeq, { status: 412, body: { seq_num_mismatch: 3 } });
    const wrongToken = await call("append", {
      basin,
      path,
      headers: encrypted,
      body: { records: [{ body: "x" }], fencing_token: "token-2" },
    });
    assert.deepEqual(wrongToken, { status: 412, body: { fencing_token_mismatch: "token-1" } });

    const batch = await expectStatus(200, "read", {
      basin,
      path,
      headers: { ...encrypted, "s2-format": "base64" },
      query: { seq_num: "1", count: "2", bytes: "1000000", until: "1000000", clamp: "true" },
    });
    const records = batch["records"] as Record<string, unknown>[];
    assert.deepEqual(records, [
      { seq_num: 1, timestamp: 1_000, headers: [[b64("kind"), b64("order")]], body: b64("first") },
      // Lite leaves out an empty `headers`.
      { seq_num: 2, timestamp: 2_000, body: b64("second") },
    ]);
    // Catch-up batches carry no tail (S2-API.md §7.2); a live one does, below.
    assert.equal(batch["tail"], undefined);
    const byTimestamp = await expectStatus(200, "read", {
      basin,
      path,
      headers: encrypted,
      query: { timestamp: "1500", wait: "0" },
    });
    assert.deepEqual(
      (byTimestamp["records"] as { seq_num: number }[]).map((r) => r.seq_num),
      [2],
    );
    const fromTail = await expectStatus(200, "read", {
      basin,
      path,
      headers: encrypted,
      query: { tail_offset: "1" },
    });
    assert.deepEqual(
      (fromTail["records"] as { body: string }[]).map((r) => r.body),
      ["second"],
    );
    assert.deepEqual(await expectStatus(200, "check_tail", { basin, path }), {
      tail: { seq_num: 3, timestamp: 2_000 },
    });
    // A long poll at the tail answers with the record appended meanwhile, and the new tail.
    const polled = call("read", {
      basin,
      path,
      headers: encrypted,
      query: { seq_num: "3", wait: "10" },
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expectStatus(200, "append", {
      basin,
      path,
      headers: encrypted,
      body: { records: [{ body: "live", timestamp: 3_000 }] },
    });
    const live = await polled;
    assert.equal(live.status, 200, JSON.stringify(live.body));
    assert.deepEqual(live.body, {
      records: [{ seq_num: 3, timestamp: 3_000, body: "live" }],
      tail: { seq_num: 4, timestamp: 3_000 },
    });

    // SSE: a batch, then a heartbeat (5–15 s while following).
    const events = await sseRead({
      basin,
      stream: "events",
      query: { seq_num: "0" },
      headers: encrypted,
      stop: (event) => event.event === "ping",
    });
    assert.equal(events[0]?.event, "batch");
    assert.match(events[0]?.id ?? "", /^[0-9]+,[0-9]+,[0-9]+$/);
    assert.equal(events.at(-1)?.event, "ping");
  });

  it("access tokens: issue with every scope field and operation, list, revoke; a revoked token's SSE session ends with an error event", async () => {
    const ops = [...(schemaOf("Operation").enum as readonly string[])];
    const scope = {
      basins: { prefix: "openapi-" },
      streams: { prefix: "tenant/" },
      access_tokens: { exact: "reader" },
      op_groups: {
        account: { read: true, write: false },
        basin: { read: true, write: true },
        stream: { read: true, write: true },
      },
      ops,
    };
    const issued = await expectStatus(201, "issue_access_token", {
      body: { id: "reader", expires_at: "2099-01-01T00:00:00Z", auto_prefix_streams: true, scope },
    });
    assert.equal(typeof issued["access_token"], "string");
    const listed = await expectStatus(200, "list_access_tokens", {
      query: { prefix: "read", start_after: "", limit: "10" },
    });
    const infos = listed["access_tokens"] as Record<string, unknown>[];
    assert.equal(listed["has_more"], false);
    assert.equal(infos.length, 1);
    assert.equal(infos[0]?.["id"], "reader");
    assert.equal(infos[0]?.["auto_prefix_streams"], true);
    assert.equal(
      Date.parse(infos[0]?.["expires_at"] as string),
      Date.parse("2099-01-01T00:00:00Z"),
    );
    assert.deepEqual(
      new Set((infos[0]?.["scope"] as { ops?: string[] } | undefined)?.ops),
      new Set(ops),
    );

    // A token whose stream scope is exact, for an SSE session that its revocation ends.
    const sessionToken = (
      await expectStatus(201, "issue_access_token", {
        body: {
          id: "session",
          scope: { basins: { exact: basin }, streams: { exact: "events" }, ops: ["read"] },
        },
      })
    )["access_token"] as string;
    const session = sseRead({
      basin,
      stream: "events",
      query: { seq_num: "0" },
      headers: encrypted,
      token: sessionToken,
      stop: (event) => event.event === "error",
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expectStatus(204, "revoke_access_token", { path: { id: "session" } });
    const events = await session;
    assert.equal(events.at(-1)?.event, "error");
    const error = JSON.parse(events.at(-1)?.data as string) as Record<string, unknown>;
    assert.equal(typeof error["code"], "string");
    assert.equal(typeof error["message"], "string");
    await expectStatus(204, "revoke_access_token", { path: { id: "reader" } });
  });

  it("metrics: every set of the account, a basin and a stream, with a range and an interval", async () => {
    const range = (interval?: string): Record<string, string> => {
      const nowSecs = Math.floor(Date.now() / 1000);
      return {
        start: String(nowSecs - 3_600),
        end: String(nowSecs + 60),
        ...(interval !== undefined && { interval }),
      };
    };
    // Accumulations take an interval (each of the three used once at least); the others none.
    const intervals = schemaOf("TimeseriesInterval").enum as string[];
    let next = 0;
    const intervalFor = (set: string): string | undefined =>
      set.endsWith("-ops") || set.endsWith("-throughput")
        ? intervals[next++ % intervals.length]
        : undefined;
    for (const set of schemaOf("AccountMetricSet").enum as string[]) {
      const reply = await expectStatus(200, "account_metrics", {
        query: { set, ...range(intervalFor(set)) },
      });
      assert.ok((reply["values"] as unknown[]).length > 0, set);
    }
    for (const set of schemaOf("BasinMetricSet").enum as string[]) {
      const reply = await expectStatus(200, "basin_metrics", {
        path: { basin },
        query: { set, ...range(intervalFor(set)) },
      });
      assert.ok((reply["values"] as unknown[]).length > 0, set);
    }
    for (const set of schemaOf("StreamMetricSet").enum as string[]) {
      const reply = await expectStatus(200, "stream_metrics", {
        path: { basin, stream: "events" },
        query: { set, ...range() },
      });
      assert.ok((reply["values"] as unknown[]).length > 0, "the stream has stored bytes");
    }
  });

  it("deletion: a deleted stream and basin list with `deleted_at` while they are being deleted", async () => {
    await expectStatus(202, "delete_stream", { basin, path: { stream: "ensured" } });
    await expectStatus(202, "delete_basin", { path: { basin: ensuredBasin } });
    const missing = await call("get_basin_config", { path: { basin: "openapi-missing" } });
    assert.equal(missing.status, 404);
    // The pending state lasts one background step: on a server flushing once a second it is
    // seen for about a second (as in control-plane-deletion.test.ts).
    const slow = await startServer({
      mode: "memory",
      rootToken,
      args: ["--flush-interval-ms", "1000"],
    });
    try {
      await expectStatus(201, "create_basin", { server: slow, body: { basin: "doomed-basin" } });
      await expectStatus(201, "create_basin", { server: slow, body: { basin: "kept-basin" } });
      const inKept = { server: slow, basin: "kept-basin" };
      await expectStatus(201, "create_stream", { ...inKept, body: { stream: "doomed" } });
      await expectStatus(202, "delete_stream", { ...inKept, path: { stream: "doomed" } });
      const streams = await expectStatus(200, "list_streams", inKept);
      assert.equal(
        typeof (streams["streams"] as Record<string, unknown>[])[0]?.["deleted_at"],
        "string",
      );
      await expectStatus(202, "delete_basin", { server: slow, path: { basin: "doomed-basin" } });
      const basins = await expectStatus(200, "list_basins", {
        server: slow,
        query: { prefix: "doomed-" },
      });
      assert.equal(
        typeof (basins["basins"] as Record<string, unknown>[])[0]?.["deleted_at"],
        "string",
      );
    } finally {
      await slow.cleanup();
    }
  });

  it("covers every route and field of the file, or lists it as unsupported in the README", () => {
    const expected = expectedItems();
    const missing = [...expected].filter(
      (item) => !coverage.marks.has(item) && !unsupported.has(item),
    );
    assert.deepEqual(missing, [], "items of the OpenAPI file that no round trip covered");
    const stale = [...unsupported.keys()].filter((item) => coverage.marks.has(item));
    assert.deepEqual(stale, [], "listed as unsupported, yet covered: take them off the list");
    const unknown = [...unsupported.keys()].filter((item) => !expected.has(item));
    assert.deepEqual(unknown, [], "listed as unsupported, but not in the file");
    for (const item of unsupported.keys()) {
      const name = item.slice(item.indexOf(" ") + 1);
      assert.ok(readme.includes(`\`${name}\``), `README's S2 API coverage names \`${name}\``);
    }
    assert.deepEqual(
      [...coverage.extras].sort(),
      [...knownExtras].sort(),
      "fields rendered beyond the file",
    );
  });
});
