/**
 * `tributary.v1.AccountService` (proto/tributary/v1/account.proto): basins and access tokens, over
 * the same `service.basins` and `service.accessTokens` calls as REST `/v1/basins` and
 * `/v1/access-tokens` (S2-API.md §4.4, §6.3–§6.5). The call was authorized by the auth
 * interceptor (`auth-routes.ts`); listings are restricted to the caller's scope here. Errors are
 * thrown as `S2Error` and rendered by the router's interceptor (`render-error.ts`).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { validateBasinNamePrefix } from "../../core/names.js";
import {
  basinConfigFromProto,
  basinConfigToProto,
  basinInfoToProto,
  basinReconfigurationFromProto,
  provisionResultToProto,
} from "../convert/config-proto.js";
import { invalid } from "../../core/errors.js";
import { validateAccessTokenId } from "../../service/access-tokens.js";
import { accountMetricsInScope, authorize, listInScope } from "../auth.js";
import { principalKey } from "../auth-routes.js";
import { accessTokenInfoToProto, issueInputFromProto } from "../convert/access-token-proto.js";
import type { ApiDeps } from "../routes.js";
import { accountMetricsQueryFromProto, metricToProto } from "../convert/metrics-proto.js";
import { listOptionsOf, requestTokenFieldOf } from "./request-fields.js";

/** Token ids in list filters are not names: any string is accepted. */
const anyListName = (): string | undefined => undefined;

/** The implementation of `AccountService` over `deps.service`. */
export function createAccountService(deps: ApiDeps): ServiceImpl<typeof AccountService> {
  const { basins, accessTokens } = deps.service;
  return {
    listBasins(request, context) {
      const page = listInScope(
        context.values.get(principalKey),
        "basins",
        listOptionsOf(request, validateBasinNamePrefix),
        (options) => basins.list(options),
        (info) => info.name,
      );
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
    async issueAccessToken(request, context) {
      const principal = context.values.get(principalKey);
      const input = issueInputFromProto(request.info);
      const reason = validateAccessTokenId(input.id);
      if (reason !== undefined) throw invalid(reason);
      authorize(principal, ["issue-access-token"], { tokenId: input.id });
      return await accessTokens.issue(principal, input);
    },
    listAccessTokens(request, context) {
      const page = listInScope(
        context.values.get(principalKey),
        "accessTokens",
        listOptionsOf(request, anyListName),
        (options) => accessTokens.list(options),
        (info) => info.id,
      );
      return { accessTokens: page.items.map(accessTokenInfoToProto), hasMore: page.hasMore };
    },
    async revokeAccessToken(request) {
      const info = await accessTokens.revoke(request.id);
      return { info: accessTokenInfoToProto(info) };
    },
    getAccountMetrics(request, context) {
      const metrics = deps.service.metrics.account(accountMetricsQueryFromProto(request));
      const visible = accountMetricsInScope(context.values.get(principalKey), metrics);
      return { values: visible.map(metricToProto) };
    },
  };
}
