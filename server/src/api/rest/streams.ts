/**
 * Stream routes (S2-API.md §2 rows 7–12, §6.2–§6.5), as s2-lite serves them
 * (`lite/src/handlers/v1/streams.rs`): list, create (201, idempotent with `S2-Request-Token`),
 * get config (the resolved config, every field set), ensure (PUT with an optional StreamConfig
 * body: 201 created / 200 updated or noop), delete (202, no body), reconfigure (PATCH: 200 with
 * the resolved config). The basin comes from the `S2-Basin` header, required (400 `bad_header`).
 *
 * Input errors follow lite's extractors: an invalid stream in the path is 400 `bad_path`, a bad
 * query 400 `bad_query`, any JSON body problem (a bad stream name in the body included) 400
 * `bad_json`; semantic validation is the service's 422 `invalid`.
 */
import type { StreamConfigInput } from "../../core/config.js";
import { S2Error } from "../../core/errors.js";
import { validateStreamName, validateStreamNamePrefix } from "../../core/names.js";
import type { StreamInfo } from "../../service/context.js";
import { basinHeaderOf, sendEmpty, sendJson } from "../http/request-context.js";
import { listQueryOf } from "../http/query.js";
import {
  parseStreamConfigInput,
  parseStreamReconfiguration,
  renderStreamConfig,
} from "../json/config-json.js";
import {
  jsonFieldInvalid,
  readJsonBody,
  readObject,
  readOptional,
  readOptionalJsonBody,
  readRequired,
  readString,
  rfc3339FromMs,
} from "../json/json-body.js";
import { authorize, clientStreamName, listInScope, type Principal } from "../auth.js";
import { type Route, route } from "../router.js";
import type { ApiDeps } from "../routes.js";
import { provisionResultHeader, requestTokenOf } from "./basins.js";

/** StreamInfo as lite renders it (S2-API.md §4.3). */
export interface StreamInfoJson {
  readonly name: string;
  readonly created_at: string;
  readonly deleted_at: string | null;
  readonly cipher: string | null;
}

export function renderStreamInfo(info: StreamInfo): StreamInfoJson {
  return {
    name: info.name,
    created_at: rfc3339FromMs(info.createdAtMs),
    deleted_at: info.deletedAtMs === null ? null : rfc3339FromMs(info.deletedAtMs),
    cipher: info.cipher,
  };
}

/** The stream as the caller names it (an auto-prefixing token's prefix stripped). */
function clientStreamInfo(auth: Principal, info: StreamInfo): StreamInfo {
  return { ...info, name: clientStreamName(auth, info.name) };
}

/** A stream name from the path (already percent-decoded): invalid is 400 `bad_path`. */
function streamPathParam(params: Readonly<Record<string, string>>): string {
  const stream = params["stream"]!;
  const reason = validateStreamName(stream);
  if (reason !== undefined) throw new S2Error("bad_path", `invalid stream in path: ${reason}`);
  return stream;
}

function readStreamName(value: unknown, field: string): string {
  const name = readString(value, field);
  const reason = validateStreamName(name);
  if (reason !== undefined) throw jsonFieldInvalid(field, reason);
  return name;
}

/** `CreateStreamRequest`: `{stream, config?}`. */
function parseCreateStreamRequest(value: unknown): {
  stream: string;
  config: StreamConfigInput | undefined;
} {
  const object = readObject(value, "");
  return {
    stream: readRequired(object, "stream", "", readStreamName),
    config: readOptional(object, "config", "", parseStreamConfigInput),
  };
}

export function streamRoutes({ service }: ApiDeps): Route[] {
  return [
    route("GET", "/v1/streams", async ({ auth, request, query, response }) => {
      const basin = basinHeaderOf(request);
      // Lite lists nothing for an unknown basin rather than 404 (S2-API.md §6.4).
      const page = listInScope(
        auth,
        "streams",
        listQueryOf(query, validateStreamNamePrefix),
        (options) => service.streams.list(basin, options),
        (info) => info.name,
      );
      sendJson(response, 200, {
        streams: page.items.map((info) => renderStreamInfo(clientStreamInfo(auth, info))),
        has_more: page.hasMore,
      });
    }),

    route("POST", "/v1/streams", async ({ auth, request, response }) => {
      const requestToken = requestTokenOf(request);
      const basin = basinHeaderOf(request);
      const { stream, config } = parseCreateStreamRequest(await readJsonBody(request));
      const scoped = authorize(auth, ["create-stream"], { basin, stream });
      const { info, result } = await service.streams.create({
        basin,
        name: scoped.stream ?? stream,
        config,
        requestToken,
      });
      sendJson(response, 201, renderStreamInfo(clientStreamInfo(auth, info)), {
        [provisionResultHeader]: result,
      });
    }),

    route("GET", "/v1/streams/{stream}", async ({ params, request, response }) => {
      const basin = basinHeaderOf(request);
      const config = service.streams.getConfig(basin, streamPathParam(params));
      sendJson(response, 200, renderStreamConfig(config));
    }),

    route("PUT", "/v1/streams/{stream}", async ({ auth, params, request, response }) => {
      const basin = basinHeaderOf(request);
      const name = streamPathParam(params);
      // The body is a bare StreamConfig, not a wrapper; none means "all defaults" (§11.18).
      const body = await readOptionalJsonBody(request);
      const config = body === undefined ? undefined : parseStreamConfigInput(body, "");
      const { info, result } = await service.streams.ensure({ basin, name, config });
      sendJson(
        response,
        result === "created" ? 201 : 200,
        renderStreamInfo(clientStreamInfo(auth, info)),
        {
          [provisionResultHeader]: result,
        },
      );
    }),

    route("DELETE", "/v1/streams/{stream}", async ({ params, request, response }) => {
      const basin = basinHeaderOf(request);
      await service.streams.delete(basin, streamPathParam(params));
      sendEmpty(response, 202);
    }),

    route("PATCH", "/v1/streams/{stream}", async ({ params, request, response }) => {
      const basin = basinHeaderOf(request);
      const name = streamPathParam(params);
      const change = parseStreamReconfiguration(await readJsonBody(request), "");
      const config = await service.streams.reconfigure(basin, name, change);
      sendJson(response, 200, renderStreamConfig(config));
    }),
  ];
}
