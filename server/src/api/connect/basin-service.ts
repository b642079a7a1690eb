/**
 * `tributary.v1.BasinService` (proto/tributary/v1/basin.proto): the streams of a basin, over the
 * same `service.streams` calls as REST `/v1/streams` (S2-API.md §6.2–§6.5). Every request names
 * its basin (REST: the `S2-Basin` header). Errors are thrown as `S2Error` and rendered by the
 * router's interceptor (`render-error.ts`).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { invalid } from "../../core/errors.js";
import { validateBasinName, validateStreamNamePrefix } from "../../core/names.js";
import {
  provisionResultToProto,
  streamConfigInputFromProto,
  streamConfigToProto,
  streamInfoToProto,
  streamReconfigurationFromProto,
} from "../convert/config-proto.js";
import { clientStreamName, listInScope } from "../auth.js";
import { principalKey } from "../auth-routes.js";
import type { ApiDeps } from "../routes.js";
import { basinMetricsQueryFromProto, metricToProto } from "../convert/metrics-proto.js";
import { listOptionsOf, requestTokenFieldOf } from "./request-fields.js";

/** The implementation of `BasinService` over `deps.service`. */
export function createBasinService(deps: ApiDeps): ServiceImpl<typeof BasinService> {
  const { streams } = deps.service;
  return {
    listStreams(request, context) {
      // Lite checks the basin name of a listing (REST: the `S2-Basin` header), not its existence.
      const reason = validateBasinName(request.basin);
      if (reason !== undefined) throw invalid(reason);
      const principal = context.values.get(principalKey);
      const page = listInScope(
        principal,
        "streams",
        listOptionsOf(request, validateStreamNamePrefix),
        (options) => streams.list(request.basin, options),
        (info) => info.name,
      );
      return {
        streams: page.items.map((info) =>
          streamInfoToProto({ ...info, name: clientStreamName(principal, info.name) }),
        ),
        hasMore: page.hasMore,
      };
    },
    async createStream(request, context) {
      const { info, result } = await streams.create({
        basin: request.basin,
        name: request.stream,
        config: streamConfigInputFromProto(request.config),
        requestToken: requestTokenFieldOf(request.requestToken),
      });
      const name = clientStreamName(context.values.get(principalKey), info.name);
      return { info: streamInfoToProto({ ...info, name }), result: provisionResultToProto(result) };
    },
    getStreamConfig(request) {
      return { config: streamConfigToProto(streams.getConfig(request.basin, request.stream)) };
    },
    async reconfigureStream(request) {
      const change = streamReconfigurationFromProto(request.config, request.mask);
      const config = await streams.reconfigure(request.basin, request.stream, change);
      return { config: streamConfigToProto(config) };
    },
    async deleteStream(request) {
      await streams.delete(request.basin, request.stream);
      return {};
    },
    async getBasinMetrics(request) {
      const query = basinMetricsQueryFromProto(request);
      const metrics = await deps.service.metrics.basin(request.basin, query);
      return { values: metrics.map(metricToProto) };
    },
  };
}
