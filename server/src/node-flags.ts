/**
 * The Node flags the server process runs with, and the relaunch that gives them to it: V8 reads
 * its heap's shape once, when the process starts, so a flag such as `--max-semi-space-size` cannot
 * be set from inside (v8.setFlagsFromString takes it and changes nothing) and a `#!/usr/bin/env -S
 * node …` line fails on BusyBox. `tributary serve` (the package's bin and the checkout's dev
 * script) calls `relaunchWithServerNodeFlags` before it loads the server: the process replaces
 * its own image with `node <flags> <same arguments>` (`process.execve`: same pid, descriptors and
 * environment, so supervisors and pipes see nothing). The tests and benches spawn the server with
 * `serverNodeFlags` on its command line. A flag the operator set (on the command line or in
 * `NODE_OPTIONS`) is left as set.
 *
 * Where `process.execve` is missing (Windows, Node before 22.15), the server runs with V8's
 * defaults; nothing else depends on the flags.
 */

/**
 * V8's young generation per semi-space, MiB (ours; node 24's default grows it to 16). Each
 * semi-space grows under allocation pressure and its size is kept committed: at 512 B records
 * the heap held 165–200 MiB committed for 60–100 used. Measured with bench/memory-probe.ts
 * (3 s parts, two alternating runs each, 2026-12-08, node 24): server peak RSS at 512 B records
 * 359–396 MiB with the default, 319–330 with 8 (heap committed 170 → 80 MiB); at 8 KiB 259–289
 * against 249–253; append throughput within the runs' noise (512 B: 23.6–29.7 against 27.2–33.0
 * MiB/s; 8 KiB: 35.3–45.3 against 38.3–45.0).
 */
export const semiSpaceMiBMax = 8;

/** The flags, as they go on a node command line. */
export const serverNodeFlags: readonly string[] = [`--max-semi-space-size=${semiSpaceMiBMax}`];

/** A flag's name without its value, `_` read as `-` (V8 takes both spellings). */
function flagName(arg: string): string {
  return arg.split("=", 1)[0]!.replaceAll("_", "-");
}

/** The flags of `flags` whose name neither `execArgv` nor `nodeOptions` (NODE_OPTIONS) sets. */
export function missingNodeFlags(
  flags: readonly string[],
  execArgv: readonly string[],
  nodeOptions: string,
): string[] {
  const given = new Set(
    [...execArgv, ...nodeOptions.split(/\s+/)].filter((arg) => arg !== "").map(flagName),
  );
  return flags.filter((flag) => !given.has(flagName(flag)));
}

/** What the relaunch uses of Node's `process`. */
export interface RelaunchProcess {
  readonly execPath: string;
  readonly execArgv: readonly string[];
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly platform: string;
  readonly execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never;
}

/**
 * Replaces this process with `node <missing flags> <its own node flags> <its script and
 * arguments>` when a server flag is missing and `process.execve` exists; returns otherwise.
 */
export function relaunchWithServerNodeFlags(
  proc: RelaunchProcess = process as unknown as RelaunchProcess,
): void {
  const missing = missingNodeFlags(serverNodeFlags, proc.execArgv, proc.env["NODE_OPTIONS"] ?? "");
  if (missing.length === 0 || typeof proc.execve !== "function" || proc.platform === "win32") {
    return;
  }
  proc.execve(
    proc.execPath,
    [proc.execPath, ...missing, ...proc.execArgv, ...proc.argv.slice(1)],
    proc.env,
  );
}
