/**
 * Stream and basin configuration as the engine sees it (S2-API.md §4.2, §6.2, §6.3), after the
 * API has parsed JSON or Protobuf into these types (null → undefined in inputs, snake_case →
 * camelCase, u64 → safe integer). Three tiers, as in S2 common/src/types/config.rs:
 *
 * - resolved (`StreamConfig`): every field set; what a stream stores, materialized at creation;
 * - input (`StreamConfigInput`): any field may be unset (`undefined`), falling back to the basin's
 *   `defaultStreamConfig` and then to `systemStreamConfigDefaults`, each nested field on its own;
 * - reconfiguration (`StreamReconfiguration`, `BasinReconfiguration`): PATCH bodies where a key is
 *   absent (`undefined`, keep), `null` (reset) or a value (set).
 *
 * Functions here are pure. Validation returns a reason for a 422 `invalid`; the results of
 * `resolveStreamConfig` and `reconfigureStream` are asserted valid, so a caller that skipped
 * validation is caught. The `encode*`/`decode*` pairs are the persisted (WAL) form.
 */
import { assert } from "./assert.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Storage class for recent writes (§4.2). Stored and echoed; no behavioural effect (§6.2). */
export type StorageClass = "standard" | "express";

/**
 * How long records are kept (§4.2): `age` in seconds (> 0, a safe integer), or until trimmed.
 * Enforced from write time, so a change only affects records written afterwards (§6.2).
 */
export type RetentionPolicy =
  | { readonly kind: "age"; readonly ageSecs: number }
  | { readonly kind: "infinite" };

/** How append timestamps are chosen (§4.2, §11.10). */
export type TimestampingMode = "client-prefer" | "client-require" | "arrival";

/** Stream cipher of a basin's new streams (§4.2, §6.7); fixed for each stream's life. */
export type EncryptionAlgorithm = "aegis-256" | "aes-256-gcm";

const storageClassNames = { standard: true, express: true } satisfies Record<StorageClass, true>;
const timestampingModeNames = {
  "client-prefer": true,
  "client-require": true,
  arrival: true,
} satisfies Record<TimestampingMode, true>;
const encryptionAlgorithmNames = {
  "aegis-256": true,
  "aes-256-gcm": true,
} satisfies Record<EncryptionAlgorithm, true>;

/** Whether `value` is a storage class; for parsers of untrusted input. */
export function isStorageClass(value: unknown): value is StorageClass {
  return typeof value === "string" && Object.hasOwn(storageClassNames, value);
}

/** Whether `value` is a timestamping mode; for parsers of untrusted input. */
export function isTimestampingMode(value: unknown): value is TimestampingMode {
  return typeof value === "string" && Object.hasOwn(timestampingModeNames, value);
}

/** Whether `value` is an encryption algorithm; for parsers of untrusted input. */
export function isEncryptionAlgorithm(value: unknown): value is EncryptionAlgorithm {
  return typeof value === "string" && Object.hasOwn(encryptionAlgorithmNames, value);
}

/** Resolved timestamping settings. */
export interface TimestampingConfig {
  readonly mode: TimestampingMode;
  /** Whether client timestamps may exceed the arrival time (otherwise they are capped). */
  readonly uncapped: boolean;
}

/** Resolved delete-on-empty settings (§6.6). */
export interface DeleteOnEmptyConfig {
  /** Minimum age of an empty stream before it is deleted; 0 disables delete-on-empty. */
  readonly minAgeSecs: number;
}

/**
 * A stream's effective configuration, every field set (§6.2). Lite materializes it at creation,
 * so later changes to basin defaults do not affect existing streams.
 */
export interface StreamConfig {
  readonly storageClass: StorageClass;
  readonly retentionPolicy: RetentionPolicy;
  readonly timestamping: TimestampingConfig;
  readonly deleteOnEmpty: DeleteOnEmptyConfig;
}

/** Timestamping settings of a `StreamConfigInput`; each field resolves on its own. */
export interface TimestampingConfigInput {
  readonly mode?: TimestampingMode | undefined;
  readonly uncapped?: boolean | undefined;
}

/** Delete-on-empty settings of a `StreamConfigInput`. */
export interface DeleteOnEmptyConfigInput {
  readonly minAgeSecs?: number | undefined;
}

/**
 * A partial stream config (§4.2): the body of a stream create/ensure and a basin's
 * `defaultStreamConfig`. `undefined` means "not set here": the field falls back per §6.2.
 */
export interface StreamConfigInput {
  readonly storageClass?: StorageClass | undefined;
  readonly retentionPolicy?: RetentionPolicy | undefined;
  readonly timestamping?: TimestampingConfigInput | undefined;
  readonly deleteOnEmpty?: DeleteOnEmptyConfigInput | undefined;
}

/** Timestamping part of a PATCH: each field absent (keep), `null` (reset) or a value. */
export interface TimestampingReconfiguration {
  readonly mode?: TimestampingMode | null | undefined;
  readonly uncapped?: boolean | null | undefined;
}

/** Delete-on-empty part of a PATCH: absent (keep), `null` (reset) or a value. */
export interface DeleteOnEmptyReconfiguration {
  readonly minAgeSecs?: number | null | undefined;
}

/**
 * A stream PATCH body (§4.2, §6.3). A key that is `undefined` keeps the field; `null` resets it
 * (to the current basin default when applied to a stream, to "unset" when applied to basin
 * defaults); an object for a nested field patches its sub-fields the same way.
 */
export interface StreamReconfiguration {
  readonly storageClass?: StorageClass | null | undefined;
  readonly retentionPolicy?: RetentionPolicy | null | undefined;
  readonly timestamping?: TimestampingReconfiguration | null | undefined;
  readonly deleteOnEmpty?: DeleteOnEmptyReconfiguration | null | undefined;
}

/** A basin's configuration as stored and returned by `GET /basins/{basin}` (§4.2, §6.2). */
export interface BasinConfig {
  /**
   * Defaults for streams created afterwards; `null` when nothing is set (never an empty object,
   * see `normalizeBasinConfig`), so that GET shows `null` as lite does.
   */
  readonly defaultStreamConfig: StreamConfigInput | null;
  /** Cipher given to new streams; `null` = plaintext. */
  readonly streamCipher: EncryptionAlgorithm | null;
  /** Appends to a missing stream create it with the basin defaults (§6.7). */
  readonly createStreamOnAppend: boolean;
  /** Reads and check-tail on a missing stream create it (§6.7). */
  readonly createStreamOnRead: boolean;
}

/**
 * A basin PATCH body (§4.2, §6.3). `undefined` keeps a field. `defaultStreamConfig: null` clears
 * all defaults; an object patches them (an inner `null` unsets that default). `streamCipher: null`
 * clears the cipher. The booleans take only a boolean (lite rejects `null` with 400 `bad_json`).
 */
export interface BasinReconfiguration {
  readonly defaultStreamConfig?: StreamReconfiguration | null | undefined;
  readonly streamCipher?: EncryptionAlgorithm | null | undefined;
  readonly createStreamOnAppend?: boolean | undefined;
  readonly createStreamOnRead?: boolean | undefined;
}

/**
 * What an unset field resolves to when neither the stream nor the basin sets it (§4.2, §6.2):
 * express, 7-day retention, client-prefer, capped, delete-on-empty off. Deeply frozen.
 */
export const systemStreamConfigDefaults: StreamConfig = Object.freeze({
  storageClass: "express",
  retentionPolicy: Object.freeze({ kind: "age", ageSecs: 7 * 24 * 60 * 60 }),
  timestamping: Object.freeze({ mode: "client-prefer", uncapped: false }),
  deleteOnEmpty: Object.freeze({ minAgeSecs: 0 }),
});

/** A new basin's configuration when the request sets nothing (§4.2). */
export function defaultBasinConfig(): BasinConfig {
  return {
    defaultStreamConfig: null,
    streamCipher: null,
    createStreamOnAppend: false,
    createStreamOnRead: false,
  };
}

function copyRetentionPolicy(policy: RetentionPolicy): RetentionPolicy {
  return policy.kind === "age" ? { kind: "age", ageSecs: policy.ageSecs } : { kind: "infinite" };
}

/**
 * The effective config of a stream created with `input` in a basin whose defaults are
 * `basinDefaults` (§6.2): per field, the stream's value, else the basin default, else the system
 * default; `timestamping.mode`, `timestamping.uncapped` and `deleteOnEmpty.minAgeSecs` resolve
 * independently. Also serves ensure (PUT), which resolves the body against *current* defaults.
 */
export function resolveStreamConfig(
  input: StreamConfigInput | undefined,
  basinDefaults: StreamConfigInput | null,
): StreamConfig {
  const basin = basinDefaults ?? undefined;
  const system = systemStreamConfigDefaults;
  const config: StreamConfig = {
    storageClass: input?.storageClass ?? basin?.storageClass ?? system.storageClass,
    retentionPolicy: copyRetentionPolicy(
      input?.retentionPolicy ?? basin?.retentionPolicy ?? system.retentionPolicy,
    ),
    timestamping: {
      mode: input?.timestamping?.mode ?? basin?.timestamping?.mode ?? system.timestamping.mode,
      uncapped:
        input?.timestamping?.uncapped ??
        basin?.timestamping?.uncapped ??
        system.timestamping.uncapped,
    },
    deleteOnEmpty: {
      minAgeSecs:
        input?.deleteOnEmpty?.minAgeSecs ??
        basin?.deleteOnEmpty?.minAgeSecs ??
        system.deleteOnEmpty.minAgeSecs,
    },
  };
  assertValidStreamConfig(config);
  return config;
}

/** PATCH rule for one field: absent keeps `current`, `null` takes `reset`, a value replaces. */
function patchField<T>(change: T | null | undefined, current: T, reset: T): T {
  if (change === undefined) return current;
  if (change === null) return reset;
  return change;
}

/**
 * Applies a stream PATCH (§6.3) to a stream's stored config. `null` resets a field to the
 * *current* basin default, else the system default (§11.19: configs are snapshots, and a reset
 * re-resolves against the defaults of that moment). `{timestamping: {mode: "arrival"}}` keeps
 * `uncapped`; `timestamping: null` resets both sub-fields.
 */
export function reconfigureStream(
  current: StreamConfig,
  change: StreamReconfiguration,
  basinDefaults: StreamConfigInput | null,
): StreamConfig {
  const reset = resolveStreamConfig(undefined, basinDefaults);
  const { timestamping, deleteOnEmpty } = change;
  const config: StreamConfig = {
    storageClass: patchField(change.storageClass, current.storageClass, reset.storageClass),
    retentionPolicy: copyRetentionPolicy(
      patchField(change.retentionPolicy, current.retentionPolicy, reset.retentionPolicy),
    ),
    timestamping:
      timestamping === undefined || timestamping === null
        ? { ...patchField(timestamping, current.timestamping, reset.timestamping) }
        : {
            mode: patchField(timestamping.mode, current.timestamping.mode, reset.timestamping.mode),
            uncapped: patchField(
              timestamping.uncapped,
              current.timestamping.uncapped,
              reset.timestamping.uncapped,
            ),
          },
    deleteOnEmpty:
      deleteOnEmpty === undefined || deleteOnEmpty === null
        ? { ...patchField(deleteOnEmpty, current.deleteOnEmpty, reset.deleteOnEmpty) }
        : {
            minAgeSecs: patchField(
              deleteOnEmpty.minAgeSecs,
              current.deleteOnEmpty.minAgeSecs,
              reset.deleteOnEmpty.minAgeSecs,
            ),
          },
  };
  assertValidStreamConfig(config);
  return config;
}

/** PATCH rule for an optional field: absent keeps, `null` unsets, a value replaces. */
function patchOptional<T>(change: T | null | undefined, current: T | undefined): T | undefined {
  if (change === undefined) return current;
  if (change === null) return undefined;
  return change;
}

/**
 * Applies a stream PATCH to a basin's default stream config (§6.3 `PATCH /basins`): `null` unsets
 * a default (so it falls back to the system default), nested objects patch sub-fields. Returns
 * `null` when no default remains set, the stored form of "no basin defaults".
 */
export function applyStreamReconfigurationToInput(
  defaults: StreamConfigInput | null,
  change: StreamReconfiguration,
): StreamConfigInput | null {
  const base = defaults ?? {};
  const { timestamping, deleteOnEmpty } = change;
  const patched: StreamConfigInput = {
    storageClass: patchOptional(change.storageClass, base.storageClass),
    retentionPolicy: patchOptional(change.retentionPolicy, base.retentionPolicy),
    timestamping:
      timestamping === undefined || timestamping === null
        ? patchOptional(timestamping, base.timestamping)
        : {
            mode: patchOptional(timestamping.mode, base.timestamping?.mode),
            uncapped: patchOptional(timestamping.uncapped, base.timestamping?.uncapped),
          },
    deleteOnEmpty:
      deleteOnEmpty === undefined || deleteOnEmpty === null
        ? patchOptional(deleteOnEmpty, base.deleteOnEmpty)
        : { minAgeSecs: patchOptional(deleteOnEmpty.minAgeSecs, base.deleteOnEmpty?.minAgeSecs) },
  };
  const normalized = normalizeStreamConfigInput(patched);
  return isEmptyStreamConfigInput(normalized) ? null : normalized;
}

/**
 * Applies a basin PATCH (§6.3). Only streams created afterwards see new defaults. The result is
 * normalized (`defaultStreamConfig` is `null` when nothing is set).
 */
export function reconfigureBasin(current: BasinConfig, change: BasinReconfiguration): BasinConfig {
  const { defaultStreamConfig } = change;
  return normalizeBasinConfig({
    defaultStreamConfig:
      defaultStreamConfig === undefined
        ? current.defaultStreamConfig
        : defaultStreamConfig === null
          ? null
          : applyStreamReconfigurationToInput(current.defaultStreamConfig, defaultStreamConfig),
    streamCipher: patchField(change.streamCipher, current.streamCipher, null),
    createStreamOnAppend: change.createStreamOnAppend ?? current.createStreamOnAppend,
    createStreamOnRead: change.createStreamOnRead ?? current.createStreamOnRead,
  });
}

/**
 * A copy of `input` without `undefined` keys and without nested objects that set nothing, so that
 * equal inputs are structurally equal (`{timestamping: {}}` sets as much as `{}`).
 */
export function normalizeStreamConfigInput(input: StreamConfigInput): StreamConfigInput {
  const out: Mutable<StreamConfigInput> = {};
  if (input.storageClass !== undefined) out.storageClass = input.storageClass;
  if (input.retentionPolicy !== undefined) {
    out.retentionPolicy = copyRetentionPolicy(input.retentionPolicy);
  }
  const mode = input.timestamping?.mode;
  const uncapped = input.timestamping?.uncapped;
  if (mode !== undefined || uncapped !== undefined) {
    const timestamping: Mutable<TimestampingConfigInput> = {};
    if (mode !== undefined) timestamping.mode = mode;
    if (uncapped !== undefined) timestamping.uncapped = uncapped;
    out.timestamping = timestamping;
  }
  const minAgeSecs = input.deleteOnEmpty?.minAgeSecs;
  if (minAgeSecs !== undefined) out.deleteOnEmpty = { minAgeSecs };
  return out;
}

/** Whether `input` sets no field at all, nested ones included. */
export function isEmptyStreamConfigInput(input: StreamConfigInput): boolean {
  return Object.keys(normalizeStreamConfigInput(input)).length === 0;
}

/**
 * A copy of `config` in stored form: normalized defaults, `null` when they set nothing (§6.2:
 * GET shows `default_stream_config: null` then). Use it when building a config from a request.
 */
export function normalizeBasinConfig(config: BasinConfig): BasinConfig {
  const defaults =
    config.defaultStreamConfig === null
      ? null
      : normalizeStreamConfigInput(config.defaultStreamConfig);
  return {
    defaultStreamConfig: defaults === null || isEmptyStreamConfigInput(defaults) ? null : defaults,
    streamCipher: config.streamCipher,
    createStreamOnAppend: config.createStreamOnAppend,
    createStreamOnRead: config.createStreamOnRead,
  };
}

// Validation. Reasons name fields by their wire (JSON) names, since clients read them.

const u64SafeMax = Number.MAX_SAFE_INTEGER;

function checkStorageClass(value: unknown, field: string): string | undefined {
  return isStorageClass(value) ? undefined : `${field} must be "standard" or "express"`;
}

function checkRetentionPolicy(value: unknown, field: string): string | undefined {
  if (typeof value !== "object" || value === null) return `${field} must be an object`;
  const policy = value as { kind?: unknown; ageSecs?: unknown };
  if (policy.kind === "infinite") return undefined;
  if (policy.kind !== "age") return `${field} must be either age or infinite`;
  const ageSecs = policy.ageSecs;
  if (typeof ageSecs !== "number" || !Number.isSafeInteger(ageSecs)) {
    return `${field}.age must be a positive integer no greater than ${u64SafeMax}`;
  }
  // Lite's wording (api/src/v1/config.rs).
  if (ageSecs <= 0) return "age must be greater than 0 seconds";
  return undefined;
}

function checkTimestampingMode(value: unknown, field: string): string | undefined {
  return isTimestampingMode(value)
    ? undefined
    : `${field} must be "client-prefer", "client-require" or "arrival"`;
}

function checkBoolean(value: unknown, field: string): string | undefined {
  return typeof value === "boolean" ? undefined : `${field} must be a boolean`;
}

function checkU64(value: unknown, field: string): string | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? undefined
    : `${field} must be an integer between 0 and ${u64SafeMax}`;
}

function checkObject(value: unknown, field: string): string | undefined {
  return typeof value === "object" && value !== null ? undefined : `${field} must be an object`;
}

/**
 * How absent values are treated: an input may leave a field unset (`undefined`), a
 * reconfiguration may also reset it (`null`), a resolved config must set everything.
 */
type Presence = "input" | "reconfiguration" | "resolved";

/** Runs `check` on `value` unless `presence` allows it to be absent and it is. */
function checkPresent(
  value: unknown,
  presence: Presence,
  field: string,
  check: (value: unknown, field: string) => string | undefined,
): string | undefined {
  if (value === undefined) return presence === "resolved" ? `${field} must be set` : undefined;
  if (value === null && presence === "reconfiguration") return undefined;
  return check(value, field);
}

function checkStreamFields(
  value: StreamConfigInput | StreamReconfiguration,
  presence: Presence,
  prefix: string,
): string | undefined {
  const timestamping: TimestampingReconfiguration | null | undefined = value.timestamping;
  const deleteOnEmpty: DeleteOnEmptyReconfiguration | null | undefined = value.deleteOnEmpty;
  return (
    checkPresent(value.storageClass, presence, `${prefix}storage_class`, checkStorageClass) ??
    checkPresent(
      value.retentionPolicy,
      presence,
      `${prefix}retention_policy`,
      checkRetentionPolicy,
    ) ??
    checkPresent(timestamping, presence, `${prefix}timestamping`, checkObject) ??
    (timestamping === undefined || timestamping === null
      ? undefined
      : (checkPresent(
          timestamping.mode,
          presence,
          `${prefix}timestamping.mode`,
          checkTimestampingMode,
        ) ??
        checkPresent(
          timestamping.uncapped,
          presence,
          `${prefix}timestamping.uncapped`,
          checkBoolean,
        ))) ??
    checkPresent(deleteOnEmpty, presence, `${prefix}delete_on_empty`, checkObject) ??
    (deleteOnEmpty === undefined || deleteOnEmpty === null
      ? undefined
      : checkPresent(
          deleteOnEmpty.minAgeSecs,
          presence,
          `${prefix}delete_on_empty.min_age_secs`,
          checkU64,
        ))
  );
}

/**
 * Why `input` (a create/ensure body or basin defaults) is invalid, or `undefined` (§4.2):
 * retention age > 0, integers within the safe range (u64 on the wire), enums known.
 */
export function validateStreamConfigInput(input: StreamConfigInput): string | undefined {
  return checkStreamFields(input, "input", "");
}

/** Why a stream PATCH body is invalid, or `undefined`; `null` is allowed everywhere (§6.3). */
export function validateStreamReconfiguration(change: StreamReconfiguration): string | undefined {
  return checkStreamFields(change, "reconfiguration", "");
}

/** Why a resolved config is invalid, or `undefined`: the input rules, with every field set. */
export function validateStreamConfig(config: StreamConfig): string | undefined {
  return checkStreamFields(config, "resolved", "");
}

function assertValidStreamConfig(config: StreamConfig): void {
  const reason = validateStreamConfig(config);
  assert(reason === undefined, `stream config was not validated: ${reason}`);
}

function checkEncryptionAlgorithm(value: unknown, field: string): string | undefined {
  return isEncryptionAlgorithm(value) ? undefined : `${field} must be "aegis-256" or "aes-256-gcm"`;
}

/** Why a basin config (create/ensure) is invalid, or `undefined` (§4.2). */
export function validateBasinConfig(config: BasinConfig): string | undefined {
  return (
    (config.defaultStreamConfig === null
      ? undefined
      : (checkObject(config.defaultStreamConfig, "default_stream_config") ??
        checkStreamFields(config.defaultStreamConfig, "input", "default_stream_config."))) ??
    (config.streamCipher === null
      ? undefined
      : checkEncryptionAlgorithm(config.streamCipher, "stream_cipher")) ??
    checkBoolean(config.createStreamOnAppend, "create_stream_on_append") ??
    checkBoolean(config.createStreamOnRead, "create_stream_on_read")
  );
}

/** Why a basin PATCH body is invalid, or `undefined` (§4.2, §6.3). */
export function validateBasinReconfiguration(change: BasinReconfiguration): string | undefined {
  const defaults = change.defaultStreamConfig;
  return (
    (defaults === undefined || defaults === null
      ? undefined
      : (checkObject(defaults, "default_stream_config") ??
        checkStreamFields(defaults, "reconfiguration", "default_stream_config."))) ??
    checkPresent(
      change.streamCipher,
      "reconfiguration",
      "stream_cipher",
      checkEncryptionAlgorithm,
    ) ??
    checkPresent(change.createStreamOnAppend, "input", "create_stream_on_append", checkBoolean) ??
    checkPresent(change.createStreamOnRead, "input", "create_stream_on_read", checkBoolean)
  );
}

// Equality.

/** Whether two retention policies are the same. */
export function retentionPolicyEquals(a: RetentionPolicy, b: RetentionPolicy): boolean {
  if (a.kind === "age") return b.kind === "age" && a.ageSecs === b.ageSecs;
  return b.kind === a.kind;
}

/** Whether two resolved configs are the same (ensure answers `noop` then, §6.3). */
export function streamConfigEquals(a: StreamConfig, b: StreamConfig): boolean {
  return (
    a.storageClass === b.storageClass &&
    retentionPolicyEquals(a.retentionPolicy, b.retentionPolicy) &&
    a.timestamping.mode === b.timestamping.mode &&
    a.timestamping.uncapped === b.timestamping.uncapped &&
    a.deleteOnEmpty.minAgeSecs === b.deleteOnEmpty.minAgeSecs
  );
}

/**
 * Whether two inputs set the same fields to the same values; `null`, `{}` and empty nested
 * objects all mean "nothing set". Used for basin defaults and for idempotent create (§6.3).
 */
export function streamConfigInputEquals(
  a: StreamConfigInput | null,
  b: StreamConfigInput | null,
): boolean {
  const x = a ?? {};
  const y = b ?? {};
  const retentionX = x.retentionPolicy;
  const retentionY = y.retentionPolicy;
  return (
    x.storageClass === y.storageClass &&
    (retentionX === undefined || retentionY === undefined
      ? retentionX === retentionY
      : retentionPolicyEquals(retentionX, retentionY)) &&
    x.timestamping?.mode === y.timestamping?.mode &&
    x.timestamping?.uncapped === y.timestamping?.uncapped &&
    x.deleteOnEmpty?.minAgeSecs === y.deleteOnEmpty?.minAgeSecs
  );
}

/** Whether two basin configs are the same (ensure answers `noop` then, §6.3). */
export function basinConfigEquals(a: BasinConfig, b: BasinConfig): boolean {
  return (
    streamConfigInputEquals(a.defaultStreamConfig, b.defaultStreamConfig) &&
    a.streamCipher === b.streamCipher &&
    a.createStreamOnAppend === b.createStreamOnAppend &&
    a.createStreamOnRead === b.createStreamOnRead
  );
}

// Persistence codecs. The WAL stores configs as JSON, so encoding is canonical: fixed key order,
// every key present (`null` for unset), nested objects that set nothing as `null`. Decoding
// accepts exactly that shape (plus all-null nested objects) and validates ranges.

/**
 * Persisted form of a `RetentionPolicy`. Declared apart from the domain type on purpose: the WAL
 * format must not change by accident when the domain type does.
 */
export type EncodedRetentionPolicy =
  | { readonly kind: "age"; readonly ageSecs: number }
  | { readonly kind: "infinite" };

/** Persisted form of a `StreamConfig`. */
export interface EncodedStreamConfig {
  readonly storageClass: StorageClass;
  readonly retentionPolicy: EncodedRetentionPolicy;
  readonly timestamping: { readonly mode: TimestampingMode; readonly uncapped: boolean };
  readonly deleteOnEmpty: { readonly minAgeSecs: number };
}

/** Persisted form of a `StreamConfigInput`; `null` marks an unset field. */
export interface EncodedStreamConfigInput {
  readonly storageClass: StorageClass | null;
  readonly retentionPolicy: EncodedRetentionPolicy | null;
  readonly timestamping: {
    readonly mode: TimestampingMode | null;
    readonly uncapped: boolean | null;
  } | null;
  readonly deleteOnEmpty: { readonly minAgeSecs: number | null } | null;
}

/** Persisted form of a `BasinConfig`. */
export interface EncodedBasinConfig {
  readonly defaultStreamConfig: EncodedStreamConfigInput | null;
  readonly streamCipher: EncryptionAlgorithm | null;
  readonly createStreamOnAppend: boolean;
  readonly createStreamOnRead: boolean;
}

/** Thrown by the `decode*` functions on a value they did not encode (corruption or skew). */
export class ConfigDecodeError extends Error {
  override readonly name = "ConfigDecodeError";
}

function encodeRetentionPolicy(policy: RetentionPolicy): EncodedRetentionPolicy {
  return policy.kind === "age" ? { kind: "age", ageSecs: policy.ageSecs } : { kind: "infinite" };
}

/** Encodes a resolved config for the WAL (canonical JSON-able object). */
export function encodeStreamConfig(config: StreamConfig): EncodedStreamConfig {
  assertValidStreamConfig(config);
  return {
    storageClass: config.storageClass,
    retentionPolicy: encodeRetentionPolicy(config.retentionPolicy),
    timestamping: { mode: config.timestamping.mode, uncapped: config.timestamping.uncapped },
    deleteOnEmpty: { minAgeSecs: config.deleteOnEmpty.minAgeSecs },
  };
}

/** Encodes a partial config (basin defaults, a requested config) canonically. */
export function encodeStreamConfigInput(input: StreamConfigInput): EncodedStreamConfigInput {
  const reason = validateStreamConfigInput(input);
  assert(reason === undefined, `stream config input was not validated: ${reason}`);
  const normalized = normalizeStreamConfigInput(input);
  const { timestamping, deleteOnEmpty, retentionPolicy } = normalized;
  return {
    storageClass: normalized.storageClass ?? null,
    retentionPolicy: retentionPolicy === undefined ? null : encodeRetentionPolicy(retentionPolicy),
    timestamping:
      timestamping === undefined
        ? null
        : { mode: timestamping.mode ?? null, uncapped: timestamping.uncapped ?? null },
    deleteOnEmpty:
      deleteOnEmpty === undefined ? null : { minAgeSecs: deleteOnEmpty.minAgeSecs ?? null },
  };
}

/** Encodes a basin config canonically (defaults that set nothing become `null`). */
export function encodeBasinConfig(config: BasinConfig): EncodedBasinConfig {
  const reason = validateBasinConfig(config);
  assert(reason === undefined, `basin config was not validated: ${reason}`);
  const normalized = normalizeBasinConfig(config);
  return {
    defaultStreamConfig:
      normalized.defaultStreamConfig === null
        ? null
        : encodeStreamConfigInput(normalized.defaultStreamConfig),
    streamCipher: normalized.streamCipher,
    createStreamOnAppend: normalized.createStreamOnAppend,
    createStreamOnRead: normalized.createStreamOnRead,
  };
}

function decodeFail(field: string, expected: string): never {
  throw new ConfigDecodeError(`stored config is invalid: expected ${expected}. field=\`${field}\``);
}

/** Checks that `value` is a plain object with exactly `keys`, and returns it for reading. */
function readObject(
  value: unknown,
  keys: readonly string[],
  field: string,
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    decodeFail(field, "an object");
  }
  const actual = Object.keys(value);
  if (actual.length !== keys.length || !keys.every((key) => Object.hasOwn(value, key))) {
    decodeFail(field, `the keys ${keys.join(", ")}`);
  }
  return value as Record<string, unknown>;
}

function readNullable<T>(
  value: unknown,
  field: string,
  read: (value: unknown, field: string) => T,
): T | undefined {
  return value === null ? undefined : read(value, field);
}

function readStorageClass(value: unknown, field: string): StorageClass {
  return isStorageClass(value) ? value : decodeFail(field, "a storage class");
}

function readTimestampingMode(value: unknown, field: string): TimestampingMode {
  return isTimestampingMode(value) ? value : decodeFail(field, "a timestamping mode");
}

function readBoolean(value: unknown, field: string): boolean {
  return typeof value === "boolean" ? value : decodeFail(field, "a boolean");
}

function readU64(value: unknown, field: string): number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? value
    : decodeFail(field, "a non-negative safe integer");
}

function readRetentionPolicy(value: unknown, field: string): RetentionPolicy {
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (kind === "infinite") {
    readObject(value, ["kind"], field);
    return { kind: "infinite" };
  }
  const object = readObject(value, ["kind", "ageSecs"], field);
  if (object["kind"] !== "age") decodeFail(`${field}.kind`, '"age" or "infinite"');
  const ageSecs = readU64(object["ageSecs"], `${field}.ageSecs`);
  if (ageSecs === 0) decodeFail(`${field}.ageSecs`, "a positive integer");
  return { kind: "age", ageSecs };
}

function decodeCheck(reason: string | undefined): void {
  if (reason !== undefined) throw new ConfigDecodeError(`stored config is invalid: ${reason}`);
}

/** Decodes `encodeStreamConfig` output; throws `ConfigDecodeError` on anything else. */
export function decodeStreamConfig(value: unknown): StreamConfig {
  const field = "streamConfig";
  const object = readObject(
    value,
    ["storageClass", "retentionPolicy", "timestamping", "deleteOnEmpty"],
    field,
  );
  const timestamping = readObject(
    object["timestamping"],
    ["mode", "uncapped"],
    `${field}.timestamping`,
  );
  const deleteOnEmpty = readObject(
    object["deleteOnEmpty"],
    ["minAgeSecs"],
    `${field}.deleteOnEmpty`,
  );
  const config: StreamConfig = {
    storageClass: readStorageClass(object["storageClass"], `${field}.storageClass`),
    retentionPolicy: readRetentionPolicy(object["retentionPolicy"], `${field}.retentionPolicy`),
    timestamping: {
      mode: readTimestampingMode(timestamping["mode"], `${field}.timestamping.mode`),
      uncapped: readBoolean(timestamping["uncapped"], `${field}.timestamping.uncapped`),
    },
    deleteOnEmpty: {
      minAgeSecs: readU64(deleteOnEmpty["minAgeSecs"], `${field}.deleteOnEmpty.minAgeSecs`),
    },
  };
  decodeCheck(validateStreamConfig(config));
  return config;
}

function decodeStreamConfigInputAt(value: unknown, field: string): StreamConfigInput {
  const object = readObject(
    value,
    ["storageClass", "retentionPolicy", "timestamping", "deleteOnEmpty"],
    field,
  );
  const timestampingValue = object["timestamping"];
  const timestamping =
    timestampingValue === null
      ? undefined
      : readObject(timestampingValue, ["mode", "uncapped"], `${field}.timestamping`);
  const deleteOnEmptyValue = object["deleteOnEmpty"];
  const deleteOnEmpty =
    deleteOnEmptyValue === null
      ? undefined
      : readObject(deleteOnEmptyValue, ["minAgeSecs"], `${field}.deleteOnEmpty`);
  const input = normalizeStreamConfigInput({
    storageClass: readNullable(object["storageClass"], `${field}.storageClass`, readStorageClass),
    retentionPolicy: readNullable(
      object["retentionPolicy"],
      `${field}.retentionPolicy`,
      readRetentionPolicy,
    ),
    timestamping:
      timestamping === undefined
        ? undefined
        : {
            mode: readNullable(
              timestamping["mode"],
              `${field}.timestamping.mode`,
              readTimestampingMode,
            ),
            uncapped: readNullable(
              timestamping["uncapped"],
              `${field}.timestamping.uncapped`,
              readBoolean,
            ),
          },
    deleteOnEmpty:
      deleteOnEmpty === undefined
        ? undefined
        : {
            minAgeSecs: readNullable(
              deleteOnEmpty["minAgeSecs"],
              `${field}.deleteOnEmpty.minAgeSecs`,
              readU64,
            ),
          },
  });
  decodeCheck(validateStreamConfigInput(input));
  return input;
}

/** Decodes `encodeStreamConfigInput` output (normalized); throws `ConfigDecodeError` otherwise. */
export function decodeStreamConfigInput(value: unknown): StreamConfigInput {
  return decodeStreamConfigInputAt(value, "streamConfigInput");
}

/** Decodes `encodeBasinConfig` output (normalized); throws `ConfigDecodeError` otherwise. */
export function decodeBasinConfig(value: unknown): BasinConfig {
  const field = "basinConfig";
  const object = readObject(
    value,
    ["defaultStreamConfig", "streamCipher", "createStreamOnAppend", "createStreamOnRead"],
    field,
  );
  const cipher = object["streamCipher"];
  const config = normalizeBasinConfig({
    defaultStreamConfig:
      object["defaultStreamConfig"] === null
        ? null
        : decodeStreamConfigInputAt(object["defaultStreamConfig"], `${field}.defaultStreamConfig`),
    streamCipher:
      cipher === null
        ? null
        : isEncryptionAlgorithm(cipher)
          ? cipher
          : decodeFail(`${field}.streamCipher`, "an encryption algorithm"),
    createStreamOnAppend: readBoolean(
      object["createStreamOnAppend"],
      `${field}.createStreamOnAppend`,
    ),
    createStreamOnRead: readBoolean(object["createStreamOnRead"], `${field}.createStreamOnRead`),
  });
  decodeCheck(validateBasinConfig(config));
  return config;
}
