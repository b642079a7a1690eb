/**
 * The metrics API's JSON shapes (S2-API.md §4.5, openapi `MetricSetResponse`): each metric is an
 * object with one key naming its kind (`scalar`, `accumulation`, `gauge`, `label`); timeseries
 * values are `[epoch seconds, value]` pairs.
 */
import type { Metric } from "../../service/metrics.js";

export type MetricJson =
  | { readonly scalar: { readonly name: string; readonly unit: string; readonly value: number } }
  | {
      readonly accumulation: {
        readonly name: string;
        readonly unit: string;
        readonly interval: string;
        readonly values: readonly (readonly [number, number])[];
      };
    }
  | {
      readonly gauge: {
        readonly name: string;
        readonly unit: string;
        readonly values: readonly (readonly [number, number])[];
      };
    }
  | { readonly label: { readonly name: string; readonly values: readonly string[] } };

export function renderMetric(metric: Metric): MetricJson {
  switch (metric.kind) {
    case "scalar":
      return { scalar: { name: metric.name, unit: metric.unit, value: metric.value } };
    case "accumulation":
      return {
        accumulation: {
          name: metric.name,
          unit: metric.unit,
          interval: metric.interval,
          values: metric.values,
        },
      };
    case "gauge":
      return { gauge: { name: metric.name, unit: metric.unit, values: metric.values } };
    case "label":
      return { label: { name: metric.name, values: metric.values } };
  }
}

/** `MetricSetResponse`: `{ values: Metric[] }`. */
export function renderMetricSetResponse(metrics: readonly Metric[]): {
  values: MetricJson[];
} {
  return { values: metrics.map(renderMetric) };
}
