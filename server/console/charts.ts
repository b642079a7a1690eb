/**
 * Charts of the metrics API (docs/design/metrics.md), drawn with uPlot: small (~50 KiB), kept up,
 * canvas-based and free of inline `<style>`/`eval`, so it runs under the console's CSP (it sets
 * sizes through `element.style`, which `style-src 'self'` allows). One chart per metric set, one
 * line per series of the set. Accumulations omit empty buckets, so they are filled with zeros on
 * the set's bucket grid; gauges have a point per bucket already. Each chart's element carries
 * `data-points` (points the API returned) and `data-total` (their sum), so that a reader or a
 * test can check the chart against the API. The caption gives an accumulation's total over the
 * range and a gauge's latest value.
 */
import type { Metric } from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import { MetricUnit, TimeseriesInterval } from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import uPlot from "uplot";
import { formatBytes } from "./api.js";
import { h } from "./dom.js";

/** Chart size in CSS pixels. */
const chartWidthPx = 540;
const chartHeightPx = 220;
/** Line colours, one per series in order (repeats past the end). */
const palette = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4"];

/** The length of an interval's bucket. */
export function intervalSecs(interval: TimeseriesInterval): number {
  switch (interval) {
    case TimeseriesInterval.MINUTE:
      return 60;
    case TimeseriesInterval.HOUR:
      return 3600;
    case TimeseriesInterval.DAY:
      return 86_400;
    case TimeseriesInterval.UNSPECIFIED:
      return 60;
  }
}

/** One timeseries of a set, as the API returned it. */
interface Series {
  readonly name: string;
  readonly points: ReadonlyMap<number, number>;
}

export interface ChartOptions {
  /** Element id of the chart (`chart-${id}`). */
  readonly id: string;
  readonly title: string;
  readonly metrics: readonly Metric[];
  /** The query: range in epoch seconds and the bucket length. */
  readonly startSec: number;
  readonly endSec: number;
  readonly interval: TimeseriesInterval;
}

/** Builds a chart of `metrics` (uPlot draws it at once, in or out of the document). */
export function metricsChart(options: ChartOptions): HTMLElement {
  const series: Series[] = [];
  let unit = MetricUnit.OPERATIONS;
  let isGauge = false;
  let pointCount = 0;
  let total = 0;
  let latest = 0;
  for (const { metric } of options.metrics) {
    if (metric.case !== "accumulation" && metric.case !== "gauge") continue;
    isGauge = metric.case === "gauge";
    unit = metric.value.unit;
    const points = new Map<number, number>();
    for (const point of metric.value.values) {
      points.set(point.timestamp, point.value);
      pointCount += 1;
      total += point.value;
    }
    latest += metric.value.values.at(-1)?.value ?? 0;
    series.push({ name: metric.value.name, points });
  }
  const formatValue = unit === MetricUnit.BYTES ? formatBytes : (value: number) => String(value);
  const figure = h(
    "figure",
    {
      id: `chart-${options.id}`,
      class: "chart",
      "data-points": String(pointCount),
      "data-total": String(total),
    },
    h(
      "figcaption",
      {},
      `${options.title} (${unit === MetricUnit.BYTES ? "bytes" : "operations"}${
        series.length === 0
          ? ""
          : isGauge
            ? `, now ${formatValue(latest)}`
            : `, total ${formatValue(total)}`
      })`,
    ),
  );
  if (series.length === 0) {
    figure.append(h("p", { class: "empty" }, "no data in this range"));
    return figure;
  }

  const stepSec = intervalSecs(options.interval);
  const times = new Set<number>();
  if (!isGauge) {
    const firstSec = Math.floor(options.startSec / stepSec) * stepSec;
    for (let t = firstSec; t <= options.endSec; t += stepSec) times.add(t);
  }
  for (const { points } of series) for (const t of points.keys()) times.add(t);
  const xs = [...times].sort((a, b) => a - b);
  const data: uPlot.AlignedData = [
    xs,
    ...series.map(({ points }) => xs.map((t) => points.get(t) ?? (isGauge ? null : 0))),
  ];
  const plot = new uPlot(
    {
      width: chartWidthPx,
      height: chartHeightPx,
      scales: { x: { time: true } },
      axes: [{}, { values: (_self, ticks) => ticks.map(formatValue), size: 70 }],
      series: [
        {},
        ...series.map(
          (one, i): uPlot.Series => ({
            label: one.name,
            stroke: palette[i % palette.length] ?? "#000",
            width: 2,
            points: { show: xs.length <= 60 },
            value: (_self, value) => (value === null ? "—" : formatValue(value)),
          }),
        ),
      ],
    },
    data,
  );
  figure.append(plot.root);
  return figure;
}
