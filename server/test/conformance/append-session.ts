/**
 * The one behavioural suite every append-session front end passes (S2S over HTTP/2 and the
 * `tributary.v1` `AppendSession` RPC over gRPC and Connect), after hono's shared `runTest`. It pins
 * the contract of the one append pipeline behind them (`service/append-session.ts`): acks in input
 * order under pipelining, the first failure ending the session after the acks before it with no
 * later input applied, one in-flight bound in metered bytes, and a producer's seq continuing from
 * the opening request, with resends answered by their first acks.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { systemClock } from "../../src/core/clock.js";
import {
  appendSessionInflightBytesMax,
  appendSessionInputBytesMin,
} from "../../src/core/limits.js";
import { systemRandom } from "../../src/core/random.js";
import { meteredBytesOfBatch } from "../../src/core/records.js";
import type { ApiServer } from "../../src/api/server.js";
import type { Service } from "../../src/service/service.js";
import {
  createFaultyObjectStore,
  type FaultyObjectStore,
} from "../../src/storage/object-store/faulty.js";
import { createMemoryObjectStore } from "../../src/storage/object-store/memory.js";
import {
  ensureTestBasin,
  openTestService,
  readAll,
  testBasin,
  textsOf,
  startLoopbackApi,
} from "../support/engine.js";
import { until, within } from "../support/wait.js";

/** One record of an input: a text body and optional headers (name, value) as text. */
export interface RecordInit {
  readonly body: string;
  readonly headers?: readonly (readonly [string, string])[];
}

/** One append input as a client sends it. */
export interface InputInit {
  readonly records: readonly RecordInit[];
  readonly matchSeqNum?: number;
}

/** The producer fields of the request that opens a session. */
export interface ProducerInit {
  readonly id: string;
  readonly epoch: number;
  readonly seq: number;
}

/** An ack as the client decoded it. */
export interface AckSeen {
  readonly start: number;
  readonly end: number;
}

/**
 * The error that ended a session, as the client decoded it: `seq_num_mismatch` (a 412 with the
 * stream's next seq num) or the S2 error code.
 */
export type SessionError =
  | { readonly code: "seq_num_mismatch"; readonly nextSeqNum: number }
  | { readonly code: string };

/** How a session ended: every ack it received, then the error if it failed. */
export interface SessionEnd {
  readonly acks: readonly AckSeen[];
  readonly error: SessionError | undefined;
}

/** One open session of a front end under test. */
export interface SessionUnderTest {
  /** Sends one input now, without waiting for any ack (pipelining). */
  send(input: InputInit): void;
  /** Half-closes: no more inputs. */
  end(): void;
  /** Settles when the server has ended the session. */
  readonly ended: Promise<SessionEnd>;
  /** Resets the session and its connection (test cleanup). */
  cancel(): void;
}

/** How `runAppendSessionSuite` reaches one front end. */
export interface AppendSessionSuiteOptions {
  /** Names the front end in test output. */
  readonly name: string;
  /** Opens an append session on `stream` of the test basin at `endpoint`. */
  readonly open: (
    endpoint: string,
    stream: string,
    options: {
      /** The bearer token of the request that opens the session. */
      readonly token: string;
      readonly producer?: ProducerInit | undefined;
    },
  ) => SessionUnderTest;
}

const encoder = new TextEncoder();
const rootToken = "append-session-conformance-root";
const tokenCheckIntervalMs = 100;

/** The metered size of an input (S2-API.md §5.1), the unit of the in-flight bound. */
export function meteredBytesOfInput(input: InputInit): number {
  return meteredBytesOfBatch(
    input.records.map((record) => ({
      headers: (record.headers ?? []).map(([name, value]) => ({
        name: encoder.encode(name),
        value: encoder.encode(value),
      })),
      body: encoder.encode(record.body),
    })),
  );
}

/** The metered size of `all`. */
function bytesOf(all: readonly InputInit[]): number {
  return all.reduce((sum, input) => sum + meteredBytesOfInput(input), 0);
}

/** `count` inputs made by `make`. */
function sequence(count: number, make: (i: number) => InputInit): InputInit[] {
  return Array.from({ length: count }, (_, i) => make(i));
}

/** `count` inputs of one record each, with bodies `${prefix}${i}`. */
function inputs(prefix: string, count: number): InputInit[] {
  return sequence(count, (i) => ({ records: [{ body: `${prefix}${i}` }] }));
}

/** Registers the conformance tests for one front end with `node:test`. */
export function runAppendSessionSuite(options: AppendSessionSuiteOptions): void {
  describe(`append session conformance: ${options.name}`, () => {
    let store: FaultyObjectStore;
    let service: Service;
    let api: ApiServer;
    let endpoint: string;
    const sessions: SessionUnderTest[] = [];

    before(async () => {
      store = createFaultyObjectStore(createMemoryObjectStore(), {
        random: systemRandom,
        clock: systemClock,
      });
      service = await openTestService({ store });
      await ensureTestBasin(service);
      api = await startLoopbackApi(service, {
        auth: { kind: "token", rootToken },
        sessionTokenCheckIntervalMs: tokenCheckIntervalMs,
      });
      endpoint = `http://127.0.0.1:${api.port}`;
    });

    after(async () => {
      store?.setStalled(false);
      for (const session of sessions) session.cancel();
      await api?.close();
      await service?.close();
    });

    function openSession(
      stream: string,
      producer?: ProducerInit,
      token = rootToken,
    ): SessionUnderTest {
      const session = options.open(endpoint, stream, { producer, token });
      sessions.push(session);
      return session;
    }

    /** Sends `all` pipelined, half-closes, and waits for the session's end. */
    function run(stream: string, all: readonly InputInit[], producer?: ProducerInit) {
      const session = openSession(stream, producer);
      for (const input of all) session.send(input);
      session.end();
      return within(session.ended, `the end of a session on ${stream}`);
    }

    it("acks every input in input order while inputs are pipelined", async () => {
      const sizes = Array.from({ length: 60 }, (_, i) => 1 + (i % 3));
      const all = sizes.map((size, i) => ({
        records: Array.from({ length: size }, (_, j) => ({ body: `b${i}.${j}` })),
      }));
      const { acks, error } = await run("ordered", all);
      assert.equal(error, undefined);
      let next = 0;
      assert.deepEqual(
        acks,
        sizes.map((size) => ({ start: next, end: (next += size) })),
      );
      const stored = textsOf(await readAll(service, "ordered"));
      assert.deepEqual(
        stored,
        all.flatMap((input) => input.records.map((record) => record.body)),
      );
    });

    it("ends with a 412 in the middle after the acks before it; no later input is applied", async () => {
      const all: InputInit[] = [
        { records: [{ body: "a0" }, { body: "a1" }] },
        { records: [{ body: "b" }] },
        // The stream's next seq num is 3 here: the condition fails.
        { records: [{ body: "c" }], matchSeqNum: 0 },
        { records: [{ body: "d" }] },
        { records: [{ body: "e" }], matchSeqNum: 3 },
      ];
      const { acks, error } = await run("poisoned", all);
      assert.deepEqual(acks, [
        { start: 0, end: 2 },
        { start: 2, end: 3 },
      ]);
      assert.deepEqual(error, { code: "seq_num_mismatch", nextSeqNum: 3 });
      assert.deepEqual(textsOf(await readAll(service, "poisoned")), ["a0", "a1", "b"]);
      // The stream goes on: the inputs after the 412 were dropped, not left pending.
      const later = await run("poisoned", [{ records: [{ body: "f" }], matchSeqNum: 3 }]);
      assert.deepEqual(later, { acks: [{ start: 3, end: 4 }], error: undefined });
    });

    it("stops taking inputs at one in-flight bound in metered bytes, then acks them all", async () => {
      // Headers make an input's metered size smaller than its protobuf size (4 bytes per one-byte
      // header against 8), so a bound counted in wire bytes would stop at another point.
      const headers = Array.from({ length: 1_000 }, () => ["h", "v"] as const);
      const padding = "x".repeat(32 << 10);
      const large = (i: number): InputInit => ({ records: [{ body: `${i}${padding}`, headers }] });
      const largeBytes = meteredBytesOfInput(large(0));
      assert.ok(largeBytes > appendSessionInputBytesMin, "large inputs are charged their size");
      // An input is taken while the charged bytes are under the bound, so the one that reaches
      // the bound is taken too. A few more are sent: HTTP/2 buffers them, the session does not.
      const largeTaken = Math.ceil(appendSessionInflightBytesMax / largeBytes);
      // A small input is charged `appendSessionInputBytesMin`: the bound also caps their count.
      const smallTaken = appendSessionInflightBytesMax / appendSessionInputBytesMin;
      const cases = [
        { stream: "bound-large", taken: largeTaken, all: sequence(largeTaken + 20, large) },
        { stream: "bound-small", taken: smallTaken, all: inputs("small", smallTaken + 500) },
      ];
      for (const { stream, taken, all } of cases) {
        await service.streams.create({ basin: testBasin, name: stream });
        const bytesTaken = bytesOf(all.slice(0, taken));
        // Nothing becomes durable, so nothing is acked: the inputs taken stay in flight, and each
        // holds its metered bytes of the server's admission.
        assert.equal(service.storage.stats.inflightBytes, 0);
        store.setStalled(true);
        const session = openSession(stream);
        try {
          // Sent in slices, each once the server took the one before (or stopped at the bound):
          // a burst of ~10 MB on one HTTP/2 connection is refused by Node's session memory
          // bound (ENHANCE_YOUR_CALM) before any session sees it.
          const sliceLength = 32;
          for (let sent = 0; sent < all.length; ) {
            for (const input of all.slice(sent, sent + sliceLength)) session.send(input);
            sent = Math.min(sent + sliceLength, all.length);
            const bytesSent = bytesOf(all.slice(0, Math.min(sent, taken)));
            const what = `${stream}: the metered bytes of the first ${sent} inputs`;
            await until(() => service.storage.stats.inflightBytes, bytesSent, what, 20_000);
          }
          session.end();
          await sleep(300);
          assert.equal(service.storage.stats.inflightBytes, bytesTaken, "no input past the bound");
        } finally {
          store.setStalled(false);
        }
        const { acks, error } = await within(session.ended, `${stream}: the session's end`, 30_000);
        assert.equal(error, undefined);
        assert.deepEqual(
          acks,
          all.map((_, i) => ({ start: i, end: i + 1 })),
        );
        assert.equal((await service.records.checkTail(testBasin, stream)).seqNum, all.length);
      }
    });

    it("counts one append op per minute for a whole session, and meters every input's bytes", async () => {
      // docs/design/metrics.md: a session counts one op per stream per minute in which it appended.
      const basinTotal = async (set: "append-ops" | "append-throughput") => {
        const endSec = Math.floor(Date.now() / 1000) + 60;
        const range = { start: endSec - 3_600, end: endSec };
        const metrics = await service.metrics.basin(testBasin, { set, ...range });
        return metrics.reduce(
          (sum, metric) =>
            sum +
            (metric.kind === "accumulation" ? metric.values.reduce((n, [, v]) => n + v, 0) : 0),
          0,
        );
      };
      const all = inputs("metered", 12);
      const opsBefore = await basinTotal("append-ops");
      const bytesBefore = await basinTotal("append-throughput");
      const firstMinute = Math.floor(Date.now() / 60_000);
      const { acks, error } = await run("metered", all);
      const minutes = Math.floor(Date.now() / 60_000) - firstMinute + 1;
      assert.equal(error, undefined);
      assert.equal(acks.length, all.length);
      assert.ok((await basinTotal("append-ops")) - opsBefore <= minutes, "one op per minute");
      assert.ok((await basinTotal("append-ops")) - opsBefore >= 1, "at least one op");
      assert.equal((await basinTotal("append-throughput")) - bytesBefore, bytesOf(all));
    });

    it("ends with 401 after the acks of the inputs it took when its token expires", async () => {
      await service.streams.create({ basin: testBasin, name: "expiring" });
      // Long enough for the session to open and take its inputs on a loaded machine.
      const expiresAtMs = Date.now() + 4_000;
      const issued = await fetch(`${endpoint}/v1/access-tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" },
        body: JSON.stringify({
          id: `expiring-${options.name.replace(/[^a-z0-9]/gi, "-").toLowerCase()}`.slice(0, 96),
          scope: { basins: { prefix: "" }, streams: { prefix: "" }, ops: ["append"] },
          expires_at: new Date(expiresAtMs).toISOString(),
        }),
      });
      assert.equal(issued.status, 201, await issued.clone().text());
      const { access_token: token } = (await issued.json()) as { access_token: string };
      const all = inputs("expiring", 3);
      // The acks cannot be released before the token expires: nothing becomes durable.
      store.setStalled(true);
      let session: SessionUnderTest;
      try {
        session = openSession("expiring", undefined, token);
        for (const input of all) session.send(input);
        const what = "the inputs in flight";
        await until(() => service.storage.stats.inflightBytes, bytesOf(all), what);
        assert.ok(Date.now() < expiresAtMs, "the inputs were taken before the token expired");
        await sleep(expiresAtMs - Date.now() + 5 * tokenCheckIntervalMs);
      } finally {
        store.setStalled(false);
      }
      const { acks, error } = await within(session.ended, "the session's end");
      assert.deepEqual(
        acks,
        [0, 1, 2].map((n) => ({ start: n, end: n + 1 })),
      );
      assert.deepEqual(error, { code: "authn" });
    });

    it("numbers a producer's inputs from the opening seq; a resending session gets the first acks", async () => {
      const producer = { id: "conformance", epoch: 2, seq: 0 };
      const first = await run("producer", inputs("p", 3), producer);
      assert.deepEqual(first, {
        acks: [0, 1, 2].map((n) => ({ start: n, end: n + 1 })),
        error: undefined,
      });
      // The client lost the acks of seqs 1 and 2: it resends them, then one new input.
      const resent = await run(
        "producer",
        [
          { records: [{ body: "p1" }] },
          { records: [{ body: "p2" }] },
          { records: [{ body: "p3" }] },
        ],
        { ...producer, seq: 1 },
      );
      assert.deepEqual(resent, {
        acks: [1, 2, 3].map((n) => ({ start: n, end: n + 1 })),
        error: undefined,
      });
      // A gap in the seqs is a 409 before anything is written, and it ends the session.
      const gap = await run("producer", inputs("q", 2), { ...producer, seq: 9 });
      assert.deepEqual(gap, { acks: [], error: { code: "producer_out_of_sequence" } });
      assert.deepEqual(textsOf(await readAll(service, "producer")), ["p0", "p1", "p2", "p3"]);
    });
  });
}
