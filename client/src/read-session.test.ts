// Goal: a read session resumes at the next seq num, with no gap and no duplicate, after the server
// is killed and restarted mid-read, and reopens a session that stays silent past its heartbeat
// timeout. Method: the real server process in local mode, SIGKILLed and restarted on the same
// port, local root and cache directory while a reader consumes records and a writer appends more.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type ServerProcess, startServer } from "../../server/test/support/server-process.js";
import { createTributaryClient, type TributaryClient } from "./client.js";
import { HeartbeatTimeoutError } from "./read-session.js";

const basin = "read-session-basin";
const decoder = new TextDecoder();

async function appendBodies(client: TributaryClient, stream: string, bodies: string[]) {
  const session = client.basin(basin).stream(stream).appendSession({ lingerMs: 1 });
  for (const body of bodies) await session.submit([{ body }]);
  await session.close();
}

describe("read session", () => {
  let server: ServerProcess;
  let client: TributaryClient;
  const extra: ServerProcess[] = [];

  before(async () => {
    server = await startServer({ mode: "local" });
    client = createTributaryClient({ baseUrl: server.endpoint });
    await client.account.createBasin({ basin, config: { createStreamOnAppend: true } });
  });
  after(async () => {
    for (const restarted of extra) await restarted.cleanup();
    await server.cleanup();
  });

  it("resumes after the server is killed and restarted mid-read", async () => {
    const stream = "restarted";
    const bodies = Array.from({ length: 400 }, (_, i) => `r${i}`);
    await appendBodies(client, stream, bodies.slice(0, 200));
    const reconnects: bigint[] = [];
    const seen: { seqNum: bigint; body: string }[] = [];
    let restarted: Promise<void> | undefined;
    try {
      for await (const record of client
        .basin(basin)
        .stream(stream)
        .readSession({
          startSeqNum: 0n,
          heartbeatTimeoutMs: 5_000,
          onReconnect: (_error, next) => reconnects.push(next),
        })) {
        seen.push({ seqNum: record.seqNum, body: decoder.decode(record.body) });
        if (seen.length === 100) {
          // Kill mid-read, then restart on the same port and storage, and append the rest.
          restarted = (async () => {
            await server.kill();
            const again = await startServer({
              mode: "local",
              localRoot: server.localRoot!,
              cacheDir: server.cacheDir,
              args: ["--port", String(server.port)],
            });
            extra.push(again);
            await appendBodies(client, stream, bodies.slice(200));
          })();
          await sleep(50);
        }
        if (seen.length === bodies.length) break;
      }
    } finally {
      // Even when the read fails, the next test needs the restarted server.
      await restarted;
    }
    assert.ok(reconnects.length >= 1, "the session reconnected");
    assert.ok(
      reconnects.every((next) => next >= 100n && next <= 400n),
      String(reconnects),
    );
    assert.deepEqual(
      seen.map((record) => record.seqNum),
      bodies.map((_, i) => BigInt(i)),
    );
    assert.deepEqual(
      seen.map((record) => record.body),
      bodies,
    );
  });

  it("reopens a session that is silent past its heartbeat timeout", async () => {
    const stream = "silent";
    await appendBodies(client, stream, ["first"]);
    const errors: unknown[] = [];
    const seen: string[] = [];
    const reader = (async () => {
      for await (const record of client
        .basin(basin)
        .stream(stream)
        .readSession({
          startSeqNum: 0n,
          heartbeatTimeoutMs: 300,
          retry: { initialBackoffMs: 10 },
          onReconnect: (error) => errors.push(error),
        })) {
        seen.push(decoder.decode(record.body));
        if (seen.length === 2) break;
      }
    })();
    // The server heartbeats every 15 s, so a 300 ms timeout declares the idle session dead.
    await sleep(1_000);
    await appendBodies(client, stream, ["second"]);
    await reader;
    assert.deepEqual(seen, ["first", "second"]);
    assert.ok(errors.length >= 1);
    assert.ok(errors.every((error) => error instanceof HeartbeatTimeoutError));
  });
});
