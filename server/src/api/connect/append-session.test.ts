// Goal: the RPC append session keeps acks in input order whatever order appends complete in,
// stops pulling inputs at its in-flight bound while acks are not taken, and ends with the first
// failure after the acks before it. Method: `serveAppendSession` over a fake record service whose
// appends the test resolves by hand, an endless input source that counts pulls, and a consumer
// that takes acks one `next()` at a time.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import {
  type AppendSessionRequest,
  AppendSessionRequestSchema,
} from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { S2Error } from "../../core/errors.js";
import { appendSessionInflightBytesMax, appendSessionInputBytesMin } from "../../core/limits.js";
import type { AppendAck, AppendInput } from "../../core/records.js";
import type { AppendSessionHandle } from "../../streamer/streamer.js";
import type { ApiDeps } from "../routes.js";
import { serveAppendSession } from "./append-session.js";

interface PendingAppend {
  readonly input: AppendInput;
  readonly session: AppendSessionHandle | undefined;
  resolve(ack: AppendAck): void;
  reject(error: unknown): void;
}

/** Small inputs are charged `appendSessionInputBytesMin`: this many fill the in-flight bound. */
const smallInputsMax = appendSessionInflightBytesMax / appendSessionInputBytesMin;

function fakeDeps(appends: PendingAppend[]): ApiDeps {
  const records = {
    resolveForAppend: async () => {},
    append: (
      _basin: string,
      _stream: string,
      input: AppendInput,
      options: { session?: AppendSessionHandle },
    ) =>
      new Promise<AppendAck>((resolve, reject) => {
        appends.push({ input, session: options.session, resolve, reject });
      }),
  };
  const metrics = { observeAppend: () => {}, addSessions: () => {} };
  const tokenWatch = { lease: () => ({ signal: new AbortController().signal, release() {} }) };
  return { service: { records }, metrics, tokenWatch } as unknown as ApiDeps;
}

function context(): HandlerContext {
  return {
    signal: new AbortController().signal,
    requestHeader: new Headers(),
    // No principal set: the open principal (`--no-auth`) is the context key's default.
    values: createContextValues(),
  } as unknown as HandlerContext;
}

function request(first: boolean, body: string): AppendSessionRequest {
  return create(AppendSessionRequestSchema, {
    ...(first && { basin: "basin-one", stream: "s" }),
    input: { records: [{ body: new TextEncoder().encode(body) }] },
  });
}

function ackOf(seqNum: number): AppendAck {
  const position = (n: number) => ({ seqNum: n, timestamp: 0 });
  return { start: position(seqNum), end: position(seqNum + 1), tail: position(seqNum + 1) };
}

/** An endless input source that counts how many messages were pulled. */
function endlessInputs(): { inputs: AsyncIterable<AppendSessionRequest>; pulled(): number } {
  let pulled = 0;
  return {
    inputs: {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: false, value: request(pulled++ === 0, `r${pulled}`) }),
      }),
    },
    pulled: () => pulled,
  };
}

describe("RPC append session", () => {
  it("acks in input order when appends complete out of order", async () => {
    const appends: PendingAppend[] = [];
    async function* three() {
      yield request(true, "a");
      yield request(false, "b");
      yield request(false, "c");
    }
    const session = serveAppendSession(three(), context(), fakeDeps(appends));
    const acks = (async () => {
      const seen: number[] = [];
      for await (const response of session) seen.push(Number(response.ack?.start?.seqNum));
      return seen;
    })();
    while (appends.length < 3) await tick();
    appends[2]!.resolve(ackOf(2));
    appends[1]!.resolve(ackOf(1));
    appends[0]!.resolve(ackOf(0));
    assert.deepEqual(await acks, [0, 1, 2]);
  });

  it("stops pulling inputs at its bound while acks are not taken", async () => {
    const appends: PendingAppend[] = [];
    const source = endlessInputs();
    const session = serveAppendSession(source.inputs, context(), fakeDeps(appends));
    const first = session.next();
    for (let i = 0; i < 50; i++) await tick();
    assert.equal(source.pulled(), smallInputsMax);
    for (const [i, append] of appends.entries()) append.resolve(ackOf(i));
    assert.equal((await first).value?.ack?.start?.seqNum, 0n);
    for (let i = 0; i < 50; i++) await tick();
    // The generator is suspended at its first `yield`: its ack still counts until taken.
    assert.equal(source.pulled(), smallInputsMax);
    await session.next();
    for (let i = 0; i < 50; i++) await tick();
    assert.equal(source.pulled(), smallInputsMax + 1);
    await session.return(undefined);
  });

  it("ends with the first failure after the acks before it; later inputs are poisoned", async () => {
    const appends: PendingAppend[] = [];
    async function* three() {
      yield request(true, "a");
      yield request(false, "b");
      yield request(false, "c");
    }
    const session = serveAppendSession(three(), context(), fakeDeps(appends));
    const outcome = (async () => {
      const seen: number[] = [];
      try {
        for await (const response of session) seen.push(Number(response.ack?.start?.seqNum));
      } catch (error) {
        return { seen, error };
      }
      return { seen, error: undefined };
    })();
    while (appends.length < 3) await tick();
    appends[0]!.resolve(ackOf(0));
    const failure = new S2Error("invalid", "bad batch");
    // The streamer poisons the session when an append fails before being sequenced.
    appends[1]!.session!.isPoisoned = true;
    appends[1]!.reject(failure);
    assert.equal(appends[2]!.session!.isPoisoned, true);
    appends[2]!.reject(new S2Error("invalid", "poisoned"));
    const { seen, error } = await outcome;
    assert.deepEqual(seen, [0]);
    assert.equal(error, failure);
  });

  it("rejects a later message that names another stream, after the acks before it", async () => {
    const appends: PendingAppend[] = [];
    async function* two() {
      yield request(true, "a");
      yield create(AppendSessionRequestSchema, { basin: "basin-one", stream: "other" });
    }
    const session = serveAppendSession(two(), context(), fakeDeps(appends));
    const outcome = (async () => {
      const seen: number[] = [];
      try {
        for await (const response of session) seen.push(Number(response.ack?.start?.seqNum));
      } catch (error) {
        return { seen, error };
      }
      return { seen, error: undefined };
    })();
    while (appends.length < 1) await tick();
    appends[0]!.resolve(ackOf(0));
    const { seen, error } = await outcome;
    assert.deepEqual(seen, [0]);
    assert.ok(error instanceof S2Error && error.code === "invalid", String(error));
    assert.equal(appends.length, 1);
  });
});
