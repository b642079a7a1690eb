/**
 * `tributary.v1.AccountService` (proto/tributary/v1/account.proto): basins, over the same
 * `service.basins` calls as REST `/v1/basins` (S2-API.md §6.3–§6.5). Errors are thrown as
 * `S2Error` and rendered by the router's interceptor (`render-error.ts`).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { AccountService } from "../../../../gen/tributary/v1/account_pb.js";
import { validateBasinNamePrefix } from "../../core/names.js";
import {
  basinConfigFromProto,
  basinConfigToProto,
  basinInfoToProto,
  basinReconfigurationFromProto,
  provisionResultToProto,
} from "../convert/config-proto.js";
import type { ApiDeps } from "../routes.js";
import { listOptionsOf, requestTokenFieldOf } from "./request-fields.js";

/** The implementation of `AccountService` over `deps.service`. */
export function createAccountService(deps: ApiDeps): ServiceImpl<typeof AccountService> {
  const { basins } = deps.service;
  return {
    listBasins(request) {
      const page = basins.list(listOptionsOf(request, validateBasinNamePrefix));
      return { basins: page.items.map(basinInfoToProto), hasMore: page.hasMore };
    },
    async createBasin(request) {
      const { info, result } = await basins.create({
        name: request.basin,
        config: basinConfigFromProto(request.config),
        requestToken: requestTokenFieldOf(request.requestToken),
      });
      return { info: basinInfoToProto(info), result: provisionResultToProto(result) };
    },
    async ensureBasin(request) {
      const { info, result } = await basins.ensure({
        name: request.basin,
        config: basinConfigFromProto(request.config),
      });
      return { info: basinInfoToProto(info), result: provisionResultToProto(result) };
    },
    getBasinConfig(request) {
      return { config: basinConfigToProto(basins.getConfig(request.basin)) };
    },
    async reconfigureBasin(request) {
      const change = basinReconfigurationFromProto(request.config, request.mask);
      const config = await basins.reconfigure(request.basin, change);
      return { config: basinConfigToProto(config) };
    },
    async deleteBasin(request) {
      await basins.delete(request.basin);
      return {};
    },
  };
}
