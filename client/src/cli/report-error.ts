/**
 * The CLI's exit codes and the one place that turns a failure into its one-line message: an S2
 * error (`error: <s2 code>: <message>`, from the `s2-error-code` metadata the server puts on
 * every Connect error), an unreachable server (`error: cannot reach <url>: ...`), or anything
 * else the client raised.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { connectErrorMetadata } from "@tributary/protocol";
import { UsageError } from "./args.js";
import type { CliIo } from "./io.js";

/** Exit codes, documented in docs/cli.md. */
export const exitCodes = {
  ok: 0,
  /** The server answered with an error (or the client failed on the way). */
  error: 1,
  /** The command was invoked wrongly: bad URI, unknown flag, missing argument. */
  usage: 2,
  /** No connection to the server could be made. */
  unreachable: 3,
  /** Stopped by Ctrl-C (128 + SIGINT), except a followed read, which ends with 0. */
  interrupted: 130,
} as const;

/** Socket errors that mean the server could not be reached at all. */
const networkErrorCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
]);

function networkCodeOf(error: unknown): string | undefined {
  // Walk the `cause` chain: connect-node wraps the socket error once, other layers may add more.
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && networkErrorCodes.has(code)) return code;
    cause = cause.cause;
  }
  return undefined;
}

/** `NotFound` → `not_found`: the Connect code's wire name, for errors that carry no S2 code. */
function connectCodeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/**
 * The 412 metadata keys, named after the fields of S2's 412 JSON body; the server's code for
 * both is `invalid`, so the field says which condition failed.
 */
const appendConditionKeys = [
  [connectErrorMetadata.fencingTokenMismatch, "fencing_token_mismatch"],
  [connectErrorMetadata.seqNumMismatch, "seq_num_mismatch"],
] as const;

/** The S2 error code of a failed call, if the server sent one. */
export function s2CodeOf(error: unknown): string | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  return error.metadata.get(connectErrorMetadata.code) ?? undefined;
}

/** The code to print: the failed append condition's name for a 412, else the S2 code. */
function printedCodeOf(error: ConnectError, s2Code: string): string {
  for (const [key, name] of appendConditionKeys) if (error.metadata.has(key)) return name;
  return s2Code;
}

/** The one-line message and exit code of a failure, for a server at `baseUrl`. */
export function describeError(error: unknown, baseUrl: string): { line: string; code: number } {
  if (error instanceof UsageError)
    return { line: `error: ${error.message}`, code: exitCodes.usage };
  const networkCode = networkCodeOf(error);
  if (error instanceof ConnectError) {
    const s2Code = s2CodeOf(error);
    if (s2Code !== undefined) {
      return {
        line: `error: ${printedCodeOf(error, s2Code)}: ${error.rawMessage}`,
        code: exitCodes.error,
      };
    }
    if (networkCode !== undefined || error.code === Code.Unavailable) {
      return {
        line: `error: cannot reach ${baseUrl}: ${error.rawMessage}`,
        code: exitCodes.unreachable,
      };
    }
    return {
      line: `error: ${connectCodeName(error.code)}: ${error.rawMessage}`,
      code: exitCodes.error,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  if (networkCode !== undefined) {
    return { line: `error: cannot reach ${baseUrl}: ${message}`, code: exitCodes.unreachable };
  }
  return { line: `error: ${message.split("\n")[0]}`, code: exitCodes.error };
}

/** Prints the failure on stderr and returns its exit code. */
export function reportError(io: CliIo, error: unknown, baseUrl: string): number {
  const { line, code } = describeError(error, baseUrl);
  io.stderr.write(`${line.replace(/\s*\n\s*/g, " ")}\n`);
  return code;
}
