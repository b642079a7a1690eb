/** The default transport in Node: the Connect protocol, binary, over HTTP/2 (bidi streams need it). */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { bearerTokenInterceptor } from "./bearer-token.js";

export { bearerTokenInterceptor } from "./bearer-token.js";

/**
 * A Connect transport to `baseUrl` over HTTP/2 (h2c for `http:` URLs). It accepts no compressed
 * responses: record bodies are often already compressed or random, and gzip then only burns CPU
 * on both ends; measured with `tributary bench` on 2 cores, accepting gzip halved read throughput
 * (docs/performance-cli-bench.md). The S2 SDKs likewise compress only when asked.
 */
export function createNodeTransport(baseUrl: string, token?: string): Transport {
  return createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    acceptCompression: [],
    interceptors: token === undefined ? [] : [bearerTokenInterceptor(token)],
  });
}
