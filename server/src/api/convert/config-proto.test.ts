// Goal: the tributary.v1 config messages mean what the REST JSON shapes mean: unset fields stay
// unset, a FieldMask path changes its field (reset when unset), bad values are 422 `invalid`.
// Method: convert literal messages and compare with the domain values written out by hand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import {
  BasinConfigSchema,
  StorageClass,
  StreamConfigSchema,
  TimestampingMode,
} from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { S2Error } from "../../core/errors.js";
import {
  basinConfigFromProto,
  basinConfigToProto,
  basinReconfigurationFromProto,
  streamConfigInputFromProto,
  streamConfigToProto,
  streamReconfigurationFromProto,
} from "./config-proto.js";

const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });

describe("config-proto", () => {
  it("keeps unset stream fields unset and round-trips set ones", () => {
    assert.deepEqual(streamConfigInputFromProto(create(StreamConfigSchema)), {});
    const message = create(StreamConfigSchema, {
      storageClass: StorageClass.STANDARD,
      retentionPolicy: { policy: { case: "ageSecs", value: 60n } },
      timestamping: { mode: TimestampingMode.ARRIVAL },
      deleteOnEmpty: { minAgeSecs: 5n },
    });
    const input = streamConfigInputFromProto(message);
    assert.deepEqual(input, {
      storageClass: "standard",
      retentionPolicy: { kind: "age", ageSecs: 60 },
      timestamping: { mode: "arrival" },
      deleteOnEmpty: { minAgeSecs: 5 },
    });
    assert.deepEqual(streamConfigToProto(input!), message);
  });

  it("round-trips a basin config; an absent one is undefined", () => {
    assert.equal(basinConfigFromProto(undefined), undefined);
    const config = {
      defaultStreamConfig: { storageClass: "express" as const },
      streamCipher: "aegis-256" as const,
      createStreamOnAppend: true,
      createStreamOnRead: false,
    };
    assert.deepEqual(basinConfigFromProto(basinConfigToProto(config)), config);
  });

  it("turns mask paths into a PATCH: unset means reset", () => {
    const config = create(StreamConfigSchema, { timestamping: { uncapped: true } });
    assert.deepEqual(
      streamReconfigurationFromProto(config, mask("storage_class", "timestamping.uncapped")),
      { storageClass: null, timestamping: { uncapped: true } },
    );
    assert.deepEqual(streamReconfigurationFromProto(config, mask()), {});
    const basin = create(BasinConfigSchema, {
      createStreamOnRead: true,
      defaultStreamConfig: { retentionPolicy: { policy: { case: "infinite", value: {} } } },
    });
    assert.deepEqual(
      basinReconfigurationFromProto(
        basin,
        mask("create_stream_on_read", "default_stream_config.retention_policy", "stream_cipher"),
      ),
      {
        createStreamOnRead: true,
        streamCipher: null,
        defaultStreamConfig: { retentionPolicy: { kind: "infinite" } },
      },
    );
  });

  it("rejects unknown mask paths, unknown enum values and unsafe u64s with 422", () => {
    const isInvalid = (error: unknown) => error instanceof S2Error && error.code === "invalid";
    assert.throws(() => streamReconfigurationFromProto(undefined, mask("bogus")), isInvalid);
    assert.throws(
      () => basinReconfigurationFromProto(undefined, mask("default_stream_config.bogus")),
      isInvalid,
    );
    assert.throws(
      () =>
        streamConfigInputFromProto(create(StreamConfigSchema, { storageClass: 9 as StorageClass })),
      isInvalid,
    );
    assert.throws(
      () =>
        streamConfigInputFromProto(
          create(StreamConfigSchema, { deleteOnEmpty: { minAgeSecs: 1n << 60n } }),
        ),
      isInvalid,
    );
  });
});
