// Goal: `tributary bench` runs end to end against a server in S3 mode, where acks wait for segment
// uploads to a real S3 API, with every record verified and the temporary stream deleted. Method:
// the real server process on moto (`scripts/with-moto.sh`, or a moto of its own), one short run.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../../server/test/support/server-process.js";
import { createTributaryClient } from "../client.js";
import { benchRunChecks, runBenchCli, shortRunArgs } from "./test-support.js";

describe("tributary bench (S3 mode, moto)", () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer({ mode: "s3" });
  });
  after(async () => {
    await server?.cleanup();
  });

  it("measures, verifies and cleans up", async () => {
    const run = await runBenchCli(server, shortRunArgs("s2://bench-s3-basin", 8192));
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    benchRunChecks(report, 8192);
    assert.equal(report.basinCreated, true);
    const client = createTributaryClient({ baseUrl: server.endpoint });
    const live = [];
    for await (const basin of client.listAllBasins({ prefix: "bench-s3-basin" })) {
      if (basin.deletedAt === undefined) live.push(basin.name);
    }
    assert.deepEqual(live, []);
  });
});
