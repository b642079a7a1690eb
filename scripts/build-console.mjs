// Bundles the web console's browser code (server/console/app.ts, with Connect-web, the protobuf
// runtime and the generated tributary.v1 descriptors) into one ES module that
// server/src/api/console.ts serves at /console/console.js. Uses esbuild's JS API (esbuild comes
// with tsx); `make build` runs it, and so does the console browser test.
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const outfile = `${root}server/console/dist/console.js`;

await mkdir(`${root}server/console/dist`, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: ["server/console/app.ts"],
  outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  logLevel: "warning",
  metafile: true,
});
const bytes = result.metafile.outputs["server/console/dist/console.js"]?.bytes ?? 0;
if (process.argv.includes("--verbose")) console.log(`console bundle: ${outfile} (${bytes} bytes)`);
