/**
 * The operations of the S2 API (S2-API.md §4.4 `Operation`) and the permission group each
 * belongs to. Access-token scopes grant operations one by one or by group; the metrics API counts
 * them. One table, so that authorization and accounting name an operation the same way.
 */

export const operations = [
  "list-basins",
  "create-basin",
  "delete-basin",
  "reconfigure-basin",
  "get-basin-config",
  "issue-access-token",
  "revoke-access-token",
  "list-access-tokens",
  "list-streams",
  "create-stream",
  "delete-stream",
  "get-stream-config",
  "reconfigure-stream",
  "check-tail",
  "append",
  "read",
  "trim",
  "fence",
  "account-metrics",
  "basin-metrics",
  "stream-metrics",
  "list-locations",
  "get-default-location",
  "set-default-location",
] as const;

export type Operation = (typeof operations)[number];

/** The level of an operation group (`PermittedOperationGroups`). */
export type OperationLevel = "account" | "basin" | "stream";

/** Whether an operation only reads or also changes something (`ReadWritePermissions`). */
export type OperationAccess = "read" | "write";

export interface OperationGroup {
  readonly level: OperationLevel;
  readonly access: OperationAccess;
}

/**
 * The group of each operation. S2's docs: account read lists basins and tokens, account write
 * creates and deletes basins and issues and revokes tokens (the locations, which S2's docs do not
 * place, go with them: reading them is account read, setting the default account write); basin-level groups cover a basin's
 * config and its streams; stream-level groups cover a stream's config and records.
 */
export const operationGroups: Readonly<Record<Operation, OperationGroup>> = {
  "list-basins": { level: "account", access: "read" },
  "list-access-tokens": { level: "account", access: "read" },
  "account-metrics": { level: "account", access: "read" },
  "list-locations": { level: "account", access: "read" },
  "get-default-location": { level: "account", access: "read" },
  "set-default-location": { level: "account", access: "write" },
  "create-basin": { level: "account", access: "write" },
  "delete-basin": { level: "account", access: "write" },
  "issue-access-token": { level: "account", access: "write" },
  "revoke-access-token": { level: "account", access: "write" },
  "get-basin-config": { level: "basin", access: "read" },
  "list-streams": { level: "basin", access: "read" },
  "basin-metrics": { level: "basin", access: "read" },
  "reconfigure-basin": { level: "basin", access: "write" },
  "create-stream": { level: "basin", access: "write" },
  "delete-stream": { level: "basin", access: "write" },
  "get-stream-config": { level: "stream", access: "read" },
  "check-tail": { level: "stream", access: "read" },
  read: { level: "stream", access: "read" },
  "stream-metrics": { level: "stream", access: "read" },
  "reconfigure-stream": { level: "stream", access: "write" },
  append: { level: "stream", access: "write" },
  trim: { level: "stream", access: "write" },
  fence: { level: "stream", access: "write" },
};

const operationSet: ReadonlySet<string> = new Set(operations);

/** Whether `name` is an operation's wire name. */
export function isOperation(name: string): name is Operation {
  return operationSet.has(name);
}
