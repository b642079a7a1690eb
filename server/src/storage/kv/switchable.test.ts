// Goal: the changed-key record that incremental checkpoints rest on (bottomless.md "Incremental
// checkpoints") names every key whose value may differ between two takes: a batch is recorded
// when issued and again once applied, so one in flight across a take is in both; writes that
// change rows without naming them make the next take incomplete; a restore puts a take back.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryKvStore } from "./memory.js";
import { ChangedKeys, SwitchableKvStore } from "./switchable.js";

const encoder = new TextEncoder();
const key = (text: string) => encoder.encode(text);
const put = (text: string) => ({ type: "put" as const, key: key(text), value: key("v") });

describe("SwitchableKvStore's changed keys", () => {
  it("names a batch in flight across a take in that take and the next", async () => {
    const kv = new SwitchableKvStore(createMemoryKvStore());
    const changes = kv.recordChanges((k) => k[0] !== "x".charCodeAt(0));
    const writing = kv.write([put("a"), put("x-untracked")]);
    const first = changes.take();
    await writing;
    const second = changes.take();
    assert.deepEqual([...first.keys.keys()], ["a"]);
    assert.deepEqual([...second.keys.keys()], ["a"], "recorded again once applied");
    assert.equal(changes.take().keys.size, 0, "nothing since");
  });

  it("records deletes, and a restore puts a take back", async () => {
    const kv = new SwitchableKvStore(createMemoryKvStore());
    const changes = kv.recordChanges(() => true);
    await kv.write([put("a"), { type: "del", key: key("b") }]);
    const taken = changes.take();
    await kv.write([put("c")]);
    changes.restore(taken);
    assert.deepEqual([...changes.take().keys.keys()].sort(), ["a", "b", "c"]);
  });

  it("drops the record past its bound, and then the take is incomplete", async () => {
    const changes = new ChangedKeys(() => true, 3);
    changes.note([put("a"), put("b"), put("c")]);
    assert.equal(changes.take().keys.size, 3, "at the bound: kept");
    changes.note([put("a"), put("b"), put("c"), put("d")]);
    const over = changes.take();
    assert.equal(over.isComplete, false);
    assert.equal(over.keys.size, 0);
    changes.note([put("a"), put("b")]);
    const taken = changes.take();
    changes.note([put("c"), put("d")]);
    changes.restore(taken);
    assert.equal(changes.take().isComplete, false, "a restore past the bound drops the record too");
  });

  it("a clear or a switch of target makes the next take incomplete, and only it", async () => {
    const kv = new SwitchableKvStore(createMemoryKvStore());
    const changes = kv.recordChanges(() => true);
    await kv.clear({});
    assert.equal(changes.take().isComplete, false);
    assert.equal(changes.take().isComplete, true);
    kv.switchTo(createMemoryKvStore());
    const incomplete = changes.take();
    assert.equal(incomplete.isComplete, false);
    changes.restore(incomplete);
    assert.equal(changes.take().isComplete, false, "a restored incomplete take stays incomplete");
  });
});
