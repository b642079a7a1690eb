/**
 * Refusing the rest of a request whose answer is decided: an HTTP/2 stream is reset (CANCEL), an
 * HTTP/1.1 request, which can be refused only with its connection, is destroyed. Used by the S2S
 * append session after its bounded drain, and by RPC calls answered while their client still
 * sends (`connect/connect-handler.ts`).
 */
import { constants as http2Constants } from "node:http2";
import type { ApiRequest } from "./request-context.js";

export function resetExchange(request: ApiRequest): void {
  if (!("stream" in request)) {
    request.destroy();
    return;
  }
  const { stream } = request;
  if (!stream.closed) stream.close(http2Constants.NGHTTP2_CANCEL);
  // A stream already closed without error still waits for its input to be consumed.
  stream.destroy();
}
