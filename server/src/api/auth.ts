/**
 * Bearer tokens and scopes (docs/design/auth.md): who is calling (`createAuthenticator`: 401
 * `authn` for a missing, unknown, revoked or expired token) and whether the call is in scope
 * (`authorize`: 403 `permission_denied`). REST and every RPC go through these same functions, from
 * the tables of `auth-routes.ts`. `auto_prefix_streams` is applied here too (`scopedStreamName`,
 * `clientStreamName`, `listInScope`), once for every front end.
 */
import {
  effectiveOperations,
  matchesResource,
  narrowListing,
  type ResourceSet,
  rootScope,
  streamPrefixOf,
} from "../core/access-scope.js";
import { assert } from "../core/assert.js";
import { S2Error } from "../core/errors.js";
import type { Operation } from "../core/operations.js";
import { type AppendInput, commandValueOf } from "../core/records.js";
import { digestsEqual, hashSecret, type TokenIssuer } from "../service/access-tokens.js";
import type { ListOptions, ListPage } from "../service/list.js";
import type { Metric } from "../service/metrics.js";
import type { Service } from "../service/service.js";

/** The caller of a request, once authenticated. */
export interface Principal extends TokenIssuer {
  /** `open` (`--no-auth`): nothing is enforced; `root`: the root token; `token`: an issued one. */
  readonly kind: "open" | "root" | "token";
  readonly operations: ReadonlySet<Operation>;
  /** Set when the token auto-prefixes stream names (`auto_prefix_streams`). */
  readonly streamPrefix: string | undefined;
  /**
   * The hash of an issued token's secret (kind `token`), by which its open sessions check that it
   * is still live (`api/token-watch.ts`); undefined for `open` and `root`.
   */
  readonly secretHash: string | undefined;
}

const unrestricted = {
  scope: rootScope,
  expiresAtMs: null,
  operations: effectiveOperations(rootScope),
  streamPrefix: undefined,
  secretHash: undefined,
} as const;

/** The principal of every request on a `--no-auth` server. */
export const openPrincipal: Principal = { kind: "open", ...unrestricted };
const rootPrincipal: Principal = { kind: "root", ...unrestricted };

/** How the server authenticates: not at all (`--no-auth`), or with a root token and the store. */
export type AuthOptions = { readonly kind: "open" } | { readonly kind: "token"; rootToken: string };

/** Turns an `Authorization` header value into a principal, or throws 401 `authn`. */
export type Authenticator = (authorization: string | null | undefined) => Principal;

const bearerSyntax = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** What a root token may hold: visible ASCII, so `Bearer <token>` can carry it byte for byte. */
const rootTokenSyntax = /^[\x21-\x7e]+$/;

/**
 * Why a root token could never authenticate, or undefined. A secret in a header is `\S+` of
 * `bearerSyntax`, and header bytes are read as Latin-1, so whitespace, control or non-ASCII
 * characters would make a root token nobody can present (`main.ts` refuses it at start).
 */
export function validateRootToken(token: string): string | undefined {
  if (!rootTokenSyntax.test(token)) {
    return "the root token must be visible ASCII characters without whitespace (it is sent as `Authorization: Bearer <token>`)";
  }
  assert(bearerSyntax.test(`Bearer ${token}`), "a valid root token matches the bearer syntax");
  return undefined;
}

export function createAuthenticator(options: AuthOptions, service: Service): Authenticator {
  if (options.kind === "open") return () => openPrincipal;
  const rootHash = hashSecret(options.rootToken);
  return (authorization) => {
    const match = bearerSyntax.exec(authorization?.trim() ?? "");
    if (match === null) throw new S2Error("authn", "missing bearer access token");
    const secret = match[1]!;
    if (digestsEqual(hashSecret(secret), rootHash)) return rootPrincipal;
    const secretHash = hashSecret(secret);
    const token = service.accessTokens.authenticateHash(secretHash);
    if (token === undefined) throw new S2Error("authn", "invalid or expired access token");
    return {
      kind: "token",
      scope: token.scope,
      expiresAtMs: token.expiresAtMs,
      operations: effectiveOperations(token.scope),
      streamPrefix: token.autoPrefixStreams ? streamPrefixOf(token.scope) : undefined,
      secretHash,
    };
  };
}

function denied(message: string): S2Error {
  return new S2Error("permission_denied", message);
}

/** A stream name as the client gave it, with the token's auto-prefix (if any) prepended. */
export function scopedStreamName(principal: Principal, stream: string): string {
  return principal.streamPrefix === undefined ? stream : `${principal.streamPrefix}${stream}`;
}

/** A full stream name as the client sees it: the auto-prefix (if any) stripped. */
export function clientStreamName(principal: Principal, stream: string): string {
  const prefix = principal.streamPrefix;
  return prefix !== undefined && stream.startsWith(prefix) ? stream.slice(prefix.length) : stream;
}

/** The resources a call names, as the client gave them (stream names not yet auto-prefixed). */
export interface CallResources {
  readonly basin?: string | undefined;
  readonly stream?: string | undefined;
  readonly tokenId?: string | undefined;
}

/**
 * Checks that `principal` may perform every one of `operations` on the named resources; throws
 * 403 `permission_denied` otherwise. Returns the stream name to use (auto-prefixed), if one was
 * named. A basin is checked against `scope.basins`, a stream against `scope.streams` (after
 * auto-prefixing), a token id against `scope.access_tokens`.
 */
export function authorize(
  principal: Principal,
  operations: readonly Operation[],
  resources: CallResources,
): { readonly stream: string | undefined } {
  const stream =
    resources.stream === undefined ? undefined : scopedStreamName(principal, resources.stream);
  if (principal.kind === "open") return { stream };
  for (const operation of operations) {
    if (!principal.operations.has(operation)) {
      throw denied(`operation \`${operation}\` is not permitted by the access token`);
    }
  }
  const { scope } = principal;
  if (resources.basin !== undefined && !matchesResource(scope.basins, resources.basin)) {
    throw denied(`basin \`${resources.basin}\` is not in the access token's scope`);
  }
  if (stream !== undefined && !matchesResource(scope.streams, stream)) {
    throw denied(`stream \`${stream}\` is not in the access token's scope`);
  }
  if (resources.tokenId !== undefined && !matchesResource(scope.accessTokens, resources.tokenId)) {
    throw denied(`access token \`${resources.tokenId}\` is not in the access token's scope`);
  }
  return { stream };
}

const commandOperations: Readonly<Record<string, Operation>> = { fence: "fence", trim: "trim" };
const utf8 = new TextDecoder();

/**
 * A batch holding a fence or trim command record also needs the `fence` or `trim` operation
 * (S2-API.md §5.2: the Operation enum's trim and fence are these commands). Runs on the decoded
 * batch of every append path before it reaches the service.
 */
export function authorizeCommands(principal: Principal, input: AppendInput): void {
  if (principal.kind === "open") return;
  for (const record of input.records) {
    const value = commandValueOf(record);
    if (value === undefined) continue;
    // An unknown command is the service's 422; only known ones need an operation.
    const operation = commandOperations[utf8.decode(value)];
    if (operation !== undefined && !principal.operations.has(operation)) {
      throw denied(`a ${operation} command needs the \`${operation}\` operation`);
    }
  }
}

/** Which resource set of the scope a listing is restricted to. */
export type ListedResource = "basins" | "streams" | "accessTokens";

/**
 * Lists only names in the principal's scope, with auto-prefixed stream names for stream
 * listings (the caller strips them with `clientStreamName`). The listing's prefix is narrowed to
 * the scope, so pages and `hasMore` count only names in scope.
 */
export function listInScope<T>(
  principal: Principal,
  resource: ListedResource,
  options: ListOptions,
  list: (options: ListOptions & { readonly exact?: string | undefined }) => ListPage<T>,
  nameOf: (item: T) => string,
): ListPage<T> {
  let prefix = options.prefix ?? "";
  let startAfter = options.startAfter ?? "";
  if (resource === "streams" && principal.streamPrefix !== undefined) {
    prefix = scopedStreamName(principal, prefix);
    if (startAfter !== "") startAfter = scopedStreamName(principal, startAfter);
  }
  if (principal.kind === "open") return list({ ...options, prefix, startAfter });
  const set: ResourceSet | null = principal.scope[resource];
  const narrowed = narrowListing(set, { prefix, startAfter });
  if (narrowed === "none") return { items: [], hasMore: false };
  const page = list({ ...options, prefix: narrowed.prefix, startAfter: narrowed.startAfter });
  if (narrowed.exact === undefined) return page;
  // An exact name sorts before every other name with it as a prefix: it is first, if listed.
  return { items: page.items.filter((item) => nameOf(item) === narrowed.exact), hasMore: false };
}

/**
 * Account metrics as the principal may see them: the basin names of a label metric
 * (`active-basins`) are kept only if in `scope.basins`, as a basin listing keeps them, so that a
 * token scoped to one basin does not learn the others' names. Counts are account-wide totals and
 * name nothing, so they are left as they are.
 */
export function accountMetricsInScope(principal: Principal, metrics: readonly Metric[]): Metric[] {
  if (principal.kind === "open") return [...metrics];
  const { basins } = principal.scope;
  return metrics.map((metric) =>
    metric.kind === "label"
      ? { ...metric, values: metric.values.filter((basin) => matchesResource(basins, basin)) }
      : metric,
  );
}
