/**
 * Basin routes (S2-API.md §2 rows 1–6, §6.3–§6.5), as s2-lite serves them
 * (`lite/src/handlers/v1/basins.rs`): list, create (201, idempotent with `S2-Request-Token`),
 * get config, ensure (PUT: 201 created / 200 updated or noop), delete (202, no body), reconfigure
 * (PATCH: 200 with the new config). Creates and ensures carry `S2-Provision-Result`.
 *
 * Input errors follow lite's extractors: an invalid basin in the path is 400 `bad_path`, a bad
 * query 400 `bad_query`, a bad `S2-Request-Token` 400 `bad_header`, any JSON body problem (a bad
 * basin name in the body included) 400 `bad_json`; semantic validation is the service's 422.
 */
import type { BasinConfig } from "../../core/config.js";
import { S2Error } from "../../core/errors.js";
import {
  validateBasinName,
  validateBasinNamePrefix,
  validateRequestToken,
} from "../../core/names.js";
import type { BasinInfo, ProvisionResult } from "../../service/context.js";
import {
  type ApiRequest,
  type ApiResponse,
  headerOf,
  sendEmpty,
  sendJson,
} from "../http/request-context.js";
import { listQueryOf } from "../http/query.js";
import {
  parseBasinConfig,
  parseBasinReconfiguration,
  renderBasinConfig,
} from "../json/config-json.js";
import {
  jsonFieldInvalid,
  readJsonBody,
  readLocationName,
  readObject,
  readOptional,
  readOptionalJsonBody,
  readRequired,
  readString,
  rfc3339FromMs,
} from "../json/json-body.js";
import { authorize, listInScope } from "../auth.js";
import { type Route, route } from "../router.js";
import type { ApiDeps } from "../routes.js";

/** The response header naming what a create or ensure did (S2-API.md §3.2, [LITE]). */
export const provisionResultHeader = "s2-provision-result";

/** BasinInfo as lite renders it (S2-API.md §4.3): `location` always `null`, `state` derived. */
export interface BasinInfoJson {
  readonly name: string;
  readonly location: null;
  readonly created_at: string;
  readonly deleted_at: string | null;
  readonly state: "active" | "deleting";
}

export function renderBasinInfo(info: BasinInfo): BasinInfoJson {
  return {
    name: info.name,
    location: null,
    created_at: rfc3339FromMs(info.createdAtMs),
    deleted_at: info.deletedAtMs === null ? null : rfc3339FromMs(info.deletedAtMs),
    state: info.deletedAtMs === null ? "active" : "deleting",
  };
}

/** The optional `S2-Request-Token` of a create: at most 36 bytes, else 400 `bad_header`. */
export function requestTokenOf(request: ApiRequest): string | undefined {
  const token = headerOf(request, "s2-request-token");
  if (token === undefined) return undefined;
  const reason = validateRequestToken(token);
  if (reason !== undefined) throw new S2Error("bad_header", `invalid s2-request-token: ${reason}`);
  return token;
}

/** A basin name from the path: invalid is 400 `bad_path`. */
function basinPathParam(params: Readonly<Record<string, string>>): string {
  const basin = params["basin"]!;
  const reason = validateBasinName(basin);
  if (reason !== undefined) throw new S2Error("bad_path", `invalid basin in path: ${reason}`);
  return basin;
}

function readBasinName(value: unknown, field: string): string {
  const name = readString(value, field);
  const reason = validateBasinName(name);
  if (reason !== undefined) throw jsonFieldInvalid(field, reason);
  return name;
}

/**
 * `CreateBasinRequest`: `{basin, config?, location?}`. The location is checked while
 * deserializing (400) and then ignored, as lite does: lite has one location and always reports
 * `null` (S2-API.md §12; `rest/locations.ts`).
 */
function parseCreateBasinRequest(value: unknown): {
  basin: string;
  config: BasinConfig | undefined;
} {
  const object = readObject(value, "");
  const basin = readRequired(object, "basin", "", readBasinName);
  const config = readOptional(object, "config", "", parseBasinConfig);
  readOptional(object, "location", "", readLocationName);
  return { basin, config };
}

/** `EnsureBasinRequest`: `{config?, location?}`. */
function parseEnsureBasinRequest(value: unknown): { config: BasinConfig | undefined } {
  const object = readObject(value, "");
  const config = readOptional(object, "config", "", parseBasinConfig);
  readOptional(object, "location", "", readLocationName);
  return { config };
}

function sendProvisioned(
  response: ApiResponse,
  status: number,
  info: BasinInfo,
  result: ProvisionResult,
): void {
  sendJson(response, status, renderBasinInfo(info), { [provisionResultHeader]: result });
}

export function basinRoutes({ service }: ApiDeps): Route[] {
  return [
    route("GET", "/v1/basins", async ({ auth, query, response }) => {
      const page = listInScope(
        auth,
        "basins",
        listQueryOf(query, validateBasinNamePrefix),
        (options) => service.basins.list(options),
        (info) => info.name,
      );
      sendJson(response, 200, {
        basins: page.items.map(renderBasinInfo),
        has_more: page.hasMore,
      });
    }),

    route("POST", "/v1/basins", async ({ auth, request, response }) => {
      const requestToken = requestTokenOf(request);
      const { basin, config } = parseCreateBasinRequest(await readJsonBody(request));
      authorize(auth, ["create-basin"], { basin });
      const { info, result } = await service.basins.create({ name: basin, config, requestToken });
      // Lite answers 201 for a token replay (`noop`) too (S2-API.md §11.20).
      sendProvisioned(response, 201, info, result);
    }),

    route("GET", "/v1/basins/{basin}", async ({ params, response }) => {
      const config = service.basins.getConfig(basinPathParam(params));
      sendJson(response, 200, renderBasinConfig(config));
    }),

    route("PUT", "/v1/basins/{basin}", async ({ params, request, response }) => {
      const name = basinPathParam(params);
      const body = await readOptionalJsonBody(request);
      const config = body === undefined ? undefined : parseEnsureBasinRequest(body).config;
      const { info, result } = await service.basins.ensure({ name, config });
      sendProvisioned(response, result === "created" ? 201 : 200, info, result);
    }),

    route("DELETE", "/v1/basins/{basin}", async ({ params, response }) => {
      await service.basins.delete(basinPathParam(params));
      sendEmpty(response, 202);
    }),

    route("PATCH", "/v1/basins/{basin}", async ({ params, request, response }) => {
      const name = basinPathParam(params);
      const change = parseBasinReconfiguration(await readJsonBody(request), "");
      const config = await service.basins.reconfigure(name, change);
      sendJson(response, 200, renderBasinConfig(config));
    }),
  ];
}
