/**
 * The console's calls: Connect-web clients of the `tributary.v1` services on the page's own
 * origin (Connect JSON over fetch; the CSP allows `connect-src 'self'` only). An access token typed
 * in is kept in `localStorage` and sent as `Authorization: Bearer` on every call
 * (docs/design/auth.md); a `--no-auth` server needs none. Also the few formatters of API values
 * (timestamps, errors) that every page shares.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";

/** Where the access token is kept between visits. */
const tokenStorageKey = "tributary.accessToken";

/** The stored access token, or "" for none. */
export function storedToken(): string {
  return window.localStorage.getItem(tokenStorageKey) ?? "";
}

/** Keeps `token` for later calls and visits; "" forgets it. */
export function storeToken(token: string): void {
  if (token === "") window.localStorage.removeItem(tokenStorageKey);
  else window.localStorage.setItem(tokenStorageKey, token);
}

const sendToken: Interceptor = (next) => (request) => {
  const token = storedToken();
  if (token !== "") request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  interceptors: [sendToken],
});

/** Basins, access tokens and account metrics. */
export const account = createClient(AccountService, transport);
/** Streams of a basin and basin metrics. */
export const basins = createClient(BasinService, transport);
/** Records, tails and stream metrics. */
export const streams = createClient(StreamService, transport);

/** An error as one line: the Connect code and message, or the error's text. */
export function messageOf(error: unknown): string {
  return error instanceof ConnectError ? `${Code[error.code]}: ${error.rawMessage}` : String(error);
}

/** A protobuf timestamp as ISO 8601, or "—" when absent. */
export function formatTimestamp(timestamp: Timestamp | undefined): string {
  if (timestamp === undefined) return "—";
  return new Date(Number(timestamp.seconds) * 1000 + timestamp.nanos / 1e6).toISOString();
}

/** A record timestamp (milliseconds since the epoch, u64) as ISO 8601. */
export function formatMillis(millis: bigint): string {
  const date = new Date(Number(millis));
  return Number.isNaN(date.getTime()) ? String(millis) : date.toISOString();
}

/** A byte count with a binary unit. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
