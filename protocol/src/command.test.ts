// The `tributary` command picks the same half of itself in both packages, and says which package
// to install when that half is missing. Method: `runTributaryCommand` with fake loaders and a
// fake process that records what it writes and its exit code.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type CommandProcess, runTributaryCommand, tributaryCommandOf } from "./command.js";

test("serve, no word and a flag first are the server's; other words and help the CLI's", () => {
  for (const args of [[], ["serve"], ["serve", "--port", "0"], ["--port", "1"]]) {
    assert.equal(tributaryCommandOf(args), "serve", args.join(" "));
  }
  for (const args of [["help"], ["--help"], ["-h"], ["ls"], ["create-basin", "b"], ["bench"]]) {
    assert.equal(tributaryCommandOf(args), "cli", args.join(" "));
  }
});

class Exited extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function fakeProcess(args: readonly string[]): CommandProcess & { written: string } {
  const fake = {
    argv: ["node", "tributary", ...args],
    written: "",
    stderr: { write: (text: string) => (fake.written += text) },
    exit: (code: number): never => {
      throw new Exited(code);
    },
  };
  return fake;
}

function missing(name: string): Error {
  return Object.assign(new Error(`Cannot find package '${name}' imported from /x/bin.mjs`), {
    code: "ERR_MODULE_NOT_FOUND",
  });
}

test("each half runs what its loader gives, with the words after `tributary`", async () => {
  const seen: string[] = [];
  const loaders = {
    serve: async () => seen.push("serve"),
    cli: async () => ({
      runCliProcess: async (argv: string[]) => void seen.push(`cli ${argv.join(" ")}`),
    }),
  };
  await runTributaryCommand({ process: fakeProcess(["serve", "--port", "0"]), ...loaders });
  await runTributaryCommand({ process: fakeProcess(["ls", "s2://b"]), ...loaders });
  assert.deepEqual(seen, ["serve", "cli ls s2://b"]);
});

test("a missing package exits 2 naming it; any other failure is thrown", async () => {
  const cliMissing = fakeProcess(["create-basin", "b"]);
  await assert.rejects(
    runTributaryCommand({
      process: cliMissing,
      serve: async () => undefined,
      cli: () => Promise.reject(missing("@tributary/client")),
    }),
    (error) => error instanceof Exited && error.code === 2,
  );
  assert.match(cliMissing.written, /`create-basin`.*npm install @tributary\/client\n$/);

  const serverMissing = fakeProcess(["serve"]);
  await assert.rejects(
    runTributaryCommand({
      process: serverMissing,
      serve: () => Promise.reject(missing("@tributary/server")),
      cli: () => Promise.reject(new Error("not loaded")),
    }),
    (error) => error instanceof Exited && error.code === 2,
  );
  assert.match(serverMissing.written, /the server needs @tributary\/server/);

  // A dependency missing inside the server is not "the server is not installed".
  await assert.rejects(
    runTributaryCommand({
      process: fakeProcess([]),
      serve: () => Promise.reject(missing("classic-level")),
      cli: () => Promise.reject(new Error("not loaded")),
    }),
    /classic-level/,
  );
});
