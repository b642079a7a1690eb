/**
 * Records routes (S2-API.md §2). Being written (issue 3).
 */
import type { Route } from "../router.js";
import type { ApiDeps } from "../routes.js";

export function recordRoutes(_deps: ApiDeps): Route[] {
  return [];
}
