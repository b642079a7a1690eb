// Bundles the web console's browser code (server/console/app.ts and its modules, with Connect-web,
// the protobuf runtime, the generated tributary.v1 descriptors and uPlot) into one ES module that
// server/src/api/console.ts serves at /console/console.js, and copies uPlot's stylesheet beside it
// (/console/uplot.css). Uses esbuild's JS API (esbuild comes with tsx); `make build` runs it, and
// so do the console browser tests.
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const outfile = `${root}server/console/dist/console.js`;
const uplotCss = createRequire(`${root}server/package.json`).resolve("uplot/dist/uPlot.min.css");

await mkdir(`${root}server/console/dist`, { recursive: true });
await copyFile(uplotCss, `${root}server/console/dist/uplot.css`);
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
