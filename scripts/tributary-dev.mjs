#!/usr/bin/env node
// The `tributary` command run from this checkout's TypeScript sources through tsx (no build
// step), for development and the tests: `serve` (also no word, or a flag first) is
// server/src/main.ts, any other word client/src/cli/main.ts. The installed packages' commands
// (server/bin/tributary.mjs, client/bin/tributary.mjs) make the same choice on compiled code.
import { register } from "tsx/esm/api";

register();
const first = process.argv[2];
const isHelp = first === "--help" || first === "-h" || first === "help";
const isServer = first === undefined || first === "serve" || (first.startsWith("-") && !isHelp);
if (isServer) {
  await import("../server/src/main.ts");
} else {
  const { runCliProcess } = await import("../client/src/cli/main.ts");
  await runCliProcess(process.argv.slice(2));
}
