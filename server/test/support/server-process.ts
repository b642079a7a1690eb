/**
 * Starts the real server process (`server/src/main.ts`) for integration tests, in memory mode,
 * local-directory mode or S3 mode against moto, on a port it picks itself (`--port 0`, read back
 * from the ready line), and an official S2 SDK client pointed at it. Every process started here is
 * killed when the test process exits.
 */
import { serverNodeFlags } from "../../src/node-flags.js";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S2 } from "@s2-dev/streamstore";
import { createTestBucket, s3TestEndpoint } from "./moto.js";

const mainPath = new URL("../../src/main.ts", import.meta.url).pathname;
const startTimeoutMs = 30_000;
const stopTimeoutMs = 15_000;
const running = new Set<ChildProcess>();

process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export type ServerMode = "memory" | "local" | "s3";

export interface StartServerOptions {
  readonly mode: ServerMode;
  /** Extra flags. */
  readonly args?: readonly string[];
  /** Reuse a cache directory (restarts); a fresh temp dir otherwise. */
  readonly cacheDir?: string;
  /** Reuse an object store location (restarts): a local root or an S3 bucket. */
  readonly localRoot?: string;
  readonly bucket?: string;
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Start with auth on and this root token (`--root-token`); without it the server runs with
   * `--no-auth`, s2-lite's open behaviour, which every test that is not about auth relies on.
   */
  readonly rootToken?: string;
}

export interface ServerProcess {
  readonly port: number;
  readonly endpoint: string;
  readonly child: ChildProcess;
  readonly cacheDir: string;
  readonly localRoot: string | undefined;
  readonly bucket: string | undefined;
  /** The root token the server was started with; undefined when it runs with `--no-auth`. */
  readonly rootToken: string | undefined;
  /** Everything the process printed so far. */
  output(): string;
  /** SIGTERM and wait for exit (graceful). */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Removes the temp directories this helper created. */
  cleanup(): Promise<void>;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Starts the server and waits for its ready line. */
export async function startServer(options: StartServerOptions): Promise<ServerProcess> {
  const createdDirs: string[] = [];
  const cacheDir = options.cacheDir ?? (await mkdtemp(join(tmpdir(), "tributary-test-cache-")));
  if (options.cacheDir === undefined) createdDirs.push(cacheDir);
  // With the V8 flags `tributary serve` relaunches itself with (src/node-flags.ts).
  const args = [
    ...serverNodeFlags,
    "--import",
    "tsx",
    mainPath,
    "serve",
    "--port",
    "0",
    "--cache-dir",
    cacheDir,
  ];
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...options.env,
  };
  let localRoot = options.localRoot;
  let bucket = options.bucket;
  if (options.mode === "local") {
    if (localRoot === undefined) {
      localRoot = await mkdtemp(join(tmpdir(), "tributary-test-objects-"));
      createdDirs.push(localRoot);
    }
    args.push("--local-root", localRoot);
  } else if (options.mode === "s3") {
    const endpoint = await s3TestEndpoint();
    bucket ??= await createTestBucket(endpoint);
    args.push("--bucket", bucket);
    Object.assign(env, {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_REGION: "us-east-1",
    });
  }
  if (options.rootToken === undefined) args.push("--no-auth");
  else args.push("--root-token", options.rootToken);
  args.push(...(options.args ?? []));
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start in time:\n${output}`)),
      startTimeoutMs,
    );
    const check = (): void => {
      const match = /ready on port (\d+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready:\n${output}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    port,
    endpoint,
    child,
    cacheDir,
    localRoot,
    bucket,
    rootToken: options.rootToken,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
      const code = await exited(child);
      clearTimeout(timer);
      return code;
    },
    async kill() {
      child.kill("SIGKILL");
      await exited(child);
    },
    async cleanup() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited(child);
      }
      for (const dir of createdDirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An official S2 SDK client for the server, as a user would configure it: with the server's root
 * token when it has one, else with any token (a `--no-auth` server ignores it), or with the given
 * token.
 */
export function s2ClientFor(
  server: { endpoint: string; rootToken?: string | undefined },
  accessToken?: string,
): S2 {
  return new S2({
    accessToken: accessToken ?? server.rootToken ?? "ignored",
    endpoints: { account: server.endpoint, basin: server.endpoint },
  });
}
