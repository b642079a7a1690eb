/**
 * The basins page (`#/basins`): create a basin, and the account's basins one page at a time with a
 * name-prefix filter, each linking to its basin page, with a delete button.
 */
import { BasinState } from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { account, formatTimestamp, messageOf } from "../api.js";
import { field, h, outcome, row } from "../dom.js";
import { pagedList } from "../paged-list.js";

/** The hash of a basin's page. */
export function basinHash(basin: string): string {
  return `#/basins/${encodeURIComponent(basin)}`;
}

/** Asks, then deletes `basin`; true when it was deleted. */
export async function deleteBasinConfirmed(
  basin: string,
  report: (text: string, isError: boolean) => void,
): Promise<boolean> {
  if (!window.confirm(`Delete basin ${basin} and all its streams?`)) return false;
  try {
    await account.deleteBasin({ basin });
    report(`deleted basin ${basin}`, false);
    return true;
  } catch (error) {
    report(`delete ${basin}: ${messageOf(error)}`, true);
    return false;
  }
}

/** Renders the basins page. */
export function basinsPage(): HTMLElement {
  const result = outcome("basin-result");
  const list = pagedList({
    id: "basins",
    headings: ["basin", "state", "created", ""],
    filterLabel: "filter by name prefix",
    fetchPage: async ({ prefix, startAfter, limit }) => {
      const page = await account.listBasins({ prefix, startAfter, limit });
      return { items: page.basins, hasMore: page.hasMore };
    },
    keyOf: (basin) => basin.name,
    rowOf: (basin) =>
      row(
        [
          h("a", { href: basinHash(basin.name) }, basin.name),
          basin.state === BasinState.DELETING ? "deleting" : "active",
          formatTimestamp(basin.createdAt),
          h(
            "button",
            {
              type: "button",
              class: "danger basin-delete",
              "data-basin": basin.name,
              disabled: basin.state === BasinState.DELETING,
              onclick: () => {
                void deleteBasinConfirmed(basin.name, result.show).then((deleted) => {
                  if (deleted) void list.reload();
                });
              },
            },
            "Delete",
          ),
        ],
        { "data-basin": basin.name },
      ),
  });

  const name = h("input", {
    id: "basin-create-name",
    name: "basin",
    placeholder: "8–48 of a–z, 0–9, -",
    autocomplete: "off",
    required: true,
  });
  const onAppend = h("input", { name: "create_stream_on_append", type: "checkbox" });
  const onRead = h("input", { name: "create_stream_on_read", type: "checkbox" });
  const form = h(
    "form",
    { id: "basin-create-form", class: "toolbar" },
    field("Name", name),
    field("create streams on append", onAppend),
    field("on read", onRead),
    h("button", { id: "basin-create-button", type: "submit" }, "Create basin"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const basin = name.value.trim();
    void account
      .createBasin({
        basin,
        config: { createStreamOnAppend: onAppend.checked, createStreamOnRead: onRead.checked },
      })
      .then(
        () => {
          result.show(`created basin ${basin}`);
          name.value = "";
          return list.reload();
        },
        (error: unknown) => result.show(`create ${basin}: ${messageOf(error)}`, true),
      );
  });

  void list.reload();
  return h("div", { id: "basins-page" }, h("h2", {}, "Basins"), form, result.element, list.element);
}
