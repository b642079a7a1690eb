/**
 * Named failpoints for crash tests (as fail-rs and FoundationDB's BUGGIFY): the engine calls
 * `failpoint("flush.after-put")` at the points where a crash matters, and a test process sets
 * `TRIBUTARY_FAILPOINTS=flush.after-put=kill@3` to be SIGKILLed on the third hit. Without the
 * variable every call is one map lookup on an empty map.
 *
 * Points: `flush.before-build` (segment not yet encoded), `flush.after-put` (segment durable, acks
 * not yet released), `cache.after-file-write` (a durable segment's cache file written, the LevelDB
 * batch that indexes it not yet).
 */

interface FailpointAction {
  readonly action: "kill";
  remainingHits: number;
}

const failpoints = new Map<string, FailpointAction>();

/** Parses `name=kill@N,name2=kill@M`; `@N` defaults to 1. */
export function configureFailpoints(spec: string): void {
  failpoints.clear();
  for (const part of spec.split(",")) {
    const trimmed = part.trim();
    if (trimmed === "") continue;
    const match = /^([a-z.-]+)=kill(?:@(\d+))?$/.exec(trimmed);
    if (match === null) throw new Error(`bad failpoint spec. spec=\`${trimmed}\``);
    failpoints.set(match[1]!, { action: "kill", remainingHits: Number(match[2] ?? "1") });
  }
}

configureFailpoints(process.env["TRIBUTARY_FAILPOINTS"] ?? "");

/** Triggers the failpoint `name` if configured. */
export function failpoint(name: string): void {
  if (failpoints.size === 0) return;
  const point = failpoints.get(name);
  if (point === undefined) return;
  point.remainingHits -= 1;
  if (point.remainingHits === 0) process.kill(process.pid, "SIGKILL");
}
