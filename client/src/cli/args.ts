/**
 * Command-line arguments of one CLI command: flags declared per command, positionals, and the
 * value parsers (counts, seq nums, durations) shared by the commands. Every mistake is a
 * `UsageError`, which the dispatcher prints as one line plus the command's usage (exit 2).
 */

/** A mistake in how a command was invoked: a bad URI, an unknown flag, a missing argument. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A flag a command accepts. Booleans may be followed by `true`/`false` (S2 CLI style). */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  /** A one-letter alias, without the dash. */
  readonly short?: string;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** Parsed arguments: flag values by long name (strings or booleans) and the positionals. */
export interface ParsedArgs {
  readonly flags: ReadonlyMap<string, string | boolean>;
  readonly positionals: readonly string[];
}

const booleanWords = new Map([
  ["true", true],
  ["false", false],
]);

/**
 * Parses `args` against `specs`. `--name value`, `--name=value`, `-n value` and `-nvalue` set a
 * string flag; a boolean flag is `--name`, `--name=true|false` or `--name true|false`. `--`
 * ends the flags. A flag given twice keeps the last value.
 */
export function parseCommandArgs(args: readonly string[], specs: FlagSpecs): ParsedArgs {
  const flags = new Map<string, string | boolean>();
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.short !== undefined) byShort.set(spec.short, name);
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
      if (specs[name] === undefined) throw new UsageError(`unknown flag \`--${name}\``);
    } else if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      name = byShort.get(arg[1]!);
      if (name === undefined) throw new UsageError(`unknown flag \`${arg.slice(0, 2)}\``);
      inline = arg.length > 2 ? arg.slice(2) : undefined;
    } else {
      positionals.push(arg);
      continue;
    }
    const spec = specs[name]!;
    if (spec.type === "boolean") {
      if (inline !== undefined) {
        const value = booleanWords.get(inline);
        if (value === undefined) throw new UsageError(`--${name} takes true or false`);
        flags.set(name, value);
      } else {
        const next = args[i + 1];
        const value = next === undefined ? undefined : booleanWords.get(next);
        if (value !== undefined) i += 1;
        flags.set(name, value ?? true);
      }
    } else {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      flags.set(name, value);
    }
  }
  return { flags, positionals };
}

/** A string flag's value, if given. */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags.get(name);
  return typeof value === "string" ? value : undefined;
}

/** A boolean flag's value, if given. */
export function booleanFlag(args: ParsedArgs, name: string): boolean | undefined {
  const value = args.flags.get(name);
  return typeof value === "boolean" ? value : undefined;
}

/** Requires exactly `names.length` positionals and returns them. */
export function positionalsOf(args: ParsedArgs, names: readonly string[]): string[] {
  if (args.positionals.length < names.length) {
    throw new UsageError(`missing argument <${names[args.positionals.length]}>`);
  }
  if (args.positionals.length > names.length) {
    throw new UsageError(`unexpected argument \`${args.positionals[names.length]}\``);
  }
  return [...args.positionals];
}

/** A u64 (seq num, count, timestamp in ms) given as decimal digits. */
export function parseU64(text: string, what: string): bigint {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what} must be a non-negative integer`);
  const value = BigInt(text);
  if (value >= 1n << 64n) throw new UsageError(`${what} does not fit in 64 bits`);
  return value;
}

/** A u64 flag's value, if given. */
export function u64Flag(args: ParsedArgs, name: string): bigint | undefined {
  const text = stringFlag(args, name);
  return text === undefined ? undefined : parseU64(text, `--${name}`);
}

const durationUnitSecs: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

/**
 * A duration in seconds: `90`, `90s`, `30m`, `1h30m`, `7d`, `2w` (units s, m, h, d, w; a bare
 * number is seconds), as the S2 CLI's humantime durations are most often written.
 */
export function parseDurationSecs(text: string, what: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const parts = /^(?:\d+[smhdw])+$/.test(text) ? text.match(/\d+[smhdw]/g) : null;
  if (parts === null) {
    throw new UsageError(`${what} must be a duration like 30s, 10m, 1h or 7d, got \`${text}\``);
  }
  let secs = 0;
  for (const part of parts) secs += Number(part.slice(0, -1)) * durationUnitSecs[part.slice(-1)]!;
  if (!Number.isSafeInteger(secs)) throw new UsageError(`${what} is too long`);
  return secs;
}

/** One of `choices`, by its exact spelling. */
export function parseChoice<T extends string>(
  text: string,
  choices: readonly T[],
  what: string,
): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`${what} must be one of ${choices.join(", ")}, got \`${text}\``);
  }
  return text as T;
}
