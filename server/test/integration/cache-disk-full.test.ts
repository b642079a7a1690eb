// Goal: the real server with its cache on a full filesystem keeps acknowledging appends from the
// bucket, loses nothing acknowledged, says so on /health and /metrics, starts on a full disk with
// one line naming ENOSPC, and goes back to its disk by itself once space is freed (issue 14 item 5,
// docs/design/degraded-cache.md). Method: a 16 MiB tmpfs mounted for the cache (root only: the
// test skips with a message where mount fails; the engine test injects ENOSPC everywhere), the
// bucket a local directory elsewhere, records as base64 JSON over REST, the disk filled by a file.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../support/server-process.js";

const tmpfsBytes = 16 << 20;
/** A rejoin is one probe interval (5 s, `cacheDiskProbeIntervalMs`) away; this bounds the wait. */
const waitMsMax = 30_000;
const basin = "disk-full-basin";
const stream = "s";

let mountDir: string | undefined;
let mountProblem: string | undefined;
let localRoot: string;

before(async () => {
  localRoot = await mkdtemp(join(tmpdir(), "tributary-disk-full-objects-"));
  const dir = await mkdtemp(join(tmpdir(), "tributary-disk-full-mnt-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${tmpfsBytes}`, "tmpfs", dir], {
      stdio: "pipe",
    });
    mountDir = dir;
  } catch (error) {
    mountProblem = error instanceof Error ? error.message.split("\n")[0] : String(error);
    await rm(dir, { recursive: true, force: true });
  }
});

after(async () => {
  if (mountDir !== undefined) {
    execFileSync("umount", [mountDir], { stdio: "pipe" });
    await rm(mountDir, { recursive: true, force: true });
  }
  await rm(localRoot, { recursive: true, force: true });
});

async function rest(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  const headers: Record<string, string> = { "s2-basin": basin, "s2-format": "base64" };
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${server.endpoint}${path}`, {
    method,
    headers,
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(waitMsMax),
  });
}

/** Appends one record of random bytes; returns its bytes once acknowledged (asserts the 200). */
async function appendOne(server: ServerProcess): Promise<Buffer> {
  const body = randomBytes(3000);
  const response = await rest(server, "POST", `/v1/streams/${stream}/records`, {
    records: [{ body: body.toString("base64") }],
  });
  assert.equal(response.status, 200, await response.clone().text());
  return body;
}

/** Every record of the stream, in order, as bytes. */
async function readAll(server: ServerProcess): Promise<Buffer[]> {
  const all: Buffer[] = [];
  for (;;) {
    const response = await rest(
      server,
      "GET",
      `/v1/streams/${stream}/records?seq_num=${all.length}&count=1000`,
    );
    if (response.status === 416) {
      // Reading at the tail: S2 answers 416 with the tail.
      const { tail } = (await response.json()) as { tail: { seq_num: number } };
      assert.equal(tail.seq_num, all.length, "the read ended at the tail");
      return all;
    }
    assert.equal(response.status, 200, await response.clone().text());
    const { records } = (await response.json()) as {
      records: { seq_num: number; body: string }[];
    };
    if (records.length === 0) return all;
    for (const record of records) {
      assert.equal(record.seq_num, all.length, "seq nums are dense from 0");
      all.push(Buffer.from(record.body, "base64"));
    }
  }
}

async function assertReadsBack(server: ServerProcess, acked: readonly Buffer[]): Promise<void> {
  const records = await readAll(server);
  assert.equal(records.length, acked.length, "every acknowledged record reads back");
  for (const [i, record] of records.entries()) {
    assert.ok(record.equals(acked[i]!), `record ${i} reads back byte for byte`);
  }
}

async function health(server: ServerProcess): Promise<{ status: number; body: string }> {
  const response = await fetch(`${server.endpoint}/health`);
  return { status: response.status, body: await response.text() };
}

async function degradedGauge(server: ServerProcess): Promise<string | undefined> {
  const text = await (await fetch(`${server.endpoint}/metrics`)).text();
  return /^tributary_cache_degraded (\d+)$/m.exec(text)?.[1];
}

async function waitFor(what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Fills the filesystem at `dir` with one file until ENOSPC; returns its path. */
async function fillDisk(dir: string): Promise<string> {
  const path = join(dir, `filler-${randomBytes(4).toString("hex")}`);
  const handle = await open(path, "w");
  const chunk = Buffer.alloc(64 << 10);
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    assert.equal((error as { code?: string }).code, "ENOSPC", "the disk filled up");
  } finally {
    await handle.close();
  }
  // What is left (less than a chunk): small writes until nothing fits.
  const tail = await open(path, "a");
  try {
    for (;;) await tail.write(Buffer.alloc(512));
  } catch {
    // full
  } finally {
    await tail.close();
  }
  return path;
}

describe("a full cache disk", () => {
  it("keeps acknowledging appends from the bucket, reports it, survives a restart on the full disk, and rejoins once space is freed", async (t) => {
    if (mountDir === undefined) {
      t.skip(`cannot mount a tmpfs here (needs root): ${mountProblem}`);
      return;
    }
    const cacheDir = join(mountDir, "cache");
    await mkdir(cacheDir);
    const fillers: string[] = [];
    let server = await startServer({ mode: "local", cacheDir, localRoot });
    try {
      const created = await fetch(`${server.endpoint}/v1/basins`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ basin, config: { create_stream_on_append: true } }),
      });
      assert.equal(created.status, 201, await created.clone().text());
      const acked: Buffer[] = [];
      for (let i = 0; i < 5; i++) acked.push(await appendOne(server));
      assert.deepEqual(await health(server), { status: 200, body: "OK" });

      fillers.push(await fillDisk(mountDir));
      // Every append is acknowledged (no reset, no exit) while the cache cannot write.
      for (let i = 0; i < 20; i++) acked.push(await appendOne(server));
      await waitFor("the degraded state", async () => (await degradedGauge(server)) === "1");
      const degraded = await health(server);
      assert.equal(degraded.status, 200);
      assert.match(degraded.body, /^degraded: cache disk unusable \(ENOSPC/);
      await assertReadsBack(server, acked);
      assert.equal(server.child.exitCode, null, "the server is still running");

      // A restart on the still-full disk (the degrade wiped the cache: fill what it freed).
      assert.equal(await server.stop(), 0);
      fillers.push(await fillDisk(mountDir));
      server = await startServer({ mode: "local", cacheDir, localRoot });
      const lines = server
        .output()
        .split("\n")
        .filter((line) => /cache disk unusable/.test(line));
      assert.equal(lines.length, 1, `one line says why:\n${server.output()}`);
      assert.match(lines[0]!, /\(ENOSPC/);
      t.diagnostic(`restart on the full disk: ${lines[0]}`);
      assert.match((await health(server)).body, /^degraded: .*ENOSPC/);
      await assertReadsBack(server, acked);
      for (let i = 0; i < 5; i++) acked.push(await appendOne(server));

      // Space returns: the server goes back to its disk by itself.
      for (const filler of fillers.splice(0)) await rm(filler);
      await waitFor("the rejoin", async () => (await health(server)).body === "OK");
      assert.equal(await degradedGauge(server), "0");
      for (let i = 0; i < 5; i++) acked.push(await appendOne(server));
      await assertReadsBack(server, acked);
      assert.match(server.output(), /cache disk usable again/);
      assert.equal(await server.stop(), 0);
    } finally {
      await server.cleanup();
      for (const filler of fillers) await rm(filler, { force: true });
    }
  });
});
