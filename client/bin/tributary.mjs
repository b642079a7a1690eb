#!/usr/bin/env node
// The `tributary` command of @tributary/client, compiled JavaScript only. Any word but `serve`
// (and `--help`, `-h`, `help`) is the CLI; no word, `serve`, or a flag first (`tributary --port
// 1`) start the server of @tributary/server, which installs this same command.
const first = process.argv[2];
const isHelp = first === "--help" || first === "-h" || first === "help";
const isServer = first === undefined || first === "serve" || (first.startsWith("-") && !isHelp);
if (isServer) {
  try {
    await import("@tributary/server/serve");
  } catch (error) {
    if (
      error?.code !== "ERR_MODULE_NOT_FOUND" ||
      !String(error.message).includes("@tributary/server")
    ) {
      throw error;
    }
    process.stderr.write(
      "tributary: the server is in @tributary/server: npm install @tributary/server\n",
    );
    process.exit(2);
  }
} else {
  const { runCliProcess } = await import("../dist/cli/main.js");
  await runCliProcess(process.argv.slice(2));
}
