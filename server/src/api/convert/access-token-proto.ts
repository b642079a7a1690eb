/**
 * Access tokens between `tributary.v1` messages (proto/tributary/v1/access_token.proto) and the
 * domain scope (`core/access-scope.ts`). Enum values map by name (`OPERATION_LIST_BASINS` ↔
 * `list-basins`), so the proto enum and `core/operations.ts` cannot drift apart silently: an
 * unknown or unspecified value is 422 `invalid`.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type AccessTokenInfo as AccessTokenInfoMessage,
  type AccessTokenInfoSchema,
  type AccessTokenScope as AccessTokenScopeMessage,
  Operation as OperationEnum,
  type PermittedOperationGroups,
  type ReadWritePermissions as ReadWritePermissionsMessage,
  type ResourceSet as ResourceSetMessage,
  type ResourceSetSchema,
} from "@tributary/protocol/gen/tributary/v1/access_token_pb.js";
import type { AccessScope, ReadWritePermissions, ResourceSet } from "../../core/access-scope.js";
import { invalid } from "../../core/errors.js";
import { isOperation, type Operation } from "../../core/operations.js";
import type { AccessTokenInfo } from "../../service/access-tokens.js";

function operationFromProto(value: OperationEnum): Operation {
  const name = OperationEnum[value]?.toLowerCase().replaceAll("_", "-");
  if (name === undefined || !isOperation(name)) {
    throw invalid(`invalid operation in scope. value=\`${value}\``);
  }
  return name;
}

function operationToProto(operation: Operation): OperationEnum {
  return OperationEnum[operation.toUpperCase().replaceAll("-", "_") as keyof typeof OperationEnum];
}

function resourceSetFromProto(set: ResourceSetMessage | undefined): ResourceSet | null {
  switch (set?.matching.case) {
    case "exact":
      return { exact: set.matching.value };
    case "prefix":
      return { prefix: set.matching.value };
    default:
      return null;
  }
}

function resourceSetToProto(set: ResourceSet): MessageInitShape<typeof ResourceSetSchema> {
  return "exact" in set
    ? { matching: { case: "exact", value: set.exact } }
    : { matching: { case: "prefix", value: set.prefix } };
}

function permissionsFromProto(
  permissions: ReadWritePermissionsMessage | undefined,
): ReadWritePermissions | null {
  return permissions === undefined ? null : { read: permissions.read, write: permissions.write };
}

function groupsFromProto(groups: PermittedOperationGroups | undefined): AccessScope["opGroups"] {
  if (groups === undefined) return null;
  return {
    account: permissionsFromProto(groups.account),
    basin: permissionsFromProto(groups.basin),
    stream: permissionsFromProto(groups.stream),
  };
}

/** The domain scope of an `AccessTokenScope` message; unset sets match nothing. */
export function accessScopeFromProto(scope: AccessTokenScopeMessage | undefined): AccessScope {
  return {
    basins: resourceSetFromProto(scope?.basins),
    streams: resourceSetFromProto(scope?.streams),
    accessTokens: resourceSetFromProto(scope?.accessTokens),
    opGroups: groupsFromProto(scope?.opGroups),
    ops: [...new Set((scope?.ops ?? []).map(operationFromProto))],
  };
}

/** Nanoseconds in a second: a `Timestamp`'s `nanos` is below it (timestamp.proto). */
const nanosPerSecond = 1_000_000_000;

/**
 * Epoch milliseconds of an `expires_at`, or 422 `invalid` for a timestamp that is no time at all:
 * `nanos` out of 0..1e9 (timestamp.proto) or `seconds` beyond the JS Date range (±8.64e15 ms),
 * where a Date is NaN, which would skip every expiry check and be stored as "never expires".
 * Times in range but past 9999 are the service's 422.
 */
function expiresAtMsFromProto(expiresAt: Timestamp): number {
  const { seconds, nanos } = expiresAt;
  const ms = nanos >= 0 && nanos < nanosPerSecond ? timestampMs(expiresAt) : Number.NaN;
  // A Date of NaN, ±Infinity or a finite value out of its range is invalid alike.
  if (Number.isNaN(new Date(ms).getTime())) {
    throw invalid(
      `access token expiry is not a valid timestamp. seconds=\`${seconds}\` nanos=\`${nanos}\``,
    );
  }
  return ms;
}

/** The issue request's token: `expires_at` unset means the issuer's expiry. */
export function issueInputFromProto(info: AccessTokenInfoMessage | undefined): {
  id: string;
  scope: AccessScope;
  expiresAtMs: number | undefined;
  autoPrefixStreams: boolean;
} {
  return {
    id: info?.id ?? "",
    scope: accessScopeFromProto(info?.scope),
    expiresAtMs: info?.expiresAt === undefined ? undefined : expiresAtMsFromProto(info.expiresAt),
    autoPrefixStreams: info?.autoPrefixStreams ?? false,
  };
}

/** An `AccessTokenInfo` message of a token. */
export function accessTokenInfoToProto(
  info: AccessTokenInfo,
): MessageInitShape<typeof AccessTokenInfoSchema> {
  const { scope } = info;
  const groups = scope.opGroups;
  return {
    id: info.id,
    ...(info.expiresAtMs !== null && { expiresAt: timestampFromMs(info.expiresAtMs) }),
    autoPrefixStreams: info.autoPrefixStreams,
    scope: {
      ...(scope.basins !== null && { basins: resourceSetToProto(scope.basins) }),
      ...(scope.streams !== null && { streams: resourceSetToProto(scope.streams) }),
      ...(scope.accessTokens !== null && {
        accessTokens: resourceSetToProto(scope.accessTokens),
      }),
      ...(groups !== null && {
        opGroups: {
          ...(groups.account !== null && { account: groups.account }),
          ...(groups.basin !== null && { basin: groups.basin }),
          ...(groups.stream !== null && { stream: groups.stream }),
        },
      }),
      ops: scope.ops.map(operationToProto),
    },
  };
}
