/**
 * The `tributary` CLI: finds the command, parses its flags, runs it against the server that the
 * S2_* variables name, and turns every failure into one line on stderr and an exit code
 * (`report-error.ts`). `runCli` runs in-process (tests inject the streams); `runCliProcess` is
 * the process entry that the `tributary` command (`client/bin/tributary.mjs`,
 * `server/bin/tributary.mjs`, `scripts/tributary-dev.mjs`) calls for every word but `serve`.
 */
import { pathToFileURL } from "node:url";
import { type FlagSpecs, parseCommandArgs, UsageError } from "./args.js";
import { type Command, createCommandContext } from "./command.js";
import { basinCommands } from "./commands/basins.js";
import { recordCommands } from "./commands/records.js";
import { streamCommands } from "./commands/streams.js";
import { type CliIo, connectionFromEnv } from "./io.js";
import { listFlags } from "./listing.js";
import { exitCodes, reportError } from "./report-error.js";

const commands: readonly Command[] = [...basinCommands, ...streamCommands, ...recordCommands];
const commandsByName = new Map(commands.map((command) => [command.name, command]));

/** Flags every command takes. */
const commonFlags: FlagSpecs = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

const benchSummary = "Benchmark a stream (tributary bench --help)";
const serveSummary = "Run the server (tributary serve --help)";

function generalHelp(): string {
  const width = Math.max(...commands.map((command) => command.name.length), "serve".length) + 2;
  const line = (name: string, summary: string): string => `  ${name.padEnd(width)}${summary}`;
  return [
    "usage: tributary <command> [arguments] [flags]",
    "",
    "Commands:",
    line("serve", serveSummary),
    ...commands.map((command) => line(command.name, command.summary)),
    line("ls", "list-basins, or list-streams when given s2://basin[/prefix]"),
    line("bench", benchSummary),
    "",
    "Streams are named s2://basin/stream, basins s2://basin or by name.",
    "The server is S2_ACCOUNT_ENDPOINT (else S2_BASIN_ENDPOINT, else http://localhost:8080);",
    "S2_ACCESS_TOKEN is sent as a bearer token. Every command takes --json and --help.",
    "Exit codes: 0 ok, 1 error from the server, 2 usage error, 3 server unreachable.",
    "",
  ].join("\n");
}

function commandHelp(command: Command): string {
  return [
    `usage: tributary ${command.usage}`,
    "",
    `${command.summary}.`,
    ...(command.help.length > 0 ? ["", ...command.help] : []),
    "  --json                 print JSON",
    "",
  ].join("\n");
}

function usageHint(command: Command): string {
  return `usage: tributary ${command.usage} (tributary ${command.name} --help for more)\n`;
}

/** Runs `bench`, written in `client/src/bench/command.ts`. */
async function runBench(args: string[], io: CliIo): Promise<number> {
  const { benchCommand } = await import("../bench/command.js");
  return benchCommand(args, io);
}

/** Whether `ls` was given a basin (then it lists streams); both listings take the same flags. */
function hasPositional(args: readonly string[]): boolean {
  try {
    return parseCommandArgs(args, { ...listFlags, ...commonFlags }).positionals.length > 0;
  } catch {
    return false; // list-basins reports the bad flag
  }
}

/** The options of one in-process run. */
export interface RunCliOptions {
  /** Stops a following read (Ctrl-C in the process entry); it then exits 0. */
  readonly signal?: AbortSignal;
}

/**
 * Runs one CLI invocation: `argv` is what follows `tributary`. Returns the exit code; output goes
 * to `io`.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  options: RunCliOptions = {},
): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    const topic = first === "help" ? rest[0] : undefined;
    const command = topic === undefined ? undefined : commandsByName.get(topic);
    io.stdout.write(command === undefined ? generalHelp() : commandHelp(command));
    return exitCodes.ok;
  }
  if (first === "bench") {
    try {
      return await runBench(rest, io);
    } catch (error) {
      return reportError(io, error, connectionFromEnv(io.env).baseUrl);
    }
  }
  let name = first;
  if (first === "ls") name = hasPositional(rest) ? "list-streams" : "list-basins";
  const command = commandsByName.get(name);
  if (command === undefined) {
    io.stderr.write(`error: unknown command \`${first}\`\nusage: tributary --help\n`);
    return exitCodes.usage;
  }
  const connection = connectionFromEnv(io.env);
  try {
    const args = parseCommandArgs(rest, { ...command.flags, ...commonFlags });
    if (args.flags.get("help") === true) {
      io.stdout.write(commandHelp(command));
      return exitCodes.ok;
    }
    if (!URL.canParse(connection.baseUrl)) {
      throw new UsageError(`bad server endpoint \`${connection.baseUrl}\` (S2_ACCOUNT_ENDPOINT)`);
    }
    const context = createCommandContext({
      io,
      connection,
      signal: options.signal ?? new AbortController().signal,
      json: args.flags.get("json") === true,
    });
    return await command.run(args, context);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${error.message}\n${usageHint(command)}`);
      return exitCodes.usage;
    }
    if (options.signal?.aborted === true) {
      io.stderr.write("interrupted\n");
      return exitCodes.interrupted;
    }
    return reportError(io, error, connection.baseUrl);
  }
}

/**
 * How long a command may take to wind down after Ctrl-C (a followed read returns at once; a
 * unary call cannot be stopped) before the process exits anyway.
 */
const interruptGraceMs = 2000;

/**
 * The process entry: runs `argv` with the process's streams and environment, stops the command
 * on the first Ctrl-C (a followed read exits 0, anything else 130; a second Ctrl-C exits at
 * once), and exits with the command's code once stdout is flushed.
 */
export async function runCliProcess(argv: readonly string[]): Promise<never> {
  const abort = new AbortController();
  process.on("SIGINT", () => {
    if (abort.signal.aborted) process.exit(exitCodes.interrupted);
    abort.abort(new Error("interrupted"));
    setTimeout(() => process.exit(exitCodes.interrupted), interruptGraceMs).unref();
  });
  // A closed pipe (`tributary read ... | head`) is a normal way for output to end.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    process.exit(error.code === "EPIPE" ? exitCodes.ok : exitCodes.error);
  });
  const io: CliIo = {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  };
  const code = await runCli(argv, io, { signal: abort.signal });
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(code);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runCliProcess(process.argv.slice(2));
}
