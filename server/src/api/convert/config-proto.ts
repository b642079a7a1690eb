/**
 * Control-plane messages of `tributary.v1` (proto/tributary/v1/config.proto) to and from the
 * domain types of `core/config.ts` and `service/context.ts`. The messages mirror the JSON shapes:
 * in a config from a client an unset field (UNSPECIFIED enum, absent message or optional) is "not
 * set here"; a reconfigure request names the fields it changes with a `FieldMask`, and a named
 * field that is unset in the config resets it (REST `null`). Values out of range (an unknown enum
 * number, a u64 above `Number.MAX_SAFE_INTEGER`, an unknown mask path) are 422 `invalid`; the
 * config rules themselves are the service's.
 */
import { create } from "@bufbuild/protobuf";
import { type FieldMask, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type BasinConfig as BasinConfigMessage,
  BasinConfigSchema,
  type BasinInfo as BasinInfoMessage,
  BasinInfoSchema,
  BasinState,
  EncryptionAlgorithm as EncryptionAlgorithmEnum,
  ProvisionResult as ProvisionResultEnum,
  type RetentionPolicy as RetentionPolicyMessage,
  StorageClass as StorageClassEnum,
  type StreamConfig as StreamConfigMessage,
  StreamConfigSchema,
  type StreamInfo as StreamInfoMessage,
  StreamInfoSchema,
  TimestampingMode as TimestampingModeEnum,
} from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import type {
  BasinConfig,
  BasinReconfiguration,
  EncryptionAlgorithm,
  RetentionPolicy,
  StorageClass,
  StreamConfig,
  StreamConfigInput,
  StreamReconfiguration,
  TimestampingMode,
} from "../../core/config.js";
import { invalid } from "../../core/errors.js";
import type { BasinInfo, ProvisionResult, StreamInfo } from "../../service/context.js";
import { u64ToNumber } from "./records-proto.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const storageClassOfEnum = new Map<number, StorageClass>([
  [StorageClassEnum.STANDARD, "standard"],
  [StorageClassEnum.EXPRESS, "express"],
]);
const storageClassEnumOf = {
  standard: StorageClassEnum.STANDARD,
  express: StorageClassEnum.EXPRESS,
} as const satisfies Record<StorageClass, StorageClassEnum>;

const timestampingModeOfEnum = new Map<number, TimestampingMode>([
  [TimestampingModeEnum.CLIENT_PREFER, "client-prefer"],
  [TimestampingModeEnum.CLIENT_REQUIRE, "client-require"],
  [TimestampingModeEnum.ARRIVAL, "arrival"],
]);
const timestampingModeEnumOf = {
  "client-prefer": TimestampingModeEnum.CLIENT_PREFER,
  "client-require": TimestampingModeEnum.CLIENT_REQUIRE,
  arrival: TimestampingModeEnum.ARRIVAL,
} as const satisfies Record<TimestampingMode, TimestampingModeEnum>;

const encryptionAlgorithmOfEnum = new Map<number, EncryptionAlgorithm>([
  [EncryptionAlgorithmEnum.AEGIS_256, "aegis-256"],
  [EncryptionAlgorithmEnum.AES_256_GCM, "aes-256-gcm"],
]);
const encryptionAlgorithmEnumOf = {
  "aegis-256": EncryptionAlgorithmEnum.AEGIS_256,
  "aes-256-gcm": EncryptionAlgorithmEnum.AES_256_GCM,
} as const satisfies Record<EncryptionAlgorithm, EncryptionAlgorithmEnum>;

const provisionResultEnumOf = {
  created: ProvisionResultEnum.CREATED,
  updated: ProvisionResultEnum.UPDATED,
  noop: ProvisionResultEnum.NOOP,
} as const satisfies Record<ProvisionResult, ProvisionResultEnum>;

/** An enum value by table; 0 (UNSPECIFIED) is `undefined`, an unknown number 422. */
function enumValueOf<T>(table: Map<number, T>, value: number, field: string): T | undefined {
  if (value === 0) return undefined;
  const known = table.get(value);
  if (known === undefined) throw invalid(`${field} has an unknown value. value=\`${value}\``);
  return known;
}

function retentionPolicyFromProto(
  message: RetentionPolicyMessage | undefined,
  field: string,
): RetentionPolicy | undefined {
  const policy = message?.policy;
  switch (policy?.case) {
    case undefined:
      return undefined;
    case "ageSecs":
      return { kind: "age", ageSecs: u64ToNumber(policy.value, `${field}.age_secs`) };
    case "infinite":
      return { kind: "infinite" };
  }
}

/** A client's stream config: unset fields stay unset (resolved by the service). */
export function streamConfigInputFromProto(
  message: StreamConfigMessage | undefined,
  field = "config",
): StreamConfigInput | undefined {
  if (message === undefined) return undefined;
  const input: Mutable<StreamConfigInput> = {};
  const storageClass = enumValueOf(
    storageClassOfEnum,
    message.storageClass,
    `${field}.storage_class`,
  );
  if (storageClass !== undefined) input.storageClass = storageClass;
  const retentionPolicy = retentionPolicyFromProto(
    message.retentionPolicy,
    `${field}.retention_policy`,
  );
  if (retentionPolicy !== undefined) input.retentionPolicy = retentionPolicy;
  if (message.timestamping !== undefined) {
    const mode = enumValueOf(
      timestampingModeOfEnum,
      message.timestamping.mode,
      `${field}.timestamping.mode`,
    );
    input.timestamping = {
      ...(mode !== undefined && { mode }),
      ...(message.timestamping.uncapped !== undefined && {
        uncapped: message.timestamping.uncapped,
      }),
    };
  }
  const minAgeSecs = message.deleteOnEmpty?.minAgeSecs;
  if (minAgeSecs !== undefined) {
    input.deleteOnEmpty = {
      minAgeSecs: u64ToNumber(minAgeSecs, `${field}.delete_on_empty.min_age_secs`),
    };
  }
  return input;
}

/** A stream config (resolved or partial) as a message; unset fields stay unset. */
export function streamConfigToProto(config: StreamConfig | StreamConfigInput): StreamConfigMessage {
  const { storageClass, retentionPolicy, timestamping, deleteOnEmpty } = config;
  return create(StreamConfigSchema, {
    storageClass: storageClass === undefined ? 0 : storageClassEnumOf[storageClass],
    ...(retentionPolicy !== undefined && {
      retentionPolicy: {
        policy:
          retentionPolicy.kind === "age"
            ? { case: "ageSecs", value: BigInt(retentionPolicy.ageSecs) }
            : { case: "infinite", value: {} },
      },
    }),
    ...(timestamping !== undefined && {
      timestamping: {
        mode: timestamping.mode === undefined ? 0 : timestampingModeEnumOf[timestamping.mode],
        ...(timestamping.uncapped !== undefined && { uncapped: timestamping.uncapped }),
      },
    }),
    ...(deleteOnEmpty !== undefined && {
      deleteOnEmpty:
        deleteOnEmpty.minAgeSecs === undefined
          ? {}
          : { minAgeSecs: BigInt(deleteOnEmpty.minAgeSecs) },
    }),
  });
}

/** A client's basin config; absent means all defaults (`undefined`). */
export function basinConfigFromProto(
  message: BasinConfigMessage | undefined,
): BasinConfig | undefined {
  if (message === undefined) return undefined;
  return {
    defaultStreamConfig:
      streamConfigInputFromProto(message.defaultStreamConfig, "config.default_stream_config") ??
      null,
    streamCipher:
      enumValueOf(encryptionAlgorithmOfEnum, message.streamCipher, "config.stream_cipher") ?? null,
    createStreamOnAppend: message.createStreamOnAppend,
    createStreamOnRead: message.createStreamOnRead,
  };
}

/** A basin config as a message. */
export function basinConfigToProto(config: BasinConfig): BasinConfigMessage {
  return create(BasinConfigSchema, {
    ...(config.defaultStreamConfig !== null && {
      defaultStreamConfig: streamConfigToProto(config.defaultStreamConfig),
    }),
    streamCipher: config.streamCipher === null ? 0 : encryptionAlgorithmEnumOf[config.streamCipher],
    createStreamOnAppend: config.createStreamOnAppend,
    createStreamOnRead: config.createStreamOnRead,
  });
}

/**
 * The stream PATCH that `mask` paths (relative to a stream config; "" names all of it) select
 * from `message`. A message path replaces the whole sub-config; a leaf path changes one field.
 */
function streamReconfigurationOf(
  message: StreamConfigMessage | undefined,
  paths: readonly string[],
  prefix: string,
): StreamReconfiguration {
  const change: Mutable<StreamReconfiguration> = {};
  const input = streamConfigInputFromProto(message, prefix === "" ? "config" : `config.${prefix}`);
  const timestamping = (): Mutable<NonNullable<StreamReconfiguration["timestamping"]>> =>
    typeof change.timestamping === "object" && change.timestamping !== null
      ? change.timestamping
      : (change.timestamping = {});
  for (const path of paths) {
    switch (path) {
      case "":
        change.storageClass = input?.storageClass ?? null;
        change.retentionPolicy = input?.retentionPolicy ?? null;
        change.timestamping = {
          mode: input?.timestamping?.mode ?? null,
          uncapped: input?.timestamping?.uncapped ?? null,
        };
        change.deleteOnEmpty = { minAgeSecs: input?.deleteOnEmpty?.minAgeSecs ?? null };
        break;
      case "storage_class":
        change.storageClass = input?.storageClass ?? null;
        break;
      case "retention_policy":
        change.retentionPolicy = input?.retentionPolicy ?? null;
        break;
      case "timestamping":
        change.timestamping =
          message?.timestamping === undefined
            ? null
            : {
                mode: input?.timestamping?.mode ?? null,
                uncapped: input?.timestamping?.uncapped ?? null,
              };
        break;
      case "timestamping.mode":
        timestamping().mode = input?.timestamping?.mode ?? null;
        break;
      case "timestamping.uncapped":
        timestamping().uncapped = input?.timestamping?.uncapped ?? null;
        break;
      case "delete_on_empty":
        change.deleteOnEmpty =
          message?.deleteOnEmpty === undefined
            ? null
            : { minAgeSecs: input?.deleteOnEmpty?.minAgeSecs ?? null };
        break;
      case "delete_on_empty.min_age_secs":
        change.deleteOnEmpty = { minAgeSecs: input?.deleteOnEmpty?.minAgeSecs ?? null };
        break;
      default:
        throw invalid(`unknown field mask path. path=\`${prefix}${path}\``);
    }
  }
  return change;
}

/** The stream PATCH of a `ReconfigureStream` request. */
export function streamReconfigurationFromProto(
  message: StreamConfigMessage | undefined,
  mask: FieldMask | undefined,
): StreamReconfiguration {
  return streamReconfigurationOf(message, mask?.paths ?? [], "");
}

const defaultStreamConfigPath = "default_stream_config";

/** The basin PATCH of a `ReconfigureBasin` request. */
export function basinReconfigurationFromProto(
  message: BasinConfigMessage | undefined,
  mask: FieldMask | undefined,
): BasinReconfiguration {
  const change: Mutable<BasinReconfiguration> = {};
  const streamPaths: string[] = [];
  for (const path of mask?.paths ?? []) {
    switch (path) {
      case defaultStreamConfigPath:
        change.defaultStreamConfig = null;
        if (message?.defaultStreamConfig !== undefined) streamPaths.push("");
        break;
      case "stream_cipher":
        change.streamCipher =
          enumValueOf(
            encryptionAlgorithmOfEnum,
            message?.streamCipher ?? 0,
            "config.stream_cipher",
          ) ?? null;
        break;
      case "create_stream_on_append":
        change.createStreamOnAppend = message?.createStreamOnAppend ?? false;
        break;
      case "create_stream_on_read":
        change.createStreamOnRead = message?.createStreamOnRead ?? false;
        break;
      default:
        if (!path.startsWith(`${defaultStreamConfigPath}.`)) {
          throw invalid(`unknown field mask path. path=\`${path}\``);
        }
        streamPaths.push(path.slice(defaultStreamConfigPath.length + 1));
    }
  }
  if (streamPaths.length > 0) {
    change.defaultStreamConfig = streamReconfigurationOf(
      message?.defaultStreamConfig,
      streamPaths,
      `${defaultStreamConfigPath}.`,
    );
  }
  return change;
}

/** A basin as listed. */
export function basinInfoToProto(info: BasinInfo): BasinInfoMessage {
  return create(BasinInfoSchema, {
    name: info.name,
    createdAt: timestampFromMs(info.createdAtMs),
    ...(info.deletedAtMs !== null && { deletedAt: timestampFromMs(info.deletedAtMs) }),
    state: info.deletedAtMs === null ? BasinState.ACTIVE : BasinState.DELETING,
  });
}

/** A stream as listed. */
export function streamInfoToProto(info: StreamInfo): StreamInfoMessage {
  const cipher =
    info.cipher === null
      ? undefined
      : encryptionAlgorithmEnumOf[info.cipher as EncryptionAlgorithm];
  return create(StreamInfoSchema, {
    name: info.name,
    createdAt: timestampFromMs(info.createdAtMs),
    ...(info.deletedAtMs !== null && { deletedAt: timestampFromMs(info.deletedAtMs) }),
    cipher: cipher ?? 0,
  });
}

/** The `S2-Provision-Result` of a create or ensure, as an enum. */
export function provisionResultToProto(result: ProvisionResult): ProvisionResultEnum {
  return provisionResultEnumOf[result];
}
