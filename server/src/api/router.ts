/**
 * Routing of the S2 v1 API (S2-API.md §2). Paths are matched on their raw (still percent-encoded)
 * segments, so that a stream name containing an encoded `/` is one parameter, and each parameter
 * is decoded afterwards (a malformed escape is 400 `bad_path`). An unknown path gets an empty 404
 * and a known path with another method an empty 405, as lite's router does.
 */
import { S2Error } from "../core/errors.js";
import type { RequestContext } from "./http/request-context.js";

export type Handler = (context: RequestContext) => Promise<void>;

export interface Route {
  readonly method: string;
  /** Segments after the leading `/`; `{name}` is a parameter. */
  readonly pattern: readonly string[];
  readonly handler: Handler;
}

export function route(method: string, path: string, handler: Handler): Route {
  return { method, pattern: path.split("/").filter((segment) => segment !== ""), handler };
}

export type RouteMatch =
  | { readonly kind: "found"; readonly route: Route; readonly params: Record<string, string> }
  | { readonly kind: "method_not_allowed" }
  | { readonly kind: "not_found" };

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new S2Error("bad_path", `invalid percent-encoding in path. segment=\`${raw}\``);
  }
}

/** Finds the route for a method and raw path (without the query). */
export function matchRoute(routes: readonly Route[], method: string, rawPath: string): RouteMatch {
  // No trailing-slash normalization, as lite's router: `/v1/metrics/b/` is the stream metrics
  // of an empty stream name (an empty segment never fills a parameter), so a 404, not basin b's.
  const segments = rawPath.split("/").slice(1);
  let pathMatched = false;
  for (const candidate of routes) {
    if (candidate.pattern.length !== segments.length) continue;
    const raw: Record<string, string> = {};
    let matches = true;
    for (let i = 0; i < segments.length; i++) {
      const expected = candidate.pattern[i]!;
      const actual = segments[i]!;
      if (expected.startsWith("{") && expected.endsWith("}")) {
        if (actual === "") {
          matches = false;
          break;
        }
        raw[expected.slice(1, -1)] = actual;
      } else if (expected !== actual) {
        matches = false;
        break;
      }
    }
    if (!matches) continue;
    pathMatched = true;
    if (candidate.method !== method) continue;
    const params: Record<string, string> = {};
    for (const [name, value] of Object.entries(raw)) params[name] = decodeParam(value);
    return { kind: "found", route: candidate, params };
  }
  return pathMatched ? { kind: "method_not_allowed" } : { kind: "not_found" };
}
