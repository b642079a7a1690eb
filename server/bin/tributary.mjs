#!/usr/bin/env node
// The `tributary` command: runs the TypeScript entry points through tsx (no build step). No
// arguments, `serve`, or a flag first (`tributary --port 1`) start the server as before; any
// other word (and `--help`/`-h`/`help`, which list both) is a CLI command
// (client/src/cli/main.ts).
import { register } from "tsx/esm/api";

register();
const first = process.argv[2];
const isHelp = first === "--help" || first === "-h" || first === "help";
const isServer = first === undefined || first === "serve" || (first.startsWith("-") && !isHelp);
if (isServer) {
  await import("../src/main.ts");
} else {
  const { runCliProcess } = await import("../../client/src/cli/main.ts");
  await runCliProcess(process.argv.slice(2));
}
