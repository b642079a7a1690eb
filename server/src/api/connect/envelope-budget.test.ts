// Goal: the envelope gate passes an RPC body through byte for byte, however it is chunked, while
// holding each message's declared length in the frame budget exactly from its header until the
// consumer asks for more after its last byte; a message too large for connect-node is not
// reserved; a stalled partial message and a message that waits too long for room fail with the
// error table's codes; every reservation is released when the body ends, fails or is abandoned,
// and at once when the call is over (`close`), whatever the gate is doing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { connectErrorMetadata } from "@tributary/protocol";
import type { FrameBufferAccount } from "../frame-budget.js";
import { EnvelopeGate, hasEnvelopedBody } from "./envelope-budget.js";

/** The gate's body alone (most tests never close it from outside). */
function envelopesWithinBudget(
  body: AsyncIterable<Uint8Array>,
  account: FrameBufferAccount,
  options: { stallTimeoutMs: number; messageBytesMax: number },
): AsyncGenerator<Uint8Array, void, undefined> {
  return new EnvelopeGate(body, account, options).body;
}

/** An account over a plain counter with a cap; waiters are woken by `release`. */
function counterAccount(capBytes: number) {
  const state = { reserved: 0, maxReserved: 0, waiting: 0 };
  const waiters = new Set<{ bytes: number; onReserved: () => void }>();
  const account: FrameBufferAccount = {
    tryReserve(bytes) {
      if (state.reserved + bytes > capBytes) return false;
      state.reserved += bytes;
      state.maxReserved = Math.max(state.maxReserved, state.reserved);
      return true;
    },
    waitToReserve(bytes, onReserved) {
      const waiter = { bytes, onReserved };
      waiters.add(waiter);
      state.waiting = waiters.size;
      return () => {
        waiters.delete(waiter);
        state.waiting = waiters.size;
      };
    },
    release(bytes) {
      assert.ok(state.reserved >= bytes, "released no more than reserved");
      state.reserved -= bytes;
      for (const waiter of waiters) {
        if (!account.tryReserve(waiter.bytes)) continue;
        waiters.delete(waiter);
        state.waiting = waiters.size;
        waiter.onReserved();
      }
    },
  };
  return { account, state };
}

function envelope(payload: Uint8Array, flags = 0): Uint8Array {
  const bytes = new Uint8Array(5 + payload.length);
  bytes[0] = flags;
  new DataView(bytes.buffer).setUint32(1, payload.length);
  bytes.set(payload, 5);
  return bytes;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** `bytes` cut at the given offsets. */
function chunksOf(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    chunks.push(bytes.subarray(start, cut));
    start = cut;
  }
  return chunks;
}

async function* fromChunks(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

const options = { stallTimeoutMs: 200, messageBytesMax: 1000 };

describe("envelopesWithinBudget", () => {
  it("passes every byte through in order, for any chunking, and releases all", async () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const payloads = [0, 1, 4, 5, 999, 1000, 37].map((n) =>
      Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) % 256),
    );
    const body = concat(payloads.map((payload) => envelope(payload)));
    for (let round = 0; round < 50; round++) {
      const cuts = [
        ...new Set(Array.from({ length: 12 }, () => Math.floor(random() * body.length))),
      ]
        .filter((cut) => cut > 0)
        .sort((a, b) => a - b);
      const { account, state } = counterAccount(1000);
      const out: Uint8Array[] = [];
      for await (const chunk of envelopesWithinBudget(
        fromChunks(chunksOf(body, cuts)),
        account,
        options,
      )) {
        out.push(Uint8Array.from(chunk));
      }
      assert.deepEqual(concat(out), body, `round ${round}: the body is unchanged`);
      assert.equal(state.reserved, 0, "everything released");
      assert.equal(state.maxReserved, 1000, "one message reserved at a time, the largest whole");
    }
  });

  it("holds a message's length from its header until the consumer pulls after its last byte", async () => {
    const { account, state } = counterAccount(10_000);
    const body = concat([envelope(new Uint8Array(300)), envelope(new Uint8Array(200))]);
    const gate = envelopesWithinBudget(fromChunks(chunksOf(body, [3, 5, 105, 305])), account, {
      ...options,
    });
    const reservedAfterEachPull: number[] = [];
    for await (const _ of gate) reservedAfterEachPull.push(state.reserved);
    // Pieces: header of 1 (reserved 300 once the header is whole), payload in 3 pieces, header of
    // 2 (300 released when the consumer came back for it, 200 reserved), payload; then the end.
    assert.deepEqual(reservedAfterEachPull, [300, 300, 300, 200, 200]);
    assert.equal(state.reserved, 0);
  });

  it("frees a message's room once it is taken, and lets the client be quiet between messages", async () => {
    const { account, state } = counterAccount(10_000);
    let sendSecond: () => void = () => {};
    const secondSent = new Promise<void>((resolve) => {
      sendSecond = resolve;
    });
    async function* quietBetween(): AsyncGenerator<Uint8Array> {
      yield envelope(new Uint8Array(300));
      await secondSent; // longer than the stall timeout: no message is partial meanwhile
      yield envelope(new Uint8Array(20));
    }
    const gate = envelopesWithinBudget(quietBetween(), account, { ...options, stallTimeoutMs: 50 });
    await gate.next(); // header
    await gate.next(); // payload: the whole message
    assert.equal(state.reserved, 300);
    const pending = gate.next(); // the consumer took the message and asks for more
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(state.reserved, 0, "released while the client is quiet");
    sendSecond();
    assert.equal((await pending).done, false, "no stall between messages");
    assert.equal(state.reserved, 20);
    await gate.next();
    assert.equal((await gate.next()).done, true);
    assert.equal(state.reserved, 0);
  });

  it("does not reserve a message longer than connect-node accepts, and passes its header alone", async () => {
    const { account, state } = counterAccount(10_000);
    const header = envelope(new Uint8Array(1001)).subarray(0, 5);
    const gate = envelopesWithinBudget(
      fromChunks([header, new Uint8Array(1001)]),
      account,
      options,
    );
    const first = await gate.next();
    assert.deepEqual(first.value, header);
    assert.equal(state.reserved, 0);
    await assert.rejects(gate.next(), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.metadata.get(connectErrorMetadata.code), "invalid");
      return true;
    });
  });

  it("fails a partial message that stalls with request_timeout, and releases it", async () => {
    const { account, state } = counterAccount(10_000);
    async function* stalls(): AsyncGenerator<Uint8Array> {
      yield envelope(new Uint8Array(500)).subarray(0, 105);
      await new Promise(() => {}); // never sends the rest
    }
    const gate = envelopesWithinBudget(stalls(), account, options);
    await gate.next(); // the header
    await gate.next(); // 100 payload bytes
    assert.equal(state.reserved, 500);
    await assert.rejects(gate.next(), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.metadata.get(connectErrorMetadata.code), "request_timeout");
      return true;
    });
    assert.equal(state.reserved, 0);
  });

  it("waits for room, then proceeds once another message releases it; or fails with rate_limited", async () => {
    const { account, state } = counterAccount(600);
    const holder = envelopesWithinBudget(
      fromChunks([envelope(new Uint8Array(500)), envelope(new Uint8Array(1))]),
      account,
      options,
    );
    await holder.next(); // 500 reserved
    const waiter = envelopesWithinBudget(fromChunks([envelope(new Uint8Array(400))]), account, {
      ...options,
      stallTimeoutMs: 5_000,
    });
    const waiting = waiter.next();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(state.waiting, 1, "the second message waits for room");
    await holder.return(undefined); // abandoned: its reservation goes
    const header = await waiting;
    assert.equal(header.done, false);
    assert.equal(state.reserved, 400);
    await waiter.return(undefined);
    assert.equal(state.reserved, 0);

    const blocker = envelopesWithinBudget(
      fromChunks([envelope(new Uint8Array(600))]),
      account,
      options,
    );
    await blocker.next();
    const starved = envelopesWithinBudget(
      fromChunks([envelope(new Uint8Array(10))]),
      account,
      options,
    );
    await assert.rejects(starved.next(), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.metadata.get(connectErrorMetadata.code), "rate_limited");
      return true;
    });
    assert.equal(state.waiting, 0, "the wait was cancelled");
    await blocker.return(undefined);
    assert.equal(state.reserved, 0);
  });

  it("close lets go at once: of a message nobody takes, and of a wait for room", async () => {
    // A session that failed leaves its gate at a message nobody will take (the consumer never
    // asks again); the call's end closes it.
    const { account, state } = counterAccount(500);
    async function* pipelined(): AsyncGenerator<Uint8Array> {
      yield concat([envelope(new Uint8Array(300)), envelope(new Uint8Array(300))]);
      await new Promise(() => {}); // the client sends nothing more, and does not close
    }
    const held = new EnvelopeGate(pipelined(), account, { ...options, stallTimeoutMs: 60_000 });
    await held.body.next(); // the first message's header: 300 reserved
    assert.equal(state.reserved, 300);
    // A second gate's message waits for room behind it.
    const waiting = new EnvelopeGate(fromChunks([envelope(new Uint8Array(300))]), account, {
      ...options,
      stallTimeoutMs: 60_000,
    });
    const waited = waiting.body.next();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(state.waiting, 1);
    waiting.close();
    assert.equal(state.waiting, 0, "the wait is dropped at once");
    assert.equal((await waited).done, true, "and its body ends");
    held.close();
    assert.equal(state.reserved, 0, "the held message's room is free at once");
    assert.equal((await held.body.next()).done, true);
    held.close(); // idempotent
    assert.equal(state.reserved, 0);
  });

  it("after close, resets a request that has not ended once the drain's time is over", async () => {
    const { account } = counterAccount(10_000);
    let send: () => void = () => {};
    const sent = new Promise<void>((resolve) => {
      send = resolve;
    });
    async function* laterMore(): AsyncGenerator<Uint8Array> {
      yield envelope(new Uint8Array(10));
      await sent;
      yield envelope(new Uint8Array(10));
    }
    const resets: string[] = [];
    const options = { stallTimeoutMs: 60_000, messageBytesMax: 1000, drainTimeoutMs: 100 };
    // Sends again after its call was answered: left unread, reset after the drain's time (not
    // at once: the answer may still be on its way out).
    const eager = new EnvelopeGate(laterMore(), account, {
      ...options,
      reset: () => resets.push("eager"),
    });
    await eager.body.next();
    await eager.body.next();
    const pending = eager.body.next(); // waiting for more
    eager.close();
    send();
    assert.equal((await pending).done, true);
    assert.equal(resets.length, 0, "not at once");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(resets, ["eager"]);
    // Silent after its answer: reset after the drain's timeout.
    const silent = new EnvelopeGate(
      (async function* () {
        yield envelope(new Uint8Array(10));
        await new Promise(() => {});
      })(),
      account,
      { ...options, reset: () => resets.push("silent") },
    );
    await silent.body.next();
    await silent.body.next();
    void silent.body.next();
    silent.close();
    assert.deepEqual(resets, ["eager"], "not before the drain's timeout");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(resets, ["eager", "silent"]);
    // Ended before its answer: nothing to reset.
    const ended = new EnvelopeGate(fromChunks([envelope(new Uint8Array(10))]), account, {
      ...options,
      reset: () => resets.push("ended"),
    });
    for await (const _ of ended.body) {
      // drained to its end
    }
    ended.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(resets, ["eager", "silent"]);
  });

  it("gates gRPC, gRPC-web and Connect streaming bodies, not Connect unary ones", () => {
    for (const type of [
      "application/grpc",
      "application/grpc+proto",
      "application/grpc-web+proto",
    ]) {
      assert.equal(hasEnvelopedBody(type), true, type);
    }
    assert.equal(hasEnvelopedBody("application/connect+proto"), true);
    assert.equal(hasEnvelopedBody("application/connect+json"), true);
    for (const type of ["application/proto", "application/json", undefined]) {
      assert.equal(hasEnvelopedBody(type), false, String(type));
    }
  });
});
