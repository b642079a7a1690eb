/**
 * The web console's static files (docs/design/api.md "Web console"): `GET /` redirects to
 * `/console`, which serves `server/console/index.html`, its stylesheet and the browser bundle that
 * `scripts/build-console.mjs` writes to `server/console/dist/` (`make build`). Files are read per
 * request (a few KiB and one bundle of ~250 KiB), so a rebuilt bundle is served without a restart; a
 * missing bundle is a 503 that says how to build it. Same origin as the API, so no CORS is needed.
 */
import { readFile } from "node:fs/promises";
import type { ApiResponse } from "./http/request-context.js";

const consoleDir = new URL("../../console/", import.meta.url);

interface ConsoleAsset {
  readonly file: URL;
  readonly contentType: string;
}

const assets: ReadonlyMap<string, ConsoleAsset> = new Map([
  [
    "/console",
    { file: new URL("index.html", consoleDir), contentType: "text/html; charset=utf-8" },
  ],
  [
    "/console/",
    { file: new URL("index.html", consoleDir), contentType: "text/html; charset=utf-8" },
  ],
  [
    "/console/console.css",
    { file: new URL("console.css", consoleDir), contentType: "text/css; charset=utf-8" },
  ],
  [
    "/console/uplot.css",
    { file: new URL("dist/uplot.css", consoleDir), contentType: "text/css; charset=utf-8" },
  ],
  [
    "/console/console.js",
    {
      file: new URL("dist/console.js", consoleDir),
      contentType: "text/javascript; charset=utf-8",
    },
  ],
]);

/** The page may load only its own files and call only its own origin. */
const securityHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "cache-control": "no-cache",
};

/** Whether `path` is the console's (`/`, `/console` and everything under `/console/`). */
export function isConsolePath(path: string): boolean {
  return path === "/" || path === "/console" || path.startsWith("/console/");
}

/** Answers a GET or HEAD for a console path. */
export async function serveConsole(
  path: string,
  method: "GET" | "HEAD",
  response: ApiResponse,
): Promise<void> {
  if (path === "/") {
    response.writeHead(302, { location: "/console", "content-length": "0" });
    response.end();
    return;
  }
  const asset = assets.get(path);
  if (asset === undefined) {
    response.writeHead(404, { "content-length": "0" });
    response.end();
    return;
  }
  let body: Buffer;
  try {
    body = await readFile(asset.file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    const text = "console not built: run `make build` (or `node scripts/build-console.mjs`)\n";
    response.writeHead(503, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
    });
    if (method === "HEAD") response.end();
    else response.end(text);
    return;
  }
  response.writeHead(200, {
    "content-type": asset.contentType,
    "content-length": String(body.length),
    ...securityHeaders,
  });
  if (method === "HEAD") response.end();
  else response.end(body);
}
