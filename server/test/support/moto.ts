/**
 * Test support for S3: an endpoint of moto (an S3 emulator that honours `If-None-Match`) and
 * uniquely named buckets on it, so that test files can share one server without seeing each
 * other's objects.
 *
 * `scripts/with-moto.sh` (used by `make test`) starts moto once for the whole run and exports
 * `TRIBUTARY_TEST_S3_ENDPOINT`. A test file run on its own starts one moto for its process
 * instead, and kills it when the process exits.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CreateBucketCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import {
  createS3ObjectStore,
  type S3ObjectStoreOptions,
} from "../../src/storage/object-store/s3.js";

/** The variable `scripts/with-moto.sh` sets to its moto's base URL. */
export const s3TestEndpointEnvVar = "TRIBUTARY_TEST_S3_ENDPOINT";

/** Moto imports its whole AWS model on start, which takes seconds on a cold, busy machine. */
const motoStartTimeoutMs = 60_000;
const motoPollIntervalMs = 100;
/** A free port can be taken by someone else before moto binds it; then try another. */
const motoStartAttemptsMax = 3;

let motoEndpoint: Promise<string> | undefined;

/**
 * The base URL of an S3 emulator: `TRIBUTARY_TEST_S3_ENDPOINT` when set, else a moto started
 * once for this process (concurrent callers share it).
 */
export async function s3TestEndpoint(): Promise<string> {
  const fromEnv = process.env[s3TestEndpointEnvVar];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  motoEndpoint ??= startMoto();
  return motoEndpoint;
}

/**
 * Client settings for the emulator: path-style (bucket names are not DNS names on 127.0.0.1)
 * and fixed credentials, so that nothing from the developer's AWS configuration leaks in.
 */
export function s3TestClientConfig(endpoint: string): S3ClientConfig & {
  endpoint: string;
  region: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string };
} {
  return {
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
}

/** Creates a bucket with a random name on `endpoint` and returns the name. */
export async function createTestBucket(endpoint: string): Promise<string> {
  const bucket = `tributary-test-${randomBytes(8).toString("hex")}`;
  const client = new S3Client(s3TestClientConfig(endpoint));
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/** A fresh S3 store on the test emulator, with the bucket it uses. */
export interface TestS3Store {
  readonly store: ObjectStore;
  readonly endpoint: string;
  readonly bucket: string;
  /** Closes the store; the bucket dies with the emulator. */
  cleanup(): Promise<void>;
}

/** An S3 store on a new bucket of the test emulator; `options` override the defaults. */
export async function createTestS3Store(
  options: Partial<Omit<S3ObjectStoreOptions, "bucket" | "endpoint">> = {},
): Promise<TestS3Store> {
  const endpoint = await s3TestEndpoint();
  const bucket = await createTestBucket(endpoint);
  const config = s3TestClientConfig(endpoint);
  const store = createS3ObjectStore({
    endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials: config.credentials,
    ...options,
    bucket,
  });
  return { store, endpoint, bucket, cleanup: () => store.close() };
}

async function startMoto(): Promise<string> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= motoStartAttemptsMax; attempt++) {
    try {
      return await startMotoOnce(await freePort());
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`moto did not start. attempts=\`${motoStartAttemptsMax}\``, {
    cause: lastError,
  });
}

async function startMotoOnce(port: number): Promise<string> {
  const logPath = path.join(tmpdir(), `tributary-moto-${process.pid}-${port}.log`);
  const logFd = openSync(logPath, "w");
  const child = spawn("python3", ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", logFd, logFd],
  });
  closeSync(logFd);
  // The test process must be able to exit while moto runs; the exit hook then stops moto.
  child.unref();
  let hasExited = false;
  child.on("exit", () => {
    hasExited = true;
  });
  const stop = (): void => {
    if (!hasExited) child.kill("SIGTERM");
    rmSync(logPath, { force: true });
  };
  // Re-raise after cleaning up, so that the default action (exit by signal) still happens.
  const onSignal = (signal: NodeJS.Signals): void => {
    stop();
    process.kill(process.pid, signal);
  };
  process.once("exit", stop);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + motoStartTimeoutMs;
  while (Date.now() < deadline && !hasExited) {
    try {
      const response = await fetch(`${endpoint}/moto-api/`);
      await response.arrayBuffer();
      if (response.ok) return endpoint;
    } catch {
      // Not listening yet.
    }
    await sleep(motoPollIntervalMs);
  }
  const log = readFileSync(logPath, "utf8");
  stop();
  process.removeListener("exit", stop);
  process.removeListener("SIGINT", onSignal);
  process.removeListener("SIGTERM", onSignal);
  throw new Error(`moto did not answer. port=\`${port}\` log=\`${log.slice(-2000)}\``);
}

/** A port that was free a moment ago (the kernel picks it for a listener on port 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port was assigned");
  return address.port;
}
