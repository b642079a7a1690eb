/**
 * A basin's page (`#/basins/B`): its config (reconfigure: creation on append/read and the default
 * stream config), create a stream, the basin's streams one page at a time with a name-prefix filter
 * (usable at 10,000 streams), delete a stream or the basin, and a link to its metrics.
 */
import {
  type BasinConfig,
  EncryptionAlgorithm,
} from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { account, basins, formatTimestamp, messageOf } from "../api.js";
import {
  configSection,
  describeStreamConfig,
  readStreamConfig,
  streamConfigFields,
  streamConfigPaths,
} from "../config-form.js";
import { field, h, notify, outcome, row } from "../dom.js";
import { pagedList } from "../paged-list.js";
import { deleteBasinConfirmed } from "./basins.js";

/** The hash of a stream's page. */
export function streamHash(basin: string, stream: string): string {
  return `#/basins/${encodeURIComponent(basin)}/streams/${encodeURIComponent(stream)}`;
}

/** Asks, then deletes the stream; true when it was deleted. */
export async function deleteStreamConfirmed(
  basin: string,
  stream: string,
  report: (text: string, isError: boolean) => void,
): Promise<boolean> {
  if (!window.confirm(`Delete stream ${stream} of ${basin} and all its records?`)) return false;
  try {
    await basins.deleteStream({ basin, stream });
    report(`deleted stream ${stream}`, false);
    return true;
  } catch (error) {
    report(`delete ${stream}: ${messageOf(error)}`, true);
    return false;
  }
}

/** A basin config in one line per field, with its default stream config's. */
function describeBasinConfig(config: BasinConfig | undefined): [string, string][] {
  return [
    ["create streams on append", String(config?.createStreamOnAppend ?? false)],
    ["create streams on read", String(config?.createStreamOnRead ?? false)],
    [
      "stream cipher",
      config?.streamCipher === EncryptionAlgorithm.AEGIS_256
        ? "aegis-256"
        : config?.streamCipher === EncryptionAlgorithm.AES_256_GCM
          ? "aes-256-gcm"
          : "none",
    ],
    ...describeStreamConfig(config?.defaultStreamConfig).map(([term, value]): [string, string] => [
      `default ${term}`,
      value,
    ]),
  ];
}

function basinConfigSection(basin: string): HTMLElement {
  const isChecked = (form: HTMLFormElement, name: string): boolean =>
    (form.elements.namedItem(name) as HTMLInputElement | null)?.checked ?? false;
  return configSection({
    id: "basin-config",
    load: async () => (await account.getBasinConfig({ basin })).config,
    describe: describeBasinConfig,
    fields: (config) => [
      h(
        "div",
        { class: "toolbar" },
        field(
          "create streams on append",
          h("input", {
            name: "create_stream_on_append",
            type: "checkbox",
            checked: config?.createStreamOnAppend ?? false,
          }),
        ),
        field(
          "on read",
          h("input", {
            name: "create_stream_on_read",
            type: "checkbox",
            checked: config?.createStreamOnRead ?? false,
          }),
        ),
      ),
      h("p", { class: "hint" }, "Default config of streams created from now on:"),
      streamConfigFields(config?.defaultStreamConfig),
    ],
    submitLabel: "Reconfigure basin",
    save: async (form) =>
      (
        await account.reconfigureBasin({
          basin,
          config: {
            createStreamOnAppend: isChecked(form, "create_stream_on_append"),
            createStreamOnRead: isChecked(form, "create_stream_on_read"),
            defaultStreamConfig: readStreamConfig(form),
          },
          mask: {
            paths: [
              "create_stream_on_append",
              "create_stream_on_read",
              ...streamConfigPaths.map((path) => `default_stream_config.${path}`),
            ],
          },
        })
      ).config,
  });
}

/** Renders the page of `basin`. */
export function basinPage(basin: string): HTMLElement {
  const result = outcome("stream-result");
  const list = pagedList({
    id: "streams",
    headings: ["stream", "created", "cipher", ""],
    filterLabel: "filter by name prefix",
    fetchPage: async ({ prefix, startAfter, limit }) => {
      const page = await basins.listStreams({ basin, prefix, startAfter, limit });
      return { items: page.streams, hasMore: page.hasMore };
    },
    keyOf: (stream) => stream.name,
    rowOf: (stream) =>
      row(
        [
          h("a", { href: streamHash(basin, stream.name) }, stream.name),
          stream.deletedAt === undefined ? formatTimestamp(stream.createdAt) : "deleting",
          stream.cipher === EncryptionAlgorithm.UNSPECIFIED
            ? "—"
            : EncryptionAlgorithm[stream.cipher],
          h(
            "button",
            {
              type: "button",
              class: "danger stream-delete",
              "data-stream": stream.name,
              onclick: () => {
                void deleteStreamConfirmed(basin, stream.name, result.show).then((deleted) => {
                  if (deleted) void list.reload();
                });
              },
            },
            "Delete",
          ),
        ],
        { "data-stream": stream.name },
      ),
  });

  const name = h("input", {
    id: "stream-create-name",
    name: "stream",
    placeholder: "stream name",
    autocomplete: "off",
    required: true,
  });
  const form = h(
    "form",
    { id: "stream-create-form", class: "toolbar" },
    field("Name", name),
    h("button", { id: "stream-create-button", type: "submit" }, "Create stream"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const stream = name.value;
    void basins.createStream({ basin, stream }).then(
      () => {
        result.show(`created stream ${stream}`);
        name.value = "";
        return list.reload();
      },
      (error: unknown) => result.show(`create ${stream}: ${messageOf(error)}`, true),
    );
  });

  const deleteBasin = h(
    "button",
    {
      id: "basin-delete",
      type: "button",
      class: "danger",
      onclick: () => {
        void deleteBasinConfirmed(basin, notify).then((deleted) => {
          if (deleted) window.location.hash = "#/basins";
        });
      },
    },
    "Delete basin",
  );

  void list.reload();
  return h(
    "div",
    { id: "basin-page", "data-basin": basin },
    h("h2", {}, h("a", { href: "#/basins" }, "Basins"), ` / ${basin}`),
    h(
      "p",
      { class: "toolbar" },
      h("a", { href: `#/metrics?${new URLSearchParams({ basin })}` }, "Metrics of this basin"),
      deleteBasin,
    ),
    basinConfigSection(basin),
    h(
      "section",
      { id: "basin-streams" },
      h("h3", {}, "Streams"),
      form,
      result.element,
      list.element,
    ),
  );
}
