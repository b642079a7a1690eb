// Goal: `tributary bench` runs end to end against the real server: it writes, reads live and
// catches up with every record verified, reports consistent figures, deletes its temporary stream
// (and a basin it created) whether it succeeds, finds a corrupt record or is interrupted. Method:
// the real server process in memory mode, short runs at a low rate, and the stream listing after.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../../server/test/support/server-process.js";
import { createTributaryClient, type TributaryClient } from "../client.js";
import { benchCommand, benchCommandWith, parseDurationMs } from "./command.js";
import { benchRunChecks, captureIo, runBenchCli, shortRunArgs } from "./test-support.js";

describe("tributary bench (memory mode)", () => {
  let server: ServerProcess;
  let client: TributaryClient;

  before(async () => {
    server = await startServer({ mode: "memory" });
    client = createTributaryClient({ baseUrl: server.endpoint });
    await client.account.createBasin({ basin: "bench-existing" });
  });
  after(async () => {
    await server?.cleanup();
  });

  it("measures, verifies and cleans up in a basin it creates", async () => {
    const run = await runBenchCli(server, shortRunArgs("s2://bench-created", 1024));
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    benchRunChecks(report, 1024);
    assert.equal(report.basin, "bench-created");
    assert.equal(report.basinCreated, true);
    assert.match(run.stderr, /created basin bench-created/);
    assert.match(run.stderr, /deleted basin bench-created/);
    const live = [];
    for await (const basin of client.listAllBasins({ prefix: "bench-created" })) {
      if (basin.deletedAt === undefined) live.push(basin.name);
    }
    assert.deepEqual(live, []);
  });

  it("leaves no temporary stream in an existing basin", async () => {
    const run = await runBenchCli(server, [
      "bench-existing",
      "-t",
      "2",
      "-b",
      "4096",
      "-d",
      "1500ms",
      "-w",
      "200ms",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^write\s/m);
    assert.match(run.stdout, /^catch-up\s/m);
    assert.match(run.stdout, /^end-to-end\s/m);
    assert.match(run.stdout, /\(deleted\)/);
    await assertNoBenchStreams(client, "bench-existing");
  });

  it("fails with exit 1 on a corrupt record, and still deletes the stream", async () => {
    const run = await runBenchCli(
      server,
      ["s2://bench-existing", "-t", "1", "-b", "1024", "-d", "1s", "-w", "0s"],
      {
        async beforeWriteForTesting(stream) {
          const session = stream.appendSession({ lingerMs: 0 });
          await session.append([{ body: "not a bench record" }]);
          await session.close();
        },
      },
    );
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /error: bench verification failed: record has 0 bench headers, expected 1\. seq_num=0/,
    );
    assert.match(run.stderr, /deleted temporary stream/);
    await assertNoBenchStreams(client, "bench-existing");
  });

  it("stops on interruption with exit 130 and deletes the stream", async () => {
    const interrupt = new AbortController();
    const timer = setTimeout(() => interrupt.abort(new Error("test interrupt")), 1000);
    const run = await runBenchCli(
      server,
      ["s2://bench-existing", "-t", "1", "-b", "1024", "-d", "60s", "-w", "0s", "--json"],
      { signal: interrupt.signal },
    );
    clearTimeout(timer);
    assert.equal(run.code, 130, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.interrupted, true);
    assert.equal(report.catchup, null);
    assert.ok(report.write.records > 0);
    assert.ok(report.write.elapsedMs < 30_000);
    await assertNoBenchStreams(client, "bench-existing");
  });

  it("rejects bad flags with exit 2 before contacting the server", async () => {
    const cases = [
      [],
      ["s2://a/b"],
      ["s2://bench-existing", "--record-size", "64"],
      ["s2://bench-existing", "--target-mibps", "0"],
      ["s2://bench-existing", "--duration", "10 parsecs"],
      ["s2://bench-existing", "--storage-class", "glacier"],
      ["s2://bench-existing", "--no-such-flag"],
    ];
    for (const args of cases) {
      const io = captureIo({ S2_ACCOUNT_ENDPOINT: "http://127.0.0.1:1" });
      assert.equal(await benchCommand(args, io.io), 2, args.join(" "));
      assert.match(io.stderr(), /^error: .*\nusage: tributary bench s2:\/\/BASIN/);
    }
    const help = captureIo({});
    assert.equal(await benchCommandWith(["--help"], help.io, {}), 0);
    assert.match(help.stdout(), /--catchup-delay/);
  });

  it("exits 3 when the server cannot be reached", async () => {
    const io = captureIo({ S2_ACCOUNT_ENDPOINT: "http://127.0.0.1:1" });
    assert.equal(await benchCommand(["s2://bench-existing", "-d", "1s"], io.io), 3);
    assert.match(io.stderr(), /^error: cannot reach http:\/\/127\.0\.0\.1:1/m);
  });

  it("parses durations as the S2 CLI writes them", () => {
    assert.equal(parseDurationMs("10s"), 10_000);
    assert.equal(parseDurationMs("500ms"), 500);
    assert.equal(parseDurationMs("1m30s"), 90_000);
    assert.equal(parseDurationMs("2"), 2000);
    assert.equal(parseDurationMs("0s"), 0);
    assert.equal(parseDurationMs("s"), undefined);
    assert.equal(parseDurationMs("10x"), undefined);
  });
});

async function assertNoBenchStreams(client: TributaryClient, basin: string): Promise<void> {
  const live = [];
  for await (const stream of client.listAllStreams(basin, { prefix: "bench/" })) {
    if (stream.deletedAt === undefined) live.push(stream.name);
  }
  assert.deepEqual(live, []);
}
