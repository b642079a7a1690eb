/**
 * The `tributary` command line, shared by the two packages that install the command: no word,
 * `serve`, or a flag first (`tributary --port 1`) run the server (@tributary/server), any other
 * word (and `--help`, `-h`, `help`, which list both) the CLI (@tributary/client). Either package
 * may be installed alone, and when both are, npm links one package's command: each loads its own
 * half and the other package's by name, so both behave the same. Node-only (not in the index).
 */

/** What the command uses of Node's `process`. */
export interface CommandProcess {
  readonly argv: readonly string[];
  readonly stderr: { write(text: string): unknown };
  exit(code: number): never;
}

/** The CLI's process entry (`runCliProcess` of @tributary/client/cli). */
export interface CliModule {
  runCliProcess(argv: string[]): Promise<void>;
}

export interface TributaryCommandOptions {
  readonly process: CommandProcess;
  /** Loads the server, which starts on import. */
  readonly serve: () => Promise<unknown>;
  /** Loads the CLI. */
  readonly cli: () => Promise<CliModule>;
}

/** Which half of the command `args` (the words after `tributary`) is for. */
export function tributaryCommandOf(args: readonly string[]): "serve" | "cli" {
  const first = args[0];
  const isHelp = first === "--help" || first === "-h" || first === "help";
  const isServe = first === undefined || first === "serve" || (first.startsWith("-") && !isHelp);
  return isServe ? "serve" : "cli";
}

/** Runs `tributary` with `process.argv`; a half whose package is not installed exits 2 saying so. */
export async function runTributaryCommand(options: TributaryCommandOptions): Promise<void> {
  const args = options.process.argv.slice(2);
  const kind = tributaryCommandOf(args);
  const packageName = kind === "serve" ? "@tributary/server" : "@tributary/client";
  try {
    if (kind === "serve") {
      await options.serve();
      return;
    }
    const cli = await options.cli();
    await cli.runCliProcess(args);
  } catch (error) {
    const isMissing =
      (error as { code?: unknown } | null)?.code === "ERR_MODULE_NOT_FOUND" &&
      String((error as Error).message).includes(`'${packageName}'`);
    if (!isMissing) throw error;
    const what = kind === "serve" ? "the server" : `\`${args[0]}\`, a CLI command,`;
    options.process.stderr.write(
      `tributary: ${what} needs ${packageName}: npm install ${packageName}\n`,
    );
    options.process.exit(2);
  }
}
