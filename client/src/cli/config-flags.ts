/**
 * Stream and basin config flags, named as the S2 CLI names them, mapped onto the `tributary.v1`
 * config messages and the `FieldMask` paths a reconfigure names (server:
 * `api/convert/config-proto.ts`); and configs back to the S2 REST JSON shape for printing.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type BasinConfig,
  BasinConfigSchema,
  EncryptionAlgorithm,
  StorageClass,
  type StreamConfig,
  StreamConfigSchema,
  TimestampingMode,
} from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import {
  booleanFlag,
  type FlagSpecs,
  type ParsedArgs,
  parseChoice,
  parseDurationSecs,
  stringFlag,
} from "./args.js";

const storageClassByName = {
  standard: StorageClass.STANDARD,
  express: StorageClass.EXPRESS,
} as const;
const timestampingModeByName = {
  "client-prefer": TimestampingMode.CLIENT_PREFER,
  "client-require": TimestampingMode.CLIENT_REQUIRE,
  arrival: TimestampingMode.ARRIVAL,
} as const;
const cipherByName = {
  "aegis-256": EncryptionAlgorithm.AEGIS_256,
  "aes-256-gcm": EncryptionAlgorithm.AES_256_GCM,
} as const;

type Names<T> = (keyof T & string)[];
const storageClassNames = Object.keys(storageClassByName) as Names<typeof storageClassByName>;
const timestampingModeNames = Object.keys(timestampingModeByName) as Names<
  typeof timestampingModeByName
>;
const cipherNames = Object.keys(cipherByName) as Names<typeof cipherByName>;

/** Stream config flags: the S2 CLI's names; `prefix` gives the basin's `--default-stream-*`. */
function streamConfigFlagSpecs(prefix: string): FlagSpecs {
  return {
    [`${prefix}storage-class`]: { type: "string" },
    [`${prefix}retention-policy`]: { type: "string" },
    [`${prefix}timestamping-mode`]: { type: "string" },
    [`${prefix}timestamping-uncapped`]: { type: "boolean" },
    [`${prefix}delete-on-empty-min-age`]: { type: "string" },
  };
}

/** Flags of create-stream and reconfigure-stream. */
export const streamConfigFlags: FlagSpecs = streamConfigFlagSpecs("");

/** Flags of create-basin and reconfigure-basin (stream defaults with or without the prefix). */
export const basinConfigFlags: FlagSpecs = {
  ...streamConfigFlagSpecs(""),
  ...streamConfigFlagSpecs("default-stream-"),
  "stream-cipher": { type: "string" },
  "create-stream-on-append": { type: "boolean" },
  "create-stream-on-read": { type: "boolean" },
};

/** Help lines of the stream config flags. */
export const streamConfigFlagsHelp = [
  "  --storage-class standard|express",
  "  --retention-policy 7d|infinite       how long records are kept (s, m, h, d, w units)",
  "  --timestamping-mode client-prefer|client-require|arrival",
  "  --timestamping-uncapped [true|false] allow client timestamps ahead of arrival time",
  "  --delete-on-empty-min-age 1h         delete the stream once empty this long (0 = never)",
];

/** Help lines of the basin config flags. */
export const basinConfigFlagsHelp = [
  "  default stream config (also spelled --default-stream-<flag>):",
  ...streamConfigFlagsHelp.map((line) => `  ${line}`),
  "  --stream-cipher aegis-256|aes-256-gcm  encrypt streams created from now on",
  "  --create-stream-on-append [true|false]",
  "  --create-stream-on-read [true|false]",
];

/** The plain-object form of a stream config init (fields assignable one by one). */
type StreamConfigInit = Exclude<MessageInitShape<typeof StreamConfigSchema>, StreamConfig>;

/** A stream config with the flags that were given, and their mask paths. */
export interface StreamConfigChange {
  readonly config: StreamConfig;
  readonly paths: readonly string[];
}

/** The stream config the flags (with `prefix`) set, and the paths they name. */
export function streamConfigFromFlags(args: ParsedArgs, prefix = ""): StreamConfigChange {
  const init: StreamConfigInit = {};
  const paths: string[] = [];
  const flag = (name: string): string | undefined =>
    stringFlag(args, `${prefix}${name}`) ?? (prefix === "" ? undefined : stringFlag(args, name));
  const storageClass = flag("storage-class");
  if (storageClass !== undefined) {
    init.storageClass =
      storageClassByName[parseChoice(storageClass, storageClassNames, "--storage-class")];
    paths.push("storage_class");
  }
  const retention = flag("retention-policy");
  if (retention !== undefined) {
    init.retentionPolicy = {
      policy:
        retention === "infinite"
          ? { case: "infinite", value: {} }
          : {
              case: "ageSecs",
              value: BigInt(parseDurationSecs(retention, "--retention-policy")),
            },
    };
    paths.push("retention_policy");
  }
  const mode = flag("timestamping-mode");
  const uncapped =
    booleanFlag(args, `${prefix}timestamping-uncapped`) ??
    (prefix === "" ? undefined : booleanFlag(args, "timestamping-uncapped"));
  if (mode !== undefined || uncapped !== undefined) {
    init.timestamping = {
      mode:
        mode === undefined
          ? TimestampingMode.UNSPECIFIED
          : timestampingModeByName[parseChoice(mode, timestampingModeNames, "--timestamping-mode")],
      ...(uncapped !== undefined && { uncapped }),
    };
    if (mode !== undefined) paths.push("timestamping.mode");
    if (uncapped !== undefined) paths.push("timestamping.uncapped");
  }
  const minAge = flag("delete-on-empty-min-age");
  if (minAge !== undefined) {
    init.deleteOnEmpty = {
      minAgeSecs: BigInt(parseDurationSecs(minAge, "--delete-on-empty-min-age")),
    };
    paths.push("delete_on_empty.min_age_secs");
  }
  return { config: create(StreamConfigSchema, init), paths };
}

/** A basin config with the flags that were given, and their mask paths. */
export interface BasinConfigChange {
  readonly config: BasinConfig;
  readonly paths: readonly string[];
}

/** The basin config the flags set, and the paths they name. */
export function basinConfigFromFlags(args: ParsedArgs): BasinConfigChange {
  const stream = streamConfigFromFlags(args, "default-stream-");
  const config = create(BasinConfigSchema, {});
  const paths = stream.paths.map((path) => `default_stream_config.${path}`);
  if (stream.paths.length > 0) config.defaultStreamConfig = stream.config;
  const cipher = stringFlag(args, "stream-cipher");
  if (cipher !== undefined) {
    config.streamCipher = cipherByName[parseChoice(cipher, cipherNames, "--stream-cipher")];
    paths.push("stream_cipher");
  }
  const onAppend = booleanFlag(args, "create-stream-on-append");
  if (onAppend !== undefined) {
    config.createStreamOnAppend = onAppend;
    paths.push("create_stream_on_append");
  }
  const onRead = booleanFlag(args, "create-stream-on-read");
  if (onRead !== undefined) {
    config.createStreamOnRead = onRead;
    paths.push("create_stream_on_read");
  }
  return { config, paths };
}

function nameOf<T extends Record<string, number>>(table: T, value: number): string | null {
  for (const [name, number] of Object.entries(table)) if (number === value) return name;
  return null;
}

/** A stream config in the S2 REST JSON shape; unset fields are `null`. */
export function streamConfigToJson(config: StreamConfig | undefined): Record<string, unknown> {
  const policy = config?.retentionPolicy?.policy;
  const timestamping = config?.timestamping;
  return {
    storage_class: nameOf(storageClassByName, config?.storageClass ?? 0),
    retention_policy:
      policy?.case === "ageSecs"
        ? { age: Number(policy.value) }
        : policy?.case === "infinite"
          ? { infinite: {} }
          : null,
    timestamping:
      timestamping === undefined
        ? null
        : {
            mode: nameOf(timestampingModeByName, timestamping.mode),
            uncapped: timestamping.uncapped ?? null,
          },
    delete_on_empty:
      config?.deleteOnEmpty === undefined
        ? null
        : { min_age_secs: config.deleteOnEmpty.minAgeSecs ?? null },
  };
}

/** A basin config in the S2 REST JSON shape. */
export function basinConfigToJson(config: BasinConfig | undefined): Record<string, unknown> {
  return {
    default_stream_config:
      config?.defaultStreamConfig === undefined
        ? null
        : streamConfigToJson(config.defaultStreamConfig),
    stream_cipher: nameOf(cipherByName, config?.streamCipher ?? 0),
    create_stream_on_append: config?.createStreamOnAppend ?? false,
    create_stream_on_read: config?.createStreamOnRead ?? false,
  };
}

const durationUnits = [
  ["w", 604_800],
  ["d", 86_400],
  ["h", 3600],
  ["m", 60],
] as const;

/** Seconds in the largest unit that divides them: `604800` → `1w`, `5400` → `90m`. */
export function formatDurationSecs(secs: number): string {
  for (const [unit, unitSecs] of durationUnits) {
    if (secs > 0 && secs % unitSecs === 0) return `${secs / unitSecs}${unit}`;
  }
  return `${secs}s`;
}

/**
 * A config's JSON as `key value` rows with dotted keys (`timestamping.mode`); a retention
 * policy reads as a duration in its largest whole unit (`7d`, `90m`) or `infinite`.
 */
export function configRows(json: Record<string, unknown>, prefix = ""): string[][] {
  const rows: string[][] = [];
  for (const [key, value] of Object.entries(json)) {
    const name = `${prefix}${key}`;
    if (key === "retention_policy" && value !== null && typeof value === "object") {
      const age = (value as { age?: number }).age;
      rows.push([name, age === undefined ? "infinite" : formatDurationSecs(age)]);
    } else if (value !== null && typeof value === "object") {
      rows.push(...configRows(value as Record<string, unknown>, `${name}.`));
    } else {
      rows.push([name, value === null ? "-" : String(value)]);
    }
  }
  return rows;
}
