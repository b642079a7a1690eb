/**
 * The stream config editor shared by the stream page (the stream's own config) and the basin page
 * (its default stream config): one control per field of `StreamConfig` (config.proto), each with a
 * "default" choice that leaves the field unset, which a reconfigure with the field's mask path
 * turns into "fall back to the basin default / system default" (REST `null`).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type StreamConfig,
  type StreamConfigSchema,
  StorageClass,
  TimestampingMode,
} from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { messageOf } from "./api.js";
import { field, formValue, h, outcome, select } from "./dom.js";

/** The mask paths of a whole stream config (basin.proto `ReconfigureStreamRequest`). */
export const streamConfigPaths = [
  "storage_class",
  "retention_policy",
  "timestamping",
  "delete_on_empty",
];

const storageClassNames: readonly (readonly [string, string])[] = [
  [String(StorageClass.UNSPECIFIED), "default"],
  [String(StorageClass.STANDARD), "standard"],
  [String(StorageClass.EXPRESS), "express"],
];
const timestampingModeNames: readonly (readonly [string, string])[] = [
  [String(TimestampingMode.UNSPECIFIED), "default"],
  [String(TimestampingMode.CLIENT_PREFER), "client-prefer"],
  [String(TimestampingMode.CLIENT_REQUIRE), "client-require"],
  [String(TimestampingMode.ARRIVAL), "arrival"],
];

function nameOf(names: readonly (readonly [string, string])[], value: number): string {
  return names.find(([key]) => key === String(value))?.[1] ?? String(value);
}

/** A stream config in one line per field, for reading (unset fields say "default"). */
export function describeStreamConfig(config: StreamConfig | undefined): [string, string][] {
  const retention = config?.retentionPolicy?.policy;
  const uncapped = config?.timestamping?.uncapped;
  const minAge = config?.deleteOnEmpty?.minAgeSecs;
  return [
    ["storage class", nameOf(storageClassNames, config?.storageClass ?? 0)],
    [
      "retention",
      retention?.case === "ageSecs"
        ? `${retention.value} s`
        : retention?.case === "infinite"
          ? "infinite"
          : "default",
    ],
    ["timestamping mode", nameOf(timestampingModeNames, config?.timestamping?.mode ?? 0)],
    ["timestamps uncapped", uncapped === undefined ? "default" : String(uncapped)],
    [
      "delete on empty",
      minAge === undefined ? "default" : minAge === 0n ? "off" : `after ${minAge} s empty`,
    ],
  ];
}

/**
 * A config section (`#<id>`, shared by the basin and stream pages): the config as a definition list
 * (`#<id>-summary`), and a form (`#<id>-form`, submit `#<id>-save`) whose outcome shows in
 * `#<id>-result`. `save` sends the form and returns the config now in force, which replaces the
 * summary, every time.
 */
export function configSection<Config>(options: {
  readonly id: string;
  readonly load: () => Promise<Config | undefined>;
  readonly describe: (config: Config | undefined) => [string, string][];
  readonly fields: (config: Config | undefined) => readonly HTMLElement[];
  readonly submitLabel: string;
  readonly save: (form: HTMLFormElement) => Promise<Config | undefined>;
}): HTMLElement {
  const { id } = options;
  const section = h("section", { id }, h("h3", {}, "Config"), "loading…");
  const result = outcome(`${id}-result`);
  void options.load().then(
    (config) => {
      let summary = definitionList(options.describe(config), `${id}-summary`);
      const form = h(
        "form",
        { id: `${id}-form` },
        ...options.fields(config),
        h("button", { id: `${id}-save`, type: "submit" }, options.submitLabel),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        void (async () => {
          try {
            const updated = definitionList(
              options.describe(await options.save(form)),
              `${id}-summary`,
            );
            summary.replaceWith(updated);
            summary = updated;
            result.show("reconfigured");
          } catch (error) {
            result.show(`reconfigure: ${messageOf(error)}`, true);
          }
        })();
      });
      section.replaceChildren(
        h("h3", {}, "Config"),
        summary,
        h("details", {}, h("summary", {}, "Reconfigure"), form),
        result.element,
      );
    },
    (error: unknown) =>
      section.replaceChildren(h("h3", {}, "Config"), h("p", { class: "error" }, messageOf(error))),
  );
  return section;
}

/** A definition list of `entries`. */
export function definitionList(entries: readonly [string, string][], id: string): HTMLDListElement {
  const list = h("dl", { id, class: "config" });
  for (const [term, description] of entries)
    list.append(h("dt", {}, term), h("dd", {}, description));
  return list;
}

/** The controls of a stream config, filled from `config`. */
export function streamConfigFields(config: StreamConfig | undefined): HTMLElement {
  const retention = config?.retentionPolicy?.policy;
  const uncapped = config?.timestamping?.uncapped;
  const minAge = config?.deleteOnEmpty?.minAgeSecs;
  return h(
    "div",
    { class: "config-fields" },
    field(
      "Storage class",
      select("storage_class", storageClassNames, String(config?.storageClass ?? 0)),
    ),
    field(
      "Retention",
      select(
        "retention",
        [
          ["", "default"],
          ["infinite", "infinite"],
          ["age", "age (seconds)"],
        ],
        retention?.case === "ageSecs" ? "age" : retention?.case === "infinite" ? "infinite" : "",
      ),
    ),
    field(
      "Age s",
      h("input", {
        name: "retention_age_secs",
        type: "number",
        min: "1",
        value: retention?.case === "ageSecs" ? String(retention.value) : "",
      }),
    ),
    field(
      "Timestamping",
      select("timestamping_mode", timestampingModeNames, String(config?.timestamping?.mode ?? 0)),
    ),
    field(
      "Uncapped",
      select(
        "timestamping_uncapped",
        [
          ["", "default"],
          ["true", "yes"],
          ["false", "no"],
        ],
        uncapped === undefined ? "" : String(uncapped),
      ),
    ),
    field(
      "Delete on empty after s (0 off)",
      h("input", {
        name: "delete_on_empty_min_age_secs",
        type: "number",
        min: "0",
        value: minAge === undefined ? "" : String(minAge),
      }),
    ),
  );
}

/** The stream config the controls of `form` say; throws a readable error for a bad age. */
export function readStreamConfig(
  form: HTMLFormElement,
): MessageInitShape<typeof StreamConfigSchema> {
  const config: MessageInitShape<typeof StreamConfigSchema> = {
    storageClass: Number(formValue(form, "storage_class")) as StorageClass,
  };
  const retention = formValue(form, "retention");
  if (retention === "infinite")
    config.retentionPolicy = { policy: { case: "infinite", value: {} } };
  if (retention === "age") {
    const ageSecs = formValue(form, "retention_age_secs");
    if (!/^[1-9][0-9]*$/.test(ageSecs))
      throw new Error("retention age: a whole number of seconds > 0");
    config.retentionPolicy = { policy: { case: "ageSecs", value: BigInt(ageSecs) } };
  }
  const mode = Number(formValue(form, "timestamping_mode")) as TimestampingMode;
  const uncapped = formValue(form, "timestamping_uncapped");
  if (mode !== TimestampingMode.UNSPECIFIED || uncapped !== "") {
    config.timestamping = { mode, ...(uncapped !== "" && { uncapped: uncapped === "true" }) };
  }
  const minAge = formValue(form, "delete_on_empty_min_age_secs");
  if (minAge !== "") {
    if (!/^[0-9]+$/.test(minAge)) throw new Error("delete on empty: a whole number of seconds");
    config.deleteOnEmpty = { minAgeSecs: BigInt(minAge) };
  }
  return config;
}
