// Goal: a batch delete reaches S3-compatible servers that insist on Content-MD5 (some MinIO
// versions, s3proxy, OVH answer MissingContentMD5 to the SDK's CRC32 header alone), and a
// DeleteObjects answer that lists failed keys fails the call while missing keys do not. Method: the
// S3 store against a small loopback HTTP server that speaks just enough of DeleteObjects and checks
// the header as those servers do (moto, the conformance suite's S3, accepts either header).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ObjectStoreError } from "./errors.js";
import { createS3ObjectStore } from "./s3.js";

/** What the fake server answers to the next DeleteObjects: `<Error>` entries of its result. */
let failures: { key: string; code: string }[] = [];
const seen: { contentMd5: string | undefined; bodyMd5: string }[] = [];
let server: Server;
let endpoint: string;

before(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      const bodyMd5 = createHash("md5").update(body).digest("base64");
      const contentMd5 = request.headers["content-md5"] as string | undefined;
      seen.push({ contentMd5, bodyMd5 });
      response.setHeader("content-type", "application/xml");
      if (request.method !== "POST" || !(request.url ?? "").includes("delete")) {
        response.writeHead(400).end("<Error><Code>InvalidRequest</Code></Error>");
        return;
      }
      if (contentMd5 !== bodyMd5) {
        response
          .writeHead(400)
          .end(
            "<Error><Code>MissingContentMD5</Code><Message>Missing Content-MD5</Message></Error>",
          );
        return;
      }
      const errors = failures
        .map((f) => `<Error><Key>${f.key}</Key><Code>${f.code}</Code><Message>x</Message></Error>`)
        .join("");
      response
        .writeHead(200)
        .end(
          `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${errors}</DeleteResult>`,
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function store() {
  return createS3ObjectStore({
    bucket: "bucket",
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
}

describe("s3 batch delete", () => {
  it("sends Content-MD5 of its body, which a strict server accepts", async () => {
    seen.length = 0;
    failures = [];
    const s3 = store();
    try {
      await s3.delete(["wal/1", "wal/2", "chunks/3"]);
    } finally {
      await s3.close();
    }
    assert.equal(seen.length, 1, "one request for the batch");
    assert.equal(seen[0]!.contentMd5, seen[0]!.bodyMd5);
  });

  it("fails when the answer lists a failed key, not when it lists a missing one", async () => {
    const s3 = store();
    try {
      failures = [{ key: "wal/1", code: "NoSuchKey" }];
      await s3.delete(["wal/1", "wal/2"]);
      failures = [
        { key: "wal/1", code: "NoSuchKey" },
        { key: "wal/2", code: "AccessDenied" },
      ];
      await assert.rejects(s3.delete(["wal/1", "wal/2"]), (error: unknown) => {
        assert.ok(error instanceof ObjectStoreError);
        assert.match(error.message, /failed=`1` keys=`2` first=`wal\/2` code=`AccessDenied`/);
        return true;
      });
    } finally {
      failures = [];
      await s3.close();
    }
  });
});
