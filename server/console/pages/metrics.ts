/**
 * The metrics page (`#/metrics?basin=B&stream=S&range=R`): charts of the metrics API for the
 * account, a basin and a stream over a chosen range (docs/design/metrics.md). The account shows
 * its active basins and operations; a basin its append and read throughput, storage and
 * operations; a stream its storage. The bucket length follows the range (minutes up to 6 hours,
 * hours up to 7 days, days beyond), except where a set allows only one (basin storage: hours;
 * stream storage: minutes).
 */
import {
  AccountMetricSet,
  BasinMetricSet,
  type Metric,
  StreamMetricSet,
  TimeseriesInterval,
} from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import { account, basins, messageOf, streams } from "../api.js";
import { metricsChart } from "../charts.js";
import { field, formValue, h, select } from "../dom.js";

/** The ranges offered, in seconds; the API allows at most 30 days. */
export const metricRanges: readonly (readonly [string, number])[] = [
  ["1h", 3600],
  ["6h", 6 * 3600],
  ["24h", 86_400],
  ["7d", 7 * 86_400],
  ["30d", 30 * 86_400],
];
const rangeDefault = "1h";

/** A query range ending now. */
export interface MetricsRange {
  readonly startSec: number;
  readonly endSec: number;
  /** The bucket length for sets that allow any. */
  readonly interval: TimeseriesInterval;
}

/** The range named `name` (one of `metricRanges`), ending now. */
export function rangeNamed(name: string): MetricsRange {
  const lengthSec = metricRanges.find(([rangeName]) => rangeName === name)?.[1] ?? 3600;
  const endSec = Math.floor(Date.now() / 1000);
  const interval =
    lengthSec <= 6 * 3600
      ? TimeseriesInterval.MINUTE
      : lengthSec <= 7 * 86_400
        ? TimeseriesInterval.HOUR
        : TimeseriesInterval.DAY;
  return { startSec: endSec - lengthSec, endSec, interval };
}

interface ChartQuery {
  readonly id: string;
  readonly title: string;
  readonly interval: TimeseriesInterval;
  fetch(interval: TimeseriesInterval): Promise<readonly Metric[]>;
}

/** Fetches each query and draws its chart into `holder`, in order; a failure says so in place. */
async function drawCharts(
  holder: HTMLElement,
  range: MetricsRange,
  queries: readonly ChartQuery[],
): Promise<void> {
  const results = await Promise.all(
    queries.map(async (query) => {
      try {
        const metrics = await query.fetch(query.interval);
        return metricsChart({
          id: query.id,
          title: query.title,
          metrics,
          startSec: range.startSec,
          endSec: range.endSec,
          interval: query.interval,
        });
      } catch (error) {
        return h("p", { class: "error" }, `${query.title}: ${messageOf(error)}`);
      }
    }),
  );
  holder.replaceChildren(...results);
}

/** The stream's storage chart (also shown on the stream page). */
export function streamCharts(basin: string, stream: string, range: MetricsRange): HTMLElement {
  const holder = h("div", { class: "charts", id: "stream-charts" }, "loading…");
  void drawCharts(holder, range, [
    {
      id: "stream-storage",
      title: `${basin}/${stream}: storage`,
      interval: TimeseriesInterval.MINUTE,
      fetch: async (interval) =>
        (
          await streams.getStreamMetrics({
            basin,
            stream,
            set: StreamMetricSet.STORAGE,
            start: range.startSec,
            end: range.endSec,
            interval,
          })
        ).values,
    },
  ]);
  return holder;
}

function basinCharts(basin: string, range: MetricsRange): HTMLElement {
  const holder = h("div", { class: "charts", id: "basin-charts" }, "loading…");
  const query = (id: string, title: string, set: BasinMetricSet, interval: TimeseriesInterval) => ({
    id,
    title: `${basin}: ${title}`,
    interval,
    fetch: async (asked: TimeseriesInterval) =>
      (
        await basins.getBasinMetrics({
          basin,
          set,
          start: range.startSec,
          end: range.endSec,
          interval: asked,
        })
      ).values,
  });
  void drawCharts(holder, range, [
    query(
      "append-throughput",
      "append throughput",
      BasinMetricSet.APPEND_THROUGHPUT,
      range.interval,
    ),
    query("read-throughput", "read throughput", BasinMetricSet.READ_THROUGHPUT, range.interval),
    query("basin-storage", "storage", BasinMetricSet.STORAGE, TimeseriesInterval.HOUR),
    query("append-ops", "append operations", BasinMetricSet.APPEND_OPS, range.interval),
    query("read-ops", "read operations", BasinMetricSet.READ_OPS, range.interval),
    query("basin-ops", "basin operations", BasinMetricSet.BASIN_OPS, range.interval),
  ]);
  return holder;
}

function accountCharts(range: MetricsRange): HTMLElement {
  const activeBasins = h("p", { id: "active-basins" }, "active basins: loading…");
  const charts = h("div", { class: "charts", id: "account-charts" }, "loading…");
  void account
    .getAccountMetrics({
      set: AccountMetricSet.ACTIVE_BASINS,
      start: range.startSec,
      end: range.endSec,
    })
    .then(
      ({ values }) => {
        const names = values.flatMap(({ metric }) =>
          metric.case === "label" ? metric.value.values : [],
        );
        activeBasins.textContent = `active basins: ${names.length === 0 ? "none" : names.join(", ")}`;
      },
      (error: unknown) => {
        activeBasins.textContent = `active basins: ${messageOf(error)}`;
      },
    );
  void drawCharts(charts, range, [
    {
      id: "account-ops",
      title: "account operations",
      interval: range.interval,
      fetch: async (interval) =>
        (
          await account.getAccountMetrics({
            set: AccountMetricSet.ACCOUNT_OPS,
            start: range.startSec,
            end: range.endSec,
            interval,
          })
        ).values,
    },
  ]);
  return h("div", {}, activeBasins, charts);
}

/** Renders the metrics page for the hash query `params`. */
export function metricsPage(params: URLSearchParams): HTMLElement {
  const basin = params.get("basin") ?? "";
  const stream = params.get("stream") ?? "";
  const rangeName = params.get("range") ?? rangeDefault;
  const range = rangeNamed(rangeName);

  const form = h(
    "form",
    { id: "metrics-form", class: "toolbar" },
    field("Basin", h("input", { name: "basin", value: basin, placeholder: "(account only)" })),
    field("Stream", h("input", { name: "stream", value: stream, placeholder: "(basin only)" })),
    field(
      "Range",
      select(
        "range",
        metricRanges.map(([name]) => [name, `last ${name}`] as const),
        rangeName,
      ),
    ),
    h("button", { id: "metrics-show", type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const name of ["basin", "stream", "range"]) {
      const value = formValue(form, name).trim();
      if (value !== "") query.set(name, value);
    }
    const target = `#/metrics?${query}`;
    // The same hash fires no hashchange: "Show" then redraws the charts with the range ending now.
    if (window.location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else window.location.hash = target;
  });

  const page = h(
    "div",
    { id: "metrics-page" },
    h("h2", {}, "Metrics"),
    form,
    h(
      "p",
      { class: "hint" },
      `${new Date(range.startSec * 1000).toISOString()} to ${new Date(range.endSec * 1000).toISOString()}`,
    ),
    h("h3", {}, "Account"),
    accountCharts(range),
  );
  if (basin !== "") page.append(h("h3", {}, `Basin ${basin}`), basinCharts(basin, range));
  if (basin !== "" && stream !== "") {
    page.append(h("h3", {}, `Stream ${basin}/${stream}`), streamCharts(basin, stream, range));
  }
  return page;
}
