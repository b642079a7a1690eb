/**
 * The typed Tributary client for Node: `createTributaryClient` over Connect on HTTP/2
 * (@connectrpc/connect-node), where append sessions are pipelined bidi streams. The client itself
 * is platform-independent (`tributary-client.ts`); browsers use `browser.ts`.
 */
import { createNodeTransport } from "./node-transport.js";
import {
  createTributaryClientOver,
  type TributaryClient,
  type TributaryClientOptions,
} from "./tributary-client.js";

export type {
  BasinHandle,
  ListOptions,
  StreamHandle,
  TributaryClient,
  TributaryClientOptions,
} from "./tributary-client.js";

/**
 * Creates a client for the server at `baseUrl`. Unary calls are retried as `retry.ts` allows
 * (`retry: false` turns that off); read sessions resume after disconnects; append sessions are
 * pipelined over one HTTP/2 stream.
 */
export function createTributaryClient(options: TributaryClientOptions): TributaryClient {
  const transport = options.transport ?? createNodeTransport(options.baseUrl, options.token);
  return createTributaryClientOver(transport, {
    appendSessions: "bidi",
    ...(options.retry !== undefined && { retry: options.retry }),
  });
}
