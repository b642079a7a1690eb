/**
 * `tributary.v1.BasinService` (proto/tributary/v1/basin.proto): the streams of a basin, over the
 * same `service.streams` calls as REST `/v1/streams` (S2-API.md §6.2–§6.5). Every request names
 * its basin (REST: the `S2-Basin` header). Errors are thrown as `S2Error` and rendered by the
 * router's interceptor (`render-error.ts`).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { BasinService } from "../../../../gen/tributary/v1/basin_pb.js";
import { invalid } from "../../core/errors.js";
import { validateBasinName, validateStreamNamePrefix } from "../../core/names.js";
import {
  provisionResultToProto,
  streamConfigInputFromProto,
  streamConfigToProto,
  streamInfoToProto,
  streamReconfigurationFromProto,
} from "../convert/config-proto.js";
import type { ApiDeps } from "../routes.js";
import { listOptionsOf, requestTokenFieldOf } from "./request-fields.js";

/** The implementation of `BasinService` over `deps.service`. */
export function createBasinService(deps: ApiDeps): ServiceImpl<typeof BasinService> {
  const { streams } = deps.service;
  return {
    listStreams(request) {
      // Lite checks the basin name of a listing (REST: the `S2-Basin` header), not its existence.
      const reason = validateBasinName(request.basin);
      if (reason !== undefined) throw invalid(reason);
      const page = streams.list(request.basin, listOptionsOf(request, validateStreamNamePrefix));
      return { streams: page.items.map(streamInfoToProto), hasMore: page.hasMore };
    },
    async createStream(request) {
      const { info, result } = await streams.create({
        basin: request.basin,
        name: request.stream,
        config: streamConfigInputFromProto(request.config),
        requestToken: requestTokenFieldOf(request.requestToken),
      });
      return { info: streamInfoToProto(info), result: provisionResultToProto(result) };
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
  };
}
