/**
 * Routes that s2-lite answers with 501 after parsing the request (S2-API.md §2): access tokens,
 * the metrics API and locations. Issue 6 replaces tokens and metrics with real implementations.
 * The SDK retries 5xx other than 501, so 501 (not 500/503) keeps its tests fast.
 */
import { notImplemented } from "../../core/errors.js";
import type { Handler } from "../router.js";

export const notImplementedHandler: Handler = async () => {
  throw notImplemented();
};
