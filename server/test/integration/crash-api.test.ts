// Goal: every append acknowledged through the API survives a SIGKILL of the server and the loss of
// its cache. Method: the official SDK appends to several streams of a server in S3 mode (moto);
// the server is killed mid-traffic, its cache directory deleted, and a restarted server must
// return every acknowledged record, byte for byte, at its seq num, with seq nums dense from 0.
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, describe, it } from "node:test";
import { AppendInput, AppendRecord, type S2 } from "@s2-dev/streamstore";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const basinName = "crash-api-basin";
const streamNames = ["alpha", "beta", "gamma", "delta"];
const trafficMs = 1500;

interface AckedBatch {
  readonly stream: string;
  readonly startSeqNum: number;
  readonly bodies: readonly Uint8Array[];
}

function bodyFor(stream: string, batch: number, index: number): Uint8Array {
  const text = `${stream}:${batch}:${index}:`.padEnd(64 + ((batch * 7 + index) % 200), "x");
  const bytes = new TextEncoder().encode(text);
  bytes[bytes.length - 1] = (batch + index) % 256; // a non-UTF-8-safe byte: bodies are bytes
  return bytes;
}

async function appendUntil(s2: S2, deadlineMs: number, acked: AckedBatch[]): Promise<void> {
  const basin = s2.basin(basinName);
  await Promise.all(
    streamNames.map(async (name) => {
      const stream = basin.stream(name);
      for (let batch = 0; Date.now() < deadlineMs; batch++) {
        const bodies = Array.from({ length: 1 + (batch % 5) }, (_, i) => bodyFor(name, batch, i));
        try {
          const ack = await stream.append(
            AppendInput.create(bodies.map((body) => AppendRecord.bytes({ body }))),
          );
          acked.push({ stream: name, startSeqNum: ack.start.seqNum, bodies });
        } catch {
          return; // the server is gone: stop this writer
        }
      }
    }),
  );
}

async function readAllBodies(s2: S2, name: string): Promise<Uint8Array[]> {
  const stream = s2.basin(basinName).stream(name);
  const tail = (await stream.checkTail()).tail.seqNum;
  const bodies: Uint8Array[] = [];
  while (bodies.length < tail) {
    const batch = await stream.read(
      { start: { from: { seqNum: bodies.length } }, stop: { limits: { count: 1000 } } },
      { as: "bytes" },
    );
    assert.ok(
      batch.records.length > 0,
      `read from ${bodies.length} below tail ${tail} returned nothing`,
    );
    for (const record of batch.records) {
      assert.equal(record.seqNum, bodies.length, "seq nums are dense from 0");
      bodies.push(record.body);
    }
  }
  return bodies;
}

describe("crash through the API", () => {
  const started: ServerProcess[] = [];
  after(async () => {
    for (const server of started) await server.cleanup();
  });

  it("loses no acknowledged append across SIGKILL and a deleted cache (S3 mode)", async () => {
    const first = await startServer({ mode: "s3", args: ["--flush-interval-ms", "5"] });
    started.push(first);
    const s2 = s2ClientFor(first);
    await s2.basins.create({ basin: basinName });
    for (const name of streamNames) await s2.basin(basinName).streams.create({ stream: name });

    const acked: AckedBatch[] = [];
    const traffic = appendUntil(s2, Date.now() + trafficMs * 4, acked);
    await new Promise((resolve) => setTimeout(resolve, trafficMs));
    await first.kill();
    await traffic;
    assert.ok(acked.length > 20, `enough traffic before the kill (${acked.length} batches)`);
    await rm(first.cacheDir, { recursive: true, force: true });

    const second = await startServer({
      mode: "s3",
      bucket: first.bucket!,
      cacheDir: first.cacheDir,
    });
    started.push(second);
    assert.match(second.output(), /replayed \d+ segments/);
    const restarted = s2ClientFor(second);
    for (const name of streamNames) {
      const bodies = await readAllBodies(restarted, name);
      for (const batch of acked.filter((b) => b.stream === name)) {
        batch.bodies.forEach((body, i) => {
          assert.deepEqual(
            bodies[batch.startSeqNum + i],
            body,
            `${name} seq ${batch.startSeqNum + i}`,
          );
        });
      }
    }
  });
});
