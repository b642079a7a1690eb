// Goal: every basin and stream command of the CLI does what it says against the real server and
// prints it as a table on a terminal, tab-separated lines in a pipe, and JSON with --json. Method:
// the server process in memory mode, commands run in-process through `runCli` with captured
// streams, and what they print checked against what a later command reads back.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../../server/test/support/server-process.js";
import { runCaptured } from "./test-io.js";

describe("tributary CLI: basins and streams", () => {
  let server: ServerProcess;
  let env: Record<string, string>;
  const run = (argv: string[], options: { stdoutIsTTY?: boolean } = {}) =>
    runCaptured(argv, { env, ...options });

  before(async () => {
    server = await startServer({ mode: "memory" });
    env = { S2_ACCOUNT_ENDPOINT: server.endpoint };
  });
  after(async () => {
    await server.cleanup();
  });

  it("creates, lists, configures and deletes basins", async () => {
    const created = await run([
      "create-basin",
      "cli-basin-alpha",
      "--storage-class",
      "standard",
      "--retention-policy",
      "7d",
      "--create-stream-on-append",
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, "created basin cli-basin-alpha\n");
    const json = await run(["create-basin", "s2://cli-basin-beta", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).name, "cli-basin-beta");

    const plain = await run(["list-basins", "--prefix", "cli-basin-"]);
    assert.equal(plain.code, 0, plain.stderr);
    const lines = plain.stdout.trimEnd().split("\n");
    assert.deepEqual(
      lines.map((line) => line.split("\t").slice(0, 2)),
      [
        ["cli-basin-alpha", "active"],
        ["cli-basin-beta", "active"],
      ],
    );
    const table = await run(["list-basins", "--prefix", "cli-basin-"], { stdoutIsTTY: true });
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    assert.match(header!, /^NAME\s+STATE\s+CREATED_AT$/);
    assert.match(rows[0]!, /^cli-basin-alpha\s{2,}active\s{2,}\d{4}-\d\d-\d\dT/);
    const listed = await run(["list-basins", "--json", "--prefix", "cli-basin-", "--limit", "1"]);
    assert.deepEqual(
      JSON.parse(listed.stdout).map((basin: { name: string }) => basin.name),
      ["cli-basin-alpha"],
    );
    const ls = await run(["ls", "--json", "--start-after", "cli-basin-alpha"]);
    assert.ok(
      JSON.parse(ls.stdout).some((basin: { name: string }) => basin.name === "cli-basin-beta"),
    );

    const config = await run(["get-basin-config", "cli-basin-alpha", "--json"]);
    assert.equal(config.code, 0, config.stderr);
    assert.deepEqual(JSON.parse(config.stdout), {
      default_stream_config: {
        storage_class: "standard",
        retention_policy: { age: 604_800 },
        timestamping: null,
        delete_on_empty: null,
      },
      stream_cipher: null,
      create_stream_on_append: true,
      create_stream_on_read: false,
    });
    const changed = await run([
      "reconfigure-basin",
      "s2://cli-basin-alpha",
      "--create-stream-on-append",
      "false",
      "--default-stream-retention-policy",
      "infinite",
      "--create-stream-on-read",
      "--json",
    ]);
    assert.equal(changed.code, 0, changed.stderr);
    const after = JSON.parse(changed.stdout);
    assert.deepEqual(after.default_stream_config.retention_policy, { infinite: {} });
    assert.equal(after.default_stream_config.storage_class, "standard");
    assert.equal(after.create_stream_on_append, false);
    assert.equal(after.create_stream_on_read, true);
    const rows2 = await run(["get-basin-config", "cli-basin-alpha"]);
    assert.match(rows2.stdout, /^default_stream_config\.retention_policy\tinfinite$/m);
    assert.match(rows2.stdout, /^create_stream_on_read\ttrue$/m);

    const deleted = await run(["delete-basin", "cli-basin-beta"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, "deleting basin cli-basin-beta\n");
    const gone = await run(["list-basins", "--json", "--prefix", "cli-basin-beta"]);
    const states = JSON.parse(gone.stdout).map((basin: { state: string }) => basin.state);
    assert.ok(states.length === 0 || states[0] === "deleting", gone.stdout);
  });

  it("creates, lists, configures and deletes streams", async () => {
    assert.equal((await run(["create-basin", "cli-streams-basin"])).code, 0);
    const created = await run([
      "create-stream",
      "s2://cli-streams-basin/logs/app",
      "--timestamping-mode",
      "arrival",
      "--delete-on-empty-min-age",
      "1h",
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, "created stream s2://cli-streams-basin/logs/app\n");
    const other = await run(["create-stream", "s2://cli-streams-basin/metrics", "--json"]);
    assert.equal(JSON.parse(other.stdout).uri, "s2://cli-streams-basin/metrics");

    const all = await run(["list-streams", "s2://cli-streams-basin"]);
    assert.deepEqual(
      all.stdout
        .trimEnd()
        .split("\n")
        .map((line) => line.split("\t")[0]),
      ["s2://cli-streams-basin/logs/app", "s2://cli-streams-basin/metrics"],
    );
    const prefixed = await run(["list-streams", "s2://cli-streams-basin/logs/", "--json"]);
    assert.deepEqual(
      JSON.parse(prefixed.stdout).map((stream: { name: string }) => stream.name),
      ["logs/app"],
    );
    const bare = await run(["ls", "cli-streams-basin", "--prefix", "met", "--json"]);
    assert.deepEqual(
      JSON.parse(bare.stdout).map((stream: { name: string }) => stream.name),
      ["metrics"],
    );
    const table = await run(["list-streams", "cli-streams-basin"], { stdoutIsTTY: true });
    assert.match(table.stdout, /^URI\s+STATE\s+CREATED_AT\n/);

    const config = await run(["get-stream-config", "s2://cli-streams-basin/logs/app", "--json"]);
    assert.deepEqual(JSON.parse(config.stdout), {
      storage_class: "express",
      retention_policy: { age: 604_800 },
      timestamping: { mode: "arrival", uncapped: false },
      delete_on_empty: { min_age_secs: 3600 },
    });
    const changed = await run([
      "reconfigure-stream",
      "s2://cli-streams-basin/logs/app",
      "--retention-policy",
      "2d",
      "--timestamping-uncapped",
    ]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stdout, /^retention_policy\t2d$/m);
    assert.match(changed.stdout, /^timestamping\.mode\tarrival$/m);
    assert.match(changed.stdout, /^timestamping\.uncapped\ttrue$/m);
    const shown = await run(["get-stream-config", "s2://cli-streams-basin/logs/app"], {
      stdoutIsTTY: true,
    });
    assert.match(shown.stdout, /^FIELD\s+VALUE\n/);
    assert.match(shown.stdout, /^storage_class\s+express$/m);

    const deleted = await run(["delete-stream", "s2://cli-streams-basin/metrics", "--json"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(JSON.parse(deleted.stdout), {
      basin: "cli-streams-basin",
      stream: "metrics",
      deleted: true,
    });
    const again = await run(["get-stream-config", "s2://cli-streams-basin/metrics"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: (stream_deletion_pending|stream_not_found): /);
  });

  it("prints a note instead of an empty table on a terminal", async () => {
    const empty = await run(["list-basins", "--prefix", "no-such-prefix-"], { stdoutIsTTY: true });
    assert.equal(empty.code, 0);
    assert.equal(empty.stdout, "");
    const plain = await run(["list-basins", "--prefix", "no-such-prefix-"]);
    assert.equal(plain.stdout, "");
  });
});
