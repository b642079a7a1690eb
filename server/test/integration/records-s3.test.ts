// Goal: appends and reads through the official S2 SDK behave the same when records are durable in
// S3 as in memory (S2-API.md §5.3–§5.6). Method: the real server process on a moto bucket, driven
// through the shared records scenario (strings, bytes, conditions, commands, reads, 416).
import { after, before, describe, it } from "node:test";
import { runRecordsScenario } from "../support/records-scenario.js";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

describe("records on S3", () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer({ mode: "s3" });
  });

  after(async () => {
    await server?.cleanup();
  });

  it("appends and reads through the SDK", async () => {
    await runRecordsScenario(s2ClientFor(server), "records-s3-scenario");
  });
});
