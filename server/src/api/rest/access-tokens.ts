/**
 * Access-token routes (S2-API.md §2 rows 16–18, §4.4; openapi `/access-tokens`): list (200,
 * only ids in the caller's scope), issue (201 `{access_token}`), revoke (204, no body). The
 * route's operation and a revoked id's scope were checked before the handler runs
 * (`auth-routes.ts`); the issued token's id and scope are checked here, after the body is parsed
 * and before anything changes.
 */
import { S2Error } from "../../core/errors.js";
import { validateAccessTokenId } from "../../service/access-tokens.js";
import { authorize, listInScope } from "../auth.js";
import { listQueryOf } from "../http/query.js";
import { sendEmpty, sendJson } from "../http/request-context.js";
import { parseIssueAccessToken, renderAccessTokenInfo } from "../json/access-token-json.js";
import { readJsonBody } from "../json/json-body.js";
import { type Route, route } from "../router.js";
import type { ApiDeps } from "../routes.js";

/** Prefixes and `start_after` of a token listing are not names: any string is accepted. */
const anyListName = (): string | undefined => undefined;

/** The token id in the path: invalid is 400 `bad_path`. */
export function accessTokenPathParam(params: Readonly<Record<string, string>>): string {
  const id = params["id"]!;
  const reason = validateAccessTokenId(id);
  if (reason !== undefined) throw new S2Error("bad_path", `invalid access token id: ${reason}`);
  return id;
}

export function accessTokenRoutes({ service }: ApiDeps): Route[] {
  return [
    route("GET", "/v1/access-tokens", async ({ auth, query, response }) => {
      const options = listQueryOf(query, anyListName);
      const page = listInScope(
        auth,
        "accessTokens",
        options,
        (scoped) => service.accessTokens.list(scoped),
        (token) => token.id,
      );
      sendJson(response, 200, {
        access_tokens: page.items.map(renderAccessTokenInfo),
        has_more: page.hasMore,
      });
    }),

    route("POST", "/v1/access-tokens", async ({ auth, request, response }) => {
      const input = parseIssueAccessToken(await readJsonBody(request));
      authorize(auth, ["issue-access-token"], { tokenId: input.id });
      const { accessToken } = await service.accessTokens.issue(auth, input);
      sendJson(response, 201, { access_token: accessToken });
    }),

    route("DELETE", "/v1/access-tokens/{id}", async ({ params, response }) => {
      await service.accessTokens.revoke(accessTokenPathParam(params));
      sendEmpty(response, 204);
    }),
  ];
}
