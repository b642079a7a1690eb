#!/usr/bin/env node
// The `tributary` command of @tributary/server, compiled JavaScript only: `serve` runs this
// package's server, every other word the CLI of @tributary/client (@tributary/protocol/command).
import { runTributaryCommand } from "@tributary/protocol/command";

await runTributaryCommand({
  process,
  serve: () => import("../dist/serve.js"),
  cli: () => import("@tributary/client/cli"),
});
