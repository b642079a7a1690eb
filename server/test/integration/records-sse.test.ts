// Goal: SSE read sessions look on the wire exactly like s2-lite's (S2-API.md §5.7, §11.14–§11.16)
// and work with the official SDK's fetch transport, following live appends. Method: the real
// server process in memory mode; raw fetch reads parsed event by event (ids, pings with the tail,
// [DONE], errors, Last-Event-ID resumption, disconnects), then `readSession` with
// `forceTransport: "fetch"`.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { AppendInput, AppendRecord, type S2, type S2Basin } from "@s2-dev/streamstore";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const basinName = "records-sse";

interface SseEvent {
  readonly event: string | undefined;
  readonly id: string | undefined;
  readonly data: string;
}

/** Reads SSE events from a fetch response, one at a time (undefined at the end of the body). */
class SseReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffer = "";

  constructor(response: Response) {
    assert.ok(response.body !== null);
    this.reader = response.body.getReader();
  }

  async next(): Promise<SseEvent | undefined> {
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end !== -1) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
          const colon = line.indexOf(": ");
          assert.ok(colon > 0, `malformed line ${JSON.stringify(line)}`);
          assert.ok(
            !fields.has(line.slice(0, colon)),
            `repeated field in ${JSON.stringify(block)}`,
          );
          fields.set(line.slice(0, colon), line.slice(colon + 2));
        }
        assert.deepEqual(
          [...fields.keys()].filter((key) => !["event", "id", "data"].includes(key)),
          [],
        );
        return { event: fields.get("event"), id: fields.get("id"), data: fields.get("data") ?? "" };
      }
      const { done, value } = await this.reader.read();
      if (done) {
        assert.equal(this.buffer, "", "the body ended inside an event");
        return undefined;
      }
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel();
  }
}

interface BatchJson {
  records: { seq_num: number; timestamp: number; headers?: string[][]; body?: string }[];
  tail?: { seq_num: number; timestamp: number };
}

describe("records: SSE read sessions", () => {
  let server: ServerProcess;
  let s2: S2;
  let basin: S2Basin;
  let streamCount = 0;

  /** A new stream with `count` records `r0`, ... (10 metered bytes each), timestamps 1000, .... */
  async function streamWith(count: number): Promise<string> {
    const name = `sse-${streamCount++}`;
    await basin.streams.create({ stream: name });
    if (count > 0) {
      await basin
        .stream(name)
        .append(
          AppendInput.create(
            Array.from({ length: count }, (_, i) =>
              AppendRecord.string({ body: `r${i}`, timestamp: 1000 + i }),
            ),
          ),
        );
    }
    return name;
  }

  async function openSse(
    stream: string,
    query: string,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<{ response: Response; events: SseReader }> {
    const response = await fetch(`${server.endpoint}/v1/streams/${stream}/records?${query}`, {
      headers: { "s2-basin": basinName, accept: "text/event-stream", ...headers },
      ...(signal !== undefined && { signal }),
    });
    assert.equal(response.status, 200, await (response.status === 200 ? "" : response.text()));
    return { response, events: new SseReader(response) };
  }

  function batchOf(event: SseEvent | undefined): BatchJson {
    assert.equal(event?.event, "batch", JSON.stringify(event));
    return JSON.parse(event.data) as BatchJson;
  }

  async function sseSessions(): Promise<number> {
    const text = await (await fetch(`${server.endpoint}/metrics`)).text();
    const match = /^tributary_sessions\{kind="sse"\} (\d+)$/m.exec(text);
    assert.ok(match !== null, "the sse sessions gauge is exported");
    return Number(match[1]);
  }

  before(async () => {
    server = await startServer({ mode: "memory" });
    s2 = s2ClientFor(server);
    await s2.basins.create({ basin: basinName });
    basin = s2.basin(basinName);
  });

  after(async () => {
    await server?.cleanup();
  });

  it("a bounded read sends batches with cumulative ids, then [DONE]", async () => {
    const stream = await streamWith(5);
    const { response, events } = await openSse(stream, "seq_num=0&count=3");
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("cache-control"), "no-cache, no-transform");
    assert.equal(response.headers.get("x-accel-buffering"), "no");
    const first = await events.next();
    assert.equal(first?.id, "2,3,30");
    assert.deepEqual(batchOf(first), {
      records: [
        { seq_num: 0, timestamp: 1000, body: "r0" },
        { seq_num: 1, timestamp: 1001, body: "r1" },
        { seq_num: 2, timestamp: 1002, body: "r2" },
      ],
    });
    assert.deepEqual(await events.next(), { event: undefined, id: undefined, data: "[DONE]" });
    assert.equal(await events.next(), undefined);
  });

  it("pings at the tail with the tail, then follows with tails on live batches", async () => {
    const stream = await streamWith(5);
    const abort = new AbortController();
    const { events } = await openSse(stream, "", {}, abort.signal); // default start: the tail
    const ping = await events.next();
    assert.equal(ping?.event, "ping");
    assert.equal(ping?.id, undefined);
    const pingData = JSON.parse(ping?.data ?? "") as { timestamp: number; tail: unknown };
    assert.ok(Math.abs(pingData.timestamp - Date.now()) < 10_000, `${pingData.timestamp}`);
    assert.deepEqual(pingData.tail, { seq_num: 5, timestamp: 1004 });
    await basin
      .stream(stream)
      .append(AppendInput.create([AppendRecord.string({ body: "live", timestamp: 2000 })]));
    const live = await events.next();
    assert.equal(live?.id, "5,1,12");
    assert.deepEqual(batchOf(live), {
      records: [{ seq_num: 5, timestamp: 2000, body: "live" }],
      tail: { seq_num: 6, timestamp: 2000 },
    });
    abort.abort();
  });

  it("ends with [DONE] when wait expires after the tail", async () => {
    const stream = await streamWith(5);
    const startedMs = Date.now();
    const { events } = await openSse(stream, "seq_num=3&wait=1");
    const batch = await events.next();
    assert.equal(batch?.id, "4,2,20");
    assert.equal(batchOf(batch).tail, undefined); // catch-up batches carry no tail
    // Heartbeats until the wait deadline (one at once at the tail), then [DONE].
    let event = await events.next();
    assert.equal(event?.event, "ping");
    while (event?.event === "ping") event = await events.next();
    assert.equal(event?.data, "[DONE]");
    assert.ok(Date.now() - startedMs >= 900, "waited for the wait deadline");
    assert.equal(await events.next(), undefined);
  });

  it("resumes after Last-Event-ID: start forced, limits reduced, counters restarted", async () => {
    const stream = await streamWith(5);
    const { events } = await openSse(stream, "seq_num=0&count=5", { "last-event-id": "2,3,30" });
    const batch = await events.next();
    assert.equal(batch?.id, "4,2,20");
    assert.deepEqual(
      batchOf(batch).records.map((record) => record.seq_num),
      [3, 4],
    );
    assert.equal((await events.next())?.data, "[DONE]");
    // Limits already used up: nothing but [DONE].
    const spent = await openSse(stream, "seq_num=0&count=3", { "last-event-id": "1,3,30" });
    assert.equal((await spent.events.next())?.data, "[DONE]");
  });

  it("renders S2-Format base64 payloads", async () => {
    const stream = await streamWith(0);
    await basin
      .stream(stream)
      .append(
        AppendInput.create([
          AppendRecord.bytes({ body: new Uint8Array([0xff, 0]), headers: [["k", "v"]] }),
        ]),
      );
    const { events } = await openSse(stream, "seq_num=0&count=1", { "s2-format": "base64" });
    const batch = batchOf(await events.next());
    assert.deepEqual(batch.records[0]?.headers, [["aw==", "dg=="]]);
    assert.equal(batch.records[0]?.body, "/wA=");
  });

  it("answers errors found before streaming as ordinary HTTP errors", async () => {
    const stream = await streamWith(2);
    const response = await fetch(`${server.endpoint}/v1/streams/${stream}/records?seq_num=9`, {
      headers: { "s2-basin": basinName, accept: "text/event-stream" },
    });
    assert.equal(response.status, 416);
    assert.deepEqual(await response.json(), { tail: { seq_num: 2, timestamp: 1001 } });
    const bounded = await fetch(
      `${server.endpoint}/v1/streams/${stream}/records?seq_num=2&count=1`,
      {
        headers: { "s2-basin": basinName, accept: "text/event-stream" },
      },
    );
    assert.equal(bounded.status, 416);
    await bounded.arrayBuffer();
  });

  it("ends a followed session with an error event (no [DONE]) when the stream is deleted", async () => {
    const stream = await streamWith(1);
    const { events } = await openSse(stream, "seq_num=1");
    assert.equal((await events.next())?.event, "ping");
    await basin.streams.delete({ stream });
    // The terminal trim record arrives first (S2-API.md §11.22), then the error.
    let event = await events.next();
    if (event?.event === "batch") {
      assert.deepEqual(batchOf(event).records[0]?.headers, [["", "trim"]]);
      event = await events.next();
    }
    assert.equal(event?.event, "error");
    const body = JSON.parse(event?.data ?? "") as { code: string; message: string };
    assert.equal(typeof body.code, "string");
    assert.equal(typeof body.message, "string");
    assert.equal(await events.next(), undefined);
  });

  it("ends the session when the client disconnects", async () => {
    const stream = await streamWith(0);
    const baseline = await sseSessions();
    const abort = new AbortController();
    const { events } = await openSse(stream, "", {}, abort.signal);
    assert.equal((await events.next())?.event, "ping");
    assert.equal(await sseSessions(), baseline + 1);
    abort.abort();
    const deadlineMs = Date.now() + 5_000;
    while ((await sseSessions()) !== baseline) {
      assert.ok(Date.now() < deadlineMs, "the session was not ended");
      await sleep(20);
    }
    // The stream still serves readers.
    await basin.stream(stream).append(AppendInput.create([AppendRecord.string({ body: "x" })]));
    const again = await openSse(stream, "seq_num=0&count=1");
    assert.equal(batchOf(await again.events.next()).records.length, 1);
    assert.equal((await again.events.next())?.data, "[DONE]");
  });

  it("serves the SDK's fetch transport: a live session follows appends", async () => {
    const stream = await streamWith(3);
    const sse = basin.stream(stream, { forceTransport: "fetch" });
    const session = await sse.readSession({ start: { from: { seqNum: 1 } } });
    const writer = basin.stream(stream);
    const appending = (async () => {
      for (let i = 0; i < 4; i++) {
        await sleep(30);
        await writer.append(AppendInput.create([AppendRecord.string({ body: `live${i}` })]));
      }
    })();
    const received: [number, string][] = [];
    for await (const record of session) {
      received.push([record.seqNum, record.body]);
      if (received.length === 6) break;
    }
    await appending;
    assert.deepEqual(received, [
      [1, "r1"],
      [2, "r2"],
      [3, "live0"],
      [4, "live1"],
      [5, "live2"],
      [6, "live3"],
    ]);
    assert.equal(session.lastObservedTail()?.seqNum, 7);
  });

  it("serves the SDK's fetch transport: bounded sessions end by themselves, bytes included", async () => {
    const stream = await streamWith(4);
    const sse = basin.stream(stream, { forceTransport: "fetch" });
    const strings: string[] = [];
    for await (const record of await sse.readSession({
      start: { from: { seqNum: 0 } },
      stop: { limits: { count: 3 } },
    })) {
      strings.push(record.body);
    }
    assert.deepEqual(strings, ["r0", "r1", "r2"]);
    const bytes: Uint8Array[] = [];
    for await (const record of await sse.readSession(
      { start: { from: { tailOffset: 1 } }, stop: { waitSecs: 0 } },
      { as: "bytes" },
    )) {
      bytes.push(record.body);
    }
    assert.deepEqual(bytes, [new TextEncoder().encode("r3")]);
  });
});
