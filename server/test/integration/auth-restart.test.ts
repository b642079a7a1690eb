// Goal: access tokens are durable metadata (docs/design/auth.md "Restart and recovery"): after a
// restart an issued token still works with its scope, a revoked one stays revoked and the listing
// is unchanged, whether the cache was kept or deleted (then rebuilt from the WAL). Method: the
// real server process in local-directory mode, stopped gracefully, once restarted on the same
// cache and once with the cache directory deleted; a SIGKILL restart covers acked-then-crashed.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../support/server-process.js";

const rootToken = "restart-root-token";

async function rest(
  server: ServerProcess,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${server.endpoint}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: response.status, text: await response.text() };
}

describe("access tokens across restarts (local mode)", () => {
  let localRoot: string;
  let cacheDir: string;
  let server: ServerProcess | undefined;
  let kept: string;
  let revoked: string;
  let listingBefore: string;

  const start = async (): Promise<ServerProcess> => {
    server = await startServer({ mode: "local", localRoot, cacheDir, rootToken });
    return server;
  };

  /** The checks every restart must pass. */
  const assertTokensSurvived = async (current: ServerProcess): Promise<void> => {
    const listing = await rest(current, "GET", "/v1/access-tokens", rootToken);
    assert.equal(listing.status, 200);
    assert.equal(listing.text, listingBefore);
    const inScope = await rest(current, "GET", "/v1/basins/restart-basin-1", kept);
    assert.equal(inScope.status, 200, inScope.text);
    const outOfScope = await rest(current, "DELETE", "/v1/basins/restart-basin-1", kept);
    assert.equal(outOfScope.status, 403, outOfScope.text);
    const gone = await rest(current, "GET", "/v1/basins/restart-basin-1", revoked);
    assert.equal(gone.status, 401, gone.text);
    // The id of a revoked token is free again; the live one's is not.
    const reissue = await rest(current, "POST", "/v1/access-tokens", rootToken, {
      id: "kept",
      scope: { ops: ["read"] },
    });
    assert.equal(reissue.status, 409, reissue.text);
  };

  before(async () => {
    localRoot = await mkdtemp(join(tmpdir(), "tributary-auth-objects-"));
    cacheDir = await mkdtemp(join(tmpdir(), "tributary-auth-cache-"));
    const first = await start();
    const created = await rest(first, "POST", "/v1/basins", rootToken, {
      basin: "restart-basin-1",
    });
    assert.equal(created.status, 201, created.text);
    const issue = async (id: string): Promise<string> => {
      const response = await rest(first, "POST", "/v1/access-tokens", rootToken, {
        id,
        scope: { basins: { prefix: "restart-" }, ops: ["get-basin-config"] },
      });
      assert.equal(response.status, 201, response.text);
      return (JSON.parse(response.text) as { access_token: string }).access_token;
    };
    kept = await issue("kept");
    revoked = await issue("revoked");
    assert.equal((await rest(first, "DELETE", "/v1/access-tokens/revoked", rootToken)).status, 204);
    listingBefore = (await rest(first, "GET", "/v1/access-tokens", rootToken)).text;
    assert.match(listingBefore, /"id":"kept"/);
    assert.doesNotMatch(listingBefore, /"id":"revoked"/);
  });

  after(async () => {
    await server?.cleanup();
    await rm(localRoot, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  });

  it("keeps tokens with the cache kept", async () => {
    assert.equal(await server?.stop(), 0);
    await assertTokensSurvived(await start());
  });

  it("rebuilds tokens from the WAL with the cache deleted", async () => {
    assert.equal(await server?.stop(), 0);
    await rm(cacheDir, { recursive: true, force: true });
    await assertTokensSurvived(await start());
  });

  it("keeps an acknowledged revoke across a crash", async () => {
    const current = server!;
    const response = await rest(current, "POST", "/v1/access-tokens", rootToken, {
      id: "crash-victim",
      scope: { ops: ["list-basins"] },
    });
    assert.equal(response.status, 201, response.text);
    const secret = (JSON.parse(response.text) as { access_token: string }).access_token;
    assert.equal(
      (await rest(current, "DELETE", "/v1/access-tokens/crash-victim", rootToken)).status,
      204,
    );
    await current.kill();
    const restarted = await start();
    assert.equal((await rest(restarted, "GET", "/v1/basins", secret)).status, 401);
    await assertTokensSurvived(restarted);
  });
});
