// The three packages work outside this repository, as the README's "Install" section says: the
// tarballs that `npm pack` makes of @tributary/protocol, @tributary/server and @tributary/client
// install into an empty directory, `npx tributary serve` runs from there (serving the built web
// console), and the installed CLI and client library append and read back the same bytes. Method: the tarballs of `make pack`
// (TRIBUTARY_PACKS_DIR, else this test runs `make pack`) are installed with `npm install
// --prefer-offline` into a temp directory, and every command runs there with plain `node` (no tsx,
// no TypeScript installed); what it starts is killed at the end, and every step is time-bounded.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { serverNodeFlags } from "../../src/node-flags.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const packTimeoutMs = 300_000;
const installTimeoutMs = 180_000;
const startTimeoutMs = 30_000;
const commandTimeoutMs = 30_000;
const stopTimeoutMs = 10_000;
const packageNames = ["protocol", "server", "client"] as const;

/** npm and npx of the Node running this test (Makefile's PATH may name another first). */
function npmTool(name: "npm" | "npx"): string {
  const beside = join(dirname(process.execPath), name);
  return existsSync(beside) ? beside : name;
}

interface Run {
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs a command to its end, failing with its output on a non-zero exit or after `timeoutMs`. */
function run(
  file: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; stdin?: Uint8Array; timeoutMs: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        encoding: "buffer",
        timeout: options.timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 64 << 20,
      },
      (error, stdout, stderr) => {
        if (error !== null) {
          reject(
            new Error(`${file} ${args.join(" ")} failed: ${error.message}\n${stderr.toString()}`),
          );
        } else resolve({ stdout, stderr: stderr.toString() });
      },
    );
    child.stdin?.end(options.stdin ?? new Uint8Array(0));
  });
}

/** The environment of the installed commands: no inherited S2_* settings, no tsx via NODE_OPTIONS. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of Object.keys(env)) if (key.startsWith("S2_")) delete env[key];
  delete env["NODE_OPTIONS"];
  return { ...env, ...extra };
}

let installDir = "";
let server: ChildProcess | undefined;
let endpoint = "";
const rootToken = `pack-install-${randomBytes(8).toString("hex")}`;

async function tarballs(): Promise<string[]> {
  let packsDir = process.env["TRIBUTARY_PACKS_DIR"];
  if (packsDir === undefined) {
    await run("make", ["-s", "pack"], { cwd: repoRoot, timeoutMs: packTimeoutMs });
    packsDir = join(repoRoot, ".packs");
  }
  const files = (await readdir(packsDir)).filter((name) => name.endsWith(".tgz"));
  for (const name of packageNames) {
    assert.ok(files.includes(`tributary-${name}-0.1.0.tgz`), `no ${name} tarball in ${packsDir}`);
  }
  return files.map((name) => join(packsDir, name));
}

/** Stops the server's whole process group (npx, its shell and node), forcibly if it lingers. */
async function stopServer(): Promise<void> {
  const child = server;
  if (child === undefined || child.pid === undefined) return;
  server = undefined;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.kill(-child.pid, "SIGTERM");
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {}
  }, stopTimeoutMs);
  await exited;
  clearTimeout(timer);
}

before(async () => {
  const files = await tarballs();
  installDir = await mkdtemp(join(tmpdir(), "tributary-install-"));
  assert.ok(relative(repoRoot, installDir).startsWith(".."), "the install is outside the repo");
  // Its own package.json, so that npm installs here and not into a project further up.
  await writeFile(
    join(installDir, "package.json"),
    `${JSON.stringify({ name: "tributary-install-test", private: true, type: "module" })}\n`,
  );
  await run(npmTool("npm"), ["install", "--prefer-offline", "--no-audit", "--no-fund", ...files], {
    cwd: installDir,
    env: cleanEnv({}),
    timeoutMs: installTimeoutMs,
  });

  const child = spawn(
    npmTool("npx"),
    ["tributary", "serve", "--port", "0", "--root-token", rootToken],
    { cwd: installDir, env: cleanEnv({}), detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  server = child;
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`npx tributary serve was not ready in time:\n${output}`)),
      startTimeoutMs,
    );
    child.stdout.on("data", () => {
      const match = /ready on port (\d+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`npx tributary serve exited with ${code}:\n${output}`));
    });
  });
  endpoint = `http://127.0.0.1:${port}`;
});

after(async () => {
  await stopServer();
  if (installDir !== "") await rm(installDir, { recursive: true, force: true });
});

/** Runs the installed `tributary` CLI against the server. */
function cli(args: readonly string[], stdin?: Uint8Array): Promise<Run> {
  return run(npmTool("npx"), ["tributary", ...args], {
    cwd: installDir,
    env: cleanEnv({
      S2_ACCOUNT_ENDPOINT: endpoint,
      S2_BASIN_ENDPOINT: endpoint,
      S2_ACCESS_TOKEN: rootToken,
    }),
    ...(stdin !== undefined && { stdin }),
    timeoutMs: commandTimeoutMs,
  });
}

/** The command lines of the processes in the server's process group (npx, a shell, node). */
function serverGroupCommandLines(): string[][] {
  const group = server?.pid;
  assert.ok(group !== undefined, "the server runs");
  const found: string[][] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Field 5 (pgrp), after the parenthesised command name.
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== group) continue;
      found.push(
        readFileSync(`/proc/${name}/cmdline`, "utf8")
          .split("\0")
          .filter((a) => a !== ""),
      );
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

test("the installed server runs with its V8 flags (it relaunches itself with them)", () => {
  const lines = serverGroupCommandLines();
  // npx's own process and a shell, then node running the installed bin.
  const node = lines.find((args) => /(^|\/)node$/.test(args[0] ?? "") && args.includes("serve"));
  assert.ok(node !== undefined, `the bin's node process: ${JSON.stringify(lines)}`);
  for (const flag of serverNodeFlags) assert.ok(node.includes(flag), `${flag}: ${node.join(" ")}`);
});

test("the install holds the three packages and no TypeScript tooling", async () => {
  const modules = await readdir(join(installDir, "node_modules"));
  assert.deepEqual((await readdir(join(installDir, "node_modules", "@tributary"))).sort(), [
    "client",
    "protocol",
    "server",
  ]);
  for (const tool of ["tsx", "typescript", "esbuild"]) {
    assert.ok(!modules.includes(tool), `${tool} was installed`);
  }
});

test("the installed server serves the web console it ships (bundle and stylesheets)", async () => {
  for (const path of [
    "/console",
    "/console/console.css",
    "/console/uplot.css",
    "/console/console.js",
  ]) {
    const response = await fetch(`${endpoint}${path}`, {
      signal: AbortSignal.timeout(commandTimeoutMs),
    });
    assert.equal(response.status, 200, path);
    assert.ok((await response.arrayBuffer()).byteLength > 0, path);
  }
});

test("the installed CLI creates a basin and a stream, appends, and reads the bytes back", async () => {
  await cli(["create-basin", "pack-install"]);
  await cli(["create-stream", "s2://pack-install/cli"]);
  const lines = "first\nsecond record\nthird\n";
  await cli(["append", "s2://pack-install/cli"], Buffer.from(lines));
  const text = await cli(["read", "s2://pack-install/cli", "--seq-num", "0", "--count", "3"]);
  assert.equal(text.stdout.toString(), lines);

  const body = randomBytes(64 << 10); // every byte value, newlines included
  await cli(["append", "s2://pack-install/cli", "--format", "raw"], body);
  const raw = await cli([
    "read",
    "s2://pack-install/cli",
    "--seq-num",
    "3",
    "--count",
    "1",
    "--format",
    "raw",
  ]);
  assert.ok(raw.stdout.equals(body), "the raw record read back differs");
  const tail = await cli(["check-tail", "s2://pack-install/cli"]);
  assert.match(tail.stdout.toString(), /^4 @ \d+$/m);
});

test("the installed client library appends and reads the same bytes, in a plain node process", async () => {
  // Bodies of every length 0..255 with random bytes, sent in one append session and read back in
  // one read session; the stream the CLI wrote is read too, and a missing stream's error code
  // comes back as the protocol package's table names it.
  const script = `
import { createTributaryClient, s2ErrorCodeOf } from "@tributary/client";
import { errorCodeInfo } from "@tributary/protocol";
import { randomBytes } from "node:crypto";

const [endpoint, token] = process.argv.slice(2);
const client = createTributaryClient({ baseUrl: endpoint, token });
const basin = client.basin("pack-install");
await basin.createStream("lib");
const stream = basin.stream("lib");
const bodies = Array.from({ length: 256 }, (_, i) => randomBytes(i));
const session = stream.appendSession();
const tickets = [];
for (const body of bodies) tickets.push(await session.submit([{ body, headers: [["n", "v"]] }]));
await session.close();
const acks = await Promise.all(tickets.map((ticket) => ticket.ack()));
const read = [];
for await (const record of stream.readSession({ startSeqNum: 0n, count: BigInt(bodies.length) })) {
  read.push(record);
}
const same =
  read.length === bodies.length &&
  read.every((record, i) => Buffer.from(record.body).equals(bodies[i]) && record.seqNum === BigInt(i));
const cliBodies = [];
for await (const record of basin.stream("cli").readSession({ startSeqNum: 0n, count: 3n })) {
  cliBodies.push(new TextDecoder().decode(record.body));
}
let missing;
try {
  await basin.stream("missing").checkTail();
} catch (error) {
  missing = s2ErrorCodeOf(error);
}
console.log(JSON.stringify({
  same,
  lastAck: String(acks.at(-1).startSeqNum),
  tail: String((await stream.checkTail()).seqNum),
  cliBodies,
  missing,
  missingHttp: errorCodeInfo[missing]?.http,
}));
`;
  await writeFile(join(installDir, "drive.mjs"), script);
  const result = await run(process.execPath, ["drive.mjs", endpoint, rootToken], {
    cwd: installDir,
    env: cleanEnv({}),
    timeoutMs: commandTimeoutMs,
  });
  assert.deepEqual(JSON.parse(result.stdout.toString()), {
    same: true,
    lastAck: "255",
    tail: "256",
    cliBodies: ["first", "second record", "third"],
    missing: "stream_not_found",
    missingHttp: 404,
  });
});

test("the installed client's browser condition bundles without Node modules", async () => {
  // esbuild resolves the `browser` condition of the exports map as a browser bundler does.
  const result = await build({
    stdin: {
      contents: 'export { createTributaryClient } from "@tributary/client";',
      resolveDir: installDir,
    },
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(inputs.some((input) => input.endsWith("@tributary/client/dist/browser.js")));
  assert.ok(!inputs.some((input) => input.includes("connect-node") || input.startsWith("node:")));
});
