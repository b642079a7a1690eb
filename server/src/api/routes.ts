/**
 * The v1 route table (S2-API.md §2). Each handler lives in `rest/`, one file per resource.
 */
import type { Service } from "../service/service.js";
import type { ApiMetrics } from "./metrics.js";
import type { Route } from "./router.js";
import { accessTokenRoutes } from "./rest/access-tokens.js";
import { basinRoutes } from "./rest/basins.js";
import { streamRoutes } from "./rest/streams.js";
import { recordRoutes } from "./rest/records.js";
import { metricsRoutes } from "./rest/metrics.js";
import { locationRoutes } from "./rest/locations.js";
import type { FrameBudget } from "./frame-budget.js";
import type { SessionSlots } from "./session-slots.js";
import type { TokenWatch } from "./token-watch.js";

/** What route handlers need. */
export interface ApiDeps {
  readonly service: Service;
  readonly metrics: ApiMetrics;
  /** Ends sessions whose token is revoked or expires. */
  readonly tokenWatch: TokenWatch;
  /** The cap on open streaming sessions (`sessionsMax`). */
  readonly sessionSlots: SessionSlots;
  /** How long an S2S append session waits for the rest of a frame (`s2sFrameStallTimeoutMs`). */
  readonly s2sFrameStallTimeoutMs: number;
  /** The bytes S2S append sessions may hold in frames still arriving (`s2sFrameBufferBytesMax`). */
  readonly frameBudget: FrameBudget;
}

export function createRoutes(deps: ApiDeps): Route[] {
  return [
    ...basinRoutes(deps),
    ...streamRoutes(deps),
    ...recordRoutes(deps),
    ...accessTokenRoutes(deps),
    ...metricsRoutes(deps),
    ...locationRoutes(),
  ];
}
