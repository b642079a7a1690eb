/**
 * A stream's page (`#/basins/B/streams/S`): its tail (`CheckTail`), its config with a reconfigure
 * form, an append form (body as text or hex, headers as `name: value` lines), the live tail, the
 * storage chart of the last hour, and delete.
 */
import { formatMillis, messageOf, streams, basins } from "../api.js";
import {
  configSection,
  describeStreamConfig,
  readStreamConfig,
  streamConfigFields,
  streamConfigPaths,
} from "../config-form.js";
import { field, h, notify, outcome, select } from "../dom.js";
import { fromHex, parseHeaders } from "../append-input.js";
import { liveTail } from "../tail.js";
import { basinHash } from "./basins.js";
import { deleteStreamConfirmed } from "./basin.js";
import { rangeNamed, streamCharts } from "./metrics.js";

const encoder = new TextEncoder();

function tailSection(basin: string, stream: string): HTMLElement {
  const text = h("span", { id: "stream-tail" }, "loading…");
  const refresh = (): void => {
    void streams.checkTail({ basin, stream }).then(
      ({ tail }) => {
        text.textContent =
          tail === undefined
            ? "unknown"
            : `next seq num ${tail.seqNum}, last timestamp ${tail.seqNum === 0n ? "—" : formatMillis(tail.timestamp)}`;
      },
      (error: unknown) => {
        text.textContent = messageOf(error);
      },
    );
  };
  refresh();
  return h(
    "section",
    { id: "stream-tail-section" },
    h("h3", {}, "Tail"),
    h(
      "p",
      { class: "toolbar" },
      text,
      h("button", { id: "tail-refresh", type: "button", onclick: refresh }, "Refresh"),
    ),
  );
}

function streamConfigSection(basin: string, stream: string): HTMLElement {
  return configSection({
    id: "stream-config",
    load: async () => (await basins.getStreamConfig({ basin, stream })).config,
    describe: describeStreamConfig,
    fields: (config) => [streamConfigFields(config)],
    submitLabel: "Reconfigure stream",
    save: async (form) =>
      (
        await basins.reconfigureStream({
          basin,
          stream,
          config: readStreamConfig(form),
          mask: { paths: streamConfigPaths },
        })
      ).config,
  });
}

function appendSection(basin: string, stream: string): HTMLElement {
  const body = h("textarea", {
    id: "append-body",
    name: "body",
    rows: "3",
    placeholder: "record body",
  });
  const format = select(
    "format",
    [
      ["text", "text"],
      ["hex", "hex bytes"],
    ],
    "text",
  );
  format.id = "append-format";
  const headers = h("textarea", {
    id: "append-headers",
    name: "headers",
    rows: "2",
    placeholder: "name: value (one header a line)",
  });
  const result = outcome("append-result");
  const form = h(
    "form",
    { id: "append-form" },
    h("div", { class: "append-fields" }, field("Body", body), field("Headers", headers)),
    h(
      "div",
      { class: "toolbar" },
      field("Body is", format),
      h("button", { id: "append-button", type: "submit" }, "Append"),
    ),
    result.element,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void (async () => {
      try {
        const bytes = format.value === "hex" ? fromHex(body.value) : encoder.encode(body.value);
        if (bytes === undefined) throw new Error("body is not hex pairs");
        const { ack } = await streams.append({
          basin,
          stream,
          input: { records: [{ body: bytes, headers: parseHeaders(headers.value) }] },
        });
        result.show(`appended at seq ${ack?.start?.seqNum ?? "?"}`);
        body.value = "";
      } catch (error) {
        result.show(`append: ${messageOf(error)}`, true);
      }
    })();
  });
  return h("section", { id: "append" }, h("h3", {}, "Append"), form);
}

function storageSection(basin: string, stream: string): HTMLElement {
  let charts = streamCharts(basin, stream, rangeNamed("1h"));
  const refresh = h("button", { id: "storage-refresh", type: "button" }, "Refresh");
  refresh.addEventListener("click", () => {
    const redrawn = streamCharts(basin, stream, rangeNamed("1h"));
    charts.replaceWith(redrawn);
    charts = redrawn;
  });
  return h(
    "section",
    { id: "stream-storage" },
    h("h3", { class: "toolbar" }, "Storage, last hour", refresh),
    charts,
  );
}

/** A rendered page and what to do when leaving it. */
export interface StreamPage {
  readonly element: HTMLElement;
  leave(): void;
}

/** Renders the page of `basin`/`stream`. */
export function streamPage(basin: string, stream: string): StreamPage {
  const tail = liveTail(basin, stream);
  const deleteButton = h(
    "button",
    {
      id: "stream-delete",
      type: "button",
      class: "danger",
      onclick: () => {
        void deleteStreamConfirmed(basin, stream, notify).then((deleted) => {
          if (deleted) window.location.hash = basinHash(basin);
        });
      },
    },
    "Delete stream",
  );
  const element = h(
    "div",
    { id: "stream-page", "data-basin": basin, "data-stream": stream },
    h(
      "h2",
      {},
      h("a", { href: "#/basins" }, "Basins"),
      " / ",
      h("a", { href: basinHash(basin) }, basin),
      ` / ${stream}`,
    ),
    h(
      "p",
      { class: "toolbar" },
      h("a", { href: `#/metrics?${new URLSearchParams({ basin, stream })}` }, "Metrics"),
      deleteButton,
    ),
    tailSection(basin, stream),
    streamConfigSection(basin, stream),
    appendSection(basin, stream),
    tail.element,
    storageSection(basin, stream),
  );
  return { element, leave: tail.stop };
}
