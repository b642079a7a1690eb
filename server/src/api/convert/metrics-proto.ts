/**
 * The metrics API between `service/metrics.ts` and `proto/tributary/v1/metrics.proto`: request
 * enums to the service's set and interval names (UNSPECIFIED or an unknown number is 422
 * `invalid`, as an unknown `set` is on REST a 400), metrics to their messages.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  AccountMetricSet,
  BasinMetricSet,
  type MetricSchema,
  MetricUnit,
  StreamMetricSet,
  TimeseriesInterval,
} from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import { invalid } from "../../core/errors.js";
import type {
  AccountMetricSet as AccountSet,
  BasinMetricSet as BasinSet,
  Metric,
  MetricsQuery,
  StreamMetricSet as StreamSet,
  TimeseriesInterval as Interval,
} from "../../service/metrics.js";

const accountSets: Readonly<Record<number, AccountSet>> = {
  [AccountMetricSet.ACTIVE_BASINS]: "active-basins",
  [AccountMetricSet.ACCOUNT_OPS]: "account-ops",
};

const basinSets: Readonly<Record<number, BasinSet>> = {
  [BasinMetricSet.STORAGE]: "storage",
  [BasinMetricSet.APPEND_OPS]: "append-ops",
  [BasinMetricSet.READ_OPS]: "read-ops",
  [BasinMetricSet.READ_THROUGHPUT]: "read-throughput",
  [BasinMetricSet.APPEND_THROUGHPUT]: "append-throughput",
  [BasinMetricSet.BASIN_OPS]: "basin-ops",
};

const streamSets: Readonly<Record<number, StreamSet>> = {
  [StreamMetricSet.STORAGE]: "storage",
};

const intervals: Readonly<Record<number, Interval>> = {
  [TimeseriesInterval.MINUTE]: "minute",
  [TimeseriesInterval.HOUR]: "hour",
  [TimeseriesInterval.DAY]: "day",
};

const intervalsToProto: Readonly<Record<Interval, TimeseriesInterval>> = {
  minute: TimeseriesInterval.MINUTE,
  hour: TimeseriesInterval.HOUR,
  day: TimeseriesInterval.DAY,
};

const unitsToProto = { bytes: MetricUnit.BYTES, operations: MetricUnit.OPERATIONS } as const;

function queryOf<Set extends string>(
  sets: Readonly<Record<number, Set>>,
  request: {
    readonly set: number;
    readonly start?: number | undefined;
    readonly end?: number | undefined;
    readonly interval: TimeseriesInterval;
  },
): MetricsQuery<Set> {
  const set = sets[request.set];
  if (set === undefined) throw invalid(`unknown metric set. set=\`${request.set}\``);
  let interval: Interval | undefined;
  if (request.interval !== TimeseriesInterval.UNSPECIFIED) {
    interval = intervals[request.interval];
    if (interval === undefined) throw invalid(`unknown interval. interval=\`${request.interval}\``);
  }
  return { set, start: request.start, end: request.end, interval };
}

export function accountMetricsQueryFromProto(
  request: Parameters<typeof queryOf>[1],
): MetricsQuery<AccountSet> {
  return queryOf(accountSets, request);
}

export function basinMetricsQueryFromProto(
  request: Parameters<typeof queryOf>[1],
): MetricsQuery<BasinSet> {
  return queryOf(basinSets, request);
}

export function streamMetricsQueryFromProto(
  request: Parameters<typeof queryOf>[1],
): MetricsQuery<StreamSet> {
  return queryOf(streamSets, request);
}

function pointsToProto(values: readonly (readonly [number, number])[]) {
  return values.map(([timestamp, value]) => ({ timestamp, value }));
}

export function metricToProto(metric: Metric): MessageInitShape<typeof MetricSchema> {
  switch (metric.kind) {
    case "scalar":
      return {
        metric: {
          case: "scalar",
          value: { name: metric.name, unit: unitsToProto[metric.unit], value: metric.value },
        },
      };
    case "accumulation":
      return {
        metric: {
          case: "accumulation",
          value: {
            name: metric.name,
            unit: unitsToProto[metric.unit],
            interval: intervalsToProto[metric.interval],
            values: pointsToProto(metric.values),
          },
        },
      };
    case "gauge":
      return {
        metric: {
          case: "gauge",
          value: {
            name: metric.name,
            unit: unitsToProto[metric.unit],
            values: pointsToProto(metric.values),
          },
        },
      };
    case "label":
      return {
        metric: { case: "label", value: { name: metric.name, values: [...metric.values] } },
      };
  }
}
