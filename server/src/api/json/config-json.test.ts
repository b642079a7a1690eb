// Goal: configuration JSON is read and written exactly as S2 lite's serde types do (S2-API.md
// §4.2, §6.3): shape errors are 400 bad_json, ranges are left to the domain validators (422), PATCH
// bodies keep absent, null and a value apart, and rendering fills every key. Method: table cases
// per field and shape, plus fast-check round trips between the domain types and their JSON.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type BasinConfig,
  normalizeStreamConfigInput,
  resolveStreamConfig,
  type StreamConfig,
  type StreamConfigInput,
  validateBasinConfig,
  validateStreamConfigInput,
  validateStreamReconfiguration,
} from "../../core/config.js";
import { S2Error } from "../../core/errors.js";
import {
  parseBasinConfig,
  parseBasinReconfiguration,
  parseRetentionPolicy,
  parseStreamConfigInput,
  parseStreamReconfiguration,
  renderBasinConfig,
  renderStreamConfig,
  renderStreamConfigInput,
} from "./config-json.js";

function assertBadJson(run: () => unknown, field?: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
    assert.equal(error.code, "bad_json");
    if (field !== undefined) assert.match(error.message, new RegExp(`field=\`${field}\``));
    return true;
  });
}

/** `JSON.parse(JSON.stringify(x))`: what a client would send. */
function wire(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe("parseRetentionPolicy", () => {
  it("reads age and infinite, ignoring fields inside infinite", () => {
    assert.deepEqual(parseRetentionPolicy({ age: 60 }, "p"), { kind: "age", ageSecs: 60 });
    assert.deepEqual(parseRetentionPolicy({ infinite: {} }, "p"), { kind: "infinite" });
    assert.deepEqual(parseRetentionPolicy({ infinite: { x: 1 } }, "p"), { kind: "infinite" });
  });

  it("leaves age 0 and ages beyond 2^53 to validation (422)", () => {
    assert.deepEqual(parseRetentionPolicy({ age: 0 }, "p"), { kind: "age", ageSecs: 0 });
    const huge = parseRetentionPolicy({ age: 2 ** 60 }, "retention_policy");
    assert.match(
      validateStreamConfigInput({ retentionPolicy: huge }) ?? "",
      /retention_policy\.age/,
    );
    assert.equal(
      validateStreamConfigInput({ retentionPolicy: { kind: "age", ageSecs: 0 } }),
      "age must be greater than 0 seconds",
    );
  });

  it("rejects every other shape with bad_json", () => {
    for (const value of [
      {},
      { age: 1, infinite: {} },
      { forever: {} },
      "infinite",
      null,
      [],
      { age: -1 },
      { age: 1.5 },
      { age: "60" },
      { infinite: null },
      { infinite: true },
    ]) {
      assertBadJson(() => parseRetentionPolicy(value, "retention_policy"));
    }
    assertBadJson(() => parseRetentionPolicy({ age: -1 }, "x"), "x.age");
  });
});

describe("parseStreamConfigInput", () => {
  it("treats absent and null keys alike as unset, and ignores unknown keys", () => {
    const unset = {
      storageClass: undefined,
      retentionPolicy: undefined,
      timestamping: undefined,
      deleteOnEmpty: undefined,
    };
    assert.deepEqual(parseStreamConfigInput({}, ""), unset);
    assert.deepEqual(
      parseStreamConfigInput(
        {
          storage_class: null,
          retention_policy: null,
          timestamping: null,
          delete_on_empty: null,
          unknown: 1,
        },
        "",
      ),
      unset,
    );
  });

  it("reads every field", () => {
    const input = parseStreamConfigInput(
      {
        storage_class: "standard",
        retention_policy: { age: 3600 },
        timestamping: { mode: "arrival", uncapped: true },
        delete_on_empty: { min_age_secs: 30 },
      },
      "",
    );
    assert.deepEqual(normalizeStreamConfigInput(input), {
      storageClass: "standard",
      retentionPolicy: { kind: "age", ageSecs: 3600 },
      timestamping: { mode: "arrival", uncapped: true },
      deleteOnEmpty: { minAgeSecs: 30 },
    });
  });

  it("reads nested nulls as unset and defaults min_age_secs to 0", () => {
    const input = parseStreamConfigInput(
      { timestamping: { mode: null, uncapped: false }, delete_on_empty: {} },
      "",
    );
    assert.deepEqual(input.timestamping, { mode: undefined, uncapped: false });
    assert.deepEqual(input.deleteOnEmpty, { minAgeSecs: 0 });
  });

  it("rejects wrong types with bad_json naming the field", () => {
    assertBadJson(() => parseStreamConfigInput({ storage_class: "fast" }, ""), "storage_class");
    assertBadJson(() => parseStreamConfigInput({ storage_class: 1 }, ""), "storage_class");
    assertBadJson(
      () => parseStreamConfigInput({ timestamping: { mode: "client" } }, "config"),
      "config.timestamping.mode",
    );
    assertBadJson(
      () => parseStreamConfigInput({ timestamping: { uncapped: "yes" } }, ""),
      "timestamping.uncapped",
    );
    assertBadJson(() => parseStreamConfigInput({ timestamping: true }, ""), "timestamping");
    // `#[serde(default)] min_age_secs: u64`: null is a type error, not "unset".
    assertBadJson(
      () => parseStreamConfigInput({ delete_on_empty: { min_age_secs: null } }, ""),
      "delete_on_empty.min_age_secs",
    );
    assertBadJson(() => parseStreamConfigInput({ delete_on_empty: { min_age_secs: -5 } }, ""));
    assertBadJson(() => parseStreamConfigInput([], ""), "\\(root\\)");
    assertBadJson(() => parseStreamConfigInput(null, ""));
  });

  it("leaves min_age_secs beyond 2^53 to validation (422)", () => {
    const input = parseStreamConfigInput({ delete_on_empty: { min_age_secs: 2 ** 54 } }, "");
    assert.match(validateStreamConfigInput(input) ?? "", /delete_on_empty\.min_age_secs/);
  });
});

describe("parseStreamReconfiguration", () => {
  it("keeps absent, null and values apart at every level", () => {
    assert.deepEqual(parseStreamReconfiguration({}, ""), {
      storageClass: undefined,
      retentionPolicy: undefined,
      timestamping: undefined,
      deleteOnEmpty: undefined,
    });
    assert.deepEqual(
      parseStreamReconfiguration(
        { storage_class: null, retention_policy: null, timestamping: null, delete_on_empty: null },
        "",
      ),
      { storageClass: null, retentionPolicy: null, timestamping: null, deleteOnEmpty: null },
    );
    assert.deepEqual(
      parseStreamReconfiguration(
        {
          storage_class: "express",
          retention_policy: { infinite: {} },
          timestamping: { mode: "arrival" },
          delete_on_empty: { min_age_secs: null },
        },
        "",
      ),
      {
        storageClass: "express",
        retentionPolicy: { kind: "infinite" },
        timestamping: { mode: "arrival", uncapped: undefined },
        deleteOnEmpty: { minAgeSecs: null },
      },
    );
    assert.deepEqual(
      parseStreamReconfiguration({ timestamping: { mode: null, uncapped: true } }, "").timestamping,
      { mode: null, uncapped: true },
    );
    assert.deepEqual(parseStreamReconfiguration({ delete_on_empty: {} }, "").deleteOnEmpty, {
      minAgeSecs: undefined,
    });
  });

  it("rejects wrong types with bad_json and leaves age 0 to validation", () => {
    assertBadJson(() => parseStreamReconfiguration({ timestamping: 5 }, ""), "timestamping");
    assertBadJson(
      () => parseStreamReconfiguration({ delete_on_empty: { min_age_secs: "1" } }, ""),
      "delete_on_empty.min_age_secs",
    );
    assertBadJson(() => parseStreamReconfiguration("{}", ""));
    const change = parseStreamReconfiguration({ retention_policy: { age: 0 } }, "");
    assert.equal(validateStreamReconfiguration(change), "age must be greater than 0 seconds");
  });
});

describe("parseBasinConfig", () => {
  it("fills defaults for absent and null fields", () => {
    const defaults: BasinConfig = {
      defaultStreamConfig: null,
      streamCipher: null,
      createStreamOnAppend: false,
      createStreamOnRead: false,
    };
    assert.deepEqual(parseBasinConfig({}, "config"), defaults);
    assert.deepEqual(
      parseBasinConfig({ default_stream_config: null, stream_cipher: null }, "config"),
      defaults,
    );
  });

  it("reads every field", () => {
    const config = parseBasinConfig(
      {
        default_stream_config: { storage_class: "standard" },
        stream_cipher: "aegis-256",
        create_stream_on_append: true,
        create_stream_on_read: true,
      },
      "config",
    );
    assert.equal(config.streamCipher, "aegis-256");
    assert.equal(config.defaultStreamConfig?.storageClass, "standard");
    assert.equal(config.createStreamOnAppend, true);
    assert.equal(config.createStreamOnRead, true);
    assert.equal(validateBasinConfig(config), undefined);
  });

  it("rejects null booleans, unknown ciphers and bad defaults with bad_json", () => {
    assertBadJson(
      () => parseBasinConfig({ create_stream_on_append: null }, "config"),
      "config.create_stream_on_append",
    );
    assertBadJson(
      () => parseBasinConfig({ create_stream_on_read: "true" }, "config"),
      "config.create_stream_on_read",
    );
    assertBadJson(
      () => parseBasinConfig({ stream_cipher: "rot13" }, "config"),
      "config.stream_cipher",
    );
    assertBadJson(
      () => parseBasinConfig({ default_stream_config: { storage_class: "x" } }, "config"),
      "config.default_stream_config.storage_class",
    );
  });
});

describe("parseBasinReconfiguration", () => {
  it("keeps absent, null and values apart", () => {
    assert.deepEqual(parseBasinReconfiguration({}, ""), {
      defaultStreamConfig: undefined,
      streamCipher: undefined,
      createStreamOnAppend: undefined,
      createStreamOnRead: undefined,
    });
    assert.deepEqual(
      parseBasinReconfiguration({ default_stream_config: null, stream_cipher: null }, ""),
      {
        defaultStreamConfig: null,
        streamCipher: null,
        createStreamOnAppend: undefined,
        createStreamOnRead: undefined,
      },
    );
    const change = parseBasinReconfiguration(
      {
        default_stream_config: { retention_policy: null, storage_class: "standard" },
        stream_cipher: "aes-256-gcm",
        create_stream_on_append: false,
        create_stream_on_read: true,
      },
      "",
    );
    assert.equal(change.defaultStreamConfig?.retentionPolicy, null);
    assert.equal(change.defaultStreamConfig?.storageClass, "standard");
    assert.equal(change.defaultStreamConfig?.timestamping, undefined);
    assert.equal(change.streamCipher, "aes-256-gcm");
    assert.equal(change.createStreamOnAppend, false);
    assert.equal(change.createStreamOnRead, true);
  });

  it("rejects null for the booleans (lite: 400)", () => {
    assertBadJson(
      () => parseBasinReconfiguration({ create_stream_on_append: null }, ""),
      "create_stream_on_append",
    );
    assertBadJson(
      () => parseBasinReconfiguration({ create_stream_on_read: null }, ""),
      "create_stream_on_read",
    );
  });
});

describe("rendering", () => {
  it("fills in every field of a resolved config", () => {
    const config = resolveStreamConfig(undefined, null);
    assert.equal(
      JSON.stringify(renderStreamConfig(config)),
      '{"storage_class":"express","retention_policy":{"age":604800},' +
        '"timestamping":{"mode":"client-prefer","uncapped":false},"delete_on_empty":{"min_age_secs":0}}',
    );
    assert.deepEqual(
      renderStreamConfig({ ...config, retentionPolicy: { kind: "infinite" } }).retention_policy,
      { infinite: {} },
    );
  });

  it("renders basin configs with explicit nulls, in lite's key order", () => {
    assert.equal(
      JSON.stringify(
        renderBasinConfig({
          defaultStreamConfig: null,
          streamCipher: null,
          createStreamOnAppend: true,
          createStreamOnRead: false,
        }),
      ),
      '{"default_stream_config":null,"stream_cipher":null,' +
        '"create_stream_on_append":true,"create_stream_on_read":false}',
    );
    assert.equal(
      JSON.stringify(
        renderBasinConfig({
          defaultStreamConfig: {
            timestamping: { uncapped: true },
            deleteOnEmpty: { minAgeSecs: 0 },
          },
          streamCipher: "aegis-256",
          createStreamOnAppend: false,
          createStreamOnRead: false,
        }).default_stream_config,
      ),
      '{"storage_class":null,"retention_policy":null,' +
        '"timestamping":{"mode":null,"uncapped":true},"delete_on_empty":{"min_age_secs":0}}',
    );
  });

  it("renders defaults that set nothing as null", () => {
    const config = renderBasinConfig({
      defaultStreamConfig: { timestamping: {} },
      streamCipher: null,
      createStreamOnAppend: false,
      createStreamOnRead: false,
    });
    assert.equal(config.default_stream_config, null);
  });
});

const arbitraryRetention = fc.oneof(
  fc.record({ kind: fc.constant("age" as const), ageSecs: fc.integer({ min: 1 }) }),
  fc.constant({ kind: "infinite" as const }),
);

const arbitraryInput: fc.Arbitrary<StreamConfigInput> = fc.record(
  {
    storageClass: fc.constantFrom("standard" as const, "express" as const),
    retentionPolicy: arbitraryRetention,
    timestamping: fc.record(
      {
        mode: fc.constantFrom(
          "client-prefer" as const,
          "client-require" as const,
          "arrival" as const,
        ),
        uncapped: fc.boolean(),
      },
      { requiredKeys: [] },
    ),
    deleteOnEmpty: fc.record({ minAgeSecs: fc.nat() }),
  },
  { requiredKeys: [] },
);

describe("round trips", () => {
  it("a partial config survives render → JSON → parse", () => {
    fc.assert(
      fc.property(arbitraryInput, (input) => {
        const parsed = parseStreamConfigInput(wire(renderStreamConfigInput(input)), "");
        assert.deepEqual(normalizeStreamConfigInput(parsed), normalizeStreamConfigInput(input));
      }),
    );
  });

  it("a resolved config survives render → JSON → parse → resolve", () => {
    fc.assert(
      fc.property(arbitraryInput, (input) => {
        const config: StreamConfig = resolveStreamConfig(input, null);
        const parsed = parseStreamConfigInput(wire(renderStreamConfig(config)), "");
        assert.deepEqual(resolveStreamConfig(parsed, { storageClass: "standard" }), config);
      }),
    );
  });

  it("a basin config survives render → JSON → parse", () => {
    fc.assert(
      fc.property(
        fc.option(arbitraryInput, { nil: null }),
        fc.constantFrom(null, "aegis-256" as const, "aes-256-gcm" as const),
        fc.boolean(),
        fc.boolean(),
        (defaults, streamCipher, createStreamOnAppend, createStreamOnRead) => {
          const config: BasinConfig = {
            defaultStreamConfig: defaults,
            streamCipher,
            createStreamOnAppend,
            createStreamOnRead,
          };
          const rendered = renderBasinConfig(config);
          const parsed = parseBasinConfig(wire(rendered), "config");
          assert.deepEqual(renderBasinConfig(parsed), rendered);
        },
      ),
    );
  });
});
