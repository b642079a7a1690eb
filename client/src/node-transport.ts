/** The default transport in Node: the Connect protocol, binary, over HTTP/2 (bidi streams need it). */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { bearerTokenInterceptor } from "./bearer-token.js";

export { bearerTokenInterceptor } from "./bearer-token.js";

/** A Connect transport to `baseUrl` over HTTP/2 (h2c for `http:` URLs). */
export function createNodeTransport(baseUrl: string, token?: string): Transport {
  return createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    interceptors: token === undefined ? [] : [bearerTokenInterceptor(token)],
  });
}
