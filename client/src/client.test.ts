// Goal: the client's typed services and pagination helpers list every basin and stream across
// pages, and basin- and stream-scoped helpers reach the right resources. Method: the real server
// process in memory mode, small page sizes, and names compared with what was created.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../server/test/support/server-process.js";
import { createTributaryClient, type TributaryClient } from "./client.js";

describe("tributary client", () => {
  let server: ServerProcess;
  let client: TributaryClient;

  before(async () => {
    server = await startServer({ mode: "memory" });
    client = createTributaryClient({ baseUrl: server.endpoint });
  });
  after(async () => {
    await server.cleanup();
  });

  it("lists every basin and stream across pages", async () => {
    const names = ["page-basin-a", "page-basin-b", "page-basin-c", "page-basin-d", "page-basin-e"];
    for (const basin of names) await client.account.createBasin({ basin });
    const listed: string[] = [];
    for await (const info of client.listAllBasins({ prefix: "page-basin-", pageSize: 2 })) {
      listed.push(info.name);
    }
    assert.deepEqual(listed, names);

    const basin = client.basin("page-basin-a");
    const streams = ["s1", "s2", "s3"];
    for (const stream of streams) await basin.createStream(stream);
    const seen: string[] = [];
    for await (const info of basin.listAllStreams({ pageSize: 1 })) seen.push(info.name);
    assert.deepEqual(seen, streams);
    const after: string[] = [];
    for await (const info of client.listAllStreams("page-basin-a", { startAfter: "s1" })) {
      after.push(info.name);
    }
    assert.deepEqual(after, ["s2", "s3"]);
  });

  it("appends and checks the tail through a stream handle", async () => {
    await client.account.createBasin({ basin: "handle-basin" });
    const stream = client.basin("handle-basin").stream("events");
    await client.basin("handle-basin").createStream("events");
    const session = stream.appendSession({ lingerMs: 0 });
    const ack = await session.append([{ body: "a" }, { body: "b", headers: [["k", "v"]] }]);
    assert.equal(ack.startSeqNum, 0n);
    assert.equal(ack.endSeqNum, 2n);
    await session.close();
    assert.equal((await stream.checkTail()).seqNum, 2n);
    const bodies: string[] = [];
    for await (const record of stream.readSession({ startSeqNum: 0n, count: 2n })) {
      bodies.push(new TextDecoder().decode(record.body));
    }
    assert.deepEqual(bodies, ["a", "b"]);
  });
});
