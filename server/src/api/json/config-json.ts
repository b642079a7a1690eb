/**
 * Stream and basin configuration in S2's JSON (S2-API.md §4.2, §6.2, §6.3) ↔ the domain types of
 * `core/config.ts`. Parsing follows lite's serde types (s2 `api/src/v1/config.rs`): shape errors
 * are 400 `bad_json` (`json-body.ts`), ranges are left to the domain validators, which the service
 * runs and answers 422 `invalid` (retention age 0, integers beyond 2^53 - 1). Rendering emits
 * every key, with `null` for what is unset, in lite's field order.
 *
 * Three input shapes, as in lite:
 * - `StreamConfig` (create/ensure bodies, basin `default_stream_config`): each key absent or `null`
 *   = not set; `delete_on_empty.min_age_secs` defaults to 0 and may not be `null`.
 * - `StreamReconfiguration` (PATCH): each key, nested ones included, absent = keep, `null` =
 *   reset, value = set.
 * - `BasinConfig` / `BasinReconfiguration`: the booleans may be absent but never `null` (400).
 */
import {
  type BasinConfig,
  type BasinReconfiguration,
  type DeleteOnEmptyReconfiguration,
  type EncryptionAlgorithm,
  isEncryptionAlgorithm,
  isStorageClass,
  isTimestampingMode,
  type RetentionPolicy,
  type StorageClass,
  type StreamConfig,
  type StreamConfigInput,
  type StreamReconfiguration,
  type TimestampingMode,
  type TimestampingReconfiguration,
} from "../../core/config.js";
import {
  fieldPath,
  jsonFieldError,
  readBoolean,
  readEnum,
  readNonNull,
  readObject,
  readOptional,
  readPatch,
  readU64,
} from "./json-body.js";

// Wire shapes (snake_case, as lite serializes them).

export type RetentionPolicyJson =
  | { readonly age: number }
  | { readonly infinite: Readonly<Record<string, never>> };

/** A resolved `StreamConfig` as `GET`/`PATCH /streams/{stream}` return it: every field set. */
export interface StreamConfigJson {
  readonly storage_class: StorageClass;
  readonly retention_policy: RetentionPolicyJson;
  readonly timestamping: { readonly mode: TimestampingMode; readonly uncapped: boolean };
  readonly delete_on_empty: { readonly min_age_secs: number };
}

/** A partial `StreamConfig` (basin defaults): unset fields are `null`. */
export interface OptionalStreamConfigJson {
  readonly storage_class: StorageClass | null;
  readonly retention_policy: RetentionPolicyJson | null;
  readonly timestamping: {
    readonly mode: TimestampingMode | null;
    readonly uncapped: boolean | null;
  } | null;
  readonly delete_on_empty: { readonly min_age_secs: number } | null;
}

/** A `BasinConfig` as `GET`/`PATCH /basins/{basin}` return it. */
export interface BasinConfigJson {
  readonly default_stream_config: OptionalStreamConfigJson | null;
  readonly stream_cipher: EncryptionAlgorithm | null;
  readonly create_stream_on_append: boolean;
  readonly create_stream_on_read: boolean;
}

// Leaf readers.

function readStorageClass(value: unknown, field: string): StorageClass {
  return readEnum(value, field, isStorageClass, '"standard" or "express"');
}

function readTimestampingMode(value: unknown, field: string): TimestampingMode {
  return readEnum(
    value,
    field,
    isTimestampingMode,
    '"client-prefer", "client-require" or "arrival"',
  );
}

function readEncryptionAlgorithm(value: unknown, field: string): EncryptionAlgorithm {
  return readEnum(value, field, isEncryptionAlgorithm, '"aegis-256" or "aes-256-gcm"');
}

/**
 * A retention policy: serde's externally tagged enum, an object with exactly one key, `age` (u64
 * seconds) or `infinite` (an object, its fields ignored). Age 0 passes here and is 422 later.
 */
export function parseRetentionPolicy(value: unknown, field: string): RetentionPolicy {
  const object = readObject(value, field);
  const keys = Object.keys(object);
  const expected = 'an object with exactly one key, "age" or "infinite"';
  if (keys.length !== 1) throw jsonFieldError(field, expected);
  const key = keys[0]!;
  if (key === "age") return { kind: "age", ageSecs: readU64(object[key], fieldPath(field, key)) };
  if (key === "infinite") {
    readObject(object[key], fieldPath(field, key));
    return { kind: "infinite" };
  }
  throw jsonFieldError(field, expected);
}

// Stream configs.

/** A `StreamConfig` input (create/ensure body, basin defaults) at `field` (`""` = the root). */
export function parseStreamConfigInput(value: unknown, field: string): StreamConfigInput {
  const object = readObject(value, field);
  return {
    storageClass: readOptional(object, "storage_class", field, readStorageClass),
    retentionPolicy: readOptional(object, "retention_policy", field, parseRetentionPolicy),
    timestamping: readOptional(object, "timestamping", field, (nested, at) => {
      const timestamping = readObject(nested, at);
      return {
        mode: readOptional(timestamping, "mode", at, readTimestampingMode),
        uncapped: readOptional(timestamping, "uncapped", at, readBoolean),
      };
    }),
    deleteOnEmpty: readOptional(object, "delete_on_empty", field, (nested, at) => ({
      // `#[serde(default)] min_age_secs: u64`: absent is 0, `null` is a type error.
      minAgeSecs: readNonNull(readObject(nested, at), "min_age_secs", at, readU64) ?? 0,
    })),
  };
}

/** A `StreamReconfiguration` (stream PATCH body, or the basin PATCH's `default_stream_config`). */
export function parseStreamReconfiguration(value: unknown, field: string): StreamReconfiguration {
  const object = readObject(value, field);
  return {
    storageClass: readPatch(object, "storage_class", field, readStorageClass),
    retentionPolicy: readPatch(object, "retention_policy", field, parseRetentionPolicy),
    timestamping: readPatch(
      object,
      "timestamping",
      field,
      (nested, at): TimestampingReconfiguration => {
        const timestamping = readObject(nested, at);
        return {
          mode: readPatch(timestamping, "mode", at, readTimestampingMode),
          uncapped: readPatch(timestamping, "uncapped", at, readBoolean),
        };
      },
    ),
    deleteOnEmpty: readPatch(
      object,
      "delete_on_empty",
      field,
      (nested, at): DeleteOnEmptyReconfiguration => ({
        minAgeSecs: readPatch(readObject(nested, at), "min_age_secs", at, readU64),
      }),
    ),
  };
}

export function renderRetentionPolicy(policy: RetentionPolicy): RetentionPolicyJson {
  return policy.kind === "age" ? { age: policy.ageSecs } : { infinite: {} };
}

/** A resolved config, every field filled in (S2-API.md §6.2). */
export function renderStreamConfig(config: StreamConfig): StreamConfigJson {
  return {
    storage_class: config.storageClass,
    retention_policy: renderRetentionPolicy(config.retentionPolicy),
    timestamping: { mode: config.timestamping.mode, uncapped: config.timestamping.uncapped },
    delete_on_empty: { min_age_secs: config.deleteOnEmpty.minAgeSecs },
  };
}

/** A partial config (basin defaults): unset fields and nested objects that set nothing are `null`. */
export function renderStreamConfigInput(input: StreamConfigInput): OptionalStreamConfigJson {
  const { timestamping, deleteOnEmpty, retentionPolicy } = input;
  const hasTimestamping =
    timestamping !== undefined &&
    (timestamping.mode !== undefined || timestamping.uncapped !== undefined);
  return {
    storage_class: input.storageClass ?? null,
    retention_policy: retentionPolicy === undefined ? null : renderRetentionPolicy(retentionPolicy),
    timestamping: hasTimestamping
      ? { mode: timestamping.mode ?? null, uncapped: timestamping.uncapped ?? null }
      : null,
    delete_on_empty:
      deleteOnEmpty?.minAgeSecs === undefined ? null : { min_age_secs: deleteOnEmpty.minAgeSecs },
  };
}

// Basin configs.

/**
 * A `BasinConfig` (the `config` of a basin create/ensure body). Absent booleans are `false`,
 * absent or `null` defaults and cipher are `null`.
 */
export function parseBasinConfig(value: unknown, field: string): BasinConfig {
  const object = readObject(value, field);
  return {
    defaultStreamConfig:
      readOptional(object, "default_stream_config", field, parseStreamConfigInput) ?? null,
    streamCipher: readOptional(object, "stream_cipher", field, readEncryptionAlgorithm) ?? null,
    createStreamOnAppend:
      readNonNull(object, "create_stream_on_append", field, readBoolean) ?? false,
    createStreamOnRead: readNonNull(object, "create_stream_on_read", field, readBoolean) ?? false,
  };
}

/**
 * A `BasinReconfiguration` (basin PATCH body). `default_stream_config` and `stream_cipher` take
 * absent/`null`/value; the two booleans take absent or a boolean (lite rejects `null`, §4.2).
 */
export function parseBasinReconfiguration(value: unknown, field: string): BasinReconfiguration {
  const object = readObject(value, field);
  return {
    defaultStreamConfig: readPatch(
      object,
      "default_stream_config",
      field,
      parseStreamReconfiguration,
    ),
    streamCipher: readPatch(object, "stream_cipher", field, readEncryptionAlgorithm),
    createStreamOnAppend: readNonNull(object, "create_stream_on_append", field, readBoolean),
    createStreamOnRead: readNonNull(object, "create_stream_on_read", field, readBoolean),
  };
}

/** A basin config as stored: `default_stream_config` is `null` when it sets nothing (§6.2). */
export function renderBasinConfig(config: BasinConfig): BasinConfigJson {
  const defaults =
    config.defaultStreamConfig === null
      ? null
      : renderStreamConfigInput(config.defaultStreamConfig);
  const isDefaultsEmpty =
    defaults === null || Object.values(defaults).every((value) => value === null);
  return {
    default_stream_config: isDefaultsEmpty ? null : defaults,
    stream_cipher: config.streamCipher,
    create_stream_on_append: config.createStreamOnAppend,
    create_stream_on_read: config.createStreamOnRead,
  };
}
