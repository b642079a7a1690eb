/**
 * The systems of the comparison bench (bench/peers-bench.ts), each behind the load generator's
 * `BenchStream`: Tributary (the server process, local directory or S3 on moto) through the
 * official SDK `@s2-dev/streamstore` over S2S sessions, Redis Streams through ioredis and NATS
 * JetStream through nats.js. Redis and NATS are Debian's packages, installed here when missing
 * (as root), each started on a free loopback port in a temp directory and killed after its row.
 *
 * A batch is one S2 append (atomic), one Redis MULTI/EXEC of XADDs (atomic), or one JetStream
 * publish per record, all sent at once with their acks counted on one reply subject (NATS 2.9 has
 * no atomic batch). Each system acknowledges by
 * its own standard, which the row label and `durability` say: Tributary after the flush reached
 * the local directory (fsynced) or the bucket; Redis `appendfsync always` after the AOF fsync,
 * `everysec` before it (fsync once a second); JetStream after the write to its file store, before
 * the fsync (Debian's nats-server syncs every 2 minutes).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { AppendInput, AppendRecord } from "@s2-dev/streamstore";
import { Redis } from "ioredis";
import { connect, createInbox, type NatsConnection, StorageType } from "nats";
import { s2ClientFor, startServer } from "../server/test/support/server-process.js";
import { type BenchStream, inflightBytesMax } from "./load-generator.js";
import { mib } from "./support.js";

/** One system under test: a row of the table. */
export interface BenchSystem {
  readonly label: string;
  /** How an acknowledgement relates to fsync, printed under the table. */
  readonly durability: string;
  /** Whether issue 12's targets apply to this row. */
  readonly isTributary: boolean;
  start(): Promise<RunningSystem>;
}

/** A started system; `stop` kills its server process and removes its files. */
export interface RunningSystem {
  /** The server process, whose CPU and RSS are sampled. */
  readonly pid: number;
  /** Creates stream `name` for records of about `recordBytes` (read requests are sized by it). */
  openStream(name: string, recordBytes: number): Promise<BenchStream>;
  stop(): Promise<void>;
}

export const flushIntervalMs = 5;
const readyTimeoutMs = 30_000;
const stopTimeoutMs = 15_000;
/** Redis XRANGE pages and NATS pull requests ask for about this much at a time. */
const readRequestBytes = mib;
/** A JetStream batch not acknowledged in full after this long has failed (js.publish: 5 s). */
const natsPubAckTimeoutMs = 30_000;

// ---------------------------------------------------------------------------------------------
// Tributary

/**
 * A stream of a Tributary basin through the official SDK, as the bench drives it: appends through
 * one S2S append session, reads through S2S read sessions from seq num 0.
 */
export async function openSdkStream(
  basin: ReturnType<ReturnType<typeof s2ClientFor>["basin"]>,
  name: string,
): Promise<BenchStream> {
  await basin.streams.create({ stream: name });
  const writer = basin.stream(name);
  const reader = basin.stream(name);
  // The max-append part keeps 16 MiB in flight itself; the session's bound (twice that) only
  // holds back a paced part that has fallen far behind.
  const session = await writer.appendSession({ maxInflightBytes: 2 * inflightBytesMax });
  return {
    async append(bodies) {
      const records = bodies.map((body) => AppendRecord.bytes({ body }));
      const ticket = await session.submit(AppendInput.create(records));
      await ticket.ack();
    },
    async read(count, onRecord) {
      const readSession = await reader.readSession(
        { start: { from: { seqNum: 0 } }, stop: { limits: { count } } },
        { as: "bytes" },
      );
      for await (const record of readSession) onRecord(record.body);
    },
    async close() {
      await session.close().catch(() => {});
      await writer.close();
      await reader.close();
    },
  };
}

export function tributarySystem(mode: "local" | "s3"): BenchSystem {
  return {
    label: mode === "local" ? "Tributary, local dir (fsync)" : "Tributary, S3 on moto",
    durability:
      `acks once the flush (every ${flushIntervalMs} ms) is ` +
      (mode === "local" ? "fsynced to the local directory" : "in the bucket"),
    isTributary: true,
    async start() {
      const server = await startServer({
        mode,
        args: ["--flush-interval-ms", String(flushIntervalMs)],
      });
      return orRelease(server.cleanup, async () => {
        const s2 = s2ClientFor(server);
        const basinName = `bench-peers-${randomBytes(4).toString("hex")}`;
        await s2.basins.create({ basin: basinName });
        const basin = s2.basin(basinName);
        return {
          pid: server.child.pid ?? -1,
          openStream: (name) => openSdkStream(basin, name),
          async stop() {
            await server.stop();
            await server.cleanup();
          },
        };
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis Streams and NATS JetStream, Debian's packages

/** The peers' server binaries and the Debian packages that have them. */
const peerPackages = [
  { binary: "redis-server", debianPackage: "redis-server" },
  { binary: "nats-server", debianPackage: "nats-server" },
] as const;

function hasBinary(binary: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${binary}`], { stdio: "ignore" }).status === 0;
}

/**
 * Installs the peers' missing Debian packages (`apt-get install`, as root; `apt-get update` first
 * only if that fails) and returns the binaries that are there afterwards, printing why one is not.
 */
export function ensurePeerBinaries(): Set<string> {
  const missing = peerPackages.filter((p) => !hasBinary(p.binary));
  if (missing.length > 0) {
    const names = missing.map((p) => p.debianPackage);
    if (process.getuid?.() !== 0) {
      console.log(`not root: not installing ${names.join(", ")}; their rows are skipped`);
    } else {
      console.log(`installing Debian's ${names.join(", ")} (apt-get)`);
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      const install = (): number | null =>
        spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...names], {
          env,
          stdio: ["ignore", "ignore", "inherit"],
        }).status;
      if (install() !== 0) {
        spawnSync("apt-get", ["update", "-qq"], { env, stdio: ["ignore", "ignore", "inherit"] });
        if (install() !== 0) console.log(`apt-get could not install ${names.join(", ")}`);
      }
    }
  }
  return new Set(peerPackages.map((p) => p.binary).filter(hasBinary));
}

/** The version a server binary reports (`--version`), e.g. "7.0.15"; "?" when it says none. */
export function binaryVersion(binary: string): string {
  const output = spawnSync(binary, ["--version"], { encoding: "utf8" }).stdout ?? "";
  return /v=?(\d+\.\d+\.\d+)/.exec(output)?.[1] ?? "?";
}

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** `build()`, or, when it throws, `release()` and the error: a half-started system is cleaned up. */
async function orRelease<T>(release: () => Promise<unknown>, build: () => Promise<T>): Promise<T> {
  try {
    return await build();
  } catch (error) {
    await release();
    throw error;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no free port");
  return address.port;
}

/** A peer's server process in its own temp directory, running once it printed `ready`. */
interface PeerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  stop(): Promise<void>;
}

async function startPeerProcess(options: {
  readonly binary: string;
  readonly args: (port: number, dir: string) => string[];
  readonly ready: RegExp;
}): Promise<PeerProcess> {
  const dir = await mkdtemp(path.join(tmpdir(), `tributary-bench-${options.binary}-`));
  const port = await freePort();
  const child = spawn(options.binary, options.args(port, dir), {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => children.delete(child));
  const stop = async (): Promise<void> => {
    // A binary that failed to spawn has no pid and never exits.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  let output = "";
  await orRelease(
    stop,
    () =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${options.binary} did not start in time:\n${output}`)),
          readyTimeoutMs,
        );
        const onData = (chunk: Buffer): void => {
          output += chunk.toString();
          if (options.ready.test(output)) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout?.on("data", onData);
        child.stderr?.on("data", onData);
        child.once("error", (error) => {
          clearTimeout(timer);
          reject(error);
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`${options.binary} exited with ${code}:\n${output}`));
        });
      }),
  );
  // Later output is not kept (a long run would grow it); the pipes are drained.
  child.stdout?.removeAllListeners("data").resume();
  child.stderr?.removeAllListeners("data").resume();
  return { child, port, stop };
}

export function redisSystem(appendfsync: "always" | "everysec", version: string): BenchSystem {
  return {
    label: `Redis ${version} Streams, \`appendfsync ${appendfsync}\``,
    durability:
      appendfsync === "always"
        ? "AOF, acks after its fsync"
        : "AOF, acks before fsync (fsynced once a second)",
    isTributary: false,
    async start() {
      const peer = await startPeerProcess({
        binary: "redis-server",
        args: (port, dir) => [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--dir",
          dir,
          "--appendonly",
          "yes",
          "--appendfsync",
          appendfsync,
          "--save",
          "",
          "--daemonize",
          "no",
        ],
        ready: /Ready to accept connections/,
      });
      const redis = new Redis({ host: "127.0.0.1", port: peer.port, maxRetriesPerRequest: 0 });
      return {
        pid: peer.child.pid ?? -1,
        async openStream(key, recordBytes) {
          const pageRecords = Math.max(1, Math.floor(readRequestBytes / recordBytes));
          return {
            async append(bodies) {
              const transaction = redis.multi();
              for (const body of bodies) transaction.xadd(key, "*", "b", body);
              const replies = await transaction.exec();
              const failed = replies?.find(([error]) => error !== null);
              if (replies === null || failed !== undefined) {
                throw new Error("redis transaction failed", { cause: failed?.[0] });
              }
            },
            async read(count, onRecord) {
              let start = "-";
              for (let seen = 0; seen < count; ) {
                const page = await redis.xrangeBuffer(
                  key,
                  start,
                  "+",
                  "COUNT",
                  Math.min(pageRecords, count - seen),
                );
                if (page.length === 0) throw new Error(`stream ended early. records=\`${seen}\``);
                for (const [, fields] of page) onRecord(fields[1]!);
                seen += page.length;
                start = `(${page[page.length - 1]![0].toString()}`;
              }
            },
            async close() {},
          };
        },
        async stop() {
          redis.disconnect();
          await peer.stop();
        },
      };
    },
  };
}

export function natsSystem(version: string): BenchSystem {
  return {
    label: `NATS JetStream ${version}, file (acks before fsync)`,
    durability:
      "file storage, acks once written to its files, before fsync (synced every 2 minutes)",
    isTributary: false,
    async start() {
      const peer = await startPeerProcess({
        binary: "nats-server",
        args: (port, dir) => ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
        ready: /Server is ready/,
      });
      return orRelease(peer.stop, async () => {
        const nc = await connect({ servers: `127.0.0.1:${peer.port}` });
        const js = nc.jetstream();
        const jsm = await nc.jetstreamManager();
        const publisher = createBatchPublisher(nc);
        return {
          pid: peer.child.pid ?? -1,
          async openStream(name, recordBytes) {
            await jsm.streams.add({ name, subjects: [name], storage: StorageType.File });
            return {
              append: (bodies) => publisher.publish(name, bodies),
              async read(count, onRecord) {
                // An ordered consumer from the first message: nats.js's catch-up reader.
                const consumer = await js.consumers.get(name);
                const messages = await consumer.consume({
                  max_messages: Math.max(100, Math.floor(readRequestBytes / recordBytes)),
                });
                let seen = 0;
                try {
                  for await (const message of messages) {
                    onRecord(message.data);
                    if (++seen >= count) break;
                  }
                } finally {
                  await messages.close();
                }
              },
              async close() {},
            };
          },
          async stop() {
            publisher.close();
            await nc.close();
            await peer.stop();
          },
        };
      });
    },
  };
}

/**
 * JetStream publishes of a batch, sent at once as core NATS messages with one reply subject for
 * the batch, whose PubAcks are counted: nats.go's `PublishAsync`. nats.js's `js.publish` is one
 * request per message (a promise, a timer and an inbox entry each), which at 512 B records made
 * the client, not the server, the bottleneck.
 */
function createBatchPublisher(nc: NatsConnection): {
  publish(subject: string, bodies: readonly Buffer[]): Promise<void>;
  close(): void;
} {
  interface Waiting {
    remaining: number;
    readonly resolve: () => void;
    readonly reject: (error: Error) => void;
    readonly timer: NodeJS.Timeout;
  }
  const inbox = createInbox();
  const waiting = new Map<string, Waiting>();
  let nextBatch = 0;
  const settle = (reply: string, error?: Error): void => {
    const entry = waiting.get(reply);
    if (entry === undefined) return;
    waiting.delete(reply);
    clearTimeout(entry.timer);
    if (error === undefined) entry.resolve();
    else entry.reject(error);
  };
  const subscription = nc.subscribe(`${inbox}.*`, {
    callback: (error, message) => {
      const entry = waiting.get(message.subject);
      if (entry === undefined) return;
      let ack: { seq?: number; error?: { description?: string } } | undefined;
      try {
        ack = message.json();
      } catch {
        // Not a PubAck (a status message such as 503 no responders): the batch failed.
      }
      if (error !== null || ack?.seq === undefined) {
        const reason = error?.message ?? ack?.error?.description ?? "not a pub ack";
        settle(message.subject, new Error(`jetstream publish failed. reason=\`${reason}\``));
      } else if (--entry.remaining === 0) {
        settle(message.subject);
      }
    },
  });
  return {
    publish(subject, bodies) {
      const reply = `${inbox}.${nextBatch++}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => settle(reply, new Error("jetstream pub acks timed out")),
          natsPubAckTimeoutMs,
        );
        waiting.set(reply, { remaining: bodies.length, resolve, reject, timer });
        for (const body of bodies) nc.publish(subject, body, { reply });
      });
    },
    close() {
      subscription.unsubscribe();
      for (const reply of [...waiting.keys()]) settle(reply, new Error("publisher closed"));
    },
  };
}
