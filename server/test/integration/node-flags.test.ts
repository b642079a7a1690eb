// Goal: `tributary serve` runs the server with its V8 flags (src/node-flags.ts), in the same
// process a supervisor started, and leaves a flag the operator set alone. Method: the `tributary`
// command on these sources (`node scripts/tributary-dev.mjs serve`, the path the installed bin
// takes too) spawned as a user would, its command line read from /proc once it serves, and the
// decision's rules on their own.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { missingNodeFlags, serverNodeFlags } from "../../src/node-flags.js";

const binPath = new URL("../../../scripts/tributary-dev.mjs", import.meta.url).pathname;
/** A server that has not said it is ready by then fails the test. */
const readyTimeoutMs = 60_000;

const started = new Set<ChildProcess>();
const dirs: string[] = [];
after(async () => {
  for (const child of started) child.kill("SIGKILL");
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Starts `tributary serve` with `env` added; resolves with its pid once it serves. */
async function serve(env: Record<string, string>): Promise<{ child: ChildProcess; pid: number }> {
  const cacheDir = await mkdtemp(path.join(tmpdir(), "tributary-node-flags-"));
  dirs.push(cacheDir);
  const child = spawn(
    process.execPath,
    [binPath, "serve", "--port", "0", "--no-auth", "--cache-dir", cacheDir],
    {
      env: { ...(process.env as Record<string, string>), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  started.add(child);
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`not ready in time:\n${output}`)),
      readyTimeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (/ready on port \d+/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was ready:\n${output}`));
    });
  });
  assert.ok(child.pid !== undefined);
  return { child, pid: child.pid };
}

function commandLineOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8")
    .split("\0")
    .filter((arg) => arg !== "");
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
  started.delete(child);
}

describe("the server's node flags", () => {
  it("tributary serve relaunches itself with them, in the process that was started", async () => {
    const { child, pid } = await serve({ NODE_OPTIONS: "" });
    const args = commandLineOf(pid);
    for (const flag of serverNodeFlags) {
      assert.ok(args.includes(flag), `${flag} on the command line: ${args.join(" ")}`);
    }
    assert.ok(args.includes(binPath) && args.includes("serve"), "the same script and words");
    await stop(child);
  });

  it("leaves a flag set in NODE_OPTIONS as the operator set it", async () => {
    const { child, pid } = await serve({ NODE_OPTIONS: "--max-semi-space-size=4" });
    const args = commandLineOf(pid);
    assert.ok(
      !args.some((arg) => arg.startsWith("--max-semi-space-size")),
      `no relaunch: ${args.join(" ")}`,
    );
    await stop(child);
  });

  it("finds a flag by name, in either spelling, on the command line or in NODE_OPTIONS", () => {
    const flags = ["--max-semi-space-size=8"];
    assert.deepEqual(missingNodeFlags(flags, [], ""), flags);
    assert.deepEqual(missingNodeFlags(flags, ["--import", "tsx"], "--no-warnings"), flags);
    assert.deepEqual(missingNodeFlags(flags, ["--max-semi-space-size=16"], ""), []);
    assert.deepEqual(missingNodeFlags(flags, [], "  --max_semi_space_size=2  "), []);
    assert.deepEqual(missingNodeFlags(flags, ["--max-old-space-size=8"], ""), flags);
  });
});
