// Goal: an append session pipelines submits under a bound on unacknowledged bytes, acks them in
// order with dense seq nums, makes `flush()` a durability barrier and fails cleanly on a
// `match_seq_num` mismatch. Method: the real server process in memory mode, many small submits
// against a bound of a few submits' worth, and the tail and the read-back checked afterwards.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ServerProcess, startServer } from "../../server/test/support/server-process.js";
import { AppendSessionClosedError, type SubmitAck } from "./append-session.js";
import { createTributaryClient, type TributaryClient } from "./client.js";
import { meteredBytes, toAppendRecord } from "./records.js";

const basin = "append-session-basin";

describe("append session", () => {
  let server: ServerProcess;
  let client: TributaryClient;

  before(async () => {
    server = await startServer({ mode: "memory" });
    client = createTributaryClient({ baseUrl: server.endpoint });
    await client.account.createBasin({ basin, config: { createStreamOnAppend: true } });
  });
  after(async () => {
    await server.cleanup();
  });

  it("meters records as 8 + 2 per header + the lengths", () => {
    const record = toAppendRecord({ body: "abcd", headers: [["key", "value"]] });
    assert.equal(meteredBytes(record), 8 + 2 + 3 + 5 + 4);
  });

  it("pipelines submits with back-pressure and acks them in order", async () => {
    const stream = client.basin(basin).stream("pipelined");
    const maxUnackedBytes = 4096;
    const session = stream.appendSession({ lingerMs: 2, maxUnackedBytes });
    const submits = 600;
    const acks: Promise<SubmitAck>[] = [];
    let records = 0;
    let maxSeen = 0;
    for (let i = 0; i < submits; i += 1) {
      const count = 1 + (i % 3);
      const body = `record-${i}-`.padEnd(200, "x");
      const ticket = await session.submit(Array.from({ length: count }, () => ({ body })));
      records += count;
      maxSeen = Math.max(maxSeen, session.unacknowledgedBytes);
      assert.ok(session.unacknowledgedBytes <= maxUnackedBytes, "bound exceeded");
      acks.push(ticket.ack());
    }
    // Pipelining: more than one submit was in flight at once, yet never over the bound.
    assert.ok(maxSeen > 3 * 208, `max unacked ${maxSeen}`);
    const resolved = await Promise.all(acks);
    let next = 0n;
    for (const ack of resolved) {
      assert.equal(ack.startSeqNum, next);
      assert.ok(ack.endSeqNum > ack.startSeqNum);
      next = ack.endSeqNum;
    }
    assert.equal(next, BigInt(records));
    assert.ok(new Set(resolved.map((ack) => ack.batchAck)).size < submits, "submits were batched");
    await session.close();
    assert.equal(session.unacknowledgedBytes, 0);
  });

  it("rejects a submit over the batch limits before sending anything", async () => {
    const session = client.basin(basin).stream("limits").appendSession();
    const many = Array.from({ length: 1001 }, () => ({ body: "x" }));
    await assert.rejects(session.submit(many), RangeError);
    await assert.rejects(session.submit([{ body: new Uint8Array(1024 * 1024) }]), RangeError);
    await session.close();
  });

  it("flush() resolves once everything submitted is durable", async () => {
    const stream = client.basin(basin).stream("flushed");
    const session = stream.appendSession({ lingerMs: 10_000 });
    for (let i = 0; i < 50; i += 1) await session.submit([{ body: `r${i}` }]);
    // The long linger would hold the batch; flush sends it and waits for the ack.
    await session.flush();
    assert.equal(session.unacknowledgedBytes, 0);
    assert.equal((await stream.checkTail()).seqNum, 50n);
    await session.submit([{ body: "more" }]);
    await session.flush();
    assert.equal((await stream.checkTail()).seqNum, 51n);
    await session.close();
    await assert.rejects(session.submit([{ body: "late" }]), AppendSessionClosedError);
  });

  it("chains match_seq_num and fails the session on a mismatch", async () => {
    const stream = client.basin(basin).stream("chained");
    const session = stream.appendSession({ lingerMs: 0 });
    const first = await session.append([{ body: "a" }, { body: "b" }], { matchSeqNum: 0n });
    const second = await session.append([{ body: "c" }], { matchSeqNum: first.endSeqNum });
    assert.equal(second.startSeqNum, 2n);
    const stale = await session.submit([{ body: "stale" }], { matchSeqNum: 0n });
    await assert.rejects(stale.ack(), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.FailedPrecondition);
      return true;
    });
    await assert.rejects(session.submit([{ body: "after" }]), ConnectError);
    await assert.rejects(session.flush(), ConnectError);
    assert.equal((await stream.checkTail()).seqNum, 3n);
  });
});
