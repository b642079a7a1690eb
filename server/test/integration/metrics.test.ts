// Goal: the metrics API (S2-API.md §4.5, docs/design/metrics.md) answers every account, basin and
// stream set in S2's JSON shapes, over REST and through the official SDK, rejects bad input with
// S2's statuses, and keeps what it recorded across restarts, with the cache kept and with it
// deleted. Method: the real server process in local mode with a 100 ms metrics flush, driven by
// `@s2-dev/streamstore` and raw `fetch`; restarts reuse the object store directory.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AppendInput, AppendRecord, type S2 } from "@s2-dev/streamstore";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import {
  AccountMetricSet,
  BasinMetricSet,
  MetricUnit,
  StreamMetricSet,
  TimeseriesInterval,
} from "@tributary/protocol/gen/tributary/v1/metrics_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { metricsEntryBytesMax } from "../../src/core/limits.js";
import { walPrefix } from "../../src/storage/object-keys.js";
import { createLocalFsObjectStore } from "../../src/storage/object-store/local-fs.js";
import { listAll } from "../../src/storage/object-store/object-store.js";
import { decodeSegment } from "../../src/storage/segment/format.js";
import { decodeControlOp } from "../../src/storage/wal/entries.js";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

const basinName = "metrics-int";
const streamName = "events/1";
const metricsArgs = ["--metrics-flush-interval-ms", "100"];
/** Metered size of a record with no headers: 8 bytes of overhead plus the body. */
const meteredOf = (body: string): number => 8 + body.length;

interface MetricJson {
  accumulation?: { name: string; unit: string; interval: string; values: [number, number][] };
  gauge?: { name: string; unit: string; values: [number, number][] };
  label?: { name: string; values: string[] };
  scalar?: { name: string; unit: string; value: number };
}

async function getJson(
  server: ServerProcess,
  path: string,
): Promise<{ status: number; body: { values?: MetricJson[]; code?: string } }> {
  const response = await fetch(`${server.endpoint}${path}`);
  return { status: response.status, body: (await response.json()) as never };
}

/** The number of WAL segments under `localRoot` whose `metrics.add` entry counts append ops. */
async function metricsSegmentsIn(localRoot: string): Promise<number> {
  const store = createLocalFsObjectStore({ root: localRoot });
  let count = 0;
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list(walPrefix, { startAfter });
    for (const object of page.objects) {
      const text = Buffer.from((await store.get(object.key)) ?? []).toString("latin1");
      if (text.includes("metrics.add") && text.includes('"append-ops"')) count += 1;
    }
    startAfter = page.objects.at(-1)?.key;
    if (!page.isTruncated) break;
  }
  await store.close();
  return count;
}

/** Sum of an accumulation set's values, by series name. */
function totals(values: MetricJson[]): Record<string, number> {
  const result: Record<string, number> = {};
  for (const metric of values) {
    assert.ok(metric.accumulation !== undefined, JSON.stringify(metric));
    result[metric.accumulation.name] = metric.accumulation.values.reduce(
      (sum, [, v]) => sum + v,
      0,
    );
  }
  return result;
}

describe("metrics API (local mode)", () => {
  let localRoot: string;
  let cacheDir: string;
  let server: ServerProcess;
  let s2: S2;
  let startSec: number;
  const bodies = ["alpha", "beta", "gamma"];

  const query = (set: string, extra = ""): string =>
    `set=${set}&start=${startSec}&end=${Math.floor(Date.now() / 1000)}${extra}`;

  before(async () => {
    localRoot = await mkdtemp(join(tmpdir(), "tributary-metrics-objects-"));
    cacheDir = await mkdtemp(join(tmpdir(), "tributary-metrics-cache-"));
    server = await startServer({ mode: "local", localRoot, cacheDir, args: metricsArgs });
    s2 = s2ClientFor(server);
    startSec = Math.floor(Date.now() / 1000) - 120;
    await s2.basins.create({ basin: basinName });
    const basin = s2.basin(basinName);
    await basin.streams.create({ stream: streamName });
    const stream = basin.stream(streamName);
    for (const body of bodies) {
      await stream.append(AppendInput.create([AppendRecord.string({ body })]));
    }
    const read = await stream.read({
      start: { from: { seqNum: 0 } },
      stop: { limits: { count: 3 } },
    });
    assert.equal(read.records.length, 3);
    await s2.accessTokens.issue({
      id: "metrics-counted",
      scope: { ops: ["read"], basins: { exact: basinName } },
    });
    await s2.accessTokens.list();
    await s2.accessTokens.revoke({ id: "metrics-counted" });
  });

  after(async () => {
    await server?.cleanup();
    await rm(localRoot, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  });

  it("answers every basin set in S2's shapes", async () => {
    const appended = bodies.reduce((sum, body) => sum + meteredOf(body), 0);
    const path = `/v1/metrics/${basinName}?`;
    const appendOps = await getJson(server, path + query("append-ops"));
    assert.equal(appendOps.status, 200);
    assert.deepEqual(totals(appendOps.body.values!), { express: 3 });
    const first = appendOps.body.values![0]!.accumulation!;
    assert.equal(first.unit, "operations");
    assert.equal(first.interval, "minute");
    assert.ok(first.values.every(([t]) => t % 60 === 0 && t >= startSec - 60));
    const appendBytes = await getJson(server, path + query("append-throughput", "&interval=day"));
    assert.deepEqual(totals(appendBytes.body.values!), { express: appended });
    assert.equal(appendBytes.body.values![0]!.accumulation!.interval, "day");
    assert.equal(appendBytes.body.values![0]!.accumulation!.unit, "bytes");
    const readOps = await getJson(server, path + query("read-ops"));
    assert.deepEqual(totals(readOps.body.values!), { unary: 1 });
    const readBytes = await getJson(server, path + query("read-throughput"));
    assert.deepEqual(totals(readBytes.body.values!), { "read-throughput": appended });
    const basinOps = await getJson(server, path + query("basin-ops"));
    assert.equal(basinOps.body.values![0]!.accumulation!.interval, "hour");
    assert.equal(totals(basinOps.body.values!)["create-stream"], 1);
    const storage = await getJson(server, path + query("storage"));
    assert.equal(storage.status, 200);
    const gauge = storage.body.values![0]!.gauge!;
    assert.equal(gauge.name, "storage");
    assert.equal(gauge.unit, "bytes");
    assert.ok(gauge.values.every(([t]) => t % 3_600 === 0));
    assert.equal(gauge.values.at(-1)?.[1], appended);
  });

  it("answers the account sets and the stream set", async () => {
    const ops = await getJson(server, `/v1/metrics?${query("account-ops", "&interval=minute")}`);
    assert.equal(ops.status, 200);
    const opTotals = totals(ops.body.values!);
    assert.equal(opTotals["create-basin"], 1);
    assert.equal(opTotals["issue-access-token"], 1);
    assert.equal(opTotals["list-access-tokens"], 1);
    assert.equal(opTotals["revoke-access-token"], 1);
    assert.ok((opTotals["basin-metrics"] ?? 0) >= 1, JSON.stringify(opTotals));
    const active = await getJson(server, `/v1/metrics?${query("active-basins")}`);
    assert.deepEqual(active.body.values, [
      { label: { name: "active-basins", values: [basinName] } },
    ]);
    const stream = encodeURIComponent(streamName);
    const storage = await getJson(server, `/v1/metrics/${basinName}/${stream}?${query("storage")}`);
    const gauge = storage.body.values![0]!.gauge!;
    assert.ok(gauge.values.length >= 2, "one point per minute of the range");
    assert.ok(gauge.values.every(([t]) => t % 60 === 0));
    assert.equal(
      gauge.values.at(-1)?.[1],
      bodies.reduce((sum, body) => sum + meteredOf(body), 0),
    );
  });

  it("creates no series for a request on a basin that does not exist (404)", async () => {
    const phantom = "phantom-basin-zzz";
    const response = await fetch(`${server.endpoint}/v1/streams/x`, {
      headers: { "s2-basin": phantom },
    });
    assert.equal(response.status, 404);
    await response.body?.cancel();
    await sleep(300); // three flush intervals: a counted op would be durable by now
    const active = await getJson(server, `/v1/metrics?${query("active-basins")}`);
    assert.deepEqual(active.body.values, [
      { label: { name: "active-basins", values: [basinName] } },
    ]);
    const ops = await getJson(server, `/v1/metrics/${phantom}?${query("basin-ops")}`);
    assert.deepEqual(ops, { status: 200, body: { values: [] } });
  });

  it("works through the official SDK (Date and milliseconds in, Dates out)", async () => {
    const start = new Date(startSec * 1000);
    const end = new Date();
    const account = await s2.metrics.account({ set: "account-ops", start, end, interval: "hour" });
    const names = account.values.map((metric) =>
      "accumulation" in metric ? metric.accumulation.name : "",
    );
    assert.ok(names.includes("create-basin"), names.join());
    const basin = await s2.metrics.basin({ basin: basinName, set: "append-ops", start, end });
    const series = basin.values[0];
    assert.ok(series !== undefined && "accumulation" in series);
    assert.ok(series.accumulation.values[0]![0] instanceof Date);
    const stream = await s2.metrics.stream({
      basin: basinName,
      stream: streamName,
      set: "storage",
      start: start.getTime(),
      end: end.getTime(),
      interval: "minute",
    });
    assert.ok(stream.values[0] !== undefined && "gauge" in stream.values[0]);
    // An empty stream name is an error, as in S2 (the SDK's path ends in `/`: lite has no such
    // route, and neither do we; it was once normalized into the basin's metrics).
    await assert.rejects(
      s2.metrics.stream({ basin: basinName, stream: "", set: "storage", start, end }),
      (error: { status?: number }) => error.status === 404,
    );
    await assert.rejects(
      s2.metrics.basin({ basin: basinName, set: "storage", start: end, end: start }),
      (error: { status?: number }) => error.status === 422,
    );
    await assert.rejects(
      s2.metrics.basin({ basin: basinName, set: "storage", start, end, interval: "minute" }),
      (error: { status?: number }) => error.status === 422,
    );
  });

  it("rejects bad input with S2's statuses and codes", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, number, string][] = [
      [`/v1/metrics?start=${now - 60}&end=${now}`, 400, "bad_query"],
      [`/v1/metrics?set=bogus&start=${now - 60}&end=${now}`, 400, "bad_query"],
      [`/v1/metrics?set=account-ops&start=${now - 60}&end=${now}&interval=week`, 400, "bad_query"],
      [`/v1/metrics?set=account-ops&start=-5&end=${now}`, 400, "bad_query"],
      [`/v1/metrics?set=account-ops&start=${2 ** 32}&end=${now}`, 400, "bad_query"],
      [`/v1/metrics?set=account-ops&end=${now}`, 422, "invalid"],
      [`/v1/metrics?set=account-ops&start=${now}&end=${now - 60}`, 422, "invalid"],
      [`/v1/metrics?set=active-basins&start=${now - 40 * 86_400}&end=${now}`, 422, "invalid"],
      [`/v1/metrics?set=active-basins&start=${now}&end=${now + 600}`, 422, "invalid"],
      [
        `/v1/metrics/${basinName}?set=storage&start=${now - 60}&end=${now}&interval=day`,
        422,
        "invalid",
      ],
      [
        `/v1/metrics/${basinName}/s?set=storage&start=${now - 60}&end=${now}&interval=hour`,
        422,
        "invalid",
      ],
      [`/v1/metrics/${basinName}/s?set=append-ops&start=${now - 60}&end=${now}`, 400, "bad_query"],
      [`/v1/metrics/Bad_Basin?set=storage&start=${now - 60}&end=${now}`, 400, "bad_path"],
    ];
    for (const [path, status, code] of cases) {
      const { status: actual, body } = await getJson(server, path);
      assert.equal(actual, status, path);
      assert.equal(body.code, code, path);
    }
    // Unknown basins and streams are not 404: they have no data (S2).
    const unknown = await getJson(
      server,
      `/v1/metrics/no-such-basin?set=append-ops&start=${now - 60}&end=${now}`,
    );
    assert.deepEqual(unknown, { status: 200, body: { values: [] } });
  });

  it("answers the same sets through the RPCs (Connect and gRPC)", async () => {
    const appended = bodies.reduce((sum, body) => sum + meteredOf(body), 0);
    const transports = [
      createConnectTransport({ baseUrl: server.endpoint, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl: server.endpoint }),
    ];
    for (const transport of transports) {
      const end = Math.floor(Date.now() / 1000);
      const range = { start: startSec, end };
      const account = createClient(AccountService, transport);
      const active = await account.getAccountMetrics({
        set: AccountMetricSet.ACTIVE_BASINS,
        ...range,
      });
      assert.equal(active.values[0]?.metric.case, "label");
      assert.deepEqual(active.values[0]?.metric.value?.values, [basinName]);
      const ops = await account.getAccountMetrics({ set: AccountMetricSet.ACCOUNT_OPS, ...range });
      const names = ops.values.map((metric) => metric.metric.value?.name);
      assert.ok(names.includes("create-basin"), names.join());
      const basin = createClient(BasinService, transport);
      const bytes = await basin.getBasinMetrics({
        basin: basinName,
        set: BasinMetricSet.APPEND_THROUGHPUT,
        interval: TimeseriesInterval.HOUR,
        ...range,
      });
      const series = bytes.values[0]?.metric;
      assert.ok(series?.case === "accumulation");
      assert.equal(series.value.name, "express");
      assert.equal(series.value.unit, MetricUnit.BYTES);
      assert.equal(series.value.interval, TimeseriesInterval.HOUR);
      assert.equal(
        series.value.values.reduce((sum, point) => sum + point.value, 0),
        appended,
      );
      const stream = createClient(StreamService, transport);
      const storage = await stream.getStreamMetrics({
        basin: basinName,
        stream: streamName,
        set: StreamMetricSet.STORAGE,
        ...range,
      });
      const gauge = storage.values[0]?.metric;
      assert.ok(gauge?.case === "gauge");
      assert.equal(gauge.value.values.at(-1)?.value, appended);
      // Thunks, each called when awaited: a rejection nobody awaits yet is an unhandled one.
      for (const bad of [
        () => basin.getBasinMetrics({ basin: basinName, set: BasinMetricSet.STORAGE, end }),
        () =>
          basin.getBasinMetrics({ basin: basinName, set: BasinMetricSet.UNSPECIFIED, ...range }),
        () =>
          stream.getStreamMetrics({
            basin: basinName,
            stream: streamName,
            set: StreamMetricSet.STORAGE,
            interval: TimeseriesInterval.DAY,
            ...range,
          }),
      ]) {
        await assert.rejects(bad(), (error: unknown) => {
          assert.ok(error instanceof ConnectError, String(error));
          assert.equal(error.code, Code.InvalidArgument, error.message);
          assert.equal(error.metadata.get("s2-error-code"), "invalid");
          return true;
        });
      }
    }
  });

  it("keeps earlier minutes across restarts, with the cache kept and with it deleted", async () => {
    const endSec = Math.floor(Date.now() / 1000);
    const range = `start=${startSec}&end=${endSec}`;
    const sets = ["append-ops", "append-throughput", "read-ops", "read-throughput", "basin-ops"];
    const snapshot = async (): Promise<unknown[]> => {
      const results: unknown[] = [];
      for (const set of sets) {
        const { status, body } = await getJson(
          server,
          `/v1/metrics/${basinName}?set=${set}&${range}`,
        );
        assert.equal(status, 200);
        results.push(body);
      }
      return results;
    };
    const before = await snapshot();
    // A graceful stop flushes the recorder, as its periodic flush would have within 100 ms.
    assert.equal(await server.stop(), 0);
    server = await startServer({ mode: "local", localRoot, cacheDir, args: metricsArgs });
    assert.deepEqual(await snapshot(), before, "cache kept");
    assert.equal(await server.stop(), 0);
    await rm(cacheDir, { recursive: true, force: true });
    server = await startServer({ mode: "local", localRoot, cacheDir, args: metricsArgs });
    assert.match(server.output(), /replayed [1-9][0-9]* segments/);
    assert.deepEqual(await snapshot(), before, "cache deleted");
    const stream = encodeURIComponent(streamName);
    const now = Math.floor(Date.now() / 1000);
    const storage = await getJson(
      server,
      `/v1/metrics/${basinName}/${stream}?set=storage&start=${now - 60}&end=${now}`,
    );
    const appended = bodies.reduce((sum, body) => sum + meteredOf(body), 0);
    assert.equal(storage.body.values![0]!.gauge!.values.at(-1)?.[1], appended);
  });

  it("loses at most the unflushed interval in a crash (SIGKILL after a flush)", async () => {
    // Earlier appends were flushed long ago: the next segment with append ops holds this one.
    const segmentsBefore = await metricsSegmentsIn(localRoot);
    const stream = s2ClientFor(server).basin(basinName).stream(streamName);
    await stream.append(AppendInput.create([AppendRecord.string({ body: "crash" })]));
    const endSec = Math.floor(Date.now() / 1000);
    const path = `/v1/metrics/${basinName}?set=append-ops&start=${startSec}&end=${endSec}`;
    const before = await getJson(server, path);
    assert.equal(totals(before.body.values!).express, bodies.length + 1);
    // Wait (bounded) until a periodic flush put this append's op into the WAL, then crash.
    const deadline = Date.now() + 10_000;
    let flushed = false;
    while (!flushed && Date.now() < deadline) {
      await sleep(50);
      flushed = (await metricsSegmentsIn(localRoot)) > segmentsBefore;
    }
    assert.ok(flushed, "a metrics.add segment was written within 10 s");
    await server.kill();
    server = await startServer({ mode: "local", localRoot, cacheDir, args: metricsArgs });
    assert.deepEqual(await getJson(server, path), before);
  });
});

// The review's finding: every stream due at one flush made one `metrics.add` entry bigger than a
// segment may be, and recovery then failed. Thousands of long-named streams are all due at the
// first flush; every entry must stay under the bound and a restart without the cache must work.
describe("metrics with thousands of long-named streams (local mode)", () => {
  it("keeps every metrics.add entry under the bound and replays without the cache", async () => {
    const localRoot = await mkdtemp(join(tmpdir(), "tributary-metrics-many-objects-"));
    const cacheDir = await mkdtemp(join(tmpdir(), "tributary-metrics-many-cache-"));
    // No periodic flush (10 s) before the stop, normally: every stream is sampled at one flush.
    const args = ["--metrics-flush-interval-ms", "10000"];
    let server = await startServer({ mode: "local", localRoot, cacheDir, args });
    try {
      const s2 = s2ClientFor(server);
      const basin = "metrics-many";
      await s2.basins.create({ basin });
      const streamCount = 2_000;
      const nameOf = (i: number): string => `${"n".repeat(500)}-${i}`;
      for (let i = 0; i < streamCount; i += 200) {
        await Promise.all(
          Array.from({ length: 200 }, (_, j) =>
            s2.basin(basin).streams.create({ stream: nameOf(i + j) }),
          ),
        );
      }
      await s2
        .basin(basin)
        .stream(nameOf(3))
        .append(AppendInput.create([AppendRecord.string({ body: "three" })]));
      assert.equal(await server.stop(), 0); // flushes the recorder: every stream is sampled
      const store = createLocalFsObjectStore({ root: localRoot });
      let gaugeRows = 0;
      let metricsEntries = 0;
      for (const object of await listAll(store, walPrefix)) {
        const bytes = await store.get(object.key);
        assert.ok(bytes !== undefined);
        for (const entry of decodeSegment(bytes).entries) {
          if (entry.kind !== "control") continue;
          const op = decodeControlOp(entry.payload);
          if (op.op !== "metrics.add") continue;
          assert.ok(entry.payload.length <= metricsEntryBytesMax, `${entry.payload.length}`);
          gaugeRows += op.gauges.length;
          metricsEntries += 1;
        }
      }
      await store.close();
      assert.ok(gaugeRows >= streamCount, `${gaugeRows} gauge rows`);
      assert.ok(metricsEntries >= 4, `${metricsEntries} entries for ~1 MB of rows`);
      await rm(cacheDir, { recursive: true, force: true });
      server = await startServer({ mode: "local", localRoot, cacheDir, args: metricsArgs });
      assert.match(server.output(), /replayed [1-9][0-9]* segments/);
      const now = Math.floor(Date.now() / 1000);
      const stream = encodeURIComponent(nameOf(3));
      const storage = await getJson(
        server,
        `/v1/metrics/${basin}/${stream}?set=storage&start=${now - 60}&end=${now}`,
      );
      assert.equal(storage.status, 200);
      assert.equal(storage.body.values![0]!.gauge!.values.at(-1)?.[1], meteredOf("three"));
    } finally {
      await server.cleanup();
      await rm(localRoot, { recursive: true, force: true });
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});
