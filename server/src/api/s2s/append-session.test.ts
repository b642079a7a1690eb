// Goal: an S2S append session holds a bounded amount of work for a client that does not read its
// acks, and resumes losslessly when it does (S2-API.md §5.8; limits.ts `appendSessionInflight*`).
// Method: the API server in-process on memory stores; a raw HTTP/2 client pipelines 20,000 inputs
// while paused, the stream's tail is watched until it stops growing, then the client reads.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AppendAckSchema, AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { ensureTestBasin, openTestService, testBasin } from "../../../test/support/engine.js";
import { appendSessionInflightBytesMax, appendSessionInputBytesMin } from "../../core/limits.js";
import type { Service } from "../../service/service.js";
import { createMemoryObjectStore } from "../../storage/object-store/memory.js";
import { type ApiServer, startApiServer } from "../server.js";
import { encodeS2sFrame, type S2sFrame, S2sFrameDecoder } from "./frame.js";

const inputCount = 20_000;

describe("S2S append session back-pressure", () => {
  let service: Service;
  let api: ApiServer;

  before(async () => {
    service = await openTestService({ store: createMemoryObjectStore() });
    await ensureTestBasin(service);
    api = await startApiServer({ service, port: 0, host: "127.0.0.1", cors: false });
  });

  after(async () => {
    await api?.close();
    await service?.close();
  });

  it("stops reading while acks are unread, then acks every input in order", async () => {
    const client = http2.connect(`http://127.0.0.1:${api.port}`);
    const stream = client.request({
      ":method": "POST",
      ":path": "/v1/streams/pressure/records",
      "content-type": "s2s/proto",
      "s2-basin": testBasin,
    });
    stream.pause();
    const frame = encodeS2sFrame(
      toBinary(
        AppendInputSchema,
        create(AppendInputSchema, { records: [{ body: new Uint8Array([1]) }] }),
      ),
    );
    const all = new Uint8Array(Buffer.concat(Array.from({ length: inputCount }, () => frame)));
    stream.end(all);

    // The tail grows until the session stops reading, then stays put.
    let tail = -1;
    for (;;) {
      await sleep(300);
      const next = (await service.records.checkTail(testBasin, "pressure")).seqNum;
      if (next === tail) break;
      tail = next;
    }
    // Small inputs are charged `appendSessionInputBytesMin` each.
    const inflightMax = appendSessionInflightBytesMax / appendSessionInputBytesMin;
    assert.ok(tail >= inflightMax, `the session got going. tail=${tail}`);
    assert.ok(tail < inputCount / 2, `the session stopped reading. tail=${tail}`);

    const decoder = new S2sFrameDecoder();
    const frames: S2sFrame[] = [];
    stream.on("data", (chunk: Buffer) => {
      const result = decoder.push(chunk);
      assert.equal(result.error, undefined);
      frames.push(...result.frames);
    });
    stream.resume();
    await new Promise<void>((resolve) => stream.on("close", resolve));
    client.close();
    assert.equal(frames.length, inputCount);
    frames.forEach((ackFrame, i) => {
      const ack = fromBinary(AppendAckSchema, ackFrame.payload);
      assert.equal(ack.start?.seqNum, BigInt(i));
    });
    assert.equal((await service.records.checkTail(testBasin, "pressure")).seqNum, inputCount);
  });
});
