/** The default transport in Node: the Connect protocol, binary, over HTTP/2 (bidi streams need it). */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

/**
 * Sends `authorization: Bearer <token>` on every call, the way the S2 SDKs send their access
 * token; the server checks it against the token's scope.
 */
export function bearerTokenInterceptor(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
}

/** A Connect transport to `baseUrl` over HTTP/2 (h2c for `http:` URLs). */
export function createNodeTransport(baseUrl: string, token?: string): Transport {
  return createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    interceptors: token === undefined ? [] : [bearerTokenInterceptor(token)],
  });
}
