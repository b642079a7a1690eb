/**
 * The access table (docs/design/auth.md): for every REST route and every `tributary.v1` RPC, the
 * operations it needs and where its basin, stream and token id are. `authorizeRoute` (REST, before
 * the handler and before the body is read) and `createAuthInterceptor` (RPC) apply it with the
 * one `authorize` of `auth.ts`. A route or method missing from the table is refused (403), so a
 * new one cannot be open by accident; `auth-routes.test.ts` checks every route and method has an
 * entry, and every entry names a real route or method.
 *
 * Names that travel in a body (create stream, issue token, an append session's first message)
 * are authorized by their handlers once parsed, with the same function.
 */
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { S2Error } from "../core/errors.js";
import type { Operation } from "../core/operations.js";
import {
  type Authenticator,
  authorize,
  openPrincipal,
  type Principal,
  scopedStreamName,
} from "./auth.js";
import { type ApiRequest, headerOf } from "./http/request-context.js";

/** Where a REST route finds a resource name. */
export interface RouteAccess {
  /** Every one is required (an ensure both creates and reconfigures). Empty: any valid token. */
  readonly operations: readonly Operation[];
  readonly basin?: "path" | "header";
  /** The stream in the path; auto-prefixed before the handler sees it. */
  readonly stream?: "path";
  readonly tokenId?: "path";
}

const stream = (operations: Operation[]): RouteAccess => ({
  operations,
  basin: "header",
  stream: "path",
});

/** REST routes by `METHOD /pattern` (the route label of `server.ts`). */
export const restRouteAccess: Readonly<Record<string, RouteAccess>> = {
  "GET /v1/basins": { operations: ["list-basins"] },
  "POST /v1/basins": { operations: ["create-basin"] }, // basin in the body: checked by handler
  "GET /v1/basins/{basin}": { operations: ["get-basin-config"], basin: "path" },
  "PUT /v1/basins/{basin}": { operations: ["create-basin", "reconfigure-basin"], basin: "path" },
  "DELETE /v1/basins/{basin}": { operations: ["delete-basin"], basin: "path" },
  "PATCH /v1/basins/{basin}": { operations: ["reconfigure-basin"], basin: "path" },
  "GET /v1/streams": { operations: ["list-streams"], basin: "header" },
  "POST /v1/streams": { operations: ["create-stream"], basin: "header" }, // stream in the body
  "GET /v1/streams/{stream}": stream(["get-stream-config"]),
  "PUT /v1/streams/{stream}": stream(["create-stream", "reconfigure-stream"]),
  "DELETE /v1/streams/{stream}": stream(["delete-stream"]),
  "PATCH /v1/streams/{stream}": stream(["reconfigure-stream"]),
  // Reads include SSE and S2S read sessions, appends S2S append sessions (authorized once, when
  // opened, and ended if the token is revoked or expires: `TokenWatch`); fence and trim commands
  // are checked per batch (`authorizeCommands`).
  "GET /v1/streams/{stream}/records": stream(["read"]),
  "POST /v1/streams/{stream}/records": stream(["append"]),
  "GET /v1/streams/{stream}/records/tail": stream(["check-tail"]),
  "GET /v1/access-tokens": { operations: ["list-access-tokens"] },
  "POST /v1/access-tokens": { operations: ["issue-access-token"] }, // id in the body
  "DELETE /v1/access-tokens/{id}": { operations: ["revoke-access-token"], tokenId: "path" },
  "GET /v1/metrics": { operations: ["account-metrics"] },
  "GET /v1/metrics/{basin}": { operations: ["basin-metrics"], basin: "path" },
  "GET /v1/metrics/{basin}/{stream}": {
    operations: ["stream-metrics"],
    basin: "path",
    stream: "path",
  },
  "GET /v1/locations": { operations: ["list-locations"] },
  "GET /v1/locations/default": { operations: ["get-default-location"] },
  "PUT /v1/locations/default": { operations: ["set-default-location"] },
};

/**
 * Authorizes a REST request for its route; returns the path parameters the handler must use
 * (the stream auto-prefixed). A name that is absent or empty is not checked here: the handler
 * rejects it (400) before doing anything.
 */
export function authorizeRoute(
  principal: Principal,
  routeName: string,
  request: ApiRequest,
  params: Readonly<Record<string, string>>,
): Record<string, string> {
  const access = restRouteAccess[routeName];
  if (access === undefined) {
    throw new S2Error("permission_denied", `no access rule for this route. route=\`${routeName}\``);
  }
  const basin =
    access.basin === "path"
      ? params["basin"]
      : access.basin === "header"
        ? headerOf(request, "s2-basin")
        : undefined;
  const scoped = authorize(principal, access.operations, {
    basin: basin === "" ? undefined : basin,
    stream: access.stream === "path" ? params["stream"] : undefined,
    tokenId: access.tokenId === "path" ? params["id"] : undefined,
  });
  return scoped.stream === undefined ? { ...params } : { ...params, stream: scoped.stream };
}

/** Where an RPC's request message names its resources. */
export interface RpcAccess {
  readonly operations: readonly Operation[];
  /** The request has `basin` (and `stream`) fields; a stream is auto-prefixed in place. */
  readonly basin?: true;
  readonly stream?: true;
  /** The request's `id` field is a token id. */
  readonly tokenId?: true;
}

const rpcStream = (operations: Operation[]): RpcAccess => ({
  operations,
  basin: true,
  stream: true,
});

/** RPC methods by `package.Service/Method`. */
export const rpcMethodAccess: Readonly<Record<string, RpcAccess>> = {
  "tributary.v1.AccountService/ListBasins": { operations: ["list-basins"] },
  "tributary.v1.AccountService/CreateBasin": { operations: ["create-basin"], basin: true },
  "tributary.v1.AccountService/EnsureBasin": {
    operations: ["create-basin", "reconfigure-basin"],
    basin: true,
  },
  "tributary.v1.AccountService/GetBasinConfig": { operations: ["get-basin-config"], basin: true },
  "tributary.v1.AccountService/ReconfigureBasin": {
    operations: ["reconfigure-basin"],
    basin: true,
  },
  "tributary.v1.AccountService/DeleteBasin": { operations: ["delete-basin"], basin: true },
  // The issued id is in `info.id`: the handler authorizes it.
  "tributary.v1.AccountService/IssueAccessToken": { operations: ["issue-access-token"] },
  "tributary.v1.AccountService/ListAccessTokens": { operations: ["list-access-tokens"] },
  "tributary.v1.AccountService/RevokeAccessToken": {
    operations: ["revoke-access-token"],
    tokenId: true,
  },
  "tributary.v1.AccountService/GetAccountMetrics": { operations: ["account-metrics"] },
  "tributary.v1.BasinService/ListStreams": { operations: ["list-streams"], basin: true },
  "tributary.v1.BasinService/CreateStream": rpcStream(["create-stream"]),
  "tributary.v1.BasinService/GetStreamConfig": rpcStream(["get-stream-config"]),
  "tributary.v1.BasinService/ReconfigureStream": rpcStream(["reconfigure-stream"]),
  "tributary.v1.BasinService/DeleteStream": rpcStream(["delete-stream"]),
  "tributary.v1.BasinService/GetBasinMetrics": { operations: ["basin-metrics"], basin: true },
  "tributary.v1.StreamService/CheckTail": rpcStream(["check-tail"]),
  "tributary.v1.StreamService/Append": rpcStream(["append"]),
  "tributary.v1.StreamService/Read": rpcStream(["read"]),
  // The first message names the stream; later ones may repeat it (auto-prefixed alike).
  "tributary.v1.StreamService/AppendSession": rpcStream(["append"]),
  "tributary.v1.StreamService/ReadSession": rpcStream(["read"]),
  "tributary.v1.StreamService/GetStreamMetrics": rpcStream(["stream-metrics"]),
};

/** The authenticated caller of an RPC, for handlers (`context.values.get(principalKey)`). */
export const principalKey = createContextKey<Principal>(openPrincipal, {
  description: "tributary principal",
});

function stringField(message: unknown, field: string): string | undefined {
  const value = (message as Record<string, unknown>)[field];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * Authenticates every RPC from its `authorization` metadata and authorizes it by
 * `rpcMethodAccess`, before the handler runs. The `stream` field of each request message is
 * replaced by its auto-prefixed name, so handlers use full names throughout. A streaming call is
 * authorized on its first message (sessions are authorized once, when opened).
 */
export function createAuthInterceptor(authenticate: Authenticator): Interceptor {
  return (next) => async (request) => {
    const principal = authenticate(request.header.get("authorization"));
    request.contextValues.set(principalKey, principal);
    const name = `${request.service.typeName}/${request.method.name}`;
    const access = rpcMethodAccess[name];
    if (access === undefined) {
      throw new S2Error("permission_denied", `no access rule for this method. method=\`${name}\``);
    }
    const authorizeMessage = (message: unknown): void => {
      const fields = message as Record<string, unknown>;
      const scoped = authorize(principal, access.operations, {
        basin: access.basin === true ? stringField(fields, "basin") : undefined,
        stream: access.stream === true ? stringField(fields, "stream") : undefined,
        tokenId: access.tokenId === true ? stringField(fields, "id") : undefined,
      });
      if (scoped.stream !== undefined) fields["stream"] = scoped.stream;
    };
    if (!request.stream) {
      authorizeMessage(request.message);
      return await next(request);
    }
    const messages = request.message[Symbol.asyncIterator]();
    const first = await messages.next();
    if (first.done === true) authorize(principal, access.operations, {});
    else authorizeMessage(first.value);
    async function* authorized(): AsyncGenerator<typeof first.value> {
      if (first.done === true) return;
      yield first.value;
      for (let next = await messages.next(); next.done !== true; next = await messages.next()) {
        const fields = next.value as Record<string, unknown>;
        const stream = stringField(fields, "stream");
        if (stream !== undefined) fields["stream"] = scopedStreamName(principal, stream);
        yield next.value;
      }
    }
    return await next({ ...request, message: authorized() });
  };
}
