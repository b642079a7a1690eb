// Goal: streams are created on append and on read when the basin says so, and not otherwise, as
// S2 does (S2-API.md §6.7). Method: the official SDK against the server process, in memory mode
// and in S3 mode against moto.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AppendInput, AppendRecord, type S2 } from "@s2-dev/streamstore";
import {
  type ServerMode,
  type ServerProcess,
  s2ClientFor,
  startServer,
} from "../support/server-process.js";

for (const mode of ["memory", "s3"] as const satisfies readonly ServerMode[]) {
  describe(`auto-create (${mode})`, () => {
    let server: ServerProcess;
    let s2: S2;
    before(async () => {
      server = await startServer({ mode });
      s2 = s2ClientFor(server);
      await s2.basins.create({ basin: "auto-append", config: { createStreamOnAppend: true } });
      await s2.basins.create({ basin: "auto-read", config: { createStreamOnRead: true } });
      await s2.basins.create({ basin: "no-auto-create" });
    });
    after(async () => {
      await server.cleanup();
    });

    it("creates a stream on its first append when the basin allows it", async () => {
      const stream = s2.basin("auto-append").stream("fresh/one");
      const ack = await stream.append(AppendInput.create([AppendRecord.string({ body: "first" })]));
      assert.equal(ack.start.seqNum, 0);
      const listed = await s2.basin("auto-append").streams.list({ prefix: "fresh/" });
      assert.deepEqual(
        listed.streams.map((info) => info.name),
        ["fresh/one"],
      );
      // Reads do not create in this basin.
      await assert.rejects(
        s2.basin("auto-append").stream("never").checkTail(),
        (error: unknown) => {
          assert.equal((error as { status?: number }).status, 404);
          return true;
        },
      );
    });

    it("creates a stream on read and check-tail when the basin allows it", async () => {
      const tail = await s2.basin("auto-read").stream("on-tail").checkTail();
      assert.deepEqual(tail.tail.seqNum, 0);
      const names = (await s2.basin("auto-read").streams.list()).streams.map((info) => info.name);
      assert.ok(names.includes("on-tail"), names.join(","));
      await assert.rejects(
        s2
          .basin("auto-read")
          .stream("on-append")
          .append(AppendInput.create([AppendRecord.string({ body: "x" })])),
        (error: unknown) => {
          assert.equal((error as { status?: number }).status, 404);
          return true;
        },
      );
    });

    it("answers 404 without creating anything when the basin does not allow it", async () => {
      await assert.rejects(
        s2
          .basin("no-auto-create")
          .stream("ghost")
          .append(AppendInput.create([AppendRecord.string({ body: "x" })])),
        (error: unknown) => {
          assert.equal((error as { status?: number }).status, 404);
          return true;
        },
      );
      assert.deepEqual((await s2.basin("no-auto-create").streams.list()).streams, []);
    });
  });
}
