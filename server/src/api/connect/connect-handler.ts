/**
 * The `tributary.v1` services over Connect (JSON and binary), gRPC and gRPC-web, as one Node
 * request handler that `api/server.ts` calls for paths under `/tributary.v1.` on the shared port
 * (HTTP/1.1 for Connect and gRPC-web, HTTP/2 for all three). Every error leaves through one
 * interceptor that renders it with `renderConnectError` (`render-error.ts`), unary and streaming
 * alike; an assertion failure is rethrown outside the call so that the process crashes, as on REST.
 */
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { AssertionError } from "../../core/assert.js";
import { requestBodyBytesMax } from "../../core/limits.js";
import type { Authenticator } from "../auth.js";
import { createAuthInterceptor } from "../auth-routes.js";
import { renderConnectError } from "../render-error.js";
import type { ApiDeps } from "../routes.js";
import { createAccountService } from "./account-service.js";
import { createBasinService } from "./basin-service.js";
import { createStreamService } from "./stream-service.js";

/** The path prefix of every `tributary.v1` procedure (`/tributary.v1.StreamService/Append`). */
export const connectPathPrefix = "/tributary.v1.";

/** A Node request handler for HTTP/1.1 and HTTP/2 requests (connect-node does not export it). */
export type ConnectHandler = ReturnType<typeof connectNodeAdapter>;

/** Paths of every `tributary.v1` procedure, e.g. for bounded metric labels. */
export const connectProcedurePaths: ReadonlySet<string> = new Set(
  [AccountService, BasinService, StreamService].flatMap((service) =>
    service.methods.map((method) => `/${service.typeName}/${method.name}`),
  ),
);

/**
 * The request handler of the `tributary.v1` services; unknown procedures get an empty 404. Every
 * call is authenticated and authorized by `createAuthInterceptor` (inside `renderErrors`, so a
 * 401/403 is rendered like any error).
 */
export function createConnectHandler(deps: ApiDeps, authenticate: Authenticator): ConnectHandler {
  return connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(AccountService, createAccountService(deps));
      router.service(BasinService, createBasinService(deps));
      router.service(StreamService, createStreamService(deps));
    },
    interceptors: [renderErrors, createAuthInterceptor(authenticate)],
    // Unknown fields in JSON are an error (a misspelt field must not be silently ignored);
    // unknown fields in binary messages are kept by protobuf rules.
    jsonOptions: { ignoreUnknownFields: false },
    // A message is at most a max batch plus framing: the REST body limit bounds it too.
    readMaxBytes: requestBodyBytesMax,
    fallback: (_request, response) => {
      response.writeHead(404, { "content-length": "0" });
      response.end();
    },
  });
}

/** Renders every error of a call, thrown by the handler or by its response stream. */
const renderErrors: Interceptor = (next) => async (request) => {
  try {
    const response = await next(request);
    if (!response.stream) return response;
    return { ...response, message: renderStreamErrors(response.message) };
  } catch (error) {
    throw connectErrorOf(error);
  }
};

async function* renderStreamErrors<T>(
  messages: AsyncIterable<T>,
): AsyncGenerator<T, void, undefined> {
  try {
    yield* messages;
  } catch (error) {
    throw connectErrorOf(error);
  }
}

function connectErrorOf(error: unknown): unknown {
  if (error instanceof AssertionError) {
    // Corrupt state: crash outside connect's own error handling (main.ts logs and exits).
    process.nextTick(() => {
      throw error;
    });
    return error;
  }
  return renderConnectError(error);
}
