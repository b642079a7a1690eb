/**
 * `tributary serve` (both packages' bins, the checkout's dev script, and `@tributary/server/serve`):
 * the server, in a process that runs with its V8 flags. The relaunch comes before the server's
 * modules are loaded, so a relaunching process loads them once (src/node-flags.ts).
 */
import { relaunchWithServerNodeFlags } from "./node-flags.js";

relaunchWithServerNodeFlags();
await import("./main.js");
