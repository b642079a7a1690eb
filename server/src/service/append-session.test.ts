// Goal: the append pipeline's own transitions, below any protocol: an input submitted after the
// session failed is never applied, an error that ends the input after a clean end still ends the
// session, and an abandoned session releases no reply while its submitted inputs still become
// durable. Method: an `AppendSession` on a real service over memory stores; the stream is read back.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureTestBasin, openTestService, testBasin } from "../../test/support/engine.js";
import { S2Error } from "../core/errors.js";
import type { AppendInput } from "../core/records.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import { AppendSession } from "./append-session.js";
import type { Service } from "./service.js";

const encoder = new TextEncoder();

function input(body: string, matchSeqNum?: number): AppendInput {
  return { records: [{ headers: [], body: encoder.encode(body) }], matchSeqNum };
}

/** Every reply until the session ends: the acks' start seq nums, and the error if it failed. */
async function drain(session: AppendSession): Promise<{ starts: number[]; error?: unknown }> {
  const starts: number[] = [];
  try {
    for await (const ack of session.replies()) starts.push(ack.start.seqNum);
  } catch (error) {
    return { starts, error };
  }
  return { starts };
}

describe("append pipeline", () => {
  let service: Service;

  before(async () => {
    service = await openTestService({ store: createMemoryObjectStore() });
    await ensureTestBasin(service);
  });

  after(async () => {
    await service?.close();
  });

  const tailOf = async (stream: string) =>
    (await service.records.checkTail(testBasin, stream)).seqNum;

  it("drops an input submitted after the session failed: it is never applied", async () => {
    const session = new AppendSession(service.records, { basin: testBasin, stream: "failed" });
    session.submit(input("a"));
    session.submit(input("b", 7));
    const { starts, error } = await drain(session);
    assert.deepEqual(starts, [0]);
    assert.ok(error instanceof S2Error, String(error));
    assert.equal(session.isInputEnded, true);
    session.submit(input("c"));
    await service.records.append(testBasin, "failed", input("after"));
    assert.equal(await tailOf("failed"), 2, "only `a` and the later unary append");
  });

  it("ends with an error given after a clean end of input, after every ack", async () => {
    const session = new AppendSession(service.records, { basin: testBasin, stream: "late" });
    session.submit(input("a"));
    session.submit(input("b"));
    session.endInput();
    const revoked = new S2Error("authn", "token revoked");
    session.endInput(revoked);
    session.endInput(new S2Error("authn", "a second error is ignored"));
    assert.deepEqual(await drain(session), { starts: [0, 1], error: revoked });
  });

  it("releases no reply once abandoned; inputs already submitted still become durable", async () => {
    const session = new AppendSession(service.records, { basin: testBasin, stream: "gone" });
    await service.streams.create({ basin: testBasin, name: "gone" });
    for (const body of ["a", "b", "c"]) session.submit(input(body));
    session.abandon();
    assert.deepEqual(await drain(session), { starts: [] });
    // Bounded: 200 polls of 20 ms.
    let tail = await tailOf("gone");
    for (let poll = 0; poll < 200 && tail < 3; poll++) {
      await sleep(20);
      tail = await tailOf("gone");
    }
    assert.equal(tail, 3);
  });
});
