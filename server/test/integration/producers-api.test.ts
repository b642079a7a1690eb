// Goal: the idempotent-producer headers work on the wire (docs/design/producers.md): a REST append
// resent with the same producer id, epoch and seq gets the first ack and writes nothing; an S2S
// append session opened with them numbers its batches from the given seq, so a second session that
// resends some of them gets their first acks; out-of-order seqs are a JSON 409 (or a terminal
// frame), and malformed or partial headers a 400 `bad_header`. Method: the API server in-process on
// a memory store; `fetch` for REST and a raw `node:http2` client for S2S; the stream is read back.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AppendAckSchema, AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import {
  encodeS2sFrame,
  parseS2sTerminalPayload,
  type S2sFrame,
  S2sFrameDecoder,
} from "../../src/api/s2s/frame.js";
import type { ApiServer } from "../../src/api/server.js";
import type { Service } from "../../src/service/service.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import {
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  textsOf,
  startLoopbackApi,
} from "../support/engine.js";

const encoder = new TextEncoder();
let service: Service;
let api: ApiServer;
let endpoint: string;

before(async () => {
  service = await openTestService({ store: createMemoryObjectStore() });
  await ensureTestBasin(service);
  api = await startLoopbackApi(service);
  endpoint = `http://127.0.0.1:${api.port}`;
});

after(async () => {
  await api?.close();
  await service?.close();
});

function producerHeaders(id: string, epoch: number, seq: number): Record<string, string> {
  return {
    "tributary-producer-id": id,
    "tributary-producer-epoch": String(epoch),
    "tributary-producer-seq": String(seq),
  };
}

async function restAppend(
  stream: string,
  texts: readonly string[],
  headers: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${endpoint}/v1/streams/${stream}/records`, {
    method: "POST",
    headers: { "content-type": "application/json", "s2-basin": testBasin, ...headers },
    body: JSON.stringify({ records: texts.map((body) => ({ body })) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Runs an S2S append session of `batches` with `headers`; returns its frames once it closes. */
async function s2sSession(
  stream: string,
  batches: readonly (readonly string[])[],
  headers: Record<string, string>,
): Promise<{ status: number; frames: S2sFrame[] }> {
  const client = http2.connect(endpoint);
  client.on("error", () => {});
  try {
    const request = client.request({
      ":method": "POST",
      ":path": `/v1/streams/${stream}/records`,
      "content-type": "s2s/proto",
      "s2-basin": testBasin,
      ...headers,
    });
    const decoder = new S2sFrameDecoder();
    const frames: S2sFrame[] = [];
    let status = 0;
    request.on("response", (responseHeaders) => {
      status = Number(responseHeaders[":status"]);
    });
    request.on("data", (chunk: Buffer) => frames.push(...decoder.push(chunk).frames));
    request.on("error", () => {});
    const closed = new Promise<void>((resolve) => request.once("close", resolve));
    for (const texts of batches) {
      const input = create(AppendInputSchema, {
        records: texts.map((text) => ({ body: encoder.encode(text) })),
      });
      request.write(encodeS2sFrame(toBinary(AppendInputSchema, input)));
    }
    request.end();
    await closed;
    return { status, frames };
  } finally {
    client.close();
  }
}

describe("idempotent producers on the wire", () => {
  it("REST: a resend gets the first ack; a gap is a JSON 409; bad headers are 400", async () => {
    const first = await restAppend("rest", ["a", "b"], producerHeaders("app-1", 3, 0));
    assert.equal(first.status, 200);
    const resent = await restAppend("rest", ["a", "b"], producerHeaders("app-1", 3, 0));
    assert.equal(resent.status, 200);
    assert.deepEqual(resent.body["start"], first.body["start"]);
    assert.deepEqual(resent.body["end"], first.body["end"]);
    const gap = await restAppend("rest", ["x"], producerHeaders("app-1", 3, 5));
    assert.equal(gap.status, 409);
    assert.equal(gap.body["code"], "producer_out_of_sequence");
    for (const headers of [
      { "tributary-producer-id": "app-1" },
      producerHeaders("", 3, 0),
      producerHeaders("app-1", -1, 0),
      producerHeaders("app-1", 3, 1.5),
      producerHeaders("x".repeat(65), 3, 0),
    ]) {
      const bad = await restAppend("rest", ["x"], headers);
      assert.equal(bad.status, 400, JSON.stringify(headers));
      assert.equal(bad.body["code"], "bad_header");
    }
    assert.deepEqual(textsOf(await readAll(service, "rest")), ["a", "b"]);
  });

  it("S2S: a session's batches take consecutive seqs, and a resending session gets their acks", async () => {
    const first = await s2sSession("s2s", [["a"], ["b"], ["c"]], producerHeaders("app-2", 1, 0));
    assert.equal(first.status, 200);
    const acks = first.frames.map((frame) => fromBinary(AppendAckSchema, frame.payload));
    assert.deepEqual(
      acks.map((ack) => Number(ack.start!.seqNum)),
      [0, 1, 2],
    );
    // The client lost the last two acks and resends those batches from seq 1, then one more.
    const second = await s2sSession("s2s", [["b"], ["c"], ["d"]], producerHeaders("app-2", 1, 1));
    const again = second.frames.map((frame) => fromBinary(AppendAckSchema, frame.payload));
    assert.deepEqual(
      again.map((ack) => Number(ack.start!.seqNum)),
      [1, 2, 3],
    );
    // A session starting past the expected seq ends with a 409 terminal frame.
    const gap = await s2sSession("s2s", [["z"]], producerHeaders("app-2", 1, 9));
    const terminal = gap.frames.at(-1);
    assert.ok(terminal?.isTerminal === true);
    assert.equal(parseS2sTerminalPayload(terminal.payload).status, 409);
    assert.deepEqual(textsOf(await readAll(service, "s2s")), ["a", "b", "c", "d"]);
  });
});
