#!/usr/bin/env node
// The `tributary` command of @tributary/client, compiled JavaScript only: every word but `serve`
// runs this package's CLI, `serve` the server of @tributary/server (@tributary/protocol/command).
import { runTributaryCommand } from "@tributary/protocol/command";

await runTributaryCommand({
  process,
  serve: () => import("@tributary/server/serve"),
  cli: () => import("../dist/cli/main.js"),
});
