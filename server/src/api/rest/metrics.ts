/**
 * Metrics routes (S2-API.md §2 rows 19–21, §4.5; docs/design/metrics.md): account, basin and
 * stream metric sets. Query parsing follows lite's extractors: a missing or unknown `set`, a
 * malformed `start`/`end` (u32 epoch seconds) or an unknown `interval` is 400 `bad_query`; an
 * invalid basin or stream in the path is 400 `bad_path`. Semantic checks (start and end required,
 * range, interval allowed for the set) are the service's 422 `invalid`. An unknown basin or stream
 * is not 404: it has no data, as in S2.
 *
 * Storage gauges are stored metered bytes, exact after trims too (`service/stored-bytes.ts`,
 * docs/design/metrics.md).
 */
import { S2Error } from "../../core/errors.js";
import { validateBasinName, validateStreamName } from "../../core/names.js";
import {
  accountMetricSets,
  basinMetricSets,
  isMetricSet,
  type MetricsQuery,
  streamMetricSets,
  type TimeseriesInterval,
  timeseriesIntervals,
} from "../../service/metrics.js";
import { accountMetricsInScope } from "../auth.js";
import { sendJson } from "../http/request-context.js";
import { badQuery, queryString, queryU64 } from "../http/query.js";
import { renderMetricSetResponse } from "../json/metrics-json.js";
import { type Route, route } from "../router.js";
import type { ApiDeps } from "../routes.js";

const u32Max = 0xffff_ffff;

function epochSecondsOf(query: URLSearchParams, name: string): number | undefined {
  const value = queryU64(query, name);
  if (value !== undefined && value > u32Max) {
    throw badQuery(name, "number too large to fit in target type");
  }
  return value;
}

/** `set`, `start`, `end` and `interval` of a metrics request, `set` one of `sets`. */
export function metricsQueryOf<Set extends string>(
  query: URLSearchParams,
  sets: readonly Set[],
): MetricsQuery<Set> {
  const set = queryString(query, "set");
  if (set === undefined) throw badQuery("set", "missing field `set`");
  if (!isMetricSet(sets, set)) {
    throw badQuery("set", `unknown variant \`${set}\`, expected one of ${sets.join(", ")}`);
  }
  const start = epochSecondsOf(query, "start");
  const end = epochSecondsOf(query, "end");
  const intervalText = queryString(query, "interval");
  let interval: TimeseriesInterval | undefined;
  if (intervalText !== undefined) {
    if (!(timeseriesIntervals as readonly string[]).includes(intervalText)) {
      throw badQuery("interval", `unknown variant \`${intervalText}\``);
    }
    interval = intervalText as TimeseriesInterval;
  }
  return { set, start, end, interval };
}

function pathParam(params: Readonly<Record<string, string>>, name: "basin" | "stream"): string {
  const value = params[name]!;
  const reason = name === "basin" ? validateBasinName(value) : validateStreamName(value);
  if (reason !== undefined) throw new S2Error("bad_path", `invalid ${name} in path: ${reason}`);
  return value;
}

export function metricsRoutes({ service }: ApiDeps): Route[] {
  return [
    route("GET", "/v1/metrics", async ({ auth, query, response }) => {
      const metrics = service.metrics.account(metricsQueryOf(query, accountMetricSets));
      sendJson(response, 200, renderMetricSetResponse(accountMetricsInScope(auth, metrics)));
    }),
    route("GET", "/v1/metrics/{basin}", async ({ params, query, response }) => {
      const basin = pathParam(params, "basin");
      const metrics = await service.metrics.basin(basin, metricsQueryOf(query, basinMetricSets));
      sendJson(response, 200, renderMetricSetResponse(metrics));
    }),
    route("GET", "/v1/metrics/{basin}/{stream}", async ({ params, query, response }) => {
      const basin = pathParam(params, "basin");
      const stream = pathParam(params, "stream");
      const metricsQuery = metricsQueryOf(query, streamMetricSets);
      const metrics = await service.metrics.stream(basin, stream, metricsQuery);
      sendJson(response, 200, renderMetricSetResponse(metrics));
    }),
  ];
}
