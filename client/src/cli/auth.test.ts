// Goal: against a server that checks tokens, the CLI sends S2_ACCESS_TOKEN and turns a missing,
// unknown or out-of-scope token into one line naming the S2 code, with exit code 1. Method: the
// server process with a root token; a read-only token issued through the client library.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../../server/test/support/server-process.js";
import { createTributaryClient } from "../client.js";
import { runCaptured } from "./test-io.js";

const rootToken = "cli-auth-root-token";
const basin = "cli-auth-basin";

describe("tributary CLI with access tokens", () => {
  let server: ServerProcess;
  let readOnlyToken: string;
  const env = (token: string | undefined) => ({
    S2_ACCOUNT_ENDPOINT: server.endpoint,
    S2_ACCESS_TOKEN: token,
  });

  before(async () => {
    server = await startServer({ mode: "memory", rootToken });
    const client = createTributaryClient({ baseUrl: server.endpoint, token: rootToken });
    await client.account.createBasin({ basin });
    const issued = await client.account.issueAccessToken({
      info: {
        id: "cli-read-only",
        scope: {
          basins: { matching: { case: "prefix", value: "" } },
          opGroups: { account: { read: true } },
        },
      },
    });
    readOnlyToken = issued.accessToken;
  });

  after(async () => {
    await server?.cleanup();
  });

  it("works with the root token", async () => {
    const result = await runCaptured(["list-basins", "--json"], { env: env(rootToken) });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      (JSON.parse(result.stdout) as { name: string }[]).map((b) => b.name),
      [basin],
    );
  });

  it("reports a missing or unknown token as authn, exit 1", async () => {
    for (const token of [undefined, "not-a-token"]) {
      const result = await runCaptured(["list-basins"], { env: env(token) });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /^error: authn: .+\n$/);
      assert.equal(result.stdout, "");
    }
  });

  it("lets a read-only token list but not create, with permission_denied", async () => {
    const listed = await runCaptured(["list-basins"], { env: env(readOnlyToken) });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(basin));
    const created = await runCaptured(["create-basin", "cli-auth-other"], {
      env: env(readOnlyToken),
    });
    assert.equal(created.code, 1);
    assert.match(created.stderr, /^error: permission_denied: .+\n$/);
  });
});
