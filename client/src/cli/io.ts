/**
 * What a CLI command runs against: its standard streams and environment (injected, so tests run
 * commands in-process), and where the server is, from the variables the S2 CLI reads.
 */

export interface CliIo {
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number };
  readonly stderr: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** The endpoint used when no S2_* variable names one (`make run`'s default port). */
export const defaultEndpoint = "http://localhost:8080";

export interface Connection {
  /** The server's base URL without a trailing `/` or `/v1`. */
  readonly baseUrl: string;
  /** From S2_ACCESS_TOKEN, if set and not empty. */
  readonly token: string | undefined;
}

/**
 * The connection the S2 CLI would use: S2_ACCOUNT_ENDPOINT, else S2_BASIN_ENDPOINT, else the
 * default; our RPC services share one port, so one URL serves account and basin calls.
 */
export function connectionFromEnv(env: CliIo["env"]): Connection {
  const endpoint = env["S2_ACCOUNT_ENDPOINT"] || env["S2_BASIN_ENDPOINT"] || defaultEndpoint;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
  const baseUrl = withScheme.replace(/\/+$/, "").replace(/\/v1$/, "");
  const token = env["S2_ACCESS_TOKEN"] || undefined;
  return { baseUrl, token };
}
