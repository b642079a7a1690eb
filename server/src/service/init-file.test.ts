// Goal: the init file parses as s2-lite's does and applies idempotently with ensure semantics.
// Method: parse good and bad documents, then apply one twice to a Service on memory stores.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import { openTestService } from "../../test/support/engine.js";
import { applyInitSpec, InitFileError, parseHumantimeSecs, parseInitFile } from "./init-file.js";

const example = JSON.stringify({
  basins: [
    {
      name: "my-basin",
      config: {
        default_stream_config: {
          storage_class: "express",
          retention_policy: "7days",
          timestamping: { mode: "client-prefer", uncapped: false },
          delete_on_empty: { min_age: "1h" },
        },
        stream_cipher: "aegis-256",
        create_stream_on_append: true,
        create_stream_on_read: false,
      },
      streams: [{ name: "events/orders", config: { retention_policy: "infinite" } }],
    },
  ],
});

describe("init file", () => {
  it("parses humantime durations", () => {
    assert.equal(parseHumantimeSecs("7days", "x"), 7 * 86_400);
    assert.equal(parseHumantimeSecs("1w", "x"), 604_800);
    assert.equal(parseHumantimeSecs("2h 30m", "x"), 9_000);
    assert.equal(parseHumantimeSecs("90s", "x"), 90);
    for (const bad of ["", "7", "days", "7 parsecs", "1h x"]) {
      assert.throws(() => parseHumantimeSecs(bad, "x"), InitFileError, bad);
    }
  });

  it("parses the documented example", () => {
    const spec = parseInitFile(example);
    const basin = spec.basins[0]!;
    assert.equal(basin.name, "my-basin");
    assert.deepEqual(basin.config?.defaultStreamConfig?.retentionPolicy, {
      kind: "age",
      ageSecs: 604_800,
    });
    assert.deepEqual(basin.config?.defaultStreamConfig?.deleteOnEmpty, { minAgeSecs: 3600 });
    assert.equal(basin.config?.streamCipher, "aegis-256");
    assert.deepEqual(basin.streams[0], {
      name: "events/orders",
      config: { retentionPolicy: { kind: "infinite" } },
    });
  });

  it("rejects unknown keys, duplicates, zero ages and bad names", () => {
    const bad = [
      "not json",
      JSON.stringify({ basins: [{ name: "my-basin", extra: 1 }] }),
      JSON.stringify({ basins: [{ name: "my-basin" }, { name: "my-basin" }] }),
      JSON.stringify({ basins: [{ name: "my-basin", streams: [{ name: "s" }, { name: "s" }] }] }),
      JSON.stringify({
        basins: [
          { name: "my-basin", streams: [{ name: "s", config: { retention_policy: "0s" } }] },
        ],
      }),
      JSON.stringify({ basins: [{ name: "BAD" }] }),
      JSON.stringify({
        basins: [{ name: "my-basin", config: { default_stream_config: { bogus: true } } }],
      }),
    ];
    for (const text of bad) assert.throws(() => parseInitFile(text), InitFileError, text);
  });

  it("applies with ensure semantics, idempotently", async () => {
    const service = await openTestService({ store: createMemoryObjectStore() });
    const spec = parseInitFile(example);
    const first = await applyInitSpec(service, spec);
    assert.deepEqual(first, ["basin my-basin created", "stream my-basin/events/orders created"]);
    assert.deepEqual(await applyInitSpec(service, spec), []);
    const config = service.streams.getConfig("my-basin", "events/orders");
    assert.deepEqual(config.retentionPolicy, { kind: "infinite" });
    assert.equal(config.deleteOnEmpty.minAgeSecs, 3600, "basin defaults apply to the rest");
    await service.close();
  });
});
