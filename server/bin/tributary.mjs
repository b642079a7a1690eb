#!/usr/bin/env node
// The `tributary` command of @tributary/server, compiled JavaScript only. No word, `serve`, or a
// flag first (`tributary --port 1`) start the server; any other word (and `--help`, `-h`, `help`,
// which list both) is the CLI of @tributary/client, which installs this same command.
const first = process.argv[2];
const isHelp = first === "--help" || first === "-h" || first === "help";
const isServer = first === undefined || first === "serve" || (first.startsWith("-") && !isHelp);
if (isServer) {
  await import("../dist/main.js");
} else {
  let cli;
  try {
    cli = await import("@tributary/client/cli");
  } catch (error) {
    if (
      error?.code !== "ERR_MODULE_NOT_FOUND" ||
      !String(error.message).includes("@tributary/client")
    ) {
      throw error;
    }
    process.stderr.write(
      `tributary: \`${first}\` is a CLI command, and the CLI is in @tributary/client: npm install @tributary/client\n`,
    );
    process.exit(2);
  }
  await cli.runCliProcess(process.argv.slice(2));
}
