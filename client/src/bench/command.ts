/**
 * `tributary bench s2://BASIN [flags]`: flag parsing, the live progress line on stderr, the final
 * report on stdout and the exit code around `runBench`. Flag names and defaults follow the S2
 * CLI's `s2 bench` (cli/src/cli.rs `BenchArgs`).
 */
import { parseArgs } from "node:util";
import { createTributaryClient } from "../client.js";
import { type CliIo, connectionFromEnv } from "../cli/io.js";
import { describeError, exitCodes } from "../cli/report-error.js";
import { BenchVerificationError } from "./chain.js";
import { formatProgress, formatReport, formatReportJson } from "./report.js";
import {
  type BenchOptions,
  type BenchSettings,
  type BenchStorageClass,
  benchRecordBytesMax,
  benchRecordBytesMin,
  runBench,
} from "./run.js";

/** Defaults of `s2 bench`. */
const recordBytesDefault = 8 * 1024;
const targetMibpsDefault = 1;
const durationDefault = "60s";
const catchupDelayDefault = "20s";
/** Sanity bounds: a typo should not start a day-long or terabyte-per-second run. */
const targetMibpsMax = 1024;
const durationMsMax = 24 * 3600 * 1000;
/** Progress period: redrawn in place on a terminal, one line per second otherwise (logs). */
const progressIntervalMsTty = 200;
const progressIntervalMsPlain = 1000;

export const benchUsage = `usage: tributary bench s2://BASIN [options]

Writes to a temporary stream at a target rate while reading it live, then reads it again from the
start (catch-up), verifying every record's hash chain; reports throughput and latencies. The basin
is created if absent (and then deleted afterwards); the temporary stream is always deleted.

options:
  -t, --target-mibps N       target write throughput in MiB/s (default ${targetMibpsDefault})
  -b, --record-size BYTES    metered record size, header included, ${benchRecordBytesMin}..${benchRecordBytesMax} (default ${recordBytesDefault})
  -d, --duration D           how long to write, e.g. 10s, 500ms, 2m (default ${durationDefault})
  -w, --catchup-delay D      wait before the catch-up read (default ${catchupDelayDefault})
  -c, --storage-class C      standard | express (default: the basin's)
      --json                 print the report as JSON
  -h, --help                 show this help

The server is S2_ACCOUNT_ENDPOINT (or S2_BASIN_ENDPOINT); S2_ACCESS_TOKEN is sent if set.
Exit status: 0 ok, 1 verification failure or error, 2 usage, 3 server unreachable,
130 interrupted.
`;

class UsageError extends Error {}

const durationUnitsMs: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses `10s`, `500ms`, `1m30s` or a bare number of seconds into milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (const match of text.matchAll(part)) {
    total += Number(match[1]) * durationUnitsMs[match[2]!]!;
    end = (match.index ?? 0) + match[0].length;
  }
  return end === text.length && end > 0 ? total : undefined;
}

function parseBasin(uri: string): string {
  const basin = uri.startsWith("s2://") ? uri.slice("s2://".length).replace(/\/$/, "") : uri;
  if (basin === "" || basin.includes("/")) {
    throw new UsageError(`expected s2://BASIN, got "${uri}"`);
  }
  return basin;
}

function parseIntegerIn(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(`${flag} must be an integer in ${min}..${max}, got "${text}"`);
  }
  return value;
}

function parseDurationFlag(flag: string, text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined || ms > durationMsMax) {
    throw new UsageError(
      `${flag} must be a duration up to 24h such as 10s or 500ms, got "${text}"`,
    );
  }
  return ms;
}

type ParsedBench =
  | { readonly help: true }
  | { readonly help: false; readonly json: boolean; readonly settings: BenchSettings };

const benchFlags = {
  "target-mibps": { type: "string", short: "t" },
  "record-size": { type: "string", short: "b" },
  duration: { type: "string", short: "d" },
  "catchup-delay": { type: "string", short: "w" },
  "storage-class": { type: "string", short: "c" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function parseBenchArgs(args: string[]): ParsedBench {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof benchFlags; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args, options: benchFlags, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { help: true };
  if (positionals.length !== 1) {
    throw new UsageError(`expected one basin (s2://BASIN), got ${positionals.length} arguments`);
  }
  const basin = parseBasin(positionals[0]!);
  const targetText = values["target-mibps"] ?? String(targetMibpsDefault);
  const targetMibps = Number(targetText);
  if (!Number.isFinite(targetMibps) || targetMibps <= 0 || targetMibps > targetMibpsMax) {
    throw new UsageError(`--target-mibps must be in (0, ${targetMibpsMax}], got "${targetText}"`);
  }
  const recordBytes = parseIntegerIn(
    "--record-size",
    values["record-size"] ?? String(recordBytesDefault),
    benchRecordBytesMin,
    benchRecordBytesMax,
  );
  const durationMs = parseDurationFlag("--duration", values.duration ?? durationDefault);
  const catchupDelayMs = parseDurationFlag(
    "--catchup-delay",
    values["catchup-delay"] ?? catchupDelayDefault,
  );
  const storageClass = values["storage-class"];
  if (storageClass !== undefined && storageClass !== "standard" && storageClass !== "express") {
    throw new UsageError(`--storage-class must be standard or express, got "${storageClass}"`);
  }
  return {
    help: false,
    json: values.json === true,
    settings: {
      basin,
      recordBytes,
      targetMibps,
      durationMs,
      catchupDelayMs,
      ...(storageClass !== undefined && { storageClass: storageClass as BenchStorageClass }),
    },
  };
}

/**
 * `benchCommand` with options for tests.
 * @internal
 */
export interface BenchCommandTesting {
  /** See `BenchOptions.beforeWriteForTesting`. */
  readonly beforeWriteForTesting?: BenchOptions["beforeWriteForTesting"];
  /** Interrupts the run as Ctrl-C would. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `tributary bench` with `args` (the words after `bench`). Returns the exit code: 0 ok,
 * 1 verification failure or error, 2 usage, 3 server unreachable, 130 interrupted (the codes of
 * `cli/report-error.ts`).
 */
export async function benchCommand(args: string[], io: CliIo): Promise<number> {
  return benchCommandWith(args, io, {});
}

/**
 * `benchCommand` with test hooks.
 * @internal
 */
export async function benchCommandWith(
  args: string[],
  io: CliIo,
  testing: BenchCommandTesting,
): Promise<number> {
  let parsed: ParsedBench;
  try {
    parsed = parseBenchArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(
      `error: ${error.message}\nusage: tributary bench s2://BASIN [options] ` +
        "(tributary bench --help for more)\n",
    );
    return exitCodes.usage;
  }
  if (parsed.help) {
    io.stdout.write(benchUsage);
    return exitCodes.ok;
  }
  const { baseUrl, token } = connectionFromEnv(io.env);
  const client = createTributaryClient({ baseUrl, ...(token !== undefined && { token }) });
  const isTty = io.stderr.isTTY === true;
  let progressShown = false;
  const clearProgress = (): void => {
    if (isTty && progressShown) io.stderr.write("\r\x1b[2K");
    progressShown = false;
  };
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  const signal =
    testing.signal === undefined
      ? interrupt.signal
      : AbortSignal.any([interrupt.signal, testing.signal]);
  const s = parsed.settings;
  io.stderr.write(
    `bench: ${baseUrl}, s2://${s.basin}, ${s.recordBytes}-byte records at ${s.targetMibps} MiB/s ` +
      `for ${s.durationMs / 1000}s, catch-up after ${s.catchupDelayMs / 1000}s (Ctrl-C to stop)\n`,
  );
  try {
    const report = await runBench({
      ...parsed.settings,
      client,
      signal,
      progressIntervalMs: isTty ? progressIntervalMsTty : progressIntervalMsPlain,
      onProgress: (progress) => {
        const line = formatProgress(progress);
        if (isTty) io.stderr.write(`\r\x1b[2K${line}`);
        else io.stderr.write(`${line}\n`);
        progressShown = true;
      },
      onLog: (line) => {
        clearProgress();
        io.stderr.write(`${line}\n`);
      },
      ...(testing.beforeWriteForTesting !== undefined && {
        beforeWriteForTesting: testing.beforeWriteForTesting,
      }),
    });
    clearProgress();
    io.stdout.write(parsed.json ? formatReportJson(report) : formatReport(report));
    if (report.interrupted) {
      io.stderr.write("interrupted: partial results, counts and hashes not compared\n");
      return exitCodes.interrupted;
    }
    return exitCodes.ok;
  } catch (error) {
    clearProgress();
    if (error instanceof BenchVerificationError) {
      io.stderr.write(`error: bench verification failed: ${error.message}\n`);
      return exitCodes.error;
    }
    // The CLI's one rendering of client errors (an unreachable server exits 3, as elsewhere).
    const { line, code } = describeError(error, baseUrl);
    io.stderr.write(`${line.replace(/\s*\n\s*/g, " ")}\n`);
    return code;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
