/**
 * The server process (`tributary serve`): parses flags, opens storage (recovery and fencing), then
 * serves the S2 v1 API, `/health`, `/ping` and `/metrics` on one port. It prints the endpoint
 * settings for the S2 SDKs and CLI once ready, with the root access token when it generated one.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import { validateRootToken } from "./api/auth.js";
import { startApiServer } from "./api/server.js";
import { AssertionError } from "./core/assert.js";
import { systemClock } from "./core/clock.js";
import {
  accessTokenSecretBytes,
  checkpointIntervalMsMax,
  checkpointWalBytesMax,
  connectionsMaxBound,
  flushIntervalMsDefault,
  flushIntervalMsMax,
  gcGraceMsMax,
  metricsFlushIntervalMs as metricsFlushIntervalMsDefault,
  s2sFrameBufferBytesMaxBound,
  s2sFrameBytesMax,
  sessionsMaxBound,
} from "./core/limits.js";
import { systemRandom } from "./core/random.js";
import { accessTokenSecretPrefix } from "./service/access-tokens.js";
import { applyInitSpec, type InitSpec, parseInitFile } from "./service/init-file.js";
import { Service } from "./service/service.js";
import {
  createCacheDisk,
  describeObjectStore,
  openObjectStore,
  parseByteSize,
} from "./storage/open-stores.js";

const usage = [
  "usage: tributary serve [--port N] [--bucket B [--path P] | --local-root DIR] [--cache-dir DIR]",
  "                       [--flush-interval-ms N] [--init-file JSON] [--no-cors]",
  "                       [--metrics-flush-interval-ms N] [--cache-size N[KiB|MiB|GiB]]",
  "                       [--gc-grace-ms N] [--checkpoint-interval-ms N]",
  "                       [--checkpoint-wal-bytes N] [--no-compaction]",
  "                       [--max-connections N] [--max-sessions N]",
  "                       [--max-frame-buffer N[KiB|MiB|GiB]]",
  "                       [--tls-cert PEM --tls-key PEM] [--root-token T | --no-auth]",
].join("\n");

function fail(message: string): never {
  process.stderr.write(`tributary: ${message}\n${usage}\n`);
  process.exit(2);
}

process.on("uncaughtException", (error) => {
  const kind = error instanceof AssertionError ? "assertion failed" : "fatal";
  process.stderr.write(`tributary: ${kind}: ${error.stack ?? String(error)}\n`);
  process.exit(70);
});

function parseFlags() {
  // `serve` is the only command so far; it is optional so that `tributary --port 1` works too.
  const args = process.argv.slice(2);
  if (args[0] === "serve") args.shift();
  return parseArgs({
    args,
    options: {
      port: { type: "string", default: "8080" },
      bucket: { type: "string" },
      path: { type: "string" },
      "local-root": { type: "string" },
      "cache-dir": { type: "string" },
      "flush-interval-ms": { type: "string" },
      "no-cors": { type: "boolean", default: false },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "init-file": { type: "string" },
      "metrics-flush-interval-ms": { type: "string" },
      "cache-size": { type: "string" },
      "gc-grace-ms": { type: "string" },
      "checkpoint-interval-ms": { type: "string" },
      "checkpoint-wal-bytes": { type: "string" },
      "no-compaction": { type: "boolean", default: false },
      "max-connections": { type: "string" },
      "max-sessions": { type: "string" },
      "max-frame-buffer": { type: "string" },
      "root-token": { type: "string" },
      "no-auth": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
}

let parsed: ReturnType<typeof parseFlags>;
try {
  parsed = parseFlags();
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
if (parsed.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const port = Number(parsed.port);
if (!/^\d+$/.test(parsed.port) || port > 65535)
  fail(`--port must be 0..65535, got \`${parsed.port}\``);
/** A flag's value, parsed, within `min..max`, or undefined when absent (exits on anything else). */
function boundedFlag(
  name: string,
  text: string | undefined,
  bounds: { readonly min: number; readonly max: number; readonly unit?: string },
  parse: (text: string) => number | undefined,
): number | undefined {
  if (text === undefined) return undefined;
  const value = parse(text);
  if (value === undefined || value < bounds.min || value > bounds.max) {
    fail(`--${name} must be ${bounds.min}..${bounds.max}${bounds.unit ?? ""}, got \`${text}\``);
  }
  return value;
}
/** An integer flag within `min..max`, or undefined when absent (exits on anything else). */
function integerFlag(
  name: string,
  text: string | undefined,
  bounds: { readonly min: number; readonly max: number },
): number | undefined {
  return boundedFlag(name, text, bounds, (digits) =>
    /^\d+$/.test(digits) ? Number(digits) : undefined,
  );
}
const flushIntervalMs =
  integerFlag("flush-interval-ms", parsed["flush-interval-ms"], {
    min: 1,
    max: flushIntervalMsMax,
  }) ?? flushIntervalMsDefault;
const metricsFlushIntervalMs =
  integerFlag("metrics-flush-interval-ms", parsed["metrics-flush-interval-ms"], {
    min: 1,
    max: metricsFlushIntervalMsDefault,
  }) ?? metricsFlushIntervalMsDefault;
/** Caps on client connections and streaming sessions; undefined: the limits' defaults. */
const connectionCaps = {
  connectionsMax: integerFlag("max-connections", parsed["max-connections"], {
    min: 1,
    max: connectionsMaxBound,
  }),
  sessionsMax: integerFlag("max-sessions", parsed["max-sessions"], {
    min: 1,
    max: sessionsMaxBound,
  }),
  s2sFrameBufferBytesMax: boundedFlag(
    "max-frame-buffer",
    parsed["max-frame-buffer"],
    { min: s2sFrameBytesMax, max: s2sFrameBufferBytesMaxBound, unit: " bytes (or N{KiB,MiB,GiB})" },
    parseByteSize,
  ),
};
const cacheSizeText = parsed["cache-size"];
const cacheBytesMax = cacheSizeText === undefined ? undefined : parseByteSize(cacheSizeText);
if (cacheSizeText !== undefined && cacheBytesMax === undefined) {
  fail(`--cache-size must be a byte count or N{KiB,MiB,GiB}, got \`${cacheSizeText}\``);
}
const bottomlessFlags = {
  cacheBytesMax,
  gcGraceMs: integerFlag("gc-grace-ms", parsed["gc-grace-ms"], { min: 0, max: gcGraceMsMax }),
  checkpointIntervalMs: integerFlag("checkpoint-interval-ms", parsed["checkpoint-interval-ms"], {
    min: 0,
    max: checkpointIntervalMsMax,
  }),
  checkpointWalBytes: integerFlag("checkpoint-wal-bytes", parsed["checkpoint-wal-bytes"], {
    min: 0,
    max: checkpointWalBytesMax,
  }),
  maintenance: !parsed["no-compaction"],
};
if (parsed.bucket !== undefined && parsed["local-root"] !== undefined) {
  fail("--bucket and --local-root cannot be used together");
}
if (parsed.path !== undefined && parsed.bucket === undefined) fail("--path needs --bucket");
if ((parsed["tls-cert"] === undefined) !== (parsed["tls-key"] === undefined)) {
  fail("--tls-cert and --tls-key must be given together");
}
let tls: { cert: Buffer; key: Buffer } | undefined;
if (parsed["tls-cert"] !== undefined && parsed["tls-key"] !== undefined) {
  try {
    tls = { cert: readFileSync(parsed["tls-cert"]), key: readFileSync(parsed["tls-key"]) };
  } catch (error) {
    fail(`cannot read TLS files: ${error instanceof Error ? error.message : String(error)}`);
  }
}

// The init file is read and validated before anything is opened, so a bad one fails fast.
const initFilePath = parsed["init-file"] ?? process.env["S2LITE_INIT_FILE"];
let initSpec: InitSpec | undefined;
if (initFilePath !== undefined) {
  try {
    initSpec = parseInitFile(readFileSync(initFilePath, "utf8"));
  } catch (error) {
    fail(
      `bad init file ${initFilePath}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

// Auth (docs/design/auth.md): a root token from the flag or the environment, else a fresh one
// printed below; `--no-auth` serves everyone, as s2-lite does.
// An empty variable counts as unset (a shell's `VAR=` clears it); an empty flag is an error.
const rootTokenGiven = parsed["root-token"] ?? (process.env["TRIBUTARY_ROOT_TOKEN"] || undefined);
if (parsed["no-auth"] && parsed["root-token"] !== undefined) {
  fail("--root-token and --no-auth cannot be used together");
}
if (rootTokenGiven !== undefined && rootTokenGiven.trim() === "") fail("the root token is empty");
// A token that cannot travel in `Authorization: Bearer …` would lock everyone out: refuse it.
const rootTokenProblem =
  rootTokenGiven === undefined || parsed["no-auth"] ? undefined : validateRootToken(rootTokenGiven);
if (rootTokenProblem !== undefined) fail(rootTokenProblem);
const rootToken = parsed["no-auth"]
  ? undefined
  : (rootTokenGiven ??
    `${accessTokenSecretPrefix}${randomBytes(accessTokenSecretBytes).toString("base64url")}`);

const choice = { bucket: parsed.bucket, path: parsed.path, localRoot: parsed["local-root"] };
const store = openObjectStore(choice);
// The storage opens the cache itself: a disk that is full or failing (at open, during recovery
// or later) degrades the cache to memory instead of stopping the server (degraded-cache.md).
const cache = await createCacheDisk(parsed["cache-dir"]);
const startMs = performance.now();
const service = await Service.open({
  store,
  cacheDisk: cache,
  log: (line) => process.stderr.write(`tributary: ${line}\n`),
  bottomless: bottomlessFlags,
  clock: systemClock,
  random: systemRandom,
  flushIntervalMs,
  metricsFlushIntervalMs,
  onFenced: (error) => {
    process.stderr.write(`tributary: fenced by a newer server, stopping: ${error.message}\n`);
    process.exit(75);
  },
});
const recoveredMs = Math.round(performance.now() - startMs);
const initChanges = initSpec === undefined ? [] : await applyInitSpec(service, initSpec);
let api: Awaited<ReturnType<typeof startApiServer>>;
try {
  api = await startApiServer({
    service,
    port,
    cors: !parsed["no-cors"],
    tls,
    auth: rootToken === undefined ? { kind: "open" } : { kind: "token", rootToken },
    ...connectionCaps,
  });
} catch (error) {
  fail(`cannot listen on port ${port}: ${error instanceof Error ? error.message : String(error)}`);
}
const stats = service.storage.stats;
const degradedReason = service.storage.cacheDegradedReason;
const scheme = tls === undefined ? "http" : "https";
process.stdout.write(
  [
    `tributary ready on port ${api.port}: objects in ${describeObjectStore(choice)}, cache in ${cache.path}` +
      `${degradedReason !== undefined ? ` (degraded: ${degradedReason})` : ""}; epoch ${service.storage.writerEpoch}, ` +
      `${stats.loadedCheckpoint ? "loaded the checkpoint, " : ""}replayed ${stats.replayedSegments} segments in ${recoveredMs} ms` +
      `${stats.cacheResetReason !== undefined ? ` (cache reset: ${stats.cacheResetReason})` : ""}`,
    ...(initFilePath === undefined
      ? []
      : [
          `init file ${initFilePath}: ${initChanges.length === 0 ? "nothing to change" : initChanges.join(", ")}`,
        ]),
    "point the S2 CLI and SDKs here with:",
    `  export S2_ACCOUNT_ENDPOINT=${scheme}://localhost:${api.port}`,
    `  export S2_BASIN_ENDPOINT=${scheme}://localhost:${api.port}`,
    // The root token is printed only when generated: a given one is the operator's secret.
    `  export S2_ACCESS_TOKEN=${rootToken === undefined ? "ignored" : rootTokenGiven === undefined ? rootToken : "<your root token>"}`,
    "",
  ].join("\n"),
);

/** Like s2-lite: flush what was accepted, but give up after a drain period if storage hangs. */
const shutdownDrainMs = 10_000;

async function shutdown(signal: string): Promise<void> {
  process.stdout.write(`tributary: ${signal}, flushing and stopping\n`);
  setTimeout(() => {
    process.stderr.write("tributary: drain timed out, exiting with appends unacknowledged\n");
    process.exit(1);
  }, shutdownDrainMs).unref();
  await api.close();
  await service.close();
  // A cache in a temp dir of our own making is not worth keeping: nobody will pass it back.
  if (parsed["cache-dir"] === undefined) await rm(cache.path, { recursive: true, force: true });
  await store.close();
  process.exit(0);
}
process.once("SIGINT", () => void shutdown("SIGINT"));
process.once("SIGTERM", () => void shutdown("SIGTERM"));
