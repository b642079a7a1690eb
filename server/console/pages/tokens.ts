/**
 * The access tokens page (`#/tokens`): issue a token with a scope (resource prefixes and operation
 * groups; docs/design/auth.md), shown once; the tokens one page at a time with an id-prefix filter;
 * revoke. The token the console itself sends is set in the header of every page.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type AccessTokenInfo,
  type IssueAccessTokenRequestSchema,
  Operation,
  type ResourceSet,
} from "@tributary/protocol/gen/tributary/v1/access_token_pb.js";
import { account, formatTimestamp, messageOf, storeToken } from "../api.js";
import { field, h, outcome, row } from "../dom.js";
import { pagedList } from "../paged-list.js";

const secondsPerDay = 86_400;
/** The operation groups of a scope, as form names (`account_read`, …). */
const groups = ["account", "basin", "stream"] as const;

function describeSet(set: ResourceSet | undefined): string {
  switch (set?.matching.case) {
    case "exact":
      return set.matching.value === "" ? "none" : `= ${set.matching.value}`;
    case "prefix":
      return set.matching.value === "" ? "all" : `${set.matching.value}*`;
    default:
      return "none";
  }
}

function describeOperations(info: AccessTokenInfo): string {
  const groupsText = groups.flatMap((group) => {
    const permissions = info.scope?.opGroups?.[group];
    const modes = [
      permissions?.read === true && "read",
      permissions?.write === true && "write",
    ].filter((mode): mode is string => mode !== false);
    return modes.length === 0 ? [] : [`${group} ${modes.join("+")}`];
  });
  const ops = (info.scope?.ops ?? []).map((op) => Operation[op].toLowerCase().replaceAll("_", "-"));
  return [...groupsText, ...ops].join(", ") || "none";
}

function checkbox(name: string, isChecked: boolean): HTMLInputElement {
  return h("input", { name, type: "checkbox", checked: isChecked });
}

/** Renders the tokens page. */
export function tokensPage(): HTMLElement {
  const result = outcome("token-result");
  const list = pagedList({
    id: "tokens",
    headings: ["id", "expires", "basins", "streams", "tokens", "operations", ""],
    filterLabel: "filter by id prefix",
    fetchPage: async ({ prefix, startAfter, limit }) => {
      const page = await account.listAccessTokens({ prefix, startAfter, limit });
      return { items: page.accessTokens, hasMore: page.hasMore };
    },
    keyOf: (token) => token.id,
    rowOf: (token) =>
      row(
        [
          token.id,
          token.expiresAt === undefined ? "never" : formatTimestamp(token.expiresAt),
          describeSet(token.scope?.basins),
          `${describeSet(token.scope?.streams)}${token.autoPrefixStreams ? " (auto-prefixed)" : ""}`,
          describeSet(token.scope?.accessTokens),
          describeOperations(token),
          h(
            "button",
            {
              type: "button",
              class: "danger token-revoke",
              "data-token": token.id,
              onclick: () => {
                if (!window.confirm(`Revoke access token ${token.id}?`)) return;
                void account.revokeAccessToken({ id: token.id }).then(
                  () => {
                    result.show(`revoked ${token.id}`);
                    return list.reload();
                  },
                  (error: unknown) => result.show(`revoke ${token.id}: ${messageOf(error)}`, true),
                );
              },
            },
            "Revoke",
          ),
        ],
        { "data-token": token.id },
      ),
  });

  const id = h("input", { id: "token-id", name: "id", required: true, autocomplete: "off" });
  const expiresDays = h("input", {
    name: "expires_days",
    type: "number",
    min: "1",
    placeholder: "never",
  });
  const basinPrefix = h("input", { name: "basins", placeholder: "all", autocomplete: "off" });
  const streamPrefix = h("input", { name: "streams", placeholder: "all", autocomplete: "off" });
  const tokenPrefix = h("input", {
    name: "access_tokens",
    placeholder: "all",
    autocomplete: "off",
  });
  const autoPrefix = checkbox("auto_prefix_streams", false);
  const permissions = groups.flatMap((group) => [
    [group, "read", checkbox(`${group}_read`, group !== "account")] as const,
    [group, "write", checkbox(`${group}_write`, group === "stream")] as const,
  ]);
  const secret = h("code", { id: "token-secret" });
  const useSecret = h(
    "button",
    { type: "button", id: "token-use", hidden: true },
    "Use it in this console",
  );
  useSecret.addEventListener("click", () => {
    const token = secret.textContent ?? "";
    storeToken(token);
    const headerField = document.getElementById("token");
    if (headerField instanceof HTMLInputElement) headerField.value = token;
    result.show("the console now sends this token");
  });

  const form = h(
    "form",
    { id: "token-issue-form" },
    h("div", { class: "toolbar" }, field("Id", id), field("Expires in days", expiresDays)),
    h(
      "div",
      { class: "toolbar" },
      field("Basin prefix", basinPrefix),
      field("Stream prefix", streamPrefix),
      field("Token id prefix", tokenPrefix),
      field("auto-prefix streams", autoPrefix),
    ),
    h(
      "div",
      { class: "toolbar" },
      ...permissions.map(([group, mode, box]) => field(`${group} ${mode}`, box)),
    ),
    h("button", { id: "token-issue", type: "submit" }, "Issue token"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const days = Number.parseInt(expiresDays.value, 10);
    const opGroups = Object.fromEntries(
      groups.map((group) => [
        group,
        {
          read: permissions.some(([g, mode, box]) => g === group && mode === "read" && box.checked),
          write: permissions.some(
            ([g, mode, box]) => g === group && mode === "write" && box.checked,
          ),
        },
      ]),
    );
    const request: MessageInitShape<typeof IssueAccessTokenRequestSchema> = {
      info: {
        id: id.value.trim(),
        autoPrefixStreams: autoPrefix.checked,
        ...(Number.isSafeInteger(days) &&
          days > 0 && {
            expiresAt: {
              seconds: BigInt(Math.floor(Date.now() / 1000) + days * secondsPerDay),
              nanos: 0,
            },
          }),
        scope: {
          basins: { matching: { case: "prefix", value: basinPrefix.value.trim() } },
          streams: { matching: { case: "prefix", value: streamPrefix.value.trim() } },
          accessTokens: { matching: { case: "prefix", value: tokenPrefix.value.trim() } },
          opGroups,
        },
      },
    };
    void account.issueAccessToken(request).then(
      ({ accessToken }) => {
        secret.textContent = accessToken;
        useSecret.hidden = false;
        result.show(`issued ${id.value.trim()}: copy its secret now, it is not shown again`);
        id.value = "";
        return list.reload();
      },
      (error: unknown) => result.show(`issue: ${messageOf(error)}`, true),
    );
  });

  void list.reload();
  return h(
    "div",
    { id: "tokens-page" },
    h("h2", {}, "Access tokens"),
    form,
    result.element,
    h("p", { class: "secret" }, "Secret: ", secret, " ", useSecret),
    list.element,
  );
}
