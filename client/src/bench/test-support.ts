/**
 * Shared by the bench tests (memory and S3 mode): run `benchCommand` in-process against a server
 * with captured output, and the consistency checks every successful report must pass.
 */
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import type { CliIo } from "../cli/io.js";
import { type BenchCommandTesting, benchCommandWith } from "./command.js";

/** A `CliIo` whose stdout and stderr are collected into strings. */
export function captureIo(env: Record<string, string>): {
  io: CliIo;
  stdout(): string;
  stderr(): string;
} {
  let out = "";
  let err = "";
  const sink = (append: (text: string) => void): Writable =>
    new Writable({
      write(chunk, _encoding, callback) {
        append(String(chunk));
        callback();
      },
    });
  return {
    io: {
      stdin: Readable.from([]),
      stdout: sink((text) => {
        out += text;
      }),
      stderr: sink((text) => {
        err += text;
      }),
      env,
    },
    stdout: () => out,
    stderr: () => err,
  };
}

/** Runs `tributary bench ARGS` against `server` and returns its exit code and output. */
export async function runBenchCli(
  server: { endpoint: string },
  args: string[],
  testing: BenchCommandTesting = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const captured = captureIo({ S2_ACCOUNT_ENDPOINT: server.endpoint });
  const code = await benchCommandWith(args, captured.io, testing);
  return { code, stdout: captured.stdout(), stderr: captured.stderr() };
}

interface ThroughputJson {
  records: number;
  bytes: number;
  elapsedMs: number;
  mibps: number;
  recordsPerSec: number;
}

/** Checks a successful run's JSON report: every count agrees and every figure is present. */
export function benchRunChecks(
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON
  report: any,
  recordBytes: number,
): void {
  assert.equal(report.interrupted, false);
  assert.equal(report.streamDeleted, true);
  assert.match(report.stream, /^bench\//);
  assert.match(report.chainHash, /^[0-9a-f]{32}$/);
  assert.equal(report.settings.recordBytes, recordBytes);
  const write: ThroughputJson = report.write;
  const read: ThroughputJson = report.read;
  const catchup: ThroughputJson = report.catchup;
  assert.ok(write.records > 0, "something was written");
  assert.equal(read.records, write.records, "live read == written");
  assert.equal(catchup.records, write.records, "catch-up read == written");
  for (const side of [write, read, catchup]) {
    assert.equal(side.bytes, side.records * recordBytes);
    assert.ok(side.elapsedMs > 0 && side.mibps > 0 && side.recordsPerSec > 0);
  }
  assert.equal(report.ackLatencyMs.count, write.records, "one ack latency per record");
  assert.equal(report.endToEndLatencyMs.count, write.records, "one end-to-end latency per record");
  for (const stats of [report.ackLatencyMs, report.endToEndLatencyMs]) {
    assert.ok(stats.min >= 0);
    assert.ok(stats.min <= stats.p50 && stats.p50 <= stats.p90);
    assert.ok(stats.p90 <= stats.p99 && stats.p99 <= stats.max);
  }
}

/** The flags of a short, slow verified run: 1 MiB/s for 2 s, no catch-up delay, a JSON report. */
export function shortRunArgs(uri: string, recordSize: number): string[] {
  return [
    uri,
    "--target-mibps",
    "1",
    "--record-size",
    String(recordSize),
    "--duration",
    "2s",
    "--catchup-delay",
    "0s",
    "--json",
  ];
}
