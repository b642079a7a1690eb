// Goal: the record commands (append, read, check-tail, fence, trim) move exactly the bytes they
// are given, in every input and output format, honour start positions and limits, follow the
// live tail, and enforce fencing. Method: the server process in memory mode, commands run
// in-process with captured streams, and each command's output checked against another's.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { type ServerProcess, startServer } from "../../../server/test/support/server-process.js";
import { maxBatchBytes } from "../records.js";
import { runCli } from "./main.js";
import { progressClearLine } from "./progress.js";
import { CapturedOutput, runCaptured } from "./test-io.js";

/** How long a test waits for a followed read to print, at most. */
const followWaitMs = 20_000;

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + followWaitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("tributary CLI: records", () => {
  let server: ServerProcess;
  let env: Record<string, string>;
  const run = (
    argv: string[],
    options: { stdin?: string | Uint8Array; stderrIsTTY?: boolean; stdoutIsTTY?: boolean } = {},
  ) => runCaptured(argv, { env, ...options });
  const jsonLines = (text: string): Record<string, unknown>[] =>
    text
      .trimEnd()
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line));

  before(async () => {
    server = await startServer({ mode: "memory" });
    env = { S2_ACCOUNT_ENDPOINT: server.endpoint };
    assert.equal((await run(["create-basin", "cli-records"])).code, 0);
  });
  after(async () => {
    await server.cleanup();
  });

  it("appends lines and reads them back in every format", async () => {
    const uri = "s2://cli-records/lines";
    assert.equal((await run(["create-stream", uri])).code, 0);
    const appended = await run(["append", uri], { stdin: "alpha\nbeta\r\ngamma\n" });
    assert.equal(appended.code, 0, appended.stderr);
    assert.match(appended.stdout, /^appended 3 records in 0\.\.=2, tail 3 @ \d+\n$/);
    const more = await run(["append", uri, "--json"], { stdin: "delta" });
    const ack = JSON.parse(more.stdout);
    assert.equal(ack.records, 1);
    assert.equal(ack.start.seq_num, 3);
    assert.equal(ack.end.seq_num, 4);
    assert.equal(ack.tail.seq_num, 4);

    const tail = await run(["check-tail", uri]);
    assert.match(tail.stdout, /^4 @ \d+\n$/);
    const tailJson = JSON.parse((await run(["check-tail", uri, "--json"])).stdout);
    assert.equal(tailJson.seq_num, 4);

    const text = await run(["read", uri]);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, "alpha\nbeta\ngamma\ndelta\n");
    const json = jsonLines(
      (await run(["read", uri, "--format", "json", "-s", "1", "-n", "2"])).stdout,
    );
    assert.deepEqual(
      json.map(({ seq_num, headers, body }) => ({ seq_num, headers, body })),
      [
        { seq_num: 1, headers: [], body: "beta" },
        { seq_num: 2, headers: [], body: "gamma" },
      ],
    );
    assert.equal(typeof json[0]!["timestamp"], "number");
    const base64 = jsonLines(
      (await run(["read", uri, "--format", "json-base64", "-n", "1"])).stdout,
    );
    assert.equal(base64[0]!["body"], Buffer.from("alpha").toString("base64"));
    const raw = await run(["read", uri, "--format", "raw"]);
    assert.equal(raw.stdout, "alphabetagammadelta");
  });

  it("appends JSON records with headers and timestamps, and raw bytes as one record", async () => {
    const uri = "s2://cli-records/json";
    assert.equal(
      (await run(["create-stream", uri, "--timestamping-mode", "client-require"])).code,
      0,
    );
    const input = [
      '{"headers":[["kind","greeting"]],"body":"hello","timestamp":1000}',
      "",
      '{"headers":[{"name":"kind","value":"farewell"}],"body":"bye","timestamp":2000}',
    ].join("\n");
    const appended = await run(["append", uri, "--format", "json"], { stdin: input });
    assert.equal(appended.code, 0, appended.stderr);
    const encoded = JSON.stringify({
      headers: [[Buffer.from("bin").toString("base64"), Buffer.from([0, 1]).toString("base64")]],
      body: Buffer.from([255, 0, 254]).toString("base64"),
      timestamp: 3000,
    });
    assert.equal(
      (await run(["append", uri, "--format", "json-base64"], { stdin: encoded })).code,
      0,
    );
    const records = jsonLines((await run(["read", uri, "--json"])).stdout);
    assert.deepEqual(
      records.slice(0, 2).map(({ timestamp, headers, body }) => ({ timestamp, headers, body })),
      [
        { timestamp: 1000, headers: [["kind", "greeting"]], body: "hello" },
        { timestamp: 2000, headers: [["kind", "farewell"]], body: "bye" },
      ],
    );
    const binary = jsonLines(
      (await run(["read", uri, "--format", "json-base64", "-s", "2"])).stdout,
    )[0]!;
    assert.equal(binary["body"], Buffer.from([255, 0, 254]).toString("base64"));
    assert.equal(binary["timestamp"], 3000);

    const notBase64 = await run(["append", uri, "--format", "json-base64"], {
      stdin: '{"body":"hi!"}\n',
    });
    assert.equal(notBase64.code, 1);
    assert.match(notBase64.stderr, /^error: line 1: body is not base64/);
    const bad = await run(["append", uri, "--format", "json"], {
      stdin: '{"body":"ok","timestamp":4000}\nnot json\n',
    });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: line 2: not JSON.*\(1 appended before it\)\n$/);
    const appendedBefore = jsonLines((await run(["read", uri, "--json"])).stdout);
    assert.equal(appendedBefore.at(-1)!["body"], "ok");

    const rawUri = "s2://cli-records/raw";
    assert.equal((await run(["create-stream", rawUri])).code, 0);
    const bytes = Buffer.from([0, 10, 13, 10, 255, 10]);
    const rawAppend = await run(["append", rawUri, "--format", "raw"], { stdin: bytes });
    assert.equal(rawAppend.code, 0, rawAppend.stderr);
    assert.match(rawAppend.stdout, /^appended 1 record in 0\.\.=0/);
    const rawRead = await run(["read", rawUri, "--format", "raw"]);
    assert.deepEqual(rawRead.stdoutBytes, bytes);
    const tooBig = await run(["append", rawUri, "--format", "raw"], {
      stdin: Buffer.alloc(maxBatchBytes + 1),
    });
    assert.equal(tooBig.code, 1);
    assert.match(tooBig.stderr, /^error: the record is above the limit/);

    const empty = await run(["append", rawUri], { stdin: "" });
    assert.equal(empty.code, 0);
    assert.match(empty.stderr, /nothing to append/);
  });

  it("reads from a seq num, a timestamp or a tail offset, within count, bytes and until", async () => {
    const uri = "s2://cli-records/positions";
    assert.equal(
      (await run(["create-stream", uri, "--timestamping-mode", "client-require"])).code,
      0,
    );
    const input = [0, 1, 2, 3, 4]
      .map((i) => JSON.stringify({ body: `r${i}`, timestamp: 100 * (i + 1) }))
      .join("\n");
    assert.equal((await run(["append", uri, "--format", "json"], { stdin: input })).code, 0);
    const bodies = async (...flags: string[]): Promise<string[]> => {
      const result = await run(["read", uri, ...flags]);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split("\n").filter((line) => line !== "");
    };
    assert.deepEqual(await bodies("--seq-num", "3"), ["r3", "r4"]);
    assert.deepEqual(await bodies("--tail-offset", "2"), ["r3", "r4"]);
    assert.deepEqual(await bodies("--timestamp", "250"), ["r2", "r3", "r4"]);
    assert.deepEqual(await bodies("--count", "2"), ["r0", "r1"]);
    // Each record is 8 + 2 metered bytes.
    assert.deepEqual(await bodies("--bytes", "20"), ["r0", "r1"]);
    assert.deepEqual(await bodies("--until", "300"), ["r0", "r1"]);
    assert.deepEqual(await bodies("--seq-num", "5"), []);
    assert.deepEqual(await bodies("--seq-num", "9", "--clamp"), []);

    const beyond = await run(["read", uri, "--seq-num", "9"]);
    assert.equal(beyond.code, 1);
    assert.equal(beyond.stderr.split("\n").length, 2, beyond.stderr);
    assert.match(beyond.stderr, /^error: \w+: /);
    const twoStarts = await run(["read", uri, "--seq-num", "1", "--tail-offset", "1"]);
    assert.equal(twoStarts.code, 2);
    assert.match(twoStarts.stderr, /^error: give one of --seq-num/);
    const badFormat = await run(["read", uri, "--format", "xml"]);
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /^error: --format must be one of text, json, json-base64, raw/);
  });

  it("follows the live tail until --count records arrived", async () => {
    const uri = "s2://cli-records/follow";
    assert.equal((await run(["create-stream", uri])).code, 0);
    assert.equal((await run(["append", uri], { stdin: "old\n" })).code, 0);
    const following = run(["read", uri, "--follow", "--seq-num", "1", "--count", "3"]);
    // The read starts at seq num 1, so records appended before or after it opens all count.
    for (const body of ["one", "two", "three", "four"]) {
      assert.equal((await run(["append", uri], { stdin: `${body}\n` })).code, 0);
    }
    const result = await following;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "one\ntwo\nthree\n");
  });

  it("follows until interrupted, then exits 0", async () => {
    const uri = "s2://cli-records/interrupt";
    assert.equal((await run(["create-stream", uri])).code, 0);
    const stdout = new CapturedOutput();
    const stderr = new CapturedOutput();
    const abort = new AbortController();
    const following = runCli(
      ["read", uri, "--follow", "--format", "json"],
      { stdin: Readable.from([]), stdout, stderr, env },
      { signal: abort.signal },
    );
    assert.equal((await run(["append", uri], { stdin: "live\n" })).code, 0);
    await waitFor(() => stdout.text.includes('"live"'), "the followed record");
    abort.abort(new Error("interrupted"));
    assert.equal(await following, 0, stderr.text);
    assert.equal(jsonLines(stdout.text).length, 1);
  });

  it("fences and trims with command records", async () => {
    const uri = "s2://cli-records/fenced";
    assert.equal((await run(["create-stream", uri])).code, 0);
    assert.equal((await run(["append", uri], { stdin: "a\nb\nc\n" })).code, 0);
    const fenced = await run(["fence", uri, "writer-1"]);
    assert.equal(fenced.code, 0, fenced.stderr);
    assert.equal(fenced.stdout, `fenced ${uri} with token "writer-1" at seq num 3\n`);

    const wrong = await run(["append", uri, "-f", "writer-0"], { stdin: "x\n" });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^error: fencing_token_mismatch: append condition failed: /);
    assert.equal(wrong.stderr.trimEnd().split("\n").length, 1);
    const right = await run(["append", uri, "--fencing-token", "writer-1"], { stdin: "d\n" });
    assert.equal(right.code, 0, right.stderr);
    const mismatch = await run(["append", uri, "--match-seq-num", "0"], { stdin: "y\n" });
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /^error: seq_num_mismatch: append condition failed: /);
    const refence = await run(["fence", uri, "writer-2", "--fencing-token", "writer-0"]);
    assert.equal(refence.code, 1);
    assert.match(refence.stderr, /^error: fencing_token_mismatch: /);

    const trimmed = await run(["trim", uri, "2", "-f", "writer-1", "--json"]);
    assert.equal(trimmed.code, 0, trimmed.stderr);
    assert.deepEqual(JSON.parse(trimmed.stdout), { seq_num: 5, trim_point: 2 });

    const records = jsonLines(
      (await run(["read", uri, "--format", "json-base64", "-s", "3"])).stdout,
    );
    const trimPoint = Buffer.alloc(8);
    trimPoint.writeBigUInt64BE(2n);
    assert.deepEqual(
      records.map(({ headers, body }) => ({ headers, body })),
      [
        {
          headers: [["", Buffer.from("fence").toString("base64")]],
          body: Buffer.from("writer-1").toString("base64"),
        },
        { headers: [], body: Buffer.from("d").toString("base64") },
        {
          headers: [["", Buffer.from("trim").toString("base64")]],
          body: trimPoint.toString("base64"),
        },
      ],
    );
    const text = await run(["read", uri, "-s", "3"]);
    assert.equal(text.stdout, "d\n");
    assert.equal(text.stderr, 'seq num 3: fence with token "writer-1"\nseq num 5: trim to 2\n');

    const reset = await run(["fence", uri, "", "-f", "writer-1", "--json"]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.deepEqual(JSON.parse(reset.stdout), { seq_num: 6, fencing_token: "" });
    const tooLong = await run(["fence", uri, "x".repeat(37)]);
    assert.equal(tooLong.code, 2);
    const badPoint = await run(["trim", uri, "-3"]);
    assert.equal(badPoint.code, 2);
  });

  it("appends to and reads an encrypted stream with the key", async () => {
    assert.equal(
      (await run(["create-basin", "cli-encrypted", "--stream-cipher", "aegis-256"])).code,
      0,
    );
    const uri = "s2://cli-encrypted/secret";
    assert.equal((await run(["create-stream", uri])).code, 0);
    const key = randomBytes(32).toString("base64");
    const appended = await run(["append", uri, "--encryption-key", key], { stdin: "hidden\n" });
    assert.equal(appended.code, 0, appended.stderr);
    const read = await runCaptured(["read", uri], { env: { ...env, S2_ENCRYPTION_KEY: key } });
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, "hidden\n");
    const followed = await runCaptured(["read", uri, "--follow", "-n", "1"], {
      env: { ...env, S2_ENCRYPTION_KEY: key },
    });
    assert.equal(followed.stdout, "hidden\n");
    const noKey = await run(["read", uri]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /^error: bad_header: .*encryption key/);
    const badKey = await run(["read", uri, "--encryption-key", "c2hvcnQ="]);
    assert.equal(badKey.code, 2);
    assert.match(badKey.stderr, /^error: the encryption key must be base64 of 32 bytes/);
  });

  it("shows progress on a terminal stderr only", async () => {
    const uri = "s2://cli-records/progress";
    assert.equal((await run(["create-stream", uri])).code, 0);
    const shown = await run(["append", uri], { stdin: "a\nb\n", stderrIsTTY: true });
    assert.equal(shown.code, 0, shown.stderr);
    const lines = shown.stderr.split(progressClearLine);
    assert.equal(lines[0], "");
    assert.match(lines[1]!, /^appended \d+ records?, \d+ B \(\d+ rec\/s, /);
    assert.ok(shown.stderr.endsWith(progressClearLine));
    const read = await run(["read", uri], { stderrIsTTY: true });
    assert.ok(read.stderr.startsWith(`${progressClearLine}read `), read.stderr);
    assert.equal(read.stdout, "a\nb\n");
    const hidden = await run(["append", uri], { stdin: "c\n" });
    assert.equal(hidden.stderr, "");
  });
});
