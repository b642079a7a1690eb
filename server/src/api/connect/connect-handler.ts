/**
 * The `tributary.v1` services over Connect (JSON and binary), gRPC and gRPC-web, as one Node
 * request handler that `api/server.ts` calls for paths under `/tributary.v1.` on the shared port
 * (HTTP/1.1 for Connect and gRPC-web, HTTP/2 for all three). Every error leaves through one
 * interceptor that renders it with `renderConnectError` (`render-error.ts`), unary and streaming
 * alike; an assertion failure is rethrown outside the call so that the process crashes, as on REST.
 * The adapter is connect-node's `connectNodeAdapter` with one change: an enveloped request body
 * (gRPC, gRPC-web, Connect streaming) is read under the server's frame budget
 * (`envelope-budget.ts`), so messages still arriving are bounded over the server, not per call.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { AssertionError } from "../../core/assert.js";
import { requestBodyBytesMax, s2sAppendDrainTimeoutMs } from "../../core/limits.js";
import type { Authenticator } from "../auth.js";
import { createAuthInterceptor } from "../auth-routes.js";
import { renderConnectError } from "../render-error.js";
import type { ApiDeps } from "../routes.js";
import { createAccountService } from "./account-service.js";
import { createBasinService } from "./basin-service.js";
import { resetExchange } from "../http/reset-exchange.js";
import { EnvelopeGate, hasEnvelopedBody } from "./envelope-budget.js";
import { createStreamService } from "./stream-service.js";

/** The path prefix of every `tributary.v1` procedure (`/tributary.v1.StreamService/Append`). */
export const connectPathPrefix = "/tributary.v1.";

/** A Node request handler for HTTP/1.1 and HTTP/2 requests. */
export type ConnectHandler = (
  request: IncomingMessage | Http2ServerRequest,
  response: ServerResponse | Http2ServerResponse,
) => void;

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
  const router = createConnectRouter({
    interceptors: [renderErrors, createAuthInterceptor(authenticate)],
    // Unknown fields in JSON are an error (a misspelt field must not be silently ignored);
    // unknown fields in binary messages are kept by protobuf rules.
    jsonOptions: { ignoreUnknownFields: false },
    // A message is at most a max batch plus framing: the REST body limit bounds it too.
    readMaxBytes: requestBodyBytesMax,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  router.service(AccountService, createAccountService(deps));
  router.service(BasinService, createBasinService(deps));
  router.service(StreamService, createStreamService(deps));
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  const envelopeBudget = {
    stallTimeoutMs: deps.s2sFrameStallTimeoutMs,
    messageBytesMax: requestBodyBytesMax,
    drainTimeoutMs: s2sAppendDrainTimeoutMs,
  };
  return (request, response) => {
    const handler = handlers.get(request.url?.split("?", 2)[0] ?? "");
    if (handler === undefined) {
      response.writeHead(404, { "content-length": "0" });
      response.end();
      return;
    }
    const universal = universalRequestFromNodeRequest(
      request,
      response,
      undefined,
      createContextValues(),
    );
    // Without a parsed JSON body (never given here) the body is the request's byte stream.
    const gate = hasEnvelopedBody(request.headers["content-type"])
      ? new EnvelopeGate(
          universal.body as AsyncIterable<Uint8Array>,
          deps.frameBudget.accountFor(request),
          { ...envelopeBudget, reset: () => resetExchange(request) },
        )
      : undefined;
    if (gate !== undefined) {
      // A call can end without taking every message it was sent (a session that failed while
      // its client kept pipelining): its gate would wait at a message nobody takes, holding its
      // room. So the gate lets go once the call's answer is complete (`renderErrors` says when:
      // Node's response events wait for the request's end, which such a client never sends),
      // or when the exchange closes.
      universal.contextValues?.set(callAnsweredKey, () => gate.close());
      response.once("close", () => gate.close());
    }
    handler({ ...universal, body: gate?.body ?? universal.body })
      .then((answer) => universalResponseToNodeResponse(answer, response))
      .catch((reason: unknown) => {
        // The client went away (connect-node's adapter is silent about it too); anything else
        // has already been answered as well as it can be, and is only worth a log line.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(`rpc ${handler.method.name} of ${handler.service.typeName} failed`, reason);
      });
  };
}

/** Called once a call's answer is complete (`renderErrors`): its request body may be let go. */
const callAnsweredKey = createContextKey<() => void>(() => {}, { description: "call answered" });

/**
 * Renders every error of a call, thrown by the handler or by its response stream, and says when
 * the call is answered (`callAnsweredKey`): after a unary answer, or its response stream's end.
 */
const renderErrors: Interceptor = (next) => async (request) => {
  const answered = request.contextValues.get(callAnsweredKey);
  let isStreaming = false;
  try {
    const response = await next(request);
    if (!response.stream) return response;
    isStreaming = true;
    return { ...response, message: renderStreamErrors(response.message, answered) };
  } catch (error) {
    throw connectErrorOf(error);
  } finally {
    if (!isStreaming) answered();
  }
};

async function* renderStreamErrors<T>(
  messages: AsyncIterable<T>,
  answered: () => void,
): AsyncGenerator<T, void, undefined> {
  try {
    yield* messages;
  } catch (error) {
    throw connectErrorOf(error);
  } finally {
    answered();
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
