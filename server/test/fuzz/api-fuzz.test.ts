// Goal: no input a client can send makes the server crash, answer a 5xx, answer outside its
// protocol, or keep a session open (issue 14, the fuzzing target): mutated JSON and protobuf
// append bodies, mutated S2S append frames, and random HTTP/2 frame sequences. After every case
// the server must still take a valid append.
// Method: the API server in-process on memory stores; inputs drawn from a seeded PRNG, mutating
// valid requests byte by byte and, for JSON, value by value. `make test` runs a few fixed seeds for
// a bounded number of cases; `make soak` runs fresh seeds for `TRIBUTARY_FUZZ_SECONDS` per target.
// A failure names its target, seed and case; `TRIBUTARY_FUZZ_SEED=<seed>` replays that seed.
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AppendAckSchema, AppendInputSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import {
  encodeS2sFrame,
  parseS2sTerminalPayload,
  type S2sFrame,
  S2sFrameDecoder,
} from "../../src/api/s2s/frame.js";
import type { ApiServer } from "../../src/api/server.js";
import { errorCodes } from "../../src/core/errors.js";
import type { Service } from "../../src/service/service.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import {
  ensureTestBasin,
  openTestService,
  testBasin,
  startLoopbackApi,
} from "../support/engine.js";

/** Seeds `make test` runs; `make soak` (TRIBUTARY_SOAK=1) draws new ones. */
const fixedSeeds = [1, 2, 3];
/** Cases per seed and target in `make test`. */
const casesPerSeed = 60;
const soakSeconds = Number(process.env.TRIBUTARY_FUZZ_SECONDS ?? 60);
const isSoak = process.env.TRIBUTARY_SOAK === "1";
/** A case that has not finished by then is a failure (a hang), not a slow test. */
const caseTimeoutMs = 10_000;
const stream = "fuzzed";

let service: Service;
let api: ApiServer;
let endpoint: string;

before(async () => {
  service = await openTestService({ store: createMemoryObjectStore() });
  await ensureTestBasin(service);
  await service.streams.create({ basin: testBasin, name: stream });
  api = await startLoopbackApi(service);
  endpoint = `http://127.0.0.1:${api.port}`;
});

after(async () => {
  await api?.close();
  await service?.close();
});

/** mulberry32: small, seeded, good enough to pick mutations. */
function prng(seed: number): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    bytes: (n) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256)),
  };
}

interface Rng {
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Uint8Array;
}

/** Byte values that sit on the edges of lengths, varints and UTF-8. */
const edgeBytes = [0x00, 0x01, 0x7f, 0x80, 0xbf, 0xc0, 0xfe, 0xff];

/** One to four byte-level mutations: flips, edge values, inserts, deletes, repeats, cuts. */
function mutateBytes(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes: Uint8Array = Uint8Array.from(input);
  const count = 1 + rng.int(4);
  for (let i = 0; i < count; i++) {
    const at = rng.int(bytes.length + 1);
    switch (rng.int(6)) {
      case 0:
        if (at < bytes.length) bytes[at]! ^= 1 << rng.int(8);
        break;
      case 1:
        if (at < bytes.length) bytes[at] = rng.pick(edgeBytes);
        break;
      case 2:
        bytes = concat(bytes.subarray(0, at), rng.bytes(1 + rng.int(16)), bytes.subarray(at));
        break;
      case 3:
        bytes = concat(bytes.subarray(0, at), bytes.subarray(at + 1 + rng.int(8)));
        break;
      case 4: {
        const piece = bytes.subarray(at, at + 1 + rng.int(32));
        bytes = concat(bytes.subarray(0, at), piece, piece, bytes.subarray(at));
        break;
      }
      case 5:
        bytes = bytes.subarray(0, at);
        break;
    }
  }
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** A JSON value of a random kind (some of them hostile: huge, negative, deep, long). */
function randomJsonValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 7 : 9)) {
    case 0:
      return null;
    case 1:
      return rng.pick([true, false]);
    case 2:
      return rng.pick([0, -1, 1.5, 2 ** 53, 2 ** 64, -(2 ** 63), 1e308, 4_294_967_296]);
    case 3:
      return rng.pick(["", "x", "aGVsbG8=", "===", "\u0000", "\ud800", "é".repeat(300)]);
    case 4:
      return "y".repeat(rng.int(2_000_000));
    case 5:
      return rng.int(1_000_000);
    case 6:
      return rng.pick(["fence", "trim", "", "\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0001"]);
    case 7:
      return Array.from({ length: rng.int(4) }, () => randomJsonValue(rng, depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: rng.int(4) }, () => [
          rng.pick(["body", "headers", "timestamp", "records", "match_seq_num", "x"]),
          randomJsonValue(rng, depth + 1),
        ]),
      );
  }
}

/** A valid JSON append body, then one to three of its values replaced or removed. */
function mutatedJsonBody(rng: Rng): string {
  const body: Record<string, unknown> = {
    records: Array.from({ length: 1 + rng.int(3) }, (_, i) => ({
      body: `record ${i}`,
      headers: [["name", "value"]],
      ...(rng.int(2) === 0 && { timestamp: 1_700_000_000_000 + i }),
    })),
    ...(rng.int(3) === 0 && { match_seq_num: rng.int(3) }),
    ...(rng.int(3) === 0 && { fencing_token: "" }),
  };
  const edits = 1 + rng.int(3);
  for (let i = 0; i < edits; i++) {
    const records = body["records"] as Record<string, unknown>[] | unknown;
    const target =
      Array.isArray(records) && records.length > 0 && rng.int(2) === 0
        ? (rng.pick(records) as Record<string, unknown>)
        : body;
    if (target === null || typeof target !== "object") continue;
    const key = rng.pick([...Object.keys(target), "records", "body", "headers", "timestamp"]);
    if (rng.int(4) === 0) delete target[key];
    else target[key] = randomJsonValue(rng);
  }
  const text = JSON.stringify(body);
  // Now and then, damage the text itself.
  return rng.int(4) === 0 ? Buffer.from(mutateBytes(rng, Buffer.from(text))).toString() : text;
}

/** A valid protobuf `AppendInput`. */
function validAppendInput(rng: Rng): Uint8Array {
  const encoder = new TextEncoder();
  return toBinary(
    AppendInputSchema,
    create(AppendInputSchema, {
      records: Array.from({ length: 1 + rng.int(3) }, (_, i) => ({
        body: encoder.encode(`record ${i}`),
        headers: [{ name: encoder.encode("name"), value: encoder.encode("value") }],
        timestamp: BigInt(rng.int(2) === 0 ? 0 : 1_700_000_000_000 + i),
      })),
      ...(rng.int(3) === 0 && { matchSeqNum: BigInt(rng.int(3)) }),
    }),
  );
}

/** An error answer in the API's shape: JSON `{code, message}` with a known code (or a 412). */
function assertApiError(status: number, contentType: string | null, text: string, what: string) {
  assert.ok(status >= 400 && status < 500, `${what}: status ${status} ${text.slice(0, 300)}`);
  assert.equal(contentType, "application/json", `${what}: content type`);
  const body = JSON.parse(text) as Record<string, unknown>;
  if (status === 412) {
    assert.ok("seq_num_mismatch" in body || "fencing_token_mismatch" in body, `${what}: ${text}`);
    return;
  }
  assert.ok(errorCodes.includes(body["code"] as never), `${what}: code ${String(body["code"])}`);
  assert.equal(typeof body["message"], "string", `${what}: message`);
}

async function postRecords(headers: Record<string, string>, body: Uint8Array | string) {
  const response = await fetch(`${endpoint}/v1/streams/${stream}/records`, {
    method: "POST",
    headers: { "s2-basin": testBasin, ...headers },
    body,
    signal: AbortSignal.timeout(caseTimeoutMs),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    bytes,
    text: new TextDecoder().decode(bytes),
  };
}

/** A valid append must still succeed: the server is up and the stream writable. */
async function assertServing(what: string): Promise<void> {
  const reply = await postRecords({ "content-type": "application/json" }, '{"records":[{}]}');
  assert.equal(reply.status, 200, `${what}: the server still appends: ${reply.text}`);
}

function appendSessionGauge(): number {
  const match = /tributary_sessions\{kind="s2s_append"\} (\d+)/.exec(api.metrics.render());
  assert.ok(match !== null, "the sessions gauge is exposed");
  return Number(match[1]);
}

/** One fuzz case: what it sends, and the checks of what comes back. */
type FuzzCase = (rng: Rng, what: string) => Promise<void>;

const jsonAppend: FuzzCase = async (rng, what) => {
  const format = rng.pick([undefined, "raw", "base64", "hex"]);
  const reply = await postRecords(
    { "content-type": "application/json", ...(format !== undefined && { "s2-format": format }) },
    mutatedJsonBody(rng),
  );
  if (reply.status !== 200) assertApiError(reply.status, reply.contentType, reply.text, what);
};

const protobufAppend: FuzzCase = async (rng, what) => {
  const reply = await postRecords(
    { "content-type": "application/protobuf", accept: "application/protobuf" },
    mutateBytes(rng, validAppendInput(rng)),
  );
  if (reply.status === 200) {
    assert.equal(reply.contentType, "application/protobuf", what);
    fromBinary(AppendAckSchema, reply.bytes);
  } else {
    assertApiError(reply.status, reply.contentType, reply.text, what);
  }
};

let h2: http2.ClientHttp2Session | undefined;

function h2Client(): http2.ClientHttp2Session {
  if (h2 === undefined || h2.closed || h2.destroyed) {
    h2 = http2.connect(endpoint);
    h2.on("error", () => {});
  }
  return h2;
}

/** Frames of valid inputs, then the whole byte stream mutated and cut at random points. */
const s2sAppend: FuzzCase = async (rng, what) => {
  const valid = Array.from({ length: 1 + rng.int(3) }, () =>
    encodeS2sFrame(validAppendInput(rng), { compression: "none" }),
  );
  const bytes = mutateBytes(rng, concat(...valid));
  const request = h2Client().request({
    ":method": "POST",
    ":path": `/v1/streams/${stream}/records`,
    "content-type": "s2s/proto",
    "s2-basin": testBasin,
  });
  const decoder = new S2sFrameDecoder();
  const frames: S2sFrame[] = [];
  let status = 0;
  request.on("response", (headers) => {
    status = Number(headers[":status"]);
  });
  request.on("data", (chunk: Buffer) => {
    const result = decoder.push(chunk);
    frames.push(...result.frames);
  });
  const closed = new Promise<void>((resolve) => request.once("close", resolve));
  request.on("error", () => {});
  // Sent in random pieces, as a network would cut them.
  for (let at = 0; at < bytes.length; ) {
    const end = Math.min(bytes.length, at + 1 + rng.int(64));
    request.write(bytes.subarray(at, end));
    at = end;
  }
  request.end();
  await Promise.race([
    closed,
    sleep(caseTimeoutMs).then(() => assert.fail(`${what}: the exchange never closed`)),
  ]);
  if (status === 200) {
    for (const frame of frames) {
      if (!frame.isTerminal) {
        fromBinary(AppendAckSchema, frame.payload);
        continue;
      }
      const terminal = parseS2sTerminalPayload(frame.payload);
      assert.ok(terminal.status >= 400 && terminal.status < 500, `${what}: ${terminal.body}`);
    }
  } else {
    assert.ok(status >= 400 && status < 500, `${what}: status ${status}`);
  }
};

/** HTTP/2 frame types 0–9 and a few unknown ones, with random flags, stream ids and payloads. */
function randomH2Frames(rng: Rng): Uint8Array {
  const frames: Uint8Array[] = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")];
  frames.push(h2Frame(4, 0, 0, new Uint8Array(0))); // an empty SETTINGS, as a client starts
  const count = 1 + rng.int(8);
  for (let i = 0; i < count; i++) {
    const type = rng.int(4) === 0 ? 10 + rng.int(246) : rng.int(10);
    const streamId = rng.pick([0, 1, 2, 3, 5, 0x7fffffff]);
    frames.push(h2Frame(type, rng.int(256), streamId, rng.bytes(rng.int(80))));
  }
  return mutateBytes(rng, concat(...frames));
}

function h2Frame(type: number, flags: number, streamId: number, payload: Uint8Array): Uint8Array {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return concat(header, payload);
}

const h2Frames: FuzzCase = async (rng, what) => {
  const socket = net.connect(api.port, "127.0.0.1");
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.write(randomH2Frames(rng));
  // The server answers (SETTINGS, GOAWAY, RST_STREAM) or closes; the client then leaves.
  await sleep(5 + rng.int(20));
  socket.destroy();
  await assertServing(what);
};

const targets: Record<string, FuzzCase> = {
  "JSON append bodies": jsonAppend,
  "protobuf append bodies": protobufAppend,
  "S2S append frames": s2sAppend,
  "HTTP/2 frame sequences": h2Frames,
};

/** Runs `target` over `seed` for `cases` cases or until `deadlineMs`. */
async function runSeed(
  name: string,
  target: FuzzCase,
  seed: number,
  limits: { cases: number; deadlineMs: number },
): Promise<number> {
  const rng = prng(seed);
  let ran = 0;
  for (; ran < limits.cases && Date.now() < limits.deadlineMs; ran++) {
    const what = `${name}, seed ${seed} (TRIBUTARY_FUZZ_SEED=${seed}), case ${ran}`;
    await target(rng, what);
  }
  await assertServing(`${name}, seed ${seed}, after ${ran} cases`);
  return ran;
}

describe("fuzzing the API", { concurrency: false }, () => {
  const replay = process.env.TRIBUTARY_FUZZ_SEED;
  for (const [name, target] of Object.entries(targets)) {
    it(name, async () => {
      const sessionsBefore = appendSessionGauge();
      let cases = 0;
      if (replay !== undefined) {
        cases += await runSeed(name, target, Number(replay), {
          cases: casesPerSeed,
          deadlineMs: Number.POSITIVE_INFINITY,
        });
      } else if (isSoak) {
        const deadlineMs = Date.now() + soakSeconds * 1000;
        while (Date.now() < deadlineMs) {
          const seed = Math.floor(Math.random() * 0x1_0000_0000);
          cases += await runSeed(name, target, seed, { cases: casesPerSeed * 10, deadlineMs });
        }
      } else {
        for (const seed of fixedSeeds) {
          cases += await runSeed(name, target, seed, {
            cases: casesPerSeed,
            deadlineMs: Number.POSITIVE_INFINITY,
          });
        }
      }
      assert.ok(cases > 0, "ran at least one case");
      // Every session the cases opened has ended: none outlives its client.
      const deadline = Date.now() + caseTimeoutMs;
      while (appendSessionGauge() !== sessionsBefore && Date.now() < deadline) await sleep(20);
      assert.equal(appendSessionGauge(), sessionsBefore, `${name}: S2S append sessions leaked`);
      console.log(`# fuzz ${name}: ${cases} cases`);
    });
  }
  after(() => {
    h2?.close();
  });
});
