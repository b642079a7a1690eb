// Goal: frames still arriving never hold more than the server's frame budget, over the server or
// one connection, and a frame that waited for room decodes intact once it gets it (issue 14).
// Method: the budget on its own (caps, waiters woken as room frees, cancels), then frame decoders
// sharing a small budget, fed interleaved chunks as sessions on one connection would be.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ApiRequest } from "./http/request-context.js";
import { encodeS2sFrame, type S2sFrame, S2sFrameDecoder } from "./s2s/frame.js";
import { FrameBudget } from "./frame-budget.js";

/** A request on `connection` (an HTTP/1.1 socket stands in for any connection object). */
function requestOn(connection: object): ApiRequest {
  return { socket: connection } as unknown as ApiRequest;
}

describe("S2S frame budget", () => {
  it("reserves within the server's and each connection's cap", () => {
    const budget = new FrameBudget(100, 60);
    const first = budget.accountFor(requestOn({}));
    const second = budget.accountFor(requestOn({}));
    assert.ok(first.tryReserve(60));
    assert.equal(first.tryReserve(1), false, "the connection's share is full");
    assert.ok(second.tryReserve(40));
    assert.equal(second.tryReserve(1), false, "the server's budget is full");
    assert.equal(budget.reservedBytes, 100);
    first.release(60);
    second.release(40);
    assert.equal(budget.reservedBytes, 0);
  });

  it("grants waiters, in order among those that fit, as room frees; a cancelled one never", () => {
    const budget = new FrameBudget(100, 100);
    const holder = budget.accountFor(requestOn({}));
    assert.ok(holder.tryReserve(100));
    const granted: string[] = [];
    const account = budget.accountFor(requestOn({}));
    account.waitToReserve(80, () => granted.push("big"));
    const cancel = account.waitToReserve(10, () => granted.push("cancelled"));
    account.waitToReserve(20, () => granted.push("small"));
    cancel();
    assert.equal(budget.waitingCount, 2);
    holder.release(50);
    assert.deepEqual(granted, ["small"], "the big one does not fit yet; the small one does");
    holder.release(50);
    assert.deepEqual(granted, ["small", "big"]);
    assert.equal(budget.reservedBytes, 100);
    assert.equal(budget.waitingCount, 0);
  });
});

describe("S2S frame decoders sharing a budget", () => {
  const payloadBytes = 1000;
  const frame = (fill: number): Uint8Array =>
    encodeS2sFrame(new Uint8Array(payloadBytes - 1).fill(fill));

  it("a frame waits after its header until room frees, then decodes intact", async () => {
    // Room for one frame's payload: two sessions on one connection take turns.
    const budget = new FrameBudget(payloadBytes, payloadBytes);
    const connection = {};
    let roomCalls = 0;
    const first = new S2sFrameDecoder({
      budget: budget.accountFor(requestOn(connection)),
      onRoom: () => {},
    });
    const second = new S2sFrameDecoder({
      budget: budget.accountFor(requestOn(connection)),
      onRoom: () => roomCalls++,
    });
    const a = frame(1);
    const b = frame(2);
    assert.deepEqual(first.push(a.subarray(0, 500)).frames, []);
    assert.deepEqual(second.push(b.subarray(0, 700)).frames, []);
    assert.ok(second.isWaitingForRoom, "no room for the second frame");
    assert.ok(second.hasPartialFrame);
    assert.deepEqual(second.push(b.subarray(700, 800)).frames, [], "kept while waiting");
    const firstFrames = first.push(a.subarray(500)).frames;
    assert.equal(firstFrames.length, 1, "the first frame completes and frees its room");
    assert.equal(second.isWaitingForRoom, false, "granted at once");
    assert.equal(roomCalls, 0, "told asynchronously");
    await Promise.resolve();
    assert.equal(roomCalls, 1);
    const secondFrames: S2sFrame[] = [...second.push(new Uint8Array(0)).frames];
    secondFrames.push(...second.push(b.subarray(800)).frames);
    assert.equal(secondFrames.length, 1);
    assert.deepEqual(secondFrames[0]!.payload, b.subarray(4));
    assert.equal(budget.reservedBytes, 0, "every reservation released");
  });

  it("close releases a reservation and stops a wait", () => {
    const budget = new FrameBudget(payloadBytes, payloadBytes);
    const decoders = [0, 1].map(
      () => new S2sFrameDecoder({ budget: budget.accountFor(requestOn({})), onRoom: () => {} }),
    );
    const bytes = frame(3).subarray(0, 100);
    for (const decoder of decoders) decoder.push(bytes);
    assert.ok(decoders[1]!.isWaitingForRoom);
    decoders[1]!.close();
    assert.equal(budget.waitingCount, 0);
    decoders[0]!.close();
    assert.equal(budget.reservedBytes, 0);
    assert.ok(decoders[0]!.push(bytes).error !== undefined, "no input after close");
  });
});
