// Goal: config layering, PATCH semantics, validation and the WAL codecs behave as S2-API.md §4.2,
// §6.2 and §6.3 describe. Method: the spec's cases written out as examples, plus fast-check
// properties (layering rule per field, PATCH = patch-the-input-then-resolve, codec round trips).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionError } from "./assert.js";
import {
  applyStreamReconfigurationToInput,
  type BasinConfig,
  type BasinReconfiguration,
  basinConfigEquals,
  ConfigDecodeError,
  decodeBasinConfig,
  decodeStreamConfig,
  decodeStreamConfigInput,
  defaultBasinConfig,
  type EncryptionAlgorithm,
  encodeBasinConfig,
  encodeStreamConfig,
  encodeStreamConfigInput,
  isEmptyStreamConfigInput,
  normalizeBasinConfig,
  normalizeStreamConfigInput,
  type RetentionPolicy,
  reconfigureBasin,
  reconfigureStream,
  resolveStreamConfig,
  type StorageClass,
  type StreamConfig,
  type StreamConfigInput,
  type StreamReconfiguration,
  streamConfigEquals,
  streamConfigInputEquals,
  systemStreamConfigDefaults,
  type TimestampingMode,
  validateBasinConfig,
  validateBasinReconfiguration,
  validateStreamConfig,
  validateStreamConfigInput,
  validateStreamReconfiguration,
} from "./config.js";

// Arbitraries.

/** Plain objects only: deepStrictEqual tells a null prototype from Object.prototype. */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const patch = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof(fc.constant(undefined), fc.constant(null), arb) as fc.Arbitrary<T | null | undefined>;

const storageClassArb = fc.constantFrom<StorageClass>("standard", "express");
const modeArb = fc.constantFrom<TimestampingMode>("client-prefer", "client-require", "arrival");
const cipherArb = fc.constantFrom<EncryptionAlgorithm>("aegis-256", "aes-256-gcm");
const retentionArb: fc.Arbitrary<RetentionPolicy> = fc.oneof(
  record({
    kind: fc.constant("age" as const),
    ageSecs: fc.oneof(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.maxSafeNat().filter((n) => n > 0),
    ),
  }),
  fc.constant({ kind: "infinite" as const }),
);
const u64Arb = fc.oneof(fc.constantFrom(0, 1, 60), fc.maxSafeNat());

const streamConfigArb: fc.Arbitrary<StreamConfig> = record({
  storageClass: storageClassArb,
  retentionPolicy: retentionArb,
  timestamping: record({ mode: modeArb, uncapped: fc.boolean() }),
  deleteOnEmpty: record({ minAgeSecs: u64Arb }),
});

const inputArb: fc.Arbitrary<StreamConfigInput> = record({
  storageClass: optional(storageClassArb),
  retentionPolicy: optional(retentionArb),
  timestamping: optional(record({ mode: optional(modeArb), uncapped: optional(fc.boolean()) })),
  deleteOnEmpty: optional(record({ minAgeSecs: optional(u64Arb) })),
});

const reconfigurationArb: fc.Arbitrary<StreamReconfiguration> = record({
  storageClass: patch(storageClassArb),
  retentionPolicy: patch(retentionArb),
  timestamping: patch(record({ mode: patch(modeArb), uncapped: patch(fc.boolean()) })),
  deleteOnEmpty: patch(record({ minAgeSecs: patch(u64Arb) })),
});

const basinConfigArb: fc.Arbitrary<BasinConfig> = record({
  defaultStreamConfig: fc.option(inputArb, { nil: null }),
  streamCipher: fc.option(cipherArb, { nil: null }),
  createStreamOnAppend: fc.boolean(),
  createStreamOnRead: fc.boolean(),
});

const basinReconfigurationArb: fc.Arbitrary<BasinReconfiguration> = record({
  defaultStreamConfig: patch(reconfigurationArb),
  streamCipher: patch(cipherArb),
  createStreamOnAppend: optional(fc.boolean()),
  createStreamOnRead: optional(fc.boolean()),
});

/** A resolved config as an input that sets every field. */
function asInput(config: StreamConfig): StreamConfigInput {
  return {
    storageClass: config.storageClass,
    retentionPolicy: config.retentionPolicy,
    timestamping: { ...config.timestamping },
    deleteOnEmpty: { ...config.deleteOnEmpty },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

const sevenDays: RetentionPolicy = { kind: "age", ageSecs: 604_800 };

describe("system defaults", () => {
  it("are express, 7 days, client-prefer, capped, delete-on-empty off (§4.2)", () => {
    assert.deepEqual(systemStreamConfigDefaults, {
      storageClass: "express",
      retentionPolicy: sevenDays,
      timestamping: { mode: "client-prefer", uncapped: false },
      deleteOnEmpty: { minAgeSecs: 0 },
    });
    assert.ok(Object.isFrozen(systemStreamConfigDefaults.timestamping));
  });

  it("give a basin no defaults, no cipher and no auto-create", () => {
    assert.deepEqual(defaultBasinConfig(), {
      defaultStreamConfig: null,
      streamCipher: null,
      createStreamOnAppend: false,
      createStreamOnRead: false,
    });
  });
});

describe("resolveStreamConfig (§6.2)", () => {
  it("uses system defaults when nothing is set", () => {
    assert.deepEqual(resolveStreamConfig(undefined, null), systemStreamConfigDefaults);
    assert.deepEqual(resolveStreamConfig({}, {}), systemStreamConfigDefaults);
  });

  it("layers stream value → basin default → system default", () => {
    const basin: StreamConfigInput = {
      storageClass: "standard",
      retentionPolicy: { kind: "infinite" },
    };
    assert.deepEqual(resolveStreamConfig({ storageClass: "express" }, basin), {
      storageClass: "express",
      retentionPolicy: { kind: "infinite" },
      timestamping: { mode: "client-prefer", uncapped: false },
      deleteOnEmpty: { minAgeSecs: 0 },
    });
  });

  it("resolves nested fields independently", () => {
    const basin: StreamConfigInput = {
      timestamping: { mode: "arrival", uncapped: true },
      deleteOnEmpty: { minAgeSecs: 60 },
    };
    const config = resolveStreamConfig({ timestamping: { mode: "client-require" } }, basin);
    assert.deepEqual(config.timestamping, { mode: "client-require", uncapped: true });
    assert.deepEqual(config.deleteOnEmpty, { minAgeSecs: 60 });
    const partialBasin: StreamConfigInput = { timestamping: { uncapped: true } };
    assert.deepEqual(resolveStreamConfig({ timestamping: {} }, partialBasin).timestamping, {
      mode: "client-prefer",
      uncapped: true,
    });
  });

  it("keeps explicit false and 0 over basin defaults", () => {
    const basin: StreamConfigInput = {
      timestamping: { uncapped: true },
      deleteOnEmpty: { minAgeSecs: 60 },
    };
    const config = resolveStreamConfig(
      { timestamping: { uncapped: false }, deleteOnEmpty: { minAgeSecs: 0 } },
      basin,
    );
    assert.equal(config.timestamping.uncapped, false);
    assert.equal(config.deleteOnEmpty.minAgeSecs, 0);
  });

  it("follows the layering rule for every field (property)", () => {
    fc.assert(
      fc.property(optional(inputArb), fc.option(inputArb, { nil: null }), (input, basin) => {
        const config = resolveStreamConfig(input, basin);
        const s = systemStreamConfigDefaults;
        assert.equal(
          config.storageClass,
          input?.storageClass ?? basin?.storageClass ?? s.storageClass,
        );
        assert.deepEqual(
          config.retentionPolicy,
          input?.retentionPolicy ?? basin?.retentionPolicy ?? s.retentionPolicy,
        );
        assert.equal(
          config.timestamping.mode,
          input?.timestamping?.mode ?? basin?.timestamping?.mode ?? s.timestamping.mode,
        );
        assert.equal(
          config.timestamping.uncapped,
          input?.timestamping?.uncapped ?? basin?.timestamping?.uncapped ?? s.timestamping.uncapped,
        );
        assert.equal(
          config.deleteOnEmpty.minAgeSecs,
          input?.deleteOnEmpty?.minAgeSecs ??
            basin?.deleteOnEmpty?.minAgeSecs ??
            s.deleteOnEmpty.minAgeSecs,
        );
      }),
    );
  });

  it("asserts that its input was validated", () => {
    assert.throws(
      () => resolveStreamConfig({ retentionPolicy: { kind: "age", ageSecs: 0 } }, null),
      AssertionError,
    );
  });
});

describe("reconfigureStream (§6.3 PATCH /streams)", () => {
  const basin: StreamConfigInput = deepFreeze({
    storageClass: "standard",
    timestamping: { mode: "client-require" },
    deleteOnEmpty: { minAgeSecs: 60 },
  });
  const current: StreamConfig = deepFreeze({
    storageClass: "express",
    retentionPolicy: { kind: "infinite" },
    timestamping: { mode: "arrival", uncapped: true },
    deleteOnEmpty: { minAgeSecs: 5 },
  });

  const table: [string, StreamReconfiguration, StreamConfig][] = [
    ["an empty patch keeps everything", {}, current],
    [
      "absent keys keep their field",
      { storageClass: "standard" },
      { ...current, storageClass: "standard" },
    ],
    [
      "null resets to the basin default",
      { storageClass: null },
      { ...current, storageClass: "standard" },
    ],
    [
      "null resets to the system default when the basin sets none",
      { retentionPolicy: null },
      { ...current, retentionPolicy: sevenDays },
    ],
    [
      "a value replaces",
      { retentionPolicy: { kind: "age", ageSecs: 3600 } },
      { ...current, retentionPolicy: { kind: "age", ageSecs: 3600 } },
    ],
    [
      "a nested patch keeps its sibling uncapped",
      { timestamping: { mode: "client-prefer" } },
      { ...current, timestamping: { mode: "client-prefer", uncapped: true } },
    ],
    [
      "a nested null resets one sub-field",
      { timestamping: { uncapped: null } },
      { ...current, timestamping: { mode: "arrival", uncapped: false } },
    ],
    [
      "timestamping: null resets both sub-fields",
      { timestamping: null },
      { ...current, timestamping: { mode: "client-require", uncapped: false } },
    ],
    ["timestamping: {} keeps both", { timestamping: {} }, current],
    [
      "delete_on_empty: {min_age_secs: null} resets to the basin default",
      { deleteOnEmpty: { minAgeSecs: null } },
      { ...current, deleteOnEmpty: { minAgeSecs: 60 } },
    ],
    [
      "delete_on_empty: null resets too",
      { deleteOnEmpty: null },
      { ...current, deleteOnEmpty: { minAgeSecs: 60 } },
    ],
    [
      "delete_on_empty: {min_age_secs: 0} disables it",
      { deleteOnEmpty: { minAgeSecs: 0 } },
      { ...current, deleteOnEmpty: { minAgeSecs: 0 } },
    ],
    [
      "several fields at once",
      { storageClass: null, retentionPolicy: null, timestamping: null, deleteOnEmpty: null },
      resolveStreamConfig(undefined, basin),
    ],
  ];
  for (const [name, change, expected] of table) {
    it(name, () => {
      assert.deepEqual(reconfigureStream(current, change, basin), expected);
    });
  }

  it("resets against the basin defaults of the moment, not those at creation (§11.19)", () => {
    const created = resolveStreamConfig({}, { storageClass: "standard" });
    assert.equal(created.storageClass, "standard");
    const later = reconfigureStream(created, { storageClass: null }, null);
    assert.equal(later.storageClass, "express");
  });

  it("equals patching the stored config as an input, then resolving (property)", () => {
    fc.assert(
      fc.property(
        streamConfigArb,
        reconfigurationArb,
        fc.option(inputArb, { nil: null }),
        (stored, change, defaults) => {
          const expected = resolveStreamConfig(
            applyStreamReconfigurationToInput(asInput(stored), change) ?? undefined,
            defaults,
          );
          assert.deepEqual(reconfigureStream(stored, change, defaults), expected);
        },
      ),
    );
  });

  it("keeps everything on an empty patch (property)", () => {
    fc.assert(
      fc.property(streamConfigArb, fc.option(inputArb, { nil: null }), (stored, defaults) => {
        assert.deepEqual(reconfigureStream(stored, {}, defaults), stored);
      }),
    );
  });
});

describe("applyStreamReconfigurationToInput", () => {
  it("unsets a default on null and returns null when nothing remains", () => {
    assert.equal(
      applyStreamReconfigurationToInput({ storageClass: "standard" }, { storageClass: null }),
      null,
    );
    assert.equal(applyStreamReconfigurationToInput(null, {}), null);
    assert.equal(applyStreamReconfigurationToInput(null, { timestamping: {} }), null);
    assert.equal(
      applyStreamReconfigurationToInput(
        { timestamping: { mode: "arrival" } },
        { timestamping: { mode: null } },
      ),
      null,
    );
  });

  it("patches nested defaults and keeps siblings", () => {
    assert.deepEqual(
      applyStreamReconfigurationToInput(
        { timestamping: { mode: "arrival", uncapped: true }, storageClass: "standard" },
        { timestamping: { mode: "client-require" } },
      ),
      { storageClass: "standard", timestamping: { mode: "client-require", uncapped: true } },
    );
    assert.deepEqual(
      applyStreamReconfigurationToInput(
        { timestamping: { mode: "arrival", uncapped: true }, storageClass: "standard" },
        { timestamping: null },
      ),
      { storageClass: "standard" },
    );
  });

  it("keeps an explicit delete_on_empty of 0 (§6.2)", () => {
    assert.deepEqual(
      applyStreamReconfigurationToInput(null, { deleteOnEmpty: { minAgeSecs: 0 } }),
      {
        deleteOnEmpty: { minAgeSecs: 0 },
      },
    );
  });
});

describe("reconfigureBasin (§6.3 PATCH /basins)", () => {
  const current: BasinConfig = deepFreeze({
    defaultStreamConfig: {
      storageClass: "standard",
      timestamping: { mode: "arrival", uncapped: true },
    },
    streamCipher: "aegis-256",
    createStreamOnAppend: true,
    createStreamOnRead: false,
  });

  const table: [string, BasinReconfiguration, BasinConfig][] = [
    ["an empty patch keeps everything", {}, current],
    [
      "defaultStreamConfig: null clears all defaults",
      { defaultStreamConfig: null },
      {
        ...current,
        defaultStreamConfig: null,
      },
    ],
    [
      "an inner null unsets one default",
      { defaultStreamConfig: { storageClass: null } },
      { ...current, defaultStreamConfig: { timestamping: { mode: "arrival", uncapped: true } } },
    ],
    [
      "a nested patch keeps the sibling default",
      { defaultStreamConfig: { timestamping: { mode: "client-prefer" } } },
      {
        ...current,
        defaultStreamConfig: {
          storageClass: "standard",
          timestamping: { mode: "client-prefer", uncapped: true },
        },
      },
    ],
    [
      "unsetting every default leaves null",
      { defaultStreamConfig: { storageClass: null, timestamping: null } },
      { ...current, defaultStreamConfig: null },
    ],
    [
      "a new default is added",
      { defaultStreamConfig: { retentionPolicy: { kind: "infinite" } } },
      {
        ...current,
        defaultStreamConfig: {
          storageClass: "standard",
          retentionPolicy: { kind: "infinite" },
          timestamping: { mode: "arrival", uncapped: true },
        },
      },
    ],
    ["streamCipher: null clears", { streamCipher: null }, { ...current, streamCipher: null }],
    [
      "streamCipher value sets",
      { streamCipher: "aes-256-gcm" },
      { ...current, streamCipher: "aes-256-gcm" },
    ],
    [
      "booleans set",
      { createStreamOnAppend: false, createStreamOnRead: true },
      { ...current, createStreamOnAppend: false, createStreamOnRead: true },
    ],
  ];
  for (const [name, change, expected] of table) {
    it(name, () => {
      assert.deepEqual(reconfigureBasin(current, change), expected);
    });
  }

  it("patches null defaults into an object", () => {
    assert.deepEqual(
      reconfigureBasin(defaultBasinConfig(), {
        defaultStreamConfig: { deleteOnEmpty: { minAgeSecs: 0 } },
      }),
      { ...defaultBasinConfig(), defaultStreamConfig: { deleteOnEmpty: { minAgeSecs: 0 } } },
    );
    assert.deepEqual(
      reconfigureBasin(defaultBasinConfig(), { defaultStreamConfig: {} }),
      defaultBasinConfig(),
    );
  });

  it("patches defaults like applyStreamReconfigurationToInput and keeps absent fields (property)", () => {
    fc.assert(
      fc.property(basinConfigArb, basinReconfigurationArb, (config, change) => {
        const result = reconfigureBasin(config, change);
        const expectedDefaults =
          change.defaultStreamConfig === undefined
            ? config.defaultStreamConfig
            : change.defaultStreamConfig === null
              ? null
              : applyStreamReconfigurationToInput(
                  config.defaultStreamConfig,
                  change.defaultStreamConfig,
                );
        assert.ok(streamConfigInputEquals(result.defaultStreamConfig, expectedDefaults));
        assert.ok(
          result.defaultStreamConfig === null ||
            !isEmptyStreamConfigInput(result.defaultStreamConfig),
        );
        assert.equal(
          result.streamCipher,
          change.streamCipher === undefined ? config.streamCipher : change.streamCipher,
        );
        assert.equal(
          result.createStreamOnAppend,
          change.createStreamOnAppend ?? config.createStreamOnAppend,
        );
        assert.equal(
          result.createStreamOnRead,
          change.createStreamOnRead ?? config.createStreamOnRead,
        );
        assert.ok(basinConfigEquals(reconfigureBasin(config, {}), config));
      }),
    );
  });
});

describe("equality", () => {
  const config = resolveStreamConfig(undefined, null);

  it("compares resolved configs field by field", () => {
    assert.ok(streamConfigEquals(config, { ...config }));
    assert.ok(!streamConfigEquals(config, { ...config, storageClass: "standard" }));
    assert.ok(!streamConfigEquals(config, { ...config, retentionPolicy: { kind: "infinite" } }));
    assert.ok(
      !streamConfigEquals(config, { ...config, retentionPolicy: { kind: "age", ageSecs: 1 } }),
    );
    assert.ok(
      !streamConfigEquals(config, {
        ...config,
        timestamping: { mode: "arrival", uncapped: false },
      }),
    );
    assert.ok(
      !streamConfigEquals(config, {
        ...config,
        timestamping: { mode: "client-prefer", uncapped: true },
      }),
    );
    assert.ok(!streamConfigEquals(config, { ...config, deleteOnEmpty: { minAgeSecs: 1 } }));
  });

  it("treats null, {} and empty nested inputs as the same", () => {
    assert.ok(streamConfigInputEquals(null, {}));
    assert.ok(streamConfigInputEquals({ timestamping: {} }, null));
    assert.ok(streamConfigInputEquals({ deleteOnEmpty: { minAgeSecs: undefined } }, {}));
    assert.ok(!streamConfigInputEquals({ deleteOnEmpty: { minAgeSecs: 0 } }, {}));
    assert.ok(!streamConfigInputEquals({ retentionPolicy: { kind: "infinite" } }, {}));
    assert.ok(
      streamConfigInputEquals(
        { retentionPolicy: { kind: "age", ageSecs: 5 } },
        { retentionPolicy: { kind: "age", ageSecs: 5 } },
      ),
    );
  });

  it("compares basin configs", () => {
    const basin = defaultBasinConfig();
    assert.ok(basinConfigEquals(basin, { ...basin, defaultStreamConfig: {} }));
    assert.ok(!basinConfigEquals(basin, { ...basin, streamCipher: "aegis-256" }));
    assert.ok(!basinConfigEquals(basin, { ...basin, createStreamOnAppend: true }));
    assert.ok(!basinConfigEquals(basin, { ...basin, createStreamOnRead: true }));
    assert.ok(
      !basinConfigEquals(basin, { ...basin, defaultStreamConfig: { storageClass: "express" } }),
    );
  });

  it("is reflexive and agrees with normalized deep equality (property)", () => {
    fc.assert(
      fc.property(inputArb, inputArb, (a, b) => {
        assert.ok(streamConfigInputEquals(a, a));
        const deep =
          JSON.stringify(encodeStreamConfigInput(a)) === JSON.stringify(encodeStreamConfigInput(b));
        assert.equal(streamConfigInputEquals(a, b), deep);
      }),
    );
  });
});

describe("normalization", () => {
  it("drops undefined keys and empty nested objects", () => {
    assert.deepEqual(
      normalizeStreamConfigInput({
        storageClass: undefined,
        timestamping: { mode: undefined },
        deleteOnEmpty: {},
        retentionPolicy: { kind: "infinite" },
      }),
      { retentionPolicy: { kind: "infinite" } },
    );
    assert.deepEqual(
      normalizeBasinConfig({ ...defaultBasinConfig(), defaultStreamConfig: { timestamping: {} } }),
      defaultBasinConfig(),
    );
  });
});

describe("validation", () => {
  const invalidInputs: [StreamConfigInput, string][] = [
    [{ retentionPolicy: { kind: "age", ageSecs: 0 } }, "age must be greater than 0 seconds"],
    [{ retentionPolicy: { kind: "age", ageSecs: -1 } }, "age must be greater than 0 seconds"],
    [{ retentionPolicy: { kind: "age", ageSecs: 1.5 } }, "retention_policy.age must be"],
    [{ retentionPolicy: { kind: "age", ageSecs: 2 ** 53 } }, "retention_policy.age must be"],
    [{ retentionPolicy: { kind: "forever" } as unknown as RetentionPolicy }, "retention_policy"],
    [{ storageClass: "fast" as StorageClass }, "storage_class"],
    [{ timestamping: { mode: "client" as TimestampingMode } }, "timestamping.mode"],
    [{ timestamping: { uncapped: "yes" as unknown as boolean } }, "timestamping.uncapped"],
    [{ timestamping: 3 as unknown as object }, "timestamping must be an object"],
    [{ deleteOnEmpty: { minAgeSecs: -1 } }, "delete_on_empty.min_age_secs"],
    [{ deleteOnEmpty: { minAgeSecs: 2 ** 53 } }, "delete_on_empty.min_age_secs"],
    [{ deleteOnEmpty: { minAgeSecs: 0.5 } }, "delete_on_empty.min_age_secs"],
    [{ storageClass: null as unknown as StorageClass }, "storage_class"],
  ];
  for (const [input, reason] of invalidInputs) {
    it(`rejects input ${JSON.stringify(input)}`, () => {
      assert.ok(
        validateStreamConfigInput(input)?.includes(reason),
        validateStreamConfigInput(input),
      );
    });
  }

  it("accepts valid inputs at their bounds", () => {
    for (const input of [
      {},
      { retentionPolicy: { kind: "age", ageSecs: 1 } },
      { retentionPolicy: { kind: "age", ageSecs: Number.MAX_SAFE_INTEGER } },
      { deleteOnEmpty: { minAgeSecs: 0 } },
      { deleteOnEmpty: { minAgeSecs: Number.MAX_SAFE_INTEGER } },
      { timestamping: { mode: "arrival", uncapped: false } },
    ] satisfies StreamConfigInput[]) {
      assert.equal(validateStreamConfigInput(input), undefined, JSON.stringify(input));
    }
    fc.assert(fc.property(inputArb, (input) => validateStreamConfigInput(input) === undefined));
  });

  it("allows null in reconfigurations but checks values", () => {
    assert.equal(
      validateStreamReconfiguration({
        storageClass: null,
        retentionPolicy: null,
        timestamping: { mode: null, uncapped: null },
        deleteOnEmpty: { minAgeSecs: null },
      }),
      undefined,
    );
    assert.equal(
      validateStreamReconfiguration({ timestamping: null, deleteOnEmpty: null }),
      undefined,
    );
    assert.equal(
      validateStreamReconfiguration({ retentionPolicy: { kind: "age", ageSecs: 0 } }),
      "age must be greater than 0 seconds",
    );
    assert.match(
      validateStreamReconfiguration({ deleteOnEmpty: { minAgeSecs: -5 } }) ?? "",
      /delete_on_empty\.min_age_secs/,
    );
    fc.assert(
      fc.property(
        reconfigurationArb,
        (change) => validateStreamReconfiguration(change) === undefined,
      ),
    );
  });

  it("requires every field of a resolved config", () => {
    assert.equal(validateStreamConfig(systemStreamConfigDefaults), undefined);
    const partial = { ...systemStreamConfigDefaults, timestamping: { mode: "arrival" } };
    assert.equal(
      validateStreamConfig(partial as unknown as StreamConfig),
      "timestamping.uncapped must be set",
    );
  });

  it("validates basin configs with prefixed field names", () => {
    assert.equal(validateBasinConfig(defaultBasinConfig()), undefined);
    assert.equal(
      validateBasinConfig({
        ...defaultBasinConfig(),
        defaultStreamConfig: { retentionPolicy: { kind: "age", ageSecs: 1.5 } },
      }),
      "default_stream_config.retention_policy.age must be a positive integer no greater than 9007199254740991",
    );
    assert.match(
      validateBasinConfig({
        ...defaultBasinConfig(),
        streamCipher: "rot13" as EncryptionAlgorithm,
      }) ?? "",
      /stream_cipher/,
    );
    fc.assert(fc.property(basinConfigArb, (config) => validateBasinConfig(config) === undefined));
  });

  it("validates basin reconfigurations: booleans only bool", () => {
    assert.equal(
      validateBasinReconfiguration({ defaultStreamConfig: null, streamCipher: null }),
      undefined,
    );
    assert.match(
      validateBasinReconfiguration({ createStreamOnAppend: null as unknown as boolean }) ?? "",
      /create_stream_on_append must be a boolean/,
    );
    assert.match(
      validateBasinReconfiguration({ createStreamOnRead: "true" as unknown as boolean }) ?? "",
      /create_stream_on_read must be a boolean/,
    );
    assert.match(
      validateBasinReconfiguration({
        defaultStreamConfig: { deleteOnEmpty: { minAgeSecs: -1 } },
      }) ?? "",
      /default_stream_config\.delete_on_empty\.min_age_secs/,
    );
    fc.assert(
      fc.property(
        basinReconfigurationArb,
        (change) => validateBasinReconfiguration(change) === undefined,
      ),
    );
  });
});

describe("codecs", () => {
  const viaJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

  it("round-trip resolved configs (property)", () => {
    fc.assert(
      fc.property(streamConfigArb, (config) => {
        const decoded = decodeStreamConfig(viaJson(encodeStreamConfig(config)));
        assert.deepEqual(decoded, config);
        assert.ok(streamConfigEquals(decoded, config));
      }),
    );
  });

  it("round-trip inputs to their normalized form (property)", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const encoded = encodeStreamConfigInput(input);
        const decoded = decodeStreamConfigInput(viaJson(encoded));
        assert.deepEqual(decoded, normalizeStreamConfigInput(input));
        assert.equal(JSON.stringify(encodeStreamConfigInput(decoded)), JSON.stringify(encoded));
      }),
    );
  });

  it("round-trip basin configs to their normalized form (property)", () => {
    fc.assert(
      fc.property(basinConfigArb, (config) => {
        const encoded = encodeBasinConfig(config);
        const decoded = decodeBasinConfig(viaJson(encoded));
        assert.deepEqual(decoded, normalizeBasinConfig(config));
        assert.ok(basinConfigEquals(decoded, config));
        assert.equal(JSON.stringify(encodeBasinConfig(decoded)), JSON.stringify(encoded));
      }),
    );
  });

  it("encode deterministically whatever the key order of the value", () => {
    const a: StreamConfig = {
      storageClass: "standard",
      retentionPolicy: { kind: "age", ageSecs: 10 },
      timestamping: { mode: "arrival", uncapped: true },
      deleteOnEmpty: { minAgeSecs: 3 },
    };
    const b: StreamConfig = {
      deleteOnEmpty: { minAgeSecs: 3 },
      timestamping: { uncapped: true, mode: "arrival" },
      retentionPolicy: { ageSecs: 10, kind: "age" },
      storageClass: "standard",
    };
    assert.equal(JSON.stringify(encodeStreamConfig(a)), JSON.stringify(encodeStreamConfig(b)));
    assert.equal(
      JSON.stringify(encodeStreamConfig(a)),
      '{"storageClass":"standard","retentionPolicy":{"kind":"age","ageSecs":10},' +
        '"timestamping":{"mode":"arrival","uncapped":true},"deleteOnEmpty":{"minAgeSecs":3}}',
    );
    assert.equal(
      JSON.stringify(
        encodeBasinConfig({
          ...defaultBasinConfig(),
          defaultStreamConfig: { timestamping: { uncapped: false } },
        }),
      ),
      '{"defaultStreamConfig":{"storageClass":null,"retentionPolicy":null,' +
        '"timestamping":{"mode":null,"uncapped":false},"deleteOnEmpty":null},' +
        '"streamCipher":null,"createStreamOnAppend":false,"createStreamOnRead":false}',
    );
  });

  const goodStream = encodeStreamConfig(systemStreamConfigDefaults);
  const garbageStream: [string, unknown][] = [
    ["null", null],
    ["an array", []],
    ["a string", "{}"],
    ["a missing key", { ...goodStream, deleteOnEmpty: undefined }],
    ["an extra key", { ...goodStream, cipher: null }],
    ["an unknown storage class", { ...goodStream, storageClass: "fast" }],
    ["a zero retention age", { ...goodStream, retentionPolicy: { kind: "age", ageSecs: 0 } }],
    [
      "an unsafe retention age",
      { ...goodStream, retentionPolicy: { kind: "age", ageSecs: 2 ** 53 } },
    ],
    ["an unknown retention kind", { ...goodStream, retentionPolicy: { kind: "forever" } }],
    ["extra retention keys", { ...goodStream, retentionPolicy: { kind: "infinite", ageSecs: 1 } }],
    ["a retention number", { ...goodStream, retentionPolicy: 5 }],
    ["a string boolean", { ...goodStream, timestamping: { mode: "arrival", uncapped: "false" } }],
    ["a null mode", { ...goodStream, timestamping: { mode: null, uncapped: false } }],
    ["a negative min age", { ...goodStream, deleteOnEmpty: { minAgeSecs: -1 } }],
    ["a fractional min age", { ...goodStream, deleteOnEmpty: { minAgeSecs: 0.5 } }],
  ];
  for (const [name, value] of garbageStream) {
    it(`reject a stream config with ${name}`, () => {
      assert.throws(() => decodeStreamConfig(viaJson(value) ?? value), ConfigDecodeError);
    });
  }

  const goodBasin = encodeBasinConfig({
    ...defaultBasinConfig(),
    defaultStreamConfig: { storageClass: "standard" },
  });
  const garbageBasin: [string, unknown][] = [
    ["no keys", {}],
    ["a null boolean", { ...goodBasin, createStreamOnRead: null }],
    ["an unknown cipher", { ...goodBasin, streamCipher: "rot13" }],
    ["defaults missing a key", { ...goodBasin, defaultStreamConfig: { storageClass: "standard" } }],
    [
      "defaults with a zero age",
      {
        ...goodBasin,
        defaultStreamConfig: {
          storageClass: null,
          retentionPolicy: { kind: "age", ageSecs: 0 },
          timestamping: null,
          deleteOnEmpty: null,
        },
      },
    ],
    [
      "defaults with a bad nested key",
      {
        ...goodBasin,
        defaultStreamConfig: {
          storageClass: null,
          retentionPolicy: null,
          timestamping: { mode: null },
          deleteOnEmpty: null,
        },
      },
    ],
  ];
  for (const [name, value] of garbageBasin) {
    it(`reject a basin config with ${name}`, () => {
      assert.throws(() => decodeBasinConfig(viaJson(value)), ConfigDecodeError);
    });
  }

  it("accept all-null nested objects and normalize them away", () => {
    assert.deepEqual(
      decodeStreamConfigInput({
        storageClass: null,
        retentionPolicy: null,
        timestamping: { mode: null, uncapped: null },
        deleteOnEmpty: { minAgeSecs: null },
      }),
      {},
    );
  });
});
