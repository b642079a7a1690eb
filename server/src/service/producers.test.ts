// Goal: idempotent producers (docs/design/producers.md): a resend of a batch the stream holds is
// answered with the first attempt's ack and writes nothing, whether the first attempt is still in
// flight, durable, replayed after a restart (with the cache kept, wiped, or from a checkpoint), or
// landed just before its writer was fenced; out-of-order, stale-epoch and too-old resends get
// their 409s. Method: real Services on memory stores; a stalling store for batches in flight; a
// store whose PUT lands and never answers for the failover; every stream is read back whole.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { systemClock } from "../core/clock.js";
import { S2Error } from "../core/errors.js";
import { producerAckWindow, producerIdleMs, producersPerStreamMax } from "../core/limits.js";
import { createSeededRandom } from "../core/random.js";
import type { AppendAck } from "../core/records.js";
import { createMemoryKvStore } from "../storage/kv/memory.js";
import { createFaultyObjectStore } from "../storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../storage/object-store/memory.js";
import type { ObjectStore } from "../storage/object-store/object-store.js";
import type { AppendProducer } from "../streamer/streamer.js";
import {
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  textsOf,
} from "../../test/support/engine.js";
import { createSettableClock } from "../../test/support/clock.js";
import type { Service } from "./service.js";

const encoder = new TextEncoder();

function send(
  service: Service,
  stream: string,
  texts: readonly string[],
  producer: AppendProducer,
): Promise<AppendAck> {
  return service.records.append(
    testBasin,
    stream,
    { records: texts.map((text) => ({ headers: [], body: encoder.encode(text) })) },
    { producer },
  );
}

function rejectsWith(code: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof S2Error, String(error));
    assert.equal(error.code, code, error.message);
    return true;
  };
}

const positions = (ack: AppendAck) => ({ start: ack.start, end: ack.end });

describe("idempotent producers", () => {
  it("answer a resend with the first ack, and judge sequence and epoch", async () => {
    const service = await openTestService({ store: createMemoryObjectStore() });
    try {
      await ensureTestBasin(service);
      const p = (seq: number, epoch = 1) => ({ producerId: "p-1", epoch, seq });
      const first = await send(service, "s", ["a", "b"], p(0));
      // Someone else appends meanwhile; the resend still gets the first positions.
      await send(service, "s", ["other"], { producerId: "p-2", epoch: 1, seq: 0 });
      const resent = await send(service, "s", ["a", "b"], p(0));
      assert.deepEqual(positions(resent), positions(first));
      assert.equal(resent.tail.seqNum, 3, "the tail is today's");
      // The metrics API meters what was written: the resend is not an append.
      const nowSec = Math.floor(Date.now() / 1000);
      const [throughput] = await service.metrics.basin(testBasin, {
        set: "append-throughput",
        start: nowSec - 60,
        end: nowSec + 30,
      });
      assert.ok(throughput?.kind === "accumulation");
      const metered = throughput.values.reduce((sum, [, bytes]) => sum + bytes, 0);
      assert.equal(metered, 3 * 8 + 1 + 1 + 5, "a, b and other, once each");
      await assert.rejects(
        send(service, "s", ["x"], p(2)),
        rejectsWith("producer_out_of_sequence"),
      );
      const second = await send(service, "s", ["c"], p(1));
      assert.equal(second.start.seqNum, 3);
      // A new epoch starts at 0; the old one is fenced.
      await assert.rejects(
        send(service, "s", ["x"], p(5, 2)),
        rejectsWith("producer_out_of_sequence"),
      );
      await send(service, "s", ["d"], p(0, 2));
      await assert.rejects(send(service, "s", ["x"], p(2, 1)), rejectsWith("producer_fenced"));
      // Past the window, a resend is "applied, ack not kept".
      for (let seq = 1; seq <= producerAckWindow; seq++)
        await send(service, "s", [`e${seq}`], p(seq, 2));
      await assert.rejects(send(service, "s", ["d"], p(0, 2)), rejectsWith("producer_seq_too_old"));
      const inWindow = await send(service, "s", ["e1"], p(1, 2));
      assert.equal(inWindow.start.seqNum, 5);
      assert.deepEqual(
        textsOf(await readAll(service, "s")).slice(0, 6),
        ["a", "b", "other", "c", "d", "e1"],
        "each batch once",
      );
      assert.equal((await readAll(service, "s")).length, 5 + producerAckWindow);
    } finally {
      await service.close();
    }
  });

  it("answer a resend of a batch still in flight once it is durable, writing it once", async () => {
    const store = createFaultyObjectStore(createMemoryObjectStore(), {
      random: createSeededRandom(3),
      clock: systemClock,
    });
    const service = await openTestService({ store });
    try {
      await ensureTestBasin(service);
      store.setStalled(true);
      const producer = { producerId: "p", epoch: 7, seq: 0 };
      const first = send(service, "s", ["only once"], producer);
      const resend = send(service, "s", ["only once"], producer);
      await sleep(20);
      store.setStalled(false);
      assert.deepEqual(positions(await resend), positions(await first));
      assert.deepEqual(textsOf(await readAll(service, "s")), ["only once"]);
    } finally {
      store.setStalled(false);
      await service.close();
    }
  });

  it("keep their state across restarts: cache kept, cache wiped, and from a checkpoint", async () => {
    const store = createMemoryObjectStore();
    const kv = createMemoryKvStore();
    const producer = (seq: number) => ({ producerId: "p", epoch: 1, seq });
    let acks: AppendAck[] = [];
    const first = await openTestService({ store, kv });
    try {
      await ensureTestBasin(first);
      for (let seq = 0; seq < 3; seq++)
        acks.push(await send(first, "s", [`r${seq}`], producer(seq)));
    } finally {
      await first.close();
    }
    acks = acks.map((ack) => ({ ...ack, tail: acks.at(-1)!.tail }));
    for (const [what, options] of [
      ["cache kept", { kv }],
      ["cache wiped", { kv: createMemoryKvStore() }],
      ["from a checkpoint", { kv: createMemoryKvStore(), checkpoint: true }],
    ] as const) {
      if ("checkpoint" in options) {
        const writer = await openTestService({ store, kv: createMemoryKvStore() });
        try {
          await writer.storage.runMaintenanceNow();
          assert.ok(writer.storage.stats.maintenance!.checkpointsCommitted > 0, what);
        } finally {
          await writer.close();
        }
      }
      const service = await openTestService({ store, kv: options.kv });
      try {
        const resent = await send(service, "s", ["r1"], producer(1));
        assert.deepEqual(positions(resent), positions(acks[1]!), what);
        await assert.rejects(
          send(service, "s", ["x"], producer(9)),
          rejectsWith("producer_out_of_sequence"),
        );
        assert.deepEqual(
          textsOf(await readAll(service, "s")).slice(0, 3),
          ["r0", "r1", "r2"],
          what,
        );
      } finally {
        await service.close();
      }
    }
  });

  it("answer the resend on a new writer when the first PUT landed unanswered", async () => {
    const inner = createMemoryObjectStore();
    let isHanging = false;
    // Once armed, a WAL PUT lands and its answer never comes (a lost response).
    const lossy: ObjectStore = {
      ...inner,
      putIfAbsent: async (key, bytes) => {
        const result = await inner.putIfAbsent(key, bytes);
        if (isHanging && key.startsWith("wal/")) return new Promise<never>(() => {});
        return result;
      },
    };
    const old = await openTestService({ store: lossy, putTimeoutMs: 50 });
    const producer = { producerId: "p", epoch: 1, seq: 0 };
    let newer: Service | undefined;
    try {
      await ensureTestBasin(old);
      await send(old, "s", ["before"], { ...producer, producerId: "q" });
      isHanging = true;
      const lost = send(old, "s", ["landed"], producer);
      lost.catch(() => {});
      await sleep(20);
      // A new writer takes over: it replays the landed segment and fences the old one.
      newer = await openTestService({ store: inner });
      await assert.rejects(lost, rejectsWith("append_outcome_unknown"));
      const resent = await send(newer, "s", ["landed"], producer);
      assert.equal(resent.start.seqNum, 1, "the first attempt's position");
      assert.deepEqual(textsOf(await readAll(newer, "s")), ["before", "landed"]);
    } finally {
      isHanging = false;
      await newer?.close();
      await old.close().catch(() => {});
    }
  });

  it("forget a producer idle for producerIdleMs, in the WAL too, and take it back at seq 0", async () => {
    const clock = createSettableClock(Date.UTC(2026, 0, 1));
    const inner = createMemoryObjectStore();
    const store = createFaultyObjectStore(inner, {
      random: createSeededRandom(5),
      clock: systemClock,
    });
    const service = await openTestService({ store, clock });
    const producer = (seq: number) => ({ producerId: "idle", epoch: 1, seq });
    try {
      await ensureTestBasin(service);
      // Kept for ever, so that the pass has nothing to expire but the producer.
      await service.streams.create({
        basin: testBasin,
        name: "s",
        config: { retentionPolicy: { kind: "infinite" } },
      });
      await send(service, "s", ["a"], producer(0));
      await send(service, "s", ["b"], producer(1));
      await service.retention.runOnce();
      await assert.rejects(
        send(service, "s", ["x"], producer(5)),
        rejectsWith("producer_out_of_sequence"),
      );
      clock.setNowMs(Date.UTC(2026, 0, 1) + producerIdleMs + 1);
      // The pass expires it; a first batch sent while the expiry is not yet durable is judged
      // as a first batch (not a resend of the old seq 0) and applied after the expiry.
      store.setStalled(true);
      const pass = service.retention.runOnce();
      await sleep(50);
      const again = send(service, "s", ["c"], producer(0));
      await sleep(20);
      store.setStalled(false);
      await pass;
      assert.equal((await again).start.seqNum, 2, "a new first batch, not a resend of seq 0");
      await assert.rejects(
        send(service, "s", ["x"], producer(2)),
        rejectsWith("producer_out_of_sequence"),
      );
    } finally {
      await service.close();
    }
    // The WAL says the same: after a replay, seq 1 is the next one of the new start.
    const restarted = await openTestService({ store: inner, clock });
    try {
      const next = await send(restarted, "s", ["d"], producer(1));
      assert.equal(next.start.seqNum, 3);
      assert.deepEqual(textsOf(await readAll(restarted, "s")), ["a", "b", "c", "d"]);
    } finally {
      await restarted.close();
    }
  });

  it("refuse a producer past producersPerStreamMax on a stream, and go on serving the others", async () => {
    const service = await openTestService({ store: createMemoryObjectStore() });
    try {
      await ensureTestBasin(service);
      for (let first = 0; first < producersPerStreamMax; first += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            send(service, "many", ["r"], { producerId: `p-${first + i}`, epoch: 1, seq: 0 }),
          ),
        );
      }
      await assert.rejects(
        send(service, "many", ["r"], { producerId: "one-too-many", epoch: 1, seq: 0 }),
        rejectsWith("producer_limit"),
      );
      await send(service, "many", ["r"], { producerId: "p-7", epoch: 1, seq: 1 });
      await send(service, "other", ["r"], { producerId: "one-too-many", epoch: 1, seq: 0 });
      assert.equal((await readAll(service, "many")).length, producersPerStreamMax + 1);
    } finally {
      await service.close();
    }
  });
});
