/**
 * What a route handler gets: the request and response (HTTP/1.1 or HTTP/2 through Node's
 * compatibility API, so one handler serves both), path parameters, the query, and helpers for the
 * S2 request headers and JSON responses.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { S2Error } from "../../core/errors.js";
import { validateBasinName } from "../../core/names.js";
import { parseEncryptionKey } from "../../core/record-encryption.js";
import type { Principal } from "../auth.js";

export type ApiRequest = IncomingMessage | Http2ServerRequest;
export type ApiResponse = ServerResponse | Http2ServerResponse;

export interface RequestContext {
  readonly request: ApiRequest;
  readonly response: ApiResponse;
  /** Percent-decoded path parameters. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Whether the connection is HTTP/2. */
  readonly isHttp2: boolean;
  /** The authenticated caller, already authorized for the route (`api/auth.ts`). */
  readonly auth: Principal;
}

/** A request header's value (the first, if repeated), trimmed; undefined if absent. */
export function headerOf(request: ApiRequest, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.trim();
}

/** The basin of a stream route: the `S2-Basin` header, required (S2-API.md §3.1 [LITE]). */
export function basinHeaderOf(request: ApiRequest): string {
  const basin = headerOf(request, "s2-basin");
  if (basin === undefined || basin === "")
    throw new S2Error("bad_header", "Missing header `s2-basin`");
  const reason = validateBasinName(basin);
  if (reason !== undefined) throw new S2Error("bad_header", `invalid s2-basin header: ${reason}`);
  return basin;
}

/**
 * The `S2-Encryption-Key` header parsed to a 32-byte key, or undefined when absent (S2-API.md
 * §3.1, §6.7). A malformed value is 400 `bad_header`. Whether a key is required is the stream's
 * business (its cipher), decided in the service.
 */
export function encryptionKeyOf(request: ApiRequest): Uint8Array | undefined {
  const value = headerOf(request, "s2-encryption-key");
  return value === undefined ? undefined : parseEncryptionKey(value);
}

/** The media type of a header like Content-Type or the first entry of Accept, lowercased. */
export function mediaTypeOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const first = value.split(",")[0]!.split(";")[0]!.trim().toLowerCase();
  return first === "" ? undefined : first;
}

/** Sends a JSON response. */
export function sendJson(
  response: ApiResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  response.end(text);
}

/** Sends a response with no body. */
export function sendEmpty(
  response: ApiResponse,
  status: number,
  headers: Readonly<Record<string, string>> = {},
): void {
  response.writeHead(status, { "content-length": "0", ...headers });
  response.end();
}
