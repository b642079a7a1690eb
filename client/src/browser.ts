/**
 * The browser entry of the Tributary client: `createTributaryClient` over the Connect protocol on
 * `fetch` (@connectrpc/connect-web), plus the platform-independent API. `fetch` cannot stream a
 * request body, so the bidi `AppendSession` RPC is unavailable; append sessions fall back to
 * sequential unary appends with the same submit/ack/flush API (no pipelining). Read sessions are
 * server streams and work as in Node. Nothing imported from here may reach `node:*` or
 * @connectrpc/connect-node (`browser-bundle.test.ts` checks the bundle).
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { bearerTokenInterceptor } from "./bearer-token.js";
import {
  createTributaryClientOver,
  type TributaryClient,
  type TributaryClientOptions,
} from "./tributary-client.js";

export * from "./append-session.js";
export * from "./bearer-token.js";
export * from "./read-session.js";
export * from "./records.js";
export * from "./retry.js";
export type {
  AppendSessionMode,
  BasinHandle,
  ListOptions,
  StreamHandle,
  TributaryClient,
  TributaryClientOptions,
} from "./tributary-client.js";

/** A Connect transport to `baseUrl` over `fetch`, binary, with an optional bearer token. */
export function createBrowserTransport(baseUrl: string, token?: string): Transport {
  return createConnectTransport({
    baseUrl,
    useBinaryFormat: true,
    interceptors: token === undefined ? [] : [bearerTokenInterceptor(token)],
  });
}

/**
 * Creates a client for the server at `baseUrl` (e.g. `window.location.origin`). Unary calls are
 * retried as `retry.ts` allows; read sessions resume after disconnects; append sessions send one
 * unary append at a time.
 */
export function createTributaryClient(options: TributaryClientOptions): TributaryClient {
  const transport = options.transport ?? createBrowserTransport(options.baseUrl, options.token);
  return createTributaryClientOver(transport, {
    appendSessions: "unary",
    ...(options.retry !== undefined && { retry: options.retry }),
  });
}
