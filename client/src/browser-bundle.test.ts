// Goal: the browser entry's import graph holds nothing Node-only (no `node:*` builtin, no
// @connectrpc/connect-node), so that a web app can bundle it. Method: bundle `browser.ts` with
// esbuild for the browser, as a web app's bundler would, and list the modules it pulled in; the
// Node entry `client.ts` is bundled the same way as a control that must fail.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { build } from "esbuild";

const root = new URL("../../", import.meta.url).pathname;

/** Bundles `entry` for the browser without writing it; returns the inputs esbuild resolved. */
async function bundleForBrowser(entry: string): Promise<string[]> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  return Object.keys(result.metafile.inputs);
}

describe("browser bundle", () => {
  it("bundles the browser entry without Node builtins or connect-node", async () => {
    const inputs = await bundleForBrowser("client/src/browser.ts");
    assert.ok(inputs.includes("client/src/browser.ts"));
    assert.ok(
      inputs.some((input) => input.includes("@connectrpc/connect-web/")),
      "bundles connect-web",
    );
    const nodeOnly = inputs.filter(
      (input) =>
        input.startsWith("node:") ||
        input.includes("@connectrpc/connect-node/") ||
        input.endsWith("client/src/node-transport.ts"),
    );
    assert.deepEqual(nodeOnly, []);
  });

  it("fails to bundle the Node entry for the browser (the check above can fail)", async () => {
    await assert.rejects(bundleForBrowser("client/src/client.ts"), /node:http2|node:/);
  });
});
