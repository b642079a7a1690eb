/**
 * Access-token scopes (S2-API.md §4.4, docs/design/auth.md): resource sets, the effective set of
 * operations, whether one scope is within another (issuing never escalates), and the narrowing of
 * a listing to the names a set allows. Pure functions: the API layer checks requests with them and
 * the access-token service checks issues.
 */
import {
  type Operation,
  type OperationAccess,
  type OperationLevel,
  operationGroups,
  operations,
} from "./operations.js";

/**
 * A set of resource names: `{exact}` one name (`""` matches nothing), `{prefix}` every name that
 * starts with it (`""` matches everything). The JSON wire shape, stored as is.
 */
export type ResourceSet = { readonly exact: string } | { readonly prefix: string };

/** Read and write permission of one operation group level. */
export interface ReadWritePermissions {
  readonly read: boolean;
  readonly write: boolean;
}

/** A token's scope, normalized (absent fields are `null`, `ops` an array). Stored as JSON. */
export interface AccessScope {
  readonly basins: ResourceSet | null;
  readonly streams: ResourceSet | null;
  readonly accessTokens: ResourceSet | null;
  readonly opGroups: Readonly<Record<OperationLevel, ReadWritePermissions | null>> | null;
  readonly ops: readonly Operation[];
}

const everything: ResourceSet = { prefix: "" };

/** The root token's scope: every operation on every resource. */
export const rootScope: AccessScope = {
  basins: everything,
  streams: everything,
  accessTokens: everything,
  opGroups: null,
  ops: operations,
};

/**
 * Whether `set` contains `name`. A null set matches nothing: least privilege, as the S2 SDK test
 * matrix states ("If null/omitted, no basin access").
 */
export function matchesResource(set: ResourceSet | null, name: string): boolean {
  if (set === null) return false;
  if ("exact" in set) return set.exact !== "" && set.exact === name;
  return name.startsWith(set.prefix);
}

/** Whether a set matches no name at all. */
function isEmptySet(set: ResourceSet | null): boolean {
  return set === null || ("exact" in set && set.exact === "");
}

/** Whether every name `child` matches is matched by `parent`. */
export function isResourceSubset(child: ResourceSet | null, parent: ResourceSet | null): boolean {
  if (isEmptySet(child)) return true;
  if (child === null || parent === null) return false;
  if ("exact" in child) return matchesResource(parent, child.exact);
  // A prefix set is infinite: only a prefix set that is a prefix of it covers it.
  return "prefix" in parent && child.prefix.startsWith(parent.prefix);
}

/** The operations a scope permits: its `ops` and every operation of a granted group. */
export function effectiveOperations(scope: AccessScope): ReadonlySet<Operation> {
  const permitted = new Set<Operation>(scope.ops);
  const groups = scope.opGroups;
  if (groups !== null) {
    for (const operation of operations) {
      const { level, access } = operationGroups[operation];
      const granted = groups[level];
      if (granted !== null && isGranted(granted, access)) permitted.add(operation);
    }
  }
  return permitted;
}

function isGranted(permissions: ReadWritePermissions, access: OperationAccess): boolean {
  return access === "read" ? permissions.read : permissions.write;
}

/**
 * Why `child` grants more than `parent`, or undefined when it grants nothing more: its operations
 * and each resource set must be within the parent's.
 */
export function scopeEscalation(child: AccessScope, parent: AccessScope): string | undefined {
  const parentOps = effectiveOperations(parent);
  for (const operation of effectiveOperations(child)) {
    if (!parentOps.has(operation)) return `operation \`${operation}\` is not in the issuer's scope`;
  }
  for (const [field, childSet, parentSet] of [
    ["basins", child.basins, parent.basins],
    ["streams", child.streams, parent.streams],
    ["access_tokens", child.accessTokens, parent.accessTokens],
  ] as const) {
    if (!isResourceSubset(childSet, parentSet)) {
      return `\`${field}\` is wider than the issuer's scope`;
    }
  }
  return undefined;
}

/** The prefix of an auto-prefixing scope's stream set (which must be a prefix set). */
export function streamPrefixOf(scope: AccessScope): string | undefined {
  const streams = scope.streams;
  return streams !== null && "prefix" in streams ? streams.prefix : undefined;
}

/** A listing's name filters, as `service/list.ts` takes them. */
export interface ListingFilter {
  readonly prefix: string;
  readonly startAfter: string;
}

/**
 * Narrows a listing to the names `set` matches, so that a page and its `has_more` count only
 * names in scope: a prefix set intersects the prefixes, an exact set becomes that name's prefix
 * plus an exact filter. Returns `"none"` when no name can match.
 */
export function narrowListing(
  set: ResourceSet | null,
  filter: ListingFilter,
): (ListingFilter & { readonly exact: string | undefined }) | "none" {
  if (isEmptySet(set) || set === null) return "none";
  if ("exact" in set) {
    if (!set.exact.startsWith(filter.prefix)) return "none";
    return { prefix: set.exact, startAfter: filter.startAfter, exact: set.exact };
  }
  if (set.prefix.startsWith(filter.prefix)) {
    return { prefix: set.prefix, startAfter: filter.startAfter, exact: undefined };
  }
  if (filter.prefix.startsWith(set.prefix)) return { ...filter, exact: undefined };
  return "none";
}
