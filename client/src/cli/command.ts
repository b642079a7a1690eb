/**
 * What every CLI command is: its name, usage, flags and help, and a `run` that gets the parsed
 * arguments and a context (streams, connection, a lazily created client, an abort signal).
 */
import { createTributaryClient, type TributaryClient } from "../client.js";
import type { FlagSpecs, ParsedArgs } from "./args.js";
import type { CliIo, Connection } from "./io.js";

/** What a command runs with. */
export interface CommandContext {
  readonly io: CliIo;
  readonly connection: Connection;
  /** Aborted on Ctrl-C: a following read stops and exits 0. */
  readonly signal: AbortSignal;
  /** `--json` was given. */
  readonly json: boolean;
  /** The client for `connection`, created on first use. */
  client(): TributaryClient;
}

/** One CLI command. */
export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The synopsis after `tributary`, e.g. `read s2://basin/stream [flags]`. */
  readonly usage: string;
  readonly flags: FlagSpecs;
  /** Help lines describing arguments and flags. */
  readonly help: readonly string[];
  /** Runs the command; returns the exit code. Throws `UsageError` or client errors. */
  run(args: ParsedArgs, context: CommandContext): Promise<number>;
}

/** A context whose client is created once, on first use. */
export function createCommandContext(options: {
  io: CliIo;
  connection: Connection;
  signal: AbortSignal;
  json: boolean;
}): CommandContext {
  let client: TributaryClient | undefined;
  return {
    ...options,
    client() {
      client ??= createTributaryClient({
        baseUrl: options.connection.baseUrl,
        ...(options.connection.token !== undefined && { token: options.connection.token }),
      });
      return client;
    },
  };
}
