/**
 * The server process: parses flags, opens storage (recovery and fencing), and serves `/health`
 * (200 once recovery and fencing are done). The S2 API arrives on this port with issue 3.
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { AssertionError } from "./core/assert.js";
import { systemClock } from "./core/clock.js";
import { flushIntervalMsDefault, flushIntervalMsMax } from "./core/limits.js";
import { systemRandom } from "./core/random.js";
import { Service } from "./service/service.js";
import { describeObjectStore, openCache, openObjectStore } from "./storage/open-stores.js";

const usage = `usage: tributary [serve] [--port N] [--bucket B [--path P] | --local-root DIR] [--cache-dir DIR] [--flush-interval-ms N]`;

function fail(message: string): never {
  process.stderr.write(`tributary: ${message}\n${usage}\n`);
  process.exit(2);
}

process.on("uncaughtException", (error) => {
  process.stderr.write(
    `tributary: fatal${error instanceof AssertionError ? " assertion" : ""}: ${error.stack ?? error}\n`,
  );
  process.exit(70);
});

let parsed: ReturnType<typeof parseFlags>;
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
    },
    strict: true,
  }).values;
}
try {
  parsed = parseFlags();
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}

const port = Number(parsed.port);
if (!Number.isInteger(port) || port < 0 || port > 65535)
  fail(`--port must be 0..65535, got ${parsed.port}`);
const flushIntervalMs =
  parsed["flush-interval-ms"] === undefined
    ? flushIntervalMsDefault
    : Number(parsed["flush-interval-ms"]);
if (
  !Number.isInteger(flushIntervalMs) ||
  flushIntervalMs < 1 ||
  flushIntervalMs > flushIntervalMsMax
) {
  fail(`--flush-interval-ms must be 1..${flushIntervalMsMax}, got ${parsed["flush-interval-ms"]}`);
}
if (parsed.bucket !== undefined && parsed["local-root"] !== undefined)
  fail("--bucket and --local-root are exclusive");
if (parsed.path !== undefined && parsed.bucket === undefined) fail("--path needs --bucket");

const choice = { bucket: parsed.bucket, path: parsed.path, localRoot: parsed["local-root"] };
let ready = false;
const server = createServer((request, response) => {
  if (request.method === "GET" && (request.url === "/health" || request.url === "/ping")) {
    const healthy = ready && service?.storage.health === "ready";
    response.writeHead(healthy ? 200 : 503, { "content-type": "text/plain" });
    response.end(healthy ? "OK" : ready ? `unavailable: ${service?.storage.health}` : "starting");
    return;
  }
  response.writeHead(404).end();
});
await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(port, "0.0.0.0", resolve);
});
const address = server.address();
const boundPort = typeof address === "object" && address !== null ? address.port : port;

const store = openObjectStore(choice);
const cache = await openCache(parsed["cache-dir"]);
const startMs = performance.now();
let service: Service | undefined;
service = await Service.open({
  store,
  kv: cache.kv,
  clock: systemClock,
  random: systemRandom,
  flushIntervalMs,
  onFenced: (error) => {
    process.stderr.write(`tributary: fenced by a newer server, stopping: ${error.message}\n`);
    process.exit(75);
  },
});
ready = true;
const stats = service.storage.stats;
process.stdout.write(
  `tributary ready on port ${boundPort}: objects in ${describeObjectStore(choice)}, cache in ${cache.path}` +
    `${cache.wiped ? " (was corrupt, rebuilt)" : ""}; epoch ${service.storage.writerEpoch}, ` +
    `replayed ${stats.replayedSegments} segments in ${Math.round(performance.now() - startMs)} ms` +
    `${stats.cacheResetReason !== undefined ? ` (cache reset: ${stats.cacheResetReason})` : ""}\n`,
);

/** Like s2-lite: flush what was accepted, but give up after a drain period if storage hangs. */
const shutdownDrainMs = 10_000;

async function shutdown(signal: string): Promise<void> {
  process.stdout.write(`tributary: ${signal}, flushing and stopping\n`);
  setTimeout(() => {
    process.stderr.write("tributary: drain timed out, exiting with appends unacknowledged\n");
    process.exit(1);
  }, shutdownDrainMs).unref();
  server.close();
  await service?.close();
  await cache.kv.close();
  await store.close();
  process.exit(0);
}
process.once("SIGINT", () => void shutdown("SIGINT"));
process.once("SIGTERM", () => void shutdown("SIGTERM"));
