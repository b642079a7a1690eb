#!/usr/bin/env node
// The `tributary` command run from this checkout's TypeScript sources through tsx (no build
// step), for development and the tests: `serve` is server/src/serve.ts, every other word
// client/src/cli/main.ts, chosen as the installed packages' commands choose
// (protocol/src/command.ts).
import { register } from "tsx/esm/api";

register();
const { runTributaryCommand } = await import("../protocol/src/command.ts");
await runTributaryCommand({
  process,
  serve: () => import("../server/src/serve.ts"),
  cli: () => import("../client/src/cli/main.ts"),
});
