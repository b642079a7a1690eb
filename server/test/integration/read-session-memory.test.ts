// Goal: a read session does not keep the batches it has served (issue 12): an S2S read session
// and an SSE read session that have served many batches and are still open (following at the
// tail) hold at most the batch in hand, not all of them. Each waited for its next batch with a
// `Promise.race` against promises that settle only when the session ends, and so kept every batch
// it had served: a 200 MiB catch-up read held ~200 MiB at its end. Method: the API server
// in-process on memory stores, the service's read sessions wrapped to keep a weak reference to
// every event they yield; the official SDK (S2S) and `fetch` (SSE) read everything appended, then,
// the sessions still open, a full GC (V8's flag exposed) and the events still reachable counted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { S2 } from "@s2-dev/streamstore";
import type { ApiServer } from "../../src/api/server.js";
import type { ReadEvent } from "../../src/service/read-session.js";
import type { Service } from "../../src/service/service.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import {
  ensureTestBasin,
  openTestService,
  startLoopbackApi,
  testBasin,
} from "../support/engine.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Appended batches: ~8 MiB of 8 KiB records, served in about eight 1 MiB read batches. */
const batchCount = 32;
const recordsPerBatch = 32;
const recordBytes = 8 << 10;
const recordCount = batchCount * recordsPerBatch;
/** Events a session may hold while it waits at the tail: the one it is in, and the next. */
const heldEventsMax = 2;

let service: Service;
let api: ApiServer;
/** A weak reference to every event the service's read sessions yielded. */
const yielded: WeakRef<ReadEvent>[] = [];

before(async () => {
  service = await openTestService({ store: createMemoryObjectStore() });
  await ensureTestBasin(service);
  const records = service.records;
  const open = records.openReadSession.bind(records);
  records.openReadSession = async (...args: Parameters<typeof open>) => {
    const events = await open(...args);
    async function* tracked(): AsyncGenerator<ReadEvent, void, undefined> {
      try {
        for (;;) {
          const next = await events.next();
          if (next.done === true) return;
          yielded.push(new WeakRef(next.value));
          yield next.value;
        }
      } finally {
        await events.return(undefined);
      }
    }
    return tracked();
  };
  api = await startLoopbackApi(service);
});

after(async () => {
  await api?.close();
  await service?.close();
});

async function appendRecords(stream: string): Promise<void> {
  const body = new Uint8Array(recordBytes).fill(7);
  for (let i = 0; i < batchCount; i++) {
    await service.records.append(testBasin, stream, {
      records: Array.from({ length: recordsPerBatch }, () => ({ headers: [], body })),
    });
  }
}

/** The yielded events still reachable after a full GC, out of those yielded since `from`. */
async function reachableSince(from: number): Promise<{ reachable: number; yielded: number }> {
  // WeakRef targets are kept to the end of the job that last touched them: collect in a later one.
  await nextTurn();
  gc();
  const since = yielded.slice(from);
  return {
    reachable: since.filter((ref) => ref.deref() !== undefined).length,
    yielded: since.length,
  };
}

describe("read sessions keep no served batch", () => {
  it("an S2S read session, following after its catch-up", async () => {
    await appendRecords("s2s");
    const from = yielded.length;
    const s2 = new S2({
      accessToken: "ignored",
      endpoints: { account: `http://127.0.0.1:${api.port}`, basin: `http://127.0.0.1:${api.port}` },
    });
    const stream = s2.basin(testBasin).stream("s2s");
    const session = await stream.readSession({ start: { from: { seqNum: 0 } } }, { as: "bytes" });
    // Records are taken one by one, not with `for await`, whose `break` would end the session.
    const records = session[Symbol.asyncIterator]();
    try {
      for (let read = 0; read < recordCount; read++) {
        const next = await records.next();
        assert.equal(next.done, false, "the session ended before the catch-up did");
      }
      // The server has served the catch-up and follows at the tail, the session still open.
      await assertFewHeld(from);
    } finally {
      await records.return?.(undefined);
      await stream.close();
    }
  });

  /** The catch-up served its events (8 or more), and at most `heldEventsMax` are still held. */
  async function assertFewHeld(from: number): Promise<void> {
    const { reachable, yielded: served } = await reachableSince(from);
    assert.ok(served >= 8, `the catch-up took ${served} events`);
    assert.ok(
      reachable <= heldEventsMax,
      `${reachable} of the ${served} events served are still reachable`,
    );
  }

  it("an SSE read session, following after its catch-up", async () => {
    await appendRecords("sse");
    const from = yielded.length;
    const controller = new AbortController();
    const response = await fetch(`http://127.0.0.1:${api.port}/v1/streams/sse/records?seq_num=0`, {
      headers: { accept: "text/event-stream", "s2-basin": testBasin },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    try {
      // The last record's seq num in a `data` line's `seq_num` ends the catch-up.
      while (!text.includes(`"seq_num":${recordCount - 1}`)) {
        const { value, done } = await reader.read();
        assert.equal(done, false, "the session ended before the catch-up did");
        text += decoder.decode(value, { stream: true });
        // Keep the tail only: the events are ~1 MiB of base64 each.
        if (text.length > 1 << 16) text = text.slice(-(1 << 16));
      }
      await assertFewHeld(from);
    } finally {
      controller.abort();
      await reader.cancel().catch(() => {});
    }
  });
});
