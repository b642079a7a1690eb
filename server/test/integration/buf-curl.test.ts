// Goal: `buf curl` (from @bufbuild/buf), a client that knows our services only from `proto/`, can
// call a unary and a streaming RPC over each protocol and sees errors with their S2 code. Method:
// the real server process in memory mode; `buf curl --schema proto` run as a child process.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type ServerProcess, startServer } from "../support/server-process.js";

const run = promisify(execFile);
const repoRoot = new URL("../../../", import.meta.url).pathname;
const bufPath = `${repoRoot}node_modules/.bin/buf`;
const basin = "buf-curl-basin";

type Protocol = "connect" | "grpc" | "grpcweb";

/** Runs `buf curl` and returns stdout and stderr; rejects on a non-zero exit. */
async function bufCurl(
  server: ServerProcess,
  protocol: Protocol,
  procedure: string,
  body: unknown,
  extra: string[] = [],
): Promise<{ stdout: string; stderr: string }> {
  return run(
    bufPath,
    [
      "curl",
      "--schema",
      "proto",
      "--protocol",
      protocol,
      ...(protocol === "grpc" ? ["--http2-prior-knowledge"] : []),
      "-d",
      JSON.stringify(body),
      ...extra,
      `${server.endpoint}/${procedure}`,
    ],
    { cwd: repoRoot, timeout: 60_000 },
  );
}

/** `buf curl` prints one JSON document per response message (`-v` lines start with `buf: `). */
function jsonDocuments(output: string): unknown[] {
  const text = output
    .split("\n")
    .filter((line) => !line.startsWith("buf: "))
    .join("\n");
  const documents: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) documents.push(JSON.parse(text.slice(start, i + 1)));
  }
  return documents;
}

describe("buf curl", () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer({ mode: "memory" });
  });

  after(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it("calls unary and server-streaming RPCs over gRPC, Connect and gRPC-web", async () => {
    const created = await bufCurl(server, "grpc", "tributary.v1.AccountService/CreateBasin", {
      basin,
      config: { createStreamOnAppend: true },
    });
    const createdBasin = jsonDocuments(created.stdout)[0] as {
      info: { name: string; state: string };
      result: string;
    };
    assert.equal(createdBasin.info.name, basin);
    assert.equal(createdBasin.info.state, "BASIN_STATE_ACTIVE");
    assert.equal(createdBasin.result, "PROVISION_RESULT_CREATED");
    const appended = await bufCurl(server, "connect", "tributary.v1.StreamService/Append", {
      basin,
      stream: "s",
      input: { records: [{ body: "aGk=" }, { body: "dGhlcmU=" }] },
    });
    const { ack } = jsonDocuments(appended.stdout)[0] as { ack: { end: { seqNum: string } } };
    assert.equal(ack.end.seqNum, "2");
    for (const protocol of ["grpc", "connect", "grpcweb"] as const) {
      const read = await bufCurl(server, protocol, "tributary.v1.StreamService/ReadSession", {
        basin,
        stream: "s",
        seqNum: "0",
        count: "2",
      });
      const batches = jsonDocuments(read.stdout) as { batch: { records: { body: string }[] } }[];
      assert.deepEqual(
        batches.flatMap((message) => message.batch.records.map((record) => record.body)),
        ["aGk=", "dGhlcmU="],
        protocol,
      );
    }
  });

  it("shows an error's code and its S2 code", async () => {
    await assert.rejects(
      bufCurl(
        server,
        "grpc",
        "tributary.v1.StreamService/CheckTail",
        { basin: "no-such-basin", stream: "s" },
        ["-v"],
      ),
      (error: { stdout: string; stderr: string }) => {
        assert.deepEqual(jsonDocuments(error.stderr).at(-1), {
          code: "not_found",
          message: "basin `no-such-basin` not found",
        });
        assert.match(error.stderr, /S2-Error-Code: basin_not_found/i);
        return true;
      },
    );
  });
});
