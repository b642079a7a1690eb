/** The access-token interceptor, shared by the Node and browser transports. */
import type { Interceptor } from "@connectrpc/connect";

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
